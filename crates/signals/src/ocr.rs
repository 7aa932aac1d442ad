//! Text inside images: Tesseract OCR in an isolated child process, and the
//! cheap text-presence test that decides whether an image is worth it.
//!
//! Like ffmpeg and the PDF extractor, Tesseract never sees an upload. The
//! upload is decoded by our hardened decoder ([`crate::decode`]); this
//! module turns the decoded pixels into a size-capped greyscale PGM
//! ([`OcrInput`]) and pipes *that* to `tesseract stdin stdout … tsv`:
//! * the child runs with an **empty environment** except `TESSDATA_PREFIX`
//!   (where its models are) and `OMP_THREAD_LIMIT=1` (one core per OCR, so
//!   the pool size is the CPU bound);
//! * `RLIMIT_AS` ([`OcrLimits::memory_bytes`]), `RLIMIT_CPU`,
//!   `RLIMIT_CORE = 0` and `RLIMIT_FSIZE = 0` (it cannot write a file), a
//!   wall-clock kill ([`OcrLimits::timeout`]) and capped output, all
//!   through [`crate::isolate::run_isolated_env`];
//! * the TSV reply keeps **per-word confidence**; words under
//!   [`OcrLimits::min_confidence`] are dropped before signing (the rule and
//!   its measurement are in ARCHITECTURE.md, "OCR").
//!
//! [`Tesseract::locate`] runs `tesseract --version` and `--list-langs` once
//! at start. A missing program or missing models is an [`OcrError`] the
//! caller turns into "OCR off" (the server reports it on `/readyz`); an
//! image lookup never fails because OCR is unavailable.
//!
//! [`text_presence`] is the gate for lookups: on a point-sampled luma grid
//! (longest side ≤ 384, whatever the image size) it looks for *lines of
//! text* — bands of rows dense in strong horizontal edges with near-empty
//! rows above and below them, or, for tightly set lines whose gaps are
//! crossed by ascenders, descenders and dots (Arabic above all), with a
//! valley above and below and the same top and bottom row across the
//! image. Smooth photographs have no dense rows and textured ones
//! (foliage, fabric, façades) have no gaps and no straight lines, so both
//! cost no OCR.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::isolate::{run_isolated_env, IsolateError, IsolationLimits};

/// Languages used when installed, in this order (Arabic and English first).
pub const PREFERRED_LANGUAGES: [&str; 8] = ["ara", "eng", "fas", "urd", "rus", "fra", "deu", "tur"];

/// The script groups OCR tries, in this order: one Tesseract run per group
/// (with that group's installed languages), stopping at the first whose
/// words reach [`ACCEPT_CONFIDENCE`]. Latin goes first because a Latin
/// model gives up on Arabic text faster than the Arabic model on Latin
/// text (measured: ARCHITECTURE.md, "OCR"), except on an image that
/// [`reads_cursive`]: there the cursive group goes first
/// ([`Tesseract::group_order`]), which saves the Latin run on nearly every
/// Arabic card (docs/BENCHMARKS.md, "OCR").
pub const SCRIPT_GROUPS: [&[&str]; 3] = [
    &["eng", "fra", "deu", "tur"],
    &["ara", "fas", "urd"],
    &["rus"],
];

/// The languages of the cursive script group: Arabic script joins most
/// letters of a word along the baseline, which [`cursive_share`] sees.
pub const CURSIVE_LANGUAGES: [&str; 3] = ["ara", "fas", "urd"];

/// A reading whose words' mean confidence reaches this is accepted without
/// trying the next script group. Measured on the card bench: the right
/// model reads claim cards at a mean confidence of 86–95 (lowest card 53),
/// the wrong script's model at 32–34.
pub const ACCEPT_CONFIDENCE: f32 = 60.0;

/// How Tesseract segments the page (`--psm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// `--psm 6`, one uniform block of text: what claim cards, captions
    /// and screenshots are; the default for every image.
    Block,
    /// `--psm 11`, sparse text in no particular order: a second reading of
    /// bank images, which catches the lines a block reading drops on busy
    /// backgrounds (bank entries are read once, lookups many times).
    Sparse,
}

impl Reading {
    fn psm(self) -> &'static str {
        match self {
            Reading::Block => "6",
            Reading::Sparse => "11",
        }
    }
}

/// Default minimum per-word confidence (0–100) for a word to be kept.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 40.0;

/// Default minimum number of normalised tokens for OCR text to become an
/// `ocr_text` signal (shorter text — a logo, a watermark — matches too
/// much). Chosen by measurement (ARCHITECTURE.md, "OCR").
pub const DEFAULT_MIN_TOKENS: usize = 6;

/// Default Jaccard threshold of the `ocr_text` rule (either side from
/// OCR): lower than typed text's 0.5 because one misread word breaks three
/// shingles. Chosen by measurement (ARCHITECTURE.md, "OCR").
pub const DEFAULT_OCR_JACCARD: f64 = 0.3;

/// The text match rule for pairs where either side came from OCR: the
/// default rule with [`DEFAULT_OCR_JACCARD`].
pub fn ocr_match_rule() -> crate::text::TextMatchRule {
    crate::text::TextMatchRule {
        jaccard: DEFAULT_OCR_JACCARD,
        ..crate::text::TextMatchRule::default()
    }
}

/// Why OCR could not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    #[error("tesseract not found or not runnable ({0}); install it (`apt-get install tesseract-ocr tesseract-ocr-ara`) — everything else keeps working without OCR")]
    Missing(String),
    #[error("tesseract has none of the languages {wanted} installed (has: {have})")]
    NoLanguages { wanted: String, have: String },
    #[error("OCR exceeded the {0:?} time limit and was stopped")]
    Timeout(Duration),
    #[error("OCR failed: {0}")]
    Failed(String),
    #[error("image too large for OCR: {0}")]
    TooLarge(String),
}

/// Limits and rules of one OCR run.
#[derive(Clone, Debug, PartialEq)]
pub struct OcrLimits {
    /// Wall-clock limit of one `tesseract` run. Default 15 s.
    pub timeout: Duration,
    /// Address-space limit of the child. Default 1 GiB.
    pub memory_bytes: u64,
    /// Longest side handed to Tesseract; larger images are scaled down
    /// (area average). Default 2,400 px.
    pub max_side: u32,
    /// Most pixels handed to Tesseract (after scaling). Default 4 Mpx.
    pub max_pixels: u64,
    /// Words under this confidence are dropped. Default
    /// [`DEFAULT_MIN_CONFIDENCE`].
    pub min_confidence: f32,
}

impl Default for OcrLimits {
    fn default() -> Self {
        OcrLimits {
            timeout: Duration::from_secs(15),
            memory_bytes: 1 << 30,
            max_side: 2400,
            max_pixels: 4_000_000,
            min_confidence: DEFAULT_MIN_CONFIDENCE,
        }
    }
}

/// A located, working Tesseract with the languages it will use.
#[derive(Clone, Debug, PartialEq)]
pub struct Tesseract {
    program: PathBuf,
    tessdata: Option<PathBuf>,
    languages: Vec<String>,
    /// `-l` values, one per installed script group, in trying order.
    groups: Vec<String>,
    version: String,
    /// Tesseract ≥ 5: it can binarise with Sauvola's local threshold
    /// (`-c thresholding_method=2`), which [`wants_adaptive`] uses.
    adaptive: bool,
    pub limits: OcrLimits,
}

