//! Console sessions and CSRF protection.
//!
//! * The session id is a random 256-bit token in the `et_session` cookie:
//!   `HttpOnly`, `SameSite=Strict`, `Path=/ui`, and `Secure` when the console
//!   is served over HTTPS. The database stores only its SHA-256.
//! * Every state-changing request is a POST whose body carries the session's
//!   CSRF token (synchroniser-token pattern). The only way for a handler to
//!   read a POST body is the [`PostForm<R>`](PostForm) extractor, which
//!   checks the session and the role `R` needs from the headers *before*
//!   reading the body (a wrong-role upload is never buffered), then rejects
//!   a missing or wrong token with 403 before the handler runs, so no form
//!   can forget either check. Bodies are read under the server's byte
//!   budget ([`crate::budget`]) and the NUL rule ([`crate::extract`]), like
//!   API bodies; [`UiQuery`] and [`UiPath`] apply the NUL rule to query
//!   strings and path parameters.
//! * The login form has no session yet; it uses a double-submit token: a
//!   random `et_login` cookie (HttpOnly, SameSite=Strict) that the form must
//!   echo. A cross-site page can neither read nor set that cookie.
//! * Login throttling: failed logins are counted per
//!   username (case-folded, whether or not the user exists) and per client
//!   IP in a sliding window (default 5 in 5 minutes). Once either count is
//!   reached, every login for that username or from that IP — even with the
//!   right password — gets 429 with `Retry-After` and the same message, so
//!   the answer never tells whether the username exists. A success clears
//!   the username's count (not the IP's, so one valid account cannot reset
//!   an IP that is guessing others). Failures and refusals are audited. The
//!   client IP is the TCP peer; `X-Forwarded-For` (its last entry) is used
//!   only when the peer is a loopback address, i.e. a local reverse proxy.
//!   Counts live in the database ([`echotrace_engine::LoginThrottle`]), so
//!   every process on it enforces one limit.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use echotrace_engine::console::{self as cq, Session};
use echotrace_engine::Role;

use crate::auth::Requirement;
use crate::budget;
use crate::extract::check_no_nul;

use super::views::{self, Viewer};
use super::UiState;

/// Session cookie name.
pub const SESSION_COOKIE: &str = "et_session";
/// Pre-login CSRF cookie name.
pub const LOGIN_COOKIE: &str = "et_login";

/// Value of cookie `name` in the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    for value in headers.get_all(COOKIE) {
        let Ok(s) = value.to_str() else { continue };
        for pair in s.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k.trim() == name {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

/// A `Set-Cookie` value with the console's flags. `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age_secs: i64) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let s = format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
}

/// A 303 redirect (to the dashboard if `to` cannot be a header value, so a
/// redirect never goes out without a `Location`).
pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    let location = HeaderValue::from_str(to).unwrap_or_else(|_| HeaderValue::from_static("/ui/"));
    r.headers_mut().insert(LOCATION, location);
    r
}

/// An HTML error page with a status.
pub fn error_response(viewer: Option<&Viewer>, status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::response::Html(views::error_page(viewer, status.as_u16(), message).into_string()),
    )
        .into_response()
}

/// Build the view of the logged-in user.
pub fn viewer_of(s: &Session) -> Viewer {
    use echotrace_engine::Operation;
    let role = s.user.role;
    Viewer {
        username: s.user.username.clone(),
        role: role.as_str(),
        csrf: s.csrf_token.clone(),
        can_decide: role.allows(Operation::Decide),
        can_write_banks: role.allows(Operation::WriteBanks),
        can_audit: role.allows(Operation::ReadAudit),
        can_admin: role.allows(Operation::Admin),
    }
}

/// A request from a logged-in user. Without a valid session, GETs are
/// redirected to the login page and anything else gets 401.
pub struct Authed {
    pub session: Session,
    pub viewer: Viewer,
}

impl Authed {
    pub fn role(&self) -> Role {
        self.session.user.role
    }

    /// 403 page unless the role may perform `op`.
    #[allow(clippy::result_large_err)]
    pub fn require(&self, op: echotrace_engine::Operation) -> Result<(), Response> {
        if self.role().allows(op) {
            Ok(())
        } else {
            Err(error_response(
                Some(&self.viewer),
                StatusCode::FORBIDDEN,
                &format!(
                    "Your role ({}) may not {}.",
                    self.role().as_str(),
                    op.as_str()
                ),
            ))
        }
    }
}

