//! Signal exchange routes: exchanges (`/v1/exchanges…` and HMA's
//! `/c/exchange…` shapes), published feeds (`/v1/feeds…`), and the
//! provenance attached to match results.
//!
//! Handlers only authenticate, translate and shape JSON; the logic lives in
//! `echotrace_exchange` (adapters, workers, feeds) and the engine.
//! Credentials are write-only: no answer ever carries them.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use echotrace_engine::exchange::{Exchange, ExchangePolicy};
use echotrace_engine::{Engine, MatchRecord};
use echotrace_exchange::feed::{FeedError, PostedOpinion};
use echotrace_exchange::{
    ExchangeEdit, ExchangeRequest, ExchangeService, FetchError, RoundError, APIS,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::LimitQuery;
use crate::auth::{op, Caller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        // v1 exchanges
        .route("/v1/exchanges/apis", get(v1_apis))
        .route(
            "/v1/exchanges/apis/{api}/credentials",
            get(v1_api_credentials)
                .put(v1_set_api_credentials)
                .delete(v1_clear_api_credentials),
        )
        .route("/v1/exchanges", get(v1_list).post(v1_create))
        .route(
            "/v1/exchanges/{name}",
            get(v1_get).patch(v1_update).delete(v1_delete),
        )
        .route("/v1/exchanges/{name}/status", get(v1_status))
        .route("/v1/exchanges/{name}/fetch", post(v1_fetch))
        .route("/v1/exchanges/{name}/checksum", get(v1_checksum))
        .route("/v1/exchanges/{name}/dry-run", post(v1_dry_run))
        // feeds
        .route("/v1/feeds", get(feeds_list))
        .route(
            "/v1/feeds/{bank}",
            get(feed_page).put(feed_publish).delete(feed_unpublish),
        )
        .route("/v1/feeds/{bank}/snapshot", get(feed_snapshot))
        .route("/v1/feeds/{bank}/checksum", get(feed_checksum))
        .route(
            "/v1/feeds/{bank}/opinions",
            get(feed_opinions).post(feed_post_opinions),
        )
        // HMA
        .route("/c/exchanges/apis", get(hma_apis))
        .route(
            "/c/exchanges/api/{api}",
            get(v1_api_credentials).post(hma_set_api_credentials),
        )
        .route("/c/exchanges/api/{api}/schema", get(hma_api_schema))
        .route("/c/exchanges", get(hma_list).post(hma_create))
        .route(
            "/c/exchange/{name}",
            get(hma_get).put(hma_update).delete(hma_delete),
        )
        .route("/c/exchange/{name}/status", get(hma_status))
}

fn service(state: &AppState) -> Result<&std::sync::Arc<ExchangeService>, ApiError> {
    state.exchanges()
}

fn feed_error(e: FeedError) -> ApiError {
    match e {
        FeedError::Engine(e) => e.into(),
        FeedError::Gone { .. } => ApiError::new(StatusCode::GONE, "cursor_expired", e.to_string()),
    }
}

// ----- shapes ------------------------------------------------------------------

/// The v1 view of an exchange: config, policy, status; never credentials.
fn exchange_json(ex: &Exchange) -> Value {
    let mut v = json!(ex);
    if let Value::Object(m) = &mut v {
        m.insert("config".into(), ExchangeService::config_json(ex));
        m.insert(
            "poll_interval_secs".into(),
            json!(ex.poll_interval_ms / 1000),
        );
    }
    v
}

fn api_json(a: &echotrace_exchange::ApiInfo) -> Value {
    json!({
        "name": a.name,
        "title": a.title,
        "write_back": a.write_back,
        "needs_credentials": a.needs_credentials,
        "config_schema": {"fields": a.config_fields},
        "credentials_schema": if a.needs_credentials {
            json!({"fields": a.credential_fields})
        } else {
            Value::Null
        },
    })
}

// ----- v1 exchanges ------------------------------------------------------------

async fn v1_apis(_caller: Caller<op::Exchanges>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({
        "apis": APIS.iter().map(api_json).collect::<Vec<_>>()
    })))
}

