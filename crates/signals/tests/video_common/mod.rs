//! Shared helpers of the video integration tests: synthetic inputs made by
//! the ffmpeg on PATH (the tests fail, never skip, when it is missing).
#![allow(dead_code)] // each test crate uses its own subset

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use echotrace_signals::video::{Ffmpeg, FfmpegConfig, SeekableInput, VideoLimits};

/// A fresh directory per call (tests run in parallel); callers remove it.
pub fn temp_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("echotrace-video-tests-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `ffmpeg ARGS OUT` with `OUT` a file called `name` (its extension
/// picks the muxer unless `-f` is given) and returns the file's bytes.
pub fn generate(name: &str, args: &[&str]) -> Vec<u8> {
    let dir = temp_dir();
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg must be installed to generate test inputs (apt-get install ffmpeg)");
    assert!(status.success(), "generating {name} failed");
    let bytes = std::fs::read(&out).expect("read generated");
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// A 4 s 640x360 MP4 at 4 Mb/s with ffmpeg's default layout (moov atom
/// last): too large for ffmpeg's pipe buffer to cover the seek back.
pub fn big_moov_last_mp4() -> Vec<u8> {
    generate(
        "moov-last.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=30",
            "-t",
            "4",
            "-b:v",
            "4M",
            "-pix_fmt",
            "yuv420p",
        ],
    )
}

/// ffmpeg located with a `timeout` wall-clock limit and the given
/// temp-file policy (and otherwise default settings); panics when missing.
pub fn locate(timeout: Duration, seekable: SeekableInput, strict: bool) -> Ffmpeg {
    Ffmpeg::locate(FfmpegConfig {
        limits: VideoLimits {
            timeout,
            ..VideoLimits::default()
        },
        seekable_input: seekable,
        strict,
        ..FfmpegConfig::default()
    })
    .unwrap_or_else(|e| panic!("these tests need ffmpeg and ffprobe (apt-get install ffmpeg): {e}"))
}
