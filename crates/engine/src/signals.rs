//! Signal validation, default thresholds, and bytes → signals.
//!
//! Every hash that enters the engine goes through [`normalize_signal`]:
//! pdq must parse as a PDQ hash (64 hex digits), md5 as 32 hex digits,
//! sha256/url_sha256 as 64 hex digits, text_minhash as a serialised text
//! signature, vpdq as python-threatexchange's `VPDQSignal` JSON (re-written
//! canonically), url canonicalised with `url-canon-v1` (and completed with
//! its url_sha256 by [`normalize_signals`]); all hex is lower-cased so exact
//! lookups are case-insensitive. Anything else is [`EngineError::InvalidInput`] (4xx).
//!
//! Bytes are hashed by the signals crate's content dispatcher
//! (`echotrace_signals::content`), which sniffs the kind by magic bytes: a
//! supported image becomes pdq + md5 + sha256, valid UTF-8 text
//! text_minhash + md5 + sha256, a video vpdq + md5 + sha256 (ffmpeg located
//! once per process; bank entries hashed at every frame, lookups at one
//! frame a second; without ffmpeg a video is a 400). The engine adds no sniffing or decoding of
//! its own; it only maps the dispatcher's errors to 4xx/413. PDFs are the
//! exception: the engine runs the isolated extractor itself
//! (`EngineConfig::pdf_extractor`, [`hash_bytes_using`]) so that it gets the
//! page text, signs it under the bank's equivalence list (a lookup keeps
//! the text, [`hash_upload`], to sign it per list version), and tells an
//! extractor failure (500) from a malformed PDF (400) or an oversized one
//! (413); with no extractor configured a PDF is a 400 "PDF extraction is not
//! enabled".

use std::collections::BTreeMap;

use echotrace_signals::canonical_url::canonicalize_url;
use echotrace_signals::content::{
    detect_kind, ContentHasher, ContentKind, HashError, HashOptions, OcrGate,
};
use echotrace_signals::decode::DecodeError;
use echotrace_signals::digest::{digests, sha256_hex};
use echotrace_signals::isolate::{extract_pdf_isolated, IsolateError, IsolationLimits};
use echotrace_signals::ocr::OcrLimits;
use echotrace_signals::pdf::PdfError;
use echotrace_signals::pdf_render::{PdfRenderer, RenderLimits};
use echotrace_signals::pdq::{PdqHash, PDQ_MATCH_THRESHOLD};
use echotrace_signals::signal::SignalType;
use echotrace_signals::text::minhash::{MinHashParams, MinHasher};
use echotrace_signals::text::{normalize, EquivalenceList, TextMatchRule, TextSignature};
use echotrace_signals::video::ffmpeg::{Ffmpeg, FfmpegConfig, SeekableInput};
use echotrace_signals::video::vpdq::{VideoHasher, VpdqHash, VpdqOptions};
use echotrace_signals::video::VideoSetup;

use crate::error::{EngineError, Result};
use crate::ocr::PendingOcr;
use crate::state::TextVariants;
use crate::types::{SignalValue, Thresholds};

/// Default threshold of a signal type: PDQ 31 (max Hamming distance, from
/// the signals crate), vPDQ 31 per frame, text the Jaccard threshold of the
/// text crate's default rule; exact types 0.
pub fn default_threshold(t: SignalType) -> f64 {
    match t {
        SignalType::Pdq | SignalType::Vpdq => f64::from(PDQ_MATCH_THRESHOLD),
        SignalType::TextMinhash => TextMatchRule::default().jaccard,
        SignalType::OcrText => echotrace_signals::ocr::DEFAULT_OCR_JACCARD,
        _ => 0.0,
    }
}

use echotrace_signals::digest::is_hex;

/// Validate and canonicalise one signal value.
pub fn normalize_signal(t: SignalType, value: &str) -> Result<SignalValue> {
    let v = value.trim();
    let bad =
        |what: &str| EngineError::InvalidInput(format!("invalid {} value: {what}", t.as_str()));
    let value = match t {
        SignalType::Pdq => PdqHash::from_hex(v)
            .map_err(|e| bad(&e.to_string()))?
            .to_hex(),
        SignalType::Md5 => {
            if !is_hex(v, 32) {
                return Err(bad("expected 32 hex digits"));
            }
            v.to_ascii_lowercase()
        }
        SignalType::Sha256 | SignalType::UrlSha256 => {
            if !is_hex(v, 64) {
                return Err(bad("expected 64 hex digits"));
            }
            v.to_ascii_lowercase()
        }
        SignalType::TextMinhash | SignalType::OcrText => v
            .parse::<TextSignature>()
            .map_err(|e| bad(&e.to_string()))?
            .to_string(),
        SignalType::Url => {
            canonicalize_url(v)
                .map_err(|e| bad(&e.to_string()))?
                .canonical
        }
        SignalType::Vpdq => {
            let hash = VpdqHash::from_signal_str(v).map_err(|e| bad(&e.to_string()))?;
            if hash.features.is_empty() {
                return Err(bad("no frames"));
            }
            hash.to_signal_string()
        }
    };
    Ok(SignalValue {
        signal_type: t,
        value,
    })
}

