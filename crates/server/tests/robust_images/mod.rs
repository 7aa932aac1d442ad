//! Benign test pictures for the robust-matching tests, shared by
//! `crates/server/tests/robust_api.rs` and (through `#[path]`)
//! `crates/cli/tests/cli_bank_rederive.rs`: the fixture photo, its
//! encodings, and a logo stamp.
#![allow(dead_code)] // each test file uses a subset

use std::path::PathBuf;

use image::{Rgb, RgbImage};

/// `../shared/fixtures`, failing loudly when it is absent.
pub fn fixtures() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    assert!(
        p.is_dir(),
        "{} is missing: the robust-matching tests need ../shared/fixtures",
        p.display()
    );
    p
}

/// The bridge photo of Meta's PDQ fixtures at 480×300.
pub fn photo() -> RgbImage {
    let bytes = std::fs::read(fixtures().join("pdq/images/bridge-mods/aaa-orig.jpg")).unwrap();
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    image::imageops::resize(&img, 480, 300, image::imageops::FilterType::Triangle)
}

pub fn png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

pub fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(img)
        .unwrap();
    out
}

/// A logo stamp `s` pixels wide at `(x, y)`: a white disc with a red ring
/// and a red square inside (bench/robust `logo`). Over one corner, the
/// whole picture no longer matches; its parts still do.
pub fn stamp(img: &RgbImage, x: u32, y: u32, s: u32) -> RgbImage {
    let mut out = img.clone();
    let (c, r) = (s as f32 / 2.0, s as f32 / 2.0);
    for (dx, dy) in (0..s * s).map(|k| (k % s, k / s)) {
        let d = ((dx as f32 + 0.5 - c).powi(2) + (dy as f32 + 0.5 - c).powi(2)).sqrt();
        let square = (s / 4..3 * s / 4).contains(&dx) && (s / 3..2 * s / 3).contains(&dy);
        let colour = if d > r {
            continue;
        } else if d > r * 0.85 || square {
            [200, 0, 0]
        } else {
            [255, 255, 255]
        };
        out.put_pixel(x + dx, y + dy, Rgb(colour));
    }
    out
}

#[path = "blocks.rs"]
mod blocks_gen;
#[allow(unused_imports)] // each test file uses a subset
pub use blocks_gen::blocks;

/// JPEG at quality 85 (as `bench collect` writes its photos).
pub fn jpeg85(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(img)
        .unwrap();
    out
}
