//! The content dispatcher: raw bytes of unknown kind → signals.
//!
//! [`detect_kind`] sniffs what the bytes are (by magic bytes, never by file
//! name) into a [`ContentKind`]; [`ContentHasher::hash`] then runs one match
//! arm per kind and returns the kind's signals, always ending with the
//! exact-match digests (`md5`, `sha256`) of the raw bytes.
//!
//! Adding a kind (text, PDF, video, …) is three small edits: a
//! [`ContentKind`] variant, a branch in [`detect_kind`], and an arm in
//! [`ContentHasher::hash`]; plus, if it needs them, an options field in
//! [`HashOptions`] and an error variant in [`HashError`].
//!
//! Design notes:
//! * Images yield `pdq` (with quality, and the eight dihedral variants on
//!   request) followed by `md5` and `sha256`, in that order; the CLI's JSON
//!   depends on that order.
//! * [`ContentHasher`] keeps a [`PdqHasher`] whose scratch buffers are
//!   reused across inputs; keep one per thread.
//! * Bytes of no recognised kind are an error ([`HashError::Unrecognized`]),
//!   not a digest-only result, so a typo'd path or a corrupt upload is never
//!   silently "hashed".

use crate::decode::{decode_image, sniff_format, DecodeError, DecodeLimits, DecodeOptions};
use crate::digest;
use crate::pdq::{PdqError, PdqHasher};
use crate::robust::{BankHash, QuerySet, RobustHasher, RobustOptions};
use crate::signal::{DihedralHex, Signal, SignalType};

/// What a byte string was detected to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContentKind {
    /// A still image in one of the decodable formats.
    Image(crate::decode::ImageFormat),
    /// A PDF document (`%PDF-` in the first KiB).
    Pdf,
    /// Valid UTF-8 text (after every binary format failed to match).
    Text,
    /// A video container, or a raw H.264/H.265 Annex B stream (decoded by
    /// ffmpeg in a child process; see [`crate::video::elementary_stream`]).
    Video,
}

impl ContentKind {
    /// Short lowercase name ("image/jpeg", …) for messages and logs.
    pub fn name(&self) -> String {
        match self {
            ContentKind::Image(f) => format!("image/{f}"),
            ContentKind::Pdf => "application/pdf".to_string(),
            ContentKind::Text => "text/plain".to_string(),
            ContentKind::Video => "video".to_string(),
        }
    }
}

/// Sniff the kind of `bytes`. `None` when nothing recognises them.
pub fn detect_kind(bytes: &[u8]) -> Option<ContentKind> {
    if let Some(f) = sniff_format(bytes) {
        return Some(ContentKind::Image(f));
    }
    if crate::pdf::looks_like_pdf(bytes) {
        return Some(ContentKind::Pdf);
    }
    if crate::video::looks_like_video(bytes) {
        return Some(ContentKind::Video);
    }
    if !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok() {
        return Some(ContentKind::Text);
    }
    None
}

/// Options for [`ContentHasher::hash`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HashOptions {
    /// Image decoding limits (input size, pixels, allocation).
    pub limits: DecodeLimits,
    /// Image decoding switches (EXIF orientation).
    pub decode: DecodeOptions,
    /// Also compute the eight PDQ dihedral variants.
    pub dihedral: bool,
    /// Program run as `PROGRAM __extract-pdf` to extract PDFs in a child
    /// process (normally the `echotrace` binary). PDFs are refused without it.
    pub pdf_extractor: Option<std::path::PathBuf>,
    /// Time and memory limits for that child.
    pub isolation: crate::isolate::IsolationLimits,
    /// ffmpeg and vPDQ settings; videos are refused without them.
    pub video: Option<crate::video::VideoSetup>,
    /// OCR images (and video key frames) into an `ocr_text` signal.
    pub ocr: Option<OcrSetup>,
}

/// When an image is handed to OCR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OcrGate {
    /// Only when [`crate::ocr::text_presence`] fires (lookups: photos
    /// without text cost no OCR).
    #[default]
    TextPresence,
    /// Always (bank entries, `hash --ocr`): a missed card costs recall.
    Always,
}

