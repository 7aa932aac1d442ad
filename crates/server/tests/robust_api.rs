//! HTTP tests of robust matching (issue 14): adapted re-uploads of images
//! and videos found through the derived channels, each match saying which
//! channel found it; per-bank `matching` settings; derived hashes never
//! shown as an item's signals. Every test body runs on a fresh SQLite file
//! and on a fresh PostgreSQL schema at `$ECHOTRACE_TEST_PG_URL`.
//!
//! Images are generated from a benign fixture photo (`../shared/fixtures`);
//! videos are short clips cut from the vPDQ fixtures with ffmpeg.

mod common;
mod robust_images;

use echotrace_store::both_backends;
use echotrace_store::testing::TestDb;
use image::{Rgb, RgbImage};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use robust_images::{blocks, fixtures, jpeg, jpeg85, photo, png, stamp};
use serde_json::{json, Value};

both_backends!(
    image_channels_over_http,
    fills_and_window_quality_over_http,
    blurred_pad_on_four_sides_over_http,
    window_crops_over_http,
    alignment_refinement_over_http,
    content_buffers_over_http,
    meme_captions_over_http,
    overlays_over_http,
    part_switch_over_http,
    part_in_console_over_http,
    refine_switch_in_console_over_http,
    rederive_over_http,
    file_add_gives_a_hash_only_item_its_derived_hashes_over_http,
    regions_over_http,
    video_borders_over_http
);

use common::Server as Service;

/// The console admin of the tests that use the console ("ada").
async fn create_admin(s: &Service) {
    s.engine()
        .create_user(
            &echotrace_engine::Actor::cli(),
            "ada",
            "a long enough password",
            echotrace_engine::Role::Admin,
        )
        .await
        .unwrap();
}

async fn start(db: &TestDb) -> Service {
    let mut config = common::config(&db.url);
    config.deliver_webhooks = false;
    Service::start(config, None).await
}

impl Service {
    async fn upload(&self, path: &str, bytes: &[u8]) -> Value {
        let form = Form::new().part("file", Part::bytes(bytes.to_vec()).file_name("f"));
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "POST {path} -> {status}: {v}");
        v
    }

    /// Add the plain PDQ hash of `img` to `bank` as a hash-only entry (as
    /// an exchange imports it).
    async fn add_plain_pdq(&self, bank: &str, img: &RgbImage) {
        let plain =
            echotrace_signals::pdq::hash_rgb8(img.as_raw(), img.width(), img.height()).unwrap();
        self.ok(
            Method::POST,
            &format!("/v1/banks/{bank}/content"),
            Some(json!({"signals": {"pdq": plain.hash.to_hex()}})),
        )
        .await;
    }

    /// The first match of an uploaded file in `bank` (through `channel`,
    /// when given); fails the test, showing the response, when there is none.
    async fn match_in(&self, bytes: &[u8], bank: &str, channel: Option<&str>) -> Value {
        let v = self.upload("/v1/lookup", bytes).await;
        v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["bank_name"] == bank && channel.is_none_or(|c| m["channel"] == c))
            .cloned()
            .unwrap_or_else(|| panic!("no match in {bank} ({channel:?}): {v}"))
    }

    /// `(bank name, channel)` of every perceptual (pdq / vpdq) match of an
    /// uploaded file (an identical file also matches its md5 and sha256).
    async fn hits(&self, bytes: &[u8]) -> Vec<(String, String)> {
        let v = self.upload("/v1/lookup", bytes).await;
        let mut out: Vec<(String, String)> = v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["signal_type"] == "pdq" || m["signal_type"] == "vpdq")
            .map(|m| {
                (
                    m["bank_name"].as_str().unwrap().to_string(),
                    m["channel"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }
}

/// A hash-only item (as an exchange imports it) gains the robust channels
/// when its file is added to the bank: the add answers 200 with the same
/// item, `already_held` and `derived_added`, one `content.derive` audit
/// entry, and a crop of the picture then matches it through `window`. The
/// same file again adds nothing more; another picture is an item of its
/// own.
async fn file_add_gives_a_hash_only_item_its_derived_hashes_over_http(db: &TestDb) {
    let s = start(db).await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "hashes"})))
        .await;
    let original = photo();
    let plain = echotrace_signals::pdq::hash_rgb8(original.as_raw(), 480, 300).unwrap();
    let (status, item) = s
        .admin_call(
            Method::POST,
            "/v1/banks/hashes/content",
            Some(json!({"signals": {"pdq": plain.hash.to_hex()}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let path = format!("/v1/banks/hashes/content/{}", item["id"]);
    assert_eq!(s.ok(Method::GET, &path, None).await["derived"], json!([]));
    let cropped = png(&crop(&original, 0.08));
    assert!(
        !s.hits(&cropped).await.iter().any(|(b, _)| b == "hashes"),
        "a hash-only item has no windows"
    );

    let add_file = |bytes: Vec<u8>| {
        let form = Form::new().part("file", Part::bytes(bytes).file_name("o.png"));
        s.multipart(&s.admin, "/v1/banks/hashes/content", form)
    };
    let (status, again) = add_file(png(&original)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], item["id"], "{again}");
    assert_eq!(again["already_held"], json!(true), "{again}");
    assert_eq!(again["derived_added"], json!(true), "{again}");
    let derived = s.ok(Method::GET, &path, None).await["derived"].clone();
    assert!(
        derived.as_array().unwrap().contains(&json!("window")),
        "{derived}"
    );
    assert_eq!(
        s.hits(&cropped).await,
        vec![("hashes".into(), "window".into())]
    );
    let audit = s.ok(Method::GET, "/v1/audit?limit=100", None).await;
    let derives: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "content.derive")
        .collect();
    assert_eq!(derives.len(), 1, "{audit}");
    assert_eq!(derives[0]["target"], format!("content:{}", item["id"]));

    // Once it holds them, the same file changes nothing.
    let (status, third) = add_file(png(&original)).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    assert_eq!(third["derived_added"], json!(false), "{third}");
    // Another picture is a new item.
    let other = std::fs::read(fixtures().join("pdq/images/labelme/q0746.jpg")).unwrap();
    let (status, new) = add_file(other).await;
    assert_eq!(status, StatusCode::CREATED, "{new}");
    assert_eq!(new["already_held"], json!(false), "{new}");
    assert_eq!(new["derived_added"], json!(false), "{new}");
    let list = s.ok(Method::GET, "/v1/banks/hashes/content", None).await;
    assert_eq!(list["content"].as_array().map(Vec::len), Some(2), "{list}");
    s.stop().await;
}

/// The region channel: a picture held with a border is found from the
/// picture alone and from the picture under another border. Flat-block
/// graphics match nothing: the blurred-fill detector took their bands of
/// blocks for fills on both sides, and the few-block sub-rectangles came
/// 26–36 bits from unrelated ones through `region` (a collector
/// benchmark's false matches, `bench collect` seeds 105 and 7,001,461,
/// 420 and 7,001,188; session 21).
async fn regions_over_http(db: &TestDb) {
    let s = start(db).await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "files"})))
        .await;
    let original = photo();
    let framed = pad(&original, 0, 90, [0, 0, 0]);
    s.upload("/v1/banks/files/content", &png(&framed)).await;
    for (k, seed) in [7_001_461u64, 7_001_188].into_iter().enumerate() {
        let added = s
            .upload("/v1/banks/files/content", &jpeg85(&blocks(seed)))
            .await;
        assert_eq!(added["id"].as_i64(), Some(k as i64 + 2), "{added}");
    }
    // The picture without its bars, and under white bars on its sides.
    assert_eq!(
        s.hits(&png(&original)).await,
        vec![("files".into(), "region".into())]
    );
    let reframed = pad(&original, 60, 0, [255, 255, 255]);
    assert_eq!(
        s.hits(&png(&reframed)).await,
        vec![("files".into(), "region".into())]
    );
    for seed in [105u64, 420] {
        assert_eq!(
            s.hits(&jpeg85(&blocks(seed))).await,
            Vec::<(String, String)>::new(),
            "blocks {seed}"
        );
    }
    s.stop().await;
}

fn pad(img: &RgbImage, px: u32, py: u32, colour: [u8; 3]) -> RgbImage {
    let mut out = RgbImage::from_pixel(img.width() + 2 * px, img.height() + 2 * py, Rgb(colour));
    image::imageops::overlay(&mut out, img, i64::from(px), i64::from(py));
    out
}

fn crop(img: &RgbImage, f: f32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (dx, dy) = ((w as f32 * f) as u32, (h as f32 * f) as u32);
    image::imageops::crop_imm(img, dx, dy, w - 2 * dx, h - 2 * dy).to_image()
}

