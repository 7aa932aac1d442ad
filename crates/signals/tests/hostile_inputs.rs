//! Hostile input: every case must come back as a typed `DecodeError`
//! within 100 ms, and never as a panic.

use echotrace_signals::content::{hash_content, HashError, HashOptions};
use echotrace_signals::decode::{
    decode_image, sniff_format, DecodeError, DecodeLimits, DecodeOptions, DecodedImage, ImageFormat,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BUDGET: Duration = Duration::from_millis(100);

fn fixtures() -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ));
    assert!(
        p.is_dir(),
        "test fixtures missing: ../shared/fixtures (expected at {}) is missing",
        p.display()
    );
    p
}

fn fixture(rel: &str) -> Vec<u8> {
    let p = fixtures().join("pdq/images").join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Decode with default limits and time it.
fn timed(bytes: &[u8]) -> (Result<DecodedImage, DecodeError>, Duration) {
    let t = Instant::now();
    let r = decode_image(bytes, &DecodeLimits::default(), &DecodeOptions::default());
    (r, t.elapsed())
}

fn expect_fast_error(what: &str, bytes: &[u8]) -> DecodeError {
    let (r, dt) = timed(bytes);
    let e = match r {
        Ok(img) => panic!(
            "{what}: decoded to {}x{} instead of failing",
            img.width, img.height
        ),
        Err(e) => e,
    };
    assert!(
        !matches!(e, DecodeError::DecoderPanic { .. }),
        "{what}: decoder panicked"
    );
    assert!(
        dt < BUDGET,
        "{what}: took {dt:?} (> {BUDGET:?}) to fail with {e}"
    );
    e
}

#[test]
fn zero_byte_file() {
    assert_eq!(expect_fast_error("empty", b""), DecodeError::Empty);
    assert_eq!(
        hash_content(b"", &HashOptions::default()),
        Err(HashError::Empty)
    );
}

#[test]
fn truncated_fixtures_fail_fast_with_typed_errors() {
    let files = [
        "bridge-mods/aaa-orig.jpg",
        "exif-rotn/exif-rotn-1.jpg", // 4032x3024
        "misc/small.jpg",            // progressive
        "misc/wee.jpg",
        "misc/c.png",
        "misc/I16.png",
        "modes/P.png",
        "modes/RGBA.png",
        "modes/F.webp",
        "modes/PA.webp",
        "modes/CMYK.jpg",
    ];
    let mut cases = 0;
    for f in files {
        let bytes = fixture(f);
        // JPEGs may carry trailers after EOI (exif-rotn has a Samsung
        // "SEFT" block); cutting those off leaves a valid image, so the
        // cuts below are taken within the image data proper.
        let n = if f.ends_with(".jpg") {
            bytes
                .windows(2)
                .rposition(|w| w == [0xFF, 0xD9])
                .map_or(bytes.len(), |p| p + 2)
        } else {
            bytes.len()
        };
        // Complete file decodes.
        let (ok, _) = timed(&bytes);
        assert!(ok.is_ok(), "{f}: complete file should decode: {ok:?}");
        let mut cuts = vec![
            1,
            2,
            3,
            8,
            16,
            33,
            100,
            1000,
            n / 4,
            n / 2,
            3 * n / 4,
            n - 2,
            n - 1,
        ];
        cuts.retain(|&c| c > 0 && c < n);
        for cut in cuts {
            let e = expect_fast_error(&format!("{f} cut at {cut}/{n}"), &bytes[..cut]);
            if cut >= 16 {
                assert!(
                    matches!(
                        e,
                        DecodeError::Truncated { .. } | DecodeError::Malformed { .. }
                    ),
                    "{f} cut at {cut}: unexpected error {e:?}"
                );
            }
            cases += 1;
        }
        // Cutting past the headers is detected as truncation specifically.
        let e = expect_fast_error(&format!("{f} cut at n-1"), &bytes[..n - 1]);
        assert!(matches!(e, DecodeError::Truncated { .. }), "{f}: {e:?}");
    }
    assert!(cases > 100);
}

/// xorshift64*: deterministic pseudo-random bytes without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn random_bytes() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..500 {
        let len = 1 + (rng.next() % 70_000) as usize;
        let mut b = rng.bytes(len);
        // Make sure the plain-random case really is unrecognised.
        if sniff_format(&b).is_some() {
            b[0] = b'x';
        }
        let e = expect_fast_error(&format!("random #{i} ({len} bytes)"), &b);
        assert_eq!(e, DecodeError::UnsupportedFormat);
    }
}