/// Normalise a list of signals ([`normalize_signal`]) and complete URL
/// signals: every `url` (now canonical, `url-canon-v1`) brings its
/// `url_sha256`, so a bank entry added by URL also matches a lookup that
/// only shares the hash, and vice versa. Duplicates are dropped, order kept.
pub fn normalize_signals(list: &[SignalValue]) -> Result<Vec<SignalValue>> {
    let mut out: Vec<SignalValue> = Vec::with_capacity(list.len());
    let push = |v: SignalValue, out: &mut Vec<SignalValue>| {
        if !out.contains(&v) {
            out.push(v);
        }
    };
    for s in list {
        let v = normalize_signal(s.signal_type, &s.value)?;
        if v.signal_type == SignalType::Url {
            let hash = SignalValue {
                signal_type: SignalType::UrlSha256,
                value: sha256_hex(v.value.as_bytes()),
            };
            push(v, &mut out);
            push(hash, &mut out);
        } else {
            push(v, &mut out);
        }
    }
    Ok(out)
}

/// Parse `{"pdq": "<hex>", "md5": "<hex>"}` (a value may also be a list of
/// strings) into validated signals.
pub fn parse_signals(map: &serde_json::Map<String, serde_json::Value>) -> Result<Vec<SignalValue>> {
    let mut out = Vec::new();
    for (k, v) in map {
        let t: SignalType =
            k.parse()
                .map_err(|e: echotrace_signals::signal::UnknownSignalType| {
                    EngineError::InvalidInput(e.to_string())
                })?;
        match v {
            serde_json::Value::String(s) => out.push(normalize_signal(t, s)?),
            serde_json::Value::Array(items) => {
                for item in items {
                    let s = item.as_str().ok_or_else(|| {
                        EngineError::InvalidInput(format!("{k}: expected strings"))
                    })?;
                    out.push(normalize_signal(t, s)?);
                }
            }
            _ => {
                return Err(EngineError::InvalidInput(format!(
                    "{k}: expected a string or a list of strings"
                )))
            }
        }
    }
    if out.is_empty() {
        return Err(EngineError::InvalidInput("no signals given".into()));
    }
    normalize_signals(&out)
}

/// Check a bank's threshold overrides: known types; pdq/vpdq an integer
/// distance in 0..=256; text a similarity in (0, 1]; the vPDQ share keys
/// ([`crate::VPDQ_QUERY_PCT`], [`crate::VPDQ_COMPARED_PCT`]) a percentage in
/// 0..=100.
pub(crate) fn validate_thresholds(t: &Thresholds) -> Result<()> {
    for (k, v) in &t.0 {
        if k == crate::types::VPDQ_QUERY_PCT || k == crate::types::VPDQ_COMPARED_PCT {
            if !(v.is_finite() && (0.0..=100.0).contains(v)) {
                return Err(EngineError::InvalidInput(format!(
                    "threshold {k} must be a percentage in 0..=100, got {v}"
                )));
            }
            continue;
        }
        let st: SignalType =
            k.parse()
                .map_err(|e: echotrace_signals::signal::UnknownSignalType| {
                    EngineError::InvalidInput(e.to_string())
                })?;
        if st.as_str() != k {
            return Err(EngineError::InvalidInput(format!(
                "threshold key {k:?}: use the canonical name {:?}",
                st.as_str()
            )));
        }
        let ok = match st {
            SignalType::Pdq | SignalType::Vpdq => {
                v.is_finite() && *v >= 0.0 && *v <= 256.0 && v.fract() == 0.0
            }
            SignalType::TextMinhash | SignalType::OcrText => v.is_finite() && *v > 0.0 && *v <= 1.0,
            _ => false,
        };
        if !ok {
            return Err(EngineError::InvalidInput(format!(
                "threshold for {k} out of range or not applicable: {v}"
            )));
        }
    }
    Ok(())
}

/// Thresholds as a typed map (validated input; unknown keys skipped).
pub(crate) fn typed_thresholds(t: &Thresholds) -> BTreeMap<SignalType, f64> {
    t.0.iter()
        .filter_map(|(k, v)| k.parse::<SignalType>().ok().map(|st| (st, *v)))
        .collect()
}

pub(crate) fn map_hash_error(e: HashError) -> EngineError {
    match e {
        HashError::Empty => EngineError::InvalidInput("empty content".into()),
        HashError::FileTooLarge { .. } | HashError::Decode(DecodeError::FileTooLarge { .. }) => {
            EngineError::TooLarge(e.to_string())
        }
        HashError::Unrecognized => EngineError::InvalidInput(e.to_string()),
        HashError::Decode(d) => EngineError::InvalidInput(format!("cannot decode image: {d}")),
        HashError::VideoUndecodable(detail) => {
            // The decoder's own words (heap addresses, versions) stay in the log.
            tracing::warn!(%detail, "video upload could not be decoded");
            EngineError::InvalidInput(VIDEO_UNDECODABLE.into())
        }
        HashError::Video(m) => EngineError::InvalidInput(format!("cannot hash video: {m}")),
        HashError::Pdf(detail) => {
            tracing::warn!(%detail, "PDF upload could not be extracted");
            EngineError::InvalidInput(PDF_UNPROCESSABLE.into())
        }
        other => EngineError::InvalidInput(format!("cannot hash content: {other}")),
    }
}

