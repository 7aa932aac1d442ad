//! Local mock servers that follow the documented wire formats of Tech
//! Against Terrorism's TCAP API and Meta's ThreatExchange Graph API (as
//! python-threatexchange's clients call them), with injectable faults:
//! 429 with `Retry-After`, 500s, token expiry, malformed records and
//! hostile bodies. Used by `tests/adapters.rs` and by
//! `bench/src/bin/exchange_mocks.rs`, which serves them to
//! python-threatexchange itself (`bench/run_exchange.sh mocks`) to prove
//! they are faithful: pytx must fetch the same records we do.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// One injected fault, consumed by the next data request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// No fault: serve this request normally.
    Pass,
    /// 429 with `Retry-After: secs`.
    TooMany(u64),
    /// 500.
    ServerError,
    /// 200 with an HTML body.
    NotJson,
    /// 200 claiming a 5 GB body, then streaming zeros.
    Huge,
    /// 200 with a chunked body that never ends.
    Endless,
    /// 302 to this URL.
    Redirect(String),
}

fn fault_response(f: &Fault) -> Response {
    match f {
        Fault::Pass => (StatusCode::INTERNAL_SERVER_ERROR, "pass").into_response(),
        Fault::TooMany(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            "slow down",
        )
            .into_response(),
        Fault::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Fault::NotJson => (
            StatusCode::OK,
            [("content-type", "text/html")],
            "<html><body>maintenance</body></html>",
        )
            .into_response(),
        Fault::Huge => {
            let stream = futures_util::stream::repeat_with(|| {
                Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'['; 64 * 1024]))
            })
            .take(80_000);
            (
                StatusCode::OK,
                [
                    ("content-length", "5368709120"),
                    ("content-type", "application/json"),
                ],
                Body::from_stream(stream),
            )
                .into_response()
        }
        Fault::Endless => {
            let stream = futures_util::stream::repeat_with(|| {
                Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; 64 * 1024]))
            });
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        Fault::Redirect(to) => (StatusCode::FOUND, [("location", to.clone())], "").into_response(),
    }
}

use futures_util::StreamExt as _;

/// Start a router on 127.0.0.1 (random port); returns the base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// Parse a raw query leniently (pytx's TAT client sends a URL inside the
/// query string: `all?https://host/…/all?after=…&limit=…&offset=…&order=asc`).
fn query_map(raw: Option<String>) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for pair in raw.unwrap_or_default().split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = k.rsplit('?').next().unwrap_or(k);
        let v = percent_decode(v);
        m.insert(k.to_string(), v);
    }
    m
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match h.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ----- Tech Against Terrorism ------------------------------------------------------

/// One hash-list entry as TCAP serves it.
#[derive(Clone, Debug)]
pub struct TatRecord {
    pub id: i64,
    pub hash_digest: String,
    pub algorithm: String,
    pub ideology: String,
    pub file_type: String,
    pub deleted: bool,
    pub updated_on: f64,
    /// Serve this one with a broken shape (a malformed record).
    pub broken: bool,
    /// An extra-long ideology (a hostile record).
    pub huge_tag: bool,
}

#[derive(Default)]
pub struct TatState {
    pub base: String,
    pub username: String,
    pub password: String,
    pub records: Vec<TatRecord>,
    pub urls: Vec<Value>,
    /// A token stops working after this many data requests (0 = never).
    pub token_uses: u32,
    tokens: HashMap<String, u32>,
    pub issued: u32,
    pub faults: VecDeque<Fault>,
    pub feedback: Vec<Value>,
    pub requests: u32,
    pub default_limit: usize,
}

pub type Tat = Arc<Mutex<TatState>>;

