//! `/v1/sources`, `/v1/sightings` and `/v1/platforms`: the collector's
//! sources (curators and admins configure them; every change audited),
//! the sightings it recorded (filters by bank item, source, host,
//! platform, matched and time), and the host → platform table. Fetching
//! runs in collector processes (`echotrace collect run`, or `serve
//! --collect`); `POST /v1/sources/{name}/run` queues a source's seeds for
//! them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use echotrace_collector::registry;
use echotrace_collector::views::{list_sightings, sighting_detail, SightingFilter};
use echotrace_collector::CollectorError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::page_limit;
use crate::auth::{op, Caller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::AppState;

/// `(method, path, tag, summary, role)` rows for `/openapi.json`.
pub(crate) const OPENAPI: &[(&str, &str, &str, &str, &str)] = &[
    ("post", "/v1/sources", "Collector", "Add a collector source", "curator"),
    ("get", "/v1/sources", "Collector", "List sources with their status", "curator|reviewer"),
    ("get", "/v1/sources/{name}", "Collector", "Get a source with its status", "curator|reviewer"),
    ("patch", "/v1/sources/{name}", "Collector", "Change a source's config or enabled flag", "curator"),
    ("delete", "/v1/sources/{name}", "Collector", "Delete a source (its sightings stay)", "curator"),
    ("post", "/v1/sources/{name}/run", "Collector", "Queue a source's seeds for the collector processes (202)", "curator"),
    (
        "get",
        "/v1/sightings",
        "Collector",
        "List sightings, newest first; query: url, content_id (bank item), source, host, platform, matched, from, to (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]Z or Unix ms), cursor, limit",
        "reviewer|curator",
    ),
    ("get", "/v1/sightings/{id}", "Collector", "A sighting with signals, matches, attributes, parent chain and WARC evidence", "reviewer|curator"),
    ("get", "/v1/platforms", "Collector", "The host -> platform table (operator and built-in)", "curator|reviewer"),
    ("post", "/v1/platforms", "Collector", "Add or replace a host -> platform entry", "curator"),
];

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sources", post(create_source).get(list_sources))
        .route(
            "/v1/sources/{name}",
            get(get_source).patch(update_source).delete(delete_source),
        )
        .route("/v1/sources/{name}/run", post(run_source))
        .route("/v1/sightings", get(list))
        .route("/v1/sightings/{id}", get(get_one))
        .route("/v1/platforms", get(list_platforms).post(set_platform))
}