async fn image_channels_over_http(db: &TestDb) {
    let s = start(db).await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "files"})))
        .await;
    let hashes = s
        .ok(
            Method::POST,
            "/v1/banks",
            Some(json!({"name": "hashes", "matching": {"dihedral": false}})),
        )
        .await;
    assert_eq!(
        hashes["matching"],
        json!({"dihedral": false, "window": true, "part": true, "refine": null})
    );
    let (st, bad) = s
        .admin_call(
            Method::PATCH,
            "/v1/banks/hashes",
            Some(json!({"matching": {"rotate": true}})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("rotate"),
        "{bad}"
    );

    let original = photo();
    let added = s.upload("/v1/banks/files/content", &png(&original)).await;
    // Derived hashes are never an item's signals: only pdq, md5, sha256.
    let types: Vec<&str> = added["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["signal_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["pdq", "md5", "sha256"], "{added}");
    let pdq = added["signals"][0]["value"].as_str().unwrap().to_string();
    let plain = echotrace_signals::pdq::hash_rgb8(original.as_raw(), 480, 300).unwrap();
    assert_eq!(pdq, plain.hash.to_hex(), "the stored hash is the plain PDQ");
    // A hash-only entry (as imported from an exchange).
    s.ok(
        Method::POST,
        "/v1/banks/hashes/content",
        Some(json!({"signals": {"pdq": pdq}})),
    )
    .await;

    // Unchanged: plain in both banks.
    assert_eq!(
        s.hits(&png(&original)).await,
        [
            ("files".into(), "plain".into()),
            ("hashes".into(), "plain".into())
        ]
    );
    // Border removal works on the hash-only entry too.
    let padded = pad(&original, 60, 40, [20, 160, 90]);
    let hits = s.hits(&png(&padded)).await;
    assert!(
        hits.contains(&("hashes".into(), "border".into())),
        "{hits:?}"
    );
    assert!(hits.iter().any(|(b, _)| b == "files"), "{hits:?}");
    // Mirrored: the dihedral channel, only where the bank allows it.
    let mirrored = image::imageops::flip_horizontal(&original);
    assert_eq!(
        s.hits(&png(&mirrored)).await,
        [("files".into(), "dihedral".into())]
    );
    // Cropped 8 % a side: the window channel of the file-added item.
    let cropped = crop(&original, 0.08);
    let hits = s.hits(&png(&cropped)).await;
    assert!(
        hits.contains(&("files".into(), "window".into())),
        "{hits:?}"
    );
    // The match card data: rectangle, variant, both distances.
    let m = s.match_in(&png(&cropped), "files", None).await;
    let d = &m["channel_detail"];
    assert!(d["plain_distance"].as_u64().unwrap() > 31, "{m}");
    assert!(
        m["distance"].as_i64().unwrap() <= d["threshold"].as_i64().unwrap(),
        "{m}"
    );
    assert_eq!(d["bank_source"], "window", "{m}");
    // A detailed photo's window (quality ≥ 90) is matched at 40 bits.
    assert!(d["bank_quality"].as_u64().unwrap() >= 90, "{m}");
    assert_eq!(d["threshold"], 40, "{m}");
    // The recorded match keeps its channel.
    let got = s
        .ok(Method::GET, &format!("/v1/matches/{}", m["id"]), None)
        .await;
    assert_eq!(got["channel"], "window", "{got}");

    // Bank windows take the upload as it is and its left-right mirror,
    // not its rotations or vertical flips (docs/ROBUST.md, "Window
    // variants"): a mirrored crop matches through `window`, a rotated crop
    // matches nothing (a rotation is found uncropped, through `dihedral`).
    let mirrored_crop = crop(&image::imageops::flip_horizontal(&original), 0.08);
    let hits = s.hits(&png(&mirrored_crop)).await;
    assert!(
        hits.contains(&("files".into(), "window".into())),
        "{hits:?}"
    );
    let m = s
        .match_in(&png(&mirrored_crop), "files", Some("window"))
        .await;
    assert_eq!(m["channel_detail"]["variant"], "flipy", "{m}");
    let rotated_crop = crop(&image::imageops::rotate90(&original), 0.08);
    let hits = s.hits(&png(&rotated_crop)).await;
    assert!(!hits.iter().any(|(b, _)| b == "files"), "{hits:?}");
    let rotated = image::imageops::rotate90(&original);
    assert!(
        s.hits(&png(&rotated))
            .await
            .contains(&("files".into(), "dihedral".into())),
        "a rotation is still found uncropped"
    );

    // Window channel off: the crop no longer matches that bank.
    let files = s
        .ok(
            Method::PATCH,
            "/v1/banks/files",
            Some(json!({"matching": {"window": false}})),
        )
        .await;
    assert_eq!(files["matching"]["window"], false);
    let hits = s.hits(&png(&cropped)).await;
    assert!(
        !hits.iter().any(|(b, c)| b == "files" && c == "window"),
        "{hits:?}"
    );

    // HMA's upload lookup reports the channel too.
    let form = Form::new().part("file", Part::bytes(png(&mirrored)).file_name("m.png"));
    let resp = s
        .http
        .post(format!("{}/m/lookup", s.base))
        .bearer_auth(&s.admin)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let hma: Value = resp.json().await.unwrap();
    assert_eq!(hma["pdq"]["files"][0]["channel"], "dihedral", "{hma}");

    // An unrelated photo matches nothing through any channel.
    let other = std::fs::read(fixtures().join("pdq/images/labelme/q0746.jpg")).unwrap();
    assert_eq!(s.hits(&other).await, Vec::<(String, String)>::new());
    s.stop().await;
}

/// `img` centred over a blurred, enlarged copy of itself in a `w × h`
/// frame (the "blurred fill" of phone apps and editors).
fn blur_fill(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let (iw, ih) = img.dimensions();
    let s = (w as f32 / iw as f32).max(h as f32 / ih as f32);
    let (bw, bh) = ((iw as f32 * s).ceil() as u32, (ih as f32 * s).ceil() as u32);
    let big = image::imageops::resize(img, bw, bh, image::imageops::FilterType::Triangle);
    let bg = image::imageops::crop_imm(&big, (bw - w) / 2, (bh - h) / 2, w, h).to_image();
    let mut out = image::imageops::blur(&bg, w.max(h) as f32 / 40.0);
    image::imageops::overlay(
        &mut out,
        img,
        i64::from((w - iw) / 2),
        i64::from((h - ih) / 2),
    );
    out
}

/// `img` between two bands `band` rows high, each row one colour, fading
/// from white at the outer edge to mid grey at the picture: flat (no
/// spread along a row) and without sharpness, yet not a uniform colour.
fn flat_bands(img: &RgbImage, band: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let mut out = RgbImage::new(w, h + 2 * band);
    for y in 0..band {
        let v = (255 - (127 * y) / band) as u8;
        for x in 0..w {
            out.put_pixel(x, y, Rgb([v, v, v]));
            out.put_pixel(x, h + 2 * band - 1 - y, Rgb([v, v, v]));
        }
    }
    image::imageops::overlay(&mut out, img, 0, i64::from(band));
    out
}

/// A low-detail picture: two tones split by a wavy edge, softened (PDQ
/// quality 50–89 for the whole picture and each crop-grid window).
fn two_tone() -> RgbImage {
    let (w, h) = (480u32, 300u32);
    let img = RgbImage::from_fn(w, h, |x, y| {
        let edge = 200.0 + 60.0 * (y as f32 / 50.0).sin();
        if (x as f32) > edge {
            Rgb([215, 193, 172])
        } else {
            Rgb([40, 36, 32])
        }
    });
    image::imageops::blur(&img, 2.0)
}

/// A faint texture of waves of incommensurate periods (43–73 px, at the finest
/// scale PDQ's 16 × 16 DCT keeps on a 480-px picture), as the striped and
/// dotted wallpapers of bench/robust: a shift of 2 % of the width
/// (≈ 10 px) turns each wave by a seventh to a quarter of its period.
fn waves() -> RgbImage {
    let (w, h) = (480u32, 300u32);
    RgbImage::from_fn(w, h, |x, y| {
        let (x, y) = (x as f32, y as f32);
        let tau = std::f32::consts::TAU;
        let v = 128.0
            + 10.0 * (tau * x / 43.0).sin()
            + 9.0 * (tau * (x + 2.0 * y) / 61.0).sin()
            + 8.0 * (tau * (y - 0.5 * x) / 53.0).sin()
            + 6.0 * (tau * (x - y) / 73.0).sin();
        let v = v.clamp(0.0, 255.0) as u8;
        Rgb([v, v / 2 + 60, 255 - v])
    })
}

/// The waves of [`waves`] half as strong again (deviation from grey × 1.5):
/// the crop-grid windows of quality 50–89 (threshold 28) but for one.
fn strong_waves() -> RgbImage {
    let (w, h) = (480u32, 300u32);
    RgbImage::from_fn(w, h, |x, y| {
        let (x, y) = (x as f32, y as f32);
        let tau = std::f32::consts::TAU;
        let v = 128.0
            + 1.5
                * (10.0 * (tau * x / 43.0).sin()
                    + 9.0 * (tau * (x + 2.0 * y) / 61.0).sin()
                    + 8.0 * (tau * (y - 0.5 * x) / 53.0).sin()
                    + 6.0 * (tau * (x - y) / 73.0).sin());
        let v = v.clamp(0.0, 255.0) as u8;
        Rgb([v, v / 2 + 60, 255 - v])
    })
}