pub async fn tat(records: Vec<TatRecord>) -> (String, Tat) {
    let state: Tat = Arc::new(Mutex::new(TatState {
        username: "analyst".into(),
        password: "correct horse".into(),
        records,
        default_limit: 1000,
        ..TatState::default()
    }));
    let router = Router::new()
        .route("/token-auth/tcap/", post(tat_auth))
        .route("/api/hash-list/v2/all", get(tat_hashes))
        .route("/api/hash-list/v2/feedback/categories", get(tat_categories))
        .route("/api/hash-list/v2/feedback", post(tat_feedback))
        .route("/integrations/api/jigsaw/urls/", get(tat_urls))
        .with_state(state.clone());
    let base = serve(router).await;
    state.lock().unwrap().base = base.clone();
    (base, state)
}

fn form(body: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

async fn tat_auth(State(st): State<Tat>, body: axum::body::Bytes) -> Response {
    let f = form(&body);
    let mut s = st.lock().unwrap();
    if f.get("username") != Some(&s.username) || f.get("password") != Some(&s.password) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"non_field_errors": ["Unable to log in"]})),
        )
            .into_response();
    }
    s.issued += 1;
    let token = format!("tok-{}", s.issued);
    s.tokens.insert(token.clone(), 0);
    Json(json!({"token": token, "user": {"username": s.username}})).into_response()
}

#[allow(clippy::result_large_err)]
fn tat_check(s: &mut TatState, h: &HeaderMap) -> Result<(), Response> {
    let token = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let limit = s.token_uses;
    match s.tokens.get_mut(&token) {
        Some(uses) if limit == 0 || *uses < limit => {
            *uses += 1;
            Ok(())
        }
        _ => Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"detail": "Given token not valid for any token type"})),
        )
            .into_response()),
    }
}

fn tat_entry(r: &TatRecord) -> Value {
    if r.broken {
        return json!({"id": r.id, "hash_digest": 12345, "algorithm": null});
    }
    let ideology = if r.huge_tag {
        "x".repeat(10 << 20)
    } else {
        r.ideology.clone()
    };
    json!({
        "hash_digest": r.hash_digest,
        "algorithm": r.algorithm,
        "ideology": ideology,
        "file_type": r.file_type,
        "deleted": r.deleted,
        "updated_on": r.updated_on,
        "created_on": "2024-01-01T00:00:00Z",
        "id": r.id,
    })
}