/// OCR settings for [`HashOptions::ocr`].
#[derive(Clone, Debug, PartialEq)]
pub struct OcrSetup {
    pub tesseract: crate::ocr::Tesseract,
    pub gate: OcrGate,
    /// Fewest normalised tokens for an `ocr_text` signal
    /// ([`crate::ocr::DEFAULT_MIN_TOKENS`]).
    pub min_tokens: usize,
    /// Renders PDF pages without a text layer for OCR (`None`: such pages
    /// are not OCRed).
    pub pdf_renderer: Option<crate::pdf_render::PdfRenderer>,
}

impl Eq for OcrSetup {}

/// [`ContentHasher::hash_deferred`]'s result: the signals (digests last)
/// and the prepared OCR inputs — an image that passed the OCR gate, a
/// video's key frames ([`crate::ocr::KeyFrames`]), a PDF's pages without a
/// text layer — so the caller can run OCR in its own bounded pool.
#[derive(Clone, Debug, Default)]
pub struct Hashed {
    pub signals: Vec<Signal>,
    pub ocr_inputs: Vec<crate::ocr::OcrInput>,
    /// Why PDF pages could not be rendered for OCR (for the caller's log).
    pub ocr_warnings: Vec<String>,
    /// The text-presence test's result (images checked against the gate).
    pub presence: Option<crate::ocr::TextPresence>,
}

/// OCR prepared images (one image, a video's key frames, PDF pages) into
/// one `ocr_text` signal of their joined text: `Ok(None)` when fewer than
/// `min_tokens` tokens were read with enough confidence. The signal
/// carries an [`crate::signal::OcrSummary`] for display.
pub fn ocr_signal(
    tesseract: &crate::ocr::Tesseract,
    inputs: &[crate::ocr::OcrInput],
    min_tokens: usize,
) -> Result<(Option<Signal>, crate::ocr::OcrOutput), crate::ocr::OcrError> {
    let mut out = crate::ocr::OcrOutput::default();
    for input in inputs {
        out.extend(tesseract.recognize(input)?);
    }
    Ok((ocr_text_signal(&out, min_tokens), out))
}

/// The `ocr_text` signal of OCR output (`None` under `min_tokens` tokens).
pub fn ocr_text_signal(out: &crate::ocr::OcrOutput, min_tokens: usize) -> Option<Signal> {
    if crate::ocr::token_count(&out.text) < min_tokens.max(1) {
        return None;
    }
    let sig = crate::text::text_signature(&out.text);
    if sig.set_size == 0 {
        return None;
    }
    let mut s = Signal::new(SignalType::OcrText, sig.to_string());
    s.ocr = Some(crate::signal::OcrSummary {
        text: out.text.clone(),
        header: out.header.clone(),
        mean_confidence: out.mean_confidence(),
        words: out.words.len(),
        kept: out.kept_words(),
        enlarged: out.enlarged,
        adaptive: out.adaptive,
        text_height: out.text_height(),
        language: out.language.clone(),
        runs: out.runs.clone(),
    });
    Some(s)
}

/// Why an input produced no signals.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashError {
    #[error("empty input")]
    Empty,
    #[error("unsupported content: neither a supported image, video, PDF nor UTF-8 text")]
    Unrecognized,
    #[error("input is {size} bytes, over the {max}-byte limit")]
    FileTooLarge { size: u64, max: u64 },
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("PDQ: {0}")]
    Pdq(#[from] PdqError),
    #[error("PDF: {0}")]
    Pdf(String),
    /// A video refused by our own checks (limits, no video stream, no
    /// ffmpeg): the message is ours and stable.
    #[error("video: {0}")]
    Video(String),
    #[error("OCR: {0}")]
    Ocr(String),
    /// ffmpeg/ffprobe could not decode the upload; the detail is the
    /// decoder's own output (heap addresses, versions): for logs and the
    /// CLI, never for HTTP clients.
    #[error("video could not be decoded: {0}")]
    VideoUndecodable(String),
}

/// Reusable dispatcher; holds per-thread hashing state.
#[derive(Debug, Default)]
pub struct ContentHasher {
    pdq: PdqHasher,
    robust: RobustHasher,
}

/// Which derived hashes [`ContentHasher::hash_robust`] adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RobustRole {
    /// A lookup: the query set of an image, the cropped vPDQ of a video.
    Query,
    /// A bank entry added as a file: the crop-grid windows and regions of
    /// an image, the cropped vPDQ of a video.
    BankEntry,
}

