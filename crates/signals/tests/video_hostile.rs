//! Hostile video inputs must end in a clean error within the time limit.
//! Inputs are generated here (with ffmpeg's synthetic test sources) or
//! derived from the benign fixtures. Needs ffmpeg; fails when it is missing.

mod video_common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use video_common::generate;

use echotrace_signals::video::{
    Ffmpeg, FfmpegConfig, SeekableInput, VideoError, VideoHasher, VideoLimits, VpdqOptions,
};

const LIMIT: Duration = Duration::from_secs(20);

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/vpdq/videos"
    ))
    .join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "../shared/fixtures is missing or incomplete ({}: {e})",
            path.display()
        )
    })
}

fn config(limits: VideoLimits) -> FfmpegConfig {
    FfmpegConfig {
        limits,
        ..FfmpegConfig::default()
    }
}

fn hasher_with(config: FfmpegConfig) -> VideoHasher {
    match Ffmpeg::locate(config) {
        Ok(f) => VideoHasher::new(f),
        Err(e) => {
            panic!("these tests need ffmpeg and ffprobe on PATH (apt-get install ffmpeg): {e}")
        }
    }
}

fn limits() -> VideoLimits {
    VideoLimits {
        timeout: LIMIT,
        ..VideoLimits::default()
    }
}

/// Hashes `bytes`, asserting it fails in time; returns the error.
fn expect_error(h: &VideoHasher, bytes: &[u8], what: &str) -> VideoError {
    let start = Instant::now();
    let result = h.hash(bytes, &VpdqOptions::default());
    let took = start.elapsed();
    assert!(
        took < LIMIT + Duration::from_secs(2),
        "{what}: took {took:?}"
    );
    match result {
        Ok(s) => panic!(
            "{what}: expected an error, got {} features",
            s.vpdq.features.len()
        ),
        Err(e) => {
            println!("{what}: {e} ({took:?})");
            e
        }
    }
}

#[test]
fn truncated_video_is_a_decode_error() {
    let h = hasher_with(config(limits()));
    let full = fixture("chair-19-sd-bar.mp4");
    let cut = full.get(..full.len() / 2).expect("half");
    let e = expect_error(&h, cut, "truncated");
    assert!(matches!(e, VideoError::DecodeFailed { .. }), "{e:?}");
    // Cut inside the header: not even probeable.
    let e = expect_error(&h, full.get(..2000).expect("prefix"), "header-truncated");
    assert!(
        matches!(
            e,
            VideoError::Unreadable(_) | VideoError::DecodeFailed { .. }
        ),
        "{e:?}"
    );
}

#[test]
fn random_bytes_named_mp4_are_unreadable() {
    let h = hasher_with(config(limits()));
    // Deterministic pseudo-random bytes (xorshift).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let e = expect_error(&h, &bytes, "random.mp4");
    assert!(matches!(e, VideoError::Unreadable(_)), "{e:?}");
    let e = expect_error(&h, b"", "empty");
    assert!(matches!(e, VideoError::Unreadable(_)), "{e:?}");
}

#[test]
fn audio_only_file_has_no_video_stream() {
    let h = hasher_with(config(limits()));
    let audio = generate(
        "audio.mp4",
        &["-f", "lavfi", "-i", "sine=frequency=440:duration=2"],
    );
    let e = expect_error(&h, &audio, "audio-only");
    assert!(matches!(e, VideoError::NoVideoStream), "{e:?}");
}

#[test]
fn enormous_claimed_dimensions_are_refused_before_decoding() {
    let h = hasher_with(config(limits()));
    // YUV4MPEG2 states its dimensions in a text header, so a claim is easy
    // to craft. ffmpeg itself refuses 100000x100000 (beyond its image size
    // sanity limit); 16000x16000 it accepts, and our pixel limit refuses.
    let claim = |w: u32, h: u32| {
        let mut b = format!("YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\nFRAME\n").into_bytes();
        b.extend(std::iter::repeat_n(0u8, 4096));
        b
    };
    let e = expect_error(&h, &claim(100_000, 100_000), "100000x100000");
    assert!(
        matches!(
            e,
            VideoError::Unreadable(_) | VideoError::TooManyPixels { .. }
        ),
        "{e:?}"
    );
    let e = expect_error(&h, &claim(16_000, 16_000), "16000x16000");
    assert!(
        matches!(
            e,
            VideoError::TooManyPixels {
                width: 16_000,
                height: 16_000,
                ..
            }
        ),
        "{e:?}"
    );
    // A real (small) MP4 whose headers are patched to claim 65535x65535
    // (the largest an MP4 sample entry can state): ffprobe reads the true
    // size from the bitstream or refuses; either way nothing huge decodes.
    let mut mp4 = fixture("doorknob-hd-no-bar.mp4");
    if let Some(pos) = mp4.windows(4).position(|w| w == b"avc1") {
        // avc1 sample entry: width/height are u16 at +28/+30 from the type.
        for off in [pos + 28, pos + 30] {
            if let Some(field) = mp4.get_mut(off..off + 2) {
                field.copy_from_slice(&u16::MAX.to_be_bytes());
            }
        }
    }
    let start = Instant::now();
    let r = h.hash(&mp4, &VpdqOptions::default());
    assert!(start.elapsed() < LIMIT);
    if let Ok(s) = r {
        assert!(u64::from(s.info.width) * u64::from(s.info.height) <= 4096 * 4096);
    }
}

