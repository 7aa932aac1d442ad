//! Raw H.264 / H.265 elementary streams (Annex B, no container): sniffed as
//! video by the content dispatcher, decoded with an explicit demuxer, and
//! hashed to exactly the frames the same bitstream gives inside a container.
//! Truncated and garbage streams end in a clean error. Needs ffmpeg with
//! libx264 and libx265 (Debian's ffmpeg has both); fails when missing.

mod video_common;

use std::time::{Duration, Instant};

use video_common::{generate as ffmpeg_out, temp_dir};

use echotrace_signals::content::{detect_kind, hash_content, ContentKind, HashOptions};
use echotrace_signals::signal::SignalType;
use echotrace_signals::video::vpdq::VpdqHash;
use echotrace_signals::video::{
    elementary_stream, ElementaryStream, SeekableInput, VideoError, VideoHasher, VideoSetup,
    VpdqOptions,
};

const LIMIT: Duration = Duration::from_secs(30);

/// A 3 s, 10 fps synthetic clip encoded with `codec` as a raw stream,
/// without B-frames: decode order is display order, so a remux into a
/// container keeps every frame and a truncated stream decodes to a prefix.
fn elementary(codec: &str, format: &str) -> Vec<u8> {
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=10",
        "-t",
        "3",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        codec,
    ];
    if codec == "libx265" {
        args.extend(["-x265-params", "log-level=error:bframes=0"]);
    } else {
        args.extend(["-bf", "0"]);
    }
    args.extend(["-f", format]);
    ffmpeg_out(&format!("clip.{format}"), &args)
}