/// Signals (exactly what [`ContentHasher::hash`] returns) plus the
/// derived, local-only hashes of the content.
#[derive(Clone, Debug, PartialEq)]
pub struct RobustHashes {
    pub signals: Vec<Signal>,
    /// Images looked up: every query-side hash.
    pub query: Option<QuerySet>,
    /// Images added to a bank: windows and regions.
    pub bank: Option<Vec<BankHash>>,
    /// Videos: the border-cropped vPDQ, when the video has borders.
    pub video: Option<crate::video::vpdq::CroppedVpdq>,
    /// With an OCR gate ([`ContentHasher::hash_robust_deferred`]): the
    /// inputs prepared for OCR, as [`Hashed::ocr_inputs`].
    pub ocr_inputs: Vec<crate::ocr::OcrInput>,
    /// As [`Hashed::ocr_warnings`].
    pub ocr_warnings: Vec<String>,
    /// As [`Hashed::presence`].
    pub presence: Option<crate::ocr::TextPresence>,
}

impl ContentHasher {
    pub fn new() -> Self {
        ContentHasher::default()
    }

    /// Detect the kind of `bytes` and compute its signals. With
    /// [`HashOptions::ocr`], an image that passes the gate is OCRed here
    /// and its `ocr_text` signal (if any) comes before the digests.
    pub fn hash(&mut self, bytes: &[u8], opts: &HashOptions) -> Result<Vec<Signal>, HashError> {
        let gate = opts.ocr.as_ref().map(|o| o.gate);
        let mut hashed = self.hash_deferred(bytes, opts, gate)?;
        ocr_inline(opts, &hashed.ocr_inputs, &mut hashed.signals)?;
        Ok(hashed.signals)
    }

    /// [`ContentHasher::hash`] without running OCR: with `ocr_gate`, an
    /// image that passes it, a video's key frames and (with
    /// [`OcrSetup::pdf_renderer`]) a PDF's pages without text come back
    /// prepared for OCR with the signals.
    pub fn hash_deferred(
        &mut self,
        bytes: &[u8],
        opts: &HashOptions,
        ocr_gate: Option<OcrGate>,
    ) -> Result<Hashed, HashError> {
        let out = self.dispatch(bytes, opts, None, ocr_gate)?;
        Ok(Hashed {
            signals: out.signals,
            ocr_inputs: out.ocr_inputs,
            ocr_warnings: out.ocr_warnings,
            presence: out.presence,
        })
    }

    /// [`ContentHasher::hash`] plus the derived hashes of `role` (images
    /// and videos; other kinds get none). The image is decoded once; the
    /// plain `pdq` signal is byte-identical to [`ContentHasher::hash`]'s
    /// (without dihedral variants). With [`HashOptions::ocr`], OCR runs
    /// here as in [`ContentHasher::hash`].
    pub fn hash_robust(
        &mut self,
        bytes: &[u8],
        opts: &HashOptions,
        role: RobustRole,
        robust: &RobustOptions,
    ) -> Result<RobustHashes, HashError> {
        let gate = opts.ocr.as_ref().map(|o| o.gate);
        let mut out = self.hash_robust_deferred(bytes, opts, role, robust, gate)?;
        ocr_inline(opts, &out.ocr_inputs, &mut out.signals)?;
        Ok(out)
    }

    /// [`ContentHasher::hash_robust`] without running OCR, as
    /// [`ContentHasher::hash_deferred`]: with `ocr_gate`, the OCR inputs
    /// (an image that passes the gate, a video's key frames — taken in the
    /// same decoding pass as the rectangle vote — a PDF's pages without
    /// text) come back prepared in [`RobustHashes::ocr_inputs`].
    pub fn hash_robust_deferred(
        &mut self,
        bytes: &[u8],
        opts: &HashOptions,
        role: RobustRole,
        robust: &RobustOptions,
        ocr_gate: Option<OcrGate>,
    ) -> Result<RobustHashes, HashError> {
        self.dispatch(bytes, opts, Some((role, robust)), ocr_gate)
    }