async fn tat_hashes(State(st): State<Tat>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let mut s = st.lock().unwrap();
    s.requests += 1;
    if let Err(r) = tat_check(&mut s, &headers) {
        return r;
    }
    if let Some(f) = s.faults.pop_front().filter(|f| !matches!(f, Fault::Pass)) {
        return fault_response(&f);
    }
    let q = query_map(q);
    let limit = q
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(s.default_limit);
    let offset: usize = q.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let after = q.get("after").cloned().unwrap_or_default();
    let ideology = q.get("ideology").cloned().unwrap_or_else(|| "all".into());
    let after_key = after.split_once(',').and_then(|(t, id)| {
        Some((
            t.trim().parse::<f64>().ok()?,
            id.trim().parse::<i64>().ok()?,
        ))
    });
    let mut rows: Vec<&TatRecord> = s
        .records
        .iter()
        .filter(|r| ideology == "all" || r.ideology == ideology)
        .filter(|r| match after_key {
            Some((t, id)) => (r.updated_on, r.id) > (t, id),
            None => true,
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.updated_on, a.id)
            .partial_cmp(&(b.updated_on, b.id))
            .unwrap()
    });
    let count = rows.len();
    let page: Vec<&TatRecord> = rows.into_iter().skip(offset).take(limit).collect();
    let checkpoint = page
        .last()
        .map(|r| format!("{},{}", r.updated_on, r.id))
        .unwrap_or_default();
    let next = (offset + page.len() < count).then(|| {
        format!(
            "{}/api/hash-list/v2/all?after={}&limit={limit}&offset={}&order=asc&ideology={}",
            s.base,
            percent_encode(&after),
            offset + page.len(),
            percent_encode(&ideology)
        )
    });
    Json(json!({
        "count": count,
        "next": next,
        "previous": null,
        "checkpoint": checkpoint,
        "results": page.iter().map(|r| tat_entry(r)).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn tat_categories(State(st): State<Tat>, headers: HeaderMap) -> Response {
    let mut s = st.lock().unwrap();
    if let Err(r) = tat_check(&mut s, &headers) {
        return r;
    }
    Json(json!({
        "count": 3, "next": null, "previous": null,
        "results": [
            {"id": 1, "name": "FALSE_POSITIVE", "description": "Bad hash quality or Non TVEC"},
            {"id": 2, "name": "INCLUSION", "description": "Why is this included ?"},
            {"id": 5, "name": "MATCH", "description": "Matched on platform"}
        ]
    }))
    .into_response()
}

async fn tat_feedback(
    State(st): State<Tat>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut s = st.lock().unwrap();
    if let Err(r) = tat_check(&mut s, &headers) {
        return r;
    }
    s.feedback.push(body);
    (StatusCode::CREATED, Json(json!({"status": "ok"}))).into_response()
}

async fn tat_urls(State(st): State<Tat>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let mut s = st.lock().unwrap();
    if let Err(r) = tat_check(&mut s, &headers) {
        return r;
    }
    let q = query_map(q);
    let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
    let per = 2;
    let items: Vec<Value> = s
        .urls
        .iter()
        .skip((page - 1) * per)
        .take(per)
        .cloned()
        .collect();
    let next = (page * per < s.urls.len())
        .then(|| format!("{}/integrations/api/jigsaw/urls/?page={}", s.base, page + 1));
    Json(json!({"count": s.urls.len(), "next": next, "previous": null, "results": items}))
        .into_response()
}

/// `n` TAT records: PDQ hashes (every third an MD5 of a video), spread over
/// ideologies, one second apart.
pub fn tat_records(n: i64, pdq: impl Fn(i64) -> String) -> Vec<TatRecord> {
    (1..=n)
        .map(|i| {
            let video = i % 3 == 0;
            TatRecord {
                id: i,
                hash_digest: if video {
                    format!("{:032x}", i as u128 * 0x9e37_79b9_7f4a_7c15)
                } else {
                    pdq(i)
                },
                algorithm: if video { "MD5" } else { "PDQ" }.into(),
                ideology: if i % 2 == 0 { "islamist" } else { "far-right" }.into(),
                file_type: if video { "mp4" } else { "jpg" }.into(),
                deleted: false,
                updated_on: 1_704_085_200.0 + i as f64,
                broken: false,
                huge_tag: false,
            }
        })
        .collect()
}

// ----- ThreatExchange ---------------------------------------------------------------

/// One threat_updates entry.
#[derive(Clone, Debug)]
pub struct TeUpdate {
    pub id: i64,
    pub indicator: String,
    pub kind: String,
    pub last_updated: i64,
    pub should_delete: bool,
    /// (descriptor id, owner app id, status, tags)
    pub descriptors: Vec<(i64, i64, String, Vec<String>)>,
    pub broken: bool,
}

#[derive(Default)]
pub struct TeState {
    pub base: String,
    pub token: String,
    pub updates: Vec<TeUpdate>,
    pub faults: VecDeque<Fault>,
    pub reactions: Vec<(String, String)>,
    pub requests: u32,
}

pub type Te = Arc<Mutex<TeState>>;

/// The app token the mock accepts.
pub const TE_TOKEN: &str = "12345678|abcdefghijklmnopqrstuvwxyz012345";

pub async fn te(updates: Vec<TeUpdate>) -> (String, Te) {
    let state: Te = Arc::new(Mutex::new(TeState {
        token: TE_TOKEN.into(),
        updates,
        ..TeState::default()
    }));
    let router = Router::new()
        .route("/v21.0/{group}/threat_updates/", get(te_updates))
        .route("/v21.0/{descriptor}/", post(te_react))
        .with_state(state.clone());
    let base = serve(router).await;
    state.lock().unwrap().base = format!("{base}/v21.0");
    (format!("{base}/v21.0"), state)
}

fn te_json(u: &TeUpdate) -> Value {
    if u.broken {
        return json!({"id": u.id.to_string(), "type": "HASH_PDQ"});
    }
    let mut v = json!({
        "id": u.id.to_string(),
        "indicator": u.indicator,
        "type": u.kind,
        "last_updated": u.last_updated,
        "should_delete": u.should_delete,
    });
    if !u.should_delete {
        v["descriptors"] = json!({"data": u.descriptors.iter().map(|(id, owner, status, tags)| json!({
            "id": id.to_string(),
            "reactions": [],
            "owner": {"id": owner.to_string()},
            "tags": tags,
            "status": status,
        })).collect::<Vec<_>>()});
    }
    v
}

async fn te_updates(
    State(st): State<Te>,
    Path(group): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let mut s = st.lock().unwrap();
    s.requests += 1;
    let q = query_map(q);
    if q.get("access_token") != Some(&s.token) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}})),
        )
            .into_response();
    }
    if let Some(f) = s.faults.pop_front().filter(|f| !matches!(f, Fault::Pass)) {
        return fault_response(&f);
    }
    let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(100);
    let start: i64 = q
        .get("start_time")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let offset: usize = q.get("after").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut rows: Vec<&TeUpdate> = s
        .updates
        .iter()
        .filter(|u| u.last_updated >= start)
        .collect();
    rows.sort_by_key(|u| (u.last_updated, u.id));
    let total = rows.len();
    let page: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(limit)
        .map(|u| te_json(u))
        .collect();
    let mut body = json!({"data": page, "paging": {"cursors": {"before": "b", "after": "a"}}});
    if offset + limit < total {
        body["paging"]["next"] = json!(format!(
            "{}/{group}/threat_updates/?access_token={}&limit={limit}&start_time={start}&fields={}&after={}",
            s.base,
            percent_encode(&s.token),
            percent_encode("indicator,type,last_updated,should_delete,descriptors{id,reactions,owner{id},tags,status}"),
            offset + limit
        ));
    }
    Json(body).into_response()
}

