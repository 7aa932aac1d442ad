//! Hardened image decoding: untrusted bytes → 8-bit RGB pixels.
//!
//! Every upload that reaches echotrace may be hostile, so decoding is the
//! front line. Design decisions:
//!
//! * **Format by magic bytes, never by file name** ([`sniff_format`]). Only
//!   JPEG, PNG, GIF, WebP, BMP and TIFF are accepted.
//! * **Limits before allocation.** [`DecodeLimits`] bounds the input size,
//!   the pixel count, each side, and the bytes the decoder may allocate. The
//!   header is parsed and checked *before* any pixel buffer exists, and the
//!   same allocation budget is passed to the `image` crate's own limits so
//!   that side buffers (e.g. a GIF frame larger than its canvas) are bounded
//!   too.
//! * **Truncation is an error.** Pillow (what python-threatexchange and HMA
//!   use) refuses truncated files, and silently hashing a half-grey image
//!   would give a meaningless hash. JPEG, PNG and WebP files get a cheap
//!   structural walk (segments / chunks / RIFF size) that reports
//!   [`DecodeError::Truncated`] in microseconds, before any pixel decoding.
//! * **Pillow-compatible RGB.** The pixels match the ones the Python
//!   ecosystem hashes wherever that is well defined: greyscale is copied to
//!   three channels, palettes are expanded, alpha is dropped (not
//!   composited), 16-bit colour keeps the high byte (Pillow's `;16B`
//!   raw modes) and 16-bit greyscale is clipped at 255 (Pillow's `I;16` →
//!   `RGB` conversion), EXIF orientation is ignored unless
//!   [`DecodeOptions::exif_orient`] is set. GIF decodes the first frame only.
//! * **No panics escape.** Decoding runs under `catch_unwind`; a panic in a
//!   third-party decoder becomes [`DecodeError::DecoderPanic`] (the fuzz
//!   target treats that variant as a bug).
//! * **Pure Rust.** JPEG goes through `zune-jpeg` (via `image`), which is
//!   not bit-identical to libjpeg-turbo; ARCHITECTURE.md records the
//!   measured effect on PDQ.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::codecs::{
    bmp::BmpDecoder, gif::GifDecoder, jpeg::JpegDecoder, png::PngDecoder, tiff::TiffDecoder,
    webp::WebPDecoder,
};
use image::{ColorType, DynamicImage, ImageDecoder, ImageError, RgbImage};

/// Resource limits applied to one decode. All are inclusive maxima.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted input, in bytes. Default 64 MiB.
    pub max_file_bytes: u64,
    /// Largest accepted `width × height`. Default 100 megapixels.
    pub max_pixels: u64,
    /// Largest accepted width or height on its own. Default 65 535.
    pub max_side: u32,
    /// Most bytes the decode may allocate for pixel data (decoder output,
    /// RGB conversion, orientation). Default 512 MiB.
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_file_bytes: 64 * 1024 * 1024,
            max_pixels: 100_000_000,
            max_side: 65_535,
            max_alloc_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Behaviour switches for [`decode_image`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Apply the EXIF Orientation tag (JPEG, PNG, WebP, TIFF). Off by
    /// default, because the Python ecosystem ignores it and hashes must
    /// match what partners share.
    pub exif_orient: bool,
}

/// The image formats echotrace decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Gif,
    WebP,
    Bmp,
    Tiff,
}

impl ImageFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
            ImageFormat::Gif => "gif",
            ImageFormat::WebP => "webp",
            ImageFormat::Bmp => "bmp",
            ImageFormat::Tiff => "tiff",
        }
    }
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded image: `rgb` holds `width × height` pixels, 3 bytes each,
/// row-major, no padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedImage {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
    /// The container format the bytes were sniffed as.
    pub format: ImageFormat,
}