#[test]
fn random_bytes_behind_valid_magic() {
    let magics: [&[u8]; 7] = [
        b"\xFF\xD8\xFF\xE0",
        b"\x89PNG\r\n\x1a\n",
        b"GIF89a",
        b"RIFF\x00\x10\x00\x00WEBPVP8 ",
        b"II*\0",
        b"MM\0*",
        b"BM\0\0\0\0\0\0\0\0\0\0\0\0\x28\0\0\0",
    ];
    let mut rng = Rng(42);
    for m in magics {
        for i in 0..200 {
            let len = (rng.next() % 5000) as usize;
            let mut b = m.to_vec();
            b.extend(rng.bytes(len));
            let (r, dt) = timed(&b);
            assert!(dt < BUDGET, "{m:?} + random #{i}: {dt:?}");
            // Random data may, rarely, be a valid tiny image; what must not
            // happen is a panic or a slow decode.
            if let Err(e) = r {
                assert!(!matches!(e, DecodeError::DecoderPanic { .. }), "{m:?} #{i}");
            }
        }
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A structurally valid PNG (correct CRCs) whose IHDR claims `w`×`h` RGB.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    chunk(&mut png, b"IHDR", &ihdr);
    // A tiny zlib stream of zeros (empty stored block) as IDAT.
    chunk(
        &mut png,
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01,
        ],
    );
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn crc32_known_vector() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn png_header_claiming_huge_dimensions() {
    let e = expect_fast_error("100000x100000 PNG", &png_claiming(100_000, 100_000));
    assert!(
        matches!(
            e,
            DecodeError::SideTooLong {
                width: 100_000,
                height: 100_000,
                ..
            }
        ),
        "{e:?}"
    );
    // Within the side limit but 3.6 gigapixels.
    let e = expect_fast_error("60000x60000 PNG", &png_claiming(60_000, 60_000));
    assert!(
        matches!(
            e,
            DecodeError::TooManyPixels {
                width: 60_000,
                height: 60_000,
                ..
            }
        ),
        "{e:?}"
    );
    // Under the pixel limit but over the allocation budget.
    let limits = DecodeLimits {
        max_alloc_bytes: 1 << 20,
        ..DecodeLimits::default()
    };
    let r = decode_image(
        &png_claiming(1000, 1000),
        &limits,
        &DecodeOptions::default(),
    );
    assert!(
        matches!(r, Err(DecodeError::AllocationTooLarge { .. })),
        "{r:?}"
    );
    // Zero-width header.
    let e = expect_fast_error("0x10 PNG", &png_claiming(0, 10));
    assert!(
        matches!(
            e,
            DecodeError::ZeroDimensions { .. } | DecodeError::Malformed { .. }
        ),
        "{e:?}"
    );
}

/// Split a GIF into (everything before the first frame, the first frame's
/// blocks: extensions + image descriptor + data).
fn split_gif(gif: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let packed = gif[10];
    let mut i = 13;
    if packed & 0x80 != 0 {
        i += 3 * (1 << ((packed & 7) + 1));
    }
    let head_end = i;
    let mut frame_start = None;
    loop {
        match gif[i] {
            0x21 => {
                // An application extension (looping) belongs to the header.
                if gif[i + 1] != 0xFF && frame_start.is_none() {
                    frame_start = Some(i);
                }
                i += 2;
                while gif[i] != 0 {
                    i += 1 + gif[i] as usize;
                }
                i += 1;
            }
            0x2C => {
                let start = frame_start.unwrap_or(i);
                let flags = gif[i + 9];
                i += 10;
                if flags & 0x80 != 0 {
                    i += 3 * (1 << ((flags & 7) + 1));
                }
                i += 1; // LZW minimum code size
                while gif[i] != 0 {
                    i += 1 + gif[i] as usize;
                }
                i += 1;
                let head = gif[..start.min(head_end.max(start))].to_vec();
                return (head, gif[start..i].to_vec());
            }
            b => panic!("unexpected GIF block 0x{b:02x} at {i}"),
        }
    }
}

#[test]
fn gif_with_thousands_of_frames_decodes_first_frame_only() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame, Rgba, RgbaImage};
    let side = 256;
    let first = RgbaImage::from_fn(side, side, |x, y| {
        Rgba([
            if (x / 32 + y / 32) % 2 == 0 { 200 } else { 30 },
            90,
            60,
            255,
        ])
    });
    let mut one = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut one);
        let r = enc.encode_frame(Frame::from_parts(
            first,
            0,
            0,
            Delay::from_numer_denom_ms(10, 1),
        ));
        assert!(r.is_ok(), "{r:?}");
    }
    let (head, frame) = split_gif(&one);
    let frames = 5000;
    let mut gif = head;
    for _ in 0..frames {
        gif.extend_from_slice(&frame);
    }
    gif.push(0x3B);
    let (r, dt) = timed(&gif);
    let img = r.unwrap_or_else(|e| panic!("{frames}-frame GIF: {e}"));
    assert_eq!((img.width, img.height), (side, side));
    // The checkerboard's first pixel is the red-ish square, alpha dropped.
    assert_eq!(&img.rgb[..3], &[200, 90, 60]);
    assert!(
        dt < BUDGET,
        "{frames}-frame GIF ({} bytes) took {dt:?}",
        gif.len()
    );
    println!(
        "{frames}-frame GIF, {} bytes: decoded first frame in {dt:?}",
        gif.len()
    );

    // Truncated inside the first frame's data: a typed error, fast.
    let cut = gif.len().min(frame.len() / 2 + 20);
    expect_fast_error("GIF cut in first frame", &gif[..cut]);
}

#[test]
fn limits_are_configurable() {
    let bytes = fixture("labelme/q0003.jpg"); // 256x256
    let tight = DecodeLimits {
        max_pixels: 256 * 255,
        ..DecodeLimits::default()
    };
    let r = decode_image(&bytes, &tight, &DecodeOptions::default());
    assert!(matches!(r, Err(DecodeError::TooManyPixels { .. })), "{r:?}");
    let tight = DecodeLimits {
        max_file_bytes: 100,
        ..DecodeLimits::default()
    };
    let r = decode_image(&bytes, &tight, &DecodeOptions::default());
    assert!(
        matches!(r, Err(DecodeError::FileTooLarge { max: 100, .. })),
        "{r:?}"
    );
    let ok = decode_image(&bytes, &DecodeLimits::default(), &DecodeOptions::default());
    assert!(matches!(
        ok,
        Ok(DecodedImage {
            width: 256,
            height: 256,
            format: ImageFormat::Jpeg,
            ..
        })
    ));
}
