//! `echotrace hash`: files (or stdin) → signals, one line per input.
//!
//! Inputs are hashed in parallel on scoped worker threads (one per core by
//! default) pulling from a shared counter; results are printed strictly in
//! input order as soon as each next one is ready. A failing input prints
//! `path: reason` on stderr and the rest still complete; the exit code is
//! then 1. `-` reads stdin, bounded by `--max-file-bytes`. `--recursive`
//! walks directories in sorted order and never descends into symlinked
//! directories, so symlink loops cannot recurse.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::Context;
use clap::Args;
use echotrace_signals::content::{ContentHasher, HashOptions};
use echotrace_signals::decode::{DecodeLimits, DecodeOptions};
use echotrace_signals::signal::Signal;

#[derive(Args, Debug)]
pub struct HashArgs {
    /// Files, directories (with --recursive) or `-` for stdin.
    #[arg(required = true, value_name = "PATH|-")]
    pub inputs: Vec<String>,
    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Also compute the eight PDQ dihedral (rotation/flip) variants.
    #[arg(long)]
    pub dihedral: bool,
    /// Walk directories.
    #[arg(long, short = 'r')]
    pub recursive: bool,
    /// Apply the EXIF Orientation tag before hashing (off by default, like
    /// the Python ecosystem).
    #[arg(long)]
    pub exif_orient: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Treat the arguments as URL strings: print the canonical `url` and
    /// its `url_sha256`.
    #[arg(long)]
    pub url: bool,
    /// Videos: hash one frame per this many seconds (0 = every frame).
    #[arg(long, default_value_t = 1.0)]
    pub seconds_per_hash: f64,
    /// Also read text in images (and video key frames) with Tesseract, run
    /// isolated, into an `ocr_text` signal (JSON: with the text read and its
    /// confidence). Needs `tesseract-ocr` (+ `tesseract-ocr-ara`).
    #[arg(long)]
    pub ocr: bool,
    /// Time limit of one OCR run, seconds (the child is killed after it).
    #[arg(long, default_value_t = 15)]
    pub ocr_timeout_secs: u64,
}

/// Tesseract for `--ocr` (OCR every image: the caller asked for it), or
/// a clear error when it is not installed.
pub fn ocr_setup(timeout_secs: u64) -> anyhow::Result<echotrace_signals::content::OcrSetup> {
    use echotrace_signals::content::{OcrGate, OcrSetup};
    use echotrace_signals::ocr::{OcrLimits, Tesseract, DEFAULT_MIN_TOKENS};
    let limits = OcrLimits {
        timeout: std::time::Duration::from_secs(timeout_secs.max(1)),
        ..OcrLimits::default()
    };
    let tesseract = Tesseract::locate(std::path::Path::new("tesseract"), limits)?;
    // Scanned PDF pages need poppler's pdftoppm; without it they are not OCRed.
    let pdf_renderer = echotrace_signals::pdf_render::PdfRenderer::locate(
        std::path::Path::new("pdftoppm"),
        echotrace_signals::pdf_render::RenderLimits::default(),
    )
    .ok();
    Ok(OcrSetup {
        tesseract,
        gate: OcrGate::Always,
        min_tokens: DEFAULT_MIN_TOKENS,
        pdf_renderer,
    })
}

/// Decoding limits, shared with `compare`.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Largest accepted input in bytes.
    #[arg(long, default_value_t = DecodeLimits::default().max_file_bytes)]
    pub max_file_bytes: u64,
    /// Largest accepted width × height.
    #[arg(long, default_value_t = DecodeLimits::default().max_pixels)]
    pub max_pixels: u64,
    /// Largest accepted width or height.
    #[arg(long, default_value_t = DecodeLimits::default().max_side)]
    pub max_side: u32,
    /// Most bytes a decode may allocate for pixels.
    #[arg(long, default_value_t = DecodeLimits::default().max_alloc_bytes)]
    pub max_alloc_bytes: u64,
}

impl LimitArgs {
    pub fn to_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_file_bytes: self.max_file_bytes,
            max_pixels: self.max_pixels,
            max_side: self.max_side,
            max_alloc_bytes: self.max_alloc_bytes,
        }
    }
}

/// One thing to hash.
#[derive(Debug, Clone)]
enum Input {
    Stdin,
    File(PathBuf),
    /// An argument that could not be expanded (e.g. a directory without
    /// `--recursive`); reported in order with the others.
    Bad(String, String),
}

impl Input {
    fn display(&self) -> String {
        match self {
            Input::Stdin => "-".to_string(),
            Input::File(p) => p.display().to_string(),
            Input::Bad(p, _) => p.clone(),
        }
    }
}

#[derive(serde::Serialize)]
struct Line<'a> {
    path: &'a str,
    signals: &'a [Signal],
}