async fn v1_list(
    State(state): State<AppState>,
    _caller: Caller<op::Exchanges>,
) -> Result<Json<Value>, ApiError> {
    let list = state.engine()?.list_exchanges().await?;
    Ok(Json(json!({
        "exchanges": list.iter().map(exchange_json).collect::<Vec<_>>()
    })))
}

async fn v1_create(
    State(state): State<AppState>,
    caller: Caller<op::Exchanges>,
    ApiJson(body): ApiJson<ExchangeRequest>,
) -> Result<Response, ApiError> {
    let ex = service(&state)?.create(&caller.actor(), body).await?;
    Ok((StatusCode::CREATED, Json(exchange_json(&ex))).into_response())
}

async fn v1_get(
    State(state): State<AppState>,
    _caller: Caller<op::Exchanges>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let ex = state.engine()?.exchange_by_name(&name).await?;
    Ok(Json(exchange_json(&ex)))
}

async fn v1_status(
    State(state): State<AppState>,
    _caller: Caller<op::Exchanges>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let ex = state.engine()?.exchange_by_name(&name).await?;
    Ok(Json(json!({"name": ex.name, "status": ex.status})))
}

async fn v1_update(
    State(state): State<AppState>,
    caller: Caller<op::Exchanges>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ExchangeEdit>,
) -> Result<Json<Value>, ApiError> {
    let ex = service(&state)?.edit(&caller.actor(), &name, body).await?;
    Ok(Json(exchange_json(&ex)))
}

async fn v1_delete(
    State(state): State<AppState>,
    caller: Caller<op::Exchanges>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    service(&state)?.remove(&caller.actor(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn v1_fetch(
    State(state): State<AppState>,
    _caller: Caller<op::Exchanges>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let svc = service(&state)?;
    let ex = state.engine()?.exchange_by_name(&name).await?;
    match svc.fetch_once(ex.id).await {
        Ok(report) => Ok(Json(json!({"exchange": ex.name, "report": report}))),
        Err(RoundError::LeaseHeld) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "fetch_running",
            format!("exchange {name:?} is being fetched by another worker right now"),
        )),
        Err(RoundError::Engine(e)) => Err(e.into()),
        // Nothing was fetched: the exchange itself needs fixing first.
        Err(RoundError::Fetch(e @ FetchError::Config(_))) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_configured",
            e.to_string(),
        )),
        Err(RoundError::Fetch(e)) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "fetch_failed",
            e.to_string(),
        )),
    }
}

