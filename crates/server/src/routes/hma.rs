//! Endpoints with the request and response shapes of Meta's
//! hasher-matcher-actioner (HMA, `OpenMediaMatch` blueprints `matching`
//! and `curation`), so existing HMA clients can point at echotrace.
//!
//! Differences, on purpose: every call needs a bearer key like the rest of
//! the API; lookups here are recorded as submissions and matches exactly
//! like `/v1/lookup` (HMA records nothing); `raw_lookup` still filters
//! disabled content; HMA's `metadata` field is accepted and ignored; signal
//! type names follow echotrace's wire names (`pdq`, `md5`, ...), and HMA's
//! aliases (`video_md5`, `photo_md5`) are accepted on input.
//!
//! Raw text — HMA's `text` signal type in `GET /m/lookup` and
//! `/m/raw_lookup`, a text file or a PDF uploaded to `POST /m/lookup` — is
//! looked up like `/v1/lookup` text: signed under each target bank's
//! text-equivalence list version (`Engine::lookup_text`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use echotrace_engine::{
    Actor, BankKind, EngineError, HashedUpload, LookupRequest, MatchRecord, NewBank, SignalValue,
    SubmissionContext, Thresholds,
};
use echotrace_signals::signal::SignalType;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{add_bank_content, bank_ids, item_query};
use crate::auth::{op, Caller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Item, ItemInput};
use crate::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/m/lookup", get(lookup_get).post(lookup_post))
        .route("/m/raw_lookup", get(raw_lookup))
        .route("/c/banks", get(banks_index).post(bank_create))
        .route("/c/bank/{name}/content", post(bank_add_content))
        .route("/c/bank/{name}/signal", post(bank_add_signal))
}

fn split_banks(banks: Option<String>) -> Option<Vec<String>> {
    banks.filter(|b| !b.is_empty()).map(|b| {
        b.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    })
}

fn hma_distance(m: &MatchRecord) -> String {
    match (m.distance, m.similarity) {
        (Some(d), _) => d.to_string(),
        (None, Some(s)) => format!("{s:.4}"),
        (None, None) => "0".to_string(),
    }
}

/// Exchange provenance of matched items (see `routes::exchange`).
type ProvenanceMap = std::collections::HashMap<i64, Vec<echotrace_engine::exchange::Provenance>>;

/// One match in HMA's shape, `{"bank_content_id": 1, "distance": "4"}`;
/// a vPDQ match also carries its two shares (percent), and an item that
/// came from an exchange its `provenance` (labels and opinions upstream).
fn hma_entry(m: &MatchRecord, provenance: &ProvenanceMap) -> Value {
    let mut e = json!({
        "bank_content_id": m.content_id,
        "distance": hma_distance(m),
        // echotrace extension: which matching channel found it.
        "channel": m.channel,
    });
    if let Some(v) = &m.vpdq {
        e["query_match_pct"] = json!(v.query_match_pct);
        e["compared_match_pct"] = json!(v.compared_match_pct);
    }
    if let Some(p) = provenance.get(&m.content_id) {
        e["provenance"] = json!(p);
    }
    e
}

/// `{"BANK": [{"bank_content_id": 1, "distance": "4"}]}` for one signal type.
fn by_bank<'a>(
    matches: impl Iterator<Item = &'a MatchRecord>,
    provenance: &ProvenanceMap,
) -> Map<String, Value> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for m in matches {
        out.entry(m.bank_name.clone())
            .or_default()
            .push(hma_entry(m, provenance));
    }
    out.into_iter().map(|(k, v)| (k, Value::Array(v))).collect()
}

/// Look up signals (with the raw text they came from, if any, so banks'
/// equivalence lists apply); the block matches with their exchange
/// provenance.
async fn run_lookup(
    state: &AppState,
    actor: &Actor,
    query: HashedUpload,
    banks: Option<String>,
) -> Result<(Vec<MatchRecord>, ProvenanceMap), ApiError> {
    let banks = bank_ids(state, split_banks(banks)).await?;
    let engine = state.engine()?;
    let req = LookupRequest {
        signals: Vec::new(),
        banks,
        context: SubmissionContext::default(),
    };
    let resp = engine.lookup_upload(actor, req, query).await?;
    let prov = super::exchange::provenance_of(engine, &resp.matches).await?;
    Ok((resp.matches, prov))
}

