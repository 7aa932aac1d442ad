//! The `/v1` JSON API.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use echotrace_engine::robust::MatchingSettings;
use echotrace_engine::{
    BankKind, BankUpdate, Content, ContentUpdate, LookupRequest, MatchFilter, MatchStatus, NewBank,
    QueryText, Role, SignalValue, SubmissionContext, Thresholds, Verdict,
};
use echotrace_signals::signal::SignalType;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    add_bank_content, bank_ids, item_query, item_signals, lookup_out, match_out, next_cursor,
    page_limit, signals_json, FramesQuery,
};
use crate::auth::{op, Caller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Item, ItemInput, LookupContext};
use crate::{AppState, MAX_BATCH};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/banks", post(create_bank).get(list_banks))
        .route(
            "/v1/banks/{name}",
            get(get_bank).patch(update_bank).delete(delete_bank),
        )
        .route(
            "/v1/banks/{name}/content",
            post(add_content).get(list_content),
        )
        .route("/v1/banks/{name}/rederive", post(rederive))
        .route(
            "/v1/banks/{name}/content/{id}",
            get(get_content)
                .patch(update_content)
                .delete(delete_content),
        )
        .route("/v1/hash", post(hash))
        .route("/v1/lookup", post(lookup))
        .route("/v1/lookup/batch", post(lookup_batch))
        .route("/v1/compare", post(compare))
        .route("/v1/matches", get(list_matches))
        .route("/v1/matches/{id}", get(get_match))
        .route("/v1/matches/{id}/decision", post(decide))
        .route(
            "/v1/actions/webhooks",
            post(create_webhook).get(list_webhooks),
        )
        .route(
            "/v1/actions/webhooks/{id}",
            axum::routing::delete(delete_webhook),
        )
        .route("/v1/keys", post(create_key).get(list_keys))
        .route("/v1/keys/{id}", axum::routing::delete(revoke_key))
        .route("/v1/audit", get(audit))
}

fn context(c: LookupContext) -> SubmissionContext {
    SubmissionContext {
        content_id: c.content_id,
        url: c.url,
        uploader_id: c.uploader_id,
    }
}

// ----- banks ---------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBank {
    name: String,
    #[serde(default = "default_kind")]
    kind: BankKind,
    #[serde(default)]
    description: String,
    #[serde(default)]
    thresholds: Thresholds,
    /// Text-equivalence list, one group per line (`daesh = isis = isil`).
    #[serde(default)]
    text_equivalences: Option<String>,
    /// Robust-matching settings (`{"dihedral": true, "window": true,
    /// "part": true, "refine": null}`; `refine` null = automatic).
    #[serde(default)]
    matching: Option<MatchingSettings>,
}

fn default_kind() -> BankKind {
    BankKind::Block
}

async fn create_bank(
    State(state): State<AppState>,
    caller: Caller<op::WriteBanks>,
    ApiJson(body): ApiJson<CreateBank>,
) -> Result<Response, ApiError> {
    let engine = state.engine()?;
    let mut bank = engine
        .create_bank(
            &caller.actor(),
            NewBank {
                name: body.name,
                kind: body.kind,
                description: body.description,
                thresholds: body.thresholds,
                text_equivalences: body.text_equivalences,
            },
        )
        .await?;
    if let Some(m) = body.matching {
        bank = engine
            .set_bank_matching(&caller.actor(), bank.id, m)
            .await?;
    }
    Ok((StatusCode::CREATED, Json(bank)).into_response())
}

async fn list_banks(
    State(state): State<AppState>,
    _caller: Caller<op::ReadBanks>,
) -> Result<Json<Value>, ApiError> {
    let banks = state.engine()?.list_banks().await?;
    Ok(Json(json!({ "banks": banks })))
}

