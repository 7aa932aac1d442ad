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
//! - [`thumbs`]: small JPEG stills of chosen frames for the review console,
//!   decoded by the same isolated ffmpeg under the same limits.
//! - [`elementary_stream`]: raw H.264/H.265 Annex B streams have no
//!   container; they are sniffed here and ffmpeg is told their demuxer
//!   (`-f h264` / `-f hevc`) instead of guessing.
//!
//! The "frame hashes → candidate videos" index lives in
//! `echotrace-index` (`vpdq_index`), since this crate has no index.

pub mod ffmpeg;
pub mod thumbs;
pub mod vpdq;

pub use ffmpeg::{
    Ffmpeg, FfmpegConfig, FramePick, FramePlan, FrameStream, SeekableInput, VideoError, VideoInfo,
    VideoLimits,
};
pub use thumbs::{extract_thumbnails, Thumbnail, ThumbnailOptions};
pub use vpdq::{
    compare, VideoHasher, VideoSignals, VpdqComparison, VpdqFeature, VpdqHash, VpdqMatchOptions,
    VpdqOptions, VpdqParseError,
};

/// Whether `bytes` look like a video we hand to ffmpeg: a container —
/// ISO-BMFF (MP4/MOV/3GP, but not the HEIF/AVIF still-image brands),
/// Matroska/WebM, AVI, FLV, MPEG-TS, MPEG-PS, ASF/WMV, Ogg or YUV4MPEG2 — or
/// a raw H.264/H.265 stream ([`elementary_stream`]). Cheap magic-byte checks
/// only; ffprobe has the final word.
pub fn looks_like_video(bytes: &[u8]) -> bool {
    match container(bytes) {
        Some(is_video) => is_video,
        None => elementary_stream(bytes).is_some(),
    }
}

/// A recognised container: `Some(true)` for a video container,
/// `Some(false)` for an ISO-BMFF still image (HEIF/AVIF), `None` for
/// anything else. Containers are decided first, so that a container whose
/// first bytes happen to read as a start code (an MP4 whose `ftyp` box is
/// 262 bytes long starts `00 00 01 06`) is never forced through a raw-stream
/// demuxer — that would fail to decode and let a playable copy of a known
/// video escape matching.
fn container(bytes: &[u8]) -> Option<bool> {
    let at = |off: usize, magic: &[u8]| bytes.get(off..off + magic.len()) == Some(magic);
    // An ISO-BMFF box type at offset 4 only counts when the first four bytes
    // are a plausible box size (0 = to the end, 1 = 64-bit size, else 8 up to
    // 512 MiB, i.e. a first byte below 0x20): plain text such as "abcdfree…"
    // (first byte printable, so "size" ≥ 0x2000_0000) would otherwise be
    // sniffed as video. Truncated files keep being recognised.
    let plausible_box = bytes.get(0..4).is_some_and(|b| {
        let size = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        size <= 1 || (8..0x2000_0000).contains(&size)
    });
    if plausible_box && at(4, b"ftyp") {
        const STILL: [&[u8]; 6] = [b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"];
        return Some(!bytes.get(8..12).is_some_and(|brand| STILL.contains(&brand)));
    }
    let video = (plausible_box
        && ["moov", "mdat", "wide", "free"]
            .iter()
            .any(|t| at(4, t.as_bytes())))
        || at(0, &[0x1a, 0x45, 0xdf, 0xa3])
        || (at(0, b"RIFF") && at(8, b"AVI "))
        || at(0, b"FLV\x01")
        || at(0, &[0x00, 0x00, 0x01, 0xba])
        || at(0, b"OggS")
        || at(0, b"YUV4MPEG2")
        // ASF header object GUID.
        || at(0, &[0x30, 0x26, 0xb2, 0x75, 0x8e, 0x66, 0xcf, 0x11])
        // MPEG-TS: sync byte 0x47 every 188 bytes, several times.
        || (bytes.len() >= 188 * 4 && (0..4).all(|i| bytes.get(i * 188) == Some(&0x47)));
    video.then_some(true)
}

/// The MIME type of a video container or elementary stream that
/// [`looks_like_video`] recognises, by the same magic bytes; `None` for
/// anything else.
pub fn video_mime(bytes: &[u8]) -> Option<&'static str> {
    if !looks_like_video(bytes) {
        return None;
    }
    let at = |off: usize, magic: &[u8]| bytes.get(off..off + magic.len()) == Some(magic);
    let mime = if at(0, &[0x1a, 0x45, 0xdf, 0xa3]) {
        "video/x-matroska"
    } else if at(0, b"RIFF") {
        "video/x-msvideo"
    } else if at(0, b"FLV") {
        "video/x-flv"
    } else if at(0, &[0x00, 0x00, 0x01, 0xba]) {
        "video/mpeg"
    } else if at(0, b"OggS") {
        "video/ogg"
    } else if at(0, b"YUV4MPEG2") {
        "video/x-yuv4mpeg"
    } else if at(0, &[0x30, 0x26, 0xb2, 0x75]) {
        "video/x-ms-asf"
    } else if let Some(es) = elementary_stream(bytes) {
        es.mime()
    } else if at(0, &[0x47]) && !at(4, b"ftyp") {
        "video/mp2t"
    } else {
        "video/mp4"
    };
    Some(mime)
}