#[test]
fn huge_frame_count_is_refused() {
    let small = VideoLimits {
        max_frames: 5_000,
        ..limits()
    };
    let h = hasher_with(config(small));
    // 20 s of 16x16 at 1000 fps: 20,000 frames. In Matroska the duration is
    // known, so the probe refuses it before decoding.
    let args = [
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=16x16:rate=1000",
        "-t",
        "20",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
    ];
    let mkv = generate("many.mkv", &args);
    let e = expect_error(&h, &mkv, "20k frames (mkv)");
    assert!(
        matches!(e, VideoError::TooManyFrames { limit: 5_000 }),
        "{e:?}"
    );
    // As a raw H.264 stream nothing states duration or frame count; the
    // decoder is stopped just past the limit.
    let mut raw_args = args.to_vec();
    raw_args.extend(["-f", "h264"]);
    let raw = generate("many.h264", &raw_args);
    let e = expect_error(&h, &raw, "20k frames (raw h264)");
    assert!(
        matches!(e, VideoError::TooManyFrames { limit: 5_000 }),
        "{e:?}"
    );
}

#[test]
fn wall_clock_timeout_kills_the_decoder() {
    let tight = VideoLimits {
        timeout: Duration::from_millis(300),
        ..limits()
    };
    let h = hasher_with(config(tight));
    let video = fixture("pattern-longer-no-bar.mp4");
    let start = Instant::now();
    let r = h.hash(
        &video,
        &VpdqOptions {
            seconds_per_hash: 0.0,
            downsample: None,
        },
    );
    let took = start.elapsed();
    assert!(
        matches!(r, Err(VideoError::Timeout(_))),
        "{:?}",
        r.map(|s| s.vpdq.features.len())
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn memory_limit_applies_to_the_child() {
    // 64 MiB of address space is far too little for ffmpeg to even start.
    let starved = VideoLimits {
        memory_bytes: 64 << 20,
        ..limits()
    };
    let h = hasher_with(config(starved));
    let e = expect_error(&h, &fixture("doorknob-hd-no-bar.mp4"), "64 MiB rlimit");
    assert!(
        matches!(
            e,
            VideoError::Unreadable(_) | VideoError::DecodeFailed { .. } | VideoError::Io(_)
        ),
        "{e:?}"
    );
}

#[test]
fn oversized_input_is_refused_without_spawning() {
    let tiny = VideoLimits {
        max_input_bytes: 1000,
        ..limits()
    };
    let h = hasher_with(config(tiny));
    let e = expect_error(&h, &fixture("doorknob-hd-no-bar.mp4"), "input too large");
    assert!(
        matches!(e, VideoError::InputTooLarge { limit: 1000, .. }),
        "{e:?}"
    );
}

#[test]
fn moov_at_end_needs_opt_in_temp_file() {
    // ffmpeg's default MP4 muxing writes the moov atom last. Large enough
    // that ffmpeg's pipe buffer cannot cover it.
    let mp4 = video_common::big_moov_last_mp4();
    let refusing = hasher_with(config(limits()));
    let e = expect_error(&refusing, &mp4, "moov last, pipe only");
    assert!(matches!(e, VideoError::NeedsSeekableInput), "{e:?}");
    let dir = std::env::temp_dir().join(format!("echotrace-video-tmp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let temp_ok = hasher_with(FfmpegConfig {
        seekable_input: SeekableInput::TempFile(dir.clone()),
        ..config(limits())
    });
    let s = temp_ok
        .hash(&mp4, &VpdqOptions::default())
        .expect("temp-file mode decodes it");
    assert_eq!(s.vpdq.features.len(), 4, "120 frames, one per second");
    // The temporary copy is gone.
    let left: Vec<_> = std::fs::read_dir(&dir).expect("read").collect();
    assert!(left.is_empty(), "temp files left behind: {left:?}");
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn missing_ffmpeg_is_a_clear_startup_error() {
    let e = Ffmpeg::locate(FfmpegConfig {
        ffmpeg: PathBuf::from("/nonexistent/ffmpeg"),
        ..FfmpegConfig::default()
    })
    .expect_err("must fail");
    assert!(matches!(e, VideoError::FfmpegMissing { .. }), "{e:?}");
    assert!(e.to_string().contains("install ffmpeg"), "{e}");
    let e = Ffmpeg::locate(FfmpegConfig {
        ffprobe: PathBuf::from("definitely-not-an-ffprobe-binary"),
        ..FfmpegConfig::default()
    })
    .expect_err("must fail");
    assert!(matches!(e, VideoError::FfmpegMissing { .. }), "{e:?}");
}