async fn v1_checksum(
    State(state): State<AppState>,
    _caller: Caller<op::Exchanges>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(service(&state)?.checksum(&name).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DryRun {
    #[serde(default)]
    policy: Option<ExchangePolicy>,
}

async fn v1_dry_run(
    State(state): State<AppState>,
    _caller: Caller<op::Exchanges>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<DryRun>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine()?;
    let ex = engine.exchange_by_name(&name).await?;
    let policy = body.policy.unwrap_or_else(|| ex.policy.clone());
    let diff = engine.exchange_policy_diff(ex.id, &policy).await?;
    Ok(Json(
        json!({"exchange": ex.name, "live": ex.live, "diff": diff}),
    ))
}

async fn v1_api_credentials(
    State(state): State<AppState>,
    _caller: Caller<op::Admin>,
    ApiPath(api): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        service(&state)?.api_credential_status(&api).await?
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsBody {
    credentials: Value,
}

async fn v1_set_api_credentials(
    State(state): State<AppState>,
    caller: Caller<op::Admin>,
    ApiPath(api): ApiPath<String>,
    ApiJson(body): ApiJson<CredentialsBody>,
) -> Result<Json<Value>, ApiError> {
    let st = service(&state)?
        .set_api_credentials(&caller.actor(), &api, Some(&body.credentials))
        .await?;
    Ok(Json(json!(st)))
}

async fn v1_clear_api_credentials(
    State(state): State<AppState>,
    caller: Caller<op::Admin>,
    ApiPath(api): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let st = service(&state)?
        .set_api_credentials(&caller.actor(), &api, None)
        .await?;
    Ok(Json(json!(st)))
}

// ----- feeds ---------------------------------------------------------------------

async fn feeds_list(
    State(state): State<AppState>,
    caller: Caller<op::ReadFeeds>,
) -> Result<Json<Value>, ApiError> {
    let feeds = service(&state)?
        .feeds()
        .list(&caller.key)
        .await
        .map_err(feed_error)?;
    Ok(Json(json!({"feeds": feeds})))
}

/// 403 unless the caller may read this bank's feed (404 if unpublished).
/// The feed exists and the caller is one of its partners (the role was
/// checked by the extractor).
async fn check_feed_access(
    state: &AppState,
    caller: &Caller<op::ReadFeeds>,
    bank: &str,
) -> Result<(), ApiError> {
    let hub = service(state)?.feeds();
    let (_, feed) = hub.feed_of(bank).await.map_err(feed_error)?;
    if !hub
        .may_read(&caller.key, feed.bank_id)
        .await
        .map_err(feed_error)?
    {
        return Err(ApiError::forbidden(format!(
            "this key is not a partner of the feed {bank:?}"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedQuery {
    after: Option<String>,
    limit: Option<u32>,
    wait: Option<u64>,
}

async fn feed_page(
    State(state): State<AppState>,
    caller: Caller<op::ReadFeeds>,
    ApiPath(bank): ApiPath<String>,
    ApiQuery(q): ApiQuery<FeedQuery>,
) -> Result<Json<Value>, ApiError> {
    check_feed_access(&state, &caller, &bank).await?;
    let after = match q.after.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => Some(c.parse::<i64>().ok().filter(|c| *c >= 0).ok_or_else(|| {
            ApiError::bad_request("after: a cursor is a non-negative integer (a next_cursor)")
        })?),
    };
    let limit = q.limit.unwrap_or(1000);
    if limit == 0 || limit > echotrace_exchange::feed::MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit: must be 1-{}",
            echotrace_exchange::feed::MAX_PAGE
        )));
    }
    let wait = q.wait.unwrap_or(0);
    if wait > echotrace_exchange::feed::MAX_WAIT.as_secs() {
        return Err(ApiError::bad_request(format!(
            "wait: at most {} seconds",
            echotrace_exchange::feed::MAX_WAIT.as_secs()
        )));
    }
    let page = service(&state)?
        .feeds()
        .page(&bank, after, limit, Duration::from_secs(wait))
        .await
        .map_err(feed_error)?;
    Ok(Json(json!(page)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    #[serde(default)]
    partners: Vec<String>,
    #[serde(default)]
    horizon_days: Option<u32>,
}

async fn feed_publish(
    State(state): State<AppState>,
    caller: Caller<op::Admin>,
    ApiPath(bank): ApiPath<String>,
    ApiJson(body): ApiJson<PublishBody>,
) -> Result<Json<Value>, ApiError> {
    let info = service(&state)?
        .feeds()
        .publish(&caller.actor(), &bank, &body.partners, body.horizon_days)
        .await
        .map_err(feed_error)?;
    Ok(Json(json!(info)))
}

async fn feed_unpublish(
    State(state): State<AppState>,
    caller: Caller<op::Admin>,
    ApiPath(bank): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    service(&state)?
        .feeds()
        .unpublish(&caller.actor(), &bank)
        .await
        .map_err(feed_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn feed_checksum(
    State(state): State<AppState>,
    caller: Caller<op::ReadFeeds>,
    ApiPath(bank): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    check_feed_access(&state, &caller, &bank).await?;
    let hub = service(&state)?.feeds();
    let (_, feed) = hub.feed_of(&bank).await.map_err(feed_error)?;
    // The head may move while hashing: try a few times.
    for _ in 0..5 {
        if let Some((head, checksum)) =
            hub.checksum(feed.bank_id, true).await.map_err(feed_error)?
        {
            return Ok(Json(
                json!({"cursor": head.to_string(), "checksum": checksum}),
            ));
        }
    }
    Err(ApiError::unavailable(
        "the feed is changing too fast to checksum; retry",
    ))
}

/// Snapshot rows per database read.
const SNAPSHOT_PAGE: i64 = 10_000;

async fn feed_snapshot(
    State(state): State<AppState>,
    caller: Caller<op::ReadFeeds>,
    ApiPath(bank): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_feed_access(&state, &caller, &bank).await?;
    let svc = service(&state)?.clone();
    let (_, feed) = svc.feeds().feed_of(&bank).await.map_err(feed_error)?;
    let head = feed.head_seq;
    let bank_id = feed.bank_id;
    // Stream the live set in key order, page by page (bounded memory).
    let stream = futures_util::stream::unfold(
        (svc, Some(None::<(String, String)>)),
        move |(svc, cursor)| async move {
            let after = cursor?;
            let page = svc
                .feeds()
                .snapshot_page(
                    bank_id,
                    after.as_ref().map(|(t, v)| (t.as_str(), v.as_str())),
                    i64::MAX,
                    SNAPSHOT_PAGE,
                )
                .await;
            match page {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let mut buf = Vec::with_capacity(rows.len() * 128);
                    for r in &rows {
                        if serde_json::to_writer(&mut buf, r).is_ok() {
                            buf.push(b'\n');
                        }
                    }
                    let next = rows
                        .last()
                        .map(|r| (r.signal_type.clone(), r.value.clone()));
                    Some((
                        Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)),
                        (svc, Some(next)),
                    ))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), (svc, None))),
            }
        },
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (
                header::HeaderName::from_static("x-echotrace-cursor"),
                head.to_string(),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpinionsBody {
    opinions: Vec<PostedOpinion>,
}

async fn feed_post_opinions(
    State(state): State<AppState>,
    caller: Caller<op::ReadFeeds>,
    ApiPath(bank): ApiPath<String>,
    ApiJson(body): ApiJson<OpinionsBody>,
) -> Result<Json<Value>, ApiError> {
    check_feed_access(&state, &caller, &bank).await?;
    let n = service(&state)?
        .feeds()
        .post_opinions(&caller.key, &bank, &body.opinions)
        .await
        .map_err(feed_error)?;
    Ok(Json(json!({"accepted": n})))
}

async fn feed_opinions(
    State(state): State<AppState>,
    _caller: Caller<op::Exchanges>,
    ApiPath(bank): ApiPath<String>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    let list = service(&state)?
        .feeds()
        .opinions(&bank, q.limit.unwrap_or(100))
        .await
        .map_err(feed_error)?;
    Ok(Json(json!({"opinions": list})))
}

// ----- HMA /c/exchange… ------------------------------------------------------------

fn hma_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

async fn hma_apis(_caller: Caller<op::Exchanges>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(APIS.iter().map(|a| a.name).collect::<Vec<_>>())))
}

async fn hma_set_api_credentials(
    State(state): State<AppState>,
    caller: Caller<op::Admin>,
    ApiPath(api): ApiPath<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let svc = service(&state)?;
    let st = match body.get("credential_json") {
        None => svc.api_credential_status(&api).await?,
        Some(Value::Object(m)) if m.is_empty() => {
            svc.set_api_credentials(&caller.actor(), &api, None).await?
        }
        Some(Value::Null) => svc.set_api_credentials(&caller.actor(), &api, None).await?,
        Some(v @ Value::Object(_)) => {
            svc.set_api_credentials(&caller.actor(), &api, Some(v))
                .await?
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "credential_json must be a JSON object",
            ))
        }
    };
    Ok(Json(json!(st)))
}

async fn hma_api_schema(
    _caller: Caller<op::Exchanges>,
    ApiPath(api): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let info = echotrace_exchange::api_info(&api)
        .ok_or_else(|| ApiError::not_found(format!("Exchange API '{api}' not found")))?;
    let v = api_json(info);
    Ok(Json(json!({
        "config_schema": v["config_schema"],
        "credentials_schema": v["credentials_schema"],
    })))
}

async fn hma_list(
    State(state): State<AppState>,
    _caller: Caller<op::Exchanges>,
) -> Result<Json<Value>, ApiError> {
    let list = state.engine()?.list_exchanges().await?;
    Ok(Json(json!(list
        .iter()
        .map(|e| e.name.clone())
        .collect::<Vec<_>>())))
}

async fn hma_create(
    State(state): State<AppState>,
    caller: Caller<op::Exchanges>,
    ApiJson(mut body): ApiJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let bank = match body.remove("bank") {
        Some(Value::String(b)) => b,
        _ => return Err(ApiError::bad_request("Field `bank` is required")),
    };
    if !hma_name_ok(&bank) {
        return Err(ApiError::bad_request(
            "Field `bank` must match /^[A-Z0-9_]+$/",
        ));
    }
    let api = match body.remove("api") {
        Some(Value::String(a)) => a,
        _ => return Err(ApiError::bad_request("Field `api_type` is required")),
    };
    let mut api_json = match body.remove("api_json") {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ApiError::bad_request("Field `api_json` must be object")),
    };
    // HMA's collab fields that are not adapter config.
    api_json.remove("name");
    api_json.remove("api");
    let enabled = match api_json.remove("enabled") {
        None => true,
        Some(Value::Bool(b)) => b,
        Some(Value::Number(n)) => n.as_i64() != Some(0),
        Some(_) => return Err(ApiError::bad_request("api_json.enabled must be a boolean")),
    };
    if echotrace_exchange::api_info(&api).is_none() {
        return Err(ApiError::bad_request(format!(
            "No such exchange type '{api}'"
        )));
    }
    let req = ExchangeRequest {
        name: bank,
        api,
        config: Value::Object(api_json),
        credentials: None,
        policy: None,
        enabled: Some(enabled),
        live: None,
        poll_interval_secs: None,
        bank: None,
    };
    service(&state)?
        .create(&caller.actor(), req)
        .await
        .map_err(|e| ApiError::from(e).with_prefix("Failed to parse `api_json` - "))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"message": "Created successfully"})),
    )
        .into_response())
}

