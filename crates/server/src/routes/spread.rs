//! Spread tracking over HTTP: variant clusters, liveness, takedown
//! notices, survival curves and the transparency report. Thin: parse,
//! check the role, call `echotrace_spread`, shape JSON.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use echotrace_spread::report::{self, ReportOptions};
use echotrace_spread::{cluster, notice, SpreadError};
use echotrace_store::NoticeQuery;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{next_cursor, page_limit, LimitQuery};
use crate::auth::{op, Caller};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::AppState;

/// `(method, path, tag, summary, role)` rows for `/openapi.json`.
pub(crate) const OPENAPI: &[(&str, &str, &str, &str, &str)] = &[
    (
        "get",
        "/v1/reports/transparency",
        "Spread",
        "Transparency report for copies first seen in [from, to): ?from=&to= (YYYY-MM-DD, \
         RFC 3339 UTC or Unix ms; default the last 30 days), format=json|csv|html, redact=true, \
         group_prefix=group:",
        "reviewer",
    ),
    (
        "get",
        "/v1/survival",
        "Spread",
        "Kaplan-Meier time-to-removal by=platform|group|content_type|notice, with a log-rank \
         test between a= and b= (default the two largest strata); from/to as for reports",
        "reviewer",
    ),
    (
        "get",
        "/v1/clusters",
        "Spread",
        "Variant clusters (bank item + its sightings), largest first",
        "reviewer",
    ),
    (
        "get",
        "/v1/clusters/{content_id}",
        "Spread",
        "One cluster: sightings with liveness, hosts, platforms, timeline",
        "reviewer",
    ),
    (
        "get",
        "/v1/liveness/{sighting_id}",
        "Spread",
        "A sighting's liveness, its check outcomes and confirmed removals",
        "reviewer",
    ),
    (
        "post",
        "/v1/notices",
        "Spread",
        "Record a takedown notice {channel, sighting_ids, platform?, reference?, sent_at?, \
         note?}; queues the notice.created webhook event",
        "reviewer",
    ),
    (
        "get",
        "/v1/notices",
        "Spread",
        "List notices (?platform=&sighting=&cursor=&limit=)",
        "reviewer",
    ),
    (
        "get",
        "/v1/notices/{id}",
        "Spread",
        "A notice with its sightings and evidence references",
        "reviewer",
    ),
    (
        "get",
        "/v1/notices/{id}/export",
        "Spread",
        "Export a notice: ?format=text|json",
        "reviewer",
    ),
    (
        "post",
        "/v1/notices/{id}/response",
        "Spread",
        "Record the platform's response {response: removed|rejected|no_response, responded_at?}",
        "reviewer",
    ),
];

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/reports/transparency", get(transparency))
        .route("/v1/survival", get(survival))
        .route("/v1/clusters", get(list_clusters))
        .route("/v1/clusters/{content_id}", get(get_cluster))
        .route("/v1/liveness/{sighting_id}", get(liveness))
        .route("/v1/notices", post(create_notice).get(list_notices))
        .route("/v1/notices/{id}", get(get_notice))
        .route("/v1/notices/{id}/export", get(export_notice))
        .route("/v1/notices/{id}/response", post(respond_notice))
}

impl From<SpreadError> for ApiError {
    fn from(e: SpreadError) -> Self {
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match &e {
            SpreadError::Internal(detail) => {
                eprintln!("echotrace-server: internal error: {detail}");
                "internal error".to_string()
            }
            SpreadError::NotFound(m) | SpreadError::InvalidInput(m) => m.clone(),
        };
        ApiError::new(status, e.code(), message)
    }
}

fn store(state: &AppState) -> Result<echotrace_store::Store, ApiError> {
    Ok(state.engine()?.store().clone())
}

