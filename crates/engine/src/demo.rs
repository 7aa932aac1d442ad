//! Demo data for `echotrace serve --demo`: a block bank of GENERATED, BENIGN
//! images (procedural gradients, rings, checkerboards, waves, mosaics made at
//! run time with the `image` crate) and benign texts (weather and sport
//! reports), an allow bank, and simulated uploads that include altered copies
//! (resized, re-encoded JPEG, cropped, greyscale, edited text) so the review
//! queue, dashboard and match debugger show real matches immediately.
//!
//! Nothing here is fetched or shipped: every byte is computed from fixed
//! seeds, so the demo is reproducible and contains no real-world media.

use std::io::Cursor;

use image::{imageops, DynamicImage, ImageFormat, Rgb, RgbImage};

use crate::error::{EngineError, Result};

/// Side of the generated square images.
pub const DEMO_SIDE: u32 = 256;

/// A generated image with a human-readable name.
#[derive(Clone, Debug)]
pub struct DemoImage {
    pub name: &'static str,
    pub labels: &'static [&'static str],
    pub image: RgbImage,
}

/// Tiny deterministic PRNG (xorshift64*), so the demo is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() >> 33) as u32 % n.max(1)
    }
}

fn clamp_u8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

fn sunset(side: u32) -> RgbImage {
    let s = f64::from(side);
    RgbImage::from_fn(side, side, |x, y| {
        let (fx, fy) = (f64::from(x), f64::from(y));
        let t = fy / s;
        let mut px = [
            clamp_u8(250.0 - 120.0 * t),
            clamp_u8(150.0 - 110.0 * t),
            clamp_u8(60.0 + 120.0 * t),
        ];
        let (dx, dy) = (fx - s * 0.62, fy - s * 0.58);
        if dx * dx + dy * dy < (s * 0.16) * (s * 0.16) {
            px = [255, 214, 90];
        }
        if fy > s * 0.78 {
            px = [30, 40, clamp_u8(90.0 + 40.0 * ((fx / 9.0).sin()))];
        }
        Rgb(px)
    })
}

fn rings(side: u32) -> RgbImage {
    let c = f64::from(side) / 2.0;
    RgbImage::from_fn(side, side, |x, y| {
        let d = ((f64::from(x) - c).powi(2) + (f64::from(y) - c * 0.8).powi(2)).sqrt();
        let band = ((d / 14.0) as i64) % 3;
        Rgb(match band {
            0 => [20, 90, 160],
            1 => [240, 240, 235],
            _ => [200, 60, 50],
        })
    })
}

fn checker(side: u32) -> RgbImage {
    RgbImage::from_fn(side, side, |x, y| {
        let cell = ((x / 32) + (y / 32)) % 2 == 0;
        let g = clamp_u8(80.0 + 120.0 * f64::from(x) / f64::from(side));
        if cell {
            Rgb([g, 200, 90])
        } else {
            Rgb([30, 50, clamp_u8(220.0 - f64::from(y) / 2.0)])
        }
    })
}

fn waves(side: u32) -> RgbImage {
    RgbImage::from_fn(side, side, |x, y| {
        let (fx, fy) = (f64::from(x), f64::from(y));
        let v = (fx / 11.0).sin() + (fy / 17.0).cos() + ((fx + fy) / 23.0).sin();
        let t = (v + 3.0) / 6.0;
        Rgb([
            clamp_u8(40.0 + 60.0 * t),
            clamp_u8(120.0 + 120.0 * t),
            clamp_u8(200.0 - 80.0 * t),
        ])
    })
}

fn mosaic(side: u32, seed: u64) -> RgbImage {
    let mut img = RgbImage::from_pixel(side, side, Rgb([245, 240, 228]));
    let mut rng = Rng(seed);
    for _ in 0..28 {
        let (w, h) = (10 + rng.below(side / 3), 10 + rng.below(side / 3));
        let (x0, y0) = (rng.below(side), rng.below(side));
        let colour = Rgb([
            rng.below(256) as u8,
            rng.below(256) as u8,
            rng.below(256) as u8,
        ]);
        for y in y0..(y0 + h).min(side) {
            for x in x0..(x0 + w).min(side) {
                img.put_pixel(x, y, colour);
            }
        }
    }
    img
}

fn stripes(side: u32) -> RgbImage {
    let s = f64::from(side);
    RgbImage::from_fn(side, side, |x, y| {
        let (fx, fy) = (f64::from(x), f64::from(y));
        // A triangle over diagonal stripes.
        if fy > s * 0.25 && (fx - s / 2.0).abs() < (fy - s * 0.25) * 0.7 && fy < s * 0.85 {
            return Rgb([250, 200, 40]);
        }
        if ((x + y) / 20) % 2 == 0 {
            Rgb([70, 30, 110])
        } else {
            Rgb([160, 210, 230])
        }
    })
}