/// HMA's collab config view: name, api, enabled, and the adapter's fields.
fn hma_exchange(ex: &Exchange) -> Value {
    let mut m = match ExchangeService::config_json(ex) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    m.insert("name".into(), json!(ex.name));
    m.insert("api".into(), json!(ex.api));
    m.insert("enabled".into(), json!(ex.enabled));
    Value::Object(m)
}

async fn hma_get(
    State(state): State<AppState>,
    _caller: Caller<op::Exchanges>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let ex = state.engine()?.exchange_by_name(&name).await?;
    Ok(Json(hma_exchange(&ex)))
}

#[derive(Deserialize)]
struct HmaUpdate {
    enabled: Option<bool>,
}

async fn hma_update(
    State(state): State<AppState>,
    caller: Caller<op::Exchanges>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<HmaUpdate>,
) -> Result<Json<Value>, ApiError> {
    let ex = service(&state)?
        .edit(
            &caller.actor(),
            &name,
            ExchangeEdit {
                enabled: body.enabled,
                ..ExchangeEdit::default()
            },
        )
        .await?;
    Ok(Json(hma_exchange(&ex)))
}

async fn hma_delete(
    State(state): State<AppState>,
    caller: Caller<op::Exchanges>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    service(&state)?.remove(&caller.actor(), &name).await?;
    Ok(Json(json!({"message": "Exchange deleted"})))
}