impl Tesseract {
    /// Find `program` (a path, or a bare name looked up in `PATH`), check
    /// that it runs, and pick the installed [`PREFERRED_LANGUAGES`].
    pub fn locate(program: &Path, limits: OcrLimits) -> Result<Tesseract, OcrError> {
        let program = resolve_program(program)?;
        let probe = IsolationLimits {
            timeout: Duration::from_secs(10),
            memory_bytes: limits.memory_bytes,
            max_output_bytes: 1 << 20,
        };
        let run = |args: &[&str]| {
            run_isolated_env(&program, args, &[], b"", &probe)
                .map_err(|e| OcrError::Missing(e.to_string()))
        };
        let v = run(&["--version"])?;
        if v.code != 0 {
            return Err(OcrError::Missing(format!("`--version` exited {}", v.code)));
        }
        // tesseract 4 prints its version on stderr, 5 on stdout.
        let vtext = if v.stdout.is_empty() {
            &v.stderr
        } else {
            &v.stdout
        };
        let version = String::from_utf8_lossy(vtext)
            .lines()
            .next()
            .unwrap_or("tesseract")
            .trim()
            .to_string();
        let l = run(&["--list-langs"])?;
        let listing = format!(
            "{}\n{}",
            String::from_utf8_lossy(&l.stdout),
            String::from_utf8_lossy(&l.stderr)
        );
        let (tessdata, have) = parse_list_langs(&listing);
        let languages: Vec<String> = PREFERRED_LANGUAGES
            .iter()
            .filter(|w| have.iter().any(|h| h == *w))
            .map(|s| s.to_string())
            .collect();
        if languages.is_empty() {
            return Err(OcrError::NoLanguages {
                wanted: PREFERRED_LANGUAGES.join(", "),
                have: have.join(", "),
            });
        }
        let groups = SCRIPT_GROUPS
            .iter()
            .map(|g| {
                g.iter()
                    .filter(|l| languages.iter().any(|have| have == *l))
                    .copied()
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .filter(|g| !g.is_empty())
            .collect();
        let adaptive = supports_adaptive(&version);
        Ok(Tesseract {
            program,
            tessdata,
            languages,
            groups,
            version,
            adaptive,
            limits,
        })
    }

    /// The languages in use (`ara`, `eng`, …).
    pub fn languages(&self) -> &[String] {
        &self.languages
    }

    /// `tesseract --version`'s first line.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The `-l` value of each script group tried, in order (`eng`, `ara`).
    pub fn script_groups(&self) -> &[String] {
        &self.groups
    }

    /// OCR a prepared image as one block of text ([`Reading::Block`]):
    /// one isolated run per script group, in [`Tesseract::group_order`]
    /// (cursive-looking images with the Arabic group first), until one
    /// reads with a mean confidence of at least [`ACCEPT_CONFIDENCE`];
    /// otherwise the most confident reading (`runs` lists the runs made). All runs share one [`OcrLimits::timeout`].
    ///
    /// A weak reading ([`wants_adaptive`]) is read again with the chosen
    /// script group, binarised by Sauvola's local threshold instead of
    /// Otsu's global one (Tesseract ≥ 5), and the more confident of the two
    /// is kept (marked `adaptive`): a textured background under a
    /// translucent panel, or JPEG blocks, drag a global threshold, a local
    /// one follows the page (ARCHITECTURE.md, "OCR").
    ///
    /// A weak reading of small text is read a second time, enlarged
    /// ([`wants_enlarged`]): the image is scaled up by [`UPSCALE`] (within
    /// [`OcrLimits`]) and read again with the chosen script group; it
    /// replaces the first when it is more confident and keeps at least as
    /// many words ([`choose_reading`]). At most one extra run
    /// (ARCHITECTURE.md, "OCR").
    pub fn recognize(&self, input: &OcrInput) -> Result<OcrOutput, OcrError> {
        let deadline = std::time::Instant::now() + self.limits.timeout;
        let first = self.first_stage(input, deadline)?;
        if !wants_enlarged(&first) {
            return Ok(first);
        }
        let mut runs = first.runs.clone();
        let second = self.read_enlarged(input, &first, deadline);
        if second.is_some() {
            runs.push(format!("{}@{UPSCALE}x", first.language));
        }
        let mut kept = match second {
            Some(Ok(second)) => choose_reading(first, second),
            // A second reading that fails or runs out of time leaves the
            // first one standing.
            _ => first,
        };
        kept.runs = runs;
        Ok(kept)
    }

    /// The first reading alone (the script groups in turn, and the
    /// adaptive reading of a weak one), without the enlarged second one:
    /// for benchmarks that record both readings.
    pub fn first_reading(&self, input: &OcrInput) -> Result<OcrOutput, OcrError> {
        let deadline = std::time::Instant::now() + self.limits.timeout;
        self.first_stage(input, deadline)
    }

    /// The script groups in turn ([`Tesseract::recognize_groups`]); a weak
    /// reading ([`wants_adaptive`]) is read again with Sauvola's local
    /// threshold and the more confident reading kept
    /// ([`choose_adaptive`]). A second run that fails or runs out of time
    /// leaves the first reading standing.
    fn first_stage(
        &self,
        input: &OcrInput,
        deadline: std::time::Instant,
    ) -> Result<OcrOutput, OcrError> {
        let first = self.recognize_groups(input, deadline)?;
        if !self.adaptive || !wants_adaptive(&first) {
            return Ok(first);
        }
        let Some(group) = self.groups.iter().find(|g| **g == first.language) else {
            return Ok(first);
        };
        let mut runs = first.runs.clone();
        runs.push(format!("{group}:{ADAPTIVE_RUN}"));
        let second = self.run(input, group, Reading::Block, true, deadline);
        let mut kept = match second {
            Ok(second) => choose_adaptive(first, second),
            Err(_) => first,
        };
        kept.runs = runs;
        Ok(kept)
    }

    /// The enlarged reading of `input` with the script group `first`
    /// chose, whatever [`wants_enlarged`] says (marked `enlarged`); `None`
    /// when the image cannot be enlarged within [`OcrLimits`].
    pub fn enlarged_reading(
        &self,
        input: &OcrInput,
        first: &OcrOutput,
    ) -> Option<Result<OcrOutput, OcrError>> {
        let deadline = std::time::Instant::now() + self.limits.timeout;
        self.read_enlarged(input, first, deadline)
    }

    fn read_enlarged(
        &self,
        input: &OcrInput,
        first: &OcrOutput,
        deadline: std::time::Instant,
    ) -> Option<Result<OcrOutput, OcrError>> {
        let big = upscale(input, UPSCALE, &self.limits)?;
        let group = self.groups.iter().find(|g| **g == first.language)?;
        Some(
            self.run(&big, group, Reading::Block, first.adaptive, deadline)
                .map(|mut o| {
                    o.enlarged = true;
                    o
                }),
        )
    }

    /// The script groups in the order [`Tesseract::recognize`] tries them
    /// on `input`: [`SCRIPT_GROUPS`]' order, except that an image that
    /// [`reads_cursive`] has the cursive group (`ara`, `fas`, `urd`) first.
    pub fn group_order(&self, input: &OcrInput) -> Vec<&str> {
        let mut order: Vec<&str> = self.groups.iter().map(String::as_str).collect();
        if reads_cursive(input) {
            let cursive = |g: &&str| g.split('+').any(|l| CURSIVE_LANGUAGES.contains(&l));
            order.sort_by_key(|g| !cursive(g));
        }
        order
    }

    /// [`Tesseract::recognize`]'s first reading: the script groups in turn,
    /// in [`Tesseract::group_order`].
    fn recognize_groups(
        &self,
        input: &OcrInput,
        deadline: std::time::Instant,
    ) -> Result<OcrOutput, OcrError> {
        let mut best: Option<OcrOutput> = None;
        let mut runs = Vec::new();
        for group in self.group_order(input) {
            runs.push(group.to_string());
            let out = self.run(input, group, Reading::Block, false, deadline)?;
            let accept = out.mean_confidence() >= ACCEPT_CONFIDENCE;
            if best
                .as_ref()
                .is_none_or(|b| out.mean_confidence() > b.mean_confidence())
            {
                best = Some(out);
            }
            if accept {
                break;
            }
        }
        let mut best = best.unwrap_or_default();
        best.runs = runs;
        Ok(best)
    }

    /// A second reading of the same image with the script group a first
    /// reading chose (`language` of its [`OcrOutput`]).
    pub fn recognize_as(
        &self,
        input: &OcrInput,
        language: &str,
        reading: Reading,
    ) -> Result<OcrOutput, OcrError> {
        let group = self
            .groups
            .iter()
            .find(|g| g.as_str() == language)
            .ok_or_else(|| OcrError::Failed(format!("language {language:?} is not in use")))?;
        let deadline = std::time::Instant::now() + self.limits.timeout;
        self.run(input, group, reading, false, deadline)
    }

    /// One isolated Tesseract run, parsed; `adaptive`: binarised by
    /// Sauvola's local threshold (`-c thresholding_method=2`) instead of
    /// Tesseract's default, Otsu's global one.
    fn run(
        &self,
        input: &OcrInput,
        langs: &str,
        reading: Reading,
        adaptive: bool,
        deadline: std::time::Instant,
    ) -> Result<OcrOutput, OcrError> {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(OcrError::Timeout(self.limits.timeout));
        }
        let mut args = vec!["stdin", "stdout", "-l", langs, "--psm", reading.psm()];
        if adaptive {
            args.extend(["-c", "thresholding_method=2"]);
        }
        args.push("tsv");
        let mut env: Vec<(&str, String)> = vec![("OMP_THREAD_LIMIT", "1".to_string())];
        if let Some(dir) = &self.tessdata {
            env.push(("TESSDATA_PREFIX", dir.display().to_string()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let limits = IsolationLimits {
            timeout: left,
            memory_bytes: self.limits.memory_bytes,
            max_output_bytes: 16 << 20,
        };
        let out = run_isolated_env(&self.program, &args, &env, &input.pgm, &limits).map_err(
            |e| match e {
                IsolateError::Timeout(_) => OcrError::Timeout(self.limits.timeout),
                other => OcrError::Failed(other.to_string()),
            },
        )?;
        if out.code != 0 {
            return Err(OcrError::Failed(format!("tesseract exited {}", out.code)));
        }
        let tsv = String::from_utf8_lossy(&out.stdout);
        let mut parsed = parse_tsv(&tsv, self.limits.min_confidence);
        parsed.language = langs.to_string();
        parsed.adaptive = adaptive;
        Ok(parsed)
    }
}

/// `(tessdata dir, languages)` from `tesseract --list-langs` output:
/// `List of available languages in "/usr/share/…/tessdata/" (3):` then one
/// code a line.
fn parse_list_langs(listing: &str) -> (Option<PathBuf>, Vec<String>) {
    let mut dir = None;
    let mut langs = Vec::new();
    for line in listing.lines() {
        let line = line.trim();
        if line.starts_with("List of available languages") {
            let mut parts = line.split('"');
            dir = parts.nth(1).map(PathBuf::from);
            continue;
        }
        if !line.is_empty()
            && line.len() <= 32
            && line
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            langs.push(line.to_string());
        }
    }
    (dir, langs)
}

pub(crate) fn resolve_program(program: &Path) -> Result<PathBuf, OcrError> {
    if program.components().count() > 1 || program.is_absolute() {
        return if program.is_file() {
            Ok(program.to_path_buf())
        } else {
            Err(OcrError::Missing(format!(
                "{}: no such file",
                program.display()
            )))
        };
    }
    let path =
        std::env::var_os("PATH").ok_or_else(|| OcrError::Missing("PATH is not set".into()))?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| OcrError::Missing(format!("{} not in PATH", program.display())))
}

/// One recognised word.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OcrWord {
    pub text: String,
    /// Tesseract's confidence, 0–100.
    pub confidence: f32,
    /// Kept for signing (confidence ≥ the minimum).
    pub kept: bool,
    /// Line number in reading order, from 0.
    pub line: u32,
    /// Height of the word's box in the image Tesseract read, px.
    #[serde(default)]
    pub height: u32,
}

/// What Tesseract read from one image.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OcrOutput {
    /// Every word in reading order, with confidence.
    pub words: Vec<OcrWord>,
    /// The kept words below the header ([`split_header`]), lines
    /// separated by `\n`: what is signed.
    pub text: String,
    /// The kept words of the header lines at the top ([`split_header`]):
    /// an outlet's name or logo text, not signed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub header: String,
    /// The `-l` value of the run that produced it (`eng`, `ara`).
    #[serde(default)]
    pub language: String,
    /// Read from the image enlarged by [`UPSCALE`] (its text was small).
    #[serde(default)]
    pub enlarged: bool,
    /// Binarised by Sauvola's local threshold, not Otsu's global one (a
    /// weak reading read again: [`wants_adaptive`]).
    #[serde(default)]
    pub adaptive: bool,
    /// The Tesseract runs [`Tesseract::recognize`] made, in order: the
    /// `-l` value of each script group tried ([`Tesseract::group_order`]),
    /// then `<group>:sauvola` for an adaptive reading ([`wants_adaptive`])
    /// and `<group>@2x` for an enlarged one (each kept or not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<String>,
}