/// The same bitstream, stream-copied into an MP4 (10 fps, moov first).
fn remuxed(es: &[u8], format: &str) -> Vec<u8> {
    let dir = temp_dir();
    let src = dir.join(format!("src.{format}"));
    std::fs::write(&src, es).expect("write es");
    let src_s = src.to_string_lossy().into_owned();
    let mp4 = ffmpeg_out(
        &format!("remux-{format}.mp4"),
        &[
            "-f",
            format,
            "-framerate",
            "10",
            "-i",
            &src_s,
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    mp4
}

fn setup(seconds_per_hash: f64) -> VideoSetup {
    setup_with(seconds_per_hash, true)
}

fn setup_with(seconds_per_hash: f64, strict: bool) -> VideoSetup {
    let ffmpeg = video_common::locate(LIMIT, SeekableInput::Refuse, strict);
    VideoSetup {
        hasher: VideoHasher::new(ffmpeg),
        options: VpdqOptions {
            seconds_per_hash,
            downsample: None,
        },
    }
}

fn vpdq_of(bytes: &[u8], setup: &VideoSetup) -> VpdqHash {
    let opts = HashOptions {
        video: Some(setup.clone()),
        ..HashOptions::default()
    };
    let signals = hash_content(bytes, &opts).unwrap_or_else(|e| panic!("hashing failed: {e}"));
    let vpdq = signals
        .iter()
        .find(|s| s.signal_type == SignalType::Vpdq)
        .expect("a vpdq signal");
    VpdqHash::from_signal_str(&vpdq.value).expect("parses")
}

fn check_stream(codec: &str, format: &str, kind: ElementaryStream) {
    let es = elementary(codec, format);
    assert_eq!(elementary_stream(&es), Some(kind), "{format} sniffed");
    assert_eq!(
        detect_kind(&es),
        Some(ContentKind::Video),
        "{format} is video"
    );
    let every = setup(0.0);
    let raw = vpdq_of(&es, &every);
    assert_eq!(
        raw.features.len(),
        30,
        "{format}: 3 s at 10 fps, every frame"
    );
    // Identical decoded frames as the same bitstream in a container.
    let mp4 = remuxed(&es, format);
    assert_eq!(elementary_stream(&mp4), None);
    assert_eq!(detect_kind(&mp4), Some(ContentKind::Video));
    let boxed = vpdq_of(&mp4, &every);
    assert_eq!(raw.features.len(), boxed.features.len());
    for (a, b) in raw.features.iter().zip(&boxed.features) {
        assert_eq!(a.hash, b.hash, "{format}: frame {}", a.frame_number);
        assert_eq!(a.quality, b.quality);
        assert!((a.timestamp - b.timestamp).abs() < 1e-6);
    }
    // testsrc2 moves: the frames are not all the same hash.
    let distinct: std::collections::HashSet<_> = raw.features.iter().map(|f| f.hash).collect();
    assert!(distinct.len() > 10, "{format}: {} distinct", distinct.len());
    // One frame a second: frames 0, 10, 20 at 0, 1, 2 s.
    let sampled = vpdq_of(&es, &setup(1.0));
    let stamps: Vec<f64> = sampled.features.iter().map(|f| f.timestamp).collect();
    assert_eq!(stamps, [0.0, 1.0, 2.0], "{format}");
}

#[test]
fn raw_h264_stream_hashes_like_its_container() {
    check_stream("libx264", "h264", ElementaryStream::H264);
}

#[test]
fn raw_hevc_stream_hashes_like_its_container() {
    check_stream("libx265", "hevc", ElementaryStream::Hevc);
}

/// Hashes `bytes`, asserting a clean error in time.
fn expect_error(bytes: &[u8], what: &str) -> VideoError {
    let s = setup(1.0);
    let start = Instant::now();
    let result = s.hasher.hash(bytes, &s.options);
    let took = start.elapsed();
    assert!(took < LIMIT, "{what}: took {took:?}");
    match result {
        Ok(v) => panic!(
            "{what}: expected an error, got {} frames",
            v.vpdq.features.len()
        ),
        Err(e) => e,
    }
}

#[test]
fn truncated_and_garbage_streams_fail_cleanly() {
    for (codec, format) in [("libx264", "h264"), ("libx265", "hevc")] {
        let es = elementary(codec, format);
        // Cut mid-stream: the last frame is incomplete. The decoders would
        // conceal it (HEVC even outputs it half-decoded); strict mode turns
        // it into an error instead of a silently partial hash.
        let cut = es.get(..es.len() / 3).expect("prefix");
        assert!(elementary_stream(cut).is_some());
        let e = expect_error(cut, &format!("truncated {format}"));
        assert!(
            matches!(e, VideoError::DecodeFailed { .. }),
            "{format}: {e:?}"
        );
        // Non-strict mode hashes the decodable prefix, as the reference does.
        let lenient = setup_with(0.0, false);
        let full = lenient.hasher.hash(&es, &lenient.options).expect("full");
        let part = lenient.hasher.hash(cut, &lenient.options).expect("prefix");
        let n = part.vpdq.features.len();
        assert!(
            n > 0 && n < full.vpdq.features.len(),
            "{format}: {n} frames"
        );
        // Parameter sets only, no slices: nothing decodes.
        let headers = es.get(..40).expect("headers");
        let e = expect_error(headers, &format!("headers-only {format}"));
        assert!(
            matches!(
                e,
                VideoError::Unreadable(_) | VideoError::NoFrames | VideoError::DecodeFailed { .. }
            ),
            "{format}: {e:?}"
        );
    }
    // A valid-looking H.264 SPS header followed by pseudo-random bytes.
    let mut garbage = vec![0, 0, 0, 1, 0x67, 100, 0, 10];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    garbage.extend((0..200_000).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    assert_eq!(elementary_stream(&garbage), Some(ElementaryStream::H264));
    let e = expect_error(&garbage, "garbage h264");
    assert!(
        matches!(
            e,
            VideoError::Unreadable(_)
                | VideoError::NoFrames
                | VideoError::DecodeFailed { .. }
                | VideoError::NoVideoStream
        ),
        "{e:?}"
    );
}