/// How far `query`, hashed under `opts`, comes from matching a file-added
/// item with derived hashes `bank` and plain hash `plain`, as the engine
/// compares: the smallest distance minus threshold over the needles bank
/// windows take × the windows (40, or 28 below quality 90), every query
/// hash × the regions (36), and × the plain hash (31 for the whole image,
/// 36 for a border rectangle, 40 for a crop). ≤ 0: a match.
fn window_margin(
    query: &RgbImage,
    bank: &[echotrace_signals::robust::BankHash],
    plain: &echotrace_signals::pdq::PdqHash,
    opts: &echotrace_signals::robust::RobustOptions,
) -> i64 {
    use echotrace_signals::robust::{
        window_variant_allowed, BankSource, QuerySource, RobustHasher,
    };
    let set = RobustHasher::new()
        .query_set(query.as_raw(), query.width(), query.height(), opts)
        .unwrap();
    // Each needle with its threshold against the plain hash.
    let all: Vec<_> = set
        .hashes
        .iter()
        .filter_map(|q| {
            let t = match q.source {
                QuerySource::Whole => 31,
                QuerySource::Border => 36,
                QuerySource::Crop => 40,
                QuerySource::Part => return None,
            };
            Some((q.hash, q.variant, t))
        })
        .chain([(set.plain.hash, 0, 31)])
        .collect();
    let mut best = i64::MAX;
    for (n, v, to_plain) in &all {
        best = best.min(i64::from(n.distance(plain)) - to_plain);
        for b in bank {
            let t = match b.source {
                BankSource::Window if window_variant_allowed(*v) => {
                    if b.quality >= 90 {
                        40
                    } else {
                        28
                    }
                }
                BankSource::Region => 36,
                _ => continue,
            };
            best = best.min(i64::from(n.distance(&b.hash)) - t);
        }
    }
    best
}

/// What the engine would compare for `query` against a file-added item
/// with derived hashes `bank` and plain hash `plain`: the closest window
/// of quality below 90 to the needles bank windows take (the upload as it
/// is and mirrored, plus the plain hash), the closest region to any query
/// hash, and the closest any query hash comes to the plain hash.
fn closest_low_quality_window(
    query: &RgbImage,
    bank: &[echotrace_signals::robust::BankHash],
    plain: &echotrace_signals::pdq::PdqHash,
) -> (u32, u32, u32) {
    use echotrace_signals::robust::{
        window_variant_allowed, BankSource, RobustHasher, RobustOptions,
    };
    let set = RobustHasher::new()
        .query_set(
            query.as_raw(),
            query.width(),
            query.height(),
            &RobustOptions::default(),
        )
        .unwrap();
    let all: Vec<_> = set
        .hashes
        .iter()
        .map(|q| (q.hash, q.variant))
        .chain([(set.plain.hash, 0)])
        .collect();
    let closest = |upright: bool, source: BankSource, low: bool| {
        all.iter()
            .filter(|(_, v)| !upright || window_variant_allowed(*v))
            .flat_map(|(n, _)| {
                bank.iter()
                    .filter(|b| b.source == source && (!low || b.quality < 90))
                    .map(move |b| n.distance(&b.hash))
            })
            .min()
            .unwrap_or(256)
    };
    let to_plain = all
        .iter()
        .map(|(n, _)| n.distance(plain))
        .min()
        .unwrap_or(256);
    (
        closest(true, BankSource::Window, true),
        closest(false, BankSource::Region, false),
        to_plain,
    )
}

/// 5×7 bitmaps of the capital letters [`meme`] draws, `#` ink.
fn glyph(c: char) -> [&'static str; 7] {
    match c {
        'W' => [
            "#...#", "#...#", "#...#", "#.#.#", "#.#.#", "##.##", "#...#",
        ],
        'H' => [
            "#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#",
        ],
        'E' => [
            "#####", "#....", "#....", "####.", "#....", "#....", "#####",
        ],
        'N' => [
            "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "#...#",
        ],
        'T' => [
            "#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..",
        ],
        'B' => [
            "####.", "#...#", "#...#", "####.", "#...#", "#...#", "####.",
        ],
        'U' => [
            "#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.",
        ],
        'I' => [
            "#####", "..#..", "..#..", "..#..", "..#..", "..#..", "#####",
        ],
        'L' => [
            "#....", "#....", "#....", "#....", "#....", "#....", "#####",
        ],
        'D' => [
            "####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####.",
        ],
        'S' => [
            ".####", "#....", "#....", ".###.", "....#", "....#", "####.",
        ],
        _ => ["....."; 7],
    }
}

/// The meme format (augly's `meme_format`, bench/robust `meme`): a white
/// caption bar `bar` rows high on top, `text` in black capitals centred in
/// it at 55 % of its height, anti-aliased — each pixel gets the ink share
/// of an 8×8 supersampled cell, and the glyph cells are a fraction of a
/// pixel wide, so every glyph edge is a run of greys — and `img` below.
fn meme(img: &RgbImage, bar: u32, text: &str) -> RgbImage {
    let (w, h) = img.dimensions();
    let cell = bar as f32 * 0.55 / 7.0;
    let n = text.chars().count() as f32;
    let (x0, y0) = ((w as f32 - n * 6.0 * cell) / 2.0, bar as f32 * 0.225);
    let ink = |fx: f32, fy: f32| {
        let (gx, gy) = ((fx - x0) / cell, (fy - y0) / cell);
        if gx < 0.0 || !(0.0..7.0).contains(&gy) {
            return false;
        }
        let (i, col) = ((gx / 6.0) as usize, gx as usize % 6);
        text.chars()
            .nth(i)
            .is_some_and(|c| col < 5 && glyph(c)[gy as usize].as_bytes()[col] == b'#')
    };
    let mut out = RgbImage::from_fn(w, h + bar, |x, y| {
        let inked = (0u8..64)
            .filter(|s| {
                let (sx, sy) = (f32::from(s % 8) + 0.5, f32::from(s / 8) + 0.5);
                ink(x as f32 + sx / 8.0, y as f32 + sy / 8.0)
            })
            .count() as f32;
        let v = (255.0 * (1.0 - inked / 64.0)).round() as u8;
        Rgb([v, v, v])
    });
    image::imageops::overlay(&mut out, img, 0, i64::from(bar));
    out
}

async fn meme_captions_over_http(db: &TestDb) {
    let s = start(db).await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "hashes"})))
        .await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "files"})))
        .await;
    let original = photo();
    s.add_plain_pdq("hashes", &original).await;
    s.upload("/v1/banks/files/content", &png(&original)).await;

    // A meme caption (white bar, a fifth of the picture's height, with
    // anti-aliased black text), as JPEG: the bar and its text are cut
    // away and the picture is found on the hash-only entry through
    // `border`, the rectangle being the picture below the bar.
    let captioned = meme(&original, 60, "WHEN THE BUILD IS GREEN");
    let bytes = jpeg(&captioned);
    let plain = echotrace_signals::pdq::hash_rgb8(captioned.as_raw(), 480, 360).unwrap();
    let stored = echotrace_signals::pdq::hash_rgb8(original.as_raw(), 480, 300).unwrap();
    assert!(
        plain.hash.distance(&stored.hash) > 36,
        "not found without the cut"
    );
    let m = s.match_in(&bytes, "hashes", None).await;
    assert_eq!(m["channel"], "border", "{m}");
    let d = &m["channel_detail"];
    assert_eq!(d["query_rect"], json!([0, 60, 480, 300]), "{m}");
    assert!(d["plain_distance"].as_u64().unwrap() > 36, "{m}");
    assert!(m["distance"].as_u64().unwrap() <= 36, "{m}");
    assert!(
        s.hits(&bytes)
            .await
            .contains(&("files".into(), "border".into())),
        "the file-added entry too"
    );

    // The meme cut 5 % on its other three sides (meme + crop): the bar is
    // cut away and the picture, 5 % short on three sides, meets a window
    // of the file-added entry; the hash-only entry has no windows.
    let (w, h) = captioned.dimensions();
    let (dx, dy) = (w / 20, h / 20);
    let cropped = image::imageops::crop_imm(&captioned, dx, 0, w - 2 * dx, h - dy).to_image();
    let m = s.match_in(&jpeg(&cropped), "files", None).await;
    assert_eq!(m["channel"], "window", "{m}");
    let r = &m["channel_detail"]["query_rect"];
    assert_eq!(r[1], 60, "cut below the caption bar: {m}");

    // An unrelated photo under a caption matches neither entry.
    let other = std::fs::read(fixtures().join("pdq/images/labelme/q0746.jpg")).unwrap();
    let other = image::load_from_memory(&other).unwrap().to_rgb8();
    let other = image::imageops::resize(&other, 480, 300, image::imageops::FilterType::Triangle);
    let hits = s
        .hits(&jpeg(&meme(&other, 60, "WHEN THE BUILD IS GREEN")))
        .await;
    assert_eq!(hits, Vec::<(String, String)>::new());
    s.stop().await;
}