/// A collector error as an API error (internal details logged, not sent).
pub(crate) fn collector_error(e: CollectorError) -> ApiError {
    match e {
        CollectorError::Invalid(m) | CollectorError::Import(m) => ApiError::bad_request(m),
        CollectorError::NotFound(m) => ApiError::not_found(format!("{m} not found")),
        CollectorError::Conflict(m) | CollectorError::Busy(m) => {
            ApiError::new(StatusCode::CONFLICT, "conflict", m)
        }
        CollectorError::Engine(e) => e.into(),
        CollectorError::Store(e) => echotrace_engine::EngineError::from(e).into(),
        CollectorError::Fetch(e) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "fetch_failed", e.to_string())
        }
        CollectorError::Warc(e) => {
            eprintln!("echotrace-server: {e}");
            ApiError::internal("internal error")
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSource {
    name: String,
    kind: String,
    #[serde(default)]
    config: Option<Value>,
}

async fn create_source(
    State(state): State<AppState>,
    caller: Caller<op::WriteBanks>,
    ApiJson(body): ApiJson<CreateSource>,
) -> Result<Response, ApiError> {
    let engine = state.engine()?;
    let config = body.config.map(|c| c.to_string()).unwrap_or_default();
    let view = registry::add_source(
        engine.store(),
        &caller.actor(),
        &body.name,
        &body.kind,
        &config,
    )
    .await
    .map_err(collector_error)?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn list_sources(
    State(state): State<AppState>,
    _caller: Caller<op::ReadBanks>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine()?;
    let list = registry::list_sources(engine.store())
        .await
        .map_err(collector_error)?;
    Ok(Json(json!({ "sources": list })))
}

async fn get_source(
    State(state): State<AppState>,
    _caller: Caller<op::ReadBanks>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine()?;
    let view = registry::get_source(engine.store(), &name)
        .await
        .map_err(collector_error)?;
    Ok(Json(json!(view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateSource {
    #[serde(default)]
    config: Option<Value>,
    #[serde(default)]
    enabled: Option<bool>,
}

async fn update_source(
    State(state): State<AppState>,
    caller: Caller<op::WriteBanks>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateSource>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine()?;
    let config = body.config.map(|c| c.to_string());
    let view = registry::update_source(
        engine.store(),
        &caller.actor(),
        &name,
        config.as_deref(),
        body.enabled,
    )
    .await
    .map_err(collector_error)?;
    Ok(Json(json!(view)))
}

async fn delete_source(
    State(state): State<AppState>,
    caller: Caller<op::WriteBanks>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let engine = state.engine()?;
    registry::delete_source(engine.store(), &caller.actor(), &name)
        .await
        .map_err(collector_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn run_source(
    State(state): State<AppState>,
    caller: Caller<op::WriteBanks>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let engine = state.engine()?;
    let queued = registry::queue_seeds(engine.store(), &caller.actor(), &name)
        .await
        .map_err(collector_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "source": name, "queued": queued })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SightingsQuery {
    /// A URL (compared canonically).
    url: Option<String>,
    /// Bank item (content id): its variant cluster.
    content_id: Option<i64>,
    source: Option<String>,
    host: Option<String>,
    platform: Option<String>,
    matched: Option<bool>,
    /// First seen at or after (a date, a UTC time or Unix ms).
    from: Option<String>,
    /// First seen before (a date, a UTC time or Unix ms).
    to: Option<String>,
    cursor: Option<i64>,
    limit: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    _caller: Caller<op::ReadMatches>,
    ApiQuery(q): ApiQuery<SightingsQuery>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine()?;
    let filter = SightingFilter {
        url: q.url.filter(|s| !s.trim().is_empty()),
        content_id: q.content_id,
        source: q.source.filter(|s| !s.trim().is_empty()),
        host: q.host.filter(|s| !s.trim().is_empty()),
        platform: q.platform.filter(|s| !s.trim().is_empty()),
        matched: q.matched,
        from: time_param("from", q.from.as_deref())?,
        to: time_param("to", q.to.as_deref())?,
        before: q.cursor,
        limit: page_limit(q.limit),
    };
    let (items, next) = list_sightings(engine.store(), &filter)
        .await
        .map_err(collector_error)?;
    Ok(Json(json!({ "sightings": items, "next_cursor": next })))
}

/// A `from`/`to` query parameter in any of the report's time forms
/// (blank: none).
fn time_param(field: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    use echotrace_spread::time::{parse_time, TIME_FORMS};
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse_time(s)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("\"{field}\" must be {TIME_FORMS}"))),
    }
}

async fn get_one(
    State(state): State<AppState>,
    _caller: Caller<op::ReadMatches>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine()?;
    let detail = sighting_detail(engine.store(), id)
        .await
        .map_err(collector_error)?;
    Ok(Json(json!(detail)))
}

async fn list_platforms(
    State(state): State<AppState>,
    _caller: Caller<op::ReadBanks>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine()?;
    let operator: Vec<Value> = engine
        .store()
        .host_platforms()
        .await
        .map_err(|e| collector_error(e.into()))?
        .into_iter()
        .map(|(host, platform)| json!({"host": host, "platform": platform}))
        .collect();
    let builtin: Vec<Value> = echotrace_collector::platform::BUILTIN
        .iter()
        .map(|(h, p)| json!({"host": h, "platform": p}))
        .collect();
    Ok(Json(json!({ "operator": operator, "builtin": builtin })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPlatform {
    host: String,
    platform: String,
}

async fn set_platform(
    State(state): State<AppState>,
    caller: Caller<op::WriteBanks>,
    ApiJson(body): ApiJson<SetPlatform>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine()?;
    registry::set_platform(engine.store(), &caller.actor(), &body.host, &body.platform)
        .await
        .map_err(collector_error)?;
    Ok(Json(
        json!({"host": body.host.trim().to_ascii_lowercase(), "platform": body.platform.trim()}),
    ))
}
