//! Dropping a frame stream early kills and reaps the ffmpeg child. Alone in
//! its own test binary so no other test's children are counted.

use std::path::PathBuf;
use std::sync::Arc;

use echotrace_signals::video::{Ffmpeg, FfmpegConfig, FramePlan};

/// Pids of this process's live (not zombie) children named `name`, and of
/// zombie children of any name.
fn children(name: &str) -> (Vec<u32>, Vec<u32>) {
    let me = std::process::id();
    let (mut live, mut zombies) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let (Some(state), Some(ppid)) = (rest.first(), rest.get(1)) else {
            continue;
        };
        if ppid.parse::<u32>().ok() != Some(me) {
            continue;
        }
        if *state == "Z" {
            zombies.push(pid);
        } else if comm == name {
            live.push(pid);
        }
    }
    (live, zombies)
}

#[test]
fn dropping_the_stream_kills_and_reaps_ffmpeg() {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/vpdq/videos/pattern-longer-no-bar.mp4"
    ));
    let bytes: Arc<[u8]> = Arc::from(
        std::fs::read(&path)
            .unwrap_or_else(|e| panic!("../shared/fixtures is missing ({}: {e})", path.display())),
    );
    let ffmpeg = Ffmpeg::locate(FfmpegConfig::default())
        .unwrap_or_else(|e| panic!("this test needs ffmpeg (apt-get install ffmpeg): {e}"));
    let (info, mut stream) = ffmpeg
        .decode(bytes, |i| {
            Ok(FramePlan {
                every_nth: 1,
                width: i.width,
                height: i.height,
            })
        })
        .expect("decode starts");
    let mut buf = Vec::new();
    assert!(stream.next_frame(&mut buf).expect("first frame"));
    assert_eq!(buf.len(), info.width as usize * info.height as usize * 3);
    let (live, _) = children("ffmpeg");
    assert_eq!(live.len(), 1, "one ffmpeg child while decoding");
    drop(stream);
    let (live, zombies) = children("ffmpeg");
    assert!(live.is_empty(), "ffmpeg still running after drop: {live:?}");
    assert!(
        zombies.is_empty(),
        "unreaped children after drop: {zombies:?}"
    );
}
