//! The review console at `/ui`: server-rendered pages for moderators and
//! curators, built on the same engine as the JSON API.
//!
//! Design decisions:
//!
//! * **Server-rendered, no build chain.** Pages are `maud` templates
//!   ([`views`]), compiled into the binary and auto-escaping; the CSS and a
//!   small vanilla script are embedded with `include_str!`. Every action is a
//!   plain HTML form, so the console works without JavaScript; the script
//!   only adds keyboard shortcuts, one-at-a-time media reveal and the undo
//!   countdown. A strict Content-Security-Policy (`'self'` only, no inline
//!   script or style) is sent with every page.
//! * **Login and CSRF** live in [`session`]: username/password (argon2,
//!   engine users), server-side sessions stored hashed, per-session CSRF
//!   tokens checked by the only extractor that can read a POST body.
//! * **Moderator wellness.** Submitted media is shown only when the operator
//!   turned retention on (`--retain-media`; hashing only by default, where
//!   cards say "media not retained"). Retained media is always rendered
//!   blurred and greyscale by default (CSS `filter`), revealed one item at a
//!   time by an explicit click or key, with per-user defaults in Settings.
//!   A retained video is never embedded: its card shows small stills of the
//!   matched frames under the same rules ([`videostrip`]), decoded on demand
//!   by the isolated ffmpeg and cached in memory only.
//! * **Undo before publishing.** The engine queues each decision's webhook
//!   event with `publish_after = now + undo window`; the console offers Undo
//!   until then ([`echotrace_engine::console::undo_decision`] withdraws the
//!   event atomically).
//! * Roles are the API's ([`echotrace_engine::Role`]); every handler checks
//!   the operation it performs, and pages hide what the role cannot do.

mod collect;
#[cfg(test)]
mod e2e;
pub mod exchanges;
pub mod ocr;
pub mod session;
pub mod spread;
pub mod textdiff;
pub mod videostrip;
pub mod views;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use echotrace_engine::console::{self as cq, MediaOwner};
use echotrace_engine::{
    Actor, BankKind, BankUpdate, ContentSource, Engine, EngineError, HashedUpload, MatchFilter,
    MatchRecord, MatchStatus, NewBank, NewContent, Operation, QueryText, Role, SignalValue,
    Thresholds, Verdict,
};
use echotrace_signals::signal::SignalType;
use echotrace_store::Store;

use crate::auth::op;
use crate::AppState;
use serde::Deserialize;

use session::{
    cookie, error_response, see_other, set_cookie, with_cookies, Authed, FormData, PostForm,
    UiPath, UiQuery, LOGIN_COOKIE, SESSION_COOKIE,
};
use views::{Evidence, Flash, Viewer};

/// Console settings chosen by the operator.
#[derive(Clone, Debug)]
pub struct UiConfig {
    /// Keep submitted media/text for review (off by default: hashing only).
    pub retain_media: bool,
    /// Always mark cookies `Secure`. They are also marked `Secure` whenever
    /// a request arrives with `X-Forwarded-Proto: https` (TLS proxy).
    pub secure_cookies: bool,
    /// How long a login lasts.
    pub session_ttl: Duration,
    /// Largest console upload (bank content, debugger).
    pub max_upload_bytes: usize,
    /// Failed logins allowed per username and per client IP within
    /// `login_window` before logins are refused with 429 (0 = unlimited).
    pub login_max_failures: usize,
    pub login_window: Duration,
    /// Decoder for video frame thumbnails (retention only): the same
    /// programs and limits as hashing by default.
    pub ffmpeg: echotrace_signals::video::FfmpegConfig,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            retain_media: false,
            secure_cookies: false,
            session_ttl: Duration::from_secs(8 * 3600),
            max_upload_bytes: 32 * 1024 * 1024,
            login_max_failures: 5,
            login_window: Duration::from_secs(300),
            ffmpeg: echotrace_signals::video::FfmpegConfig::default(),
        }
    }
}

/// Router state of the console: the server's state (whose engine is
/// attached once the indexes are loaded) and the console settings.
#[derive(Clone)]
pub struct UiState {
    pub app: AppState,
    pub config: std::sync::Arc<UiConfig>,
    /// Failed-login counters (in the database, shared by every process).
    pub throttle: std::sync::Arc<echotrace_engine::LoginThrottle>,
    /// Video frame stills (decoded on demand, cached in memory).
    pub thumbs: std::sync::Arc<videostrip::Thumbnailer>,
}

impl UiState {
    /// The engine, or a 503 page while it is still loading.
    #[allow(clippy::result_large_err)]
    pub fn engine(&self) -> Result<Engine, Response> {
        self.app.engine().cloned().map_err(|_| {
            error_response(
                None,
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is still loading its indexes; retry shortly.",
            )
        })
    }
}

/// What a handler works with: the loaded engine, its store, the settings.
pub struct Ctx {
    /// The server's state (for its bounded hashing pool).
    pub app: AppState,
    pub engine: Engine,
    pub store: Store,
    pub config: std::sync::Arc<UiConfig>,
    pub throttle: std::sync::Arc<echotrace_engine::LoginThrottle>,
    pub thumbs: std::sync::Arc<videostrip::Thumbnailer>,
}

impl axum::extract::FromRequestParts<UiState> for Ctx {
    type Rejection = Response;
    async fn from_request_parts(
        _parts: &mut axum::http::request::Parts,
        state: &UiState,
    ) -> Result<Self, Response> {
        let engine = state.engine()?;
        Ok(Ctx {
            app: state.app.clone(),
            store: engine.store().clone(),
            engine,
            config: state.config.clone(),
            throttle: state.throttle.clone(),
            thumbs: state.thumbs.clone(),
        })
    }
}

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

/// The console's routes, all under `/ui`, with settings taken from the
/// server config. Merge into the server's router.
pub fn router(app: AppState) -> Router {
    let mut config = UiConfig {
        retain_media: app.config().retain_media,
        ..UiConfig::default()
    };
    if let Some(dir) = &app.config().video_temp_dir {
        config.ffmpeg.seekable_input =
            echotrace_signals::video::SeekableInput::TempFile(dir.clone());
    }
    router_with(app, config)
}

/// Largest body of the anonymous login form (username, password, two
/// tokens, `next`): a few KiB, so anonymous clients cannot make the server
/// buffer large bodies.
pub const LOGIN_BODY_LIMIT: usize = 8 * 1024;

