//! Every supported container decodes to the right RGB8 pixels: images are
//! generated here, encoded with the `image` crate's encoders in each
//! format / colour type, and decoded back through `decode_image`.
//!
//! Set `ECHOTRACE_WRITE_SEEDS=<dir>` to also write the encoded files there
//! (used to seed the `decode_hash` fuzz corpus with small inputs).

use echotrace_signals::decode::{decode_image, DecodeLimits, DecodeOptions, ImageFormat};
use image::{DynamicImage, ImageFormat as F, Rgb, RgbImage};
use std::io::Cursor;

fn card() -> RgbImage {
    RgbImage::from_fn(37, 23, |x, y| {
        Rgb([(x * 7) as u8, (y * 11) as u8, ((x * y) % 251) as u8])
    })
}

fn encode(img: &DynamicImage, f: F) -> Vec<u8> {
    let mut out = Vec::new();
    let r = img.write_to(&mut Cursor::new(&mut out), f);
    assert!(r.is_ok(), "encode {f:?}: {r:?}");
    out
}

fn check(name: &str, bytes: &[u8], want_format: ImageFormat, want: &RgbImage, tolerance: u8) {
    if let Ok(dir) = std::env::var("ECHOTRACE_WRITE_SEEDS") {
        let _ = std::fs::write(
            std::path::Path::new(&dir).join(format!("gen-{name}")),
            bytes,
        );
    }
    let img = decode_image(bytes, &DecodeLimits::default(), &DecodeOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(img.format, want_format, "{name}");
    assert_eq!((img.width, img.height), want.dimensions(), "{name}");
    let worst = img
        .rgb
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap_or(0);
    assert!(
        worst <= tolerance,
        "{name}: channel difference {worst} > {tolerance}"
    );
}

#[test]
fn lossless_formats_exact() {
    let rgb = card();
    let d = DynamicImage::ImageRgb8(rgb.clone());
    check("rgb8.png", &encode(&d, F::Png), ImageFormat::Png, &rgb, 0);
    check("rgb8.bmp", &encode(&d, F::Bmp), ImageFormat::Bmp, &rgb, 0);
    check(
        "rgb8.tiff",
        &encode(&d, F::Tiff),
        ImageFormat::Tiff,
        &rgb,
        0,
    );
    check(
        "rgb8.webp",
        &encode(&d, F::WebP),
        ImageFormat::WebP,
        &rgb,
        0,
    );
    // Alpha is dropped, not composited: RGB survives a zero alpha.
    let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(37, 23, |x, y| {
        let p = rgb.get_pixel(x, y).0;
        image::Rgba([p[0], p[1], p[2], ((x + y) % 2 * 255) as u8])
    }));
    check(
        "rgba8.png",
        &encode(&rgba, F::Png),
        ImageFormat::Png,
        &rgb,
        0,
    );
    check(
        "rgba8.tiff",
        &encode(&rgba, F::Tiff),
        ImageFormat::Tiff,
        &rgb,
        0,
    );
}

#[test]
fn grey_and_sixteen_bit() {
    let grey = image::GrayImage::from_fn(37, 23, |x, y| image::Luma([(x * 5 + y * 3) as u8]));
    let grey_rgb = RgbImage::from_fn(37, 23, |x, y| {
        let v = grey.get_pixel(x, y).0[0];
        Rgb([v, v, v])
    });
    let g = DynamicImage::ImageLuma8(grey.clone());
    check(
        "l8.png",
        &encode(&g, F::Png),
        ImageFormat::Png,
        &grey_rgb,
        0,
    );
    check(
        "l8.tiff",
        &encode(&g, F::Tiff),
        ImageFormat::Tiff,
        &grey_rgb,
        0,
    );
    // 16-bit colour keeps the high byte (Pillow's RGB;16B).
    let rgb = card();
    let rgb16 = image::ImageBuffer::<Rgb<u16>, _>::from_fn(37, 23, |x, y| {
        let p = rgb.get_pixel(x, y).0;
        Rgb([
            u16::from(p[0]) << 8 | 0xff,
            u16::from(p[1]) << 8,
            u16::from(p[2]) << 8 | 0x80,
        ])
    });
    let d16 = DynamicImage::ImageRgb16(rgb16);
    check(
        "rgb16.png",
        &encode(&d16, F::Png),
        ImageFormat::Png,
        &rgb,
        0,
    );
    // 16-bit grey is clipped at 255 (Pillow's I;16 → RGB).
    let l16 = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(37, 23, |x, _| {
        image::Luma([if x < 10 {
            x as u16 * 20
        } else {
            300 + x as u16
        }])
    });
    let want = RgbImage::from_fn(37, 23, |x, _| {
        let v = if x < 10 { (x * 20) as u8 } else { 255 };
        Rgb([v, v, v])
    });
    check(
        "l16.png",
        &encode(&DynamicImage::ImageLuma16(l16), F::Png),
        ImageFormat::Png,
        &want,
        0,
    );
}

#[test]
fn lossy_and_palette_formats_close() {
    // Smooth content, so JPEG's loss stays small.
    let smooth = RgbImage::from_fn(37, 23, |x, y| Rgb([(x * 6) as u8, (y * 9) as u8, 128]));
    let d = DynamicImage::ImageRgb8(smooth.clone());
    check(
        "smooth.jpg",
        &encode(&d, F::Jpeg),
        ImageFormat::Jpeg,
        &smooth,
        12,
    );
    // Few colours: the GIF palette holds them exactly.
    let flat = RgbImage::from_fn(37, 23, |x, y| {
        Rgb(if (x / 4 + y / 4) % 2 == 0 {
            [10, 200, 30]
        } else {
            [250, 240, 5]
        })
    });
    check(
        "flat.gif",
        &encode(&DynamicImage::ImageRgb8(flat.clone()), F::Gif),
        ImageFormat::Gif,
        &flat,
        0,
    );
}