/// Why an image could not be decoded. Every variant is an expected outcome
/// for hostile or broken input, not a bug — except `DecoderPanic`.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("empty input")]
    Empty,
    #[error("input is {size} bytes, over the {max}-byte limit")]
    FileTooLarge { size: u64, max: u64 },
    #[error("not a supported image format (JPEG, PNG, GIF, WebP, BMP, TIFF)")]
    UnsupportedFormat,
    #[error("{format} image has zero width or height")]
    ZeroDimensions { format: ImageFormat },
    #[error("{format} image is {width}x{height}, a side exceeds the {max_side}-pixel limit")]
    SideTooLong {
        format: ImageFormat,
        width: u32,
        height: u32,
        max_side: u32,
    },
    #[error("{format} image is {width}x{height}, over the {max_pixels}-pixel limit")]
    TooManyPixels {
        format: ImageFormat,
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("{format} decode needs {needed} bytes, over the {max}-byte allocation limit")]
    AllocationTooLarge {
        format: ImageFormat,
        needed: u64,
        max: u64,
    },
    #[error("{format} file is truncated")]
    Truncated { format: ImageFormat },
    #[error("malformed {format} file: {reason}")]
    Malformed { format: ImageFormat, reason: String },
    #[error("unsupported {format} feature: {reason}")]
    UnsupportedFeature { format: ImageFormat, reason: String },
    #[error("internal error: the {format} decoder panicked")]
    DecoderPanic { format: ImageFormat },
}

/// Identify an image format from its leading bytes.
pub fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageFormat::Gif)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        Some(ImageFormat::WebP)
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Some(ImageFormat::Tiff)
    } else if is_bmp(bytes) {
        Some(ImageFormat::Bmp)
    } else {
        None
    }
}

/// "BM" alone is too weak (plain text can start with it), so also require
/// a known DIB header size at offset 14.
fn is_bmp(bytes: &[u8]) -> bool {
    if !bytes.starts_with(b"BM") {
        return false;
    }
    match bytes.get(14..18) {
        Some(&[a, b, c, d]) => matches!(
            u32::from_le_bytes([a, b, c, d]),
            12 | 16 | 40 | 52 | 56 | 64 | 108 | 124
        ),
        _ => false,
    }
}

/// Decode `bytes` to 8-bit RGB within `limits`.
pub fn decode_image(
    bytes: &[u8],
    limits: &DecodeLimits,
    opts: &DecodeOptions,
) -> Result<DecodedImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > limits.max_file_bytes {
        return Err(DecodeError::FileTooLarge {
            size,
            max: limits.max_file_bytes,
        });
    }
    let format = sniff_format(bytes).ok_or(DecodeError::UnsupportedFormat)?;
    check_structure(format, bytes)?;
    match catch_unwind(AssertUnwindSafe(|| {
        decode_sniffed(format, bytes, limits, opts)
    })) {
        Ok(r) => r,
        Err(_) => Err(DecodeError::DecoderPanic { format }),
    }
}

fn decode_sniffed(
    format: ImageFormat,
    bytes: &[u8],
    limits: &DecodeLimits,
    opts: &DecodeOptions,
) -> Result<DecodedImage, DecodeError> {
    let err = |e: ImageError| map_image_error(format, e);
    let cur = Cursor::new(bytes);
    // Constructing a decoder parses only the header; no pixel buffer yet.
    let decoder: Box<dyn ImageDecoder + '_> = match format {
        ImageFormat::Jpeg => Box::new(JpegDecoder::new(cur).map_err(err)?),
        ImageFormat::Png => {
            Box::new(PngDecoder::with_limits(cur, image_limits(limits)).map_err(err)?)
        }
        ImageFormat::Gif => Box::new(GifDecoder::new(cur).map_err(err)?),
        ImageFormat::WebP => Box::new(WebPDecoder::new(cur).map_err(err)?),
        ImageFormat::Bmp => Box::new(BmpDecoder::new(cur).map_err(err)?),
        ImageFormat::Tiff => Box::new(TiffDecoder::new(cur).map_err(err)?),
    };
    let mut decoder = decoder;
    let (width, height) = decoder.dimensions();
    let color = decoder.color_type();
    let plan = check_limits(format, width, height, color, limits, opts.exif_orient)?;
    decoder.set_limits(image_limits(limits)).map_err(err)?;
    let orientation = if opts.exif_orient {
        // A broken EXIF block must not fail the decode: treat it as absent.
        decoder
            .orientation()
            .unwrap_or(image::metadata::Orientation::NoTransforms)
    } else {
        image::metadata::Orientation::NoTransforms
    };

    let mut raw = vec![0u8; plan.raw_bytes];
    decoder.read_image_boxed(&mut raw).map_err(err)?;
    let rgb = to_rgb8(format, color, raw)?;

    let mut img = RgbImage::from_raw(width, height, rgb).ok_or(DecodeError::Malformed {
        format,
        reason: "decoded buffer does not match the dimensions".into(),
    })?;
    if orientation != image::metadata::Orientation::NoTransforms {
        let mut dynimg = DynamicImage::ImageRgb8(img);
        dynimg.apply_orientation(orientation);
        img = dynimg.into_rgb8();
    }
    let (width, height) = img.dimensions();
    Ok(DecodedImage {
        width,
        height,
        rgb: img.into_raw(),
        format,
    })
}