impl OcrOutput {
    /// Mean confidence of all words (0 when none).
    pub fn mean_confidence(&self) -> f32 {
        if self.words.is_empty() {
            return 0.0;
        }
        self.words.iter().map(|w| w.confidence).sum::<f32>() / self.words.len() as f32
    }

    /// Words kept for signing.
    pub fn kept_words(&self) -> usize {
        self.words.iter().filter(|w| w.kept).count()
    }

    /// Median box height (px) of the words with a letter or digit: the
    /// size of the text in the image Tesseract read (`None` without words).
    pub fn text_height(&self) -> Option<u32> {
        let mut h: Vec<u32> = self
            .words
            .iter()
            .filter(|w| w.text.chars().any(char::is_alphanumeric))
            .map(|w| w.height)
            .collect();
        h.sort_unstable();
        h.get(h.len() / 2).copied()
    }

    /// Append another image's text (video frames, PDF pages).
    pub fn extend(&mut self, other: OcrOutput) {
        if !other.text.is_empty() {
            if !self.text.is_empty() {
                self.text.push('\n');
            }
            self.text.push_str(&other.text);
        }
        if !other.header.is_empty() {
            if !self.header.is_empty() {
                self.header.push('\n');
            }
            self.header.push_str(&other.header);
        }
        self.words.extend(other.words);
        self.enlarged |= other.enlarged;
        self.adaptive |= other.adaptive;
        self.runs.extend(other.runs);
        if self.language.is_empty() {
            self.language = other.language;
        }
    }
}

/// Parse Tesseract's TSV (`level page block par line word left top width
/// height conf text`): level-5 rows are words. A word is kept when its
/// confidence is at least `min_confidence` and it has a letter or digit;
/// the kept words of the header lines ([`split_header`]) go to
/// [`OcrOutput::header`], the others, words joined with spaces and lines
/// with `\n`, to [`OcrOutput::text`] (what is signed).
pub fn parse_tsv(tsv: &str, min_confidence: f32) -> OcrOutput {
    let mut out = OcrOutput::default();
    let mut line_key: Option<(u32, u32, u32, u32)> = None;
    let mut line_no = 0u32;
    for row in tsv.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        if cols.len() < 12 || cols.first() != Some(&"5") {
            continue;
        }
        let num = |i: usize| {
            cols.get(i)
                .and_then(|c| c.trim().parse::<u32>().ok())
                .unwrap_or(0)
        };
        let conf: f32 = cols
            .get(10)
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(-1.0);
        let text = cols.get(11..).map(|t| t.join("\t")).unwrap_or_default();
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let line = (num(1), num(2), num(3), num(4));
        if line_key != Some(line) {
            line_key = Some(line);
            line_no += u32::from(!out.words.is_empty());
        }
        let kept = conf >= min_confidence && text.chars().any(char::is_alphanumeric);
        out.words.push(OcrWord {
            text: text.to_string(),
            confidence: conf.clamp(0.0, 100.0),
            kept,
            line: line_no,
            height: num(9),
        });
    }
    let (header, body) = split_header(out.words.iter().filter(|w| w.kept), HEADER_MAX_TOKENS);
    out.header = header;
    out.text = body;
    out
}

/// A line at the top of a reading with at most this many tokens, above a
/// longer line, is a *header*: an outlet's name or logo text, a date, a
/// section label. See [`split_header`].
pub const HEADER_MAX_TOKENS: usize = 3;

/// At most this many short lines at the top are a header (a name and a
/// date). A longer run of short lines is the layout of the text itself (a
/// narrow column, a statement set a few words a line), and none of it is
/// cut: otherwise a card set in short lines above one long line would be
/// signed by its last line alone. See [`split_header`].
pub const HEADER_MAX_LINES: usize = 2;

/// Split words (already filtered to the ones kept) into the *header* and
/// the *body*, each as text (words joined by a space, lines by `\n`).
///
/// The header is the run of lines at the top of the reading with at most
/// `max_tokens` tokens each, when a longer line follows it: a claim card
/// carries its outlet's name or logo text, a date or a section label in a
/// short line above the statement, set apart from it. Every card of an
/// outlet carries the same header and outlets reuse sentence templates, so
/// signing the header makes two different statements of one outlet look
/// alike (on the card bench, a shared two-word logo header was what took
/// two templated statements that differ in every name and number under
/// the short-text edit rule) and makes a re-designed card without the
/// logo look less like its bank card. Only the top is cut: a short last
/// line is the end of the body's last sentence. A reading whose lines are
/// all short (a slogan set line by line), or that starts with more than
/// [`HEADER_MAX_LINES`] short lines, has no header: the cut never takes
/// more than two short lines, so it cannot be steered into leaving a card
/// signed by a fraction of its text.
pub fn split_header<'a>(
    words: impl IntoIterator<Item = &'a OcrWord>,
    max_tokens: usize,
) -> (String, String) {
    let mut lines: Vec<(u32, String)> = Vec::new();
    for w in words {
        match lines.last_mut() {
            Some((line, text)) if *line == w.line => {
                text.push(' ');
                text.push_str(&w.text);
            }
            _ => lines.push((w.line, w.text.clone())),
        }
    }
    let header = lines
        .iter()
        .take_while(|(_, t)| token_count(t) <= max_tokens)
        .count();
    let header = if header < lines.len() && header <= HEADER_MAX_LINES {
        header
    } else {
        0
    };
    let join = |ls: &[(u32, String)]| {
        ls.iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (top, body) = lines.split_at(header);
    (join(top), join(body))
}

/// A decoded image prepared for Tesseract: greyscale, size-capped, as a
/// binary PGM (`P5`) — the only bytes the child ever reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcrInput {
    pub width: u32,
    pub height: u32,
    pub pgm: Vec<u8>,
}