/// What a client is told when ffmpeg cannot decode its upload.
pub const VIDEO_UNDECODABLE: &str =
    "the video could not be decoded (corrupt, truncated or an unsupported format)";
/// What a client is told when the isolated extractor fails on its PDF
/// (killed at its memory or time limit, crashed, or refused the file).
pub const PDF_UNPROCESSABLE: &str =
    "the PDF could not be processed (malformed, or it needs more memory or time than allowed)";

/// A PDF extractor failure as a client may see it: a fixed message per
/// kind; the child's own output (stderr, panic text, allocator messages)
/// goes to the log only.
fn pdf_error(e: IsolateError) -> EngineError {
    match e {
        // The server could not run its own extractor: not the caller's fault.
        IsolateError::Spawn { .. } | IsolateError::Io(_) | IsolateError::BadOutput(_) => {
            EngineError::Internal(format!("PDF extractor: {e}"))
        }
        IsolateError::Pdf(PdfError::TooLarge { .. }) => {
            EngineError::TooLarge(format!("cannot extract PDF: {e}"))
        }
        IsolateError::Pdf(
            p @ (PdfError::Empty | PdfError::NotPdf | PdfError::TooManyObjects { .. }),
        ) => EngineError::InvalidInput(format!("cannot extract PDF: {p}")),
        IsolateError::Timeout(_) => {
            tracing::warn!(error = %e, "PDF extraction timed out");
            EngineError::InvalidInput(
                "the PDF took longer to process than allowed (time limit)".into(),
            )
        }
        other => {
            tracing::warn!(error = %other, "PDF extraction failed");
            EngineError::InvalidInput(PDF_UNPROCESSABLE.into())
        }
    }
}

/// Why bytes are hashed; decides how densely a video is sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VideoSampling {
    /// Bank entries: every frame (`seconds_per_hash = 0`), so an upload
    /// sampled at any phase finds frames within distance (ARCHITECTURE.md,
    /// "Video").
    BankEntry,
    /// Uploads and lookups: one frame a second.
    Query,
}

/// ffmpeg, located once per process (`None` when it is not installed).
fn ffmpeg() -> Option<&'static Ffmpeg> {
    static FFMPEG: std::sync::OnceLock<Option<Ffmpeg>> = std::sync::OnceLock::new();
    FFMPEG
        .get_or_init(|| match Ffmpeg::locate(FfmpegConfig::default()) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::info!("video hashing disabled: {e}");
                None
            }
        })
        .as_ref()
}

/// Where MP4 uploads whose index follows the media data are written for
/// ffmpeg to seek in (private 0600 files, deleted after decoding); `None`
/// (the default) refuses them with a clear error unless they are small
/// enough for the pipe. Process-wide, like the located ffmpeg.
static VIDEO_TEMP_DIR: std::sync::RwLock<Option<std::path::PathBuf>> = std::sync::RwLock::new(None);

/// Sets the temp-file mode for videos that need a seekable input
/// (`serve --video-temp-dir`; the CLI's local commands use the system
/// temporary directory, since their input is a local file already).
pub fn set_video_temp_dir(dir: Option<std::path::PathBuf>) {
    match VIDEO_TEMP_DIR.write() {
        Ok(mut g) => *g = dir,
        Err(poisoned) => *poisoned.into_inner() = dir,
    }
}

fn seekable_input() -> SeekableInput {
    let dir = match VIDEO_TEMP_DIR.read() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    dir.map_or(SeekableInput::Refuse, SeekableInput::TempFile)
}

pub(crate) fn hash_options(bytes: &[u8], sampling: VideoSampling) -> HashOptions {
    let mut opts = HashOptions::default();
    // Only look for ffmpeg when the bytes are a video.
    if detect_kind(bytes) == Some(ContentKind::Video) {
        opts.video = ffmpeg().map(|f| VideoSetup {
            hasher: VideoHasher::new(f.clone().with_seekable_input(seekable_input())),
            options: VpdqOptions {
                seconds_per_hash: match sampling {
                    VideoSampling::BankEntry => 0.0,
                    VideoSampling::Query => 1.0,
                },
                downsample: None,
            },
        });
    }
    opts
}

/// Bytes → signals via the signals crate's content dispatcher
/// ([`echotrace_signals::content::hash_content`]): image → pdq, UTF-8 text →
/// text_minhash, video → vpdq (ffmpeg child process, sampled per
/// [`VideoSampling`]), then md5 + sha256 of the raw bytes. PDFs need an
/// extractor ([`hash_bytes_using`]; here none, so they are refused), and
/// videos when ffmpeg is not installed are refused, with
/// [`EngineError::InvalidInput`]. Synchronous and blocking
/// (call it from `spawn_blocking`); bytes are not retained.
#[cfg(test)]
pub(crate) fn hash_bytes(bytes: &[u8], sampling: VideoSampling) -> Result<Vec<SignalValue>> {
    hash_bytes_using(bytes, sampling, None, None)
}