/// [`router`] with explicit console settings.
pub fn router_with(app: AppState, config: UiConfig) -> Router {
    // An upload larger than the whole body budget could never be admitted.
    let limit = config.max_upload_bytes.min(app.budget().bytes());
    let budget = |limit| crate::budget::BudgetLayer {
        budget: app.budget().clone(),
        limit,
    };
    let login = Router::new()
        .route("/ui/login", get(login_form).post(login_submit))
        .layer(DefaultBodyLimit::max(LOGIN_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            budget(LOGIN_BODY_LIMIT),
            crate::budget::scope,
        ));
    let uploads = budget(limit);
    let throttle =
        echotrace_engine::LoginThrottle::new(config.login_max_failures, config.login_window);
    let thumbs = videostrip::Thumbnailer::new(config.ffmpeg.clone());
    let state = UiState {
        app,
        config: std::sync::Arc::new(config),
        throttle: std::sync::Arc::new(throttle),
        thumbs: std::sync::Arc::new(thumbs),
    };
    Router::new()
        .route("/ui", get(|| async { see_other("/ui/") }))
        .route("/ui/", get(dashboard))
        .route(
            "/ui/assets/console.css",
            get(|| async { asset(CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/ui/assets/console.js",
            get(|| async { asset(JS, "text/javascript; charset=utf-8") }),
        )
        .route("/ui/logout", post(logout))
        .route("/ui/queue", get(queue))
        .route("/ui/queue/bulk", post(bulk_decide))
        .route("/ui/matches/{id}/decide", post(decide))
        .route("/ui/matches/{id}/undo", post(undo))
        .route("/ui/matches/{id}/text", get(ocr::match_text))
        .route("/ui/media/{owner}/{id}", get(media))
        .route(
            "/ui/matches/{id}/frames/{side}/{ms}",
            get(videostrip::frame_thumbnail),
        )
        .route("/ui/settings", get(settings_page).post(settings_save))
        .route("/ui/banks", get(banks_page).post(bank_create))
        .route("/ui/banks/{id}", get(bank_page).post(bank_update))
        .route("/ui/banks/{id}/content", post(content_add))
        .route("/ui/content/{id}/toggle", post(content_toggle))
        .route("/ui/debug", get(debug_page).post(debug_run))
        .route("/ui/audit", get(audit_page))
        .route("/ui/keys", get(keys_page).post(key_create))
        .route("/ui/spread", get(spread::dashboard))
        .route("/ui/spread/report.html", get(spread::report_download))
        .route("/ui/clusters/{id}", get(spread::cluster_page))
        .route("/ui/clusters/{id}/notice", post(spread::create_notice))
        .route("/ui/notices/{id}/export", get(spread::export_notice))
        .route("/ui/keys/{id}/revoke", post(key_revoke))
        .merge(exchanges::routes())
        .merge(collect::routes())
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            uploads,
            crate::budget::scope,
        ))
        .merge(login)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
               form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'";
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(csp),
    );
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

fn asset(body: &'static str, ct: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

fn page(m: maud::Markup) -> Response {
    Html(m.into_string()).into_response()
}

fn actor(a: &Authed) -> Actor {
    Actor::user(&a.session.user.username)
}

/// Map an engine error to a console error page.
fn engine_error(viewer: Option<&Viewer>, e: EngineError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match &e {
        EngineError::Internal(m) => {
            eprintln!("echotrace console: {m}");
            "Internal error; see the server log.".to_string()
        }
        other => other.to_string(),
    };
    error_response(viewer, status, &message)
}

/// Flash messages chosen by code, so no caller text is reflected.
fn flash_for(code: Option<&str>) -> Option<Flash> {
    let m = match code? {
        "confirmed" => Flash::Ok("Match confirmed. You can undo it until it is published.".into()),
        "rejected" => Flash::Ok("Match rejected. You can undo it until it is published.".into()),
        "undone" => Flash::Ok("Decision undone; the match is pending again.".into()),
        "bulk" => Flash::Ok("Selected matches decided.".into()),
        "none" => Flash::Error("Select at least one match first.".into()),
        "saved" => Flash::Ok("Saved.".into()),
        "created" => Flash::Ok("Bank created.".into()),
        "added" => Flash::Ok("Content added.".into()),
        "some_held" => {
            Flash::Ok("Content added; hashes the bank already held were skipped.".into())
        }
        "all_held" => Flash::Ok("Nothing added: the bank already held every hash.".into()),
        "held" => Flash::Ok("Nothing added: the bank already held it.".into()),
        "held_derived" => Flash::Ok(
            "The bank already held it: its item gained this file's derived hashes (robust matching).".into(),
        ),
        "toggled" => Flash::Ok("Item updated.".into()),
        "revoked" => Flash::Ok("Key revoked.".into()),
        _ => return None,
    };
    Some(m)
}

/// `?msg=`: the flash code of a page reached by a redirect.
#[derive(Deserialize, Default)]
pub(super) struct FlashQuery {
    pub(super) msg: Option<String>,
}

#[derive(Deserialize, Default)]
struct MsgQuery {
    msg: Option<String>,
    order: Option<String>,
    next: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
}

// ----- login -------------------------------------------------------------------

/// Whether cookies get the `Secure` flag for this request.
fn secure(st: &Ctx, headers: &HeaderMap) -> bool {
    st.config.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control)
                && !n.starts_with("/ui/login") =>
        {
            n.to_string()
        }
        _ => "/ui/".to_string(),
    }
}

async fn login_form(st: Ctx, headers: HeaderMap, UiQuery(q): UiQuery<MsgQuery>) -> Response {
    let existing = cookie(&headers, LOGIN_COOKIE).filter(|t| t.len() == 43);
    let (token, fresh) = match existing {
        Some(t) => (t, false),
        None => match cq::random_token() {
            Ok(t) => (t, true),
            Err(e) => return engine_error(None, e),
        },
    };
    let next = safe_next(q.next.as_deref());
    let resp = page(views::login(&token, None, &next));
    if fresh {
        with_cookies(
            resp,
            vec![set_cookie(
                LOGIN_COOKIE,
                &token,
                secure(&st, &headers),
                3600,
            )],
        )
    } else {
        resp
    }
}

