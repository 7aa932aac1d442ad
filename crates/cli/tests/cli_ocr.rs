//! OCR through the interfaces people use (issue 18), on generated benign
//! claim cards (`ocr_common`: Pango-rendered English and Arabic
//! statements, several fonts, sizes, backgrounds, logos, JPEG q30–90).
//!
//! * CLI: `echotrace hash --ocr --json`, `echotrace compare --type ocr A B`,
//!   hostile images (a huge noisy page, a 1×100000 strip, a page of tiny
//!   glyphs) each ending within the time limit with a clear result or a
//!   clear error.
//! * HTTP (`echotrace serve`, SQLite and PostgreSQL): `/readyz` reports
//!   OCR; bank cards get `ocr_text`; re-designed cards match their bank
//!   card through `ocr_text` (a CI-sized subset of the bench's ≥ 500-card
//!   run); other statements' cards never match; typed text ↔ OCR text
//!   both ways; a text-free photo gets no OCR; 16 concurrent OCR lookups
//!   all answer and the server's peak memory stays bounded.
//!
//! Needs Debian `tesseract-ocr tesseract-ocr-ara pango1.0-tools
//! fonts-dejavu-core fonts-noto-core fonts-hosny-amiri` (`.ci/run` installs
//! them); without them these tests FAIL, they never skip.

mod common;
mod ocr_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use echotrace_store::both_backends;
use echotrace_store::testing::TestDb;
use ocr_common::{Background, Design, Lang, Rng};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    assert!(
        p.is_dir(),
        "{} is missing: the suite needs ../shared/fixtures",
        p.display()
    );
    p
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("et-ocr-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d); // left by an earlier run with this pid
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_echotrace"))
}

fn design(font: &str, size: u32, width: u32, bg: Background, logo: bool, q: u8) -> Design {
    Design {
        font: font.into(),
        size_pt: size,
        width,
        align: "center",
        background: bg,
        logo,
        quality: q,
    }
}

/// Bank design / re-designed query design of one language.
fn designs(lang: Lang) -> (Design, Design) {
    match lang {
        Lang::En => (
            design(
                "DejaVu Serif",
                26,
                960,
                Background::Plain([250, 248, 240]),
                true,
                85,
            ),
            design("Noto Sans", 20, 760, Background::Photo(0), false, 45),
        ),
        Lang::Ar => (
            design(
                "Amiri",
                28,
                960,
                Background::Gradient([230, 235, 245], [205, 215, 230]),
                true,
                80,
            ),
            design(
                "Noto Naskh Arabic",
                24,
                820,
                Background::Plain([25, 30, 45]),
                false,
                50,
            ),
        ),
    }
}

fn statements(lang: Lang, n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut out: Vec<String> = Vec::new();
    while out.len() < n {
        let s = ocr_common::statement(lang, &mut rng);
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write card");
    p
}

/// `echotrace compare --type ocr --json A B`, which must succeed.
fn compare_ocr(a: &Path, b: &Path) -> Value {
    let (ok, v, err) = run_json(
        bin()
            .args(["compare", "--type", "ocr", "--json"])
            .arg(a)
            .arg(b),
    );
    assert!(ok, "{err}");
    v
}

fn run_json(cmd: &mut Command) -> (bool, Value, String) {
    let out = cmd.output().expect("run echotrace");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let v = serde_json::from_str(stdout.lines().next().unwrap_or("null")).unwrap_or(Value::Null);
    (
        out.status.success(),
        v,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `echotrace hash --ocr --json PATH`, which must succeed; `what` names the
/// input in a failure.
fn hash_ocr_json(path: &Path, what: &str) -> Value {
    let (ok, v, err) = run_json(bin().args(["hash", "--ocr", "--json"]).arg(path));
    assert!(ok, "hash --ocr {what} failed: {err}");
    v
}

/// The `ocr` object of the `ocr_text` signal in `hash --json` output.
fn ocr_of(v: &Value, what: &str) -> Value {
    v["signals"]
        .as_array()
        .expect("signals")
        .iter()
        .find(|s| s["type"] == json!("ocr_text"))
        .unwrap_or_else(|| panic!("{what} got no ocr_text: {v}"))["ocr"]
        .clone()
}

/// An MP4 (H.264, 5 fps) of one second of plain grey, then three seconds
/// of `card`: a scene change onto a text card, as a video re-post of a
/// claim card looks. Made by ffmpeg from the card image.
fn card_video(card_jpeg: &[u8], dir: &Path, name: &str) -> Vec<u8> {
    let img = image::load_from_memory(card_jpeg).expect("card decodes");
    // Even sides for yuv420p.
    let (w, h) = (img.width() & !1, img.height() & !1);
    let still = write(dir, &format!("{name}.png"), &{
        let mut png = Vec::new();
        img.crop_imm(0, 0, w, h)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("png");
        png
    });
    let out = dir.join(format!("{name}.mp4"));
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("color=c=gray:s={w}x{h}:d=1:r=5"))
        .args(["-loop", "1", "-t", "3", "-r", "5", "-i"])
        .arg(&still)
        .args([
            "-filter_complex",
            "[0:v][1:v]concat=n=2:v=1[v]",
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg (apt-get install ffmpeg)");
    assert!(status.success(), "ffmpeg failed to make the test video");
    std::fs::read(&out).expect("video written")
}

/// A one-page PDF whose only content is `jpeg` drawn full-page: no text
/// layer, as a scanned magazine page is. Hand-written PDF 1.4 (catalog,
/// pages, page, content stream, DCTDecode image XObject, xref).
fn image_only_pdf(jpeg: &[u8]) -> Vec<u8> {
    let img = image::load_from_memory(jpeg).expect("jpeg decodes");
    let (w, h) = (img.width(), img.height());
    let content = format!("q {w} 0 0 {h} 0 0 cm /Im0 Do Q");
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w} {h}] \
             /Resources << /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>"
        )
        .into_bytes(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        )
        .into_bytes(),
    ];
    let mut image_obj = format!(
        "<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceRGB \
         /BitsPerComponent 8 /Filter /DCTDecode /Length {} >>\nstream\n",
        jpeg.len()
    )
    .into_bytes();
    image_obj.extend_from_slice(jpeg);
    image_obj.extend_from_slice(b"\nendstream");
    objects.push(image_obj);
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(body);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// Share of `text`'s words found in `read` (lower-cased, punctuation trimmed).
fn words_found(text: &str, read: &str) -> f64 {
    let read = read.to_lowercase();
    let expected: Vec<String> = text
        .to_lowercase()
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string())
        .filter(|w| !w.is_empty())
        .collect();
    let found = expected
        .iter()
        .filter(|w| read.contains(w.as_str()))
        .count();
    found as f64 / expected.len().max(1) as f64
}