/// `text` in yellow 5×7 capitals, `cell` pixels per bitmap pixel, on a
/// black box one cell wider on every side, drawn over `img` from
/// `(x0, y0)`: a subtitle inside the picture (augly's `overlay_text`,
/// bench/robust `text`, boxed).
fn overlay_text(img: &RgbImage, text: &str, x0: u32, y0: u32, cell: u32) -> RgbImage {
    let mut out = img.clone();
    let (bw, bh) = ((text.chars().count() as u32 * 6 + 1) * cell, 9 * cell);
    for (dx, dy) in (0..bw * bh).map(|k| (k % bw, k / bw)) {
        let (x, y) = (
            (x0 + dx).saturating_sub(cell),
            (y0 + dy).saturating_sub(cell),
        );
        if x < out.width() && y < out.height() {
            out.put_pixel(x, y, Rgb([0, 0, 0]));
        }
    }
    for (i, c) in text.chars().enumerate() {
        for (gy, row) in glyph(c).iter().enumerate() {
            for (gx, b) in row.bytes().enumerate() {
                if b != b'#' {
                    continue;
                }
                let (x, y) = (
                    x0 + (i as u32 * 6 + gx as u32) * cell,
                    y0 + gy as u32 * cell,
                );
                for (dx, dy) in (0..cell * cell).map(|k| (k % cell, k / cell)) {
                    if x + dx < out.width() && y + dy < out.height() {
                        out.put_pixel(x + dx, y + dy, Rgb([255, 255, 0]));
                    }
                }
            }
        }
    }
    out
}

async fn overlays_over_http(db: &TestDb) {
    let s = start(db).await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "hashes"})))
        .await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "files"})))
        .await;
    let original = photo();
    s.add_plain_pdq("hashes", &original).await;
    s.upload("/v1/banks/files/content", &png(&original)).await;
    let stored = echotrace_signals::pdq::hash_rgb8(original.as_raw(), 480, 300).unwrap();

    // A logo stamp over the top-left corner, 30 % of the height: inside
    // every crop-grid window (they cut ≤ 12 % a side), outside the part
    // without the top third and the part without the left third. Found
    // through `part` on the file-added entry only: a hash-only entry has
    // no parts.
    let stamped = stamp(&original, 15, 9, 90);
    let plain = echotrace_signals::pdq::hash_rgb8(stamped.as_raw(), 480, 300).unwrap();
    assert!(
        plain.hash.distance(&stored.hash) > 31,
        "not found plainly: {}",
        plain.hash.distance(&stored.hash)
    );
    let bytes = jpeg(&stamped);
    let m = s.match_in(&bytes, "files", Some("part")).await;
    let d = &m["channel_detail"];
    assert_eq!(d["query_source"], "part", "{m}");
    assert_eq!(d["bank_source"], "part", "{m}");
    let rect = d["query_rect"].as_array().unwrap();
    let (x, y) = (rect[0].as_u64().unwrap(), rect[1].as_u64().unwrap());
    assert!(x >= 105 || y >= 99, "the part avoids the stamp: {m}");
    let removed = d["bank_removed"].as_array().unwrap();
    let removed: Vec<f64> = removed.iter().map(|v| v.as_f64().unwrap()).collect();
    let q = [x as f64 / 480.0, y as f64 / 300.0];
    assert!(
        (removed[0] - q[0]).abs() < 0.01 && (removed[1] - q[1]).abs() < 0.01,
        "the same part on both sides: {m}"
    );
    assert!(d["plain_distance"].as_u64().unwrap() > 31, "{m}");
    assert!(m["distance"].as_u64().unwrap() <= 28, "{m}");
    assert_eq!(d["threshold"], 28, "{m}");
    assert_eq!(s.hits(&bytes).await, vec![("files".into(), "part".into())]);

    // A boxed yellow subtitle across the bottom quarter (75–87 % of the
    // height): found through the part without the bottom third.
    let captioned = overlay_text(&original, "THE BUILD IS GREEN", 24, 229, 4);
    let plain = echotrace_signals::pdq::hash_rgb8(captioned.as_raw(), 480, 300).unwrap();
    assert!(
        plain.hash.distance(&stored.hash) > 31,
        "not found plainly: {}",
        plain.hash.distance(&stored.hash)
    );
    let bytes = jpeg(&captioned);
    let m = s.match_in(&bytes, "files", Some("part")).await;
    assert_eq!(
        m["channel_detail"]["query_rect"],
        json!([0, 0, 480, 200]),
        "{m}"
    );
    assert_eq!(s.hits(&bytes).await, vec![("files".into(), "part".into())]);

    // An unrelated photo with the same stamp and text matches nothing.
    let other = std::fs::read(fixtures().join("pdq/images/labelme/q0746.jpg")).unwrap();
    let other = image::load_from_memory(&other).unwrap().to_rgb8();
    let other = image::imageops::resize(&other, 480, 300, image::imageops::FilterType::Triangle);
    let other = overlay_text(&stamp(&other, 15, 9, 90), "THE BUILD IS GREEN", 24, 229, 4);
    assert_eq!(s.hits(&jpeg(&other)).await, Vec::<(String, String)>::new());
    s.stop().await;
}

/// The derived PDQ records the service holds in memory (`/readyz`).
async fn derived_held(s: &Service) -> u64 {
    let v = s.ok(Method::GET, "/readyz", None).await;
    v["index"]["derived_pdq"].as_u64().unwrap()
}

/// The bank's `part` switch: off, the overlay is no longer found through
/// `part`, the bank's parts leave memory and a file added meanwhile stores
/// none; on again, the stored parts of earlier items come back.
async fn part_switch_over_http(db: &TestDb) {
    let s = start(db).await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "files"})))
        .await;
    let original = photo();
    let added = s.upload("/v1/banks/files/content", &png(&original)).await;
    let item = |id: &Value| format!("/v1/banks/files/content/{id}");
    let got = s.ok(Method::GET, &item(&added["id"]), None).await;
    assert_eq!(got["derived"], json!(["window", "region", "part"]), "{got}");
    let bank = echotrace_signals::robust::RobustHasher::new()
        .bank_hashes(
            original.as_raw(),
            480,
            300,
            &echotrace_signals::robust::RobustOptions::default(),
        )
        .unwrap();
    let parts = bank
        .iter()
        .filter(|h| h.source == echotrace_signals::robust::BankSource::Part)
        .count() as u64;
    assert!(parts > 0, "the photo has parts of quality >= 50");
    assert_eq!(derived_held(&s).await, bank.len() as u64);
    let stamped = jpeg(&stamp(&original, 15, 9, 90));
    assert_eq!(
        s.hits(&stamped).await,
        vec![("files".into(), "part".into())]
    );

    // Off: no match through `part`, the parts out of memory, the window
    // switch untouched.
    let files = s
        .ok(
            Method::PATCH,
            "/v1/banks/files",
            Some(json!({"matching": {"part": false}})),
        )
        .await;
    assert_eq!(
        files["matching"],
        json!({"dihedral": true, "window": true, "part": false, "refine": null})
    );
    assert_eq!(derived_held(&s).await, bank.len() as u64 - parts);
    let hits = s.hits(&stamped).await;
    assert!(!hits.iter().any(|(_, c)| c == "part"), "{hits:?}");
    // A file added while off stores no parts (its windows it does).
    let other = std::fs::read(fixtures().join("pdq/images/labelme/q0746.jpg")).unwrap();
    let later = s.upload("/v1/banks/files/content", &other).await;
    let got = s.ok(Method::GET, &item(&later["id"]), None).await;
    let channels = got["derived"].as_array().unwrap();
    assert!(channels.contains(&json!("window")), "{got}");
    assert!(!channels.contains(&json!("part")), "{got}");
    let held_off = derived_held(&s).await;
    // The stored rows of the first item still hold its parts.
    let got = s.ok(Method::GET, &item(&added["id"]), None).await;
    assert_eq!(got["derived"], json!(["window", "region", "part"]), "{got}");

    // On again: the first item's parts are back in memory and match.
    s.ok(
        Method::PATCH,
        "/v1/banks/files",
        Some(json!({"matching": {"part": true}})),
    )
    .await;
    assert_eq!(derived_held(&s).await, held_off + parts);
    assert_eq!(
        s.hits(&stamped).await,
        vec![("files".into(), "part".into())]
    );
    // `window` off drops the bank's windows from memory too (the parts
    // stay and match).
    s.ok(Method::DELETE, &item(&later["id"]), None).await;
    assert_eq!(derived_held(&s).await, bank.len() as u64);
    s.ok(
        Method::PATCH,
        "/v1/banks/files",
        Some(json!({"matching": {"window": false}})),
    )
    .await;
    let windows = bank
        .iter()
        .filter(|h| h.source == echotrace_signals::robust::BankSource::Window)
        .count() as u64;
    assert_eq!(derived_held(&s).await, bank.len() as u64 - windows);
    assert_eq!(
        s.hits(&stamped).await,
        vec![("files".into(), "part".into())]
    );
    // A restart loads only what the bank's settings hold.
    let admin = s.admin.clone();
    s.stop().await;
    let mut config = common::config(&db.url);
    config.deliver_webhooks = false;
    let s = Service::start(config, Some(admin)).await;
    assert_eq!(derived_held(&s).await, bank.len() as u64 - windows);
    assert_eq!(
        s.hits(&stamped).await,
        vec![("files".into(), "part".into())]
    );

    // A hash-only item holds no derived channel.
    let plain = s
        .ok(
            Method::POST,
            "/v1/banks/files/content",
            Some(json!({"signals": {"md5": "0123456789abcdef0123456789abcdef"}})),
        )
        .await;
    let got = s.ok(Method::GET, &item(&plain["id"]), None).await;
    assert_eq!(got["derived"], json!([]), "{got}");
    s.stop().await;
}