#[derive(Deserialize)]
struct LookupQuery {
    signal_type: Option<String>,
    signal: Option<String>,
    banks: Option<String>,
    #[allow(dead_code)]
    seed: Option<String>,
}

/// HMA's raw-text signal type (python-threatexchange's `TextSignal`).
const HMA_TEXT: &str = "text";

/// The query of a `signal_type` + `signal` pair. HMA's `text` type carries
/// raw text: it is signed on the hashing pool (its `text_minhash` only, not
/// the digests of the string) and kept for the list-aware lookup.
async fn one_signal(
    state: &AppState,
    signal_type: Option<String>,
    signal: Option<String>,
) -> Result<HashedUpload, ApiError> {
    let (Some(t), Some(v)) = (signal_type, signal) else {
        return Err(ApiError::bad_request(
            "both signal and signal_type are required",
        ));
    };
    if t.trim().eq_ignore_ascii_case(HMA_TEXT) {
        let mut query = item_query(state, ItemInput::Text(v)).await?;
        query
            .signals
            .retain(|s| s.signal_type == SignalType::TextMinhash);
        return Ok(query);
    }
    let t = t
        .parse()
        .map_err(|e: echotrace_signals::signal::UnknownSignalType| {
            ApiError::bad_request(e.to_string())
        })?;
    Ok(HashedUpload {
        signals: vec![echotrace_engine::normalize_signal(t, &v)?],
        ..HashedUpload::default()
    })
}

async fn lookup_get(
    State(state): State<AppState>,
    caller: Caller<op::Lookup>,
    ApiQuery(q): ApiQuery<LookupQuery>,
) -> Result<Json<Value>, ApiError> {
    let query = one_signal(&state, q.signal_type, q.signal).await?;
    let (matches, prov) = run_lookup(&state, &caller.actor(), query, q.banks).await?;
    Ok(Json(Value::Object(by_bank(matches.iter(), &prov))))
}

#[derive(Deserialize)]
struct PostQuery {
    banks: Option<String>,
    #[allow(dead_code)]
    bypass_coinflip: Option<String>,
    #[allow(dead_code)]
    seed: Option<String>,
}

async fn lookup_post(
    State(state): State<AppState>,
    caller: Caller<op::Lookup>,
    ApiQuery(q): ApiQuery<PostQuery>,
    item: Item,
) -> Result<Json<Value>, ApiError> {
    if !matches!(item.input, ItemInput::File(_)) {
        return Err(ApiError::bad_request(
            "Missing multipart/form-data file upload",
        ));
    }
    let query = item_query(&state, item.input).await?;
    let types: Vec<_> = query.signals.iter().map(|s| s.signal_type).collect();
    let (matches, prov) = run_lookup(&state, &caller.actor(), query, q.banks).await?;
    let mut out = Map::new();
    for t in types {
        out.insert(
            t.as_str().to_string(),
            Value::Object(by_bank(
                matches.iter().filter(|m| m.signal_type == t),
                &prov,
            )),
        );
    }
    Ok(Json(Value::Object(out)))
}

#[derive(Deserialize)]
struct RawQuery {
    signal_type: Option<String>,
    signal: Option<String>,
    banks: Option<String>,
    include_distance: Option<String>,
}

async fn raw_lookup(
    State(state): State<AppState>,
    caller: Caller<op::Lookup>,
    ApiQuery(q): ApiQuery<RawQuery>,
) -> Result<Json<Value>, ApiError> {
    let query = one_signal(&state, q.signal_type, q.signal).await?;
    let with_distance = q
        .include_distance
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    let (matches, prov) = run_lookup(&state, &caller.actor(), query, q.banks).await?;
    let list: Vec<Value> = matches
        .iter()
        .map(|m| {
            if with_distance {
                hma_entry(m, &prov)
            } else {
                json!(m.content_id)
            }
        })
        .collect();
    Ok(Json(json!({ "matches": list })))
}

fn hma_bank(b: &echotrace_engine::Bank) -> Value {
    json!({"name": b.name, "matching_enabled_ratio": if b.enabled { 1.0 } else { 0.0 }})
}