/// The allocation budget handed to the `image` decoders. Width and height
/// are deliberately not set here: [`check_limits`] checks them itself so
/// the caller gets a precise typed error rather than a generic one.
fn image_limits(limits: &DecodeLimits) -> image::Limits {
    let mut l = image::Limits::default();
    l.max_alloc = Some(limits.max_alloc_bytes);
    l
}

struct AllocPlan {
    raw_bytes: usize,
}

/// Check the header's claims against the limits, and work out what the
/// decode will allocate, before allocating anything.
fn check_limits(
    format: ImageFormat,
    width: u32,
    height: u32,
    color: ColorType,
    limits: &DecodeLimits,
    exif_orient: bool,
) -> Result<AllocPlan, DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::ZeroDimensions { format });
    }
    if width > limits.max_side || height > limits.max_side {
        return Err(DecodeError::SideTooLong {
            format,
            width,
            height,
            max_side: limits.max_side,
        });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(DecodeError::TooManyPixels {
            format,
            width,
            height,
            max_pixels: limits.max_pixels,
        });
    }
    let raw = pixels.saturating_mul(u64::from(color.bytes_per_pixel()));
    let rgb = pixels.saturating_mul(3);
    // Decoder output, plus a separate RGB buffer unless the output already
    // is RGB8, plus a rotated copy when orientation may be applied.
    let mut needed = raw;
    if color != ColorType::Rgb8 {
        needed = needed.saturating_add(rgb);
    }
    if exif_orient {
        needed = needed.saturating_add(rgb);
    }
    if needed > limits.max_alloc_bytes {
        return Err(DecodeError::AllocationTooLarge {
            format,
            needed,
            max: limits.max_alloc_bytes,
        });
    }
    let raw_bytes = usize::try_from(raw).map_err(|_| DecodeError::AllocationTooLarge {
        format,
        needed,
        max: limits.max_alloc_bytes,
    })?;
    Ok(AllocPlan { raw_bytes })
}

/// Convert the decoder's native output to RGB8 the way Pillow does.
fn to_rgb8(format: ImageFormat, color: ColorType, raw: Vec<u8>) -> Result<Vec<u8>, DecodeError> {
    // 16-bit samples arrive in native endianness.
    fn u16_at(raw: &[u8], i: usize) -> u16 {
        match raw.get(i..i + 2) {
            Some(&[a, b]) => u16::from_ne_bytes([a, b]),
            _ => 0,
        }
    }
    fn f32_at(raw: &[u8], i: usize) -> f32 {
        match raw.get(i..i + 4) {
            Some(&[a, b, c, d]) => f32::from_ne_bytes([a, b, c, d]),
            _ => 0.0,
        }
    }
    fn f32_to_u8(v: f32) -> u8 {
        // NaN maps to 0 through the saturating float→int cast.
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    }
    // Pillow's ";16B" raw modes keep the most significant byte.
    fn hi(v: u16) -> u8 {
        (v >> 8) as u8
    }
    // Pillow opens 16-bit greyscale as "I;16"; converting that to RGB clips
    // at 255 rather than rescaling.
    fn clip(v: u16) -> u8 {
        u8::try_from(v).unwrap_or(u8::MAX)
    }

    let bpp = usize::from(color.bytes_per_pixel());
    if bpp == 0 {
        return Err(DecodeError::UnsupportedFeature {
            format,
            reason: format!("colour type {color:?}"),
        });
    }
    let pixels = raw.len() / bpp;
    if color == ColorType::Rgb8 {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(pixels * 3);
    let px = raw.chunks_exact(bpp);
    match color {
        ColorType::L8 | ColorType::La8 => {
            for p in px {
                let l = p.first().copied().unwrap_or(0);
                out.extend_from_slice(&[l, l, l]);
            }
        }
        ColorType::Rgba8 => {
            for p in px {
                out.extend_from_slice(p.get(..3).unwrap_or(&[0, 0, 0]));
            }
        }
        ColorType::L16 => {
            for p in px {
                let l = clip(u16_at(p, 0));
                out.extend_from_slice(&[l, l, l]);
            }
        }
        ColorType::La16 => {
            for p in px {
                let l = hi(u16_at(p, 0));
                out.extend_from_slice(&[l, l, l]);
            }
        }
        ColorType::Rgb16 | ColorType::Rgba16 => {
            for p in px {
                out.extend_from_slice(&[hi(u16_at(p, 0)), hi(u16_at(p, 2)), hi(u16_at(p, 4))]);
            }
        }
        ColorType::Rgb32F | ColorType::Rgba32F => {
            for p in px {
                out.extend_from_slice(&[
                    f32_to_u8(f32_at(p, 0)),
                    f32_to_u8(f32_at(p, 4)),
                    f32_to_u8(f32_at(p, 8)),
                ]);
            }
        }
        other => {
            return Err(DecodeError::UnsupportedFeature {
                format,
                reason: format!("colour type {other:?}"),
            })
        }
    }
    Ok(out)
}

fn map_image_error(format: ImageFormat, e: ImageError) -> DecodeError {
    match e {
        ImageError::Limits(l) => match l.kind() {
            image::error::LimitErrorKind::DimensionError => DecodeError::Malformed {
                format,
                reason: format!("dimensions over the limit: {l}"),
            },
            _ => DecodeError::AllocationTooLarge {
                format,
                needed: 0,
                max: 0,
            },
        },
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Truncated { format }
        }
        ImageError::Unsupported(u) => DecodeError::UnsupportedFeature {
            format,
            reason: u.to_string(),
        },
        other => {
            let reason = other.to_string();
            let lower = reason.to_ascii_lowercase();
            if lower.contains("eof")
                || lower.contains("end of file")
                || lower.contains("unexpected end")
                || lower.contains("truncat")
                || lower.contains("no more data")
            {
                DecodeError::Truncated { format }
            } else {
                DecodeError::Malformed { format, reason }
            }
        }
    }
}

