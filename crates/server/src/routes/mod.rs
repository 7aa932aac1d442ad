//! Route table and shared handler helpers.
//!
//! Handlers are deliberately thin: authenticate and check the role from the
//! headers ([`Caller`] with the route's requirement, before the body), then
//! turn the request into engine types, call the engine, shape JSON.

pub(crate) mod collect;
pub(crate) mod exchange;
mod hma;
pub(crate) mod spread;
mod v1;

pub(crate) use collect::collector_error as collector_api_error;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use echotrace_engine::{
    Actor, Added, Bank, ContentSource, HashedUpload, LookupResponse, MatchRecord, NewContent,
    SignalValue,
};
use serde_json::{json, Value};

use crate::auth::{op, Caller};
use crate::error::ApiError;
use crate::extract::ItemInput;
use crate::metrics::Gauges;
use crate::{AppState, Pool};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(v1::router())
        .merge(collect::router())
        .merge(hma::router())
        .merge(exchange::router())
        .merge(spread::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready = indexes loaded, not stopping, and not more than
/// `ServerConfig::max_lag` behind the database's change sequence.
/// Unauthenticated: no file path and no host name (the replica is a tag).
async fn readyz(state: axum::extract::State<AppState>) -> Response {
    if state.is_draining() {
        return ApiError::unavailable("the server is shutting down").into_response();
    }
    let engine = match state.engine() {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let lag = match engine.lag().await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echotrace-server: /readyz cannot read the change sequence: {e}");
            return ApiError::unavailable("the database is unreachable").into_response();
        }
    };
    let max = state.config().max_lag.as_secs_f64();
    if lag.seconds > max {
        return ApiError::unavailable(format!(
            "{} changes behind the database; the oldest is {:.1} s old (limit {max:.1} s)",
            lag.changes, lag.seconds
        ))
        .into_response();
    }
    let stats = engine.index_stats().ok();
    (
        StatusCode::OK,
        Json(json!({
            "status": "ready",
            "index": stats,
            "lag": lag,
            "state": engine.state_source().public(),
            "replica": engine.replica_tag(),
            "ocr": engine.ocr_status().public(),
        })),
    )
        .into_response()
}