async fn banks_index(
    State(state): State<AppState>,
    _caller: Caller<op::ReadBanks>,
) -> Result<Json<Value>, ApiError> {
    let banks = state.engine()?.list_banks().await?;
    Ok(Json(Value::Array(banks.iter().map(hma_bank).collect())))
}

#[derive(Deserialize)]
struct HmaBankCreate {
    name: String,
    enabled: Option<bool>,
    enabled_ratio: Option<f64>,
}

async fn bank_create(
    State(state): State<AppState>,
    caller: Caller<op::WriteBanks>,
    ApiJson(body): ApiJson<HmaBankCreate>,
) -> Result<Response, ApiError> {
    if body.name.is_empty()
        || !body
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(ApiError::bad_request(
            "Bank names must be letters, digits and underscores",
        ));
    }
    let enabled = match (body.enabled_ratio, body.enabled) {
        (Some(r), _) => r > 0.0,
        (None, Some(e)) => e,
        (None, None) => true,
    };
    let engine = state.engine()?;
    let actor = caller.actor();
    let bank = match engine
        .create_bank(
            &actor,
            NewBank {
                name: body.name,
                kind: BankKind::Block,
                description: String::new(),
                thresholds: Thresholds::default(),
                text_equivalences: None,
            },
        )
        .await
    {
        Ok(b) => b,
        // HMA answers a duplicate name with 403.
        Err(EngineError::Conflict(_)) => {
            return Err(ApiError::forbidden("Bank already exists"));
        }
        Err(e) => return Err(e.into()),
    };
    let bank = if enabled {
        bank
    } else {
        engine
            .update_bank(
                &actor,
                bank.id,
                echotrace_engine::BankUpdate {
                    enabled: Some(false),
                    ..Default::default()
                },
            )
            .await?
    };
    Ok((StatusCode::CREATED, Json(hma_bank(&bank))).into_response())
}

fn signals_object(signals: &[SignalValue]) -> Value {
    let mut out = Map::new();
    for s in signals {
        out.insert(s.signal_type.as_str().to_string(), json!(s.value));
    }
    Value::Object(out)
}

/// Add an item (HMA's note is at most 255 characters) and answer in HMA's
/// shape: `{"id": …, "signals": {type: value}}`.
async fn add_item(
    state: &AppState,
    actor: &Actor,
    name: &str,
    input: ItemInput,
    note: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let bank = state.engine()?.bank_by_name(name).await?;
    let note = note.unwrap_or_default();
    if note.len() > 255 {
        return Err(ApiError::bad_request("note must be at most 255 characters"));
    }
    // HMA's answer whether added or already held: the item's id and signals.
    let content = add_bank_content(state, actor, bank.id, input, Vec::new(), note)
        .await?
        .content;
    let signals: Vec<SignalValue> = content
        .signals
        .iter()
        .map(|s| SignalValue {
            signal_type: s.signal_type,
            value: s.value.clone(),
        })
        .collect();
    Ok(Json(
        json!({"id": content.id, "signals": signals_object(&signals)}),
    ))
}

#[derive(Deserialize)]
struct ContentQuery {
    url: Option<String>,
}

async fn bank_add_content(
    State(state): State<AppState>,
    caller: Caller<op::WriteBanks>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ContentQuery>,
    item: Result<Item, ApiError>,
) -> Result<Json<Value>, ApiError> {
    state.engine()?.bank_by_name(&name).await?;
    let (input, note) = match (q.url, item.ok()) {
        (Some(url), item) => (ItemInput::Url(url), item.and_then(|i| i.note)),
        (None, Some(item)) if matches!(item.input, ItemInput::File(_)) => (item.input, item.note),
        _ => {
            return Err(ApiError::bad_request(
                "Neither `url` nor multipart file upload was received",
            ))
        }
    };
    add_item(&state, &caller.actor(), &name, input, note).await
}

async fn bank_add_signal(
    State(state): State<AppState>,
    caller: Caller<op::WriteBanks>,
    ApiPath(name): ApiPath<String>,
    ApiJson(mut body): ApiJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let note = match body.remove("note") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ApiError::bad_request("note should be a string")),
    };
    body.remove("metadata");
    add_item(
        &state,
        &caller.actor(),
        &name,
        ItemInput::Signals(body),
        note,
    )
    .await
}
