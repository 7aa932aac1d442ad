//! OCR benchmark: recall, precision and character error rate of `ocr_text`
//! on generated claim cards, the cost of the text-presence test on
//! text-free photos, and per-image OCR cost (the peer, pytesseract, runs on
//! the same images in the same run: `bench/run_ocr.sh`).
//!
//! `ocr [--cards N] [--out DIR] [--fixtures DIR] [--threads T] [--seed S]`
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
//! `ocr --cursive --out DIR` scores the script hint
//! ([`echotrace_signals::ocr::reads_cursive`], which script group is read
//! first) on the cards of an earlier run in DIR, without OCR.
//!
//! `ocr --replay --signing --out DIR` scores, from DIR/readings.json and
//! without OCR, the signing variants (the header cut of
//! [`echotrace_signals::ocr::split_header`] at several line lengths, and
//! the short-text edit threshold) with the reading rule in use.
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
use echotrace_signals::ocr::{OcrInput, OcrLimits, OcrOutput, OcrWord, Reading, Tesseract};
use echotrace_signals::text::{compare_text_with, text_signature, TextMatchRule, TextSignature};

struct Card {
    lang: Lang,
    statement: usize,
    role: &'static str,
    jpeg: Vec<u8>,
    /// The block reading (what every image gets, under the rule in use).
    words: Vec<OcrWord>,
    /// The first reading alone, and the enlarged reading of the same image
    /// when its text is under [`DUMP_CEILING_PX`] (taken or not by the
    /// rule): recorded so `--replay` can score other rules offline.
    first: Option<OcrOutput>,
    second: Option<OcrOutput>,
    /// Bank cards: the second, sparse reading.
    sparse: Option<Vec<OcrWord>>,
    /// The script group the block reading chose.
    language: String,
    ocr_ms: f64,
}

/// The enlarged reading is recorded for every card whose first reading's
/// text is under this height (px): the widest trigger the rules scored by
/// `--replay` may use.
const DUMP_CEILING_PX: u32 = 32;

/// … and for every card whose first reading's mean confidence is under
/// this, whatever its height: the weak readings of larger text, for the
/// `prod|conf<C` rules.
const DUMP_WEAK_CONFIDENCE: f32 = 60.0;