async fn login_submit(st: Ctx, req: axum::extract::Request) -> Response {
    let headers = req.headers().clone();
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let ip = session::client_ip(&headers, peer);
    // The anonymous POST: the pre-login cookie is checked before the body
    // is read, and the body is capped at LOGIN_BODY_LIMIT.
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.len() != 43 {
        return session::csrf_rejection(None);
    }
    let form = match FormData::parse(req).await {
        Ok(f) => f,
        Err(e) => return e.response(None),
    };
    let presented = form
        .fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if expected.is_empty() || !cq::tokens_equal(presented, &expected) {
        return session::csrf_rejection(None);
    }
    let next = safe_next(form.get("next"));
    // No account name is longer than this (see `Engine::create_user`); a
    // longer one is cut at a char boundary for the throttle and the audit
    // log (so neither stores attacker-sized strings) and always fails.
    let raw_username = form.get("username").unwrap_or("");
    let username = truncate_at_char(raw_username, session::MAX_USERNAME_BYTES);
    let username_too_long = username.len() < raw_username.len();
    let password = form
        .fields
        .iter()
        .find(|(k, _)| k == "password")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    // Throttle before checking the password: while locked, even the right
    // password is refused, and the answer is the same for every username.
    let admitted = match st.throttle.admit(&st.store, username, &ip).await {
        Ok(a) => a,
        Err(e) => return engine_error(None, e),
    };
    let admitted = match admitted {
        Ok(a) => a,
        Err(refusal) => return refuse_login(&st, username, &ip, &refusal).await,
    };
    let verified = if username_too_long {
        Ok(None)
    } else {
        cq::verify_login(&st.store, username, password).await
    };
    let user = match verified {
        Ok(Some(u)) => {
            if let Err(e) = st.throttle.record_success(&st.store, &admitted).await {
                return engine_error(None, e);
            }
            u
        }
        Ok(None) => {
            // Already counted by `admit`.
            let detail = serde_json::json!({"username": username, "ip": ip.to_string()});
            if let Err(e) = cq::audit_event(
                &st.store,
                "anonymous",
                "console.login_failed",
                &format!("login:{username}"),
                detail,
            )
            .await
            {
                return engine_error(None, e);
            }
            return (
                StatusCode::UNAUTHORIZED,
                Html(
                    views::login(
                        &expected,
                        Some("Unknown username or wrong password."),
                        &next,
                    )
                    .into_string(),
                ),
            )
                .into_response();
        }
        Err(e) => return engine_error(None, e),
    };
    let ttl = i64::try_from(st.config.session_ttl.as_millis()).unwrap_or(8 * 3_600_000);
    let (sid, _session) = match cq::create_session(&st.store, &user, ttl).await {
        Ok(s) => s,
        Err(e) => return engine_error(None, e),
    };
    let secure = secure(&st, &headers);
    with_cookies(
        see_other(&next),
        vec![
            set_cookie(SESSION_COOKIE, &sid, secure, ttl / 1000),
            set_cookie(LOGIN_COOKIE, "", secure, 0),
        ],
    )
}

/// A throttled login: 429 with `Retry-After`, audited once per locked
/// name or address per window (across processes).
async fn refuse_login(
    st: &Ctx,
    username: &str,
    ip: &std::net::IpAddr,
    refusal: &echotrace_engine::Refusal,
) -> Response {
    let wait = refusal.retry_after_secs;
    match st.throttle.first_refusal(&st.store, refusal).await {
        Ok(false) => return session::throttled_response(wait),
        Ok(true) => {}
        Err(e) => return engine_error(None, e),
    }
    let detail = serde_json::json!({"username": username, "ip": ip.to_string(),
                                    "retry_after_secs": wait});
    if let Err(e) = cq::audit_event(
        &st.store,
        "anonymous",
        "console.login_throttled",
        &format!("login:{username}"),
        detail,
    )
    .await
    {
        return engine_error(None, e);
    }
    session::throttled_response(wait)
}

async fn logout(st: Ctx, headers: HeaderMap, _form: PostForm<op::AnyRole>) -> Response {
    if let Some(sid) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = cq::delete_session(&st.store, &sid).await {
            return engine_error(None, e);
        }
    }
    with_cookies(
        see_other("/ui/login"),
        vec![set_cookie(SESSION_COOKIE, "", secure(&st, &headers), 0)],
    )
}

// ----- dashboard ---------------------------------------------------------------

async fn dashboard(st: Ctx, auth: Authed) -> Response {
    if let Err(r) = auth.require(Operation::ReadMatches) {
        return r;
    }
    let stats = match cq::dashboard(&st.store, echotrace_store::now_ms(), 30).await {
        Ok(s) => s,
        Err(e) => return engine_error(Some(&auth.viewer), e),
    };
    let view = views::DashboardView {
        pending: stats.pending,
        confirmed: stats.confirmed,
        rejected: stats.rejected,
        per_day: stats.per_day,
        top_banks: stats.top_banks,
        top_labels: stats.top_labels,
        index_sizes: stats.signals_per_type,
        retain_media: st.config.retain_media,
    };
    page(views::dashboard(&auth.viewer, &view))
}

// ----- review queue ------------------------------------------------------------

fn threshold_label(bank_thresholds: &Thresholds, t: SignalType) -> (f64, String) {
    let (v, src) = match bank_thresholds.0.get(t.as_str()) {
        Some(v) => (*v, "bank"),
        None => (echotrace_engine::default_threshold(t), "default"),
    };
    let label = match t {
        SignalType::Pdq => format!("distance ≤ {v} ({src})"),
        SignalType::Vpdq => format!(
            "frame distance ≤ {v} ({src}), query share ≥ {:.0}%",
            echotrace_signals::video::vpdq::VPDQ_QUERY_MATCH_THRESHOLD_PERCENT
        ),
        SignalType::TextMinhash | SignalType::OcrText => format!("similarity ≥ {v:.2} ({src})"),
        _ => "exact".to_string(),
    };
    (v, label)
}

/// Lower = reviewed first: exact hits, then closest relative to threshold.
fn priority(m: &MatchRecord, threshold: f64) -> f64 {
    match (m.distance, m.similarity) {
        // vPDQ: similarity is the query share / 100, and the bank threshold is
        // a per-frame distance, so scale against the share threshold instead.
        (_, Some(s)) if m.signal_type == SignalType::Vpdq => {
            let share = echotrace_signals::video::vpdq::VPDQ_QUERY_MATCH_THRESHOLD_PERCENT / 100.0;
            (1.0 - s) / (1.0 - share).max(0.01)
        }
        (_, Some(s)) => (1.0 - s) / (1.0 - threshold).max(0.01),
        (Some(d), None) => match m.signal_type {
            SignalType::Pdq | SignalType::Vpdq => d as f64 / threshold.max(1.0),
            _ => 0.0,
        },
        (None, None) => 0.0,
    }
}