pub fn run(args: HashArgs) -> anyhow::Result<ExitCode> {
    let opts = HashOptions {
        limits: args.limits.to_limits(),
        decode: DecodeOptions {
            exif_orient: args.exif_orient,
        },
        dihedral: args.dihedral,
        // PDFs are extracted by this same binary in a limited child process.
        pdf_extractor: std::env::current_exe().ok(),
        video: video_setup(args.seconds_per_hash),
        ocr: if args.ocr {
            Some(ocr_setup(args.ocr_timeout_secs)?)
        } else {
            None
        },
        ..HashOptions::default()
    };
    if args.url {
        return run_urls(&args);
    }
    let mut inputs = Vec::new();
    for arg in &args.inputs {
        expand(arg, args.recursive, &mut inputs);
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, inputs.len().max(1));

    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Result<Vec<Signal>, String>)>();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = false;
    std::thread::scope(|s| -> anyhow::Result<()> {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, inputs, opts) = (&next, &inputs, &opts);
            s.spawn(move || {
                let mut hasher = ContentHasher::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(input) = inputs.get(i) else { break };
                    let r = hash_one(&mut hasher, input, opts);
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Print in input order: buffer results that arrive early.
        let mut pending = BTreeMap::new();
        let mut want = 0usize;
        for (i, r) in rx {
            pending.insert(i, r);
            while let Some(r) = pending.remove(&want) {
                let path = inputs.get(want).map(Input::display).unwrap_or_default();
                match r {
                    Ok(signals) => {
                        if args.json {
                            let line = Line {
                                path: &path,
                                signals: &signals,
                            };
                            // Going through `Value` would sort the keys
                            // (no `preserve_order`), breaking the exact
                            // `{"type","value","quality"}` order: only vPDQ
                            // lines, which need the extra field, take it.
                            if signals.iter().any(|s| s.signal_type.as_str() == "vpdq") {
                                let mut line = serde_json::to_value(&line)?;
                                add_vpdq_frame_counts(&mut line);
                                serde_json::to_writer(&mut out, &line)?;
                            } else {
                                serde_json::to_writer(&mut out, &line)?;
                            }
                            writeln!(out)?;
                        } else {
                            writeln!(out, "{}", text_line(&path, &signals))?;
                        }
                    }
                    Err(reason) => {
                        failed = true;
                        out.flush()?;
                        eprintln!("{path}: {reason}");
                    }
                }
                want += 1;
            }
        }
        Ok(())
    })?;
    out.flush().context("writing output")?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// ffmpeg for video inputs, when installed (paths resolved, not run: videos
/// then fail with a clear message instead of images paying for a check).
pub fn video_setup(seconds_per_hash: f64) -> Option<echotrace_signals::video::VideoSetup> {
    use echotrace_signals::video::{
        Ffmpeg, FfmpegConfig, SeekableInput, VideoHasher, VideoSetup, VpdqOptions,
    };
    // A local file: an MP4 with its index at the end may be copied to a
    // private temporary file (deleted after decoding) for ffmpeg to seek in.
    let ffmpeg = Ffmpeg::resolve(FfmpegConfig {
        seekable_input: SeekableInput::TempFile(std::env::temp_dir()),
        ..FfmpegConfig::default()
    })
    .ok()?;
    Some(VideoSetup {
        hasher: VideoHasher::new(ffmpeg),
        options: VpdqOptions {
            seconds_per_hash,
            downsample: None,
        },
    })
}

/// Adds `"frames": N` to each `vpdq` signal of a JSON line.
fn add_vpdq_frame_counts(line: &mut serde_json::Value) {
    let Some(signals) = line.get_mut("signals").and_then(|s| s.as_array_mut()) else {
        return;
    };
    for sig in signals {
        if sig.get("type").and_then(|t| t.as_str()) != Some("vpdq") {
            continue;
        }
        let frames = sig
            .get("value")
            .and_then(|v| v.as_str())
            .and_then(|v| echotrace_signals::video::VpdqHash::from_signal_str(v).ok())
            .map(|h| h.features.len());
        if let (Some(n), Some(obj)) = (frames, sig.as_object_mut()) {
            obj.insert("frames".into(), n.into());
        }
    }
}

/// `--url`: each argument is a URL string, not a file.
fn run_urls(args: &HashArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = false;
    for input in &args.inputs {
        match echotrace_signals::canonical_url::url_signals(input) {
            Ok(signals) if args.json => {
                serde_json::to_writer(
                    &mut out,
                    &Line {
                        path: input,
                        signals: &signals,
                    },
                )?;
                writeln!(out)?;
            }
            Ok(signals) => writeln!(out, "{}", text_line(input, &signals))?,
            Err(e) => {
                failed = true;
                out.flush()?;
                eprintln!("{input}: {e}");
            }
        }
    }
    out.flush().context("writing output")?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `path<TAB>pdq:<hex>:<quality><TAB>md5:<hex><TAB>sha256:<hex>`, with
/// `pdq.<variant>:<hex>` fields after the pdq one under `--dihedral`.
fn text_line(path: &str, signals: &[Signal]) -> String {
    let mut line = path.to_string();
    for s in signals {
        line.push('\t');
        let kind = s.signal_type.as_str();
        // Self-describing values (`text_minhash:v1:<base64>`) already carry
        // their type; don't print it twice.
        let tagged = s
            .value
            .strip_prefix(kind)
            .is_some_and(|rest| rest.starts_with(':'));
        if !tagged {
            line.push_str(kind);
            line.push(':');
        }
        line.push_str(&s.value);
        if let Some(q) = s.quality {
            line.push_str(&format!(":{q}"));
        }
        if let Some(d) = &s.dihedral {
            for (name, v) in [
                ("rot90", &d.rot90),
                ("rot180", &d.rot180),
                ("rot270", &d.rot270),
                ("flipx", &d.flipx),
                ("flipy", &d.flipy),
                ("flipplus1", &d.flipplus1),
                ("flipminus1", &d.flipminus1),
            ] {
                line.push_str(&format!("\t{}.{name}:{v}", s.signal_type));
            }
        }
    }
    line
}

fn expand(arg: &str, recursive: bool, out: &mut Vec<Input>) {
    if arg == "-" {
        out.push(Input::Stdin);
        return;
    }
    let path = PathBuf::from(arg);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() => {
            if recursive {
                walk(&path, out);
            } else {
                out.push(Input::Bad(
                    arg.to_string(),
                    "is a directory (use --recursive)".into(),
                ));
            }
        }
        // Files, and paths that fail to stat: the read reports the error.
        _ => out.push(Input::File(path)),
    }
}

/// Depth-first, sorted; symlinked directories are not followed.
fn walk(dir: &Path, out: &mut Vec<Input>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.push(Input::Bad(dir.display().to_string(), e.to_string()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let Ok(lm) = std::fs::symlink_metadata(&p) else {
            out.push(Input::File(p));
            continue;
        };
        if lm.is_dir() {
            walk(&p, out);
        } else if lm.file_type().is_symlink() {
            // Follow symlinks to files only.
            if std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
                out.push(Input::File(p));
            }
        } else if lm.is_file() {
            out.push(Input::File(p));
        }
    }
}

fn hash_one(
    hasher: &mut ContentHasher,
    input: &Input,
    opts: &HashOptions,
) -> Result<Vec<Signal>, String> {
    let bytes = match input {
        Input::Bad(_, reason) => return Err(reason.clone()),
        Input::Stdin => read_bounded(std::io::stdin().lock(), opts.limits.max_file_bytes)?,
        Input::File(p) => {
            let f = std::fs::File::open(p).map_err(|e| e.to_string())?;
            let len = f.metadata().map_err(|e| e.to_string())?.len();
            if len > opts.limits.max_file_bytes {
                return Err(format!(
                    "input is {len} bytes, over the {}-byte limit",
                    opts.limits.max_file_bytes
                ));
            }
            read_bounded(f, opts.limits.max_file_bytes)?
        }
    };
    // A text with no words (empty, blank, punctuation only) gets no
    // `text_minhash` from the dispatcher, only its digests.
    hasher.hash(&bytes, opts).map_err(|e| e.to_string())
}

/// Read at most `max` bytes; more is an error (never buffered in full).
pub fn read_bounded(r: impl Read, max: u64) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    r.take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    if u64::try_from(buf.len()).unwrap_or(u64::MAX) > max {
        return Err(format!("input is over the {max}-byte limit"));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::text_line;
    use echotrace_signals::signal::{Signal, SignalType};

    #[test]
    fn text_line_prefixes_each_value_with_its_type_once() {
        let sig = echotrace_signals::text::text_signature("heavy rain in the northern valleys");
        let signals = vec![
            Signal::new(SignalType::TextMinhash, sig.to_string()),
            Signal::new(SignalType::Url, "https://example.com/a".to_string()),
            Signal::new(
                SignalType::Md5,
                "d41d8cd98f00b204e9800998ecf8427e".to_string(),
            ),
        ];
        let line = text_line("note.txt", &signals);
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields[0], "note.txt");
        assert_eq!(fields[1], sig.to_string());
        assert!(fields[1].starts_with("text_minhash:v1:"), "{line}");
        assert!(!line.contains("text_minhash:text_minhash"), "{line}");
        assert_eq!(fields[2], "url:https://example.com/a");
        assert_eq!(fields[3], "md5:d41d8cd98f00b204e9800998ecf8427e");
    }
}