/// First reading, the enlarged one when the text is small, and what the
/// rule in use (`Tesseract::recognize`) keeps of them, at the cost of one
/// extra run only where the rule would not have made it.
fn read_both(
    tess: &Tesseract,
    input: &OcrInput,
) -> (Option<OcrOutput>, Option<OcrOutput>, Option<OcrOutput>) {
    let Ok(first) = tess.first_reading(input) else {
        return (None, None, None);
    };
    let second = (first
        .text_height()
        .is_some_and(|h| h > 0 && h < DUMP_CEILING_PX)
        || first.mean_confidence() < DUMP_WEAK_CONFIDENCE)
        .then(|| tess.enlarged_reading(input, &first))
        .flatten()
        .and_then(|r| r.ok());
    let kept = match &second {
        Some(sec) if echotrace_signals::ocr::wants_enlarged(&first) => {
            echotrace_signals::ocr::choose_reading(first.clone(), sec.clone())
        }
        _ => first.clone(),
    };
    (Some(kept), Some(first), second)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// CPU time of the calling thread, ms.
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// CPU time (user + system) of all waited-for children, ms.
fn children_cpu_ms() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Words kept at `min_conf` (a letter or digit, confidence ≥ `min_conf`).
fn kept_at(words: &[OcrWord], min_conf: f32) -> impl Iterator<Item = &OcrWord> {
    words
        .iter()
        .filter(move |w| w.confidence >= min_conf && w.text.chars().any(char::is_alphanumeric))
}

/// Re-filter the recorded words at `min_conf` into the signed text: the
/// kept words below the header lines, as `parse_tsv` signs them
/// ([`echotrace_signals::ocr::split_header`]).
fn text_at(words: &[OcrWord], min_conf: f32) -> String {
    echotrace_signals::ocr::split_header(
        kept_at(words, min_conf),
        echotrace_signals::ocr::HEADER_MAX_TOKENS,
    )
    .1
}

/// Every kept word at `min_conf`, header lines included (what was read:
/// for the character error rate and for inspection).
fn raw_text_at(words: &[OcrWord], min_conf: f32) -> String {
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
    let timing_n: usize = arg(&args, "--timing").map_or(Ok(60), |s| s.parse())?;
    // The statement and design draw (18, the issue number, unless told):
    // another seed gives a fresh set of cards to check a change against.
    let seed: u64 = arg(&args, "--seed").map_or(Ok(18), |s| s.parse())?;
    let out_dir = PathBuf::from(arg(&args, "--out").unwrap_or_else(|| "target/ocr-bench".into()));
    let fixtures =
        PathBuf::from(arg(&args, "--fixtures").unwrap_or_else(|| "../shared/fixtures".into()));
    std::fs::create_dir_all(&out_dir)?;
    let tmp = out_dir.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let tess = Tesseract::locate(std::path::Path::new("tesseract"), OcrLimits::default())?;
    eprintln!("{} languages {:?}", tess.version(), tess.languages());
    if args.iter().any(|a| a == "--cursive") {
        let report = cursive_check(&out_dir)?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if args.iter().any(|a| a == "--replay") {
        let signing_only = args.iter().any(|a| a == "--signing");
        let report = replay(&out_dir, &tess, timing_n, signing_only)?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let photos = cards::photos(&fixtures);

    // Statements and designs (deterministic).
    // Different statements must be different under the text rule itself:
    // the generator composes statements from a few sentence templates, so
    // two of them can share a whole sentence and then match as typed text,
    // which is a true near-duplicate, not an OCR false match. A candidate
    // whose typed text matches an accepted one under the loosest rule of
    // the grid below (Jaccard 0.2) is drawn again; the count is reported.
    let loosest = TextMatchRule {
        jaccard: 0.2,
        ..TextMatchRule::default()
    };
    let mut accepted: Vec<TextSignature> = Vec::new();
    let mut near_duplicates_redrawn = 0usize;
    let mut rng = Rng::new(seed);
    let mut jobs = Vec::new();
    for lang in [Lang::En, Lang::Ar] {
        let mut seen = std::collections::HashSet::new();
        let mut k = 0;
        let mut draws = 0usize;
        while k < n {
            // The templates hold a finite number of distinct statements: a
            // request beyond them ends with an error instead of looping.
            draws += 1;
            if draws > n.saturating_mul(100).max(10_000) {
                anyhow::bail!("the generator found only {k} distinct {lang:?} statements");
            }
            let s = cards::statement(lang, &mut rng);
            if !seen.insert(s.clone()) {
                continue;
            }
            let sig = text_signature(&s);
            if accepted.iter().any(|a| {
                compare_text_with(&sig, a, &loosest)
                    .map(|c| c.is_match)
                    .unwrap_or(false)
            }) {
                near_duplicates_redrawn += 1;
                continue;
            }
            accepted.push(sig);
            let bank = cards::design(lang, &mut rng, photos.len());
            let mut query = cards::design(lang, &mut rng, photos.len());
            while query.font == bank.font {
                query = cards::design(lang, &mut rng, photos.len());
            }
            jobs.push((lang, k, s, bank, query));
            k += 1;
        }
    }
    // `--langs ar` (or `en`) renders and reads one language's cards only;
    // the statements and designs drawn are the same as with both.
    match arg(&args, "--langs").as_deref() {
        None | Some("both") => {}
        Some("ar") => jobs.retain(|j| j.0 == Lang::Ar),
        Some("en") => jobs.retain(|j| j.0 == Lang::En),
        Some(other) => anyhow::bail!("--langs: expected ar, en or both, got {other:?}"),
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
                        let input = hashed.and_then(|h| h.ocr_inputs.into_iter().next());
                        let (block, first, second) = match &input {
                            Some(i) => read_both(tess, i),
                            None => (None, None, None),
                        };
                        let ocr_ms = t0.elapsed().as_secs_f64() * 1e3;
                        let language = block
                            .as_ref()
                            .map(|b| b.language.clone())
                            .unwrap_or_default();
                        let sparse = match (role, &input) {
                            ("bank", Some(input)) if !language.is_empty() => tess
                                .recognize_as(input, &language, Reading::Sparse)
                                .ok()
                                .map(|o| o.words),
                            _ => None,
                        };
                        if let Ok(mut d) = done.lock() {
                            d.push(Card {
                                lang: *lang,
                                statement: i,
                                role,
                                jpeg,
                                words: block.map(|o| o.words).unwrap_or_default(),
                                first,
                                second,
                                sparse,
                                language,
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

    // The card images, for the peer and for inspection.
    for c in &cards_done {
        let name = format!("{}-{}.jpg", c.statement, c.role);
        std::fs::write(out_dir.join(&name), &c.jpeg)?;
    }
    let mut read = String::new();
    for c in &cards_done {
        read.push_str(&format!(
            "{}-{}\t{}\n",
            c.statement,
            c.role,
            raw_text_at(&c.words, 40.0).replace('\n', " / ")
        ));
        if let Some(sparse) = &c.sparse {
            read.push_str(&format!(
                "{}-{}-sparse\t{}\n",
                c.statement,
                c.role,
                raw_text_at(sparse, 40.0).replace('\n', " / ")
            ));
        }
    }
    std::fs::write(out_dir.join("ocr-read.tsv"), read)?;
    let truth: String = statements
        .iter()
        .enumerate()
        .map(|(i, (_, s))| format!("{i}\t{s}\n"))
        .collect();
    std::fs::write(out_dir.join("statements.tsv"), truth)?;
    // Each card's design, to inspect the cards OCR misreads.
    let designs: String = jobs
        .iter()
        .enumerate()
        .flat_map(|(i, j)| [(i, "bank", &j.3), (i, "query", &j.4)])
        .map(|(i, role, d)| format!("{i}-{role}\t{d:?}\n"))
        .collect();
    std::fs::write(out_dir.join("designs.tsv"), designs)?;

    // The text-presence gate on every card: a query image is OCRed only
    // when it fires (bank images are always read), so the service's recall
    // is the grid's recall over query cards the gate lets through.
    let gate: Vec<bool> = cards_done
        .iter()
        .map(|c| {
            echotrace_signals::decode::decode_image(
                &c.jpeg,
                &Default::default(),
                &Default::default(),
            )
            .map(|img| {
                echotrace_signals::ocr::text_presence(&img.rgb, img.width, img.height).likely
            })
            .unwrap_or(false)
        })
        .collect();

    // Grid over the signing rule: minimum confidence, Jaccard threshold,
    // minimum tokens, and whether bank cards keep their second (sparse)
    // reading. A bank card matches a query card when the query's block
    // reading matches any of the bank card's readings; a pair of cards with
    // different statements is a false match when either card, as a query,
    // matches the other as a bank entry.
    let mut grid = Vec::new();
    for min_conf in [0.0f32, 40.0, 60.0] {
        let signed: Vec<Vec<(TextSignature, usize)>> = cards_done
            .iter()
            .map(|c| {
                std::iter::once(&c.words)
                    .chain(c.sparse.as_ref())
                    .map(|w| {
                        let t = text_at(w, min_conf);
                        (text_signature(&t), echotrace_signals::ocr::token_count(&t))
                    })
                    .collect()
            })
            .collect();
        for jaccard in [0.2, 0.25, 0.3, 0.35, 0.4, 0.5] {
            let rule = TextMatchRule {
                jaccard,
                ..TextMatchRule::default()
            };
            // The generator's own check: different statements' true texts
            // must not match each other as typed text under this rule.
            let truth: Vec<TextSignature> =
                statements.iter().map(|(_, t)| text_signature(t)).collect();
            let mut truth_pairs_matching = 0usize;
            for i in 0..truth.len() {
                for j in i + 1..truth.len() {
                    truth_pairs_matching += usize::from(
                        compare_text_with(&truth[i], &truth[j], &rule)
                            .map(|c| c.is_match)
                            .unwrap_or(false),
                    );
                }
            }
            for min_tokens in [4usize, 6, 8] {
                for second_reading in [false, true] {
                    let m = |q: &(TextSignature, usize), b: &(TextSignature, usize)| {
                        q.1 >= min_tokens
                            && b.1 >= min_tokens
                            && compare_text_with(&q.0, &b.0, &rule)
                                .map(|c| c.is_match)
                                .unwrap_or(false)
                    };
                    let readings = if second_reading { 2 } else { 1 };
                    let finds = |q: usize, b: usize| {
                        signed[b].iter().take(readings).any(|r| m(&signed[q][0], r))
                    };
                    let ids: Vec<(usize, &str, Lang)> = cards_done
                        .iter()
                        .map(|c| (c.statement, c.role, c.lang))
                        .collect();
                    let sc = score_pairs(&ids, |q| gate[q], finds);
                    grid.push(serde_json::json!({
                        "min_conf": min_conf, "jaccard": jaccard, "min_tokens": min_tokens,
                        "second_reading": second_reading,
                        "recall_en": sc.hit[0] as f64 / sc.total[0].max(1) as f64,
                        "recall_ar": sc.hit[1] as f64 / sc.total[1].max(1) as f64,
                        "recall_en_gated": sc.hit_gated[0] as f64 / sc.total[0].max(1) as f64,
                        "recall_ar_gated": sc.hit_gated[1] as f64 / sc.total[1].max(1) as f64,
                        "false_matches": sc.false_matches, "pairs": sc.pairs,
                        "false_examples": sc.false_examples,
                        "truth_pairs_matching": truth_pairs_matching,
                    }));
                }
            }
        }
    }
    let languages_chosen = cards_done.iter().fold(
        std::collections::BTreeMap::<String, usize>::new(),
        |mut m, c| {
            *m.entry(format!("{:?}->{}", c.lang, c.language))
                .or_default() += 1;
            m
        },
    );

    // CER on clean renders (one font per language, default confidence rule).
    let mut cer = [Vec::new(), Vec::new()];
    let mut clean_readings = Vec::new();
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
        let (kept, first, second) = match h.ocr_inputs.first() {
            Some(input) => read_both(&tess, input),
            None => (None, None, None),
        };
        clean_readings.push(CleanRec {
            lang: *lang,
            text: text.clone(),
            first,
            second,
        });
        let words = kept.map(|o| o.words).unwrap_or_default();
        let read = raw_text_at(&words, 0.0).replace('\n', " ");
        cer[usize::from(*lang == Lang::Ar)].push(cards::cer(text, &read));
    }
    let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let recs: Vec<Rec> = cards_done
        .iter()
        .map(|c| Rec {
            lang: c.lang,
            statement: c.statement,
            role: c.role.to_string(),
            first: c.first.clone(),
            second: c.second.clone(),
            sparse: c.sparse.clone(),
        })
        .collect();
    std::fs::write(
        out_dir.join("readings.json"),
        serde_json::to_string(&dump_readings(&recs, &clean_readings))?,
    )?;
    let rules = score_rules(&recs, &clean_readings, &gate);

    // Presence test: CPU time and firing on text-free images (the fixture
    // photos, and frames of the fixture videos), and firing on every card.
    let frames_dir = out_dir.join("frames");
    let _ = std::fs::create_dir_all(&frames_dir);
    if let Ok(rd) = std::fs::read_dir(fixtures.join("vpdq/videos")) {
        for e in rd.flatten() {
            let stem = e
                .path()
                .file_stem()
                .map(|s| s.to_string_lossy().to_string());
            let Some(stem) = stem else { continue };
            let _ = std::process::Command::new("ffmpeg")
                .args(["-loglevel", "error", "-y", "-i"])
                .arg(e.path())
                .args([
                    "-vf",
                    "select='not(mod(n\\,60))'",
                    "-vsync",
                    "vfr",
                    "-frames:v",
                    "3",
                ])
                .arg(frames_dir.join(format!("{stem}_%d.png")))
                .status();
        }
    }
    let mut text_free: Vec<(&str, PathBuf)> = Vec::new();
    for dir in ["bridge-mods", "labelme", "dih", "exif-rotn"] {
        if let Ok(rd) = std::fs::read_dir(fixtures.join("pdq/images").join(dir)) {
            text_free.extend(rd.flatten().map(|e| ("photo", e.path())));
        }
    }
    if let Ok(rd) = std::fs::read_dir(&frames_dir) {
        text_free.extend(rd.flatten().map(|e| ("frame", e.path())));
    }
    text_free.sort();
    let mut presence_cpu_ms = Vec::new();
    let mut fired = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    let mut fired_names = Vec::new();
    for (kind, path) in &text_free {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let Ok(img) = echotrace_signals::decode::decode_image(
            &bytes,
            &Default::default(),
            &Default::default(),
        ) else {
            continue;
        };
        let t0 = thread_cpu_ms();
        let mut p = echotrace_signals::ocr::text_presence(&img.rgb, img.width, img.height);
        for _ in 0..19 {
            p = echotrace_signals::ocr::text_presence(&img.rgb, img.width, img.height);
        }
        presence_cpu_ms.push((thread_cpu_ms() - t0) / 20.0);
        let e = fired.entry(kind).or_default();
        e.0 += usize::from(p.likely);
        e.1 += 1;
        if p.likely {
            fired_names.push(path.display().to_string());
        }
    }
    let mut card_fired = [0usize; 2];
    let mut card_total = [0usize; 2];
    let mut gate_missed = Vec::new();
    for (c, &g) in cards_done.iter().zip(&gate) {
        let li = usize::from(c.lang == Lang::Ar);
        card_total[li] += 1;
        card_fired[li] += usize::from(g);
        if !g {
            gate_missed.push(format!("{}-{}.jpg", c.statement, c.role));
        }
    }

    // Per-image OCR cost, one image at a time (the peer does the same on
    // the same images right after): wall time end to end (decode, gate,
    // prepare, isolated child, parse) and the child's CPU time.
    let timing_cards: Vec<(String, Lang, &[u8])> = cards_done
        .iter()
        .filter(|c| c.role == "query")
        .map(|c| {
            (
                format!("{}-{}.jpg", c.statement, c.role),
                c.lang,
                c.jpeg.as_slice(),
            )
        })
        .collect();
    let (timing_len, e2e_ms, child_cpu_ms) =
        timing_pass(&tess, &opts, &timing_cards, timing_n, &out_dir)?;
    let photo_ocr_share = fired.values().map(|v| v.0).sum::<usize>() as f64
        / fired.values().map(|v| v.1).sum::<usize>().max(1) as f64;

    let report = serde_json::json!({
        "cards": cards_done.len(),
        "statements_per_language": n,
        "seed": seed,
        "near_duplicate_statements_redrawn": near_duplicates_redrawn,
        "tesseract": tess.version(),
        "ocr_ms_median_parallel_run": median(cards_done.iter().map(|c| c.ocr_ms).collect()),
        "timing_images": timing_len,
        "ocr_e2e_ms_median": median(e2e_ms.clone()),
        "ocr_e2e_ms_mean": e2e_ms.iter().sum::<f64>() / e2e_ms.len().max(1) as f64,
        "ocr_child_cpu_ms_mean": child_cpu_ms,
        "cer_en": mean(&cer[0]), "cer_ar": mean(&cer[1]),
        "cer_samples": [cer[0].len(), cer[1].len()],
        "presence_cpu_ms_median": median(presence_cpu_ms.clone()),
        "presence_cpu_ms_max": presence_cpu_ms.iter().cloned().fold(0.0, f64::max),
        "presence_fired_text_free": fired.iter().map(|(k, v)| (k.to_string(), format!("{}/{}", v.0, v.1))).collect::<std::collections::BTreeMap<_, _>>(),
        "presence_fired_names": fired_names,
        "presence_cards_fired_en": format!("{}/{}", card_fired[0], card_total[0]),
        "presence_cards_fired_ar": format!("{}/{}", card_fired[1], card_total[1]),
        "presence_cards_missed": gate_missed,
        "added_ms_per_text_free_image": median(presence_cpu_ms.clone()) + photo_ocr_share * child_cpu_ms,
        "languages_chosen": languages_chosen,
        "rules": rules,
        "grid": grid,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// One rule's score over every pair of cards: recall per language
/// (`[English, Arabic]`) over each statement's query ↔ bank pair, with OCR
/// on every query card and through the text-presence gate, and false
/// matches over the pairs of different statements.
#[derive(Default)]
struct PairScore {
    hit: [usize; 2],
    hit_gated: [usize; 2],
    total: [usize; 2],
    false_matches: usize,
    pairs: usize,
    false_examples: Vec<String>,
}

/// Score every pair of `cards` (`(statement, role, language)` per card):
/// `finds(q, b)` — card `q`'s reading matches card `b`'s; `gated(q)` — the
/// text-presence gate fired on card `q`.
fn score_pairs(
    cards: &[(usize, &str, Lang)],
    gated: impl Fn(usize) -> bool,
    finds: impl Fn(usize, usize) -> bool,
) -> PairScore {
    let mut sc = PairScore::default();
    for i in 0..cards.len() {
        for j in i + 1..cards.len() {
            let (a, b) = (cards[i], cards[j]);
            if a.0 == b.0 {
                let (q, bk) = if a.1 == "query" { (i, j) } else { (j, i) };
                let li = usize::from(a.2 == Lang::Ar);
                sc.total[li] += 1;
                let found = finds(q, bk);
                sc.hit[li] += usize::from(found);
                sc.hit_gated[li] += usize::from(found && gated(q));
            } else {
                sc.pairs += 1;
                if finds(i, j) || finds(j, i) {
                    sc.false_matches += 1;
                    if sc.false_examples.len() < 5 {
                        sc.false_examples
                            .push(format!("{}-{} ~ {}-{}", a.0, a.1, b.0, b.1));
                    }
                }
            }
        }
    }
    sc
}

/// One card's recorded readings (what `--replay` scores rules on).
struct Rec {
    lang: Lang,
    statement: usize,
    role: String,
    first: Option<OcrOutput>,
    second: Option<OcrOutput>,
    sparse: Option<Vec<OcrWord>>,
}

/// One clean render's readings, for CER.
struct CleanRec {
    lang: Lang,
    text: String,
    first: Option<OcrOutput>,
    second: Option<OcrOutput>,
}

fn lang_code(l: Lang) -> &'static str {
    match l {
        Lang::En => "en",
        Lang::Ar => "ar",
    }
}

fn dump_readings(recs: &[Rec], clean: &[CleanRec]) -> serde_json::Value {
    serde_json::json!({
        "cards": recs.iter().map(|r| serde_json::json!({
            "lang": lang_code(r.lang), "statement": r.statement, "role": r.role,
            "first": r.first, "second": r.second, "sparse": r.sparse,
        })).collect::<Vec<_>>(),
        "clean": clean.iter().map(|c| serde_json::json!({
            "lang": lang_code(c.lang), "text": c.text, "first": c.first, "second": c.second,
        })).collect::<Vec<_>>(),
    })
}

fn load_readings(v: &serde_json::Value) -> anyhow::Result<(Vec<Rec>, Vec<CleanRec>)> {
    let lang = |x: &serde_json::Value| {
        if x["lang"] == "ar" {
            Lang::Ar
        } else {
            Lang::En
        }
    };
    let out =
        |x: &serde_json::Value| -> Option<OcrOutput> { serde_json::from_value(x.clone()).ok() };
    let cards = v["cards"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("readings: no cards"))?
        .iter()
        .map(|c| Rec {
            lang: lang(c),
            statement: c["statement"].as_u64().unwrap_or(0) as usize,
            role: c["role"].as_str().unwrap_or("").to_string(),
            first: out(&c["first"]),
            second: out(&c["second"]),
            sparse: serde_json::from_value(c["sparse"].clone()).ok(),
        })
        .collect();
    let clean = v["clean"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| CleanRec {
                    lang: lang(c),
                    text: c["text"].as_str().unwrap_or("").to_string(),
                    first: out(&c["first"]),
                    second: out(&c["second"]),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((cards, clean))
}

/// Words of a reading that count as text (a letter or digit).
fn text_words(o: &OcrOutput) -> impl Iterator<Item = &OcrWord> {
    o.words
        .iter()
        .filter(|w| w.text.chars().any(char::is_alphanumeric))
}

/// Share of a reading's text words under confidence 40.
fn low_share(o: &OcrOutput) -> f32 {
    let (low, all) = text_words(o).fold((0usize, 0usize), |(l, a), w| {
        (l + usize::from(w.confidence < 40.0), a + 1)
    });
    if all == 0 {
        1.0
    } else {
        low as f32 / all as f32
    }
}

/// Sum of the kept words' confidence: how much confident text a reading has.
fn kept_mass(o: &OcrOutput) -> f32 {
    o.words
        .iter()
        .filter(|w| w.kept)
        .map(|w| w.confidence)
        .sum()
}

type Trigger = Box<dyn Fn(&OcrOutput) -> bool>;
type Choice = Box<dyn Fn(&OcrOutput, &OcrOutput) -> bool>;

/// Candidate rules for the enlarged second reading, scored on recorded
/// readings at the defaults (confidence ≥ 40, Jaccard 0.3, ≥ 6 tokens, bank
/// sparse reading): recall (all / gated), false matches over every pair of
/// cards with different statements, CER on the clean renders, and the
/// share of cards a second run is made for (the cost).
fn score_rules(recs: &[Rec], clean: &[CleanRec], gate: &[bool]) -> Vec<serde_json::Value> {
    let height = |o: &OcrOutput| o.text_height().unwrap_or(0);
    let mut triggers: Vec<(String, Trigger)> = vec![
        ("never".into(), Box::new(|_: &OcrOutput| false)),
        (
            "production".into(),
            Box::new(echotrace_signals::ocr::wants_enlarged),
        ),
    ];
    for hmax in [20u32, 24, 28, 32] {
        triggers.push((
            format!("h<{hmax}"),
            Box::new(move |o: &OcrOutput| {
                let h = height(o);
                h > 0 && h < hmax
            }),
        ));
    }
    for c in [70.0f32, 75.0, 80.0, 85.0, 88.0] {
        triggers.push((
            format!("h<32&conf<{c}"),
            Box::new(move |o: &OcrOutput| {
                let h = height(o);
                h > 0 && h < 32 && o.mean_confidence() < c
            }),
        ));
    }
    for f in [0.05f32, 0.1, 0.2, 0.3] {
        triggers.push((
            format!("h<32&low>{f}"),
            Box::new(move |o: &OcrOutput| {
                let h = height(o);
                h > 0 && h < 32 && low_share(o) > f
            }),
        ));
    }
    // A weak reading at any height, besides the rule in use (recorded
    // for confidences under DUMP_WEAK_CONFIDENCE only).
    for c in [40.0f32, 50.0, 60.0] {
        triggers.push((
            format!("prod|conf<{c}"),
            Box::new(move |o: &OcrOutput| {
                echotrace_signals::ocr::wants_enlarged(o)
                    || (!o.words.is_empty() && o.mean_confidence() < c)
            }),
        ));
    }
    let choices: Vec<(&str, Choice)> = vec![
        (
            "production",
            Box::new(|a: &OcrOutput, b: &OcrOutput| {
                echotrace_signals::ocr::choose_reading(a.clone(), b.clone()).enlarged
            }),
        ),
        ("always", Box::new(|_: &OcrOutput, _: &OcrOutput| true)),
        (
            "conf",
            Box::new(|a: &OcrOutput, b: &OcrOutput| b.mean_confidence() > a.mean_confidence()),
        ),
        (
            "conf&words",
            Box::new(|a: &OcrOutput, b: &OcrOutput| {
                b.mean_confidence() > a.mean_confidence() && b.kept_words() >= a.kept_words()
            }),
        ),
        (
            "kept",
            Box::new(|a: &OcrOutput, b: &OcrOutput| b.kept_words() > a.kept_words()),
        ),
        (
            "lowshare",
            Box::new(|a: &OcrOutput, b: &OcrOutput| low_share(b) < low_share(a)),
        ),
        (
            "mass",
            Box::new(|a: &OcrOutput, b: &OcrOutput| kept_mass(b) > kept_mass(a)),
        ),
        (
            "lowshare&words",
            Box::new(|a: &OcrOutput, b: &OcrOutput| {
                low_share(b) < low_share(a) && b.kept_words() >= a.kept_words()
            }),
        ),
    ];
    let rule = TextMatchRule {
        jaccard: 0.3,
        ..TextMatchRule::default()
    };
    let sign = |w: &[OcrWord]| {
        let t = text_at(w, 40.0);
        (text_signature(&t), echotrace_signals::ocr::token_count(&t))
    };
    let m = |q: &(TextSignature, usize), b: &(TextSignature, usize)| {
        q.1 >= 6
            && b.1 >= 6
            && compare_text_with(&q.0, &b.0, &rule)
                .map(|c| c.is_match)
                .unwrap_or(false)
    };
    let empty = OcrOutput::default();
    let mut results = Vec::new();
    for (tname, trig) in &triggers {
        for (cname, choose) in &choices {
            if tname == "never" && *cname != "production" {
                continue;
            }
            let pick = |f: &Option<OcrOutput>, s: &Option<OcrOutput>| -> (bool, bool) {
                let f = f.as_ref().unwrap_or(&empty);
                match s {
                    Some(s) if trig(f) => (true, choose(f, s)),
                    _ => (false, false),
                }
            };
            let mut ran = [[0usize; 2]; 2]; // [lang][query?]
            let mut took = [0usize; 2];
            let mut count = [[0usize; 2]; 2];
            let signed: Vec<Vec<(TextSignature, usize)>> = recs
                .iter()
                .map(|r| {
                    let (run, take) = pick(&r.first, &r.second);
                    let li = usize::from(r.lang == Lang::Ar);
                    let qi = usize::from(r.role == "query");
                    count[li][qi] += 1;
                    ran[li][qi] += usize::from(run);
                    took[li] += usize::from(take);
                    let kept = if take { &r.second } else { &r.first };
                    let words = kept.as_ref().map(|o| o.words.as_slice()).unwrap_or(&[]);
                    std::iter::once(sign(words))
                        .chain(r.sparse.as_deref().map(sign))
                        .collect()
                })
                .collect();
            let finds = |q: usize, b: usize| signed[b].iter().any(|r| m(&signed[q][0], r));
            let ids: Vec<(usize, &str, Lang)> = recs
                .iter()
                .map(|r| (r.statement, r.role.as_str(), r.lang))
                .collect();
            let PairScore {
                hit,
                hit_gated,
                total,
                false_matches,
                false_examples,
                ..
            } = score_pairs(&ids, |q| gate.get(q).copied().unwrap_or(false), finds);
            let mut cer = [Vec::new(), Vec::new()];
            let mut clean_ran = 0usize;
            for c in clean {
                let (run, take) = pick(&c.first, &c.second);
                clean_ran += usize::from(run);
                let kept = if take { &c.second } else { &c.first };
                let words = kept.as_ref().map(|o| o.words.as_slice()).unwrap_or(&[]);
                let read = raw_text_at(words, 0.0).replace('\n', " ");
                cer[usize::from(c.lang == Lang::Ar)].push(cards::cer(&c.text, &read));
            }
            let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
            let frac = |a: usize, b: usize| a as f64 / b.max(1) as f64;
            results.push(serde_json::json!({
                "trigger": tname, "choice": cname,
                "second_runs_ar_query": frac(ran[1][1], count[1][1]),
                "second_runs_en_query": frac(ran[0][1], count[0][1]),
                "second_runs_ar_bank": frac(ran[1][0], count[1][0]),
                "enlarged_kept": took,
                "recall_en": frac(hit[0], total[0]), "recall_en_gated": frac(hit_gated[0], total[0]),
                "recall_ar": frac(hit[1], total[1]), "recall_ar_gated": frac(hit_gated[1], total[1]),
                "false_matches": false_matches, "false_examples": false_examples,
                "cer_en": mean(&cer[0]), "cer_ar": mean(&cer[1]), "clean_second_runs": clean_ran,
            }));
        }
    }
    results
}

/// Signing variants, scored on the readings the rule in use keeps (the
/// enlarged one where `wants_enlarged` and `choose_reading` take it; bank
/// cards also through their sparse reading), at confidence ≥ 40, Jaccard
/// 0.3, ≥ 6 tokens: the header cut ([`echotrace_signals::ocr::split_header`])
/// at several line lengths (0: off) and the short-text edit threshold.
/// Reports recall, false matches, how many cards lost a header (and how
/// many of those were drawn with the logo, from DIR/designs.tsv), and the
/// closest different-statement pairs (highest Jaccard, lowest edit ratio).
fn score_signing(recs: &[Rec], gate: &[bool], designs: &str) -> Vec<serde_json::Value> {
    let logo: std::collections::HashMap<&str, bool> = designs
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(name, d)| (name, d.contains("logo: true")))
        .collect();
    let kept: Vec<(Vec<OcrWord>, Option<Vec<OcrWord>>)> = recs
        .iter()
        .map(|r| {
            let first = r.first.clone().unwrap_or_default();
            let block = match &r.second {
                Some(s) if echotrace_signals::ocr::wants_enlarged(&first) => {
                    echotrace_signals::ocr::choose_reading(first, s.clone())
                }
                _ => first,
            };
            (block.words, r.sparse.clone())
        })
        .collect();
    let ids: Vec<(usize, &str, Lang)> = recs
        .iter()
        .map(|r| (r.statement, r.role.as_str(), r.lang))
        .collect();
    let mut out = Vec::new();
    for header_max in [0usize, 2, 3, 4] {
        let sign = |w: &[OcrWord]| {
            let (head, body) = if header_max == 0 {
                (String::new(), raw_text_at(w, 40.0))
            } else {
                echotrace_signals::ocr::split_header(kept_at(w, 40.0), header_max)
            };
            (
                text_signature(&body),
                echotrace_signals::ocr::token_count(&body),
                head,
            )
        };
        let signed: Vec<Vec<(TextSignature, usize, String)>> = kept
            .iter()
            .map(|(b, s)| {
                std::iter::once(sign(b))
                    .chain(s.as_deref().map(sign))
                    .collect()
            })
            .collect();
        // Cards whose block reading lost a header: [lang][logo drawn?].
        let mut cut = [[0usize; 2]; 2];
        let mut cut_examples = Vec::new();
        for (r, s) in recs.iter().zip(&signed) {
            if s[0].2.is_empty() {
                continue;
            }
            let name = format!("{}-{}", r.statement, r.role);
            let l = logo.get(name.as_str()).copied().unwrap_or(false);
            cut[usize::from(r.lang == Lang::Ar)][usize::from(l)] += 1;
            if !l && cut_examples.len() < 8 {
                cut_examples.push(format!("{name}: {}", s[0].2.replace('\n', " / ")));
            }
        }
        for short_edit in [0.25, 0.2, -1.0] {
            let rule = TextMatchRule {
                jaccard: 0.3,
                short_edit,
                ..TextMatchRule::default()
            };
            let cmp = |q: &(TextSignature, usize, String), b: &(TextSignature, usize, String)| {
                compare_text_with(&q.0, &b.0, &rule).ok()
            };
            let m = |q: &(TextSignature, usize, String), b: &(TextSignature, usize, String)| {
                q.1 >= 6 && b.1 >= 6 && cmp(q, b).is_some_and(|c| c.is_match)
            };
            let finds = |q: usize, b: usize| signed[b].iter().any(|r| m(&signed[q][0], r));
            let sc = score_pairs(&ids, |q| gate.get(q).copied().unwrap_or(false), finds);
            // Closest different-statement pairs (query block reading against
            // every reading of the other card).
            let mut top_j: Vec<(f64, String)> = Vec::new();
            let mut low_e: Vec<(f64, String)> = Vec::new();
            let mut by_rule = std::collections::BTreeMap::<&str, usize>::new();
            for q in 0..ids.len() {
                for b in 0..ids.len() {
                    if ids[q].0 == ids[b].0 || (ids[q].1 != "query" && ids[b].1 == "query") {
                        continue;
                    }
                    for r in &signed[b] {
                        let Some(c) = cmp(&signed[q][0], r) else {
                            continue;
                        };
                        let name = format!("{}-{} ~ {}-{}", ids[q].0, ids[q].1, ids[b].0, ids[b].1);
                        top_j.push((c.jaccard, name.clone()));
                        if let Some(e) = c.short_edit_distance {
                            low_e.push((e, name));
                        }
                    }
                }
                // The rule part that finds the query's own bank card.
                if ids[q].1 == "query" {
                    if let Some(b) = ids.iter().position(|x| x.0 == ids[q].0 && x.1 == "bank") {
                        for r in &signed[b] {
                            if let Some(c) = cmp(&signed[q][0], r).filter(|c| c.is_match) {
                                *by_rule.entry(c.rule.as_str()).or_default() += 1;
                            }
                        }
                    }
                }
            }
            top_j.sort_by(|a, b| b.0.total_cmp(&a.0));
            low_e.sort_by(|a, b| a.0.total_cmp(&b.0));
            top_j.truncate(3);
            low_e.truncate(3);
            let frac = |a: usize, b: usize| a as f64 / b.max(1) as f64;
            out.push(serde_json::json!({
                "header_max_tokens": header_max, "short_edit": short_edit,
                "recall_en": frac(sc.hit[0], sc.total[0]), "recall_en_gated": frac(sc.hit_gated[0], sc.total[0]),
                "recall_ar": frac(sc.hit[1], sc.total[1]), "recall_ar_gated": frac(sc.hit_gated[1], sc.total[1]),
                "false_matches": sc.false_matches, "pairs": sc.pairs, "false_examples": sc.false_examples,
                "header_cut_en_nologo_logo": cut[0], "header_cut_ar_nologo_logo": cut[1],
                "header_cut_without_logo": cut_examples,
                "recall_readings_by_rule": by_rule,
                "closest_jaccard": top_j, "closest_short_edit": low_e,
            }));
        }
    }
    out
}

/// Per-image OCR cost, one image at a time (the peer does the same on the
/// same images right after): wall time end to end (decode, gate, prepare,
/// isolated child(ren), parse) and the children's CPU time per image. The
/// timing cards are the first query cards of each language in turn (half
/// English, half Arabic), listed in DIR/timing.tsv for the peer.
fn timing_pass(
    tess: &Tesseract,
    opts: &HashOptions,
    cards: &[(String, Lang, &[u8])],
    n: usize,
    out_dir: &std::path::Path,
) -> anyhow::Result<(usize, Vec<f64>, f64)> {
    let mut en = cards.iter().filter(|c| c.1 == Lang::En);
    let mut ar = cards.iter().filter(|c| c.1 == Lang::Ar);
    let mut timing = Vec::new();
    while timing.len() < n {
        let (a, b) = (en.next(), ar.next());
        if a.is_none() && b.is_none() {
            break;
        }
        timing.extend(a.into_iter().chain(b).take(n - timing.len()));
    }
    let mut hasher = ContentHasher::new();
    let mut e2e_ms = Vec::new();
    let mut timing_list = String::new();
    let mut enlarged = 0usize;
    let mut cpu_by_lang = [(0f64, 0usize); 2];
    let child_cpu0 = children_cpu_ms();
    for (name, lang, jpeg) in &timing {
        let t0 = Instant::now();
        let c0 = children_cpu_ms();
        let mut runs = Vec::new();
        if let Ok(h) = hasher.hash_deferred(jpeg, opts, Some(OcrGate::Always)) {
            if let Some(input) = h.ocr_inputs.into_iter().next() {
                if let Ok(out) = tess.recognize(&input) {
                    // The runs recognize made: groups up to the accepted one,
                    // or all of them when none was accepted.
                    let accepted =
                        out.mean_confidence() >= echotrace_signals::ocr::ACCEPT_CONFIDENCE;
                    for g in tess.group_order(&input) {
                        runs.push(g.to_string());
                        if accepted && g == out.language {
                            break;
                        }
                    }
                    enlarged += usize::from(out.enlarged);
                }
            }
        }
        e2e_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        let li = usize::from(*lang == Lang::Ar);
        cpu_by_lang[li].0 += children_cpu_ms() - c0;
        cpu_by_lang[li].1 += 1;
        timing_list.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            name,
            tess.languages().join("+"),
            runs.join(","),
            lang_code(*lang)
        ));
    }
    let child_cpu_ms = (children_cpu_ms() - child_cpu0) / timing.len().max(1) as f64;
    std::fs::write(out_dir.join("timing.tsv"), timing_list)?;
    eprintln!(
        "timing: {} cards, {} read enlarged and kept; child CPU per card EN {:.0} ms ({}), AR {:.0} ms ({})",
        timing.len(),
        enlarged,
        cpu_by_lang[0].0 / cpu_by_lang[0].1.max(1) as f64,
        cpu_by_lang[0].1,
        cpu_by_lang[1].0 / cpu_by_lang[1].1.max(1) as f64,
        cpu_by_lang[1].1
    );
    Ok((timing.len(), e2e_ms, child_cpu_ms))
}

/// `--replay`: score the rules on DIR/readings.json (and the card JPEGs in
/// DIR for the gate) without reading anything again; with `--timing N`,
/// time the rule in use on N query cards of DIR for the peer.
fn replay(
    out_dir: &std::path::Path,
    tess: &Tesseract,
    timing_n: usize,
    signing_only: bool,
) -> anyhow::Result<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("readings.json"))?)?;
    let (recs, clean) = load_readings(&v)?;
    let jpegs: Vec<Vec<u8>> = recs
        .iter()
        .map(|r| std::fs::read(out_dir.join(format!("{}-{}.jpg", r.statement, r.role))))
        .collect::<Result<_, _>>()?;
    let gate: Vec<bool> = jpegs
        .iter()
        .map(|j| {
            echotrace_signals::decode::decode_image(j, &Default::default(), &Default::default())
                .map(|img| {
                    echotrace_signals::ocr::text_presence(&img.rgb, img.width, img.height).likely
                })
                .unwrap_or(false)
        })
        .collect();
    // `--signing`: the signing variants only (the rules' grid is slow).
    let rules = if signing_only {
        Vec::new()
    } else {
        score_rules(&recs, &clean, &gate)
    };
    let designs = std::fs::read_to_string(out_dir.join("designs.tsv")).unwrap_or_default();
    let signing = score_signing(&recs, &gate, &designs);
    let mut report = serde_json::json!({ "rules": rules, "signing": signing });
    if timing_n > 0 {
        let cards: Vec<(String, Lang, &[u8])> = recs
            .iter()
            .zip(&jpegs)
            .filter(|(r, _)| r.role == "query")
            .map(|(r, j)| {
                (
                    format!("{}-{}.jpg", r.statement, r.role),
                    r.lang,
                    j.as_slice(),
                )
            })
            .collect();
        let opts = HashOptions::default();
        let (len, e2e, cpu) = timing_pass(tess, &opts, &cards, timing_n, out_dir)?;
        report["timing_images"] = len.into();
        report["ocr_e2e_ms_median"] = median(e2e).into();
        report["ocr_child_cpu_ms_mean"] = cpu.into();
    }
    Ok(report)
}

/// `--cursive`: how often the script hint ([`echotrace_signals::ocr::reads_cursive`])
/// puts the cursive group first on the cards of an earlier run in DIR (by
/// language, photo backgrounds apart), and its cost per card.
fn cursive_check(out_dir: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let read = |f: &str| std::fs::read_to_string(out_dir.join(f));
    let arabic: std::collections::HashSet<String> = read("statements.tsv")?
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, t)| t.chars().any(|c| ('\u{0600}'..='\u{06ff}').contains(&c)))
        .map(|(i, _)| i.to_string())
        .collect();
    let designs = read("designs.tsv")?;
    let mut hasher = ContentHasher::new();
    let opts = HashOptions::default();
    // [language][photo background] -> (cards, cursive first)
    let mut counts = [[(0usize, 0usize); 2]; 2];
    let mut ms = Vec::new();
    let mut shares: Vec<serde_json::Value> = Vec::new();
    for line in designs.lines() {
        let Some((name, design)) = line.split_once('\t') else {
            continue;
        };
        let jpeg = std::fs::read(out_dir.join(format!("{name}.jpg")))?;
        let Some(input) = hasher
            .hash_deferred(&jpeg, &opts, Some(OcrGate::Always))
            .ok()
            .and_then(|h| h.ocr_inputs.into_iter().next())
        else {
            continue;
        };
        let t0 = Instant::now();
        let share = echotrace_signals::ocr::cursive_share(&input);
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
        let cursive = share.is_some_and(|s| s >= echotrace_signals::ocr::CURSIVE_SHARE);
        let statement = name.split('-').next().unwrap_or("");
        let li = usize::from(arabic.contains(statement));
        let pi = usize::from(design.contains("Photo"));
        counts[li][pi].0 += 1;
        counts[li][pi].1 += usize::from(cursive);
        shares.push(serde_json::json!([name, share, li == 1, pi == 1]));
    }
    let max_ms = ms.iter().copied().fold(0.0, f64::max);
    let c = |l: usize, p: usize| serde_json::json!({ "cards": counts[l][p].0, "cursive_first": counts[l][p].1 });
    Ok(serde_json::json!({
        "threshold": echotrace_signals::ocr::CURSIVE_SHARE,
        "ar_plain_or_gradient": c(1, 0), "ar_photo": c(1, 1),
        "en_plain_or_gradient": c(0, 0), "en_photo": c(0, 1),
        "ms_median": median(ms), "ms_max": max_ms,
        "shares": shares,
    }))
}