    /// The one dispatcher behind every entry point: checks, detects the
    /// kind, runs its arm (with the derived hashes of `robust` for images
    /// and videos) and ends with the digests — a video's come from its
    /// decoding pass, which already read every byte.
    fn dispatch(
        &mut self,
        bytes: &[u8],
        opts: &HashOptions,
        robust: Option<(RobustRole, &RobustOptions)>,
        ocr_gate: Option<OcrGate>,
    ) -> Result<RobustHashes, HashError> {
        if bytes.is_empty() {
            return Err(HashError::Empty);
        }
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if size > opts.limits.max_file_bytes {
            return Err(HashError::FileTooLarge {
                size,
                max: opts.limits.max_file_bytes,
            });
        }
        let kind = detect_kind(bytes).ok_or(HashError::Unrecognized)?;
        let mut out = RobustHashes {
            signals: Vec::new(),
            query: None,
            bank: None,
            video: None,
            ocr_inputs: Vec::new(),
            ocr_warnings: Vec::new(),
            presence: None,
        };
        let mut digests = None;
        out.signals = match kind {
            ContentKind::Image(_) => {
                let img = decode_image(bytes, &opts.limits, &opts.decode)?;
                let prepared = prepare_image_ocr(&img, opts, ocr_gate, &mut out.presence);
                out.ocr_inputs.extend(prepared);
                match robust {
                    None => self.image_signals(&img, opts)?,
                    Some((role, robust)) => vec![self.robust_image(&img, role, robust, &mut out)?],
                }
            }
            ContentKind::Pdf => pdf_signals(bytes, opts, ocr_gate.is_some(), &mut out)?,
            ContentKind::Text => text_signals(bytes),
            ContentKind::Video => {
                let v = video_hash(bytes, opts, ocr_gate.is_some(), robust.is_some(), &mut out)?;
                digests = Some(v.digests);
                out.video = v.cropped;
                vec![Signal::new(SignalType::Vpdq, v.vpdq.to_signal_string())]
            }
        };
        let d = digests.unwrap_or_else(|| digest::digests(bytes));
        out.signals.push(Signal::new(SignalType::Md5, d.md5));
        out.signals.push(Signal::new(SignalType::Sha256, d.sha256));
        Ok(out)
    }

    /// An image's plain `pdq` signal (no dihedral variants) with the
    /// derived hashes of `role` put into `out`.
    fn robust_image(
        &mut self,
        img: &crate::decode::DecodedImage,
        role: RobustRole,
        robust: &RobustOptions,
        out: &mut RobustHashes,
    ) -> Result<Signal, HashError> {
        let plain = match role {
            RobustRole::Query => {
                let set = self
                    .robust
                    .query_set(&img.rgb, img.width, img.height, robust)?;
                let p = set.plain;
                out.query = Some(set);
                p
            }
            RobustRole::BankEntry => {
                out.bank = Some(
                    self.robust
                        .bank_hashes(&img.rgb, img.width, img.height, robust)?,
                );
                self.pdq.hash_rgb8(&img.rgb, img.width, img.height)?
            }
        };
        Ok(Signal {
            signal_type: SignalType::Pdq,
            value: plain.hash.to_hex(),
            quality: Some(plain.quality),
            dihedral: None,
            ocr: None,
        })
    }

    fn image_signals(
        &mut self,
        img: &crate::decode::DecodedImage,
        opts: &HashOptions,
    ) -> Result<Vec<Signal>, HashError> {
        let pdq = if opts.dihedral {
            let out = self
                .pdq
                .hash_rgb8_dihedral(&img.rgb, img.width, img.height)?;
            let h = out.hashes;
            Signal {
                signal_type: SignalType::Pdq,
                value: h.orig.to_hex(),
                quality: Some(out.quality),
                dihedral: Some(DihedralHex {
                    orig: h.orig.to_hex(),
                    rot90: h.rot90.to_hex(),
                    rot180: h.rot180.to_hex(),
                    rot270: h.rot270.to_hex(),
                    flipx: h.flipx.to_hex(),
                    flipy: h.flipy.to_hex(),
                    flipplus1: h.flipplus1.to_hex(),
                    flipminus1: h.flipminus1.to_hex(),
                }),
                ocr: None,
            }
        } else {
            let out = self.pdq.hash_rgb8(&img.rgb, img.width, img.height)?;
            Signal {
                signal_type: SignalType::Pdq,
                value: out.hash.to_hex(),
                quality: Some(out.quality),
                dihedral: None,
                ocr: None,
            }
        };
        Ok(vec![pdq])
    }
}