/// Smallest side (after scaling) that can hold a line of text.
pub const MIN_SIDE: u32 = 12;

/// Text whose words are under this many pixels high (median box height of
/// a first reading) is read again enlarged by [`UPSCALE`]: Tesseract's
/// line finder and its Arabic model lose dots and thin joins on small
/// glyphs (measured on the card bench: docs/BENCHMARKS.md, "OCR").
pub const SMALL_TEXT_PX: u32 = 32;

/// A first reading of small text whose words' mean confidence is under
/// this is *weak* and is read a second time, enlarged; a confident one is
/// left alone (chosen on the card bench, seeds 18 and 1818:
/// docs/BENCHMARKS.md, "OCR").
pub const WEAK_READING_CONFIDENCE: f32 = 80.0;

/// Whether a first reading is read a second time, enlarged: its text is
/// small (median word box under [`SMALL_TEXT_PX`]) and it is weak (mean
/// word confidence under [`WEAK_READING_CONFIDENCE`]). Enlarging every
/// small text cost 1.4–1.5× a bare pytesseract call, brought a false match
/// and a worse CER; confident readings gain little from a second look.
pub fn wants_enlarged(first: &OcrOutput) -> bool {
    first
        .text_height()
        .is_some_and(|h| h > 0 && h < SMALL_TEXT_PX)
        && first.mean_confidence() < WEAK_READING_CONFIDENCE
}

/// How an adaptive run is marked in [`OcrOutput::runs`] (`ara:sauvola`).
pub const ADAPTIVE_RUN: &str = "sauvola";

/// Whether Tesseract `version` (`tesseract 5.3.0`) can binarise with
/// Sauvola's local threshold: `thresholding_method` came with 5.0.
fn supports_adaptive(version: &str) -> bool {
    version
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse::<u32>().ok())
        .is_some_and(|major| major >= 5)
}

/// Whether a first reading is read again binarised by Sauvola's local
/// threshold: it found words and is weak (mean word confidence under
/// [`WEAK_READING_CONFIDENCE`], the bar of [`wants_enlarged`]), at any
/// text height. Tesseract binarises at Otsu's global threshold by default;
/// on claim cards over a photo (the photo shows through a translucent
/// panel and fills the margins), at low JPEG quality and with thin light
/// strokes on dark cards, one threshold for the whole page breaks strokes
/// and keeps texture, and the reading is weak. Sauvola's threshold follows
/// the local mean and spread of the page (window and `k` are Tesseract's
/// defaults). A confident reading is left alone (docs/BENCHMARKS.md,
/// "OCR", session 15).
pub fn wants_adaptive(first: &OcrOutput) -> bool {
    !first.words.is_empty() && first.mean_confidence() < WEAK_READING_CONFIDENCE
}

/// The reading kept of a first reading and its adaptive one: the more
/// confident (mean word confidence), the first on a tie. Unlike the
/// enlarged reading, a binarised page keeps its size and layout, so the
/// reading with fewer words is not one that lost lines: it is mostly the
/// texture read as words that it drops.
pub fn choose_adaptive(first: OcrOutput, second: OcrOutput) -> OcrOutput {
    if second.mean_confidence() > first.mean_confidence() {
        second
    } else {
        first
    }
}

/// The reading kept of a first reading and its enlarged second reading.
pub fn choose_reading(first: OcrOutput, second: OcrOutput) -> OcrOutput {
    // A more confident reading that keeps fewer words has lost lines
    // (measured: a 28 pt card's enlarged reading dropped two of three
    // lines at a higher mean confidence).
    if second.mean_confidence() > first.mean_confidence()
        && second.kept_words() >= first.kept_words()
    {
        second
    } else {
        first
    }
}

/// Scale factor of the second reading of small text.
pub const UPSCALE: u32 = 2;

/// `input` enlarged `factor` times (bilinear), or less when
/// [`OcrLimits::max_side`] or [`OcrLimits::max_pixels`] would be passed;
/// `None` when it cannot be enlarged by at least half.
pub fn upscale(input: &OcrInput, factor: u32, limits: &OcrLimits) -> Option<OcrInput> {
    let (w, h) = (input.width, input.height);
    let header = format!("P5\n{w} {h}\n255\n");
    let body = input.pgm.get(header.len()..)?;
    if w == 0 || h == 0 || body.len() < (w as usize).checked_mul(h as usize)? {
        return None;
    }
    // The largest scale (in halves) within both limits.
    let mut halves = factor.saturating_mul(2);
    while halves > 2
        && (u64::from(w) * u64::from(halves) / 2 > u64::from(limits.max_side)
            || u64::from(h) * u64::from(halves) / 2 > u64::from(limits.max_side)
            || (u64::from(w) * u64::from(halves) / 2) * (u64::from(h) * u64::from(halves) / 2)
                > limits.max_pixels)
    {
        halves -= 1;
    }
    if halves < 3 {
        return None;
    }
    let (ow, oh) = (w * halves / 2, h * halves / 2);
    let out_header = format!("P5\n{ow} {oh}\n255\n");
    let mut pgm = Vec::with_capacity(out_header.len() + ow as usize * oh as usize);
    pgm.extend_from_slice(out_header.as_bytes());
    let (wu, hu) = (w as usize, h as usize);
    let px = |x: usize, y: usize| f32::from(body.get(y * wu + x).copied().unwrap_or(255));
    let scale = 2.0 / halves as f32;
    for oy in 0..oh {
        let sy = ((oy as f32 + 0.5) * scale - 0.5).clamp(0.0, (hu - 1) as f32);
        let (y0, fy) = (sy as usize, sy.fract());
        let y1 = (y0 + 1).min(hu - 1);
        for ox in 0..ow {
            let sx = ((ox as f32 + 0.5) * scale - 0.5).clamp(0.0, (wu - 1) as f32);
            let (x0, fx) = (sx as usize, sx.fract());
            let x1 = (x0 + 1).min(wu - 1);
            let top = px(x0, y0) * (1.0 - fx) + px(x1, y0) * fx;
            let bottom = px(x0, y1) * (1.0 - fx) + px(x1, y1) * fx;
            pgm.push((top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8);
        }
    }
    Some(OcrInput {
        width: ow,
        height: oh,
        pgm,
    })
}

/// An image whose text-sized ink shapes are at least this share joined
/// letters ([`cursive_share`]) is read with the cursive script group
/// first. Chosen on the card bench, seeds 18 and 1818, as the fewest wrong
/// first runs (Arabic cards read Latin first plus English cards read
/// Arabic first) over shares 0.005–0.02 and fills 0.3–0.45
/// (docs/BENCHMARKS.md, "OCR").
pub const CURSIVE_SHARE: f32 = 0.01;

/// Fewest text-sized shapes [`cursive_share`] needs to say anything.
const CURSIVE_MIN_SHAPES: usize = 10;

/// Most ink runs [`cursive_share`] follows (about 12 bytes each): a noisy
/// page with more says nothing instead of taking more memory.
const CURSIVE_MAX_RUNS: usize = 1 << 20;

/// Whether `input` looks like cursive (Arabic-script) text:
/// [`cursive_share`] is at least [`CURSIVE_SHARE`]. Only the order of the
/// script groups depends on it: a wrong guess costs one Tesseract run,
/// never a reading (the other group is still tried when the first is not
/// accepted).
pub fn reads_cursive(input: &OcrInput) -> bool {
    cursive_share(input).is_some_and(|s| s >= CURSIVE_SHARE)
}

/// The share of text-sized ink shapes that are joined letters: at least
/// 2.5 times as wide as high and at most 40 % filled. Arabic script joins
/// the letters of a word along the baseline into one wide, open shape;
/// Latin letters stand apart, each about as wide as high. The page is binarised at Otsu's threshold (ink is the
/// smaller side, so light text on dark works too); shapes are 8-connected
/// ink; a shape counts when it is 5–150 px high, under 40 % of the page
/// wide and not a solid block (≤ 80 % filled: rules, logo bars). `None`
/// with fewer than [`CURSIVE_MIN_SHAPES`] shapes or more than
/// [`CURSIVE_MAX_RUNS`] ink runs. One pass over the pixels, about 1 ms
/// per megapixel.
pub fn cursive_share(input: &OcrInput) -> Option<f32> {
    let (w, h) = (input.width as usize, input.height as usize);
    let header = format!("P5\n{w} {h}\n255\n");
    let body = input.pgm.get(header.len()..)?.get(..w.checked_mul(h)?)?;
    if w == 0 || h == 0 {
        return None;
    }
    // Otsu's threshold: the grey level that best splits the histogram.
    let mut hist = [0u64; 256];
    for &v in body {
        hist[usize::from(v)] += 1;
    }
    let total = body.len() as f64;
    let sum_all: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &c)| i as f64 * c as f64)
        .sum();
    let (mut w0, mut sum0, mut best, mut threshold) = (0.0f64, 0.0f64, -1.0f64, 0u8);
    for (i, &c) in hist.iter().enumerate() {
        w0 += c as f64 / total;
        sum0 += i as f64 * c as f64 / total;
        let between = (sum_all / total * w0 - sum0).powi(2) / (w0 * (1.0 - w0)).max(1e-12);
        if between > best {
            best = between;
            threshold = i as u8;
        }
    }
    // The dark class is the levels up to and including the threshold (a
    // page of pure black on pure white splits at 0).
    let dark = body.iter().filter(|&&v| v <= threshold).count();
    let ink_is_dark = dark * 2 <= body.len();
    let ink = |v: u8| (v <= threshold) == ink_is_dark;

    // Ink runs row by row, joined to the overlapping runs (8-connected) of
    // the row above with a union-find.
    struct Run {
        x0: u32,
        x1: u32,
        y: u32,
    }
    let mut runs: Vec<Run> = Vec::new();
    let mut parent: Vec<u32> = Vec::new();
    fn root(parent: &mut [u32], mut i: u32) -> u32 {
        while parent[i as usize] != i {
            let up = parent[parent[i as usize] as usize];
            parent[i as usize] = up;
            i = up;
        }
        i
    }
    let mut above = 0..0usize;
    for (y, row) in body.chunks_exact(w).enumerate() {
        let start = runs.len();
        let mut x = 0usize;
        while x < w {
            if !ink(row[x]) {
                x += 1;
                continue;
            }
            let x0 = x;
            while x < w && ink(row[x]) {
                x += 1;
            }
            if runs.len() >= CURSIVE_MAX_RUNS {
                return None;
            }
            let id = runs.len() as u32;
            runs.push(Run {
                x0: x0 as u32,
                x1: x as u32,
                y: y as u32,
            });
            parent.push(id);
            for j in above.clone() {
                let r = &runs[j];
                // Touching or diagonal: [x0, x) against [r.x0, r.x1).
                if (r.x0 as usize) <= x && x0 <= r.x1 as usize {
                    let (a, b) = (root(&mut parent, id), root(&mut parent, j as u32));
                    if a != b {
                        parent[a.max(b) as usize] = a.min(b);
                    }
                }
            }
        }
        above = start..runs.len();
    }
    // Bounding box and area of each shape, at its root run.
    #[derive(Clone, Copy)]
    struct Shape {
        x0: u32,
        x1: u32,
        y0: u32,
        y1: u32,
        area: u64,
    }
    let mut shapes: Vec<Option<Shape>> = vec![None; runs.len()];
    for (i, run) in runs.iter().enumerate() {
        let r = root(&mut parent, i as u32) as usize;
        let s = shapes[r].get_or_insert(Shape {
            x0: run.x0,
            x1: run.x1,
            y0: run.y,
            y1: run.y + 1,
            area: 0,
        });
        s.x0 = s.x0.min(run.x0);
        s.x1 = s.x1.max(run.x1);
        s.y0 = s.y0.min(run.y);
        s.y1 = s.y1.max(run.y + 1);
        s.area += u64::from(run.x1 - run.x0);
    }
    let (mut counted, mut wide) = (0usize, 0usize);
    for s in shapes.into_iter().flatten() {
        let (sw, sh, area) = (u64::from(s.x1 - s.x0), u64::from(s.y1 - s.y0), s.area);
        if !(5..=150).contains(&sh) || sw * 10 > w as u64 * 4 || area * 10 > sw * sh * 8 {
            continue;
        }
        counted += 1;
        // Joined letters are open strokes (≤ 40 % filled); a wide, fuller
        // shape is texture (the streaks a photo leaves after binarising).
        wide += usize::from(sw * 2 >= sh * 5 && area * 10 <= sw * sh * 4);
    }
    (counted >= CURSIVE_MIN_SHAPES).then(|| wide as f32 / counted as f32)
}

