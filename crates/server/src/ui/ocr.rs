//! The console's OCR panel: what Tesseract read from a debugger upload,
//! word by word with its confidence (words under the minimum confidence
//! are shown struck through: they were not signed), and whether OCR is on.
//! The OCR text is shown to the reviewer who uploaded the image and is
//! never stored.

use echotrace_engine::ocr::{OcrReading, OcrStatus};
use maud::{html, Markup};

/// The debugger's "Text read by OCR" section.
pub fn panel(status: &OcrStatus, reading: Option<&OcrReading>) -> Markup {
    html! {
        h2 { "Text read by OCR" }
        @if !status.enabled {
            p class="panel muted" id="ocr-status" { (status.detail) }
        } @else {
            @match reading {
                None => p class="panel muted" id="ocr-status" {
                    "No OCR for this query (not an image, or the text-presence test found no text). " (status.detail)
                },
                Some(r) => {
                    p class="muted" id="ocr-status" {
                        (r.words.len()) " words read, "
                        (r.words.iter().filter(|w| w.kept).count()) " kept for signing, mean confidence "
                        (format!("{:.1}", r.mean_confidence())) ". " (status.detail)
                    }
                    @if !r.text.is_empty() {
                        pre class="panel" id="ocr-text" dir="auto" { (r.text) }
                    }
                    @if !r.words.is_empty() {
                        p id="ocr-words" dir="auto" {
                            @for w in &r.words {
                                @if w.kept {
                                    span class="tag" title=(format!("confidence {:.0}", w.confidence)) { (w.text) " " small { (format!("{:.0}", w.confidence)) } }
                                } @else {
                                    del class="tag muted" title=(format!("confidence {:.0}: dropped", w.confidence)) { (w.text) " " small { (format!("{:.0}", w.confidence)) } }
                                }
                                " "
                            }
                        }
                    }
                }
            }
        }
    }
}