/// `text_minhash` of UTF-8 text ([`text_signal`]): none for a text with
/// no words, which then gets its digests only, as a PDF without text.
fn text_signals(bytes: &[u8]) -> Vec<Signal> {
    text_signal(&String::from_utf8_lossy(bytes))
        .into_iter()
        .collect()
}

/// The `text_minhash` signal of text (a leading BOM is ignored), or `None`
/// when the text has no words (empty, blank, punctuation only): its
/// signature would be an empty set, similar to nothing, so there is
/// nothing to match on. The one place that decides it for text; a caller
/// that needs words (a lookup, a bank item) refuses text without this
/// signal rather than parsing a signature back.
pub fn text_signal(text: &str) -> Option<Signal> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let sig = crate::text::text_signature(text);
    sig.has_words()
        .then(|| Signal::new(SignalType::TextMinhash, sig.to_string()))
}

/// A PDF's `text_minhash` (when it has text) and one `pdq` per embedded
/// image, extracted in an isolated child process; with `ocr` and a
/// renderer, its pages without text are rendered for OCR into `out`.
fn pdf_signals(
    bytes: &[u8],
    opts: &HashOptions,
    ocr: bool,
    out: &mut RobustHashes,
) -> Result<Vec<Signal>, HashError> {
    let program = opts
        .pdf_extractor
        .as_deref()
        .ok_or_else(|| HashError::Pdf("no isolated extractor configured".into()))?;
    let extract = crate::isolate::extract_pdf_isolated(program, bytes, &opts.isolation)
        .map_err(|e| HashError::Pdf(e.to_string()))?;
    let mut signals = Vec::new();
    let sig = crate::text::text_signature(&extract.text);
    if sig.set_size > 0 {
        signals.push(Signal::new(SignalType::TextMinhash, sig.to_string()));
    }
    for img in extract.images {
        signals.push(Signal {
            signal_type: SignalType::Pdq,
            value: img.pdq,
            quality: Some(img.quality),
            dihedral: None,
            ocr: None,
        });
    }
    let setup = opts.ocr.as_ref().filter(|_| ocr);
    if let Some((setup, renderer)) = setup.and_then(|s| Some((s, s.pdf_renderer.as_ref()?))) {
        let (pages, failed) =
            renderer.render_pages(bytes, &extract.textless_pages, &setup.tesseract.limits);
        out.ocr_inputs.extend(pages);
        out.ocr_warnings.extend(failed);
    }
    Ok(signals)
}

/// OCR prepared `inputs` now (with [`HashOptions::ocr`]) and insert the
/// `ocr_text` signal, if any, before the two digest signals.
fn ocr_inline(
    opts: &HashOptions,
    inputs: &[crate::ocr::OcrInput],
    signals: &mut Vec<Signal>,
) -> Result<(), HashError> {
    if let (Some(setup), false) = (&opts.ocr, inputs.is_empty()) {
        let (signal, _) = ocr_signal(&setup.tesseract, inputs, setup.min_tokens)
            .map_err(|e| HashError::Ocr(e.to_string()))?;
        if let Some(signal) = signal {
            let at = signals.len().saturating_sub(2);
            signals.insert(at, signal);
        }
    }
    Ok(())
}

/// A decoded image prepared for OCR when `gate` lets it through (the
/// text-presence result goes to `presence`).
fn prepare_image_ocr(
    img: &crate::decode::DecodedImage,
    opts: &HashOptions,
    gate: Option<OcrGate>,
    presence: &mut Option<crate::ocr::TextPresence>,
) -> Option<crate::ocr::OcrInput> {
    let limits = opts
        .ocr
        .as_ref()
        .map(|o| o.tesseract.limits.clone())
        .unwrap_or_default();
    match gate? {
        OcrGate::Always => crate::ocr::prepare(&img.rgb, img.width, img.height, &limits),
        OcrGate::TextPresence => {
            let p = crate::ocr::text_presence(&img.rgb, img.width, img.height);
            *presence = Some(p);
            p.likely
                .then(|| crate::ocr::prepare(&img.rgb, img.width, img.height, &limits))
                .flatten()
        }
    }
}

