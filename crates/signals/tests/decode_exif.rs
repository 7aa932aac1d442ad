//! EXIF orientation.
//!
//! * Synthetic: one upright picture stored four ways (tags 1, 3, 6, 8, with
//!   the pixels rotated so that applying the tag shows it upright), JPEG
//!   encoded with a hand-written EXIF APP1. With `exif_orient` the four hash
//!   within a small measured distance; without it they are far apart.
//! * Fixtures: `exif-rotn-{1,3,6,8}.jpg` are four *different* photos of one
//!   desk, each shot in another orientation (so even upright they do not
//!   match each other). For them we check that orientation is applied
//!   exactly: the oriented pixels are the raw pixels rotated as the tag says,
//!   and the default (Python-compatible) decode ignores the tag.

use echotrace_signals::decode::{decode_image, DecodeLimits, DecodeOptions, DecodedImage};
use echotrace_signals::pdq::{PdqHash, PdqHasher, PDQ_MATCH_THRESHOLD};
use image::{imageops, Rgb, RgbImage};
use std::path::PathBuf;

/// Largest distance allowed between the oriented synthetic hashes. The
/// measured maximum is printed by the test; only JPEG rounding separates
/// the four files, since every rotation here is lossless.
const ORIENTED_MAX: u32 = 4;

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

fn decode(bytes: &[u8], exif_orient: bool) -> DecodedImage {
    decode_image(
        bytes,
        &DecodeLimits::default(),
        &DecodeOptions { exif_orient },
    )
    .unwrap_or_else(|e| panic!("decode: {e}"))
}

fn pdq(img: &DecodedImage) -> PdqHash {
    PdqHasher::new()
        .hash_rgb8(&img.rgb, img.width, img.height)
        .unwrap_or_else(|e| panic!("pdq: {e}"))
        .hash
}

/// An asymmetric test card: gradients plus a few blocks off-centre.
fn upright() -> RgbImage {
    RgbImage::from_fn(320, 240, |x, y| {
        let block = (x > 40 && x < 120 && y > 30 && y < 90) || (x > 200 && y > 150 && y < 220);
        let v = if block {
            230
        } else {
            ((x * 255 / 320 + y * 96 / 240) % 256) as u8
        };
        Rgb([v, (255 - v) / 2, ((x ^ y) & 0x3f) as u8 + v / 2])
    })
}

/// JPEG with an EXIF APP1 carrying Orientation = `tag`, right after SOI.
fn jpeg_with_orientation(img: &RgbImage, tag: u8) -> Vec<u8> {
    let mut jpg = Vec::new();
    let r = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 95).encode_image(img);
    assert!(r.is_ok(), "{r:?}");
    let mut tiff = b"MM\0*\0\0\0\x08\0\x01".to_vec();
    tiff.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1, 0, tag, 0, 0]);
    tiff.extend_from_slice(&[0, 0, 0, 0]);
    let mut app1 = vec![0xFF, 0xE1];
    let len = (2 + 6 + tiff.len()) as u16;
    app1.extend_from_slice(&len.to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&tiff);
    let mut out = jpg[..2].to_vec();
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpg[2..]);
    out
}

