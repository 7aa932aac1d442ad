//! OCR benchmark: recall, precision and character error rate of `ocr_text`
//! on generated claim cards, the cost of the text-presence test on
//! text-free photos, and per-image OCR cost (the peer, pytesseract, runs on
//! the same images in the same run: `bench/run_ocr.sh`).
//!
//! `ocr [--cards N] [--out DIR] [--fixtures DIR] [--threads T]`
//! generates N statements per language (English, Arabic), renders each as
//! a bank card and as a re-designed query card (different font, size,
//! width, alignment, background, logo, JPEG quality), OCRs all of them
//! through `echotrace_signals` (isolated Tesseract), and reports:
//! * recall: query card matches its bank card under the `ocr_text` rule;
//! * false matches: every pair of cards with different statements;
//! * CER per language on clean renders;
//! * a grid of (min confidence, Jaccard threshold, min tokens) so the
//!   defaults can be chosen from data;
//! * presence-test cost on the fixture photos and on the cards;
//! * OCR time per card (end to end: decode + gate + prepare + child).
//!
//! Query images are written to DIR (default `target/ocr-bench`) with a
//! manifest, for the Python peer.

#[path = "../../../crates/cli/tests/ocr_common/mod.rs"]
mod cards;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use cards::{Lang, Rng};
use echotrace_signals::content::{ContentHasher, HashOptions, OcrGate};
use echotrace_signals::ocr::{OcrLimits, OcrWord, Tesseract};
use echotrace_signals::text::{compare_text_with, text_signature, TextMatchRule, TextSignature};