async fn metrics(state: axum::extract::State<AppState>) -> Response {
    let mut g = Gauges {
        index_sizes: Vec::new(),
        outbox_pending: 0,
        outbox_oldest_age_seconds: 0.0,
        ready: state.is_ready(),
        change_lag: None,
    };
    if let Ok(engine) = state.engine() {
        if let Ok(s) = engine.index_stats() {
            g.index_sizes = vec![
                ("pdq".to_string(), s.pdq as u64),
                ("exact".to_string(), s.exact as u64),
                ("text_minhash".to_string(), s.text as u64),
            ];
        }
        if let Ok(lag) = engine.lag().await {
            g.change_lag = Some((lag.changes, lag.seconds));
        }
        if let Ok(pending) = engine.list_outbox(true, 1000).await {
            g.outbox_pending = pending.len() as u64;
            let now = now_ms();
            if let Some(oldest) = pending.iter().map(|e| e.created_at).min() {
                g.outbox_oldest_age_seconds = (now - oldest).max(0) as f64 / 1000.0;
            }
        }
    }
    let mut body = state.metrics().render(&g);
    body.push_str(&exchange::metrics_text(&state).await);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn openapi(_caller: Caller<op::AnyRole>) -> Json<Value> {
    Json(crate::openapi::document())
}

// ----- helpers shared by the route modules ---------------------------------

/// Signals as `[{"type": "pdq", "value": "..."}]`.
pub(crate) fn signals_json(signals: &[SignalValue]) -> Value {
    Value::Array(
        signals
            .iter()
            .map(|s| json!({"type": s.signal_type.as_str(), "value": s.value}))
            .collect(),
    )
}

/// Turn an item into signals: ready-made signals are validated; files and
/// text are hashed on the bounded pool; URLs are fetched first (if enabled).
pub(crate) async fn item_signals(
    state: &AppState,
    input: ItemInput,
) -> Result<Vec<SignalValue>, ApiError> {
    item_query(state, input).await.map(|h| h.signals)
}

/// [`item_signals`], also keeping the text of a text, text-file or PDF
/// input (moved, not copied), so a lookup can sign it under each bank's
/// text-equivalence list (`Engine::lookup_text`).
pub(crate) async fn item_query(
    state: &AppState,
    input: ItemInput,
) -> Result<HashedUpload, ApiError> {
    let engine = state.engine()?.clone();
    let bytes = match input {
        ItemInput::Signals(map) => {
            return Ok(HashedUpload {
                signals: echotrace_engine::parse_signals(&map)?,
                ..HashedUpload::default()
            })
        }
        ItemInput::File(bytes) => {
            if bytes.is_empty() {
                return Err(ApiError::bad_request("the uploaded file is empty"));
            }
            bytes
        }
        ItemInput::Text(text) => {
            if text.trim().is_empty() {
                return Err(ApiError::bad_request("\"text\" is empty"));
            }
            // Typed text is text: never sniffed as a PDF, image or video.
            return state
                .hash_job(Pool::Light, move || {
                    engine.hash_text(text).map_err(ApiError::from)
                })
                .await;
        }
        ItemInput::Url(url) => crate::fetch::fetch(&url, &state.config().fetch)
            .await
            .map_err(fetch_error)?
            .into(),
    };
    let ocr_engine = engine.clone();
    let mut hashed = state
        .hash_job(Pool::for_bytes(&bytes), move || {
            engine.hash_upload(bytes).map_err(ApiError::from)
        })
        .await?;
    // OCR (if the image passed the text-presence test) runs in the engine's
    // own bounded pool, after the hashing permit is released.
    ocr_engine.finish_ocr(&mut hashed).await;
    Ok(hashed)
}

/// Add an item to a bank (`POST /v1/banks/{name}/content`, HMA's
/// `/c/bank/{name}/content` and `/signal`). Uploaded files, typed text and
/// fetched URLs go to the engine as bytes, so they are hashed as *bank
/// entries* (a video at every frame, text under the bank's equivalence
/// list), inside the hashing pool for their kind (PDFs and videos in the
/// heavy pool); ready-made signals are stored as given. A bank that
/// already holds the signals gets nothing new: the answer is its item,
/// `already_held` ([`echotrace_engine::Engine::add_item`]).
pub(crate) async fn add_bank_content(
    state: &AppState,
    actor: &Actor,
    bank_id: i64,
    input: ItemInput,
    labels: Vec<String>,
    note: String,
) -> Result<Added, ApiError> {
    let engine = state.engine()?.clone();
    let bytes: Vec<u8> = match input {
        ItemInput::Signals(map) => {
            let source = ContentSource::Signals(echotrace_engine::parse_signals(&map)?);
            let new = NewContent {
                source,
                labels,
                note,
            };
            return Ok(engine.add_item(actor, bank_id, new).await?);
        }
        ItemInput::Text(text) => {
            if text.trim().is_empty() {
                return Err(ApiError::bad_request("\"text\" is empty"));
            }
            text.into_bytes()
        }
        ItemInput::File(bytes) => {
            if bytes.is_empty() {
                return Err(ApiError::bad_request("the uploaded file is empty"));
            }
            Vec::from(bytes)
        }
        ItemInput::Url(url) => crate::fetch::fetch(&url, &state.config().fetch)
            .await
            .map_err(fetch_error)?,
    };
    // Hashed in the pool; OCR (if any) is read by `add_content` in the
    // engine's own OCR pool, after the hashing permit is released.
    let pool = Pool::for_bytes(&bytes);
    let hashed = state
        .in_pool(pool, engine.hash_bank_bytes(bank_id, bytes))
        .await??;
    let new = NewContent {
        source: ContentSource::HashedFile(hashed),
        labels,
        note,
    };
    Ok(engine.add_item(actor, bank_id, new).await?)
}

fn fetch_error(e: crate::fetch::FetchError) -> ApiError {
    use crate::fetch::FetchError as F;
    match e {
        F::Disabled => ApiError::forbidden(e.to_string()),
        F::Remote(_) | F::Timeout => {
            ApiError::new(StatusCode::BAD_GATEWAY, "fetch_failed", e.to_string())
        }
        F::TooLarge(_) => ApiError::payload_too_large(e.to_string()),
        _ => ApiError::bad_request(e.to_string()),
    }
}

/// Resolve bank names to ids (404 for an unknown name).
pub(crate) async fn bank_ids(
    state: &AppState,
    names: Option<Vec<String>>,
) -> Result<Option<Vec<i64>>, ApiError> {
    let Some(names) = names else {
        return Ok(None);
    };
    let engine = state.engine()?;
    let mut ids = Vec::with_capacity(names.len());
    for n in names {
        let bank: Bank = engine.bank_by_name(n.trim()).await?;
        ids.push(bank.id);
    }
    Ok(Some(ids))
}

/// `?frames=true`: include vPDQ frame lists in match records (left out by
/// default: a long video's list is megabytes and every match repeats it).
#[derive(serde::Deserialize, Default)]
pub(crate) struct FramesQuery {
    frames: Option<String>,
}

impl FramesQuery {
    /// Whether the frame lists were asked for: `true`/`1`/`yes` or
    /// `false`/`0`/`no` (or absent); anything else is a 400 naming it.
    pub(crate) fn wanted(&self) -> Result<bool, ApiError> {
        match self.frames.as_deref().map(str::trim) {
            None | Some("" | "false" | "0" | "no") => Ok(false),
            Some("true" | "1" | "yes") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "\"frames\" must be true or false, got {other:?}"
            ))),
        }
    }
}

/// A match record as the API returns it: without vPDQ frame lists unless
/// `frames`.
pub(crate) fn match_out(m: MatchRecord, frames: bool) -> MatchRecord {
    if frames {
        m
    } else {
        m.without_frame_lists()
    }
}

/// A lookup answer as the API returns it ([`match_out`] on every match).
pub(crate) fn lookup_out(mut r: LookupResponse, frames: bool) -> LookupResponse {
    r.matches = r
        .matches
        .into_iter()
        .map(|m| match_out(m, frames))
        .collect();
    r.allowed = r
        .allowed
        .into_iter()
        .map(|m| match_out(m, frames))
        .collect();
    r
}

/// Page size from a query parameter: default 100, at most 1000.
pub(crate) fn page_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(100).clamp(1, 1000)
}

/// `?limit=` alone (pages that have no cursor).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitQuery {
    pub(crate) limit: Option<u32>,
}

/// The `next_cursor` of a page read newest-first with `limit`: the id of
/// its last row when the page is full (there may be more), else none.
pub(crate) fn next_cursor<T>(rows: &[T], limit: u32, id: impl Fn(&T) -> i64) -> Option<i64> {
    if rows.len() == limit as usize {
        rows.last().map(id)
    } else {
        None
    }
}