#[test]
fn hash_ocr_reads_video_key_frames_and_scanned_pdf_pages() {
    let tmp = tmpdir("media");
    let photos = ocr_common::photos(&fixtures());
    for lang in [Lang::En, Lang::Ar] {
        let text = &statements(lang, 1, 41)[0];
        let (bank, _) = designs(lang);
        let card = ocr_common::render_card(text, lang, &bank, &photos, &tmp);
        // Video: vpdq plus the key frames' ocr_text.
        let video = write(
            &tmp,
            &format!("{lang:?}.mp4"),
            &card_video(&card, &tmp, &format!("{lang:?}-v")),
        );
        let v = hash_ocr_json(&video, "video");
        let sigs = v["signals"].as_array().expect("signals");
        let types: Vec<&str> = sigs
            .iter()
            .map(|s| s["type"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            types,
            ["vpdq", "ocr_text", "md5", "sha256"],
            "{lang:?} video: {v}"
        );
        let read = sigs[1]["ocr"]["text"].as_str().unwrap_or("");
        assert!(
            words_found(text, read) >= 0.7,
            "{lang:?} video read {read:?} of {text:?}"
        );
        // A scanned page: a PDF with no text layer, only the card image.
        let pdf = write(&tmp, &format!("{lang:?}.pdf"), &image_only_pdf(&card));
        let v = hash_ocr_json(&pdf, "pdf");
        let sigs = v["signals"].as_array().expect("signals");
        let types: Vec<&str> = sigs
            .iter()
            .map(|s| s["type"].as_str().unwrap_or(""))
            .collect();
        assert!(
            !types.contains(&"text_minhash"),
            "the PDF has no text layer: {v}"
        );
        let ocr = ocr_of(&v, &format!("{lang:?} scanned PDF"));
        let read = ocr["text"].as_str().unwrap_or("");
        assert!(
            words_found(text, read) >= 0.7,
            "{lang:?} PDF read {read:?} of {text:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn hash_ocr_reads_english_and_arabic_cards() {
    let tmp = tmpdir("hash");
    let photos = ocr_common::photos(&fixtures());
    for (lang, words) in [
        (Lang::En, ["weather", "degrees"]),
        (Lang::Ar, ["طقس", "درجة"]),
    ] {
        let mut rng = Rng::new(7);
        // A weather report (kind 1) in each language.
        let text = loop {
            let s = ocr_common::statement(lang, &mut rng);
            if s.contains(words[1]) || s.to_lowercase().contains(words[1]) {
                break s;
            }
        };
        let (bank, _) = designs(lang);
        let card = ocr_common::render_card(&text, lang, &bank, &photos, &tmp);
        let path = write(&tmp, &format!("{lang:?}.jpg"), &card);
        let v = hash_ocr_json(&path, &format!("{lang:?} card"));
        let types: Vec<&str> = v["signals"]
            .as_array()
            .expect("signals")
            .iter()
            .map(|s| s["type"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(types, ["pdq", "ocr_text", "md5", "sha256"], "{v}");
        let ocr = &v["signals"][1];
        assert!(ocr["value"]
            .as_str()
            .unwrap_or("")
            .starts_with("text_minhash:v1:"));
        let read = ocr["ocr"]["text"].as_str().unwrap_or("").to_lowercase();
        // Most of the statement's words are read back.
        let expected: Vec<String> = text
            .to_lowercase()
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string())
            .filter(|w| !w.is_empty())
            .collect();
        let found = expected
            .iter()
            .filter(|w| read.contains(w.as_str()))
            .count();
        assert!(
            found * 10 >= expected.len() * 7,
            "{lang:?}: OCR read {read:?}; only {found} of {} words of {text:?}",
            expected.len()
        );
        assert!(
            ocr["ocr"]["mean_confidence"].as_f64().unwrap_or(0.0) > 50.0,
            "{ocr}"
        );
        assert!(ocr["ocr"]["kept"].as_u64().unwrap_or(0) >= 6, "{ocr}");
    }
    // No text, no ocr_text (and no failure).
    let flat = image::RgbImage::from_fn(600, 400, |x, y| {
        image::Rgb([(x / 3) as u8, (y / 2) as u8, 128])
    });
    let mut png = Vec::new();
    flat.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("png");
    let path = write(&tmp, "flat.png", &png);
    let v = hash_ocr_json(&path, "text-free image");
    assert!(
        !v.to_string().contains("ocr_text"),
        "a text-free image got an ocr_text: {v}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A weak reading of small text is read a second time enlarged
/// (`ocr.enlarged`): a 16 pt DejaVu Sans Arabic card 1,100 px wide (word
/// boxes under 32 px; its first reading is under the mean confidence of 80)
/// is, and the enlarged reading is kept and read well enough to match its
/// statement typed. Small text read confidently (16 pt Noto Naskh: boxes
/// under 32 px, confidence ≥ 80) keeps its first reading with no second
/// run, and so does large text (48 pt).
#[test]
fn hash_ocr_reads_weak_small_text_enlarged() {
    let tmp = tmpdir("small");
    let photos = ocr_common::photos(&fixtures());
    let text = &statements(Lang::Ar, 1, 2026)[0];
    let typed = write(&tmp, "typed.txt", text.as_bytes());
    for (font, size, enlarged) in [
        ("DejaVu Sans", 16, true),
        ("Noto Naskh Arabic", 16, false),
        ("Noto Naskh Arabic", 48, false),
    ] {
        let d = design(
            font,
            size,
            1100,
            Background::Plain([235, 220, 202]),
            false,
            90,
        );
        let card = write(
            &tmp,
            &format!("{size}-{enlarged}.jpg"),
            &ocr_common::render_card(text, Lang::Ar, &d, &photos, &tmp),
        );
        let what = format!("{font} {size} pt card");
        let ocr = ocr_of(&hash_ocr_json(&card, &what), &what);
        assert_eq!(ocr["enlarged"], json!(enlarged), "{font} {size} pt: {ocr}");
        let height = ocr["text_height"].as_u64().unwrap_or(0);
        let confidence = ocr["mean_confidence"].as_f64().unwrap_or(0.0);
        if !enlarged && size == 16 {
            // Small but confident: the weak-reading condition alone kept
            // it from a second run.
            assert!(height < 32 && confidence >= 80.0, "{font} {size} pt: {ocr}");
        } else {
            // Large text, or small text read at twice the size.
            assert!(height >= 32, "{font} {size} pt: {ocr}");
        }
        let read = ocr["text"].as_str().unwrap_or("");
        assert!(
            words_found(text, read) >= 0.8,
            "{font} {size} pt read {read:?} of {text:?}"
        );
        let v = compare_ocr(&typed, &card);
        assert_eq!(
            v["match"],
            json!(true),
            "{font} {size} pt typed vs OCR: {v}"
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// An image whose ink looks cursive (joined letters) is read with the
/// Arabic script group first, so an Arabic card costs one Tesseract run
/// (`ocr.runs`: `["ara"]`, where the Latin-first order made two, `eng`
/// then `ara`) and still reads well enough to match its statement typed;
/// an English card is read with `eng` alone, as before.
#[test]
fn hash_ocr_reads_cursive_cards_with_the_arabic_group_first() {
    let tmp = tmpdir("cursive");
    let photos = ocr_common::photos(&fixtures());
    let cases = [
        (
            Lang::Ar,
            design(
                "Noto Naskh Arabic",
                28,
                960,
                Background::Plain([250, 248, 240]),
                true,
                85,
            ),
        ),
        (
            Lang::Ar,
            design(
                "Amiri",
                32,
                1100,
                Background::Gradient([20, 40, 90], [60, 20, 40]),
                false,
                60,
            ),
        ),
        (
            Lang::Ar,
            design(
                "DejaVu Sans",
                24,
                820,
                Background::Plain([235, 201, 205]),
                true,
                75,
            ),
        ),
        (
            Lang::En,
            design(
                "DejaVu Serif",
                26,
                960,
                Background::Plain([250, 248, 240]),
                true,
                85,
            ),
        ),
        (
            Lang::En,
            design(
                "Noto Sans",
                24,
                1100,
                Background::Gradient([20, 40, 90], [60, 20, 40]),
                false,
                60,
            ),
        ),
    ];
    for (i, (lang, d)) in cases.iter().enumerate() {
        let text = &statements(*lang, i + 1, 4242)[i];
        let typed = write(&tmp, &format!("{i}.txt"), text.as_bytes());
        let card = write(
            &tmp,
            &format!("{i}.jpg"),
            &ocr_common::render_card(text, *lang, d, &photos, &tmp),
        );
        let what = format!("{lang:?} {d:?}");
        let ocr = ocr_of(&hash_ocr_json(&card, &what), &what);
        let group = match lang {
            Lang::Ar => "ara",
            Lang::En => "eng",
        };
        assert_eq!(ocr["language"], json!(group), "{lang:?} {d:?}: {ocr}");
        // The script groups tried: only the right one (an enlarged second
        // reading of the same group may follow).
        let runs: Vec<&str> = ocr["runs"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(runs.first(), Some(&group), "{lang:?} {d:?}: {ocr}");
        assert!(
            runs.iter().all(|r| r.starts_with(group)),
            "{lang:?} {d:?} read with another script group too: {ocr}"
        );
        let read = ocr["text"].as_str().unwrap_or("");
        assert!(
            words_found(text, read) >= 0.8,
            "{lang:?} {d:?} read {read:?} of {text:?}"
        );
        let v = compare_ocr(&typed, &card);
        assert_eq!(v["match"], json!(true), "{lang:?} {d:?} typed vs OCR: {v}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A weak reading is read again binarised by Sauvola's local threshold
/// (`ocr.runs` gains `ara:sauvola`) and the more confident reading kept
/// (`ocr.adaptive`): on Arabic cards of the bench's failure classes
/// (photo backgrounds at JPEG q30–60, DejaVu Sans on gradients), at least
/// one keeps the adaptive reading, and every card that keeps it matches
/// its statement typed (`compare --type ocr`). A card read with no
/// adaptive run was read confidently (mean word confidence ≥ 80); a clean
/// card on a plain light background makes no adaptive run.
#[test]
fn hash_ocr_reads_weak_cards_again_with_a_local_threshold() {
    let tmp = tmpdir("adaptive");
    let photos = ocr_common::photos(&fixtures());
    let cases = [
        (
            design("Amiri", 28, 960, Background::Photo(1), false, 60),
            false,
        ),
        (
            design("DejaVu Sans", 32, 700, Background::Photo(2), true, 30),
            false,
        ),
        (
            design(
                "DejaVu Sans",
                32,
                700,
                Background::Gradient([53, 21, 66], [39, 51, 57]),
                false,
                60,
            ),
            false,
        ),
        (
            design(
                "DejaVu Sans",
                28,
                820,
                Background::Gradient([247, 202, 247], [237, 212, 206]),
                false,
                75,
            ),
            false,
        ),
        (
            design("Amiri Bold", 20, 1100, Background::Photo(1), false, 45),
            false,
        ),
        (
            design(
                "Noto Naskh Arabic",
                28,
                960,
                Background::Plain([250, 248, 240]),
                true,
                85,
            ),
            true,
        ),
    ];
    let texts = statements(Lang::Ar, cases.len(), 1515);
    let mut kept_adaptive = 0;
    for (i, ((d, clean), text)) in cases.iter().zip(&texts).enumerate() {
        let typed = write(&tmp, &format!("{i}.txt"), text.as_bytes());
        let card = write(
            &tmp,
            &format!("{i}.jpg"),
            &ocr_common::render_card(text, Lang::Ar, d, &photos, &tmp),
        );
        let what = format!("{d:?}");
        let ocr = ocr_of(&hash_ocr_json(&card, &what), &what);
        let runs: Vec<&str> = ocr["runs"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let adaptive_run = runs.contains(&"ara:sauvola");
        let adaptive = ocr["adaptive"] == json!(true);
        let confidence = ocr["mean_confidence"].as_f64().unwrap_or(0.0);
        assert!(
            adaptive_run || confidence >= 80.0,
            "a weak reading was not read again: {d:?}: {ocr}"
        );
        assert!(!adaptive || adaptive_run, "{d:?}: {ocr}");
        if *clean {
            assert!(!adaptive_run, "a clean card was read twice: {ocr}");
        }
        if adaptive {
            kept_adaptive += 1;
            let v = compare_ocr(&typed, &card);
            assert_eq!(v["match"], json!(true), "{d:?} typed vs OCR: {v}");
        }
        eprintln!("{d:?}: runs {runs:?}, adaptive {adaptive}, confidence {confidence:.1}");
    }
    assert!(
        kept_adaptive >= 1,
        "no card kept its adaptive reading: the failure classes read as before"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn compare_type_ocr_matches_redesigned_cards_only() {
    let tmp = tmpdir("compare");
    let photos = ocr_common::photos(&fixtures());
    for lang in [Lang::En, Lang::Ar] {
        let texts = statements(lang, 2, 99);
        let (bank, query) = designs(lang);
        let a = write(
            &tmp,
            &format!("{lang:?}-a-bank.jpg"),
            &ocr_common::render_card(&texts[0], lang, &bank, &photos, &tmp),
        );
        let a2 = write(
            &tmp,
            &format!("{lang:?}-a-query.jpg"),
            &ocr_common::render_card(&texts[0], lang, &query, &photos, &tmp),
        );
        let b2 = write(
            &tmp,
            &format!("{lang:?}-b-query.jpg"),
            &ocr_common::render_card(&texts[1], lang, &query, &photos, &tmp),
        );
        let v = compare_ocr(&a, &a2);
        assert_eq!(v["match"], json!(true), "{lang:?} same statement: {v}");
        assert!(
            v["a"]["text"].is_string() && v["b"]["text"].is_string(),
            "{v}"
        );
        let v = compare_ocr(&a, &b2);
        assert_eq!(
            v["match"],
            json!(false),
            "{lang:?} different statements: {v}"
        );
        // Typed text against OCR text.
        let typed = write(&tmp, &format!("{lang:?}.txt"), texts[0].as_bytes());
        let v = compare_ocr(&typed, &a2);
        assert_eq!(v["match"], json!(true), "{lang:?} typed vs OCR: {v}");
    }
    // Bad operand: a clear error, exit 2.
    let out = bin()
        .args([
            "compare",
            "--type",
            "ocr",
            "/nonexistent/a.jpg",
            "also-missing",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(!out.stderr.is_empty());
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Every claim card of an outlet carries its logo header, and outlets
/// reuse sentence templates: two cards with the same header and a shared
/// templated sentence, whose statements differ in every name and number,
/// must not match, while a re-designed card of one of them (another font,
/// size and background, no logo) still does. The two statements and the
/// two logo designs are the card bench's seed-31 false match
/// (`36-query ~ 77-bank`, docs/BENCHMARKS.md "OCR"): as typed text with
/// the header line, the pair matches under the `ocr_text` rule (the header
/// dilutes the short-text edit distance); read from the cards, the header
/// is not signed and the pair does not match.
#[test]
fn compare_type_ocr_shared_logo_header_and_template_do_not_match() {
    let tmp = tmpdir("header");
    let photos = ocr_common::photos(&fixtures());
    let a = "City Rovers beat Lakeside Dynamo 5-0 on Saturday in front of 12000 supporters. \
             Children from 24 schools in Porto painted a mural by the entrance. \
             Trains to Bergen will run every 40 minutes.";
    let b = "Riverside Wanderers beat Lakeside Dynamo 6-0 on Friday in front of 13000 supporters. \
             Children from 39 schools in Perth painted a mural by the entrance. \
             Trains to Lima will run every 79 minutes.";
    let card = |font: &str, size_pt, width, align, background, logo, quality| Design {
        font: String::from(font),
        size_pt,
        width,
        align,
        background,
        logo,
        quality,
    };
    let bank_a = card(
        "DejaVu Sans Bold",
        20,
        820,
        "right",
        Background::Gradient([223, 246, 206], [222, 215, 211]),
        true,
        90,
    );
    let query_b = card(
        "DejaVu Sans",
        24,
        960,
        "right",
        Background::Plain([66, 45, 24]),
        true,
        30,
    );
    let query_a = card(
        "Noto Serif",
        28,
        700,
        "left",
        Background::Photo(1),
        false,
        45,
    );
    let render = |name: &str, text: &str, d: &Design| {
        write(
            &tmp,
            name,
            &ocr_common::render_card(text, Lang::En, d, &photos, &tmp),
        )
    };
    let a_bank = render("a-bank.jpg", a, &bank_a);
    let b_query = render("b-query.jpg", b, &query_b);
    let a_query = render("a-query.jpg", a, &query_a);

    // Both logo cards: the header is read, shown, and not signed.
    let v = compare_ocr(&b_query, &a_bank);
    for side in ["a", "b"] {
        assert_eq!(v[side]["header"], json!("DAILY BULLETIN"), "{side}: {v}");
        let text = v[side]["text"].as_str().unwrap_or_default();
        assert!(
            !text.contains("BULLETIN") && text.contains("painted a mural by the"),
            "{side}: {v}"
        );
    }
    assert_eq!(
        v["match"],
        json!(false),
        "templated statements matched: {v}"
    );

    // The same two statements as typed text, each under the header line:
    // the header alone takes the pair under the short-text edit rule, so
    // the cards above are the near-duplicate this test is about.
    let typed =
        |name: &str, text: &str| write(&tmp, name, format!("DAILY BULLETIN\n{text}").as_bytes());
    let v = compare_ocr(&typed("b.txt", b), &typed("a.txt", a));
    assert_eq!(v["match"], json!(true), "typed pair with the header: {v}");
    assert_eq!(v["rule"], json!("short_edit"), "{v}");

    // A re-designed card of statement A (no logo) still finds A's bank card.
    let v = compare_ocr(&a_query, &a_bank);
    assert_eq!(v["match"], json!(true), "re-designed card: {v}");
    assert!(v["a"].get("header").is_none(), "no logo, no header: {v}");

    // `hash --ocr` shows the header beside the signed text.
    let o = ocr_of(&hash_ocr_json(&a_bank, "a-bank"), "a-bank");
    assert_eq!(o["header"], json!("DAILY BULLETIN"), "{o}");

    // An Arabic logo card: its header "نشرة الأخبار" is not signed either,
    // and the re-designed card without the logo still matches.
    // (A dark card is inverted before OCR, so the white label reads well.)
    let texts = statements(Lang::Ar, 1, 31);
    let (_, query) = designs(Lang::Ar);
    let bank = card(
        "Noto Naskh Arabic",
        24,
        700,
        "left",
        Background::Gradient([42, 34, 47], [66, 24, 31]),
        true,
        45,
    );
    let ar_bank = write(
        &tmp,
        "ar-bank.jpg",
        &ocr_common::render_card(&texts[0], Lang::Ar, &bank, &photos, &tmp),
    );
    let ar_query = write(
        &tmp,
        "ar-query.jpg",
        &ocr_common::render_card(&texts[0], Lang::Ar, &query, &photos, &tmp),
    );
    let v = compare_ocr(&ar_query, &ar_bank);
    assert_eq!(v["match"], json!(true), "Arabic re-designed card: {v}");
    let header = v["b"]["header"].as_str().unwrap_or_default();
    assert!(header.contains("نشرة"), "Arabic header: {v}");
    assert!(
        !v["b"]["text"].as_str().unwrap_or_default().contains("نشرة"),
        "{v}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn hostile_images_end_within_the_time_limit() {
    let tmp = tmpdir("hostile");
    // A huge noisy page.
    let mut x: u32 = 12345;
    let noise = image::GrayImage::from_fn(5000, 5000, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        image::Luma([(x & 0xff) as u8])
    });
    let mut png = Vec::new();
    noise
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("png");
    let noisy = write(&tmp, "noise.png", &png);
    // A 1×100000 strip (refused by the decoder's side limit) and a
    // 1×60000 one (decoded, too thin to hold text: not OCRed).
    let mut strips = Vec::new();
    for h in [100_000u32, 60_000] {
        let strip = image::GrayImage::from_fn(1, h, |_, y| image::Luma([(y % 2 * 255) as u8]));
        let mut png = Vec::new();
        strip
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("png");
        strips.push(write(&tmp, &format!("strip{h}.png"), &png));
    }
    // A page full of tiny glyphs.
    let words = "tiny glyph text ".repeat(1500);
    let glyphs = ocr_common::pango(
        &words,
        Lang::En,
        "DejaVu Sans",
        3,
        2400,
        "left",
        "#000000",
        &tmp,
    );
    let mut page =
        image::RgbImage::from_pixel(glyphs.width(), glyphs.height(), image::Rgb([255, 255, 255]));
    for (x, y, p) in glyphs.enumerate_pixels() {
        if p[3] > 128 {
            page.put_pixel(x, y, image::Rgb([0, 0, 0]));
        }
    }
    let mut png = Vec::new();
    page.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("png");
    let tiny = write(&tmp, "tiny.png", &png);

    for (name, path) in [
        ("noise", &noisy),
        ("strip 1x100000", &strips[0]),
        ("strip 1x60000", &strips[1]),
        ("tiny", &tiny),
    ] {
        let started = Instant::now();
        let out = bin()
            .args(["hash", "--ocr", "--ocr-timeout-secs", "3", "--json"])
            .arg(path)
            .output()
            .expect("run");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(20), "{name}: took {took:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).expect("JSON line");
            assert!(v["signals"].is_array(), "{name}: {v}");
            if name.starts_with("strip") {
                assert!(!v.to_string().contains("ocr_text"), "{name}: {v}");
            }
        } else {
            assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
            let clear = stderr.contains("OCR") || stderr.contains("limit");
            assert!(clear, "{name}: unclear error {stderr:?}");
            assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        }
        eprintln!(
            "hostile {name}: {took:?}, exit {:?}, {}",
            out.status.code(),
            stderr.trim()
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

// ----- HTTP ----------------------------------------------------------------

both_backends!(ocr_lookups_over_http);

/// Peak resident memory of a process (VmHWM), KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    common::proc_status_kib(pid, "VmHWM:").unwrap_or(0)
}

fn multipart(file: &[u8], fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "----echotrace-ocr-test-boundary";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\ncontent-disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"card.jpg\"\r\ncontent-type: image/jpeg\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(
    client: &Client,
    key: &str,
    url: String,
    file: &[u8],
    fields: &[(&str, &str)],
) -> (StatusCode, Value) {
    let (ct, body) = multipart(file, fields);
    let resp = client
        .post(url)
        .bearer_auth(key)
        .header("content-type", ct)
        .body(body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("request");
    let s = resp.status();
    (s, resp.json().await.unwrap_or(Value::Null))
}

async fn post_json(client: &Client, key: &str, url: String, body: Value) -> (StatusCode, Value) {
    let resp = client
        .post(url)
        .bearer_auth(key)
        .json(&body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("request");
    let s = resp.status();
    (s, resp.json().await.unwrap_or(Value::Null))
}

fn matched_via(v: &Value, content_id: i64, signal: &str) -> bool {
    v["matches"].as_array().is_some_and(|ms| {
        ms.iter()
            .any(|m| m["content_id"] == json!(content_id) && m["signal_type"] == json!(signal))
    })
}

async fn ocr_lookups_over_http(db: &TestDb) {
    let server = common::Server::spawn(&db.url, &["--ocr-workers", "2"]).await;
    let (base, key) = (server.base.clone(), server.admin.clone());
    let client = Client::new();
    let tmp = tmpdir(&format!("http-{}", db.url.len()));
    let photos = ocr_common::photos(&fixtures());

    // /readyz says OCR is on, and which languages.
    let ready: Value = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["ocr"]["enabled"], json!(true), "{ready}");
    assert_eq!(ready["ocr"]["languages"], json!(["ara", "eng"]), "{ready}");

    let (s, v) = post_json(
        &client,
        &key,
        format!("{base}/v1/banks"),
        json!({"name": "cards"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // Bank cards: 3 statements per language, plus 3 others per language
    // that are never banked (precision).
    let per_lang = 3;
    let mut banked: Vec<(Lang, String, i64)> = Vec::new();
    let mut others: Vec<(Lang, String)> = Vec::new();
    for (lang, seed) in [(Lang::En, 1801), (Lang::Ar, 1802)] {
        let texts = statements(lang, 2 * per_lang, seed);
        let (bank, _) = designs(lang);
        for t in &texts[..per_lang] {
            let card = ocr_common::render_card(t, lang, &bank, &photos, &tmp);
            let (s, v) = upload(
                &client,
                &key,
                format!("{base}/v1/banks/cards/content"),
                &card,
                &[("labels", "card")],
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            let has_ocr = v["signals"]
                .as_array()
                .is_some_and(|a| a.iter().any(|s| s["signal_type"] == json!("ocr_text")));
            assert!(has_ocr, "bank card got no ocr_text: {v}");
            banked.push((lang, t.clone(), v["id"].as_i64().expect("content id")));
        }
        for t in &texts[per_lang..] {
            others.push((lang, t.clone()));
        }
    }

    // Re-designed cards match their bank card through ocr_text.
    let mut hits = [0usize; 2];
    for (lang, text, id) in &banked {
        let (_, query) = designs(*lang);
        let card = ocr_common::render_card(text, *lang, &query, &photos, &tmp);
        let (s, v) = upload(&client, &key, format!("{base}/v1/lookup"), &card, &[]).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let ok = matched_via(&v, *id, "ocr_text");
        hits[usize::from(*lang == Lang::Ar)] += usize::from(ok);
        if !ok {
            eprintln!("{lang:?} re-designed card missed item {id}: {v}");
        }
    }
    eprintln!(
        "HTTP subset recall: en {}/{per_lang}, ar {}/{per_lang}",
        hits[0], hits[1]
    );
    // The subset's share of the bench targets (≥ 95 % English, ≥ 90 %
    // Arabic, measured on ≥ 500 cards in bench/run_ocr.sh): every English
    // card, and all but one Arabic card of three.
    assert_eq!(hits[0], per_lang, "English recall on the subset");
    assert!(
        hits[1] + 1 >= per_lang,
        "Arabic recall on the subset: {}/{per_lang}",
        hits[1]
    );

    // A tightly set Arabic card: large Amiri Bold, whose dots, descenders
    // and ascenders cross the space between its lines, so no row between
    // them is empty. The presence gate once took it for texture and never
    // OCRed it (as 10 of 250 Arabic bench cards); it is a lookup, so it
    // matches through ocr_text only when the gate fires.
    let (lang, text, id) = &banked[per_lang + 1];
    let crowded = design(
        "Amiri Bold",
        32,
        960,
        Background::Gradient([235, 238, 222], [208, 212, 236]),
        false,
        60,
    );
    let card = ocr_common::render_card(text, *lang, &crowded, &photos, &tmp);
    let (s, v) = upload(&client, &key, format!("{base}/v1/lookup"), &card, &[]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        matched_via(&v, *id, "ocr_text"),
        "tightly set Arabic card did not find item {id}: {v}"
    );

    // Other statements' cards never match.
    for (lang, text) in &others {
        let (_, query) = designs(*lang);
        let card = ocr_common::render_card(text, *lang, &query, &photos, &tmp);
        let (s, v) = upload(&client, &key, format!("{base}/v1/lookup"), &card, &[]).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            v["matches"],
            json!([]),
            "{lang:?} unrelated card matched: {v}"
        );
    }

    // Typed text finds the card (typed → OCR) ...
    let (lang, text, id) = &banked[per_lang];
    let (s, v) = post_json(
        &client,
        &key,
        format!("{base}/v1/lookup"),
        json!({"text": text}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        matched_via(&v, *id, "ocr_text"),
        "{lang:?} typed text did not find the card: {v}"
    );
    // ... and a card finds typed bank text (OCR → typed).
    let typed_statement = &others[0].1;
    let (s, v) = post_json(
        &client,
        &key,
        format!("{base}/v1/banks/cards/content"),
        json!({"text": typed_statement}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let typed_id = v["id"].as_i64().expect("id");
    let (_, query) = designs(others[0].0);
    let card = ocr_common::render_card(typed_statement, others[0].0, &query, &photos, &tmp);
    let (s, v) = upload(&client, &key, format!("{base}/v1/lookup"), &card, &[]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        matched_via(&v, typed_id, "ocr_text"),
        "card did not find typed bank text: {v}"
    );

    // A video carrying the re-designed card (key frames are OCRed) and a
    // scanned PDF page of it (no text layer: rendered and OCRed) find the
    // bank card through ocr_text.
    for (kind, (lang, text, id)) in [("video", &banked[0]), ("pdf", &banked[per_lang + 1])] {
        let (_, query) = designs(*lang);
        let card = ocr_common::render_card(text, *lang, &query, &photos, &tmp);
        let bytes = if kind == "video" {
            card_video(&card, &tmp, &format!("http-{lang:?}"))
        } else {
            image_only_pdf(&card)
        };
        let (s, v) = upload(&client, &key, format!("{base}/v1/lookup"), &bytes, &[]).await;
        assert_eq!(s, StatusCode::OK, "{kind}: {v}");
        assert!(
            matched_via(&v, *id, "ocr_text"),
            "{lang:?} {kind} of the card did not find it: {v}"
        );
    }

    // A text-free photo is not OCRed (the presence test), and still matches by PDQ.
    let photo = std::fs::read(fixtures().join("pdq/images/labelme/q0746.jpg")).expect("fixture");
    let (s, v) = upload(&client, &key, format!("{base}/v1/lookup"), &photo, &[]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        !v.to_string().contains("ocr_text"),
        "text-free photo got OCR: {v}"
    );

    // 16 concurrent OCR lookups: all answer, memory stays bounded.
    let before = peak_rss_kib(server.child.id());
    // A small card (fewer pixels, quicker OCR) of the first statement.
    let small = Design {
        width: 560,
        size_pt: 16,
        ..designs(banked[0].0).1
    };
    let card = ocr_common::render_card(&banked[0].1, banked[0].0, &small, &photos, &tmp);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, base, key, card) = (client.clone(), base.clone(), key.clone(), card.clone());
        tasks.push(tokio::spawn(async move {
            upload(&client, &key, format!("{base}/v1/lookup"), &card, &[]).await
        }));
    }
    for t in tasks {
        let (s, v) = t.await.expect("task");
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(matched_via(&v, banked[0].2, "ocr_text"), "{v}");
    }
    let after = peak_rss_kib(server.child.id());
    eprintln!(
        "16 concurrent OCR lookups: {:?}, server peak RSS {before} → {after} KiB",
        started.elapsed()
    );
    assert!(after < 1024 * 1024, "server peak RSS {after} KiB");
    let _ = std::fs::remove_dir_all(&tmp);
}
