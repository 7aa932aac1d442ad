//! A flat-block graphic, shared (through `#[path]`) by the robust-matching
//! tests and `bench collect`'s generated photos, so the pairs the bench
//! found are the ones the tests check.

use image::{Rgb, RgbImage};

/// A flat-block graphic (`bench collect`'s generated photo): 8 × 6 blocks
/// of 80 px in random colours under a soft wave, 640×480. Its flat bands
/// fool the blurred-fill detector on both sides, and two such graphics of
/// different seeds share the wave's frequencies one time in 35.
pub fn blocks(seed: u64) -> RgbImage {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let colours: Vec<[f32; 3]> = (0..48)
        .map(|_| {
            let v = next();
            [
                (v & 0xff) as f32,
                ((v >> 8) & 0xff) as f32,
                ((v >> 16) & 0xff) as f32,
            ]
        })
        .collect();
    let (fa, fb) = (2.0 + (next() % 7) as f32, 3.0 + (next() % 5) as f32);
    RgbImage::from_fn(640, 480, |px, py| {
        let b = colours[(py / 80 * 8 + px / 80) as usize];
        let (u, v) = (px as f32 / 640.0, py as f32 / 480.0);
        let w =
            (u * fa * std::f32::consts::TAU).sin() * (v * fb * std::f32::consts::TAU).cos() * 50.0;
        let c = |k: f32| (k * 0.7 + w + 40.0).clamp(0.0, 255.0) as u8;
        Rgb([c(b[0]), c(b[1]), c(b[2])])
    })
}