/// The banked demo images (block bank).
pub fn demo_images() -> Vec<DemoImage> {
    vec![
        DemoImage {
            name: "sunset-gradient",
            labels: &["demo", "gradient"],
            image: sunset(DEMO_SIDE),
        },
        DemoImage {
            name: "target-rings",
            labels: &["demo", "rings"],
            image: rings(DEMO_SIDE),
        },
        DemoImage {
            name: "green-checker",
            labels: &["demo", "pattern"],
            image: checker(DEMO_SIDE),
        },
        DemoImage {
            name: "sea-waves",
            labels: &["demo", "waves"],
            image: waves(DEMO_SIDE),
        },
        DemoImage {
            name: "paper-mosaic",
            labels: &["demo", "mosaic"],
            image: mosaic(DEMO_SIDE, 0x5eed_0001),
        },
    ]
}

/// The allow-bank demo image (known benign: its hits suppress block hits).
pub fn demo_allow_image() -> DemoImage {
    DemoImage {
        name: "striped-triangle",
        labels: &["demo", "allow"],
        image: stripes(DEMO_SIDE),
    }
}

/// An image that matches nothing (a different mosaic).
pub fn demo_unrelated_image() -> RgbImage {
    mosaic(DEMO_SIDE, 0xfeed_beef)
}

/// How an upload was altered from its banked original.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alteration {
    /// Scaled down to 60 %.
    Resized,
    /// Re-encoded as JPEG at quality 55.
    Jpeg,
    /// 8 % cut from every side.
    Cropped,
    /// Converted to greyscale.
    Greyscale,
    /// Unchanged.
    Exact,
}

impl Alteration {
    pub fn as_str(self) -> &'static str {
        match self {
            Alteration::Resized => "resized",
            Alteration::Jpeg => "re-encoded JPEG",
            Alteration::Cropped => "cropped",
            Alteration::Greyscale => "greyscale",
            Alteration::Exact => "exact copy",
        }
    }
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format)
        .map_err(|e| EngineError::Internal(format!("demo image encoding: {e}")))?;
    Ok(out.into_inner())
}

/// PNG bytes of an image.
pub fn png_bytes(img: &RgbImage) -> Result<Vec<u8>> {
    encode(&DynamicImage::ImageRgb8(img.clone()), ImageFormat::Png)
}

/// Encoded bytes (and MIME type) of an altered copy of `img`.
pub fn altered_bytes(img: &RgbImage, how: Alteration) -> Result<(Vec<u8>, &'static str)> {
    let (w, h) = img.dimensions();
    match how {
        Alteration::Resized => {
            let small =
                imageops::resize(img, w * 6 / 10, h * 6 / 10, imageops::FilterType::Triangle);
            Ok((
                encode(&DynamicImage::ImageRgb8(small), ImageFormat::Png)?,
                "image/png",
            ))
        }
        Alteration::Jpeg => {
            let mut out = Vec::new();
            let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 55);
            enc.encode_image(img)
                .map_err(|e| EngineError::Internal(format!("demo JPEG encoding: {e}")))?;
            Ok((out, "image/jpeg"))
        }
        Alteration::Cropped => {
            let (dx, dy) = (w * 8 / 100, h * 8 / 100);
            let cropped = imageops::crop_imm(img, dx, dy, w - 2 * dx, h - 2 * dy).to_image();
            Ok((
                encode(&DynamicImage::ImageRgb8(cropped), ImageFormat::Png)?,
                "image/png",
            ))
        }
        Alteration::Greyscale => {
            let grey = DynamicImage::ImageRgb8(img.clone()).grayscale().to_rgb8();
            Ok((
                encode(&DynamicImage::ImageRgb8(grey), ImageFormat::Png)?,
                "image/png",
            ))
        }
        Alteration::Exact => Ok((png_bytes(img)?, "image/png")),
    }
}

/// A banked demo text and an edited re-upload of it.
#[derive(Clone, Debug)]
pub struct DemoText {
    pub name: &'static str,
    pub labels: &'static [&'static str],
    pub original: &'static str,
    pub edited: &'static str,
}