async fn get_bank(
    State(state): State<AppState>,
    _caller: Caller<op::ReadBanks>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let bank = state.engine()?.bank_by_name(&name).await?;
    Ok(Json(json!(bank)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBank {
    enabled: Option<bool>,
    description: Option<String>,
    thresholds: Option<Thresholds>,
    /// A new list (a new version); `""` removes the list.
    text_equivalences: Option<String>,
    /// Robust-matching settings; missing fields keep their defaults.
    matching: Option<MatchingSettings>,
}

async fn update_bank(
    State(state): State<AppState>,
    caller: Caller<op::WriteBanks>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PatchBank>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine()?;
    let bank = engine.bank_by_name(&name).await?;
    let bank = engine
        .update_bank(
            &caller.actor(),
            bank.id,
            BankUpdate {
                enabled: body.enabled,
                description: body.description,
                thresholds: body.thresholds,
                text_equivalences: body.text_equivalences,
            },
        )
        .await?;
    let bank = match body.matching {
        Some(m) => {
            engine
                .set_bank_matching(&caller.actor(), bank.id, m)
                .await?
        }
        None => bank,
    };
    Ok(Json(json!(bank)))
}

async fn delete_bank(
    State(state): State<AppState>,
    caller: Caller<op::WriteBanks>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let engine = state.engine()?;
    let bank = engine.bank_by_name(&name).await?;
    // Content, signals and the bank row go in one transaction; match and
    // decision history stays. The name can be reused afterwards.
    engine.delete_bank(&caller.actor(), bank.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One page of re-derivation (`echotrace_engine::RederivePage`); the
/// caller repeats with `after` = the answer's `next_after` until it is null.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rederive {
    #[serde(default)]
    after: i64,
    #[serde(default = "rederive_limit")]
    limit: u32,
}

fn rederive_limit() -> u32 {
    100
}

async fn rederive(
    State(state): State<AppState>,
    caller: Caller<op::WriteBanks>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Rederive>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine()?;
    let bank = engine.bank_by_name(&name).await?;
    let page = engine
        .rederive_page(&caller.actor(), bank.id, body.after, body.limit)
        .await?;
    Ok(Json(json!(page)))
}

// ----- content -------------------------------------------------------------

async fn add_content(
    State(state): State<AppState>,
    caller: Caller<op::WriteBanks>,
    ApiPath(name): ApiPath<String>,
    item: Item,
) -> Result<Response, ApiError> {
    let bank = state.engine()?.bank_by_name(&name).await?;
    if item.banks.is_some() || item.metadata.is_some() {
        return Err(ApiError::bad_request(
            "\"banks\" and \"metadata\" are not accepted here",
        ));
    }
    let added = add_bank_content(
        &state,
        &caller.actor(),
        bank.id,
        item.input,
        item.labels,
        item.note.unwrap_or_default(),
    )
    .await?;
    // 201 and the new item, or 200 and the item already holding the signals.
    let status = if added.already_held {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = AddedOut {
        content: &added.content,
        already_held: added.already_held,
        derived_added: added.derived_added,
    };
    Ok((status, Json(body)).into_response())
}

/// The answer to an add: the item's JSON and whether it was held already.
#[derive(serde::Serialize)]
struct AddedOut<'a> {
    #[serde(flatten)]
    content: &'a Content,
    already_held: bool,
    /// The held item gained this file's derived hashes (it had none).
    derived_added: bool,
}

#[derive(Deserialize)]
struct PageQuery {
    cursor: Option<i64>,
    limit: Option<u32>,
}

async fn list_content(
    State(state): State<AppState>,
    _caller: Caller<op::ReadBanks>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine()?;
    let bank = engine.bank_by_name(&name).await?;
    let limit = page_limit(q.limit);
    let items = engine
        .list_content(bank.id, q.cursor.unwrap_or(0), limit)
        .await?;
    let next = next_cursor(&items, limit, |c| c.id);
    Ok(Json(json!({"content": items, "next_cursor": next})))
}

/// The content item, 404 unless it belongs to the named bank.
async fn content_in_bank(
    state: &AppState,
    name: &str,
    id: i64,
) -> Result<echotrace_engine::Content, ApiError> {
    let engine = state.engine()?;
    let bank = engine.bank_by_name(name).await?;
    let content = engine.get_content(id).await?;
    if content.bank_id != bank.id {
        return Err(ApiError::not_found(format!(
            "content {id} is not in bank {name}"
        )));
    }
    Ok(content)
}

async fn get_content(
    State(state): State<AppState>,
    _caller: Caller<op::ReadBanks>,
    ApiPath((name, id)): ApiPath<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    let content = content_in_bank(&state, &name, id).await?;
    // Which derived channels the item holds (robust matching; names only,
    // never the derived hashes): docs/ROBUST.md, "Upgrading".
    let derived = state.engine()?.derived_channels(id).await?;
    let mut v = json!(content);
    v["derived"] = json!(derived);
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchContent {
    enabled: Option<bool>,
    labels: Option<Vec<String>>,
    note: Option<String>,
}

async fn update_content(
    State(state): State<AppState>,
    caller: Caller<op::WriteBanks>,
    ApiPath((name, id)): ApiPath<(String, i64)>,
    ApiJson(body): ApiJson<PatchContent>,
) -> Result<Json<Value>, ApiError> {
    content_in_bank(&state, &name, id).await?;
    let content = state
        .engine()?
        .update_content(
            &caller.actor(),
            id,
            ContentUpdate {
                enabled: body.enabled,
                labels: body.labels,
                note: body.note,
            },
        )
        .await?;
    Ok(Json(json!(content)))
}

async fn delete_content(
    State(state): State<AppState>,
    caller: Caller<op::WriteBanks>,
    ApiPath((name, id)): ApiPath<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    content_in_bank(&state, &name, id).await?;
    state.engine()?.delete_content(&caller.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- matching ------------------------------------------------------------

async fn hash(
    State(state): State<AppState>,
    _caller: Caller<op::Lookup>,
    item: Item,
) -> Result<Json<Value>, ApiError> {
    if matches!(item.input, ItemInput::Signals(_)) {
        return Err(ApiError::bad_request(
            "/v1/hash takes a file, text or url, not signals",
        ));
    }
    let signals = item_signals(&state, item.input).await?;
    Ok(Json(json!({ "signals": signals_json(&signals) })))
}

async fn lookup(
    State(state): State<AppState>,
    caller: Caller<op::Lookup>,
    ApiQuery(frames): ApiQuery<FramesQuery>,
    item: Item,
) -> Result<Json<Value>, ApiError> {
    let frames = frames.wanted()?;
    if !item.labels.is_empty() || item.note.is_some() || item.metadata.is_some() {
        return Err(ApiError::bad_request(
            "\"labels\" and \"note\" belong to bank content, not lookups",
        ));
    }
    let hashed = !matches!(item.input, ItemInput::Signals(_));
    let retained = match (&item.input, state.config().retain_media) {
        (ItemInput::File(b), true) => Some(("application/octet-stream", b.clone())),
        (ItemInput::Text(t), true) => Some((
            "text/plain; charset=utf-8",
            axum::body::Bytes::from(t.clone().into_bytes()),
        )),
        _ => None,
    };
    let banks = bank_ids(&state, item.banks).await?;
    // The text of typed text, a text file or a PDF comes back with the
    // signals, so the engine can sign it under each bank's
    // text-equivalence list version; ready-made signals are compared as-is.
    let upload = item_query(&state, item.input).await?;
    let signals = upload.signals.clone();
    let started = Instant::now();
    let engine = state.engine()?;
    let req = LookupRequest {
        signals: Vec::new(),
        banks,
        context: context(item.context),
    };
    let resp = engine.lookup_upload(&caller.actor(), req, upload).await?;
    state
        .metrics()
        .record_lookup(started.elapsed(), resp.matches.len() + resp.allowed.len());
    // Unrecorded lookups (`--record matches`, no hit) keep nothing.
    if let (Some((mime, bytes)), Some(submission_id)) = (retained, resp.submission_id) {
        echotrace_engine::console::retain_submission_media(
            engine.store(),
            submission_id,
            mime,
            &bytes,
        )
        .await?;
    }
    let mut out = json!(lookup_out(resp, frames));
    super::exchange::attach_provenance(engine, &mut out, &["matches", "allowed"]).await?;
    if hashed {
        out["signals"] = signals_json(&signals);
    }
    Ok(Json(out))
}

/// One signal set of a batch: ready-made `signals`, raw `text`, or both
/// (text with other signal types, e.g. a post's text and its image's pdq);
/// `text` and a `text_minhash` in `signals` together are a 400.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchItem {
    signals: Option<serde_json::Map<String, Value>>,
    /// Raw text, signed by the engine under each target bank's
    /// text-equivalence list version (like a `/v1/lookup` with `text`).
    text: Option<String>,
    banks: Option<Vec<String>>,
    #[serde(default)]
    context: LookupContext,
}

/// A batch item's signals and raw text, checked: something to look up, a
/// non-blank text, not both `text` and a `text_minhash` signal.
fn batch_item_query(
    signals: Option<serde_json::Map<String, Value>>,
    text: Option<String>,
) -> Result<(Vec<SignalValue>, Option<QueryText>), ApiError> {
    let signals = match signals.filter(|m| !m.is_empty()) {
        Some(map) => echotrace_engine::parse_signals(&map)?,
        None if text.is_some() => Vec::new(),
        None => return Err(ApiError::bad_request("give \"signals\", \"text\" or both")),
    };
    let Some(text) = text else {
        return Ok((signals, None));
    };
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("\"text\" is empty"));
    }
    if signals
        .iter()
        .any(|s| s.signal_type == SignalType::TextMinhash)
    {
        return Err(ApiError::bad_request(
            "give raw \"text\" or a text_minhash signal, not both",
        ));
    }
    Ok((signals, Some(QueryText::from(text))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    items: Vec<BatchItem>,
}

async fn lookup_batch(
    State(state): State<AppState>,
    caller: Caller<op::Lookup>,
    ApiQuery(frames): ApiQuery<FramesQuery>,
    ApiJson(batch): ApiJson<Batch>,
) -> Result<Json<Value>, ApiError> {
    let frames = frames.wanted()?;
    if batch.items.is_empty() || batch.items.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "a batch holds 1 to {MAX_BATCH} signal sets"
        )));
    }
    // Validate everything before recording anything.
    let mut items = Vec::with_capacity(batch.items.len());
    for (i, item) in batch.items.into_iter().enumerate() {
        let (signals, text) = batch_item_query(item.signals, item.text)
            .map_err(|e| e.with_prefix(&format!("items[{i}]: ")))?;
        let banks = bank_ids(&state, item.banks).await?;
        let req = LookupRequest {
            signals,
            banks,
            context: context(item.context),
        };
        items.push((req, text));
    }
    let engine = state.engine()?;
    let actor = caller.actor();
    // Raw texts are signed per list version (bounded in total by the
    // engine's `max_query_text_bytes`: 413), and the whole batch is
    // recorded in one transaction.
    let started = Instant::now();
    let results = engine.lookup_batch_with_text(&actor, items).await?;
    let per_item = started.elapsed() / u32::try_from(results.len().max(1)).unwrap_or(u32::MAX);
    for resp in &results {
        state
            .metrics()
            .record_lookup(per_item, resp.matches.len() + resp.allowed.len());
    }
    let mut out = Vec::with_capacity(results.len());
    for resp in results {
        let mut v = json!(lookup_out(resp, frames));
        super::exchange::attach_provenance(engine, &mut v, &["matches", "allowed"]).await?;
        out.push(v);
    }
    Ok(Json(json!({ "results": out })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareBody {
    /// A signal type wire name, or `text` to compare two raw texts.
    signal_type: String,
    a: String,
    b: String,
}

async fn compare(
    State(state): State<AppState>,
    _caller: Caller<op::Lookup>,
    ApiJson(body): ApiJson<CompareBody>,
) -> Result<Json<Value>, ApiError> {
    if body.signal_type == "text" {
        let (a, b) = (body.a, body.b);
        let cmp = state
            .hash_job(crate::Pool::Light, move || {
                let sa = echotrace_signals::text::text_signature(&a);
                let sb = echotrace_signals::text::text_signature(&b);
                require_words(&sa, &sb)?;
                echotrace_signals::text::compare_text(&sa, &sb)
                    .map_err(|e| ApiError::bad_request(e.to_string()))
            })
            .await?;
        return Ok(Json(
            json!({"signal_type": "text_minhash", "similarity": cmp.jaccard,
                               "comparison": cmp, "match": cmp.is_match}),
        ));
    }
    let t: SignalType =
        body.signal_type
            .parse()
            .map_err(|e: echotrace_signals::signal::UnknownSignalType| {
                ApiError::bad_request(e.to_string())
            })?;
    let a = echotrace_engine::normalize_signal(t, &body.a)?;
    let b = echotrace_engine::normalize_signal(t, &body.b)?;
    Ok(Json(compare_values(&a, &b)?))
}

/// 400 naming `a` or `b` when that side's text has no words.
fn require_words(
    a: &echotrace_signals::text::TextSignature,
    b: &echotrace_signals::text::TextSignature,
) -> Result<(), ApiError> {
    echotrace_signals::text::require_words("a", a)
        .and_then(|()| echotrace_signals::text::require_words("b", b))
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

fn compare_values(a: &SignalValue, b: &SignalValue) -> Result<Value, ApiError> {
    let t = a.signal_type;
    match t {
        SignalType::Pdq => {
            let ha = echotrace_signals::pdq::PdqHash::from_hex(&a.value)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            let hb = echotrace_signals::pdq::PdqHash::from_hex(&b.value)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            let d = ha.distance(&hb);
            let threshold = echotrace_engine::default_threshold(t);
            Ok(
                json!({"signal_type": t.as_str(), "distance": d, "threshold": threshold,
                      "match": f64::from(d) <= threshold}),
            )
        }
        SignalType::TextMinhash | SignalType::OcrText => {
            let sa: echotrace_signals::text::TextSignature =
                a.value
                    .parse()
                    .map_err(|e: echotrace_signals::text::SignatureParseError| {
                        ApiError::bad_request(e.to_string())
                    })?;
            let sb: echotrace_signals::text::TextSignature =
                b.value
                    .parse()
                    .map_err(|e: echotrace_signals::text::SignatureParseError| {
                        ApiError::bad_request(e.to_string())
                    })?;
            require_words(&sa, &sb)?;
            let rule = echotrace_signals::text::TextMatchRule {
                jaccard: echotrace_engine::default_threshold(t),
                ..echotrace_signals::text::TextMatchRule::default()
            };
            let cmp = echotrace_signals::text::compare_text_with(&sa, &sb, &rule)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok(json!({"signal_type": t.as_str(), "similarity": cmp.jaccard,
                      "comparison": cmp, "match": cmp.is_match}))
        }
        _ => Ok(
            json!({"signal_type": t.as_str(), "distance": u32::from(a.value != b.value),
                       "match": a.value == b.value}),
        ),
    }
}

// ----- review --------------------------------------------------------------

#[derive(Deserialize)]
struct MatchesQuery {
    frames: Option<String>,
    status: Option<String>,
    bank: Option<String>,
    submission: Option<i64>,
    cursor: Option<i64>,
    limit: Option<u32>,
}

async fn list_matches(
    State(state): State<AppState>,
    _caller: Caller<op::ReadMatches>,
    ApiQuery(q): ApiQuery<MatchesQuery>,
) -> Result<Json<Value>, ApiError> {
    let frames = FramesQuery { frames: q.frames }.wanted()?;
    let engine = state.engine()?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(MatchStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request("status must be pending, confirmed or rejected")
        })?),
    };
    let bank_id = match q.bank.as_deref() {
        None | Some("") => None,
        Some(name) => Some(engine.bank_by_name(name).await?.id),
    };
    let limit = page_limit(q.limit);
    let matches = engine
        .list_matches(MatchFilter {
            status,
            bank_id,
            submission_id: q.submission,
            before_id: q.cursor,
            limit: Some(limit),
        })
        .await?;
    let next = next_cursor(&matches, limit, |m| m.id);
    let matches: Vec<_> = matches.into_iter().map(|m| match_out(m, frames)).collect();
    let mut out = json!({"matches": matches, "next_cursor": next});
    super::exchange::attach_provenance(engine, &mut out, &["matches"]).await?;
    Ok(Json(out))
}

async fn get_match(
    State(state): State<AppState>,
    _caller: Caller<op::ReadMatches>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(frames): ApiQuery<FramesQuery>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine()?;
    let m = engine.get_match(id).await?;
    let mut out = json!({"matches": [match_out(m, frames.wanted()?)]});
    super::exchange::attach_provenance(engine, &mut out, &["matches"]).await?;
    Ok(Json(out["matches"][0].take()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: Verdict,
    #[serde(default)]
    note: String,
}

async fn decide(
    State(state): State<AppState>,
    caller: Caller<op::Decide>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    let d = state
        .engine()?
        .decide(&caller.actor(), id, body.decision, &body.note)
        .await?;
    Ok(Json(json!(d)))
}

// ----- actions -------------------------------------------------------------

const EVENTS: &[&str] = &["match", "decision", "quarantine", "notice.created"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookBody {
    url: String,
    secret: String,
    #[serde(default)]
    events: Vec<String>,
}

fn webhook_json(h: &echotrace_engine::Webhook) -> Value {
    // The secret is write-only.
    json!({"id": h.id, "url": h.url, "events": h.events, "enabled": h.enabled,
           "created_at": h.created_at})
}

async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller<op::Admin>,
    ApiJson(body): ApiJson<WebhookBody>,
) -> Result<Response, ApiError> {
    if let Some(bad) = body.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown event {bad:?} (expected one of {})",
            EVENTS.join(", ")
        )));
    }
    let url = reqwest::Url::parse(&body.url)
        .map_err(|e| ApiError::bad_request(format!("invalid webhook url: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ApiError::bad_request("webhook url must be http or https"));
    }
    let hook = state
        .engine()?
        .create_webhook(&caller.actor(), &body.url, &body.secret, body.events)
        .await?;
    Ok((StatusCode::CREATED, Json(webhook_json(&hook))).into_response())
}

async fn list_webhooks(
    State(state): State<AppState>,
    _caller: Caller<op::Admin>,
) -> Result<Json<Value>, ApiError> {
    let hooks = state.engine()?.list_webhooks().await?;
    Ok(Json(json!({
        "webhooks": hooks.iter().map(webhook_json).collect::<Vec<_>>()
    })))
}

async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller<op::Admin>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let engine = state.engine()?;
    if !engine.list_webhooks().await?.iter().any(|h| h.id == id) {
        return Err(ApiError::not_found(format!("webhook {id} not found")));
    }
    engine.delete_webhook(&caller.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- keys ----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    role: String,
    #[serde(default)]
    name: String,
}

async fn create_key(
    State(state): State<AppState>,
    caller: Caller<op::Admin>,
    ApiJson(body): ApiJson<KeyBody>,
) -> Result<Response, ApiError> {
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::bad_request(format!("role must be one of {}", Role::names())))?;
    let (meta, key) = state
        .engine()?
        .create_api_key(&caller.actor(), &body.name, role)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"key": key, "api_key": meta})),
    )
        .into_response())
}

async fn list_keys(
    State(state): State<AppState>,
    _caller: Caller<op::Admin>,
) -> Result<Json<Value>, ApiError> {
    let keys = state.engine()?.list_api_keys().await?;
    Ok(Json(json!({ "keys": keys })))
}

async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller<op::Admin>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let key = state.engine()?.revoke_api_key(&caller.actor(), id).await?;
    Ok(Json(json!(key)))
}

// ----- audit ---------------------------------------------------------------

async fn audit(
    State(state): State<AppState>,
    _caller: Caller<op::ReadAudit>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit);
    let entries = state.engine()?.audit_log(q.cursor, limit).await?;
    let next = next_cursor(&entries, limit, |e| e.id);
    Ok(Json(json!({"entries": entries, "next_cursor": next})))
}