/// A raw (container-less) video elementary stream in Annex B byte-stream
/// format, which ffmpeg must be told the demuxer of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementaryStream {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    Hevc,
}

impl ElementaryStream {
    /// ffmpeg's demuxer name (`-f`).
    pub fn demuxer(self) -> &'static str {
        match self {
            ElementaryStream::H264 => "h264",
            ElementaryStream::Hevc => "hevc",
        }
    }

    /// MIME type (RFC 6184 / RFC 7798 names).
    pub fn mime(self) -> &'static str {
        match self {
            ElementaryStream::H264 => "video/H264",
            ElementaryStream::Hevc => "video/H265",
        }
    }
}

/// Bytes of the stream searched for the first parameter set.
const ES_SNIFF_WINDOW: usize = 64 * 1024;
/// NAL units skipped (access unit delimiters, SEI) before giving up.
const ES_SNIFF_NALS: usize = 8;
/// H.264 `profile_idc` values of the published profiles.
const H264_PROFILES: [u8; 14] = [
    66, 77, 88, 100, 110, 122, 244, 44, 118, 128, 138, 139, 134, 135,
];

/// Sniffs a raw H.264 or H.265 Annex B stream: it must open with a start
/// code (`00 00 01` or `00 00 00 01`), and its first NAL units, after at
/// most a few access-unit delimiters and SEI messages, must reach an H.264
/// sequence parameter set (with a known profile) or an H.265 video or
/// sequence parameter set. Slices before any parameter set are not
/// decodable, so such streams are not recognised.
pub fn elementary_stream(bytes: &[u8]) -> Option<ElementaryStream> {
    if container(bytes).is_some() {
        return None;
    }
    let window = bytes.get(..bytes.len().min(ES_SNIFF_WINDOW))?;
    let mut pos = start_code_len(window)?;
    for _ in 0..ES_SNIFF_NALS {
        let b0 = *window.get(pos)?;
        let b1 = *window.get(pos + 1)?;
        if b0 & 0x80 != 0 {
            return None; // forbidden_zero_bit
        }
        // H.264: nal_ref_idc (2 bits), nal_unit_type (5 bits).
        let (avc_ref, avc_type) = ((b0 >> 5) & 3, b0 & 0x1f);
        // H.265: type (6 bits), layer id (6 bits), temporal id + 1 (3 bits).
        let hevc_type = (b0 >> 1) & 0x3f;
        let hevc_layer = ((b0 & 1) << 5) | (b1 >> 3);
        let hevc_tid = b1 & 7;
        let hevc_ok = hevc_layer == 0 && hevc_tid >= 1;
        if avc_type == 7 && avc_ref != 0 && H264_PROFILES.contains(&b1) {
            return Some(ElementaryStream::H264);
        }
        if hevc_ok && (hevc_type == 32 || hevc_type == 33) {
            return Some(ElementaryStream::Hevc);
        }
        // Skippable preamble: H.264 SEI / AUD (nal_ref_idc 0), H.265 AUD / prefix SEI.
        let avc_preamble = avc_ref == 0 && (avc_type == 6 || avc_type == 9);
        let hevc_preamble = hevc_ok && (hevc_type == 35 || hevc_type == 39);
        if !(avc_preamble || hevc_preamble) {
            return None;
        }
        let rest = window.get(pos + 2..)?;
        let next = rest.windows(3).position(|w| w == [0, 0, 1])?;
        pos = pos + 2 + next + 3;
    }
    None
}