/// Benign weather and sport texts.
pub fn demo_texts() -> Vec<DemoText> {
    vec![
        DemoText {
            name: "weather-report",
            labels: &["demo", "weather"],
            original: "Morning fog will clear slowly from the river valleys, giving way to bright \
                       sunshine across the region by midday. Temperatures climb to twenty one \
                       degrees in the afternoon with a light westerly breeze. Showers may reach the \
                       northern hills late in the evening, and tomorrow looks cooler and breezier \
                       with scattered clouds drifting in from the coast.",
            edited: "Morning fog will clear slowly from the river valleys, giving way to bright \
                     sunshine across the whole region by noon. Temperatures climb to twenty one \
                     degrees in the afternoon with a light westerly breeze. Showers may reach the \
                     northern hills late in the evening, and tomorrow looks cooler and windier \
                     with scattered clouds drifting in from the coast.",
        },
        DemoText {
            name: "match-report",
            labels: &["demo", "sport"],
            original: "The home side opened the scoring after twelve minutes when their captain \
                       curled a free kick into the top corner. The visitors pressed hard after the \
                       break and equalised with a header from a corner, but a late counter attack \
                       sealed a two one win that lifts the club to third place in the table before \
                       the winter break.",
            edited: "The home side opened the scoring after twelve minutes when their captain \
                     curled a free kick into the top corner!! The visitors pressed hard after the \
                     break and equalised with a header from a corner, but a late counter attack \
                     sealed a two one win that lifts the club to third place in the league before \
                     the winter break.",
        },
    ]
}

/// What [`seed`] created.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DemoSummary {
    pub block_bank: i64,
    pub allow_bank: i64,
    pub bank_items: usize,
    pub uploads: usize,
    pub matches: usize,
    pub suppressed: usize,
}