/// A rectangle in shares of its image, as the console draws it (percent, two
/// decimals, in `f32` as the server computes it).
fn svg_rect(x: f32, y: f32, w: f32, h: f32) -> String {
    format!(
        "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{:.2}\"",
        x * 100.0,
        y * 100.0,
        w * 100.0,
        h * 100.0
    )
}

/// A `part` match in the console: the queue card names the channel, the
/// upload's part and the bank part, and draws the part's rectangle on the
/// (retained, blurred) upload; the debugger lists the `part` row with both
/// rectangles drawn.
async fn part_in_console_over_http(db: &TestDb) {
    let mut config = common::config(&db.url);
    config.deliver_webhooks = false;
    config.retain_media = true;
    let s = Service::start(config, None).await;
    create_admin(&s).await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "files"})))
        .await;
    let original = photo();
    s.upload("/v1/banks/files/content", &png(&original)).await;
    let stamped = jpeg(&stamp(&original, 15, 9, 90));
    let m = s.match_in(&stamped, "files", Some("part")).await;
    let d = &m["channel_detail"];
    let r: Vec<u64> = (0..4)
        .map(|i| d["query_rect"][i].as_u64().unwrap())
        .collect();
    let cut: Vec<f32> = (0..4)
        .map(|i| d["bank_removed"][i].as_f64().unwrap() as f32)
        .collect();
    let query_rect = svg_rect(
        r[0] as f32 / 480.0,
        r[1] as f32 / 300.0,
        r[2] as f32 / 480.0,
        r[3] as f32 / 300.0,
    );
    let bank_rect = svg_rect(
        cut[0],
        cut[1],
        (1.0 - cut[0] - cut[2]).max(0.0),
        (1.0 - cut[1] - cut[3]).max(0.0),
    );
    let how = format!("upload part {}×{} at {},{}", r[2], r[3], r[0], r[1]);

    let (console, cookie) = common::console_session(&s.base, "ada", "a long enough password").await;
    let get = |path: &str| {
        console
            .get(format!("{}{path}", s.base))
            .header("cookie", cookie.clone())
            .send()
    };
    let queue = get("/ui/queue").await.unwrap().text().await.unwrap();
    let card = queue
        .split("<dd class=\"channel\">")
        .nth(1)
        .and_then(|rest| rest.split("</dd>").next())
        .unwrap_or_else(|| panic!("no channel on the card: {queue}"));
    assert!(
        card.starts_with("part · threshold 28 · plain distance "),
        "{card}"
    );
    assert!(card.contains(&how), "{card} / {how}");
    assert!(card.contains("bank part cut "), "{card}");
    assert!(
        queue.contains(&query_rect),
        "{query_rect} not drawn: {queue}"
    );

    let page = get("/ui/debug").await.unwrap().text().await.unwrap();
    let form = Form::new()
        .text("csrf", common::csrf_of(&page))
        .part("file", Part::bytes(stamped).file_name("q.jpg"));
    let r = console
        .post(format!("{}/ui/debug", s.base))
        .header("cookie", cookie.clone())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    let table = page
        .split("<table id=\"debug-channels\">")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap_or_else(|| panic!("no channel table: {page}"));
    let row = table
        .split("<tr>")
        .find(|row| row.contains("<strong>part</strong>"))
        .unwrap_or_else(|| panic!("no part row: {table}"));
    assert!(row.contains(&how), "{row}");
    assert!(row.contains(&query_rect), "{query_rect}: {row}");
    assert!(row.contains(&bank_rect), "{bank_rect}: {row}");
    s.stop().await;
}

/// Re-deriving from retained originals (`POST /v1/banks/{name}/rederive`,
/// a page at a time; the console adds the original once, the second time
/// "Nothing added"): an item added in the console (media retained) while
/// the bank had `part` off gets its parts and is found through `part`; an
/// item added through `/v1` (no original kept) is counted, not changed;
/// each page that wrote is audited.
async fn rederive_over_http(db: &TestDb) {
    let mut config = common::config(&db.url);
    config.deliver_webhooks = false;
    config.retain_media = true;
    let s = Service::start(config, None).await;
    create_admin(&s).await;
    let bank = s
        .ok(
            Method::POST,
            "/v1/banks",
            Some(json!({"name": "files", "matching": {"part": false}})),
        )
        .await;
    let (console, cookie) = common::console_session(&s.base, "ada", "a long enough password").await;
    let original = photo();
    let bank_id = bank["id"].as_i64().unwrap_or_else(|| panic!("{bank}"));
    let added =
        common::console_add_content(&console, &s.base, &cookie, bank_id, "o.png", png(&original))
            .await;
    assert!(added.ends_with("msg=added"), "{added}");
    // The same file again: the bank holds it, nothing is added.
    let again =
        common::console_add_content(&console, &s.base, &cookie, bank_id, "o.png", png(&original))
            .await;
    assert!(again.ends_with("msg=held"), "{again}");
    let other = std::fs::read(fixtures().join("pdq/images/labelme/q0746.jpg")).unwrap();
    let api_item = s.upload("/v1/banks/files/content", &other).await;
    let list = s.ok(Method::GET, "/v1/banks/files/content", None).await;
    assert_eq!(list["content"].as_array().map(Vec::len), Some(2), "{list}");
    let first = list["content"][0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{list}"));
    let item = format!("/v1/banks/files/content/{first}");
    assert_eq!(
        s.ok(Method::GET, &item, None).await["derived"],
        json!(["window", "region"])
    );
    s.ok(
        Method::PATCH,
        "/v1/banks/files",
        Some(json!({"matching": {"part": true}})),
    )
    .await;
    let stamped = jpeg(&stamp(&original, 15, 9, 90));
    let hits = s.hits(&stamped).await;
    assert!(
        !hits.iter().any(|(_, c)| c == "part"),
        "no parts yet: {hits:?}"
    );

    // Page by page: the console item first, then the API item.
    let rederive = |after: Value| {
        s.ok(
            Method::POST,
            "/v1/banks/files/rederive",
            Some(json!({"after": after, "limit": 1})),
        )
    };
    let p1 = rederive(json!(0)).await;
    assert_eq!(
        p1,
        json!({"items": 1, "rederived": 1, "without_original": 0, "skipped": 0, "next_after": first})
    );
    let p2 = rederive(p1["next_after"].clone()).await;
    assert_eq!(
        p2,
        json!({"items": 1, "rederived": 0, "without_original": 1, "skipped": 0, "next_after": api_item["id"]})
    );
    let p3 = rederive(p2["next_after"].clone()).await;
    assert_eq!(p3["items"], 0, "{p3}");
    assert_eq!(p3["next_after"], Value::Null, "{p3}");
    // A page size out of range is refused, naming the field.
    for limit in [0, 1001] {
        let (status, body) = s
            .admin_call(
                Method::POST,
                "/v1/banks/files/rederive",
                Some(json!({"after": 0, "limit": limit})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.to_string().contains("limit"), "{body}");
    }

    assert_eq!(
        s.ok(Method::GET, &item, None).await["derived"],
        json!(["window", "region", "part"])
    );
    assert_eq!(
        s.hits(&stamped).await,
        vec![("files".into(), "part".into())]
    );
    let api = format!("/v1/banks/files/content/{}", api_item["id"]);
    let got = s.ok(Method::GET, &api, None).await;
    assert!(
        !got["derived"].as_array().unwrap().contains(&json!("part")),
        "{got}"
    );
    // One audit entry, for the page that wrote.
    let audit = s.ok(Method::GET, "/v1/audit?limit=100", None).await;
    let entries: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "bank.rederive")
        .collect();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["target"], format!("bank:{}", bank["id"]));
    s.stop().await;
}