/// Length of a leading Annex B start code, if any.
fn start_code_len(bytes: &[u8]) -> Option<usize> {
    match bytes {
        [0, 0, 0, 1, ..] => Some(4),
        [0, 0, 1, ..] => Some(3),
        _ => None,
    }
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
        // Text that happens to carry a box type at offset 4 is not video.
        for text in [
            &b"abcdfree speech"[..],
            b"Somewide angle",
            b"Thismdat",
            b"zzzzmoov it",
        ] {
            assert!(
                !looks_like_video(text),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
        let mut free = vec![0, 0, 0, 8];
        free.extend_from_slice(b"free");
        assert!(looks_like_video(&free));
    }

    #[test]
    fn sniffs_annex_b_elementary_streams() {
        // x264's first NAL: SPS, High profile.
        let avc = [0, 0, 0, 1, 0x67, 100, 0, 10, 0xac, 0xd9];
        assert_eq!(elementary_stream(&avc), Some(ElementaryStream::H264));
        assert!(looks_like_video(&avc));
        assert_eq!(video_mime(&avc), Some("video/H264"));
        // Three-byte start code, an AUD and an SEI before the SPS.
        let mut aud_first = vec![0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x06, 0x05, 0x11, 0x80];
        aud_first.extend_from_slice(&[0, 0, 0, 1, 0x27, 66, 0, 30]);
        assert_eq!(elementary_stream(&aud_first), Some(ElementaryStream::H264));
        // x265's first NAL: VPS (type 32, layer 0, tid 1).
        let hevc = [0, 0, 0, 1, 0x40, 0x01, 0x0c, 0x01, 0xff];
        assert_eq!(elementary_stream(&hevc), Some(ElementaryStream::Hevc));
        assert_eq!(video_mime(&hevc), Some("video/H265"));
        // HEVC AUD, then SPS.
        let hevc_aud = [0, 0, 1, 0x46, 0x01, 0x10, 0, 0, 1, 0x42, 0x01, 0x01];
        assert_eq!(elementary_stream(&hevc_aud), Some(ElementaryStream::Hevc));
        // Not streams: a slice before any parameter set, an unknown H.264
        // profile, the forbidden bit, MPEG-1/2 video, a bare start code.
        assert_eq!(elementary_stream(&[0, 0, 0, 1, 0x65, 0x88, 0x84]), None);
        assert_eq!(elementary_stream(&[0, 0, 0, 1, 0x67, 0x01, 0, 10]), None);
        assert_eq!(elementary_stream(&[0, 0, 0, 1, 0xe7, 100, 0, 10]), None);
        assert_eq!(elementary_stream(&[0, 0, 1, 0xb3, 0x14, 0x00]), None);
        assert_eq!(elementary_stream(&[0, 0, 0, 1]), None);
        assert_eq!(elementary_stream(&[0, 0, 1, 0x09]), None);
        // AUDs forever (no parameter set within the NAL budget).
        let auds: Vec<u8> = (0..20).flat_map(|_| [0u8, 0, 1, 0x09, 0xf0]).collect();
        assert_eq!(elementary_stream(&auds), None);
        // Container types keep their MIME types.
        let mut mp4 = vec![0, 0, 0, 24];
        mp4.extend_from_slice(b"ftypisom");
        assert_eq!(video_mime(&mp4), Some("video/mp4"));
        assert_eq!(
            video_mime(&[0x1a, 0x45, 0xdf, 0xa3, 1]),
            Some("video/x-matroska")
        );
        assert_eq!(video_mime(b"hello"), None);
    }

    /// A container whose first bytes also read as a raw stream — an MP4
    /// with a 262-byte `ftyp` box (`00 00 01 06` = start code + SEI) and an
    /// SPS-looking brand — stays a container, so ffmpeg is not forced onto
    /// the raw H.264 demuxer; a HEIF still in the same shape is not video.
    #[test]
    fn containers_win_over_start_code_lookalikes() {
        let crafted = |brand: &[u8; 4]| {
            let mut v = vec![0u8, 0, 1, 6];
            v.extend_from_slice(b"ftyp");
            v.extend_from_slice(brand);
            v.extend_from_slice(&[0, 0, 0, 0]);
            v.extend_from_slice(&[0, 0, 1, 0x67, 100, 0, 10, 0xac]);
            v.resize(262, 0);
            v
        };
        let mp4 = crafted(b"isom");
        assert_eq!(elementary_stream(&mp4), None);
        assert!(looks_like_video(&mp4));
        assert_eq!(video_mime(&mp4), Some("video/mp4"));
        let heif = crafted(b"heic");
        assert_eq!(elementary_stream(&heif), None);
        assert!(!looks_like_video(&heif));
    }
}