/// The report window of a query (default: the 30 days before now).
fn window(from: Option<&str>, to: Option<&str>) -> Result<(i64, i64), ApiError> {
    use echotrace_spread::time::{self, WindowError};
    time::window(from, to, echotrace_store::now_ms()).map_err(|e| match e {
        WindowError::Unparsed(field) => {
            ApiError::bad_request(format!("\"{field}\" must be {}", time::TIME_FORMS))
        }
        WindowError::Order => ApiError::bad_request("\"to\" must be after \"from\""),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
    redact: Option<bool>,
    group_prefix: Option<String>,
}

fn options(
    q_from: Option<&str>,
    q_to: Option<&str>,
    prefix: Option<&str>,
) -> Result<ReportOptions, ApiError> {
    let (from, to) = window(q_from, q_to)?;
    let mut opts = ReportOptions::new(from, to);
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > 100 {
            return Err(ApiError::bad_request(
                "\"group_prefix\" must be 1-100 characters",
            ));
        }
        opts.group_prefix = p.to_string();
    }
    Ok(opts)
}

async fn transparency(
    State(state): State<AppState>,
    _caller: Caller<op::ReadMatches>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let format = q.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "csv" | "html") {
        return Err(ApiError::bad_request(
            "\"format\" must be json, csv or html",
        ));
    }
    let mut opts = options(
        q.from.as_deref(),
        q.to.as_deref(),
        q.group_prefix.as_deref(),
    )?;
    opts.redact = q.redact.unwrap_or(false);
    let r = report::build(&store(&state)?, &opts).await?;
    Ok(match format {
        "csv" => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report::to_csv(&r),
        )
            .into_response(),
        "html" => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'",
                ),
            ],
            echotrace_spread::html::render(&r),
        )
            .into_response(),
        _ => Json(json!(r)).into_response(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SurvivalQuery {
    by: Option<String>,
    from: Option<String>,
    to: Option<String>,
    a: Option<String>,
    b: Option<String>,
    group_prefix: Option<String>,
}

async fn survival(
    State(state): State<AppState>,
    _caller: Caller<op::ReadMatches>,
    ApiQuery(q): ApiQuery<SurvivalQuery>,
) -> Result<Json<Value>, ApiError> {
    let by = q.by.as_deref().unwrap_or("platform");
    let by_key = report::Stratum::parse(by).ok_or_else(|| {
        ApiError::bad_request("\"by\" must be platform, group, content_type or notice")
    })?;
    let mut opts = options(
        q.from.as_deref(),
        q.to.as_deref(),
        q.group_prefix.as_deref(),
    )?;
    let pair = match (q.a, q.b) {
        (Some(a), Some(b)) => Some((a, b)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "give both \"a\" and \"b\" to compare two strata",
            ))
        }
    };
    opts.compare = pair.clone().map(|(a, b)| (by_key, a, b));
    let r = report::build(&store(&state)?, &opts).await?;
    let strata = r.breakdown(by_key);
    let test = match &pair {
        Some((a, b)) => r
            .logrank
            .iter()
            .find(|l| l.between == by_key.as_str() && &l.a == a && &l.b == b)
            .cloned(),
        None => r
            .logrank
            .iter()
            .find(|l| l.between == by_key.as_str())
            .cloned(),
    };
    Ok(Json(json!({
        "by": by_key.as_str(),
        "from": r.from,
        "to": r.to,
        "overall": r.overall,
        "strata": strata,
        "logrank": test,
    })))
}

async fn list_clusters(
    State(state): State<AppState>,
    _caller: Caller<op::ReadMatches>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    let list = cluster::list(&store(&state)?, i64::from(page_limit(q.limit))).await?;
    Ok(Json(json!({ "clusters": list })))
}

async fn get_cluster(
    State(state): State<AppState>,
    _caller: Caller<op::ReadMatches>,
    ApiPath(content_id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let c = cluster::get(&store(&state)?, content_id).await?;
    Ok(Json(json!(c)))
}

async fn liveness(
    State(state): State<AppState>,
    _caller: Caller<op::ReadMatches>,
    ApiPath(sighting_id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let v = echotrace_spread::liveness_view(&store(&state)?, sighting_id).await?;
    Ok(Json(json!(v)))
}

async fn create_notice(
    State(state): State<AppState>,
    caller: Caller<op::Decide>,
    ApiJson(body): ApiJson<notice::NoticeRequest>,
) -> Result<Response, ApiError> {
    let n = notice::create(&store(&state)?, &caller.actor(), body).await?;
    Ok((StatusCode::CREATED, Json(json!(n))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticesQuery {
    platform: Option<String>,
    sighting: Option<i64>,
    cursor: Option<i64>,
    limit: Option<u32>,
}

async fn list_notices(
    State(state): State<AppState>,
    _caller: Caller<op::ReadMatches>,
    ApiQuery(q): ApiQuery<NoticesQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit);
    let rows = notice::list(
        &store(&state)?,
        &NoticeQuery {
            platform: q.platform.filter(|p| !p.is_empty()),
            sighting_id: q.sighting,
            before_id: q.cursor,
            limit: i64::from(limit),
            ..NoticeQuery::default()
        },
    )
    .await?;
    let next = next_cursor(&rows, limit, |n| n.id);
    let notices: Vec<Value> = rows.iter().map(notice::row_json).collect();
    Ok(Json(json!({"notices": notices, "next_cursor": next})))
}

async fn get_notice(
    State(state): State<AppState>,
    _caller: Caller<op::ReadMatches>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(notice::get(&store(&state)?, id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    format: Option<String>,
}

async fn export_notice(
    State(state): State<AppState>,
    _caller: Caller<op::ReadMatches>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = notice::ExportFormat::parse(q.format.as_deref().unwrap_or("text"))
        .ok_or_else(|| ApiError::bad_request("\"format\" must be text or json"))?;
    let n = notice::get(&store(&state)?, id).await?;
    let ct = match format {
        notice::ExportFormat::Text => "text/plain; charset=utf-8",
        notice::ExportFormat::Json => "application/json",
    };
    Ok(([(header::CONTENT_TYPE, ct)], notice::export(&n, format)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseBody {
    response: String,
    #[serde(default)]
    responded_at: Option<i64>,
}

async fn respond_notice(
    State(state): State<AppState>,
    caller: Caller<op::Decide>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ResponseBody>,
) -> Result<Json<Value>, ApiError> {
    let row = notice::respond(
        &store(&state)?,
        &caller.actor(),
        id,
        &body.response,
        body.responded_at,
    )
    .await?;
    Ok(Json(notice::row_json(&row)))
}
