//! Helpers shared by the robust-matching harnesses (`robust`, `robust_crops`,
//! `robust_cost`, `robust_detect`, `robust_probe`), included with `#[path]`.
#![allow(dead_code)] // each harness uses a subset

use std::path::Path;

use anyhow::Context;
use echotrace_signals::decode::{decode_image, DecodeLimits, DecodeOptions};

/// Decoded interleaved RGB8, width, height.
pub fn decode(path: &Path) -> anyhow::Result<(Vec<u8>, u32, u32)> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    let img = decode_image(&bytes, &DecodeLimits::default(), &DecodeOptions::default())?;
    Ok((img.rgb, img.width, img.height))
}

/// `a,b,c` in per cent → fractions (unparsable entries skipped).
pub fn parse_list(s: &str) -> Vec<f32> {
    s.split(',')
        .filter_map(|v| v.trim().parse::<f32>().ok())
        .map(|v| v / 100.0)
        .collect()
}

/// `l,t,r,b;l,t,r,b;…` in per cent → crops (entries without 4 numbers,
/// e.g. "none", skipped).
pub fn parse_crops(s: &str) -> Vec<[f32; 4]> {
    s.split(';')
        .filter_map(|c| {
            let v = parse_list(c);
            (v.len() == 4).then(|| [v[0], v[1], v[2], v[3]])
        })
        .collect()
}