/// [`hash_bytes`] / [`hash_bytes_with_list`] with the engine's PDF
/// extractor ([`crate::EngineConfig::pdf_extractor`]): a PDF is extracted by
/// `PROGRAM __extract-pdf` in an isolated child (time and memory limits of
/// [`IsolationLimits::default`]) and becomes text_minhash (its text, under
/// `list` when given) + one pdq per embedded image + md5 + sha256. Without an
/// extractor a PDF is a 400 "PDF extraction is not enabled".
pub(crate) fn hash_bytes_using(
    bytes: &[u8],
    sampling: VideoSampling,
    pdf_extractor: Option<&std::path::Path>,
    list: Option<&EquivalenceList>,
) -> Result<Vec<SignalValue>> {
    if detect_kind(bytes) == Some(ContentKind::Pdf) {
        return pdf_signals(bytes, pdf_extractor, list).map(|(signals, _, _)| signals);
    }
    match list {
        Some(list) => hash_bytes_with_list(bytes, sampling, Some(list)),
        None => hash_non_pdf(bytes, sampling),
    }
}

/// A bank entry hashed by [`hash_bank_entry`].
pub(crate) struct BankEntryHashes {
    pub signals: Vec<SignalValue>,
    /// Images and videos: the derived hashes of robust matching.
    pub derived: crate::robust::DerivedValues,
    /// The prepared OCR input (an image, a video's key frames, a PDF's
    /// pages without text) when `ocr_gate` lets it through.
    pub ocr: Option<PendingOcr>,
}

/// A bank entry's signals (text under `list`), the derived hashes of an
/// image or video (robust matching), and its prepared OCR input.
pub(crate) fn hash_bank_entry(
    bytes: &[u8],
    sampling: VideoSampling,
    pdf_extractor: Option<&std::path::Path>,
    list: Option<&EquivalenceList>,
    ocr_gate: Option<OcrGate>,
) -> Result<BankEntryHashes> {
    let role = echotrace_signals::content::RobustRole::BankEntry;
    if let Some(h) = crate::robust::hash_robust(bytes, sampling, role, ocr_gate)? {
        return Ok(BankEntryHashes {
            signals: h.signals,
            derived: h.derived,
            ocr: h.ocr,
        });
    }
    if ocr_gate.is_some() && detect_kind(bytes) == Some(ContentKind::Pdf) {
        let (signals, _, textless) = pdf_signals(bytes, pdf_extractor, list)?;
        return Ok(BankEntryHashes {
            signals,
            derived: Vec::new(),
            ocr: pdf_pages_for_ocr(bytes, &textless),
        });
    }
    Ok(BankEntryHashes {
        signals: hash_bytes_using(bytes, sampling, pdf_extractor, list)?,
        derived: Vec::new(),
        ocr: None,
    })
}

/// `pdftoppm` (Debian poppler-utils), located once per process (`None`
/// when it is not installed: scanned PDF pages are then not OCRed).
fn pdftoppm() -> Option<&'static PdfRenderer> {
    static RENDERER: std::sync::OnceLock<Option<PdfRenderer>> = std::sync::OnceLock::new();
    RENDERER
        .get_or_init(|| {
            match PdfRenderer::locate(std::path::Path::new("pdftoppm"), RenderLimits::default()) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::info!("OCR of scanned PDF pages disabled: {e}");
                    None
                }
            }
        })
        .as_ref()
}

/// A PDF's pages without a text layer, rendered (isolated `pdftoppm`) and
/// waiting for OCR. Blocking.
fn pdf_pages_for_ocr(bytes: &[u8], textless: &[u32]) -> Option<PendingOcr> {
    if textless.is_empty() {
        return None;
    }
    let renderer = pdftoppm()?;
    let (inputs, failed) = renderer.render_pages(bytes, textless, &OcrLimits::default());
    for why in failed {
        tracing::warn!("PDF page not OCRed: {why}");
    }
    (!inputs.is_empty()).then_some(PendingOcr { inputs })
}

/// Largest PDF handed to the extractor (the image decoder's input limit).
fn max_pdf_bytes() -> u64 {
    echotrace_signals::decode::DecodeLimits::default().max_file_bytes
}

/// A PDF's signals, its extracted page text and its pages without text.
fn pdf_signals(
    bytes: &[u8],
    program: Option<&std::path::Path>,
    list: Option<&EquivalenceList>,
) -> Result<(Vec<SignalValue>, String, Vec<u32>)> {
    let program = program.ok_or_else(|| {
        EngineError::InvalidInput(
            "PDF extraction is not enabled on this server (no isolated extractor configured)"
                .into(),
        )
    })?;
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > max_pdf_bytes() {
        return Err(EngineError::TooLarge(format!(
            "PDF is {size} bytes, over the {}-byte limit",
            max_pdf_bytes()
        )));
    }
    let extract =
        extract_pdf_isolated(program, bytes, &IsolationLimits::default()).map_err(pdf_error)?;
    let mut out = Vec::new();
    let sig = sign_text(&extract.text, list);
    if sig.set_size > 0 {
        out.push(SignalValue {
            signal_type: SignalType::TextMinhash,
            value: sig.to_string(),
        });
    }
    for img in extract.images {
        out.push(SignalValue {
            signal_type: SignalType::Pdq,
            value: img.pdq,
        });
    }
    let d = digests(bytes);
    out.push(SignalValue {
        signal_type: SignalType::Md5,
        value: d.md5,
    });
    out.push(SignalValue {
        signal_type: SignalType::Sha256,
        value: d.sha256,
    });
    Ok((out, extract.text, extract.textless_pages))
}