async fn fills_and_window_quality_over_http(db: &TestDb) {
    let s = start(db).await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "hashes"})))
        .await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "files"})))
        .await;
    let original = photo();
    s.add_plain_pdq("hashes", &original).await;
    // A hash-only bank holds no original, so it is never refining (no
    // window to refine toward), whether automatic or switched on.
    let hashes = s.ok(Method::GET, "/v1/banks/hashes", None).await;
    assert_eq!(hashes["held_originals"], 0, "{hashes}");
    assert_eq!(hashes["refining"], false, "{hashes}");
    let hashes = s
        .ok(
            Method::PATCH,
            "/v1/banks/hashes",
            Some(json!({"matching": {"refine": true}})),
        )
        .await;
    assert_eq!(hashes["matching"]["refine"], true, "{hashes}");
    assert_eq!(hashes["refining"], false, "{hashes}");

    // Blurred fill, 10 % a side: the picture pasted over its own blurred
    // enlargement is cut out and found on the hash-only entry.
    let padded = blur_fill(&original, 576, 360);
    let m = s.match_in(&png(&padded), "hashes", None).await;
    assert_eq!(m["channel"], "border", "{m}");
    let r = &m["channel_detail"]["query_rect"];
    for (got, want) in (0..4).map(|i| (r[i].as_i64().unwrap(), [48, 30, 480, 300][i])) {
        assert!(
            (got - want).abs() <= 3,
            "rectangle {r} vs [48, 30, 480, 300]"
        );
    }
    // A 16:9 picture in a 9:16 phone frame over its blurred fill (two
    // thirds of the frame blurred).
    let wide = image::imageops::resize(&original, 480, 270, image::imageops::FilterType::Triangle);
    s.add_plain_pdq("hashes", &wide).await;
    let phone = blur_fill(&wide, 480, 853);
    let hits = s.hits(&png(&phone)).await;
    assert!(
        hits.contains(&("hashes".into(), "border".into())),
        "{hits:?}"
    );
    // Flat bands (each row one colour, white fading to grey) have no
    // sharpness either, but a blurred fill is a blurred *picture*: they
    // are no fill, and as they are not one uniform colour no border
    // detector cuts the picture out (docs/ROBUST.md, "Border detectors").
    let banded = flat_bands(&original, 75);
    let hits = s.hits(&png(&banded)).await;
    assert!(!hits.iter().any(|(b, _)| b == "hashes"), "{hits:?}");
    // The same bands of one colour are a uniform border, with the
    // fill detector's vote: found.
    let white = pad(&original, 0, 75, [255, 255, 255]);
    let hits = s.hits(&png(&white)).await;
    assert!(
        hits.contains(&("hashes".into(), "border".into())),
        "{hits:?}"
    );

    // Window quality: a low-detail picture's windows (quality < 90) are
    // matched at 28 bits, a detailed photo's at 40 (docs/ROBUST.md,
    // "Window quality").
    let tones = two_tone();
    let added = s.upload("/v1/banks/files/content", &png(&tones)).await;
    let tone_plain =
        echotrace_signals::pdq::PdqHash::from_hex(added["signals"][0]["value"].as_str().unwrap())
            .unwrap();
    let bank = echotrace_signals::robust::RobustHasher::new()
        .bank_hashes(
            tones.as_raw(),
            480,
            300,
            &echotrace_signals::robust::RobustOptions::default(),
        )
        .unwrap();
    assert!(
        bank.iter().any(|w| {
            w.source == echotrace_signals::robust::BankSource::Window
                && (50..90).contains(&w.quality)
        }),
        "the two-tone picture has low-quality windows"
    );
    let cut = |l: f32, t: f32| {
        let (dx, dy) = ((480.0 * l) as u32, (300.0 * t) as u32);
        image::imageops::crop_imm(&tones, dx, dy, 480 - dx, 300 - dy).to_image()
    };
    // A crop on the grid (12 % left and top): a window of its own.
    let on_grid = cut(0.12, 0.12);
    let (d, _, plain_d) = closest_low_quality_window(&on_grid, &bank, &tone_plain);
    assert!(d <= 28 && plain_d > 40, "{d} {plain_d}");
    let m = s.match_in(&png(&on_grid), "files", None).await;
    assert_eq!(m["channel"], "window", "{m}");
    let d = &m["channel_detail"];
    assert!(d["bank_quality"].as_u64().unwrap() < 90, "{m}");
    assert_eq!(d["threshold"], 28, "{m}");
    // A crop past the grid whose closest low-quality window is 29–40 bits
    // away: the window channel's old threshold would match it, the
    // low-quality one does not.
    let tried: Vec<(f32, f32, (u32, u32, u32))> = (13..=30)
        .flat_map(|l| [0, 4, 8, 12, 16].map(move |t| (l as f32 * 0.01, t as f32 * 0.01)))
        .map(|(l, t)| {
            (
                l,
                t,
                closest_low_quality_window(&cut(l, t), &bank, &tone_plain),
            )
        })
        .collect();
    // Nothing else comes near: regions > 36, every query hash > 40 from
    // the plain hash (dihedral, border, query crops).
    let &(l, t, _) = tried
        .iter()
        .find(|(_, _, (d, region, to_plain))| {
            (29..=40).contains(d) && *region > 36 && *to_plain > 40
        })
        .unwrap_or_else(|| panic!("no crop 29–40 bits from a window: {tried:?}"));
    let between = cut(l, t);
    // The needle itself does not match at 28; since session 16 the lookup
    // may move its sides toward the window (alignment refinement), and
    // then only a refined rectangle within 20 (`REFINE_THRESHOLD`) matches.
    let v = s.upload("/v1/lookup", &png(&between)).await;
    for m in v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["bank_name"] == "files" && m["signal_type"] == "pdq")
    {
        let d = &m["channel_detail"];
        assert_eq!(m["channel"], "window", "{m}");
        assert_eq!(d["threshold"], 20, "{m}");
        assert!(
            (29..=40).contains(&d["refined_from"].as_u64().unwrap_or(0)),
            "matched without refinement: {m}"
        );
        assert!(m["distance"].as_u64().unwrap() <= 20, "{m}");
    }

    s.stop().await;
}

/// `img` padded by `f` of its width and height on every side with its own
/// stretched, blurred copy (bench/robust `pad10_blur` / `pad20_blur`).
fn blur_pad(img: &RgbImage, f: f32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (dx, dy) = ((w as f32 * f) as u32, (h as f32 * f) as u32);
    let big = image::imageops::resize(
        img,
        w + 2 * dx,
        h + 2 * dy,
        image::imageops::FilterType::Triangle,
    );
    let mut out = image::imageops::blur(&big, w.max(h) as f32 / 30.0);
    image::imageops::overlay(&mut out, img, i64::from(dx), i64::from(dy));
    out
}

/// Session 17: a soft picture (the small `wee.jpg` fixture, enlarged)
/// padded with blurred fill on all four sides. Its top and bottom fill are
/// found only by the second look inside the left/right cut (the fill there
/// is no less sharp than the soft picture, and its edges are faint at one
/// end): without it the border rectangle kept the fill above and below
/// and matched nothing. Found on the hash-only entry through `border`,
/// with the pasted rectangle.
async fn blurred_pad_on_four_sides_over_http(db: &TestDb) {
    let s = start(db).await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "hashes"})))
        .await;
    let bytes = std::fs::read(fixtures().join("pdq/images/misc/wee.jpg"))
        .expect("../shared/fixtures/pdq/images/misc/wee.jpg");
    let soft = image::imageops::resize(
        &image::load_from_memory(&bytes).unwrap().to_rgb8(),
        480,
        300,
        image::imageops::FilterType::Triangle,
    );
    s.add_plain_pdq("hashes", &soft).await;
    for (f, want) in [(0.1, [48, 30, 480, 300]), (0.2, [96, 60, 480, 300])] {
        let padded = blur_pad(&soft, f);
        let m = s.match_in(&png(&padded), "hashes", None).await;
        assert_eq!(m["channel"], "border", "{f}: {m}");
        let r = &m["channel_detail"]["query_rect"];
        for (i, want) in want.iter().enumerate() {
            let got = r[i].as_i64().unwrap();
            // Within 1 % of the padded side (a working line is ~1.3 px).
            assert!((got - want).abs() <= 5, "{f}: rectangle {r} vs {want:?}");
        }
    }
    // The same picture with nothing in common but the fill's recipe: an
    // unrelated photo padded alike matches nothing.
    let other = std::fs::read(fixtures().join("pdq/images/labelme/q0746.jpg")).unwrap();
    let other = image::load_from_memory(&other).unwrap().to_rgb8();
    let hits = s.hits(&png(&blur_pad(&other, 0.1))).await;
    assert!(hits.is_empty(), "{hits:?}");
    s.stop().await;
}