/// Cheap structural checks that catch truncation (and some corruption)
/// before a decoder spends time on pixels.
fn check_structure(format: ImageFormat, bytes: &[u8]) -> Result<(), DecodeError> {
    match format {
        ImageFormat::Jpeg => check_jpeg(bytes),
        ImageFormat::Png => check_png(bytes),
        ImageFormat::WebP => check_riff(bytes),
        ImageFormat::Gif | ImageFormat::Bmp | ImageFormat::Tiff => Ok(()),
    }
}

/// Walk JPEG marker segments and entropy-coded data up to EOI.
fn check_jpeg(bytes: &[u8]) -> Result<(), DecodeError> {
    let format = ImageFormat::Jpeg;
    let truncated = DecodeError::Truncated { format };
    let mut i = 2usize; // after SOI
    loop {
        // Find the next 0xFF (libjpeg tolerates stray bytes before a marker).
        let ff = bytes
            .get(i..)
            .and_then(|rest| rest.iter().position(|&b| b == 0xFF))
            .ok_or_else(|| truncated.clone())?;
        i += ff;
        // Skip fill bytes.
        while bytes.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *bytes.get(i).ok_or_else(|| truncated.clone())?;
        i += 1;
        match marker {
            0xD9 => return Ok(()), // EOI
            0x00 | 0x01 | 0xD0..=0xD7 => continue,
            _ => {
                let len = match bytes.get(i..i + 2) {
                    Some(&[a, b]) => usize::from(u16::from_be_bytes([a, b])),
                    _ => return Err(truncated),
                };
                if len < 2 {
                    return Err(DecodeError::Malformed {
                        format,
                        reason: format!("segment 0xFF{marker:02X} has length {len}"),
                    });
                }
                i = i.checked_add(len).ok_or_else(|| truncated.clone())?;
                if i > bytes.len() {
                    return Err(truncated);
                }
                if marker == 0xDA {
                    // Entropy-coded data: ends at a 0xFF not followed by a
                    // stuffed zero, a restart marker or another fill byte.
                    loop {
                        let ff = bytes
                            .get(i..)
                            .and_then(|rest| rest.iter().position(|&b| b == 0xFF))
                            .ok_or_else(|| truncated.clone())?;
                        i += ff;
                        match bytes.get(i + 1) {
                            None => return Err(truncated),
                            Some(0x00) | Some(0xD0..=0xD7) => i += 2,
                            Some(0xFF) => i += 1,
                            Some(_) => break,
                        }
                    }
                }
            }
        }
    }
}

