//! The console's OCR views:
//! * the debugger panel: what Tesseract read from a debugger upload, word
//!   by word with its confidence (words under the minimum confidence are
//!   shown struck through: they were not signed), and whether OCR is on;
//! * the text of an `ocr_text` match (`/ui/matches/{id}/text`, linked from
//!   the match card): the bank item's text beside the submission's, both
//!   read again by OCR from the retained media (typed bank text is shown
//!   as stored), with the same word diff as text matches.
//!
//! OCR text is read on demand and never stored: it needs `--retain-media`
//! (the media itself is what is retained).

use axum::http::StatusCode;
use axum::response::Response;
use echotrace_engine::console::{self as cq, MediaOwner};
use echotrace_engine::ocr::{OcrReading, OcrStatus};
use echotrace_engine::Operation;
use echotrace_signals::signal::SignalType;
use maud::{html, Markup};

use super::session::{error_response, Authed, UiPath};
use super::{textdiff, views, Ctx};

/// One side's text: typed text as retained, anything else read by OCR.
async fn side_text(st: &Ctx, owner: MediaOwner, id: i64) -> Result<Option<String>, String> {
    let Some((mime, bytes)) = cq::retained_media(&st.store, owner, id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    if mime.starts_with("text/") {
        return Ok(Some(String::from_utf8_lossy(&bytes).into_owned()));
    }
    let reading = st
        .engine
        .read_text(axum::body::Bytes::from(bytes))
        .await
        .map_err(|e| e.to_string())?;
    Ok(reading.map(|r| r.text))
}

/// `GET /ui/matches/{id}/text`: bank text beside submitted text, diffed.
pub async fn match_text(st: Ctx, auth: Authed, UiPath(id): UiPath<i64>) -> Response {
    if let Err(r) = auth.require(Operation::ReadMatches) {
        return r;
    }
    let viewer = Some(&auth.viewer);
    let not_found = |m: &str| error_response(viewer, StatusCode::NOT_FOUND, m);
    if !st.config.retain_media {
        return not_found("Media retention is off: the OCR text is read from retained media.");
    }
    let Ok(m) = st.engine.get_match(id).await else {
        return not_found("No such match.");
    };
    if m.signal_type != SignalType::OcrText {
        return not_found("Not an OCR text match.");
    }
    let (bank, sub) = match (
        side_text(&st, MediaOwner::Content, m.content_id).await,
        side_text(&st, MediaOwner::Submission, m.submission_id).await,
    ) {
        (Ok(b), Ok(s)) => (b, s),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("echotrace console: OCR text of match {id}: {e}");
            return error_response(
                viewer,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error; see the server log.",
            );
        }
    };
    let column = |title: &str, id: &str, text: &Option<String>, other: &Option<String>| {
        html! {
            div {
                h3 { (title) }
                @match text {
                    Some(t) => pre id=(id) dir="auto" {
                        @for (seg, hl) in textdiff::highlight(t, other.as_deref().unwrap_or("")) {
                            @if hl { mark { (seg) } } @else { (seg) }
                        }
                    },
                    None => p class="muted" id=(id) { "No text (media not retained, or OCR read nothing)." },
                }
            }
        }
    };
    let body = html! {
        h1 { "Match #" (m.id) " · OCR text" }
        p class="muted" {
            "Read again by OCR from the retained media for this view; not stored. "
            "Highlighted words are not in the other text. "
            a href="/ui/queue" { "Back to the queue" }
        }
        div class="texts" {
            (column("Bank text", "ocr-bank-text", &bank, &sub))
            (column("Submitted text (OCR)", "ocr-sub-text", &sub, &bank))
        }
    };
    super::page(views::layout("OCR text", "queue", viewer, None, body))
}

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
                        (r.kept_words()) " kept for signing, mean confidence "
                        (format!("{:.1}", r.mean_confidence())) ". " (status.detail)
                    }
                    @if !r.header.is_empty() {
                        p class="muted" id="ocr-header" dir="auto" { "Header line, not signed: " (r.header) }
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