/// Grey, scale down (area average) to fit `limits`, invert a mostly dark
/// image (light text on a dark card), encode as PGM. `None` when the image
/// is too thin to hold text (e.g. a 1×60000 strip).
pub fn prepare(rgb: &[u8], width: u32, height: u32, limits: &OcrLimits) -> Option<OcrInput> {
    let (w, h) = (width as usize, height as usize);
    if w == 0 || h == 0 || rgb.len() < w.checked_mul(h)?.checked_mul(3)? {
        return None;
    }
    shrink(width, height, limits, |x, y| {
        let i = (y * w + x) * 3;
        match rgb.get(i..i + 3) {
            Some(&[r, g, b]) => {
                (u32::from(r) * 299 + u32::from(g) * 587 + u32::from(b) * 114) / 1000
            }
            _ => 0,
        }
    })
}

/// [`prepare`] for an image that is already greyscale (a rendered PDF
/// page): `grey` holds `width × height` bytes.
pub fn from_grey(grey: &[u8], width: u32, height: u32, limits: &OcrLimits) -> Option<OcrInput> {
    let (w, h) = (width as usize, height as usize);
    if w == 0 || h == 0 || grey.len() < w.checked_mul(h)? {
        return None;
    }
    shrink(width, height, limits, |x, y| {
        u32::from(grey.get(y * w + x).copied().unwrap_or(0))
    })
}

/// Box-average `luma(x, y)` down by an integer divisor so both limits
/// hold, invert a mostly dark result, encode as PGM.
fn shrink(
    width: u32,
    height: u32,
    limits: &OcrLimits,
    luma: impl Fn(usize, usize) -> u32,
) -> Option<OcrInput> {
    let longest = width.max(height);
    let mut div = longest.div_ceil(limits.max_side.max(1)).max(1);
    while u64::from(width / div) * u64::from(height / div) > limits.max_pixels {
        div += 1;
    }
    let (ow, oh) = (width / div, height / div);
    if ow < MIN_SIDE || oh < MIN_SIDE {
        return None;
    }
    let d = div as usize;
    let (ow_u, oh_u) = (ow as usize, oh as usize);
    let header = format!("P5\n{ow} {oh}\n255\n");
    let mut pgm = Vec::with_capacity(header.len() + ow_u * oh_u);
    pgm.extend_from_slice(header.as_bytes());
    let area = (d * d) as u32;
    for oy in 0..oh_u {
        for ox in 0..ow_u {
            let mut sum: u32 = 0;
            for y in oy * d..oy * d + d {
                for x in ox * d..ox * d + d {
                    sum += luma(x, y);
                }
            }
            pgm.push((sum / area) as u8);
        }
    }
    // Light text on a dark card: invert, so Tesseract always sees dark
    // text on a light page (its line-level inversion misses whole lines).
    let body = pgm.get_mut(header.len()..).unwrap_or_default();
    let mean = body.iter().map(|&v| u64::from(v)).sum::<u64>() / body.len().max(1) as u64;
    if mean < 110 {
        for v in body.iter_mut() {
            *v = 255 - *v;
        }
    }
    Some(OcrInput {
        width: ow,
        height: oh,
        pgm,
    })
}

/// Result of [`text_presence`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TextPresence {
    /// Most text-line bands of consistent height found in one vertical
    /// strip of the image.
    pub lines: u32,
    /// Bands found at the same rows in at least two strips (one line of
    /// text across the image).
    pub wide_lines: u32,
    /// Crowded lines: bands whose gaps are valleys rather than empty rows
    /// (tightly set lines crossed by ascenders, descenders and dots, as
    /// Arabic is), counted when another strip has a band with the same
    /// top row (±1) and a bottom row within half a band: a straight line
    /// of text across the image.
    pub crowded_lines: u32,
    /// The test fired: OCR is worth running.
    pub likely: bool,
}

/// Longest side of the luma grid the presence test samples (an image
/// larger than this is point-sampled down; cost is bounded whatever the
/// image size: ≤ 384 × 384 × 2 pixel reads).
const PRESENCE_SIDE: usize = 384;
/// A strong horizontal edge: |Δluma| between neighbouring grid samples.
const EDGE_STEP: i32 = 30;
/// Vertical strips the grid is cut into (text need not span the image).
const PRESENCE_STRIPS: usize = 3;
/// A strip row is "busy" (crosses glyphs) when at least this share of its
/// samples are strong edges …
const BUSY_ROW: f32 = 0.12;
/// … and a gap between lines when at most this share are.
const GAP_ROW: f32 = 0.03;
/// Rows looked at above and below a band for its gap.
const GAP_REACH: usize = 3;
/// A valley between crowded lines: a row with at most this share of the
/// band's mean edge density (and never required below [`GAP_ROW`]).
const VALLEY_SHARE: f32 = 0.25;
/// Rows by which a crowded line's top may differ between strips (its
/// bottom may differ by half the shorter band's height: descenders and the
/// dots below the baseline lengthen a line's busy rows where they occur).
const ALIGN_ROWS: usize = 1;

