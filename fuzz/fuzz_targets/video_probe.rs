//! The video probe's parsers on untrusted bytes: ffprobe's JSON (which a
//! hostile upload steers) → `VideoInfo`, and the MP4 box walker that decides
//! whether an upload needs a seekable input. Errors are fine; a panic, or
//! facts out of range (zero dimensions, a frame rate that is not finite and
//! positive, a negative or infinite duration), is a bug.
#![no_main]

use echotrace_signals::video::ffmpeg::{mp4_moov_after_mdat, parse_probe};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mp4_moov_after_mdat(data);
    if let Ok(info) = parse_probe(data) {
        assert!(info.width > 0 && info.height > 0, "zero dimension");
        assert!(info.fps.is_finite() && info.fps > 0.0, "fps {}", info.fps);
        if let Some(d) = info.duration_secs {
            assert!(d.is_finite() && d >= 0.0, "duration {d}");
        }
    }
});