impl FromRequestParts<UiState> for Authed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &UiState,
    ) -> Result<Self, Self::Rejection> {
        let sid = cookie(&parts.headers, SESSION_COOKIE).unwrap_or_default();
        let engine = state.engine()?;
        let session = match cq::load_session(engine.store(), &sid).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("echotrace console: session lookup failed: {e}");
                return Err(error_response(
                    None,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Session lookup failed.",
                ));
            }
        };
        match session {
            Some(session) => {
                let viewer = viewer_of(&session);
                Ok(Authed { session, viewer })
            }
            None if parts.method == axum::http::Method::GET => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/ui/");
                let next = url_encode(next);
                Err(see_other(&format!("/ui/login?next={next}")))
            }
            None => Err(error_response(
                None,
                StatusCode::UNAUTHORIZED,
                "Your session has ended. Please sign in again.",
            )),
        }
    }
}

/// Percent-encode a query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An uploaded file of a multipart form.
#[derive(Clone, Debug)]
pub struct Upload {
    pub field: String,
    pub filename: String,
    pub content_type: String,
    pub bytes: Bytes,
}

/// The fields of a submitted form (urlencoded or multipart).
#[derive(Clone, Debug, Default)]
pub struct FormData {
    pub fields: Vec<(String, String)>,
    pub files: Vec<Upload>,
}

impl FormData {
    /// First value of a field, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every value of a repeated field.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first non-empty upload of a field.
    pub fn file(&self, name: &str) -> Option<&Upload> {
        self.files
            .iter()
            .find(|f| f.field == name && !f.bytes.is_empty())
    }

    /// Parse a body by its content type, under the byte budget and the
    /// NUL rule.
    pub async fn parse(req: Request) -> Result<FormData, FormError> {
        let ct = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let form = if ct.starts_with("multipart/form-data") {
            let req = budget::metered(req).await.map_err(FormError::from)?;
            let scope = req.extensions().get::<budget::BudgetScope>().cloned();
            let failed = |e: axum::extract::multipart::MultipartError| {
                if scope.as_ref().is_some_and(budget::BudgetScope::exceeded) {
                    FormError::Busy
                } else if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    FormError::TooLarge
                } else {
                    FormError::Bad(format!("bad multipart body: {}", e.body_text()))
                }
            };
            let mut mp = Multipart::from_request(req, &())
                .await
                .map_err(|e| FormError::Bad(format!("bad multipart body: {}", e.body_text())))?;
            let mut form = FormData::default();
            while let Some(field) = mp.next_field().await.map_err(failed)? {
                let name = field.name().unwrap_or("").to_string();
                let filename = field.file_name().map(str::to_string);
                let content_type = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_string();
                let data = field.bytes().await.map_err(failed)?;
                match filename {
                    Some(filename) => form.files.push(Upload {
                        field: name,
                        filename,
                        content_type,
                        bytes: data,
                    }),
                    None => form
                        .fields
                        .push((name, String::from_utf8_lossy(&data).into_owned())),
                }
            }
            form
        } else if ct.starts_with("application/x-www-form-urlencoded") || ct.is_empty() {
            let bytes = budget::read_body(req).await.map_err(|e| match e.status {
                StatusCode::SERVICE_UNAVAILABLE => FormError::Busy,
                StatusCode::PAYLOAD_TOO_LARGE => FormError::TooLarge,
                _ => FormError::Bad(format!("unreadable body: {}", e.message)),
            })?;
            let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
                .map_err(|e| FormError::Bad(format!("bad form body: {e}")))?;
            FormData {
                fields,
                files: Vec::new(),
            }
        } else {
            return Err(FormError::Bad(format!("unsupported content type {ct:?}")));
        };
        for (name, value) in &form.fields {
            check_no_nul(&format!("field {name:?}"), value)
                .map_err(|e| FormError::Bad(e.message))?;
        }
        Ok(form)
    }
}

/// Why a console form body was not read.
#[derive(Debug)]
pub enum FormError {
    /// Malformed, or against the NUL rule (400).
    Bad(String),
    /// Over the console's upload limit (413).
    TooLarge,
    /// No room in the byte budget (503 + `Retry-After`).
    Busy,
}

impl From<budget::Admission> for FormError {
    fn from(a: budget::Admission) -> FormError {
        match a {
            budget::Admission::TooLarge => FormError::TooLarge,
            budget::Admission::Overloaded => FormError::Busy,
        }
    }
}

impl FormError {
    /// The console's error page for it.
    pub fn response(&self, viewer: Option<&Viewer>) -> Response {
        match self {
            FormError::Bad(m) => error_response(viewer, StatusCode::BAD_REQUEST, m),
            FormError::TooLarge => error_response(
                viewer,
                StatusCode::PAYLOAD_TOO_LARGE,
                "The upload is larger than the console accepts.",
            ),
            FormError::Busy => {
                let mut r = error_response(
                    viewer,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server is busy receiving other uploads; try again in a moment.",
                );
                r.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    budget::RETRY_AFTER_SECS.into(),
                );
                r
            }
        }
    }
}