struct Card {
    lang: Lang,
    statement: usize,
    role: &'static str,
    jpeg: Vec<u8>,
    words: Vec<OcrWord>,
    ocr_ms: f64,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Re-filter the recorded words at `min_conf` into the signed text.
fn text_at(words: &[OcrWord], min_conf: f32) -> String {
    let mut out = String::new();
    let mut last = None;
    for w in words {
        if w.confidence < min_conf || !w.text.chars().any(char::is_alphanumeric) {
            continue;
        }
        if !out.is_empty() {
            out.push(if last == Some(w.line) { ' ' } else { '\n' });
        }
        out.push_str(&w.text);
        last = Some(w.line);
    }
    out
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = arg(&args, "--cards").map_or(Ok(60), |s| s.parse())?;
    let threads: usize = arg(&args, "--threads").map_or(Ok(2), |s| s.parse())?;
    let out_dir = PathBuf::from(arg(&args, "--out").unwrap_or_else(|| "target/ocr-bench".into()));
    let fixtures =
        PathBuf::from(arg(&args, "--fixtures").unwrap_or_else(|| "../shared/fixtures".into()));
    std::fs::create_dir_all(&out_dir)?;
    let tmp = out_dir.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let tess = Tesseract::locate(std::path::Path::new("tesseract"), OcrLimits::default())?;
    eprintln!("{} languages {:?}", tess.version(), tess.languages());
    let photos = cards::photos(&fixtures);

    // Statements and designs (deterministic).
    let mut rng = Rng::new(18);
    let mut jobs = Vec::new();
    for lang in [Lang::En, Lang::Ar] {
        let mut seen = std::collections::HashSet::new();
        let mut k = 0;
        while k < n {
            let s = cards::statement(lang, &mut rng);
            if !seen.insert(s.clone()) {
                continue;
            }
            let bank = cards::design(lang, &mut rng, photos.len());
            let mut query = cards::design(lang, &mut rng, photos.len());
            while query.font == bank.font {
                query = cards::design(lang, &mut rng, photos.len());
            }
            jobs.push((lang, k, s, bank, query));
            k += 1;
        }
    }
    let statements: Vec<(Lang, String)> = jobs.iter().map(|j| (j.0, j.2.clone())).collect();

    // Render + OCR on `threads` workers.
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Card>> = Mutex::new(Vec::new());
    let opts = HashOptions::default();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (jobs, next, done, tess, photos, tmp, opts) = (
                &jobs,
                &next,
                &done,
                &tess,
                &photos,
                tmp.join(format!("w{t}")),
                &opts,
            );
            s.spawn(move || {
                let _ = std::fs::create_dir_all(&tmp);
                let mut hasher = ContentHasher::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((lang, k, text, bank, query)) = jobs.get(i) else {
                        break;
                    };
                    for (role, design) in [("bank", bank), ("query", query)] {
                        let jpeg = cards::render_card(text, *lang, design, photos, &tmp);
                        let t0 = Instant::now();
                        let hashed = hasher
                            .hash_deferred(&jpeg, opts, Some(OcrGate::Always))
                            .ok();
                        let words = hashed
                            .and_then(|h| h.ocr_input)
                            .and_then(|input| tess.recognize(&input).ok())
                            .map(|o| o.words)
                            .unwrap_or_default();
                        let ocr_ms = t0.elapsed().as_secs_f64() * 1e3;
                        if let Ok(mut d) = done.lock() {
                            d.push(Card {
                                lang: *lang,
                                statement: i,
                                role,
                                jpeg,
                                words,
                                ocr_ms,
                            });
                        }
                    }
                    if k % 20 == 0 {
                        eprintln!("{lang:?} {k}");
                    }
                }
            });
        }
    });
    let mut cards_done = done.into_inner().unwrap_or_default();
    cards_done.sort_by_key(|c| (c.statement, c.role));

    // Manifest + images for the peer.
    let mut manifest = String::new();
    for c in &cards_done {
        let name = format!("{}-{}.jpg", c.statement, c.role);
        std::fs::write(out_dir.join(&name), &c.jpeg)?;
        // The same language set echotrace uses for every image.
        manifest.push_str(&format!("{name}\t{}\n", tess.languages().join("+")));
    }
    std::fs::write(out_dir.join("manifest.tsv"), manifest)?;
    let mut read = String::new();
    for c in &cards_done {
        read.push_str(&format!(
            "{}-{}\t{}\n",
            c.statement,
            c.role,
            text_at(&c.words, 40.0).replace('\n', " / ")
        ));
    }
    std::fs::write(out_dir.join("ocr-read.tsv"), read)?;
    let truth: String = statements
        .iter()
        .enumerate()
        .map(|(i, (_, s))| format!("{i}\t{s}\n"))
        .collect();
    std::fs::write(out_dir.join("statements.tsv"), truth)?;

    // Grid over the signing rule.
    let mut grid = Vec::new();
    for min_conf in [0.0f32, 30.0, 40.0, 50.0, 60.0] {
        let sigs: Vec<(usize, Lang, &str, String)> = cards_done
            .iter()
            .map(|c| (c.statement, c.lang, c.role, text_at(&c.words, min_conf)))
            .collect();
        let signed: Vec<(usize, Lang, TextSignature, usize)> = sigs
            .iter()
            .map(|(s, l, _, t)| {
                (
                    *s,
                    *l,
                    text_signature(t),
                    echotrace_signals::ocr::token_count(t),
                )
            })
            .collect();
        for jaccard in [0.2, 0.25, 0.3, 0.4, 0.5] {
            let rule = TextMatchRule {
                jaccard,
                ..TextMatchRule::default()
            };
            for min_tokens in [4usize, 6, 8] {
                let mut hit = [0usize; 2];
                let mut total = [0usize; 2];
                let mut false_matches = 0usize;
                let mut pairs = 0usize;
                for i in 0..signed.len() {
                    for j in i + 1..signed.len() {
                        let (a, b) = (&signed[i], &signed[j]);
                        let ok = a.3 >= min_tokens && b.3 >= min_tokens;
                        let m = ok
                            && compare_text_with(&a.2, &b.2, &rule)
                                .map(|c| c.is_match)
                                .unwrap_or(false);
                        if a.0 == b.0 {
                            let li = usize::from(a.1 == Lang::Ar);
                            total[li] += 1;
                            hit[li] += usize::from(m);
                        } else {
                            pairs += 1;
                            false_matches += usize::from(m);
                        }
                    }
                }
                grid.push(serde_json::json!({
                    "min_conf": min_conf, "jaccard": jaccard, "min_tokens": min_tokens,
                    "recall_en": hit[0] as f64 / total[0].max(1) as f64,
                    "recall_ar": hit[1] as f64 / total[1].max(1) as f64,
                    "false_matches": false_matches, "pairs": pairs,
                }));
            }
        }
    }

    // CER on clean renders (one font per language, default confidence rule).
    let mut cer = [Vec::new(), Vec::new()];
    let mut hasher = ContentHasher::new();
    for (i, (lang, text)) in statements.iter().enumerate().step_by(3) {
        let font = if *lang == Lang::Ar {
            cards::AR_FONTS[i % 3]
        } else {
            cards::EN_FONTS[i % 4]
        };
        let png = cards::render_clean(text, *lang, font, &tmp);
        let Ok(h) = hasher.hash_deferred(&png, &opts, Some(OcrGate::Always)) else {
            continue;
        };
        let words = h
            .ocr_input
            .and_then(|input| tess.recognize(&input).ok())
            .map(|o| o.words)
            .unwrap_or_default();
        let read = text_at(&words, 0.0).replace('\n', " ");
        cer[usize::from(*lang == Lang::Ar)].push(cards::cer(text, &read));
    }
    let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;

    // Presence test cost: text-free photos vs cards.
    let mut photo_ms = Vec::new();
    let mut photo_fired = 0usize;
    let mut photo_n = 0usize;
    for dir in ["bridge-mods", "labelme", "dih", "exif-rotn"] {
        let Ok(rd) = std::fs::read_dir(fixtures.join("pdq/images").join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(bytes) = std::fs::read(e.path()) else {
                continue;
            };
            let Ok(img) = echotrace_signals::decode::decode_image(
                &bytes,
                &Default::default(),
                &Default::default(),
            ) else {
                continue;
            };
            let t0 = Instant::now();
            let mut p = echotrace_signals::ocr::text_presence(&img.rgb, img.width, img.height);
            for _ in 0..99 {
                p = echotrace_signals::ocr::text_presence(&img.rgb, img.width, img.height);
            }
            photo_ms.push(t0.elapsed().as_secs_f64() * 1e3 / 100.0);
            photo_n += 1;
            photo_fired += usize::from(p.likely);
        }
    }
    let mut card_fired = 0usize;
    for c in &cards_done {
        if let Ok(img) = echotrace_signals::decode::decode_image(
            &c.jpeg,
            &Default::default(),
            &Default::default(),
        ) {
            card_fired += usize::from(
                echotrace_signals::ocr::text_presence(&img.rgb, img.width, img.height).likely,
            );
        }
    }

    let report = serde_json::json!({
        "cards": cards_done.len(),
        "statements_per_language": n,
        "tesseract": tess.version(),
        "ocr_ms_median": median(cards_done.iter().map(|c| c.ocr_ms).collect()),
        "cer_en": mean(&cer[0]), "cer_ar": mean(&cer[1]),
        "cer_samples": [cer[0].len(), cer[1].len()],
        "presence_photo_ms_median": median(photo_ms.clone()),
        "presence_photo_ms_max": photo_ms.iter().cloned().fold(0.0, f64::max),
        "presence_photos_fired": format!("{photo_fired}/{photo_n}"),
        "presence_cards_fired": format!("{card_fired}/{}", cards_done.len()),
        "grid": grid,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