/// Walk PNG chunks up to IEND.
fn check_png(bytes: &[u8]) -> Result<(), DecodeError> {
    let format = ImageFormat::Png;
    let mut i = 8usize;
    loop {
        let (len, kind) = match bytes.get(i..i + 8) {
            Some(&[a, b, c, d, e, f, g, h]) => (u32::from_be_bytes([a, b, c, d]), [e, f, g, h]),
            _ => return Err(DecodeError::Truncated { format }),
        };
        if len > 0x7FFF_FFFF {
            return Err(DecodeError::Malformed {
                format,
                reason: format!("chunk length {len} exceeds 2^31-1"),
            });
        }
        // length + type + data + CRC
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| i.checked_add(12)?.checked_add(l))
            .ok_or(DecodeError::Truncated { format })?;
        if end > bytes.len() {
            return Err(DecodeError::Truncated { format });
        }
        if &kind == b"IEND" {
            return Ok(());
        }
        i = end;
    }
}

/// A RIFF container must hold as many bytes as its header says.
fn check_riff(bytes: &[u8]) -> Result<(), DecodeError> {
    let format = ImageFormat::WebP;
    let size = match bytes.get(4..8) {
        Some(&[a, b, c, d]) => u64::from(u32::from_le_bytes([a, b, c, d])),
        _ => return Err(DecodeError::Truncated { format }),
    };
    let have = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size.saturating_add(8) > have {
        return Err(DecodeError::Truncated { format });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_magic() {
        assert_eq!(sniff_format(b"\xFF\xD8\xFF\xE0"), Some(ImageFormat::Jpeg));
        assert_eq!(
            sniff_format(b"\x89PNG\r\n\x1a\n...."),
            Some(ImageFormat::Png)
        );
        assert_eq!(sniff_format(b"GIF89a...."), Some(ImageFormat::Gif));
        assert_eq!(
            sniff_format(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageFormat::WebP)
        );
        assert_eq!(sniff_format(b"II*\0...."), Some(ImageFormat::Tiff));
        assert_eq!(sniff_format(b"MM\0*...."), Some(ImageFormat::Tiff));
        assert_eq!(sniff_format(b"BM is not a bitmap header"), None);
        let mut bmp = b"BM".to_vec();
        bmp.extend_from_slice(&[0; 12]);
        bmp.extend_from_slice(&40u32.to_le_bytes());
        assert_eq!(sniff_format(&bmp), Some(ImageFormat::Bmp));
        assert_eq!(sniff_format(b"hello"), None);
        assert_eq!(sniff_format(b""), None);
    }

    #[test]
    fn small_png_round_trip_and_grey_expansion() {
        let mut png = Vec::new();
        let grey = image::GrayImage::from_fn(5, 3, |x, y| image::Luma([(x * 40 + y) as u8]));
        grey.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("encode: {e}"));
        let img = decode_image(&png, &DecodeLimits::default(), &DecodeOptions::default())
            .unwrap_or_else(|e| panic!("decode: {e}"));
        assert_eq!(
            (img.width, img.height, img.format),
            (5, 3, ImageFormat::Png)
        );
        assert_eq!(img.rgb.len(), 5 * 3 * 3);
        for (i, p) in img.rgb.chunks_exact(3).enumerate() {
            let (x, y) = (i as u32 % 5, i as u32 / 5);
            let v = (x * 40 + y) as u8;
            assert_eq!(p, [v, v, v]);
        }
    }

    #[test]
    fn sixteen_bit_conversions_follow_pillow() {
        let raw: Vec<u8> = [0x1234u16, 0x00ff, 0x0100]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        let l16 = to_rgb8(ImageFormat::Png, ColorType::L16, raw.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l16, [255, 255, 255, 255, 255, 255, 255, 255, 255]);
        let rgb16 =
            to_rgb8(ImageFormat::Png, ColorType::Rgb16, raw).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rgb16, [0x12, 0x00, 0x01]);
    }

    #[test]
    fn limits_checked_before_allocation() {
        let limits = DecodeLimits {
            max_pixels: 100,
            ..DecodeLimits::default()
        };
        let r = check_limits(ImageFormat::Png, 11, 10, ColorType::Rgb8, &limits, false);
        assert!(matches!(r, Err(DecodeError::TooManyPixels { .. })));
        let r = check_limits(ImageFormat::Png, 0, 10, ColorType::Rgb8, &limits, false);
        assert!(matches!(r, Err(DecodeError::ZeroDimensions { .. })));
        let limits = DecodeLimits {
            max_alloc_bytes: 1000,
            ..DecodeLimits::default()
        };
        // 10x10 RGBA16 = 800 bytes raw + 300 RGB > 1000
        let r = check_limits(ImageFormat::Png, 10, 10, ColorType::Rgba16, &limits, false);
        assert!(matches!(
            r,
            Err(DecodeError::AllocationTooLarge { needed: 1100, .. })
        ));
    }
}