/// Whether the last fetch of an exchange succeeded (`None`: never
/// fetched). One answer for HMA's status and the `failing` gauge.
fn last_fetch_ok(s: &echotrace_engine::exchange::ExchangeStatus) -> Option<bool> {
    match (s.last_success_at, s.last_error_at) {
        (Some(ok), Some(err)) => Some(ok >= err),
        (Some(_), None) => Some(true),
        (None, Some(_)) => Some(false),
        (None, None) => None,
    }
}

async fn hma_status(
    State(state): State<AppState>,
    _caller: Caller<op::Exchanges>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let ex = state.engine()?.exchange_by_name(&name).await?;
    let s = &ex.status;
    let secs = |ms: Option<i64>| ms.map(|m| m / 1000).unwrap_or(0);
    let succeeded = last_fetch_ok(s) == Some(true);
    Ok(Json(json!({
        "checkpoint_ts": secs(s.upstream_at),
        "running_fetch_start_ts": s.running_since.map(|m| m / 1000),
        "last_fetch_complete_ts": secs(s.last_success_at.max(s.last_error_at)),
        "last_fetch_succeeded": succeeded,
        "up_to_date": succeeded && !s.full_fetch && s.lag_ms.is_some_and(|l| l < 2 * ex.poll_interval_ms.max(60_000)),
        "fetched_items": s.upstream_live,
    })))
}