#[test]
fn synthetic_orientations_hash_alike_only_when_applied() {
    let up = upright();
    // Stored pixels: rotate by the inverse of what the tag asks for.
    let stored = [
        (1u8, up.clone()),
        (3, imageops::rotate180(&up)),
        (6, imageops::rotate270(&up)),
        (8, imageops::rotate90(&up)),
    ];
    let files: Vec<_> = stored
        .iter()
        .map(|(t, img)| (*t, jpeg_with_orientation(img, *t)))
        .collect();
    let on: Vec<_> = files.iter().map(|(_, b)| decode(b, true)).collect();
    let off: Vec<_> = files.iter().map(|(_, b)| decode(b, false)).collect();
    for img in &on {
        assert_eq!((img.width, img.height), (320, 240), "oriented dimensions");
    }
    assert_eq!(
        (off[2].width, off[2].height),
        (240, 320),
        "raw tag-6 dimensions"
    );
    let (hon, hoff): (Vec<_>, Vec<_>) =
        (on.iter().map(pdq).collect(), off.iter().map(pdq).collect());
    let mut worst = 0;
    for i in 0..4 {
        for j in i + 1..4 {
            let (d_on, d_off) = (hon[i].distance(&hon[j]), hoff[i].distance(&hoff[j]));
            println!(
                "tag {} vs {}: oriented {d_on}, raw {d_off}",
                files[i].0, files[j].0
            );
            worst = worst.max(d_on);
            assert!(
                d_off > PDQ_MATCH_THRESHOLD,
                "raw tags {} and {} match",
                files[i].0,
                files[j].0
            );
        }
    }
    println!("synthetic: worst oriented distance {worst}");
    assert!(worst <= ORIENTED_MAX, "oriented hashes up to {worst} apart");
}

fn px(img: &DecodedImage, x: u32, y: u32) -> &[u8] {
    let i = ((y * img.width + x) * 3) as usize;
    &img.rgb[i..i + 3]
}

#[test]
fn fixture_orientation_is_applied_exactly_and_ignored_by_default() {
    let mut raw_hashes = Vec::new();
    for tag in [1u8, 3, 6, 8] {
        let p = fixtures().join(format!("pdq/images/exif-rotn/exif-rotn-{tag}.jpg"));
        let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let raw = decode(&bytes, false);
        let on = decode(&bytes, true);
        assert_eq!(
            (raw.width, raw.height),
            (4032, 3024),
            "stored pixels are landscape"
        );
        let (w, h) = (raw.width, raw.height);
        // oriented(x, y) = raw(f(x, y)) for a grid of sample points.
        let map = |x: u32, y: u32| -> (u32, u32) {
            match tag {
                1 => (x, y),
                3 => (w - 1 - x, h - 1 - y),
                6 => (y, h - 1 - x), // rotate 90° clockwise
                _ => (w - 1 - y, x), // 8: rotate 270° clockwise
            }
        };
        let expect_dims = if tag == 6 || tag == 8 { (h, w) } else { (w, h) };
        assert_eq!(
            (on.width, on.height),
            expect_dims,
            "tag {tag} oriented dimensions"
        );
        for sy in 0..20 {
            for sx in 0..20 {
                let (x, y) = (sx * (on.width - 1) / 19, sy * (on.height - 1) / 19);
                let (rx, ry) = map(x, y);
                assert_eq!(px(&on, x, y), px(&raw, rx, ry), "tag {tag} at ({x},{y})");
            }
        }
        // The oriented hash is (nearly) the matching dihedral variant of the
        // raw image's hash.
        let dih = PdqHasher::new()
            .hash_rgb8_dihedral(&raw.rgb, raw.width, raw.height)
            .unwrap_or_else(|e| panic!("{e}"))
            .hashes;
        let oriented = pdq(&on);
        let nearest = dih
            .named()
            .iter()
            .map(|(n, hsh)| (hsh.distance(&oriented), *n))
            .min()
            .unwrap_or((256, ""));
        println!(
            "exif-rotn-{tag}: oriented hash nearest raw dihedral {} at {}",
            nearest.1, nearest.0
        );
        assert!(nearest.0 <= ORIENTED_MAX, "tag {tag}: {nearest:?}");
        raw_hashes.push(pdq(&raw));
    }
    // The default decode ignores the tag: hashes equal the Python pipeline's.
    let csv = std::fs::read_to_string(fixtures().join("pdq/expected.csv"))
        .unwrap_or_else(|e| panic!("{e}"));
    for (tag, h) in [1, 3, 6, 8].iter().zip(&raw_hashes) {
        let want = format!("images/exif-rotn/exif-rotn-{tag}.jpg,python-pil-fullres,{h}");
        assert!(csv.contains(&want), "tag {tag}: {h} not in expected.csv");
    }
}
