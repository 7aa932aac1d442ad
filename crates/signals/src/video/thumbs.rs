//! Small JPEG stills of chosen video frames, for the review console's
//! matched-frame strip.
//!
//! Design decisions:
//! - **Same isolation as hashing.** Frames are decoded by
//!   [`Ffmpeg::decode_picked`]: the same child process, pipes, allow-lists,
//!   rlimits, timeout and temp-file policy as vPDQ hashing, so a video that
//!   hashes also thumbnails, and a hostile one fails the same clean way
//!   (an MP4 with `moov` last decodes from the pipe while ffmpeg's buffer
//!   covers it, else needs the operator's temp-file mode).
//! - **One decode for all stills of a video.** A pipe cannot seek, so every
//!   run decodes from the start; all wanted frames are picked in one run,
//!   which stops after the last of them.
//! - **Frames by timestamp, the vPDQ way.** A vPDQ timestamp is the
//!   reference's `frame_number / fps`; the frame shown for timestamp `t` is
//!   decoded frame `round(t × fps)`, i.e. exactly the frame that was hashed.
//! - **Small.** Stills are scaled (area filter) to at most
//!   [`ThumbnailOptions::max_width`] × [`ThumbnailOptions::max_height`],
//!   keeping the aspect ratio, and encoded as baseline JPEG. No blurring
//!   happens here: the console blurs and greys with CSS until a reviewer
//!   reveals a still, as it does for images.

use std::sync::Arc;

use crate::video::ffmpeg::{Ffmpeg, FramePick, VideoError, VideoInfo, MAX_PICKED_FRAMES};

/// Size and encoding of the stills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThumbnailOptions {
    /// Largest still width in pixels (never upscaled).
    pub max_width: u32,
    /// Largest still height in pixels (tall videos are bounded by this).
    pub max_height: u32,
    /// JPEG quality, 1–100.
    pub jpeg_quality: u8,
}

impl Default for ThumbnailOptions {
    fn default() -> Self {
        ThumbnailOptions {
            max_width: 160,
            max_height: 160,
            jpeg_quality: 80,
        }
    }
}

/// One still.
#[derive(Clone, Debug, PartialEq)]
pub struct Thumbnail {
    /// The requested timestamp (seconds) this still answers.
    pub timestamp: f64,
    /// Decoded-frame number shown.
    pub frame_number: u64,
    pub width: u32,
    pub height: u32,
    /// Baseline JPEG bytes.
    pub jpeg: Vec<u8>,
}

/// The decoded-frame number of a vPDQ timestamp at `fps`.
pub fn frame_number_at(timestamp: f64, fps: f64) -> Option<u64> {
    let n = (timestamp * fps).round();
    (n.is_finite() && n >= 0.0 && n < u64::MAX as f64).then_some(n as u64)
}

/// Output size: the video's aspect ratio within the bounds, at least 1×1
/// per side before ffmpeg's own minimum is checked.
fn still_size(info: &VideoInfo, o: &ThumbnailOptions) -> (u32, u32) {
    let (w, h) = (f64::from(info.width.max(1)), f64::from(info.height.max(1)));
    let scale = (f64::from(o.max_width) / w)
        .min(f64::from(o.max_height) / h)
        .min(1.0);
    let tw = ((w * scale).round() as u32).max(1);
    let th = ((h * scale).round() as u32).max(1);
    (tw, th)
}

/// Decodes the frames at `timestamps` (seconds, vPDQ style) and returns one
/// JPEG still per timestamp that exists in the video, in ascending
/// timestamp order. Timestamps mapping to the same frame share one still.
/// At most [`MAX_PICKED_FRAMES`] distinct frames per call.
pub fn extract_thumbnails(
    ffmpeg: &Ffmpeg,
    video: Arc<[u8]>,
    timestamps: &[f64],
    options: &ThumbnailOptions,
) -> Result<Vec<Thumbnail>, VideoError> {
    if !(1..=100).contains(&options.jpeg_quality) {
        return Err(VideoError::InvalidOption(
            "JPEG quality must be between 1 and 100".into(),
        ));
    }
    if options.max_width < 5 || options.max_height < 5 {
        return Err(VideoError::InvalidOption(
            "thumbnails must be at least 5 pixels on each side".into(),
        ));
    }
    let mut wanted: Vec<f64> = timestamps
        .iter()
        .copied()
        .filter(|t| t.is_finite() && *t >= 0.0)
        .collect();
    wanted.sort_by(f64::total_cmp);
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut fps_seen = 0.0;
    let mut size = (0, 0);
    let (_, frames, mut stream) = ffmpeg.decode_picked(video, |info| {
        fps_seen = info.fps;
        size = still_size(info, options);
        let frames: Vec<u64> = wanted
            .iter()
            .filter_map(|t| frame_number_at(*t, info.fps))
            .collect();
        let mut distinct = frames.clone();
        distinct.dedup();
        if distinct.len() > MAX_PICKED_FRAMES {
            return Err(VideoError::InvalidOption(format!(
                "at most {MAX_PICKED_FRAMES} thumbnails per video"
            )));
        }
        Ok(FramePick {
            frames,
            width: size.0,
            height: size.1,
        })
    })?;
    let (width, height) = size;
    let mut out = Vec::with_capacity(wanted.len());
    let mut buf = Vec::new();
    for &frame_number in &frames {
        if !stream.next_frame(&mut buf)? {
            break; // the video is shorter than the later timestamps
        }
        let jpeg = encode_jpeg(&buf, width, height, options.jpeg_quality)?;
        for t in wanted
            .iter()
            .filter(|t| frame_number_at(**t, fps_seen) == Some(frame_number))
        {
            out.push(Thumbnail {
                timestamp: *t,
                frame_number,
                width,
                height,
                jpeg: jpeg.clone(),
            });
        }
    }
    // Drain to the end so a failing decode is reported, not hidden.
    while stream.next_frame(&mut buf)? {}
    Ok(out)
}

fn encode_jpeg(rgb: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>, VideoError> {
    let mut out = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    enc.encode(rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| VideoError::InvalidOption(format!("JPEG encoding failed: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(w: u32, h: u32) -> VideoInfo {
        VideoInfo {
            width: w,
            height: h,
            fps: 25.0,
            duration_secs: None,
            nb_frames: None,
            format_name: String::new(),
            codec_name: String::new(),
        }
    }

    #[test]
    fn sizes_keep_aspect_and_never_upscale() {
        let o = ThumbnailOptions::default();
        assert_eq!(still_size(&info(1280, 720), &o), (160, 90));
        assert_eq!(still_size(&info(720, 1280), &o), (90, 160));
        assert_eq!(still_size(&info(64, 48), &o), (64, 48));
        assert_eq!(still_size(&info(100_000, 10), &o), (160, 1));
    }

    #[test]
    fn timestamps_map_to_the_hashed_frame() {
        // The reference's timestamp: (float)n / (float)fps, 3 decimals.
        for fps in [25.0_f64, 29.97, 30.0, 59.94, 7.5] {
            for n in [0u64, 1, 29, 30, 899, 10_007] {
                let t = f64::from(n as f32 / fps as f32);
                let printed: f64 = format!("{t:.3}").parse().unwrap_or(-1.0);
                assert_eq!(frame_number_at(printed, fps), Some(n), "fps {fps} n {n}");
            }
        }
        assert_eq!(frame_number_at(f64::NAN, 25.0), None);
        assert_eq!(frame_number_at(-1.0, 25.0), None);
    }
}
