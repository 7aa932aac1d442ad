//! OCR in the engine: Tesseract located once, a small bounded pool, and the
//! step that turns a prepared image into an `ocr_text` signal.
//!
//! Hashing an image ([`crate::signals::hash_upload`], bank entries in
//! `add_content`) only decodes, hashes PDQ and — when OCR is on — runs the
//! cheap text-presence gate and prepares the size-capped greyscale input
//! ([`PendingOcr`]). The OCR itself runs afterwards in [`OcrService::run`],
//! behind its **own** semaphore ([`OcrConfig::workers`] permits, default
//! 1), on tokio's blocking pool: a burst of text images queues for OCR
//! permits without holding the server's hashing permits, so PDQ, text and
//! signal lookups are never starved by OCR.
//!
//! OCR never fails a lookup: Tesseract missing (OCR off, reported by
//! [`OcrService::status`] and `/readyz`), a timeout or a child failure
//! just means no `ocr_text` signal (logged without content).

use std::path::PathBuf;
use std::sync::Arc;

use echotrace_signals::content::ocr_text_signal;
use echotrace_signals::ocr::{
    OcrInput, OcrLimits, OcrOutput, Reading, Tesseract, DEFAULT_MIN_TOKENS,
};
use echotrace_signals::signal::SignalType;
use echotrace_signals::text::EquivalenceList;

use crate::types::SignalValue;

/// OCR settings of an engine.
#[derive(Clone, Debug)]
pub struct OcrConfig {
    /// Look for Tesseract at start and OCR images (`serve`: on unless
    /// `--no-ocr`). Default off, so library users opt in.
    pub enabled: bool,
    /// `tesseract` program: a path or a name looked up in `PATH`.
    pub program: PathBuf,
    /// Concurrent OCR children (the pool size). Default 1.
    pub workers: usize,
    /// Fewest normalised tokens for an `ocr_text` signal.
    pub min_tokens: usize,
    /// Time, memory and size limits of one OCR run.
    pub limits: OcrLimits,
}

impl Default for OcrConfig {
    fn default() -> Self {
        OcrConfig {
            enabled: false,
            program: PathBuf::from("tesseract"),
            workers: 1,
            min_tokens: DEFAULT_MIN_TOKENS,
            limits: OcrLimits::default(),
        }
    }
}

/// Whether OCR is available, for the console (signed-in users) and,
/// through [`OcrStatus::public`], `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OcrStatus {
    pub enabled: bool,
    /// The languages OCR reads (empty when it is off).
    pub languages: Vec<String>,
    /// `tesseract 5.3.0 (ara+eng)`, or why OCR is off. It can hold a
    /// path or what the child printed, so it is for the log and the
    /// console, never for `/readyz`.
    pub detail: String,
}

/// What `/readyz` (no sign-in) shows of OCR: on or off and its languages;
/// the reason it is off is in the server's log and the console.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PublicOcrStatus {
    pub enabled: bool,
    pub languages: Vec<String>,
}

impl OcrStatus {
    pub fn public(&self) -> PublicOcrStatus {
        PublicOcrStatus {
            enabled: self.enabled,
            languages: self.languages.clone(),
        }
    }
}

/// Prepared images waiting for OCR: one for an image; a video's key
/// frames or a PDF's pages without a text layer, in order.
#[derive(Clone, Debug)]
pub struct PendingOcr {
    pub(crate) inputs: Vec<OcrInput>,
}

/// What OCR read from an upload: the kept text and every word with its
/// confidence (the console debugger shows them; never stored).
pub type OcrReading = OcrOutput;

pub(crate) struct OcrService {
    tesseract: Option<Tesseract>,
    status: OcrStatus,
    permits: tokio::sync::Semaphore,
    min_tokens: usize,
}

impl OcrService {
    /// Locate Tesseract when enabled (blocking: runs `--version` and
    /// `--list-langs` once).
    pub(crate) fn start(config: &OcrConfig) -> OcrService {
        let (tesseract, status) = if !config.enabled {
            (
                None,
                OcrStatus {
                    enabled: false,
                    languages: Vec::new(),
                    detail: "OCR disabled by configuration".into(),
                },
            )
        } else {
            match Tesseract::locate(&config.program, config.limits.clone()) {
                Ok(t) => {
                    let detail = format!("{} ({})", t.version(), t.languages().join("+"));
                    let languages = t.languages().to_vec();
                    tracing::info!("OCR on: {detail}");
                    (
                        Some(t),
                        OcrStatus {
                            enabled: true,
                            languages,
                            detail,
                        },
                    )
                }
                Err(e) => {
                    tracing::warn!("OCR off: {e}");
                    (
                        None,
                        OcrStatus {
                            enabled: false,
                            languages: Vec::new(),
                            detail: format!("OCR off: {e}"),
                        },
                    )
                }
            }
        };
        OcrService {
            tesseract,
            status,
            permits: tokio::sync::Semaphore::new(config.workers.max(1)),
            min_tokens: config.min_tokens,
        }
    }

    pub(crate) fn status(&self) -> &OcrStatus {
        &self.status
    }

    pub(crate) fn enabled(&self) -> bool {
        self.tesseract.is_some()
    }

    /// OCR `pending` in the pool (one permit for all its images, read in
    /// turn and joined). `None` when OCR is off or every image failed
    /// (logged without content).
    pub(crate) async fn read(self: &Arc<Self>, pending: PendingOcr) -> Option<OcrOutput> {
        self.read_with(pending, false)
            .await
            .and_then(|mut r| r.drain(..).next())
    }

    /// [`OcrService::read`] for a bank entry: the block reading and, as a
    /// second signal, the sparse reading of the same images
    /// ([`Reading::Sparse`], same script group), which recovers lines a
    /// block reading drops on busy backgrounds.
    pub(crate) async fn read_bank(self: &Arc<Self>, pending: PendingOcr) -> Vec<OcrOutput> {
        self.read_with(pending, true).await.unwrap_or_default()
    }

    async fn read_with(
        self: &Arc<Self>,
        pending: PendingOcr,
        second: bool,
    ) -> Option<Vec<OcrOutput>> {
        let tesseract = self.tesseract.clone()?;
        let _permit = self.permits.acquire().await.ok()?;
        let job = tokio::task::spawn_blocking(move || {
            let mut block = OcrOutput::default();
            let mut sparse = OcrOutput::default();
            let mut any = false;
            for input in &pending.inputs {
                match tesseract.recognize(input) {
                    Ok(out) => {
                        any = true;
                        if second && !out.language.is_empty() {
                            match tesseract.recognize_as(input, &out.language, Reading::Sparse) {
                                Ok(s) => sparse.extend(s),
                                Err(e) => tracing::warn!("OCR second reading failed: {e}"),
                            }
                        }
                        block.extend(out);
                    }
                    Err(e) => tracing::warn!("OCR gave no result: {e}"),
                }
            }
            any.then(|| {
                let mut outs = vec![block];
                if second {
                    outs.push(sparse);
                }
                outs
            })
        });
        job.await.ok().flatten()
    }

    /// The `ocr_text` signal of what was read (`None` under the token
    /// minimum), signed under `list` when given (bank entries).
    pub(crate) fn signal(
        &self,
        out: &OcrOutput,
        list: Option<&EquivalenceList>,
    ) -> Option<SignalValue> {
        let plain = ocr_text_signal(out, self.min_tokens)?;
        let value = match list {
            Some(l) => crate::signals::sign_text(&out.text, Some(l)).to_string(),
            None => plain.value,
        };
        Some(SignalValue {
            signal_type: SignalType::OcrText,
            value,
        })
    }
}