/// The cheap text-presence test, designed and tuned by measurement
/// (`bench/run_ocr.sh`, ARCHITECTURE.md "OCR"): text is *lines* — bands of
/// rows dense in strong, short horizontal luminance edges (glyph strokes),
/// each band bordered above and below by near-empty rows (the space
/// between lines). Textured photographs (foliage, fabric, water) are dense
/// in edges too, but without those gaps; smooth photographs have no dense
/// rows at all.
///
/// On a point-sampled luma grid (longest side ≤ 384; two horizontal
/// samples averaged per cell) cut into three vertical strips, a strip row
/// is busy when ≥ 12 % of its samples are strong edges (|Δluma| ≥ 30); a
/// band is a run of busy rows 2 px to ⅕ of the grid high with a gap row
/// (≤ 3 % edges) within 3 rows above and below. The test fires when one
/// strip holds ≥ 2 bands of consistent height (within ×2 of their
/// median), or one band recurs at the same rows in two strips (a single
/// line across the image, e.g. a caption).
///
/// Tightly set lines have no empty row between them: Arabic's dots,
/// descenders (ر و ي ن) and tall ascenders (ا ل ك) cross the space between
/// lines at 5–10 % edge density, as small or cramped Latin lines do after
/// JPEG. Such a band counts as a *crowded line* when it has a valley (≤ ¼
/// of its own mean density) within 3 rows above and below, and another
/// strip has a band whose top is within one row of its own (the straight
/// top of a line of text across the image) and whose bottom is within half
/// the shorter band's height (descenders and the dots below the baseline
/// lengthen a line's busy rows only where they occur). The rows of a
/// textured photo's dense bands (windows of a façade, foliage) do not line
/// up that exactly between strips (measured on the card bench
/// and 371 text-free photos and frames: docs/BENCHMARKS.md, "OCR").
pub fn text_presence(rgb: &[u8], width: u32, height: u32) -> TextPresence {
    let (w, h) = (width as usize, height as usize);
    if w < 16 || h < 8 || w.saturating_mul(h).saturating_mul(3) > rgb.len() {
        return TextPresence::default();
    }
    let step = w.max(h).div_ceil(PRESENCE_SIDE).max(1);
    let (gw, gh) = (w.div_ceil(step), h.div_ceil(step));
    let strip_w = (gw.saturating_sub(1) / PRESENCE_STRIPS).max(1);
    // Busy share of every strip row: `density[s * gh + y]`.
    let mut density = vec![0f32; PRESENCE_STRIPS * gh];
    let mut row = vec![0i32; gw];
    let luma = |i: usize| match rgb.get(i..i + 3) {
        Some(&[r, g, b]) => (i32::from(r) * 77 + i32::from(g) * 150 + i32::from(b) * 29) >> 8,
        _ => 0,
    };
    for gy in 0..gh {
        let base = (gy * step + step / 2).min(h - 1) * w * 3;
        for (gx, l) in row.iter_mut().enumerate() {
            let x = gx * step;
            let x2 = (x + step / 2).min(w - 1);
            *l = (luma(base + x * 3) + luma(base + x2 * 3)) >> 1;
        }
        for s in 0..PRESENCE_STRIPS {
            let lo = s * strip_w;
            let hi = ((s + 1) * strip_w).min(gw - 1);
            if hi <= lo {
                continue;
            }
            let edges = (lo..hi)
                .filter(|&x| (row[x + 1] - row[x]).abs() >= EDGE_STEP)
                .count();
            density[s * gh + gy] = edges as f32 / (hi - lo) as f32;
        }
    }
    let max_band = (gh / 5).max(4);
    let mut bands: Vec<Vec<(usize, usize)>> = Vec::with_capacity(PRESENCE_STRIPS);
    let mut crowded: Vec<Vec<(usize, usize)>> = Vec::with_capacity(PRESENCE_STRIPS);
    let mut lines = 0u32;
    for s in 0..PRESENCE_STRIPS {
        let d = &density[s * gh..(s + 1) * gh];
        let mut found = Vec::new();
        let mut crowded_here = Vec::new();
        let mut y = 0;
        while y < gh {
            if d[y] < BUSY_ROW {
                y += 1;
                continue;
            }
            let y0 = y;
            while y < gh && d[y] >= BUSY_ROW {
                y += 1;
            }
            if !(2..=max_band).contains(&(y - y0)) {
                continue;
            }
            // A gap (or a valley) within reach above and below the band;
            // the image's edge counts as one.
            let above = &d[y0.saturating_sub(GAP_REACH)..y0];
            let below = &d[y..(y + GAP_REACH).min(gh)];
            let bordered = |limit: f32| {
                (y0 == 0 || above.iter().any(|&v| v <= limit))
                    && (y == gh || below.iter().any(|&v| v <= limit))
            };
            if bordered(GAP_ROW) {
                found.push((y0, y));
            } else {
                let mean = d[y0..y].iter().sum::<f32>() / (y - y0) as f32;
                if bordered(GAP_ROW.max(VALLEY_SHARE * mean)) {
                    crowded_here.push((y0, y));
                }
            }
        }
        crowded.push(crowded_here);
        if !found.is_empty() {
            let mut heights: Vec<usize> = found.iter().map(|(a, b)| b - a).collect();
            heights.sort_unstable();
            let median = heights[heights.len() / 2];
            let consistent = heights
                .iter()
                .filter(|&&v| v * 2 >= median && v <= median * 2)
                .count();
            lines = lines.max(consistent as u32);
        }
        bands.push(found);
    }
    // A band that overlaps (by half its height) a band of another strip.
    let mut wide_lines = 0u32;
    for (s, found) in bands.iter().enumerate() {
        for &(a0, a1) in found {
            let shared = bands.iter().enumerate().any(|(t, other)| {
                t > s
                    && other
                        .iter()
                        .any(|&(b0, b1)| 2 * (a1.min(b1).saturating_sub(a0.max(b0))) >= a1 - a0)
            });
            wide_lines += u32::from(shared);
        }
    }
    // A crowded band whose top recurs (±1 row) in another strip, with its
    // bottom within half the shorter band.
    let mut crowded_lines = 0u32;
    for (s, here) in crowded.iter().enumerate() {
        for &(a0, a1) in here {
            let straight = (0..PRESENCE_STRIPS).filter(|&t| t != s).any(|t| {
                bands[t].iter().chain(&crowded[t]).any(|&(b0, b1)| {
                    let half = ((a1 - a0).min(b1 - b0) / 2).max(ALIGN_ROWS);
                    a0.abs_diff(b0) <= ALIGN_ROWS && a1.abs_diff(b1) <= half
                })
            });
            crowded_lines += u32::from(straight);
        }
    }
    TextPresence {
        lines,
        wide_lines,
        crowded_lines,
        likely: lines >= 2 || wide_lines >= 1 || crowded_lines >= 1,
    }
}

/// Most key frames of one video handed to OCR.
pub const MAX_KEY_FRAMES: usize = 8;
/// A frame is a new key frame when its PDQ hash is farther than this from
/// every key frame kept so far (the vPDQ match distance: a scene change, or
/// the same scene with different text).
pub const KEY_FRAME_DISTANCE: u32 = 31;

/// Picks a video's OCR key frames while it is hashed: at most one frame per
/// second of video is checked with [`text_presence`]; a frame that passes
/// and differs from every kept key frame (PDQ distance >
/// [`KEY_FRAME_DISTANCE`]) — a scene change or new text — is prepared for
/// OCR, up to [`MAX_KEY_FRAMES`]. Scene changes without text cost nothing.
#[derive(Debug)]
pub struct KeyFrames {
    limits: OcrLimits,
    next_second: f64,
    kept: Vec<crate::pdq::PdqHash>,
    inputs: Vec<OcrInput>,
}

impl KeyFrames {
    pub fn new(limits: OcrLimits) -> KeyFrames {
        KeyFrames {
            limits,
            next_second: 0.0,
            kept: Vec::new(),
            inputs: Vec::new(),
        }
    }