/// A video hashed in one decoding pass (python-threatexchange vPDQ, the
/// border-cropped vPDQ when `robust`); with `ocr`, its key frames
/// ([`crate::ocr::KeyFrames`]) prepared into `out`.
fn video_hash(
    bytes: &[u8],
    opts: &HashOptions,
    ocr: bool,
    robust: bool,
    out: &mut RobustHashes,
) -> Result<crate::video::vpdq::VideoSignals, HashError> {
    let setup = opts.video.as_ref().ok_or_else(|| {
        HashError::Video("video hashing needs ffmpeg and ffprobe (apt-get install ffmpeg)".into())
    })?;
    let limits = opts
        .ocr
        .as_ref()
        .map(|o| o.tesseract.limits.clone())
        .unwrap_or_default();
    let mut keys = crate::ocr::KeyFrames::new(limits);
    let mut observe = |frame: crate::video::vpdq::ObservedFrame<'_>| {
        if ocr {
            keys.offer(frame);
        }
    };
    let shared = std::sync::Arc::from(bytes);
    let signals = if robust {
        setup
            .hasher
            .hash_robust_observed(shared, &setup.options, &mut observe)
    } else {
        setup
            .hasher
            .hash_observed(shared, &setup.options, &mut observe)
    }
    .map_err(video_error)?;
    out.ocr_inputs.extend(keys.into_inputs());
    Ok(signals)
}

/// A video failure as a [`HashError`]: decoder failures (whose text carries
/// ffmpeg's own words) become [`HashError::VideoUndecodable`], kept out of
/// client messages; every video path maps its errors here.
fn video_error(e: crate::video::ffmpeg::VideoError) -> HashError {
    use crate::video::ffmpeg::VideoError as V;
    match e {
        V::Unreadable(_)
        | V::DecodeFailed { .. }
        | V::Io(_)
        | V::InvalidOption(_)
        | V::FfmpegMissing { .. } => HashError::VideoUndecodable(e.to_string()),
        other => HashError::Video(other.to_string()),
    }
}

/// One-shot convenience: [`ContentHasher::hash`] with a fresh hasher.
pub fn hash_content(bytes: &[u8], opts: &HashOptions) -> Result<Vec<Signal>, HashError> {
    ContentHasher::new().hash(bytes, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8])
        });
        let mut out = Vec::new();
        let r = img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png);
        assert!(r.is_ok());
        out
    }

    #[test]
    fn image_gives_pdq_md5_sha256_in_order() {
        let bytes = png(40, 30);
        let sigs = hash_content(&bytes, &HashOptions::default()).unwrap_or_default();
        let types: Vec<_> = sigs.iter().map(|s| s.signal_type).collect();
        assert_eq!(
            types,
            [SignalType::Pdq, SignalType::Md5, SignalType::Sha256]
        );
        assert_eq!(sigs[0].value.len(), 64);
        assert!(sigs[0].quality.is_some());
        assert!(sigs[0].dihedral.is_none());
        assert_eq!(sigs[1].value, digest::md5_hex(&bytes));
        assert_eq!(sigs[2].value, digest::sha256_hex(&bytes));
    }

    #[test]
    fn dihedral_orig_equals_plain_hash_for_non_64_images() {
        let bytes = png(40, 30);
        let plain = hash_content(&bytes, &HashOptions::default()).unwrap_or_default();
        let opts = HashOptions {
            dihedral: true,
            ..HashOptions::default()
        };
        let dih = hash_content(&bytes, &opts).unwrap_or_default();
        let d = dih[0]
            .dihedral
            .clone()
            .unwrap_or_else(|| panic!("no dihedral"));
        assert_eq!(d.orig, plain[0].value);
        assert_eq!(dih[0].value, plain[0].value);
    }

    #[test]
    fn errors_are_typed() {
        let o = HashOptions::default();
        assert_eq!(hash_content(b"", &o), Err(HashError::Empty));
        assert_eq!(
            hash_content(b"\xff\xfe\x00binary", &o),
            Err(HashError::Unrecognized)
        );
        let small = HashOptions {
            limits: DecodeLimits {
                max_file_bytes: 10,
                ..DecodeLimits::default()
            },
            ..HashOptions::default()
        };
        assert!(matches!(
            hash_content(&png(8, 8), &small),
            Err(HashError::FileTooLarge { max: 10, .. })
        ));
    }
}