async fn evidence(st: &Ctx, owner: MediaOwner, id: i64) -> Result<Evidence, EngineError> {
    if !st.config.retain_media {
        return Ok(Evidence::NotRetained);
    }
    let Some(mime) = cq::has_retained(&st.store, owner, id).await? else {
        return Ok(Evidence::NotRetained);
    };
    if mime.starts_with("video/") {
        // Never an <img>: stills of the matched frames are filled in by
        // videostrip::attach_thumbnails once the card's strip is known.
        return Ok(Evidence::Video(videostrip::VideoThumbs::default()));
    }
    if mime.starts_with("text/") {
        let text = cq::retained_media(&st.store, owner, id)
            .await?
            .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        return Ok(Evidence::Text(text));
    }
    let path = match owner {
        MediaOwner::Submission => "submission",
        MediaOwner::Content => "content",
    };
    Ok(Evidence::Image {
        url: format!("/ui/media/{path}/{id}"),
    })
}

async fn build_card(
    st: &Ctx,
    m: &MatchRecord,
    banks: &BTreeMap<i64, echotrace_engine::Bank>,
) -> Result<(views::MatchCard, f64), EngineError> {
    let bank = banks.get(&m.bank_id);
    let (thr, thr_label) = threshold_label(
        bank.map(|b| &b.thresholds)
            .unwrap_or(&Thresholds::default()),
        m.signal_type,
    );
    let content = st.engine.get_content(m.content_id).await.ok();
    let sub = st.store.get_submission(m.submission_id).await?;
    let status = m.status.as_str().to_string();
    let mut card = views::MatchCard {
        id: m.id,
        status,
        signal_type: m.signal_type.as_str().to_string(),
        distance: m.distance,
        similarity: m.similarity,
        threshold: thr_label,
        created_at: m.created_at,
        bank_id: m.bank_id,
        bank_name: m.bank_name.clone(),
        bank_kind: bank.map(|b| b.kind.as_str()).unwrap_or("block").to_string(),
        content_id: m.content_id,
        labels: content
            .as_ref()
            .map(|c| c.labels.clone())
            .unwrap_or_else(|| m.labels.clone()),
        note: content.as_ref().map(|c| c.note.clone()).unwrap_or_default(),
        source: match st
            .engine
            .provenance(&[m.content_id])
            .await?
            .remove(&m.content_id)
        {
            // Upstream labels and provenance of an exchange-backed item.
            Some(p) => exchanges::provenance_line(&p),
            None => content
                .as_ref()
                .map(|c| format!("added {}", views::fmt_ts(c.created_at)))
                .unwrap_or_else(|| "item deleted".into()),
        },
        submission_id: m.submission_id,
        platform_content_id: sub.as_ref().and_then(|s| s.content_ref.clone()),
        url: sub.as_ref().and_then(|s| s.url.clone()),
        uploader: sub.as_ref().and_then(|s| s.uploader_id.clone()),
        submitted_by: sub.as_ref().map(|s| s.actor.clone()).unwrap_or_default(),
        query_value: m.query_value.clone(),
        matched_value: m.matched_value.clone(),
        channel: m.channel.clone(),
        channel_detail: m.channel_detail.clone(),
        submission_evidence: evidence(st, MediaOwner::Submission, m.submission_id).await?,
        bank_evidence: evidence(st, MediaOwner::Content, m.content_id).await?,
        undo_until: None,
        decided_verdict: None,
        video: (m.signal_type == SignalType::Vpdq)
            .then(|| {
                let frame_distance = thr.clamp(0.0, 256.0) as u32;
                videostrip::compute(
                    &m.query_value,
                    &m.matched_value,
                    frame_distance,
                    m.similarity,
                )
            })
            .flatten(),
    };
    videostrip::attach_thumbnails(&mut card, &st.thumbs);
    Ok((card, priority(m, thr)))
}

async fn queue(st: Ctx, auth: Authed, UiQuery(q): UiQuery<MsgQuery>) -> Response {
    if let Err(r) = auth.require(Operation::ReadMatches) {
        return r;
    }
    let viewer = &auth.viewer;
    let result: Result<views::QueueView, EngineError> = async {
        let settings = cq::user_settings(&st.store, auth.session.user.id).await?;
        let order = match q.order.as_deref() {
            Some("priority") => "priority".to_string(),
            Some("newest") => "newest".to_string(),
            _ => settings.queue_order.clone(),
        };
        let banks: BTreeMap<i64, echotrace_engine::Bank> = st
            .engine
            .list_banks()
            .await?
            .into_iter()
            .map(|b| (b.id, b))
            .collect();
        let pending = st
            .engine
            .list_matches(MatchFilter {
                status: Some(MatchStatus::Pending),
                limit: Some(500),
                ..MatchFilter::default()
            })
            .await?;
        let mut cards = Vec::with_capacity(pending.len());
        for m in &pending {
            cards.push(build_card(&st, m, &banks).await?);
        }
        if order == "priority" {
            cards.sort_by(|a, b| {
                a.1.partial_cmp(&b.1)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(b.0.id.cmp(&a.0.id))
            });
        }
        // Group by bank item, groups in the order of their first card.
        let mut groups: Vec<views::MatchGroup> = Vec::new();
        for (card, _) in cards {
            match groups.iter_mut().find(|g| g.content_id == card.content_id) {
                Some(g) => g.cards.push(card),
                None => groups.push(views::MatchGroup {
                    content_id: card.content_id,
                    bank_name: card.bank_name.clone(),
                    labels: card.labels.clone(),
                    cards: vec![card],
                }),
            }
        }
        let now = echotrace_store::now_ms();
        let mut recent = Vec::new();
        for u in cq::undoable_decisions(&st.store, actor(&auth).as_str(), now).await? {
            let Ok(m) = st.engine.get_match(u.match_id).await else {
                continue;
            };
            let (mut card, _) = build_card(&st, &m, &banks).await?;
            card.undo_until = Some(u.publish_after);
            card.decided_verdict = Some(u.verdict.clone());
            recent.push(card);
        }
        Ok(views::QueueView {
            groups,
            recent,
            order,
            blur: settings.blur_media,
            grey: settings.greyscale_media,
            retain_media: st.config.retain_media,
            undo_secs: st.engine.config().decision_undo_delay.as_secs(),
        })
    }
    .await;
    match result {
        Ok(v) => page(views::queue(
            viewer,
            &v,
            flash_for(q.msg.as_deref()).as_ref(),
        )),
        Err(e) => engine_error(Some(viewer), e),
    }
}