async fn te_react(
    State(st): State<Te>,
    Path(descriptor): Path<String>,
    RawQuery(q): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    let f = form(&body);
    let mut s = st.lock().unwrap();
    let q = query_map(q);
    if q.get("access_token") != Some(&s.token) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": 190}})),
        )
            .into_response();
    }
    let reaction = f
        .get("reactions")
        .or_else(|| q.get("reactions"))
        .cloned()
        .unwrap_or_default();
    s.reactions.push((descriptor, reaction));
    Json(json!({"success": true})).into_response()
}

/// `n` ThreatExchange updates: PDQ, video MD5 and URI indicators, a few
/// tombstones, two owners with MALICIOUS / NON_MALICIOUS descriptors.
pub fn te_updates_set(n: i64, pdq: impl Fn(i64) -> String) -> Vec<TeUpdate> {
    (1..=n)
        .map(|i| {
            let (kind, indicator) = match i % 4 {
                0 => (
                    "HASH_VIDEO_MD5",
                    format!("{:032x}", i as u128 * 0x517c_c1b7_2722_0a95),
                ),
                1 => ("URI", format!("https://example.com/propaganda/{i}")),
                _ => ("HASH_PDQ", pdq(i)),
            };
            TeUpdate {
                id: 1_000 + i,
                indicator,
                kind: kind.into(),
                last_updated: 1_700_000_000 + i,
                should_delete: i % 10 == 7,
                descriptors: vec![
                    (5_000 + i, 111, "MALICIOUS".into(), vec!["terrorism".into()]),
                    (
                        6_000 + i,
                        222,
                        if i % 5 == 0 {
                            "NON_MALICIOUS"
                        } else {
                            "UNKNOWN"
                        }
                        .into(),
                        vec![],
                    ),
                ],
                broken: false,
            }
        })
        .collect()
}