fn hash_non_pdf(bytes: &[u8], sampling: VideoSampling) -> Result<Vec<SignalValue>> {
    hash_non_pdf_deferred(bytes, sampling, None).map(|(signals, _)| signals)
}

/// [`hash_non_pdf`], also preparing an image for OCR when it passes
/// `ocr_gate` (the OCR itself runs later, in the engine's OCR pool).
pub(crate) fn hash_non_pdf_deferred(
    bytes: &[u8],
    sampling: VideoSampling,
    ocr_gate: Option<OcrGate>,
) -> Result<(Vec<SignalValue>, Option<PendingOcr>)> {
    let hashed = ContentHasher::new()
        .hash_deferred(bytes, &hash_options(bytes, sampling), ocr_gate)
        .map_err(map_hash_error)?;
    let pending = (!hashed.ocr_inputs.is_empty()).then_some(PendingOcr {
        inputs: hashed.ocr_inputs,
    });
    let signals = hashed.signals;
    // The dispatcher gives text with no words no `text_minhash`
    // (`content::text_signal`): such text has nothing to match on.
    let has_text_signal = signals
        .iter()
        .any(|s| s.signal_type == SignalType::TextMinhash);
    if !has_text_signal && detect_kind(bytes) == Some(ContentKind::Text) {
        return Err(no_words());
    }
    let out = signals
        .into_iter()
        .map(|s| SignalValue {
            signal_type: s.signal_type,
            value: s.value,
        })
        .collect();
    Ok((out, pending))
}

/// Text with no words (empty, blank, punctuation only) as a lookup or a
/// bank item: nothing to match on.
fn no_words() -> EngineError {
    EngineError::InvalidInput("text has no words to hash".into())
}

/// Parse and validate a bank's text-equivalence list: `Ok(None)` when blank,
/// a parse error as [`EngineError::InvalidInput`] naming the line.
pub(crate) fn parse_equivalences(body: &str) -> Result<Option<EquivalenceList>> {
    if body.trim().is_empty() {
        return Ok(None);
    }
    if body.len() > MAX_EQUIVALENCES_BYTES {
        return Err(EngineError::InvalidInput(format!(
            "text_equivalences: list too large ({} bytes, limit {MAX_EQUIVALENCES_BYTES})",
            body.len()
        )));
    }
    EquivalenceList::parse(body)
        .map(Some)
        .map_err(|e| EngineError::InvalidInput(format!("text_equivalences: {e}")))
}

/// Largest equivalence list accepted (bytes).
pub(crate) const MAX_EQUIVALENCES_BYTES: usize = 1 << 20;

/// Text → signature, normalised with `text-norm-v1` and then the
/// equivalence list, if any (what `TextHasher::with_equivalences` does,
/// without cloning the list). A leading BOM is ignored, as for text bytes.
pub(crate) fn sign_text(text: &str, list: Option<&EquivalenceList>) -> TextSignature {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let normalized = normalize(text);
    let normalized = match list {
        Some(l) => l.apply(&normalized),
        None => normalized,
    };
    MinHasher::new(MinHashParams::default()).sign_normalized(normalized.as_str())
}