fn parse_verdict(form: &FormData) -> Option<Verdict> {
    match form.get("verdict") {
        Some("confirm") => Some(Verdict::Confirm),
        Some("reject") => Some(Verdict::Reject),
        _ => None,
    }
}

fn queue_url(form: &FormData, msg: &str) -> String {
    let order = if form.get("order") == Some("priority") {
        "priority"
    } else {
        "newest"
    };
    format!("/ui/queue?order={order}&msg={msg}")
}

async fn decide_one(st: &Ctx, auth: &Authed, id: i64, verdict: Verdict) -> Result<(), EngineError> {
    let m = st.engine.get_match(id).await?;
    if m.status != MatchStatus::Pending {
        return Err(EngineError::Conflict(format!(
            "match {id} is already {}",
            m.status.as_str()
        )));
    }
    st.engine.decide(&actor(auth), id, verdict, "").await?;
    Ok(())
}

async fn decide(
    st: Ctx,
    UiPath(id): UiPath<i64>,
    PostForm { auth, form, .. }: PostForm<op::Decide>,
) -> Response {
    let Some(verdict) = parse_verdict(&form) else {
        return error_response(
            Some(&auth.viewer),
            StatusCode::BAD_REQUEST,
            "verdict must be confirm or reject",
        );
    };
    if let Err(e) = decide_one(&st, &auth, id, verdict).await {
        return engine_error(Some(&auth.viewer), e);
    }
    let msg = match verdict {
        Verdict::Confirm => "confirmed",
        Verdict::Reject => "rejected",
    };
    see_other(&queue_url(&form, msg))
}

async fn bulk_decide(st: Ctx, PostForm { auth, form, .. }: PostForm<op::Decide>) -> Response {
    let Some(verdict) = parse_verdict(&form) else {
        return error_response(
            Some(&auth.viewer),
            StatusCode::BAD_REQUEST,
            "verdict must be confirm or reject",
        );
    };
    let ids: Vec<i64> = form
        .all("ids")
        .iter()
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    if ids.is_empty() {
        return see_other(&queue_url(&form, "none"));
    }
    if ids.len() > 500 {
        return error_response(
            Some(&auth.viewer),
            StatusCode::BAD_REQUEST,
            "at most 500 matches at once",
        );
    }
    for id in ids {
        if let Err(e) = decide_one(&st, &auth, id, verdict).await {
            return engine_error(Some(&auth.viewer), e);
        }
    }
    see_other(&queue_url(&form, "bulk"))
}