/// Window crops (session 14): a crop of one side only, between the grid's
/// 8 and 12 %, misses every window of a low-detail picture by 1–2 % on that
/// side (and the uniform query crops cut the other three sides too); the
/// query crop that cuts 2 % of that side alone lands on the 12 % window.
async fn window_crops_over_http(db: &TestDb) {
    let s = start(db).await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "files"})))
        .await;
    let dots = waves();
    let added = s.upload("/v1/banks/files/content", &png(&dots)).await;
    let dots_plain =
        echotrace_signals::pdq::PdqHash::from_hex(added["signals"][0]["value"].as_str().unwrap())
            .unwrap();
    let bank = echotrace_signals::robust::RobustHasher::new()
        .bank_hashes(
            dots.as_raw(),
            480,
            300,
            &echotrace_signals::robust::RobustOptions::default(),
        )
        .unwrap();
    // The query hashed without the window crops (as before session 14).
    let old = echotrace_signals::robust::RobustOptions {
        window_crops: vec![],
        ..echotrace_signals::robust::RobustOptions::default()
    };
    let left = |l: f32| {
        let dx = (480.0 * l) as u32;
        image::imageops::crop_imm(&dots, dx, 0, 480 - dx, 300).to_image()
    };
    // Before: no window, region or plain hash within its threshold of
    // any query hash; after: one.
    let tried: Vec<(f32, i64, i64)> = [0.09, 0.095, 0.10, 0.105, 0.11]
        .into_iter()
        .map(|l| {
            let q = left(l);
            let before = window_margin(&q, &bank, &dots_plain, &old);
            let after = window_margin(&q, &bank, &dots_plain, &Default::default());
            (l, before, after)
        })
        .collect();
    let &(l, _, _) = tried
        .iter()
        .find(|(_, before, after)| *before > 0 && *after <= 0)
        .unwrap_or_else(|| panic!("no one-side crop found only by the window crops: {tried:?}"));
    let one_side = left(l);
    let m = s.match_in(&png(&one_side), "files", Some("window")).await;
    let d = &m["channel_detail"];
    assert_eq!(d["query_source"], "crop", "{m}");
    // Cut on the left only: 2 % of the upload's width.
    let (w, h) = one_side.dimensions();
    let cut_px = (w as f32 * 0.02).round() as u64;
    assert_eq!(
        d["query_rect"],
        json!([cut_px, 0, u64::from(w) - cut_px, h]),
        "{m}"
    );
    let removed: Vec<f64> = d["bank_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        (removed[0] - 0.12).abs() < 1e-6 && removed[1..] == [0.0; 3],
        "the 12 % window of the left side: {m}"
    );
    assert!(
        m["distance"].as_i64().unwrap() <= d["threshold"].as_i64().unwrap(),
        "{m}"
    );
    assert!(d["plain_distance"].as_u64().unwrap() > 31, "{m}");
    // Its upright and mirrored variants only: the mirrored one-side crop
    // is found through the mirror.
    let mirrored = image::imageops::flip_horizontal(&one_side);
    let m = s.match_in(&png(&mirrored), "files", Some("window")).await;
    assert_eq!(m["channel_detail"]["variant"], "flipy", "{m}");
    s.stop().await;
}