/// `Query<T>` for console pages, with the NUL rule (a 400 page naming the
/// parameter).
pub struct UiQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for UiQuery<T> {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        crate::extract::check_query_no_nul(parts.uri.query())
            .map_err(|e| error_response(None, StatusCode::BAD_REQUEST, &e.message))?;
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(q)| UiQuery(q))
            .map_err(|e| error_response(None, StatusCode::BAD_REQUEST, &e.body_text()))
    }
}

/// `Path<T>` for console pages: the NUL rule ([`crate::extract::ApiPath`])
/// and a 400 page for a bad parameter (`/ui/clusters/abc`), never axum's
/// plain-text rejection.
pub struct UiPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for UiPath<T> {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        crate::extract::ApiPath::<T>::from_request_parts(parts, state)
            .await
            .map(|crate::extract::ApiPath(v)| UiPath(v))
            .map_err(|e| error_response(None, e.status, &e.message))
    }
}

/// A POST from a logged-in user whose role may do `R` and whose CSRF token
/// checked out.
pub struct PostForm<R: Requirement> {
    pub auth: Authed,
    pub form: FormData,
    requirement: std::marker::PhantomData<fn() -> R>,
}

impl<R: Requirement> FromRequest<UiState> for PostForm<R> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &UiState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let auth = Authed::from_request_parts(&mut parts, state).await?;
        // The role, from the session, before a byte of the body is read.
        if let Some(op) = R::OP {
            auth.require(op)?;
        }
        let req = Request::from_parts(parts, body);
        let form = FormData::parse(req)
            .await
            .map_err(|e| e.response(Some(&auth.viewer)))?;
        let ok = form
            .fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| cq::tokens_equal(v, &auth.session.csrf_token))
            .unwrap_or(false);
        if !ok {
            return Err(csrf_rejection(Some(&auth.viewer)));
        }
        Ok(PostForm {
            auth,
            form,
            requirement: std::marker::PhantomData,
        })
    }
}

/// The 403 answer to a missing or wrong CSRF token.
pub fn csrf_rejection(viewer: Option<&Viewer>) -> Response {
    error_response(
        viewer,
        StatusCode::FORBIDDEN,
        "The form's security token is missing or wrong. Reload the page and try again.",
    )
}

/// Longest username the console accepts (as `Engine::create_user`).
pub const MAX_USERNAME_BYTES: usize = 100;

/// The client address for throttling: the TCP peer, or the last
/// `X-Forwarded-For` entry when the peer is a loopback proxy.
pub fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
    let peer_ip = peer
        .map(|p| p.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    if peer.is_none() || peer_ip.is_loopback() {
        // Only the entry the proxy itself appended (the last) is trusted;
        // earlier entries come from the client.
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|s| s.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    peer_ip
}

/// The answer to a throttled login: 429, `Retry-After`, one message for
/// every username (existing or not).
pub fn throttled_response(retry_after_secs: u64) -> Response {
    let minutes = retry_after_secs.div_ceil(60).max(1);
    let mut resp = error_response(
        None,
        StatusCode::TOO_MANY_REQUESTS,
        &format!(
            "Too many failed sign-in attempts. Try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        resp.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, v);
    }
    resp
}

/// Attach `Set-Cookie` headers to a response.
pub fn with_cookies(mut resp: Response, cookies: Vec<HeaderValue>) -> Response {
    for c in cookies {
        resp.headers_mut().append(SET_COOKIE, c);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_usernames_are_cut_on_a_char_boundary() {
        assert_eq!(super::super::truncate_at_char("abc", 100), "abc");
        let long = "é".repeat(80); // 160 bytes
        let cut = super::super::truncate_at_char(&long, MAX_USERNAME_BYTES);
        assert_eq!(cut.len(), 100);
        assert!(long.starts_with(cut));
    }

    #[test]
    fn cookie_parsing() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; et_session=abc_def; b=2"),
        );
        assert_eq!(cookie(&h, "et_session").as_deref(), Some("abc_def"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn cookie_flags() {
        let c = set_cookie(SESSION_COOKIE, "x", true, 60);
        let s = c.to_str().unwrap();
        assert!(s.contains("HttpOnly") && s.contains("SameSite=Strict") && s.contains("Secure"));
        let c = set_cookie(SESSION_COOKIE, "x", false, 60);
        assert!(!c.to_str().unwrap().contains("Secure"));
    }

    #[test]
    fn client_ip_trusts_forwarded_for_only_from_loopback() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("10.0.0.1, 198.51.100.7"),
        );
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        assert_eq!(client_ip(&h, Some(local)).to_string(), "198.51.100.7");
        assert_eq!(client_ip(&h, Some(remote)).to_string(), "203.0.113.9");
        assert_eq!(
            client_ip(&HeaderMap::new(), Some(local)).to_string(),
            "127.0.0.1"
        );
    }

    #[test]
    fn encoding() {
        assert_eq!(url_encode("/ui/queue?order=new"), "/ui/queue%3Forder%3Dnew");
    }
}