async fn undo(
    st: Ctx,
    UiPath(id): UiPath<i64>,
    PostForm { auth, form, .. }: PostForm<op::Decide>,
) -> Response {
    let is_admin = auth.role() == Role::Admin;
    match cq::undo_decision(&st.store, actor(&auth).as_str(), is_admin, id).await {
        Ok(()) => see_other(&queue_url(&form, "undone")),
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

async fn media(st: Ctx, auth: Authed, UiPath((owner, id)): UiPath<(String, i64)>) -> Response {
    if let Err(r) = auth.require(Operation::ReadMatches) {
        return r;
    }
    if !st.config.retain_media {
        return error_response(
            Some(&auth.viewer),
            StatusCode::NOT_FOUND,
            "Media retention is off.",
        );
    }
    let owner = match owner.as_str() {
        "submission" => MediaOwner::Submission,
        "content" => MediaOwner::Content,
        _ => return error_response(Some(&auth.viewer), StatusCode::NOT_FOUND, "No such media."),
    };
    match cq::retained_media(&st.store, owner, id).await {
        Ok(Some((mime, bytes))) => {
            // Only well-known image types render inline; anything else downloads.
            let inline = matches!(
                mime.as_str(),
                "image/png" | "image/jpeg" | "image/gif" | "image/webp"
            );
            let mut r = bytes.into_response();
            let ct = if inline {
                mime.as_str()
            } else {
                "application/octet-stream"
            };
            if let Ok(v) = HeaderValue::from_str(ct) {
                r.headers_mut().insert(CONTENT_TYPE, v);
            }
            if !inline {
                r.headers_mut()
                    .insert(CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
            }
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
            r
        }
        Ok(None) => error_response(Some(&auth.viewer), StatusCode::NOT_FOUND, "No such media."),
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

// ----- settings -----------------------------------------------------------------

async fn settings_page(st: Ctx, auth: Authed, UiQuery(q): UiQuery<MsgQuery>) -> Response {
    match cq::user_settings(&st.store, auth.session.user.id).await {
        Ok(s) => page(views::settings(
            &auth.viewer,
            s.blur_media,
            s.greyscale_media,
            &s.queue_order,
            flash_for(q.msg.as_deref()).as_ref(),
        )),
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

async fn settings_save(st: Ctx, PostForm { auth, form, .. }: PostForm<op::AnyRole>) -> Response {
    let s = cq::UserSettings {
        blur_media: form.get("blur").is_some(),
        greyscale_media: form.get("grey").is_some(),
        queue_order: if form.get("order") == Some("priority") {
            "priority".into()
        } else {
            "newest".into()
        },
    };
    match cq::save_user_settings(&st.store, auth.session.user.id, &s).await {
        Ok(()) => see_other("/ui/settings?msg=saved"),
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

// ----- banks -----------------------------------------------------------------------

fn bank_view(b: &echotrace_engine::Bank) -> views::BankRowView {
    views::BankRowView {
        id: b.id,
        name: b.name.clone(),
        kind: b.kind.as_str().to_string(),
        enabled: b.enabled,
        description: b.description.clone(),
        thresholds: b
            .thresholds
            .0
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        text_equivalences: b.text_equivalences.clone().unwrap_or_default(),
        text_equivalences_version: b.text_equivalences_version,
        text_items_older_list: b.text_items_older_list,
        matching: b.matching,
        held_originals: b.held_originals,
        refining: b.refining,
    }
}

fn thresholds_from(form: &FormData) -> Result<Thresholds, EngineError> {
    let mut t = Thresholds::default();
    for (field, key) in [
        ("t_pdq", "pdq"),
        ("t_vpdq", "vpdq"),
        ("t_text_minhash", "text_minhash"),
        ("t_vpdq_query_pct", echotrace_engine::VPDQ_QUERY_PCT),
        ("t_vpdq_compared_pct", echotrace_engine::VPDQ_COMPARED_PCT),
    ] {
        if let Some(v) = form.get(field) {
            let n: f64 = v
                .parse()
                .map_err(|_| EngineError::InvalidInput(format!("threshold {key}: not a number")))?;
            t.0.insert(key.to_string(), n);
        }
    }
    Ok(t)
}

/// The bank form's text-equivalence list (browsers send CRLF line ends).
fn equivalences_from(form: &FormData) -> Option<String> {
    form.get("text_equivalences")
        .map(|v| v.replace("\r\n", "\n"))
}

async fn banks_page(st: Ctx, auth: Authed, UiQuery(q): UiQuery<MsgQuery>) -> Response {
    if let Err(r) = auth.require(Operation::ReadBanks) {
        return r;
    }
    match st.engine.list_banks().await {
        Ok(b) => {
            let rows: Vec<_> = b.iter().map(bank_view).collect();
            page(views::banks(
                &auth.viewer,
                &rows,
                flash_for(q.msg.as_deref()).as_ref(),
            ))
        }
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

async fn bank_create(st: Ctx, PostForm { auth, form, .. }: PostForm<op::WriteBanks>) -> Response {
    let result = async {
        let kind = match form.get("kind") {
            Some("allow") => BankKind::Allow,
            _ => BankKind::Block,
        };
        let new = NewBank {
            name: form.get("name").unwrap_or("").to_string(),
            kind,
            description: form.get("description").unwrap_or("").to_string(),
            thresholds: thresholds_from(&form)?,
            text_equivalences: equivalences_from(&form),
        };
        st.engine.create_bank(&actor(&auth), new).await
    }
    .await;
    match result {
        Ok(b) => see_other(&format!("/ui/banks/{}?msg=created", b.id)),
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

async fn bank_page(
    st: Ctx,
    auth: Authed,
    UiPath(id): UiPath<i64>,
    UiQuery(q): UiQuery<MsgQuery>,
) -> Response {
    if let Err(r) = auth.require(Operation::ReadBanks) {
        return r;
    }
    let result = async {
        let bank = st.engine.get_bank(id).await?;
        let items = st.engine.list_content(id, 0, 1000).await?;
        Ok::<_, EngineError>((bank, items))
    }
    .await;
    match result {
        Ok((bank, items)) => {
            let items: Vec<views::ContentView> = items
                .iter()
                .map(|c| views::ContentView {
                    id: c.id,
                    enabled: c.enabled,
                    labels: c.labels.clone(),
                    note: c.note.clone(),
                    quarantine: c.quarantine.as_ref().map(|qq| (qq.reason.clone(), qq.at)),
                    signals: c
                        .signals
                        .iter()
                        .map(|s| (s.signal_type.as_str().to_string(), s.value.clone()))
                        .collect(),
                    created_at: c.created_at,
                })
                .collect();
            page(views::bank_detail(
                &auth.viewer,
                &bank_view(&bank),
                &items,
                flash_for(q.msg.as_deref()).as_ref(),
            ))
        }
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

async fn bank_update(
    st: Ctx,
    UiPath(id): UiPath<i64>,
    PostForm { auth, form, .. }: PostForm<op::WriteBanks>,
) -> Response {
    let result = async {
        let update = BankUpdate {
            enabled: Some(form.get("enabled").is_some()),
            description: Some(form.get("description").unwrap_or("").to_string()),
            thresholds: Some(thresholds_from(&form)?),
            // A blank textarea removes the list.
            text_equivalences: Some(equivalences_from(&form).unwrap_or_default()),
        };
        // The refinement switch (`auto`, `on`, `off`), read before anything
        // is written: a word it does not take changes nothing.
        let refine = form
            .get("refine")
            .map(|word| {
                let mut probe = echotrace_engine::robust::MatchingSettings::default();
                probe.set_word("refine", word).map(|()| probe.refine)
            })
            .transpose()
            .map_err(EngineError::InvalidInput)?;
        let bank = st.engine.update_bank(&actor(&auth), id, update).await?;
        // The other matching settings are kept.
        let matching = echotrace_engine::robust::MatchingSettings {
            refine: refine.unwrap_or(bank.matching.refine),
            ..bank.matching
        };
        if matching == bank.matching {
            return Ok(bank);
        }
        st.engine
            .set_bank_matching(&actor(&auth), id, matching)
            .await
    }
    .await;
    match result {
        Ok(_) => see_other(&format!("/ui/banks/{id}?msg=saved")),
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

fn labels_of(form: &FormData) -> Vec<String> {
    form.get("labels")
        .unwrap_or("")
        .split([',', ';'])
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// MIME type of retained bytes (a known image type or UTF-8 text).
fn retained_mime(bytes: &[u8]) -> Option<&'static str> {
    match cq::sniff_mime(bytes) {
        "application/octet-stream" => None,
        m => Some(m),
    }
}

/// Parse one CSV line `signal_type,value[,labels][,note]`.
fn csv_item(line: &str) -> Result<(SignalValue, Vec<String>, String), EngineError> {
    let mut parts = line.splitn(4, ',');
    let t = parts.next().unwrap_or("").trim();
    let v = parts.next().unwrap_or("").trim();
    let labels = parts
        .next()
        .unwrap_or("")
        .split(';')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let note = parts.next().unwrap_or("").trim().to_string();
    let st: SignalType = t
        .parse()
        .map_err(|_| EngineError::InvalidInput(format!("unknown signal type {t:?}")))?;
    let sv = echotrace_engine::normalize_signal(st, v)?;
    Ok((sv, labels, note))
}

async fn content_add(
    st: Ctx,
    UiPath(bank_id): UiPath<i64>,
    PostForm { auth, form, .. }: PostForm<op::WriteBanks>,
) -> Response {
    let who = actor(&auth);
    let labels = labels_of(&form);
    let note = form.get("note").unwrap_or("").to_string();
    let result: Result<&'static str, EngineError> = async {
        if let Some(file) = form.file("file") {
            // Hashed as a bank entry (a video at every frame) in the
            // server's hashing pool for its kind, like API uploads; OCR is
            // read afterwards in the engine's OCR pool.
            let hashed = st
                .app
                .in_pool(
                    crate::Pool::for_bytes(&file.bytes),
                    st.engine.hash_bank_bytes(bank_id, file.bytes.to_vec()),
                )
                .await
                .map_err(|_| EngineError::Internal("hashing is unavailable".into()))??;
            let new = NewContent {
                source: ContentSource::HashedFile(hashed),
                labels,
                note,
            };
            // A held item is left as it is, retained original included,
            // unless it gained this file's derived hashes (it had none):
            // then the file is its original from now on.
            let added = st.engine.add_item(&who, bank_id, new).await?;
            if added.already_held && !added.derived_added {
                return Ok("held");
            }
            if st.config.retain_media {
                if let Some(mime) = retained_mime(&file.bytes) {
                    let id = added.content.id;
                    cq::retain_media(&st.store, MediaOwner::Content, id, mime, &file.bytes).await?;
                }
            }
            Ok(if added.derived_added {
                "held_derived"
            } else {
                "added"
            })
        } else if let Some(text) = form.get("text") {
            let added = st
                .engine
                .add_item(
                    &who,
                    bank_id,
                    NewContent {
                        source: ContentSource::Text(text.to_string()),
                        labels,
                        note,
                    },
                )
                .await?;
            if added.already_held {
                return Ok("held");
            }
            if st.config.retain_media {
                cq::retain_media(
                    &st.store,
                    MediaOwner::Content,
                    added.content.id,
                    "text/plain; charset=utf-8",
                    text.as_bytes(),
                )
                .await?;
            }
            Ok("added")
        } else if let Some(csv) = form.get("csv") {
            let mut items = Vec::new();
            for (n, line) in csv.lines().enumerate() {
                let line = line.trim();
                if line.is_empty()
                    || line.starts_with('#')
                    || (n == 0 && line.starts_with("signal_type"))
                {
                    continue;
                }
                let item = csv_item(line)
                    .map_err(|e| EngineError::InvalidInput(format!("line {}: {e}", n + 1)))?;
                items.push(item);
            }
            if items.is_empty() {
                return Err(EngineError::InvalidInput("no hashes in the list".into()));
            }
            if items.len() > 10_000 {
                return Err(EngineError::InvalidInput(
                    "at most 10000 lines per paste".into(),
                ));
            }
            let items = items
                .into_iter()
                .map(|(sv, l, nt)| {
                    let l = if l.is_empty() { labels.clone() } else { l };
                    let nt = if nt.is_empty() {
                        note.as_str()
                    } else {
                        nt.as_str()
                    };
                    echotrace_engine::ImportItem::new(&[sv], l, nt)
                })
                .collect::<Result<Vec<_>, _>>()?;
            // The bank import's path: a hash the bank already holds (a
            // list pasted twice) is skipped, not added again.
            let report = st.engine.import_signals(&who, bank_id, items).await?;
            Ok(match (report.items, report.already_held) {
                (_, 0) => "added",
                (0, _) => "all_held",
                _ => "some_held",
            })
        } else {
            Err(EngineError::InvalidInput(
                "choose a file, text or a hash list".into(),
            ))
        }
    }
    .await;
    match result {
        Ok(msg) => see_other(&format!("/ui/banks/{bank_id}?msg={msg}")),
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

async fn content_toggle(
    st: Ctx,
    UiPath(id): UiPath<i64>,
    PostForm { auth, form, .. }: PostForm<op::WriteBanks>,
) -> Response {
    let enabled = form.get("enabled") == Some("1");
    match st
        .engine
        .set_content_enabled(&actor(&auth), id, enabled)
        .await
    {
        Ok(c) => see_other(&format!("/ui/banks/{}?msg=toggled", c.bank_id)),
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

// ----- match debugger ---------------------------------------------------------------

async fn debug_page(auth: Authed) -> Response {
    if let Err(r) = auth.require(Operation::ReadBanks) {
        return r;
    }
    page(views::debugger(
        &auth.viewer,
        &views::DebugView::default(),
        None,
    ))
}

fn parse_hash_input(s: &str) -> Result<Vec<SignalValue>, EngineError> {
    let s = s.trim();
    let (t, v) = match s.split_once([',', ':', ' ']) {
        Some((t, v)) => (t.trim(), v.trim()),
        None => ("pdq", s),
    };
    let st: SignalType = t
        .parse()
        .map_err(|_| EngineError::InvalidInput(format!("unknown signal type {t:?}")))?;
    Ok(vec![echotrace_engine::normalize_signal(st, v)?])
}

async fn debug_run(st: Ctx, PostForm { auth, form, .. }: PostForm<op::ReadBanks>) -> Response {
    // Decoding (ffmpeg for a video, the PDF extractor) runs on the blocking
    // pool, never on an async worker. The text of pasted text, a text file
    // or a PDF comes back with the signals and is re-signed under each bank
    // text-equivalence list version, as lookups do.
    let upload = match form.file("file") {
        Some(f) => Some(f.bytes.clone()),
        None => form
            .get("text")
            .map(|t| axum::body::Bytes::from(t.to_string())),
    };
    let hashed = if let Some(bytes) = upload {
        let engine = st.engine.clone();
        // Through the server's bounded hashing pool, like API uploads.
        st.app
            .hash_job(crate::Pool::for_bytes(&bytes), move || {
                Ok(engine.hash_upload(bytes))
            })
            .await
            .unwrap_or_else(|_| Err(EngineError::Internal("hashing is unavailable".into())))
    } else if let Some(h) = form.get("hash") {
        parse_hash_input(h).map(|signals| HashedUpload {
            signals,
            ..HashedUpload::default()
        })
    } else {
        Err(EngineError::InvalidInput(
            "upload a file, paste text or a hash".into(),
        ))
    };
    let (signals, raw_text, ocr, channels) = match hashed {
        Ok(mut h) => {
            let ocr = st.engine.finish_ocr(&mut h).await;
            // Images and videos: what every robust channel would match.
            let channels = if h.robust.is_some() {
                st.engine.preview_matches(&h).unwrap_or_default()
            } else {
                Vec::new()
            };
            (h.signals, h.text, ocr, channels)
        }
        Err(e) => {
            let flash = Flash::Error(e.to_string());
            return (
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
                Html(
                    views::debugger(&auth.viewer, &views::DebugView::default(), Some(&flash))
                        .into_string(),
                ),
            )
                .into_response();
        }
    };
    let raw_text = raw_text.as_ref().map(QueryText::as_str);
    let hits = match cq::explain_with_text(&st.store, &signals, raw_text).await {
        Ok(h) => h,
        Err(e) => return engine_error(Some(&auth.viewer), e),
    };
    let view = views::DebugView {
        query_signals: signals
            .iter()
            .map(|s| (s.signal_type.as_str().to_string(), s.value.clone()))
            .collect(),
        hits: hits
            .into_iter()
            .map(|h| views::DebugHit {
                bank_id: h.bank_id,
                bank_name: h.bank_name,
                bank_kind: h.bank_kind,
                content_id: h.content_id,
                labels: h.labels,
                signal_type: h.signal_type.clone(),
                value: h.value,
                score: match (h.distance, h.similarity) {
                    (_, Some(s)) if h.signal_type == "vpdq" => {
                        format!("query share {:.0}%", s * 100.0)
                    }
                    (_, Some(s)) => format!("{s:.3}"),
                    (Some(d), None) => d.to_string(),
                    _ => "—".into(),
                },
                threshold: format!(
                    "{}{}",
                    if h.signal_type == "text_minhash" || h.signal_type == "ocr_text" {
                        format!("≥ {:.2}", h.threshold)
                    } else if h.signal_type == "pdq" || h.signal_type == "vpdq" {
                        format!("≤ {}", h.threshold)
                    } else {
                        "exact".into()
                    },
                    if h.threshold_is_default {
                        " (default)"
                    } else {
                        " (bank)"
                    }
                ),
                verdict: match h.verdict {
                    cq::Verdict::Match => "match",
                    cq::Verdict::Suppressed => "suppressed",
                    cq::Verdict::NoMatch => "no",
                },
                why: h.why,
            })
            .collect(),
        radius_note: format!(
            "Radius: PDQ distance ≤ {}, text similarity ≥ {}, exact types equal.",
            cq::DEBUG_PDQ_RADIUS,
            cq::DEBUG_TEXT_FLOOR
        ),
        ran: true,
        ocr_status: Some(st.engine.ocr_status()),
        ocr,
        channels,
    };
    page(views::debugger(&auth.viewer, &view, None))
}

// ----- audit and keys ----------------------------------------------------------------

async fn audit_page(st: Ctx, auth: Authed, UiQuery(q): UiQuery<MsgQuery>) -> Response {
    if let Err(r) = auth.require(Operation::ReadAudit) {
        return r;
    }
    let f = cq::AuditFilter {
        actor: q.actor.clone(),
        action: q.action.clone(),
        target: q.target.clone(),
        limit: 200,
    };
    match cq::audit_log(&st.store, &f).await {
        Ok(rows) => {
            let rows: Vec<views::AuditRowView> = rows
                .into_iter()
                .map(|r| {
                    let mut detail = r.after.or(r.before).unwrap_or_default();
                    if detail.chars().count() > 300 {
                        detail = detail.chars().take(300).collect::<String>() + "…";
                    }
                    views::AuditRowView {
                        id: r.id,
                        at: r.at,
                        actor: r.actor,
                        action: r.action,
                        target: r.target,
                        detail,
                    }
                })
                .collect();
            page(views::audit(
                &auth.viewer,
                &rows,
                q.actor.as_deref().unwrap_or(""),
                q.action.as_deref().unwrap_or(""),
                q.target.as_deref().unwrap_or(""),
            ))
        }
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

async fn key_views(st: &Ctx) -> Result<Vec<views::KeyView>, EngineError> {
    Ok(st
        .engine
        .list_api_keys()
        .await?
        .into_iter()
        .map(|k| views::KeyView {
            id: k.id,
            name: k.name,
            role: k.role.as_str().to_string(),
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        })
        .collect())
}

async fn keys_page(st: Ctx, auth: Authed, UiQuery(q): UiQuery<MsgQuery>) -> Response {
    if let Err(r) = auth.require(Operation::Admin) {
        return r;
    }
    match key_views(&st).await {
        Ok(k) => page(views::keys(
            &auth.viewer,
            &k,
            None,
            flash_for(q.msg.as_deref()).as_ref(),
        )),
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

async fn key_create(st: Ctx, PostForm { auth, form, .. }: PostForm<op::Admin>) -> Response {
    let result = async {
        let role = form
            .get("role")
            .and_then(Role::parse)
            .ok_or_else(|| EngineError::InvalidInput("unknown role".into()))?;
        let (_, key) = st
            .engine
            .create_api_key(&actor(&auth), form.get("name").unwrap_or(""), role)
            .await?;
        let list = key_views(&st).await?;
        Ok::<_, EngineError>((key, list))
    }
    .await;
    match result {
        Ok((key, list)) => page(views::keys(&auth.viewer, &list, Some(&key), None)),
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

async fn key_revoke(
    st: Ctx,
    UiPath(id): UiPath<i64>,
    PostForm { auth, form: _, .. }: PostForm<op::Admin>,
) -> Response {
    match st.engine.revoke_api_key(&actor(&auth), id).await {
        Ok(_) => see_other("/ui/keys?msg=revoked"),
        Err(e) => engine_error(Some(&auth.viewer), e),
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char
/// boundary.
fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_confined_to_the_console() {
        assert_eq!(
            safe_next(Some("/ui/queue?order=priority")),
            "/ui/queue?order=priority"
        );
        assert_eq!(safe_next(Some("//evil.example/ui/")), "/ui/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui/");
        assert_eq!(safe_next(Some("/ui/login")), "/ui/");
        assert_eq!(safe_next(Some("/ui/queue\r\nSet-Cookie: x=1")), "/ui/");
        assert_eq!(safe_next(Some("/ui/\u{7f}")), "/ui/");
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn csv_lines() {
        let (sv, labels, note) =
            csv_item(&format!("pdq,{},a;b,some, note", "F".repeat(64))).unwrap();
        assert_eq!(sv.signal_type, SignalType::Pdq);
        assert_eq!(sv.value, "f".repeat(64));
        assert_eq!(labels, vec!["a", "b"]);
        assert_eq!(note, "some, note");
        assert!(csv_item("bogus,1").is_err());
        assert!(csv_item("pdq,zz").is_err());
    }

    #[test]
    fn hash_input() {
        let h = "a".repeat(64);
        assert_eq!(
            parse_hash_input(&h).unwrap()[0].signal_type,
            SignalType::Pdq
        );
        assert_eq!(
            parse_hash_input(&format!("md5,{}", "b".repeat(32))).unwrap()[0].signal_type,
            SignalType::Md5
        );
        assert!(parse_hash_input("nope").is_err());
    }

    #[test]
    fn mime_sniffing() {
        assert_eq!(retained_mime(b"hello"), Some("text/plain; charset=utf-8"));
        assert_eq!(retained_mime(&[0xff, 0xfe, 0x00, 0x81]), None);
    }
}
