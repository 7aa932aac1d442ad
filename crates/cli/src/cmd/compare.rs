//! `echotrace compare --type <signal> A B`: distance between two items.
//!
//! Each operand is either a signal value (for PDQ: 64 hex characters) or a
//! file to hash. Prints one JSON object, `{"distance":N,"match":bool}` for
//! PDQ (match = distance ≤ threshold). For vPDQ, A is the query and B the
//! compared item, hashed the way the service hashes a lookup (one frame a
//! second) and a bank entry (every frame, `--sampling` to change), so two
//! files get the service's answer. The exit code is 0 whether or not
//! the items match; unreadable files and bad values are errors (exit 2).
//! Each signal type is one [`CompareType`] variant and one match arm in
//! [`run`].

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use echotrace_signals::content::{ContentHasher, HashOptions};
use echotrace_signals::decode::DecodeOptions;
use echotrace_signals::pdq::{PdqHash, PDQ_MATCH_THRESHOLD};
use echotrace_signals::signal::SignalType;
use echotrace_signals::video::vpdq::VpdqComparison;

use super::hash::{read_bounded, LimitArgs};

/// The signal types `compare` understands.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareType {
    /// PDQ: Hamming distance of 256-bit hashes.
    Pdq,
    /// Text: MinHash Jaccard and containment of two text files (or
    /// `text_minhash:v1:` signatures).
    Text,
    /// vPDQ: two videos (files) or serialised vPDQ signals, by the
    /// reference rule (quality ≥ 50, distance ≤ 31, 80 % / 0 %).
    Vpdq,
    /// OCR text: two images read by Tesseract (or a text file, or a
    /// `text_minhash:v1:` signature, on either side), compared by the text
    /// rule with the `ocr_text` Jaccard threshold.
    Ocr,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Which signal to compare.
    #[arg(long = "type", value_enum, default_value = "pdq")]
    pub signal_type: CompareType,
    /// First item: a file path or a signal value (PDQ: 64 hex characters).
    pub a: String,
    /// Second item: a file path or a signal value.
    pub b: String,
    /// Largest distance that counts as a match (PDQ default: 31).
    #[arg(long)]
    pub threshold: Option<u32>,
    /// Apply EXIF orientation when hashing image files.
    #[arg(long)]
    pub exif_orient: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Text: print JSON instead of one readable line.
    #[arg(long)]
    pub json: bool,
    /// vPDQ: seconds between hashed frames of B, the compared item. The
    /// default 0 hashes every frame, as the service hashes bank entries;
    /// A, the query, is hashed at one frame a second, like a lookup.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub sampling: f64,
}

#[derive(serde::Serialize)]
struct PdqComparison {
    distance: u32,
    #[serde(rename = "match")]
    is_match: bool,
}

pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    match args.signal_type {
        CompareType::Pdq => {
            let opts = HashOptions {
                limits: args.limits.to_limits(),
                decode: DecodeOptions {
                    exif_orient: args.exif_orient,
                },
                dihedral: false,
                ..HashOptions::default()
            };
            let a = pdq_operand(&args.a, &opts)?;
            let b = pdq_operand(&args.b, &opts)?;
            let distance = a.distance(&b);
            let threshold = args.threshold.unwrap_or(PDQ_MATCH_THRESHOLD);
            let out = PdqComparison {
                distance,
                is_match: distance <= threshold,
            };
            println!("{}", serde_json::to_string(&out)?);
        }
        CompareType::Text => compare_text_files(&args)?,
        CompareType::Ocr => compare_ocr(&args)?,
        CompareType::Vpdq => {
            use echotrace_signals::video::{compare, VpdqMatchOptions};
            if !(args.sampling.is_finite() && args.sampling >= 0.0) {
                bail!("--sampling must be a number of seconds ≥ 0");
            }
            let (a, b) = (
                vpdq_operand(&args.a, QUERY_SECONDS_PER_HASH)?,
                vpdq_operand(&args.b, args.sampling)?,
            );
            let mut opts = VpdqMatchOptions::default();
            if let Some(t) = args.threshold {
                opts.distance_threshold = t;
            }
            // The plain vPDQs decide first; a video file with letterbox or
            // pillarbox bars is also compared cropped to its content
            // rectangle (the `border` channel, one rectangle per video).
            let plain = compare(&a.0, &b.0, &opts);
            let mut best: Option<(VpdqComparison, &'static str)> = None;
            if !plain.is_match {
                for (qa, ca) in sides(&a) {
                    for (qb, cb) in sides(&b) {
                        if !(ca || cb) {
                            continue;
                        }
                        let c = compare(qa, qb, &opts);
                        if c.is_match
                            && best
                                .as_ref()
                                .is_none_or(|(b, _)| c.query_match_pct > b.query_match_pct)
                        {
                            best = Some((c, "border"));
                        }
                    }
                }
            }
            let rect = |v: &VpdqOperand| {
                v.1.as_ref().map(|c| {
                    serde_json::json!({"x": c.rect.x, "y": c.rect.y, "w": c.rect.w, "h": c.rect.h,
                        "frame_width": c.width, "frame_height": c.height})
                })
            };
            let (c, channel) = best.unwrap_or((plain, "plain"));
            let out = serde_json::json!({
                "query_match_pct": c.query_match_pct,
                "compared_match_pct": c.compared_match_pct,
                "query_frames": a.0.features.len(),
                "compared_frames": b.0.features.len(),
                "match": c.is_match,
                "channel": channel,
                "plain_query_match_pct": plain.query_match_pct,
                "plain_compared_match_pct": plain.compared_match_pct,
                "a_content_rect": rect(&a),
                "b_content_rect": rect(&b),
            });
            println!("{out}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Serialize)]
struct TextComparisonOut {
    jaccard: f64,
    containment_a_in_b: f64,
    containment_b_in_a: f64,
    #[serde(rename = "match")]
    is_match: bool,
    rule: &'static str,
}

fn compare_text_files(args: &CompareArgs) -> anyhow::Result<()> {
    let a = text_operand(&args.a, args.limits.max_file_bytes)?;
    let b = text_operand(&args.b, args.limits.max_file_bytes)?;
    let c = echotrace_signals::text::compare_text(&a, &b)?;
    let out = TextComparisonOut {
        jaccard: c.jaccard,
        containment_a_in_b: c.containment_a_in_b,
        containment_b_in_a: c.containment_b_in_a,
        is_match: c.is_match,
        rule: c.rule.as_str(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "{} (rule: {})\tjaccard={:.3}\tcontainment_a_in_b={:.3}\tcontainment_b_in_a={:.3}",
            if out.is_match { "match" } else { "no match" },
            out.rule,
            out.jaccard,
            out.containment_a_in_b,
            out.containment_b_in_a
        );
    }
    Ok(())
}

/// One side of `compare --type ocr`: its signature and, for an image, what
/// OCR read.
struct OcrSide {
    signature: echotrace_signals::text::TextSignature,
    ocr: Option<echotrace_signals::signal::OcrSummary>,
}

fn ocr_operand(
    s: &str,
    args: &CompareArgs,
    setup: &echotrace_signals::content::OcrSetup,
) -> anyhow::Result<OcrSide> {
    let max = args.limits.max_file_bytes;
    let looks_like_file = s == "-" || std::path::Path::new(s).is_file();
    if s.starts_with("text_minhash:") || !looks_like_file {
        return Ok(OcrSide {
            signature: text_operand(s, max)?,
            ocr: None,
        });
    }
    let bytes = read_operand(s, max)?;
    let kind = echotrace_signals::content::detect_kind(&bytes);
    if !matches!(
        kind,
        Some(echotrace_signals::content::ContentKind::Image(_))
    ) {
        return Ok(OcrSide {
            signature: text_operand(s, max)?,
            ocr: None,
        });
    }
    let opts = HashOptions {
        limits: args.limits.to_limits(),
        decode: DecodeOptions {
            exif_orient: args.exif_orient,
        },
        ocr: Some(echotrace_signals::content::OcrSetup {
            min_tokens: 1,
            ..setup.clone()
        }),
        ..HashOptions::default()
    };
    let signals = ContentHasher::new()
        .hash(&bytes, &opts)
        .with_context(|| s.to_string())?;
    let sig = signals
        .into_iter()
        .find(|x| x.signal_type == SignalType::OcrText)
        .with_context(|| format!("{s}: OCR found no text in the image"))?;
    Ok(OcrSide {
        signature: sig
            .value
            .parse()
            .with_context(|| format!("{s}: internal: bad signature"))?,
        ocr: sig.ocr,
    })
}

fn compare_ocr(args: &CompareArgs) -> anyhow::Result<()> {
    let setup = super::hash::ocr_setup(15)?;
    let a = ocr_operand(&args.a, args, &setup)?;
    let b = ocr_operand(&args.b, args, &setup)?;
    let rule = echotrace_signals::ocr::ocr_match_rule();
    let c = echotrace_signals::text::compare_text_with(&a.signature, &b.signature, &rule)?;
    if args.json {
        let out = serde_json::json!({
            "jaccard": c.jaccard,
            "containment_a_in_b": c.containment_a_in_b,
            "containment_b_in_a": c.containment_b_in_a,
            "match": c.is_match,
            "rule": c.rule.as_str(),
            "jaccard_threshold": rule.jaccard,
            "a": a.ocr,
            "b": b.ocr,
        });
        println!("{out}");
    } else {
        println!(
            "{} (rule: {})\tjaccard={:.3}\tcontainment_a_in_b={:.3}\tcontainment_b_in_a={:.3}",
            if c.is_match { "match" } else { "no match" },
            c.rule.as_str(),
            c.jaccard,
            c.containment_a_in_b,
            c.containment_b_in_a
        );
        for (name, side) in [("a", &a.ocr), ("b", &b.ocr)] {
            if let Some(o) = side {
                println!(
                    "{name}: {} of {} words kept, mean confidence {:.1}: {}",
                    o.kept,
                    o.words,
                    o.mean_confidence,
                    o.text.replace('\n', " / ")
                );
                if !o.header.is_empty() {
                    println!(
                        "{name}: header, not signed: {}",
                        o.header.replace('\n', " / ")
                    );
                }
            }
        }
    }
    Ok(())
}

/// The bytes of a file operand (`-` = stdin), at most `max`.
fn read_operand(s: &str, max: u64) -> anyhow::Result<Vec<u8>> {
    if s == "-" {
        read_bounded(std::io::stdin().lock(), max)
    } else {
        std::fs::File::open(s)
            .map_err(|e| e.to_string())
            .and_then(|f| read_bounded(f, max))
    }
    .map_err(|e| anyhow::anyhow!("{s}: {e}"))
}

/// A `text_minhash:v1:` string is a signature; `-` is stdin; else a UTF-8
/// file. A text with no words is refused, naming the operand.
fn text_operand(s: &str, max: u64) -> anyhow::Result<echotrace_signals::text::TextSignature> {
    let sig = if s.starts_with("text_minhash:") {
        s.parse()
            .with_context(|| format!("{s}: bad text_minhash signature"))?
    } else {
        let bytes = read_operand(s, max)?;
        let text = std::str::from_utf8(&bytes).with_context(|| format!("{s}: not UTF-8 text"))?;
        echotrace_signals::text::text_signature(text.strip_prefix('\u{feff}').unwrap_or(text))
    };
    echotrace_signals::text::require_words(s, &sig)?;
    Ok(sig)
}

/// Seconds between hashed frames of a lookup (the service's query side).
const QUERY_SECONDS_PER_HASH: f64 = 1.0;

/// The plain vPDQ of an operand, and its cropped vPDQ when it has one
/// (`true` = cropped).
fn sides(v: &VpdqOperand) -> Vec<(&echotrace_signals::video::VpdqHash, bool)> {
    let mut out = vec![(&v.0, false)];
    if let Some(c) = &v.1 {
        out.push((&c.vpdq, true));
    }
    out
}

/// A vPDQ operand: the video's vPDQ and, for a video file with borders,
/// its border-cropped vPDQ (derived, local).
type VpdqOperand = (
    echotrace_signals::video::VpdqHash,
    Option<echotrace_signals::video::vpdq::CroppedVpdq>,
);

/// A serialised vPDQ signal (JSON array), a file holding one (or the
/// reference tool's `frame,quality,hex,timestamp` lines), or a video file
/// (hashed every `seconds` seconds; 0 = every frame).
fn vpdq_operand(s: &str, seconds: f64) -> anyhow::Result<VpdqOperand> {
    use echotrace_signals::video::VpdqHash;
    if s.trim_start().starts_with('[') {
        return Ok((
            VpdqHash::from_signal_str(s).with_context(|| "bad vPDQ signal".to_string())?,
            None,
        ));
    }
    let bytes = std::fs::read(s).with_context(|| format!("{s}: cannot read"))?;
    if let Ok(text) = std::str::from_utf8(&bytes) {
        if let Ok(h) =
            VpdqHash::from_signal_str(text).or_else(|_| VpdqHash::from_reference_text(text))
        {
            return Ok((h, None));
        }
    }
    let setup = super::hash::video_setup(seconds)
        .with_context(|| "video hashing needs ffmpeg and ffprobe (apt-get install ffmpeg)")?;
    let out = setup
        .hasher
        .hash_robust(&bytes, &setup.options)
        .with_context(|| s.to_string())?;
    Ok((out.vpdq, out.cropped))
}

/// A 64-hex string is a hash; `-` is stdin; anything else is a file to hash.
fn pdq_operand(s: &str, opts: &HashOptions) -> anyhow::Result<PdqHash> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return PdqHash::from_hex(s).with_context(|| format!("{s}: bad PDQ hex"));
    }
    let path = std::path::Path::new(s);
    if s != "-" && !path.exists() {
        bail!("{s}: neither a 64-hex PDQ hash nor an existing file");
    }
    let bytes = if s == "-" {
        read_bounded(std::io::stdin().lock(), opts.limits.max_file_bytes)
    } else {
        std::fs::File::open(path)
            .map_err(|e| e.to_string())
            .and_then(|f| read_bounded(f, opts.limits.max_file_bytes))
    }
    .map_err(|e| anyhow::anyhow!("{s}: {e}"))?;
    let signals = ContentHasher::new()
        .hash(&bytes, opts)
        .with_context(|| s.to_string())?;
    let pdq = signals
        .iter()
        .find(|sig| sig.signal_type == SignalType::Pdq)
        .with_context(|| format!("{s}: no PDQ signal (not an image)"))?;
    PdqHash::from_hex(&pdq.value).with_context(|| format!("{s}: internal: bad PDQ hex"))
}