    /// Look at one hashed frame (frames arrive in time order).
    pub fn offer(&mut self, frame: crate::video::vpdq::ObservedFrame<'_>) {
        let f = frame.feature;
        if self.inputs.len() >= MAX_KEY_FRAMES || f.timestamp < self.next_second {
            return;
        }
        self.next_second = f.timestamp.floor() + 1.0;
        if self
            .kept
            .iter()
            .any(|h| h.distance(&f.hash) <= KEY_FRAME_DISTANCE)
        {
            return;
        }
        if !text_presence(frame.rgb, frame.width, frame.height).likely {
            return;
        }
        if let Some(input) = prepare(frame.rgb, frame.width, frame.height, &self.limits) {
            self.kept.push(f.hash);
            self.inputs.push(input);
        }
    }

    /// The key frames, in time order.
    pub fn into_inputs(self) -> Vec<OcrInput> {
        self.inputs
    }
}

/// Number of `text-norm-v1` tokens of `text`.
pub fn token_count(text: &str) -> usize {
    crate::text::normalize(text).token_count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_words_confidence_and_lines() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
1\t1\t0\t0\t0\t0\t0\t0\t10\t10\t-1\t\n\
5\t1\t1\t1\t1\t1\t0\t0\t1\t1\t96.5\tCity\n\
5\t1\t1\t1\t1\t2\t0\t0\t1\t1\t12.0\tRovrs\n\
5\t1\t1\t1\t1\t3\t0\t0\t1\t1\t90\twin\n\
5\t1\t1\t1\t2\t1\t0\t0\t1\t1\t88\tagain\n\
5\t1\t1\t1\t2\t2\t0\t0\t1\t1\t95\t|\n";
        let out = parse_tsv(tsv, 40.0);
        assert_eq!(out.text, "City win\nagain");
        assert_eq!(out.words.len(), 5);
        assert!(!out.words[1].kept);
        assert!(!out.words[4].kept, "punctuation-only words are dropped");
        assert!((out.mean_confidence() - 76.3).abs() < 0.1);
    }

    /// Words of `lines` (one string per line), kept, at confidence 90.
    fn lines(lines: &[&str]) -> Vec<OcrWord> {
        lines
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                l.split_whitespace().map(move |w| OcrWord {
                    text: w.to_string(),
                    confidence: 90.0,
                    kept: true,
                    line: i as u32,
                    height: 20,
                })
            })
            .collect()
    }

    #[test]
    fn short_top_lines_above_the_body_are_the_header() {
        let body =
            "City Rovers beat Lakeside Dynamo 5-0 on Saturday in front of 12000\nsupporters.";
        let w = lines(&[
            "DAILY BULLETIN",
            "City Rovers beat Lakeside Dynamo 5-0 on Saturday in front of 12000",
            "supporters.",
        ]);
        assert_eq!(
            split_header(&w, HEADER_MAX_TOKENS),
            ("DAILY BULLETIN".to_string(), body.to_string())
        );
        // Two short lines (a name and a date), three tokens at most each.
        let w = lines(&[
            "نشرة الأخبار",
            "5 May 2026",
            "فاز الوادي الرياضي على نادي المدينة",
        ]);
        let (head, text) = split_header(&w, HEADER_MAX_TOKENS);
        assert_eq!(head, "نشرة الأخبار\n5 May 2026");
        assert_eq!(text, "فاز الوادي الرياضي على نادي المدينة");
        // A four-token first line is body; a short last line is body.
        let w = lines(&["Bayview Sporting beat Eastfield", "2-1 on Monday.", "End."]);
        assert_eq!(split_header(&w, HEADER_MAX_TOKENS).0, "");
        // More short lines at the top than a header has (a statement set
        // a few words a line above a long one): none of them is cut.
        let w = lines(&[
            "City Rovers",
            "beat Lakeside",
            "Dynamo 5-0",
            "on Saturday in front of 12000 supporters.",
        ]);
        let (head, text) = split_header(&w, HEADER_MAX_TOKENS);
        assert_eq!(head, "");
        assert!(text.starts_with("City Rovers\nbeat Lakeside"), "{text}");
        // Every line short (a slogan set line by line): no header.
        let w = lines(&["We stand", "with the city", "today"]);
        let (head, text) = split_header(&w, HEADER_MAX_TOKENS);
        assert_eq!(
            (head.as_str(), text.as_str()),
            ("", "We stand\nwith the city\ntoday")
        );
        assert_eq!(
            split_header(&[], HEADER_MAX_TOKENS),
            (String::new(), String::new())
        );
    }

    #[test]
    fn parse_tsv_signs_the_body_below_a_header() {
        let row = |line: u32, word: u32, text: &str| {
            format!("5\t1\t1\t1\t{line}\t{word}\t0\t0\t1\t1\t91\t{text}\n")
        };
        let mut tsv = String::from("level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n");
        tsv += &row(1, 1, "DAILY");
        tsv += &row(1, 2, "BULLETIN");
        for (i, w) in "Trains to Bergen will run every 40 minutes."
            .split(' ')
            .enumerate()
        {
            tsv += &row(2, i as u32 + 1, w);
        }
        let out = parse_tsv(&tsv, 40.0);
        assert_eq!(out.header, "DAILY BULLETIN");
        assert_eq!(out.text, "Trains to Bergen will run every 40 minutes.");
        assert_eq!(
            out.kept_words(),
            10,
            "header words are read and kept, not signed"
        );
    }

    /// A white page with `shapes` drawn in black, as a prepared input.
    fn page(w: u32, h: u32, shapes: &[(u32, u32, u32, u32)]) -> OcrInput {
        let mut px = vec![255u8; (w * h) as usize];
        for &(x, y, sw, sh) in shapes {
            for yy in y..y + sh {
                for xx in x..x + sw {
                    px[(yy * w + xx) as usize] = 0;
                }
            }
        }
        let mut pgm = format!("P5\n{w} {h}\n255\n").into_bytes();
        pgm.extend(px);
        OcrInput {
            width: w,
            height: h,
            pgm,
        }
    }

    #[test]
    fn cursive_share_sees_joined_letters() {
        // "Words" of joined letters: a 60 px baseline stroke with three
        // 15 px stems (60 × 18 px, 25 % filled) ...
        let mut joined = Vec::new();
        // ... and Latin-like letters: 10 × 16 px rings, one shape each.
        let mut letters = Vec::new();
        for i in 0..20u32 {
            let (x, y) = (10 + (i % 5) * 80, 10 + (i / 5) * 40);
            joined.push((x, y + 15, 60, 3));
            for k in 0..3 {
                joined.push((x + 5 + k * 20, y, 3, 15));
            }
            let (lx, ly) = (10 + (i % 10) * 20, 10 + (i / 10) * 30);
            letters.extend([
                (lx, ly, 10, 2),
                (lx, ly + 14, 10, 2),
                (lx, ly, 2, 16),
                (lx + 8, ly, 2, 16),
            ]);
        }
        let cursive = page(420, 180, &joined);
        assert_eq!(cursive_share(&cursive), Some(1.0));
        assert!(reads_cursive(&cursive));
        let latin = page(420, 180, &letters);
        assert_eq!(cursive_share(&latin), Some(0.0));
        assert!(!reads_cursive(&latin));
        // A solid bar (a logo band) is not a joined word; too few shapes
        // say nothing.
        let bar = page(420, 180, &[(10, 10, 300, 20)]);
        assert_eq!(cursive_share(&bar), None);
        assert_eq!(cursive_share(&page(40, 40, &[])), None);
        // A truncated PGM is refused, not read past its end.
        let mut short = latin.clone();
        short.pgm.truncate(100);
        assert_eq!(cursive_share(&short), None);
    }

    #[test]
    fn word_heights_and_upscale_within_limits() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
