//! Video → vPDQ signals, decoding through isolated `ffmpeg` child processes.
//!
//! - [`ffmpeg`]: the one place this crate performs I/O. It spawns only the
//!   `ffprobe`/`ffmpeg` programs it is configured with, feeds the upload over
//!   a pipe, reads raw RGB frames back, and enforces every resource limit
//!   (time, memory, duration, frame count, pixels, input size). A missing
//!   ffmpeg is a clear [`VideoError::FfmpegMissing`] at startup; image and
//!   text signals never touch this module.
//! - [`vpdq`]: frame selection, per-frame PDQ, serialisation compatible with
//!   python-threatexchange and the reference C++ tool, and the reference
//!   matching rule.
//!
//! The "frame hashes → candidate videos" index lives in
//! `echotrace-index` (`vpdq_index`), since this crate has no index.

pub mod ffmpeg;
pub mod vpdq;

pub use ffmpeg::{
    Ffmpeg, FfmpegConfig, FramePlan, FrameStream, SeekableInput, VideoError, VideoInfo, VideoLimits,
};
pub use vpdq::{
    compare, VideoHasher, VideoSignals, VpdqComparison, VpdqFeature, VpdqHash, VpdqMatchOptions,
    VpdqOptions, VpdqParseError,
};

/// Whether `bytes` look like a video container we hand to ffmpeg: ISO-BMFF
/// (MP4/MOV/3GP, but not the HEIF/AVIF still-image brands), Matroska/WebM,
/// AVI, FLV, MPEG-TS, MPEG-PS, ASF/WMV, Ogg or YUV4MPEG2. Cheap magic-byte
/// checks only; ffprobe has the final word.
pub fn looks_like_video(bytes: &[u8]) -> bool {
    let at = |off: usize, magic: &[u8]| bytes.get(off..off + magic.len()) == Some(magic);
    if at(4, b"ftyp") {
        const STILL: [&[u8]; 6] = [b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"];
        return !bytes.get(8..12).is_some_and(|brand| STILL.contains(&brand));
    }
    if ["moov", "mdat", "wide", "free"]
        .iter()
        .any(|t| at(4, t.as_bytes()))
    {
        return true;
    }
    if at(0, &[0x1a, 0x45, 0xdf, 0xa3]) || (at(0, b"RIFF") && at(8, b"AVI ")) || at(0, b"FLV\x01") {
        return true;
    }
    if at(0, &[0x00, 0x00, 0x01, 0xba]) || at(0, b"OggS") || at(0, b"YUV4MPEG2") {
        return true;
    }
    // ASF header object GUID.
    if at(0, &[0x30, 0x26, 0xb2, 0x75, 0x8e, 0x66, 0xcf, 0x11]) {
        return true;
    }
    // MPEG-TS: sync byte 0x47 every 188 bytes, several times.
    bytes.len() >= 188 * 4 && (0..4).all(|i| bytes.get(i * 188) == Some(&0x47))
}

/// Video hashing as configured for the content dispatcher: a located ffmpeg
/// plus the vPDQ options. Equality compares the configuration (floats by
/// bit pattern).
#[derive(Clone, Debug)]
pub struct VideoSetup {
    pub hasher: VideoHasher,
    pub options: VpdqOptions,
}

impl PartialEq for VideoSetup {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (
            self.hasher.ffmpeg().config(),
            other.hasher.ffmpeg().config(),
        );
        let (la, lb) = (&a.limits, &b.limits);
        a.ffmpeg == b.ffmpeg
            && a.ffprobe == b.ffprobe
            && a.seekable_input == b.seekable_input
            && a.threads == b.threads
            && a.strict == b.strict
            && a.format_whitelist == b.format_whitelist
            && la.timeout == lb.timeout
            && la.memory_bytes == lb.memory_bytes
            && la.max_input_bytes == lb.max_input_bytes
            && la.max_duration_secs.to_bits() == lb.max_duration_secs.to_bits()
            && la.max_frames == lb.max_frames
            && la.max_pixels == lb.max_pixels
            && self.options.seconds_per_hash.to_bits() == other.options.seconds_per_hash.to_bits()
            && self.options.downsample == other.options.downsample
    }
}

impl Eq for VideoSetup {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_containers_not_stills() {
        let mut mp4 = vec![0, 0, 0, 24];
        mp4.extend_from_slice(b"ftypisom");
        assert!(looks_like_video(&mp4));
        let mut heic = vec![0, 0, 0, 24];
        heic.extend_from_slice(b"ftypheic");
        assert!(!looks_like_video(&heic));
        assert!(looks_like_video(&[0x1a, 0x45, 0xdf, 0xa3, 1]));
        assert!(looks_like_video(b"RIFF\0\0\0\0AVI LIST"));
        assert!(!looks_like_video(b"RIFF\0\0\0\0WEBPVP8 "));
        assert!(looks_like_video(b"YUV4MPEG2 W4 H4"));
        let mut ts = vec![0u8; 188 * 4];
        for i in 0..4 {
            ts[i * 188] = 0x47;
        }
        assert!(looks_like_video(&ts));
        assert!(!looks_like_video(b"hello world"));
        assert!(!looks_like_video(b""));
    }
}