/// Session 16. Alignment refinement (docs/ROBUST.md): a 9 % crop of every
/// side of a low-detail texture falls between the crop grid's 8 and 12 %
/// windows, and no query hash comes within its threshold of any window,
/// region or the plain hash — but one comes within 40 bits of a window of
/// quality < 90 (threshold 28). The lookup moves that needle's sides
/// toward the window and matches through `window` within 20, the refined
/// rectangle in `query_rect`, the needle's own distance in `refined_from`.
/// Session 17: the bank's `matching.refine` switch — automatic (on: one
/// held original), off (no match), on (the same match), off with `window`;
/// a wrong type is a 4xx naming `refine`.
async fn alignment_refinement_over_http(db: &TestDb) {
    use echotrace_signals::robust::{RobustHasher, RobustOptions, WindowHasher, WorkImage};
    let s = start(db).await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "files"})))
        .await;
    let texture = strong_waves();
    let added = s.upload("/v1/banks/files/content", &png(&texture)).await;
    let plain =
        echotrace_signals::pdq::PdqHash::from_hex(added["signals"][0]["value"].as_str().unwrap())
            .unwrap();
    let opts = RobustOptions::default();
    let bank = RobustHasher::new()
        .bank_hashes(texture.as_raw(), 480, 300, &opts)
        .unwrap();
    let cropped = crop(&texture, 0.09);
    // Every query hash beyond its threshold of everything the item holds:
    // without refinement, no match.
    let before = window_margin(&cropped, &bank, &plain, &opts);
    assert!(
        before > 0,
        "the 9 % crop matched without refinement ({before})"
    );
    let m = s.match_in(&png(&cropped), "files", Some("window")).await;
    let d = &m["channel_detail"];
    let threshold = d["threshold"].as_u64().unwrap();
    let from = d["refined_from"]
        .as_u64()
        .unwrap_or_else(|| panic!("not through refinement: {m}"));
    let distance = m["distance"].as_u64().unwrap();
    // Refined rectangles match within 20 (`REFINE_THRESHOLD`); the
    // needle was beyond the window's own threshold, 28 (quality < 90).
    assert_eq!(threshold, 20, "{m}");
    assert!(d["bank_quality"].as_u64().unwrap() < 90, "{m}");
    assert!(from > 28 && from <= 40, "{m}");
    assert!(distance <= threshold, "{m}");
    // The refined rectangle is none of the query set's, passes the quality
    // gate, and its hash is the reported distance from the bank window.
    let set = RobustHasher::new()
        .query_set(cropped.as_raw(), cropped.width(), cropped.height(), &opts)
        .unwrap();
    let r: Vec<u32> = d["query_rect"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let rect = echotrace_signals::robust::Rect {
        x: r[0],
        y: r[1],
        w: r[2],
        h: r[3],
    };
    assert!(set.hashes.iter().all(|q| q.rect != rect), "{m}");
    let work =
        WorkImage::from_rgb8(cropped.as_raw(), cropped.width(), cropped.height(), 512).unwrap();
    let refined = WindowHasher::new().hash(&work, rect).unwrap();
    assert!(refined.quality >= 50, "{m}");
    let variant = if d["variant"] == "flipy" { 5 } else { 0 };
    let removed: Vec<f32> = d["bank_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let window = bank
        .iter()
        .filter(|b| b.source == echotrace_signals::robust::BankSource::Window)
        .find(|b| {
            b.fractions()
                .iter()
                .zip(&removed)
                .all(|(a, b)| (a - b).abs() < 1e-6)
        })
        .unwrap_or_else(|| panic!("no bank window {removed:?}: {m}"));
    assert_eq!(
        u64::from(refined.hashes.named()[variant].1.distance(&window.hash)),
        distance,
        "{m}"
    );
    assert!(d["plain_distance"].as_u64().unwrap() > 31, "{m}");
    // An unrelated low-detail picture cut the same way matches nothing.
    let hits = s.hits(&png(&crop(&two_tone(), 0.09))).await;
    assert!(hits.is_empty(), "{hits:?}");

    // Session 17: refinement is a per-bank switch. Left automatic (null),
    // a bank holding one file-added original (≤ 10,000) refines.
    let files = s.ok(Method::GET, "/v1/banks/files", None).await;
    assert_eq!(files["matching"]["refine"], Value::Null, "{files}");
    assert_eq!(files["held_originals"], 1, "{files}");
    assert_eq!(files["refining"], true, "{files}");
    // Off: the same crop no longer matches (nothing but refinement found
    // it, checked above), and the rest of the settings stay.
    let files = s
        .ok(
            Method::PATCH,
            "/v1/banks/files",
            Some(json!({"matching": {"refine": false}})),
        )
        .await;
    assert_eq!(
        files["matching"],
        json!({"dihedral": true, "window": true, "part": true, "refine": false})
    );
    assert_eq!(files["refining"], false, "{files}");
    let hits = s.hits(&png(&cropped)).await;
    assert!(hits.is_empty(), "refinement off, still matched: {hits:?}");
    // On again (explicitly): the same match through the refined channel.
    let files = s
        .ok(
            Method::PATCH,
            "/v1/banks/files",
            Some(json!({"matching": {"refine": true}})),
        )
        .await;
    assert_eq!(files["matching"]["refine"], true, "{files}");
    assert_eq!(files["refining"], true, "{files}");
    let again = s.match_in(&png(&cropped), "files", Some("window")).await;
    assert_eq!(again["channel_detail"]["refined_from"], from, "{again}");
    assert_eq!(again["distance"], distance, "{again}");
    // `window` off turns refinement off with it (it refines toward windows).
    let files = s
        .ok(
            Method::PATCH,
            "/v1/banks/files",
            Some(json!({"matching": {"window": false, "refine": true}})),
        )
        .await;
    assert_eq!(files["refining"], false, "{files}");
    assert!(s.hits(&png(&cropped)).await.is_empty());
    // A wrong type is a 4xx JSON error naming the field; nothing changes.
    for bad in [json!("yes"), json!(1), json!("auto")] {
        let (st, body) = s
            .admin_call(
                Method::PATCH,
                "/v1/banks/files",
                Some(json!({"matching": {"refine": bad}})),
            )
            .await;
        assert!(st.is_client_error(), "{st}: {body}");
        let msg = body["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains("refine"), "{body}");
    }
    let files = s.ok(Method::GET, "/v1/banks/files", None).await;
    assert_eq!(files["matching"]["refine"], true, "{files}");
    assert_eq!(files["matching"]["window"], false, "{files}");
    s.stop().await;
}

/// Session 17. The console's bank page shows the robust-matching
/// settings with the file-added originals held, and its bank form sets
/// `refine` (auto / on / off), keeping the other settings; a word it does
/// not take is a 400 naming the setting.
async fn refine_switch_in_console_over_http(db: &TestDb) {
    let s = start(db).await;
    create_admin(&s).await;
    let bank = s
        .ok(
            Method::POST,
            "/v1/banks",
            Some(json!({"name": "files", "matching": {"part": false}})),
        )
        .await;
    s.upload("/v1/banks/files/content", &png(&photo())).await;
    let (console, cookie) = common::console_session(&s.base, "ada", "a long enough password").await;
    let page_url = format!("{}/ui/banks/{}", s.base, bank["id"]);
    let page = || async {
        console
            .get(&page_url)
            .header("cookie", cookie.clone())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let state = |html: &str| {
        html.split("<p id=\"matching-state\">")
            .nth(1)
            .and_then(|rest| rest.split("</p>").next())
            .unwrap_or_else(|| panic!("no matching state: {html}"))
            .to_string()
    };
    let html = page().await;
    assert_eq!(
        state(&html),
        "Robust matching: rotations/flips on, crop windows on, parts off, alignment refinement \
         auto (refining, 1 file-added original(s) held; automatic refines up to 10000)."
    );
    assert!(
        html.contains("<option value=\"auto\" selected>"),
        "auto not selected: {html}"
    );
    let post = |refine: &'static str, description: &'static str, csrf: String| {
        console
            .post(&page_url)
            .header("cookie", cookie.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                serde_urlencoded::to_string([
                    ("csrf", csrf.as_str()),
                    ("description", description),
                    ("enabled", "1"),
                    ("refine", refine),
                ])
                .unwrap(),
            )
            .send()
    };
    let r = post("off", "", common::csrf_of(&html)).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let files = s.ok(Method::GET, "/v1/banks/files", None).await;
    assert_eq!(
        files["matching"],
        json!({"dihedral": true, "window": true, "part": false, "refine": false})
    );
    assert_eq!(files["refining"], false, "{files}");
    let html = page().await;
    assert!(
        state(&html).contains("alignment refinement off (not refining, 1 file-added"),
        "{html}"
    );
    assert!(html.contains("<option value=\"off\" selected>"), "{html}");
    // A word the switch does not take changes nothing, not even the
    // other fields of the same form.
    let r = post("maybe", "not saved", common::csrf_of(&html))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = r.text().await.unwrap();
    assert!(body.contains("matching.refine"), "{body}");
    let files = s.ok(Method::GET, "/v1/banks/files", None).await;
    assert_eq!(files["matching"]["refine"], false, "{files}");
    assert_ne!(files["description"], "not saved", "{files}");
    s.stop().await;
}

/// Session 15. A 16:9 picture letterboxed into a 9:16 frame keeps 56 % of
/// the working buffer's side: its content is hashed from a content buffer
/// of its own, at the resolution it would have had uploaded alone
/// (docs/ROBUST.md, "Content buffers"), the same pixels as the picture
/// uploaded alone.
async fn content_buffers_over_http(db: &TestDb) {
    use echotrace_signals::robust::{Rect, RobustHasher, RobustOptions, WindowHasher, WorkImage};
    let s = start(db).await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "hashes"})))
        .await;
    let bytes = std::fs::read(fixtures().join("pdq/images/bridge-mods/aaa-orig.jpg")).unwrap();
    let wide = image::imageops::resize(
        &image::load_from_memory(&bytes).unwrap().to_rgb8(),
        768,
        432,
        image::imageops::FilterType::Triangle,
    );
    s.add_plain_pdq("hashes", &wide).await;
    let plain = echotrace_signals::pdq::hash_rgb8(wide.as_raw(), 768, 432).unwrap();
    // Black bars above and below: 768 × 1365.
    let boxed = pad(&wide, 0, 466, [0, 0, 0]);
    assert_eq!(boxed.dimensions(), (768, 1364));
    let m = s.match_in(&png(&boxed), "hashes", Some("border")).await;
    let d = &m["channel_detail"];
    assert_eq!(d["query_rect"], json!([0, 466, 768, 432]), "{m}");
    // The content, as the picture uploaded alone is box-averaged (512 ×
    // 288), not as the 288 × 512 working buffer of the frame holds it.
    let alone = WorkImage::from_rgb8(wide.as_raw(), 768, 432, 512).unwrap();
    let want = WindowHasher::new()
        .hash(&alone, Rect::full(768, 432))
        .unwrap();
    let best = |h: &echotrace_signals::pdq::PdqDihedralOutput| {
        h.hashes
            .named()
            .iter()
            .map(|(_, x)| x.distance(&plain.hash))
            .min()
            .unwrap()
    };
    assert_eq!(
        m["distance"].as_u64().unwrap(),
        u64::from(best(&want)),
        "{m}"
    );
    // Without content buffers the border hash is another one.
    let old = RobustHasher::new()
        .query_set(
            boxed.as_raw(),
            768,
            1364,
            &RobustOptions {
                content_buffers: false,
                ..RobustOptions::default()
            },
        )
        .unwrap();
    let old_border = old
        .hashes
        .iter()
        .filter(|q| q.source == echotrace_signals::robust::QuerySource::Border)
        .map(|q| q.hash.distance(&plain.hash))
        .min()
        .unwrap();
    assert_ne!(u64::from(old_border), m["distance"].as_u64().unwrap());

    // An unrelated picture in the same frame: nothing.
    let other = image::imageops::resize(&waves(), 768, 432, image::imageops::FilterType::Triangle);
    let hits = s.hits(&png(&pad(&other, 0, 466, [0, 0, 0]))).await;
    assert!(!hits.iter().any(|(b, _)| b == "hashes"), "{hits:?}");
    s.stop().await;
}

fn ffmpeg_available() -> bool {
    std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A 3-second, 320×180 cut of a fixture clip, optionally padded.
fn clip(name: &str, filter: &str, out: &std::path::Path) -> Vec<u8> {
    let src = fixtures().join("vpdq/videos").join(name);
    let vf = format!("scale=320:180,setsar=1{filter}");
    let st = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&src)
        .args([
            "-t",
            "3",
            "-an",
            "-vf",
            &vf,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-movflags",
            "+faststart",
        ])
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg could not cut {name}");
    std::fs::read(out).unwrap()
}

async fn video_borders_over_http(db: &TestDb) {
    assert!(
        ffmpeg_available(),
        "the video robust tests need ffmpeg (apt-get install ffmpeg)"
    );
    // Both backends run at once in this process: one directory each.
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("et-robust-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plain = clip("pattern-hd-no-bar.mp4", "", &dir.join("a.mp4"));
    let letterbox = clip(
        "pattern-hd-no-bar.mp4",
        ",pad=320:320:0:70:black",
        &dir.join("b.mp4"),
    );
    let pillarbox = clip(
        "pattern-hd-no-bar.mp4",
        ",pad=480:180:80:0:0x808080",
        &dir.join("c.mp4"),
    );
    let other = clip(
        "doorknob-hd-no-bar.mp4",
        ",pad=320:320:0:70:black",
        &dir.join("d.mp4"),
    );
    let s = start(db).await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "clips"})))
        .await;
    s.ok(Method::POST, "/v1/banks", Some(json!({"name": "barred"})))
        .await;
    s.upload("/v1/banks/clips/content", &plain).await;
    s.upload("/v1/banks/barred/content", &letterbox).await;

    // A letterboxed upload finds the clip through its border rectangle;
    // the barred bank copy still matches it plainly.
    let hits = s.hits(&letterbox).await;
    assert!(
        hits.contains(&("clips".into(), "border".into())),
        "{hits:?}"
    );
    assert!(
        hits.contains(&("barred".into(), "plain".into())),
        "{hits:?}"
    );
    // Pillarboxed with grey bars (480×180 around the 320×180 clip): the
    // frames are cut at the detected pixels, unscaled, and find the clip.
    let hits = s.hits(&pillarbox).await;
    assert!(
        hits.contains(&("clips".into(), "border".into())),
        "{hits:?}"
    );
    // No bars in the upload, bars in the bank copy: the bank's region.
    let hits = s.hits(&plain).await;
    assert!(hits.contains(&("clips".into(), "plain".into())), "{hits:?}");
    assert!(
        hits.contains(&("barred".into(), "region".into())),
        "{hits:?}"
    );
    // A different clip with the same bars matches nothing.
    assert_eq!(s.hits(&other).await, Vec::<(String, String)>::new());
    s.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