5\t1\t1\t1\t1\t1\t0\t0\t9\t14\t90\tone\n\
5\t1\t1\t1\t1\t2\t0\t0\t9\t18\t90\ttwo\n\
5\t1\t1\t1\t1\t3\t0\t0\t9\t40\t90\t|\n\
5\t1\t1\t1\t1\t4\t0\t0\t9\t16\t90\tsix\n";
        let out = parse_tsv(tsv, 40.0);
        assert_eq!(out.text_height(), Some(16), "punctuation is not text");
        assert_eq!(OcrOutput::default().text_height(), None);

        // A 2×1 image: dark left, light right; enlarged 2× it is 4×2 with
        // the edge interpolated.
        let input = OcrInput {
            width: 2,
            height: 1,
            pgm: [b"P5\n2 1\n255\n".as_slice(), &[0, 200]].concat(),
        };
        let big = upscale(&input, 2, &OcrLimits::default()).expect("enlarged");
        assert_eq!((big.width, big.height), (4, 2));
        let body = &big.pgm[b"P5\n4 2\n255\n".len()..];
        assert_eq!(body, &[0, 50, 150, 200, 0, 50, 150, 200]);
        // Within max_side: 1,000 px wide under a 1,600 px cap → 1.5×;
        // under a 1,400 px cap it cannot grow by half and is not enlarged.
        let wide = OcrInput {
            width: 1000,
            height: 20,
            pgm: [b"P5\n1000 20\n255\n".as_slice(), &[255u8; 20_000]].concat(),
        };
        let cap = |max_side| OcrLimits {
            max_side,
            ..OcrLimits::default()
        };
        let b = upscale(&wide, 2, &cap(1600)).expect("1.5x");
        assert_eq!((b.width, b.height), (1500, 30));
        assert!(upscale(&wide, 2, &cap(1400)).is_none());
        // A truncated body is refused, not read past.
        let short = OcrInput {
            width: 10,
            height: 10,
            pgm: b"P5\n10 10\n255\n".to_vec(),
        };
        assert!(upscale(&short, 2, &OcrLimits::default()).is_none());
    }

    /// A reading of `(confidence, text)` words on one line.
    fn reading(words: &[(f32, &str)]) -> OcrOutput {
        let mut tsv = String::from("level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n");
        for (i, (conf, text)) in words.iter().enumerate() {
            tsv.push_str(&format!(
                "5\t1\t1\t1\t1\t{i}\t0\t0\t9\t20\t{conf}\t{text}\n"
            ));
        }
        parse_tsv(&tsv, DEFAULT_MIN_CONFIDENCE)
    }

    #[test]
    fn weak_readings_are_read_again_adaptive_and_the_more_confident_kept() {
        // Weak (mean 65 < 80) at any height: read again; confident (≥ 80)
        // or empty: not.
        let weak = reading(&[(90.0, "في"), (40.0, "بيروت"), (65.0, "افتتح")]);
        assert!(wants_adaptive(&weak));
        let confident = reading(&[(90.0, "في"), (85.0, "بيروت"), (80.0, "افتتح")]);
        assert!(!wants_adaptive(&confident));
        assert!(!wants_adaptive(&OcrOutput::default()));
        // The more confident reading is kept, fewer words or not (the
        // texture a global threshold left is read as words); a tie keeps
        // the first.
        let mut clean = reading(&[(92.0, "في"), (88.0, "بيروت")]);
        clean.adaptive = true;
        let kept = choose_adaptive(weak.clone(), clean.clone());
        assert!(kept.adaptive);
        assert_eq!(kept.text, "في بيروت");
        let mut worse = reading(&[(30.0, "ڡى"), (50.0, "بىروب"), (20.0, "2")]);
        worse.adaptive = true;
        assert!(!choose_adaptive(weak.clone(), worse).adaptive);
        let mut tie = weak.clone();
        tie.adaptive = true;
        assert!(!choose_adaptive(weak.clone(), tie).adaptive);
        // `extend` (video frames, PDF pages) carries the mark.
        let mut joined = weak;
        joined.extend(kept);
        assert!(joined.adaptive);
    }

    #[test]
    fn sauvola_needs_tesseract_5() {
        assert!(supports_adaptive("tesseract 5.3.0"));
        assert!(supports_adaptive("tesseract 5.0.0-alpha-20201224"));
        assert!(!supports_adaptive("tesseract 4.1.1"));
        assert!(!supports_adaptive("tesseract"));
        assert!(!supports_adaptive(""));
    }

    #[test]
    fn list_langs_parsed() {
        let l = "List of available languages in \"/usr/share/tesseract-ocr/5/tessdata/\" (3):\nara\neng\nosd\n";
        let (dir, langs) = parse_list_langs(l);
        assert_eq!(
            dir,
            Some(PathBuf::from("/usr/share/tesseract-ocr/5/tessdata/"))
        );
        assert_eq!(langs, ["ara", "eng", "osd"]);
    }

    #[test]
    fn prepare_caps_size_and_refuses_strips() {
        let limits = OcrLimits::default();
        let strip = vec![255u8; 100_000 * 3];
        assert!(prepare(&strip, 1, 100_000, &limits).is_none());
        assert!(prepare(&strip, 100_000, 1, &limits).is_none());
        let (w, h) = (5000u32, 3000u32);
        let big = vec![128u8; (w * h * 3) as usize];
        let p = prepare(&big, w, h, &limits).unwrap_or_else(|| panic!("prepared"));
        assert!(p.width <= 2400 && p.height <= 2400);
        assert!(u64::from(p.width) * u64::from(p.height) <= limits.max_pixels);
        assert!(p.pgm.starts_with(b"P5\n"));
        assert_eq!(
            p.pgm.len(),
            format!("P5\n{} {}\n255\n", p.width, p.height).len() + (p.width * p.height) as usize
        );
        // Short buffers are refused, not read past.
        assert!(prepare(&big[..10], w, h, &limits).is_none());
    }

    #[test]
    fn presence_flat_vs_lines_vs_texture() {
        let (w, h) = (400u32, 200u32);
        let flat = vec![90u8; (w * h * 3) as usize];
        assert!(!text_presence(&flat, w, h).likely);
        // Glyph-like strokes in bands of rows separated by empty rows.
        let strokes = |rows: &[std::ops::Range<u32>], cols: std::ops::Range<u32>| {
            let mut px = vec![250u8; (w * h * 3) as usize];
            for r in rows {
                for y in r.clone() {
                    for x in cols.clone() {
                        if x % 7 < 2 {
                            let i = ((y * w + x) * 3) as usize;
                            px[i..i + 3].copy_from_slice(&[10, 10, 10]);
                        }
                    }
                }
            }
            px
        };
        // One line across the image (a caption).
        let caption = strokes(std::slice::from_ref(&(80..110)), 20..380);
        let p = text_presence(&caption, w, h);
        assert!(p.likely && p.wide_lines >= 1, "{p:?}");
        // Three lines in the left third only.
        let block = strokes(&[30..45, 60..75, 90..105], 10..120);
        let p = text_presence(&block, w, h);
        assert!(p.likely && p.lines >= 3, "{p:?}");
        // Texture: strokes on every row, no gaps between lines.
        let texture = strokes(std::slice::from_ref(&(0..200)), 0..400);
        assert!(!text_presence(&texture, w, h).likely);
        // Short buffers are refused, not read past.
        assert!(!text_presence(&caption[..10], w, h).likely);
    }

    /// Lines of glyph strokes `(rows, columns)` on a light page whose rows
    /// 20..180 also carry sparse marks (one 4-px mark every 60 px: ~7 %
    /// edge density), the way Arabic dots, descenders and ascenders cross
    /// the space between tightly set lines: no row between lines is empty.
    fn crowded_page(
        w: u32,
        h: u32,
        lines: &[(std::ops::Range<u32>, std::ops::Range<u32>)],
    ) -> Vec<u8> {
        let mut px = vec![245u8; (w * h * 3) as usize];
        let mut ink = |x: u32, y: u32| {
            let i = ((y * w + x) * 3) as usize;
            px[i..i + 3].copy_from_slice(&[15, 15, 15]);
        };
        for y in 20..180 {
            for x in (0..w).filter(|x| x % 60 < 4) {
                ink(x, y);
            }
        }
        for (rows, cols) in lines {
            for y in rows.clone() {
                for x in cols.clone().filter(|x| x % 7 < 2) {
                    ink(x, y);
                }
            }
        }
        px
    }

    #[test]
    fn presence_crowded_lines_fire_when_straight_across_the_image() {
        let (w, h) = (400u32, 200u32);
        // Three tightly set lines across the image: the gaps between them
        // are valleys, not empty rows, so only the crowded-line rule sees
        // them (the empty-gap rules alone missed such Arabic cards).
        let lines: Vec<_> = [40..54, 62..76, 84..98]
            .into_iter()
            .map(|r| (r, 20..380))
            .collect();
        let p = text_presence(&crowded_page(w, h, &lines), w, h);
        assert!(p.likely && p.crowded_lines >= 2, "{p:?}");
        assert!(p.lines < 2 && p.wide_lines == 0, "{p:?}");
        // The same dense bands, but at other rows in each third of the
        // image (as a façade's windows or foliage are): no straight line
        // of text, no OCR.
        let strips: Vec<_> = (0..3u32)
            .flat_map(|s| {
                [40 + 8 * s..54 + 8 * s, 62 + 8 * s..76 + 8 * s]
                    .into_iter()
                    .map(move |r| (r, 10 + 133 * s..125 + 133 * s))
            })
            .collect();
        let p = text_presence(&crowded_page(w, h, &strips), w, h);
        assert!(!p.likely, "{p:?}");
        // The marks alone are not text.
        let p = text_presence(&crowded_page(w, h, &[]), w, h);
        assert!(!p.likely, "{p:?}");
    }
}