/// The text of bytes the content dispatcher treats as text (valid UTF-8,
/// no NUL, no image/PDF/video magic), else `None`.
pub(crate) fn text_of_bytes(bytes: &[u8]) -> Option<&str> {
    if detect_kind(bytes) == Some(ContentKind::Text) {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

/// [`hash_bytes`] for a bank entry of a bank with an equivalence list: text
/// is signed under the list (md5/sha256 stay those of the bytes).
pub(crate) fn hash_bytes_with_list(
    bytes: &[u8],
    sampling: VideoSampling,
    list: Option<&EquivalenceList>,
) -> Result<Vec<SignalValue>> {
    if detect_kind(bytes) == Some(ContentKind::Pdf) {
        return pdf_signals(bytes, None, list).map(|(signals, _, _)| signals);
    }
    let mut out = hash_non_pdf(bytes, sampling)?;
    if let (Some(list), Some(text)) = (list, text_of_bytes(bytes)) {
        let sig = sign_text(text, Some(list));
        if sig.set_size == 0 {
            return Err(no_words());
        }
        for v in &mut out {
            if v.signal_type == SignalType::TextMinhash {
                v.value = sig.to_string();
            }
        }
    }
    Ok(out)
}

/// Plain text → text_minhash signal under an equivalence list.
pub(crate) fn hash_text_with_list(
    text: &str,
    list: Option<&EquivalenceList>,
) -> Result<Vec<SignalValue>> {
    let sig = sign_text(text, list);
    if sig.set_size == 0 {
        return Err(no_words());
    }
    Ok(vec![SignalValue {
        signal_type: SignalType::TextMinhash,
        value: sig.to_string(),
    }])
}

/// Text a lookup query was made from, kept so the engine can sign it under
/// each bank's equivalence-list version (see [`crate::Engine::lookup_text`]).
///
/// It holds either an owned `String` (typed text, or the text extracted
/// from a PDF) or the uploaded bytes themselves (a shared [`bytes::Bytes`],
/// checked to be UTF-8 once), so a text upload is never copied to be kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryText(TextRepr);

#[derive(Clone, Debug, PartialEq, Eq)]
enum TextRepr {
    Owned(String),
    Shared(bytes::Bytes),
}

impl QueryText {
    /// The bytes as text, `None` unless they are valid UTF-8.
    pub fn from_utf8(bytes: bytes::Bytes) -> Option<QueryText> {
        std::str::from_utf8(&bytes).ok()?;
        Some(QueryText(TextRepr::Shared(bytes)))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            TextRepr::Owned(s) => s,
            // Checked in `from_utf8`, so the fallback is never taken.
            TextRepr::Shared(b) => std::str::from_utf8(b).unwrap_or_default(),
        }
    }

    /// Length in bytes (no UTF-8 re-check: it was checked on the way in).
    pub fn len(&self) -> usize {
        match &self.0 {
            TextRepr::Owned(s) => s.len(),
            TextRepr::Shared(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<String> for QueryText {
    fn from(s: String) -> Self {
        QueryText(TextRepr::Owned(s))
    }
}

impl From<&str> for QueryText {
    fn from(s: &str) -> Self {
        QueryText(TextRepr::Owned(s.into()))
    }
}

/// An upload hashed for a lookup: its signals and, when it is text or a
/// PDF, the text its `text_minhash` was signed from (signed without a list),
/// for [`crate::Engine::lookup_text`].
#[derive(Clone, Debug, Default)]
pub struct HashedUpload {
    pub signals: Vec<SignalValue>,
    pub text: Option<QueryText>,
    /// An image that passed the OCR gate, waiting for
    /// [`crate::Engine::finish_ocr`] (which adds its `ocr_text` signal).
    pub ocr: Option<PendingOcr>,
    /// Derived query hashes of an image or video upload (robust matching:
    /// dihedral, borders, crops, the cropped vPDQ). Local only.
    pub robust: Option<crate::robust::RobustQuery>,
}

/// Bytes → signals for a lookup ([`hash_bytes_using`] without a list), plus
/// the text of a text upload (the bytes themselves, not copied) or of a PDF
/// (the extractor's page text). A PDF without words has no text. Blocking.
pub(crate) fn hash_upload(
    bytes: bytes::Bytes,
    sampling: VideoSampling,
    pdf_extractor: Option<&std::path::Path>,
    ocr_gate: Option<OcrGate>,
) -> Result<HashedUpload> {
    hash_upload_with(bytes, sampling, pdf_extractor, ocr_gate, true)
}

/// [`hash_upload`], with the robust query set of an image or video
/// (`robust`) or without it: then an image gets its plain PDQ and a video
/// its plain vPDQ, as a bank of hashes holds them, and nothing derived (a
/// collector source with `robust: false`).
pub(crate) fn hash_upload_with(
    bytes: bytes::Bytes,
    sampling: VideoSampling,
    pdf_extractor: Option<&std::path::Path>,
    ocr_gate: Option<OcrGate>,
    robust: bool,
) -> Result<HashedUpload> {
    if detect_kind(&bytes) == Some(ContentKind::Pdf) {
        let (signals, text, textless) = pdf_signals(&bytes, pdf_extractor, None)?;
        let has_words = signals
            .iter()
            .any(|s| s.signal_type == SignalType::TextMinhash);
        return Ok(HashedUpload {
            signals,
            text: has_words.then(|| QueryText::from(text)),
            ocr: ocr_gate.and_then(|_| pdf_pages_for_ocr(&bytes, &textless)),
            robust: None,
        });
    }
    let derived = if robust {
        crate::robust::hash_robust(
            &bytes,
            sampling,
            echotrace_signals::content::RobustRole::Query,
            ocr_gate,
        )?
    } else {
        None
    };
    if let Some(h) = derived {
        return Ok(HashedUpload {
            signals: h.signals,
            text: None,
            ocr: h.ocr,
            robust: Some(h.query),
        });
    }
    let (signals, ocr) = hash_non_pdf_deferred(&bytes, sampling, ocr_gate)?;
    let text = if text_of_bytes(&bytes).is_some() {
        QueryText::from_utf8(bytes)
    } else {
        None
    };
    Ok(HashedUpload {
        signals,
        text,
        ocr,
        robust: None,
    })
}

/// Typed text (a JSON `"text"` field, HMA's `text` signal) for a lookup:
/// always hashed *as text* — its `text_minhash`, MD5 and SHA-256, the same
/// signals a text upload gets — never sniffed, so text that starts like a
/// PDF, an image or a video cannot start the PDF extractor or ffmpeg.
pub(crate) fn hash_typed_text(text: String) -> Result<HashedUpload> {
    let minhash = echotrace_signals::content::text_signal(&text).ok_or_else(no_words)?;
    let mut signals = vec![SignalValue {
        signal_type: SignalType::TextMinhash,
        value: minhash.value,
    }];
    signals.extend(digest_signals(text.as_bytes()));
    Ok(HashedUpload {
        signals,
        text: Some(QueryText::from(text)),
        ocr: None,
        robust: None,
    })
}

/// The exact-match digests of some bytes: `md5`, then `sha256`.
pub(crate) fn digest_signals(bytes: &[u8]) -> Vec<SignalValue> {
    let d = echotrace_signals::digest::digests(bytes);
    vec![
        SignalValue {
            signal_type: SignalType::Md5,
            value: d.md5,
        },
        SignalValue {
            signal_type: SignalType::Sha256,
            value: d.sha256,
        },
    ]
}

/// The equivalence lists a raw-text query must be signed under (version,
/// list; `None` = no list), from `MatchState::text_query_lists`.
pub(crate) type QueryLists = Vec<(Option<i64>, Option<std::sync::Arc<EquivalenceList>>)>;

/// Sign raw query text once per list version in `lists` (the CPU work of a
/// list-aware text lookup; blocking, run it off the async runtime). `None`
/// when the text has no words.
///
/// The text is normalised once and each list applied to that; `known_base`
/// is the query's list-free `text_minhash` when the caller already has it
/// (an upload hashed by [`hash_upload`]), which is then parsed rather than
/// signed again. With no list in play and a known base nothing is signed.
pub(crate) fn sign_variants(
    text: &str,
    lists: &QueryLists,
    known_base: Option<&str>,
) -> Option<TextVariants> {
    let known = known_base.and_then(|v| v.parse::<TextSignature>().ok().map(|sig| (v, sig)));
    let needs_text = known.is_none() || lists.iter().any(|(_, list)| list.is_some());
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let normalized = needs_text.then(|| normalize(text));
    let hasher = MinHasher::new(MinHashParams::default());
    let (base_value, base) = match (known, &normalized) {
        (Some((v, sig)), _) => (v.to_string(), sig),
        (None, Some(n)) => {
            let sig = hasher.sign_normalized(n.as_str());
            (sig.to_signal_string(), sig)
        }
        (None, None) => return None,
    };
    if base.set_size == 0 {
        return None;
    }
    let by_version = lists
        .iter()
        .map(|(version, list)| match (list, &normalized) {
            (Some(l), Some(n)) => {
                let sig = hasher.sign_normalized(l.apply(n).as_str());
                let value = sig.to_signal_string();
                (*version, Some((sig, value)))
            }
            // No list: the base signature (not copied nor encoded again).
            _ => (*version, None),
        })
        .collect();
    Some(TextVariants {
        base: base_value,
        base_sig: base,
        by_version,
    })
}

/// The list-free text signature among a query's signals (`text_minhash`,
/// else `ocr_text`), if any.
pub(crate) fn text_minhash_of(signals: &[SignalValue]) -> Option<&str> {
    signals
        .iter()
        .find(|s| s.signal_type == SignalType::TextMinhash)
        .or_else(|| {
            signals
                .iter()
                .find(|s| s.signal_type == SignalType::OcrText)
        })
        .map(|s| s.value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Typed text is hashed as text even when it starts like a PDF or a
    /// video; its signals are those of the same bytes uploaded as text.
    #[test]
    fn typed_text_is_never_sniffed() {
        for text in [
            "%PDF-1.7 claims of responsibility follow",
            "\0\0\0\x18ftypisom a caption",
        ] {
            let h = hash_typed_text(text.to_string()).unwrap();
            let types: Vec<_> = h.signals.iter().map(|s| s.signal_type).collect();
            assert_eq!(
                types,
                [SignalType::TextMinhash, SignalType::Md5, SignalType::Sha256],
                "{text:?}"
            );
            assert_eq!(h.text.as_ref().map(QueryText::as_str), Some(text));
        }
        let plain = "weather warning for the northern hills";
        let typed = hash_typed_text(plain.to_string()).unwrap();
        let uploaded =
            hash_upload(bytes::Bytes::from(plain), VideoSampling::Query, None, None).unwrap();
        assert_eq!(typed.signals, uploaded.signals);
        assert!(hash_typed_text("  !!  ".into()).is_err());
    }

    #[test]
    fn validates_and_lowercases() {
        let pdq = "F".repeat(64);
        assert_eq!(
            normalize_signal(SignalType::Pdq, &pdq).unwrap().value,
            "f".repeat(64)
        );
        assert!(normalize_signal(SignalType::Pdq, "abc").is_err());
        assert!(normalize_signal(SignalType::Pdq, &"g".repeat(64)).is_err());
        assert_eq!(
            normalize_signal(SignalType::Md5, &"A".repeat(32))
                .unwrap()
                .value,
            "a".repeat(32)
        );
        assert!(normalize_signal(SignalType::Md5, &"a".repeat(31)).is_err());
        assert!(normalize_signal(SignalType::Sha256, &"z".repeat(64)).is_err());
        assert!(normalize_signal(SignalType::TextMinhash, "nope").is_err());
        assert!(normalize_signal(SignalType::Url, "").is_err());
        let e = normalize_signal(SignalType::Md5, "xyz").unwrap_err();
        assert_eq!(e.http_status(), 400);
    }

    #[test]
    fn parses_signal_maps() {
        let v: serde_json::Value =
            serde_json::json!({"pdq": "0".repeat(64), "md5": ["a".repeat(32), "b".repeat(32)]});
        let s = parse_signals(v.as_object().unwrap()).unwrap();
        assert_eq!(s.len(), 3);
        let v: serde_json::Value = serde_json::json!({"bogus": "x"});
        assert!(parse_signals(v.as_object().unwrap()).is_err());
        let v: serde_json::Value = serde_json::json!({"pdq": 5});
        assert!(parse_signals(v.as_object().unwrap()).is_err());
    }

    #[test]
    fn threshold_validation() {
        let mut t = Thresholds::default();
        t.0.insert("pdq".into(), 20.0);
        t.0.insert("text_minhash".into(), 0.7);
        assert!(validate_thresholds(&t).is_ok());
        t.0.insert("pdq".into(), 20.5);
        assert!(validate_thresholds(&t).is_err());
        let mut t = Thresholds::default();
        t.0.insert("md5".into(), 1.0);
        assert!(validate_thresholds(&t).is_err());
        assert_eq!(default_threshold(SignalType::Pdq), 31.0);
    }

    #[test]
    fn urls_are_canonicalised_and_bring_their_sha256() {
        let v = normalize_signal(
            SignalType::Url,
            "HTTP://Example.COM/a/?utm_source=x&b=2#frag",
        )
        .unwrap();
        assert_eq!(v.value, "https://example.com/a?b=2");
        assert!(normalize_signal(SignalType::Url, "ftp://example.com/x").is_err());
        let list = normalize_signals(&[v.clone(), v.clone()]).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], v);
        assert_eq!(list[1].signal_type, SignalType::UrlSha256);
        assert_eq!(list[1].value, sha256_hex(b"https://example.com/a?b=2"));
        let m = serde_json::json!({"url": "example.com/a/?b=2&utm_medium=y"});
        let parsed = parse_signals(m.as_object().unwrap()).unwrap();
        assert_eq!(parsed, list);
    }

    #[test]
    fn image_bytes_hash_through_the_content_dispatcher() {
        let img = image::RgbImage::from_fn(48, 32, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 7) as u8, ((x + y) * 3) as u8])
        });
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let s = hash_bytes(&png, VideoSampling::Query).unwrap();
        let types: Vec<_> = s.iter().map(|v| v.signal_type).collect();
        assert_eq!(
            types,
            vec![SignalType::Pdq, SignalType::Md5, SignalType::Sha256]
        );
        let direct =
            echotrace_signals::content::hash_content(&png, &HashOptions::default()).unwrap();
        assert_eq!(s[0].value, direct[0].value);
        assert_eq!(s[2].value, sha256_hex(&png));
        // Video-looking and PDF bytes are refused as bad input, not 500s.
        let mut mp4 = vec![0, 0, 0, 0x18];
        mp4.extend_from_slice(b"ftypisom\0\0\0\0isomiso2avc1mp41");
        let e = hash_bytes(&mp4, VideoSampling::Query).unwrap_err();
        assert_eq!(e.http_status(), 400, "{e:?}");
        let e = hash_bytes(b"%PDF-1.4\n%junk\n", VideoSampling::Query).unwrap_err();
        assert_eq!(e.http_status(), 400, "{e:?}");
        let e = hash_bytes(b"   \n\t ", VideoSampling::Query).unwrap_err();
        assert_eq!(e.http_status(), 400, "{e:?}");
    }

    #[test]
    fn video_bytes_hash_to_vpdq_or_a_clear_error() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");
        let path = format!("{dir}/vpdq/videos/doorknob-hd-no-bar.mp4");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("{path}: {e} (is ../shared/fixtures missing? the video test needs it)")
        });
        if ffmpeg().is_none() {
            let e = hash_bytes(&bytes, VideoSampling::Query).unwrap_err();
            assert_eq!(e.http_status(), 400, "{e:?}");
            assert!(e.to_string().contains("ffmpeg"), "{e}");
            return;
        }
        let query = hash_bytes(&bytes, VideoSampling::Query).unwrap();
        let bank = hash_bytes(&bytes, VideoSampling::BankEntry).unwrap();
        let types: Vec<_> = query.iter().map(|v| v.signal_type).collect();
        assert_eq!(
            types,
            vec![SignalType::Vpdq, SignalType::Md5, SignalType::Sha256]
        );
        let frames = |v: &SignalValue| VpdqHash::from_signal_str(&v.value).unwrap().features.len();
        // 120 frames at 30 fps: every frame for the bank, one a second (4)
        // for lookups.
        assert_eq!(frames(&bank[0]), 120);
        assert_eq!(frames(&query[0]), 4);
        // The stored form round-trips through validation unchanged.
        assert_eq!(
            normalize_signal(SignalType::Vpdq, &bank[0].value).unwrap(),
            bank[0]
        );
        assert!(normalize_signal(SignalType::Vpdq, "[]").is_err());
        assert!(normalize_signal(SignalType::Vpdq, "not json").is_err());
    }

    #[test]
    fn text_bytes_hash_to_minhash_and_digests() {
        let s = hash_bytes(
            b"The quick brown fox jumps over the lazy dog",
            VideoSampling::Query,
        )
        .unwrap();
        let types: Vec<_> = s.iter().map(|v| v.signal_type).collect();
        assert_eq!(
            types,
            vec![SignalType::TextMinhash, SignalType::Md5, SignalType::Sha256]
        );
        assert_eq!(s[1].value, "9e107d9d372bb6826bd81d3542a419d6");
        assert!(hash_bytes(&[0xff, 0xfe, 0x00, 0x81], VideoSampling::Query).is_err());
        assert!(hash_bytes(b"", VideoSampling::Query).is_err());
    }
}