// ----- provenance in match results -----------------------------------------------

/// Add `provenance` (the exchange records behind each matched item) to
/// every match object under `keys` of a JSON response.
pub(crate) async fn attach_provenance(
    engine: &Engine,
    out: &mut Value,
    keys: &[&str],
) -> Result<(), ApiError> {
    let mut ids = Vec::new();
    for k in keys {
        if let Some(Value::Array(list)) = out.get(*k) {
            ids.extend(list.iter().filter_map(|m| m.get("content_id")?.as_i64()));
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    let prov = engine.provenance(&ids).await?;
    for k in keys {
        if let Some(Value::Array(list)) = out.get_mut(*k) {
            for m in list.iter_mut() {
                let cid = m.get("content_id").and_then(Value::as_i64);
                if let (Some(cid), Value::Object(obj)) = (cid, m) {
                    obj.insert(
                        "provenance".into(),
                        json!(prov.get(&cid).cloned().unwrap_or_default()),
                    );
                }
            }
        }
    }
    Ok(())
}

/// Provenance of matched items, by content id (HMA shapes).
pub(crate) async fn provenance_of(
    engine: &Engine,
    matches: &[MatchRecord],
) -> Result<std::collections::HashMap<i64, Vec<echotrace_engine::exchange::Provenance>>, ApiError> {
    let ids: Vec<i64> = matches.iter().map(|m| m.content_id).collect();
    Ok(engine.provenance(&ids).await?)
}

// ----- metrics ---------------------------------------------------------------------

/// Prometheus series of every exchange (appended to `/metrics`).
pub(crate) async fn metrics_text(state: &AppState) -> String {
    use std::fmt::Write as _;
    let Ok(engine) = state.engine() else {
        return String::new();
    };
    let Ok(list) = engine.list_exchanges().await else {
        return String::new();
    };
    let mut out = String::new();
    let series: [(&str, &str, &str); 7] = [
        (
            "echotrace_exchange_records",
            "gauge",
            "Upstream records kept (tombstones included).",
        ),
        (
            "echotrace_exchange_items",
            "gauge",
            "Records backing bank items.",
        ),
        (
            "echotrace_exchange_lag_seconds",
            "gauge",
            "How far the local copy may be behind upstream.",
        ),
        (
            "echotrace_exchange_last_success_timestamp_seconds",
            "gauge",
            "End of the last successful fetch.",
        ),
        (
            "echotrace_exchange_fetched_records_total",
            "counter",
            "Records fetched.",
        ),
        (
            "echotrace_exchange_malformed_records_total",
            "counter",
            "Upstream records skipped as malformed.",
        ),
        (
            "echotrace_exchange_failing",
            "gauge",
            "1 when the last fetch failed.",
        ),
    ];
    for (i, (name, kind, help)) in series.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for ex in &list {
            let s = &ex.status;
            let failing = last_fetch_ok(s) == Some(false);
            let v: f64 = match i {
                0 => s.records as f64,
                1 => s.applied as f64,
                2 => s.lag_ms.unwrap_or(0) as f64 / 1000.0,
                3 => s.last_success_at.unwrap_or(0) as f64 / 1000.0,
                4 => s.fetched_total as f64,
                5 => s.malformed_total as f64,
                _ => f64::from(u8::from(failing)),
            };
            let _ = writeln!(
                out,
                "{name}{{exchange=\"{}\",api=\"{}\"}} {v}",
                ex.name.replace(['"', '\\', '\n'], "_"),
                ex.api
            );
        }
    }
    out
}

/// `(method, path, tag, summary, role)` rows for `/openapi.json`.
pub(crate) const OPENAPI: &[(&str, &str, &str, &str, &str)] = &[
    ("get", "/v1/exchanges/apis", "Exchanges", "Exchange APIs with their config and credential fields", "admin|curator"),
    ("get", "/v1/exchanges/apis/{api}/credentials", "Exchanges", "Whether an API's shared credentials are set (never the credentials)", "admin"),
    ("put", "/v1/exchanges/apis/{api}/credentials", "Exchanges", "Set an API's shared credentials ({\"credentials\": {...}}; sealed at rest)", "admin"),
    ("delete", "/v1/exchanges/apis/{api}/credentials", "Exchanges", "Remove an API's shared credentials", "admin"),
    ("get", "/v1/exchanges", "Exchanges", "List exchanges with their status", "admin|curator"),
    ("post", "/v1/exchanges", "Exchanges", "Create an exchange (name, api, config, credentials, policy, live, poll_interval_secs, bank)", "admin|curator"),
    ("get", "/v1/exchanges/{name}", "Exchanges", "An exchange: config, policy, status", "admin|curator"),
    ("patch", "/v1/exchanges/{name}", "Exchanges", "Change enabled, live, policy, config, credentials or poll interval", "admin|curator"),
    ("delete", "/v1/exchanges/{name}", "Exchanges", "Delete an exchange, its items and (unless shared) its bank", "admin|curator"),
    ("get", "/v1/exchanges/{name}/status", "Exchanges", "Fetch status: last success, last error, checkpoint, records, lag", "admin|curator"),
    ("post", "/v1/exchanges/{name}/fetch", "Exchanges", "Fetch one round now (409 while another worker fetches it, or while the exchange lacks credentials or config; 502 when the upstream fails)", "admin|curator"),
    ("get", "/v1/exchanges/{name}/checksum", "Exchanges", "SHA-256 over the sorted live (type, value) set of the exchange's records", "admin|curator"),
    ("post", "/v1/exchanges/{name}/dry-run", "Exchanges", "Would add N, delete M: the effect of a policy ({\"policy\": {...}})", "admin|curator"),
    ("get", "/v1/feeds", "Feeds", "Feeds the caller may read", "admin|curator|partner"),
    ("get", "/v1/feeds/{bank}", "Feeds", "Records after a cursor (after, limit ≤ 10000, wait ≤ 60 s long-poll); 410 when the cursor is past the tombstone horizon", "admin|curator|partner"),
    ("put", "/v1/feeds/{bank}", "Feeds", "Publish a bank to partner keys ({\"partners\": [key names], \"horizon_days\": 180})", "admin"),
    ("delete", "/v1/feeds/{bank}", "Feeds", "Stop publishing a bank", "admin"),
    ("get", "/v1/feeds/{bank}/snapshot", "Feeds", "The live set as JSONL (X-Echotrace-Cursor: the cursor to continue from)", "admin|curator|partner"),
    ("get", "/v1/feeds/{bank}/checksum", "Feeds", "SHA-256 over the sorted live (type, value) set at the head cursor", "admin|curator|partner"),
    ("get", "/v1/feeds/{bank}/opinions", "Feeds", "Opinions partners posted on the feed's records", "admin|curator"),
    ("post", "/v1/feeds/{bank}/opinions", "Feeds", "Post opinions ({\"opinions\": [{signal_type, value, category, tags}]})", "admin|curator|partner"),
    ("get", "/c/exchanges/apis", "HMA compatibility", "HMA: exchange API names", "admin|curator"),
    ("get", "/c/exchanges/api/{api}", "HMA compatibility", "HMA: whether an API's credentials are set", "admin"),
    ("post", "/c/exchanges/api/{api}", "HMA compatibility", "HMA: set an API's credentials ({\"credential_json\": {...}})", "admin"),
    ("get", "/c/exchanges/api/{api}/schema", "HMA compatibility", "HMA: config and credential fields of an API", "admin|curator"),
    ("get", "/c/exchanges", "HMA compatibility", "HMA: exchange names", "admin|curator"),
    ("post", "/c/exchanges", "HMA compatibility", "HMA: create an exchange and its bank ({bank, api, api_json})", "admin|curator"),
    ("get", "/c/exchange/{name}", "HMA compatibility", "HMA: an exchange's config", "admin|curator"),
    ("put", "/c/exchange/{name}", "HMA compatibility", "HMA: enable or disable ({\"enabled\": bool})", "admin|curator"),
    ("delete", "/c/exchange/{name}", "HMA compatibility", "HMA: delete an exchange", "admin|curator"),
    ("get", "/c/exchange/{name}/status", "HMA compatibility", "HMA: fetch status", "admin|curator"),
];