/// Seed an empty database with the demo banks and simulated uploads.
/// With `retain_media`, the generated media and texts are kept for review
/// (as an operator with `--retain-media` would); otherwise hashes only.
///
/// The simulated uploads are spread over the last two weeks (their rows are
/// back-dated) so the dashboard chart has some shape.
pub async fn seed(engine: &crate::Engine, retain_media: bool) -> Result<DemoSummary> {
    use crate::console::{retain_media as retain, MediaOwner};
    use crate::{Actor, BankKind, ContentSource, NewBank, NewContent, SubmissionContext};

    let curator = Actor("demo:curator".to_string());
    let uploader = Actor("demo:platform".to_string());
    let store = engine.store();
    let mut summary = DemoSummary::default();

    let block = engine
        .create_bank(
            &curator,
            NewBank {
                name: "demo-shapes-and-texts".into(),
                kind: BankKind::Block,
                description: "Demo block bank: generated shapes and benign weather/sport texts"
                    .into(),
                thresholds: crate::Thresholds::default(),
                text_equivalences: None,
            },
        )
        .await?;
    let allow = engine
        .create_bank(
            &curator,
            NewBank {
                name: "demo-known-benign".into(),
                kind: BankKind::Allow,
                description: "Demo allow bank: known-benign content whose hits suppress block hits"
                    .into(),
                thresholds: crate::Thresholds::default(),
                text_equivalences: None,
            },
        )
        .await?;
    summary.block_bank = block.id;
    summary.allow_bank = allow.id;

    let images = demo_images();
    for img in &images {
        let png = png_bytes(&img.image)?;
        let c = engine
            .add_content(
                &curator,
                block.id,
                NewContent {
                    source: ContentSource::Bytes(png.clone()),
                    labels: img.labels.iter().map(|s| s.to_string()).collect(),
                    note: format!("generated demo image \"{}\"", img.name),
                },
            )
            .await?;
        if retain_media {
            retain(store, MediaOwner::Content, c.id, "image/png", &png).await?;
        }
        summary.bank_items += 1;
    }
    let texts = demo_texts();
    for t in &texts {
        let c = engine
            .add_content(
                &curator,
                block.id,
                NewContent {
                    source: ContentSource::Text(t.original.to_string()),
                    labels: t.labels.iter().map(|s| s.to_string()).collect(),
                    note: format!("demo text \"{}\"", t.name),
                },
            )
            .await?;
        if retain_media {
            retain(
                store,
                MediaOwner::Content,
                c.id,
                "text/plain; charset=utf-8",
                t.original.as_bytes(),
            )
            .await?;
        }
        summary.bank_items += 1;
    }
    let allow_img = demo_allow_image();
    let allow_png = png_bytes(&allow_img.image)?;
    let allow_item = engine
        .add_content(
            &curator,
            allow.id,
            NewContent {
                source: ContentSource::Bytes(allow_png.clone()),
                labels: allow_img.labels.iter().map(|s| s.to_string()).collect(),
                note: "known benign demo image".into(),
            },
        )
        .await?;
    if retain_media {
        retain(
            store,
            MediaOwner::Content,
            allow_item.id,
            "image/png",
            &allow_png,
        )
        .await?;
    }
    summary.bank_items += 1;

    // Simulated uploads: (bytes, mime, days ago).
    let mut uploads: Vec<(Vec<u8>, &'static str, i64)> = Vec::new();
    let plan = [
        (0usize, Alteration::Resized, 13i64),
        (1, Alteration::Jpeg, 11),
        (2, Alteration::Cropped, 9),
        (3, Alteration::Greyscale, 6),
        (4, Alteration::Jpeg, 4),
        (0, Alteration::Jpeg, 2),
        (1, Alteration::Greyscale, 1),
        (0, Alteration::Greyscale, 0),
        (3, Alteration::Exact, 0),
    ];
    for (idx, how, days) in plan {
        if let Some(img) = images.get(idx) {
            let (bytes, mime) = altered_bytes(&img.image, how)?;
            uploads.push((bytes, mime, days));
        }
    }
    for (i, t) in texts.iter().enumerate() {
        uploads.push((
            t.edited.as_bytes().to_vec(),
            "text/plain; charset=utf-8",
            i as i64 * 3,
        ));
    }
    uploads.push((png_bytes(&demo_unrelated_image())?, "image/png", 3));
    uploads.push((allow_png, "image/png", 5));

    let now = echotrace_store::now_ms();
    for (n, (bytes, mime, days)) in uploads.into_iter().enumerate() {
        let context = SubmissionContext {
            content_id: Some(format!("post-{}", 1001 + n)),
            url: Some(format!("https://social.example/p/{}", 1001 + n)),
            uploader_id: Some(format!("user-{}", 40 + (n * 7) % 23)),
        };
        let bytes = bytes::Bytes::from(bytes);
        let resp = engine
            .lookup_bytes(&uploader, bytes.clone(), None, context)
            .await?;
        summary.uploads += 1;
        summary.matches += resp.matches.len();
        summary.suppressed += resp.suppressed;
        // Under `--record matches` an upload without hits is not recorded.
        let Some(submission_id) = resp.submission_id else {
            continue;
        };
        if retain_media {
            retain(store, MediaOwner::Submission, submission_id, mime, &bytes).await?;
        }
        if days > 0 {
            // Back-date so the per-day chart spans two weeks (spread within the day too).
            let at = now - days * 86_400_000 - (n as i64 % 5) * 3_600_000;
            sqlx::query(
                "UPDATE matches SET created_at = $1, updated_at = $1 WHERE submission_id = $2",
            )
            .bind(at)
            .bind(submission_id)
            .execute(store.pool())
            .await
            .map_err(|e| EngineError::Internal(format!("demo back-dating: {e}")))?;
            sqlx::query("UPDATE submissions SET created_at = $1 WHERE id = $2")
                .bind(at)
                .bind(submission_id)
                .execute(store.pool())
                .await
                .map_err(|e| EngineError::Internal(format!("demo back-dating: {e}")))?;
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_deterministic_and_distinct() {
        let a = demo_images();
        let b = demo_images();
        assert_eq!(a.len(), 5);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                x.image.as_raw(),
                y.image.as_raw(),
                "{} not reproducible",
                x.name
            );
        }
        for i in 0..a.len() {
            for j in (i + 1)..a.len() {
                assert_ne!(a[i].image.as_raw(), a[j].image.as_raw());
            }
        }
        assert_ne!(demo_unrelated_image().as_raw(), a[4].image.as_raw());
    }

    #[test]
    fn alterations_decode() {
        let img = &demo_images()[0].image;
        for how in [
            Alteration::Resized,
            Alteration::Jpeg,
            Alteration::Cropped,
            Alteration::Greyscale,
            Alteration::Exact,
        ] {
            let (bytes, mime) = altered_bytes(img, how).unwrap();
            let back = image::load_from_memory(&bytes).unwrap();
            assert!(mime.starts_with("image/"));
            match how {
                Alteration::Resized => assert_eq!(back.width(), DEMO_SIDE * 6 / 10),
                Alteration::Cropped => {
                    assert_eq!(back.width(), DEMO_SIDE - 2 * (DEMO_SIDE * 8 / 100))
                }
                _ => assert_eq!(back.width(), DEMO_SIDE),
            }
        }
    }

    #[test]
    fn edited_texts_differ_a_little() {
        for t in demo_texts() {
            assert_ne!(t.original, t.edited);
            let a: std::collections::HashSet<&str> = t.original.split_whitespace().collect();
            let b: std::collections::HashSet<&str> = t.edited.split_whitespace().collect();
            let inter = a.intersection(&b).count() as f64;
            let union = a.union(&b).count() as f64;
            assert!(inter / union > 0.8, "{}: edit too large", t.name);
        }
    }
}
