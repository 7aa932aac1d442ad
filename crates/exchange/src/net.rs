//! HTTP for adapters: bounded, SSRF-safe, redirect-vetting.
//!
//! Upstreams are configured by operators, but what they *answer* is not
//! trusted: a hostile or broken upstream may send gigabytes, never finish,
//! send HTML, or redirect into the private network. So:
//!
//! * every host is resolved here and every address vetted by the one SSRF
//!   guard ([`echotrace_engine::ssrf`], shared with the collector and the
//!   server); loopback (and, separately, private ranges) are allowed only
//!   when the operator says so ([`NetPolicy`]); the connection is pinned to
//!   the vetted address, proxies from the environment are ignored;
//! * redirects are never followed by the client: each `Location` is vetted
//!   again (at most [`MAX_REDIRECTS`]), and credentials (the
//!   `Authorization` header) are only sent to the original origin;
//! * each response body is streamed into a buffer that stops at
//!   [`NetPolicy::max_body`], and the whole exchange (connect, headers,
//!   body) runs under [`NetPolicy::timeout`].
//!
//! Errors carry no URLs with query strings (they may hold tokens: the
//! ThreatExchange API takes its token as a query parameter).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use echotrace_engine::ssrf::{self, GuardError, PrivateAllow};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};

/// Redirects followed per request (each re-vetted).
pub const MAX_REDIRECTS: usize = 3;

/// What adapters may connect to, and how much they may read.
#[derive(Clone, Debug)]
pub struct NetPolicy {
    /// Allow 127.0.0.0/8 and ::1 (a peer on the same host, tests).
    pub allow_loopback: bool,
    /// Allow private, link-local and other non-public ranges (an upstream
    /// inside the operator's network).
    pub allow_private: bool,
    /// Deadline of one request, body included.
    pub timeout: Duration,
    /// Largest response body read into memory.
    pub max_body: usize,
}

impl Default for NetPolicy {
    fn default() -> Self {
        NetPolicy {
            allow_loopback: false,
            allow_private: false,
            timeout: Duration::from_secs(60),
            max_body: 64 << 20,
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("{0} resolves to a non-public address ({1}), which this server may not contact")]
    Forbidden(String, IpAddr),
    #[error("could not resolve {0}")]
    Resolve(String),
    #[error("connection failed: {0}")]
    Network(String),
    #[error("timed out after {0} s")]
    Timeout(u64),
    #[error("response body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("upstream answered HTTP {status}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
}

impl NetError {
    /// Worth retrying after a pause (429, 5xx, network, timeout).
    pub fn retryable(&self) -> bool {
        match self {
            NetError::Status { status, .. } => *status == 429 || *status >= 500,
            NetError::Network(_) | NetError::Timeout(_) => true,
            _ => false,
        }
    }

    /// The upstream's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            NetError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl NetPolicy {
    /// The non-public addresses this policy lets adapters reach.
    fn private_allow(&self) -> PrivateAllow {
        if self.allow_private {
            PrivateAllow::All
        } else if self.allow_loopback {
            PrivateAllow::loopback()
        } else {
            PrivateAllow::None
        }
    }
}

/// A request body.
#[derive(Clone, Debug)]
pub enum Body {
    Form(Vec<(String, String)>),
    Json(Vec<u8>),
}

/// A finished response: status, headers, the (capped) body.
#[derive(Debug)]
pub struct Fetched {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The URL that answered (after redirects), without its query.
    pub final_origin: String,
}

/// The adapters' HTTP client (cheap to share; clients are cached per
/// pinned address).
pub struct Http {
    policy: NetPolicy,
    allow: PrivateAllow,
    clients: Mutex<HashMap<(String, SocketAddr), reqwest::Client>>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

fn origin(u: &Url) -> String {
    format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str().unwrap_or(""),
        u.port_or_known_default().unwrap_or(0)
    )
}

/// A URL safe to show: scheme, host, port and path; never the query.
pub fn redact(u: &Url) -> String {
    format!("{}{}", origin(u), u.path())
}

/// The guard's refusal as this module's error (`host` names the refused
/// destination).
fn net_error(e: GuardError, host: &str) -> NetError {
    match e {
        GuardError::InvalidUrl(m) => NetError::InvalidUrl(m),
        GuardError::Scheme => NetError::InvalidUrl("scheme must be http or https".into()),
        GuardError::ForbiddenAddress(ip) => NetError::Forbidden(host.to_string(), ip),
        GuardError::Resolve(h) => NetError::Resolve(h),
    }
}

fn parse_retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs)
}

impl Http {
    pub fn new(policy: NetPolicy) -> Http {
        Http {
            allow: policy.private_allow(),
            policy,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn policy(&self) -> &NetPolicy {
        &self.policy
    }

    async fn vet(&self, url: &Url) -> Result<(String, SocketAddr), NetError> {
        let (host, port) = ssrf::vet_url(url).map_err(|e| net_error(e, ""))?;
        let addr = ssrf::vet_host(&host, port, &self.allow)
            .await
            .map_err(|e| net_error(e, &host))?;
        Ok((host, addr))
    }

    fn client(&self, host: &str, addr: SocketAddr) -> Result<reqwest::Client, NetError> {
        let key = (host.to_string(), addr);
        if let Ok(map) = self.clients.lock() {
            if let Some(c) = map.get(&key) {
                return Ok(c.clone());
            }
        }
        let c = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .resolve(host, addr)
            .connect_timeout(self.policy.timeout.min(Duration::from_secs(20)))
            .user_agent(concat!("echotrace/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NetError::Network(e.without_url().to_string()))?;
        if let Ok(mut map) = self.clients.lock() {
            if map.len() > 64 {
                map.clear();
            }
            map.insert(key, c.clone());
        }
        Ok(c)
    }

    /// Send a request and read the whole (capped) body. A non-2xx status is
    /// [`NetError::Status`] (with `Retry-After`), except when
    /// `accept_status` says it is expected.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Option<Body>,
        accept_status: &[u16],
    ) -> Result<Fetched, NetError> {
        let secs = self.policy.timeout.as_secs().max(1);
        match tokio::time::timeout(
            self.policy.timeout,
            self.send_inner(method, url, headers, body, accept_status),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(NetError::Timeout(secs)),
        }
    }

    async fn send_inner(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Option<Body>,
        accept_status: &[u16],
    ) -> Result<Fetched, NetError> {
        let first = Url::parse(url).map_err(|e| NetError::InvalidUrl(e.to_string()))?;
        let first_origin = origin(&first);
        let mut current = first;
        for _hop in 0..=MAX_REDIRECTS {
            let (host, addr) = self.vet(&current).await?;
            let client = self.client(&host, addr)?;
            let mut req = client.request(method.clone(), current.clone());
            let same_origin = origin(&current) == first_origin;
            for (name, value) in headers {
                if !same_origin && name.eq_ignore_ascii_case(AUTHORIZATION.as_str()) {
                    continue;
                }
                let v = HeaderValue::from_str(value)
                    .map_err(|_| NetError::InvalidUrl(format!("bad header value for {name}")))?;
                req = req.header(*name, v);
            }
            match &body {
                Some(Body::Form(pairs)) => req = req.form(pairs),
                Some(Body::Json(bytes)) => {
                    req = req
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(bytes.clone())
                }
                None => {}
            }
            let mut resp = req
                .send()
                .await
                .map_err(|e| NetError::Network(e.without_url().to_string()))?;
            let status = resp.status();
            if status.is_redirection() {
                let loc = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| NetError::Network("redirect without Location".into()))?;
                current = current
                    .join(loc)
                    .map_err(|e| NetError::InvalidUrl(e.to_string()))?;
                continue;
            }
            if !status.is_success() && !accept_status.contains(&status.as_u16()) {
                return Err(NetError::Status {
                    status: status.as_u16(),
                    retry_after: parse_retry_after(resp.headers()),
                });
            }
            let cap = self.policy.max_body;
            if resp.content_length().is_some_and(|n| n > cap as u64) {
                return Err(NetError::TooLarge(cap));
            }
            let mut buf = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| NetError::Network(e.without_url().to_string()))?
            {
                if buf.len() + chunk.len() > cap {
                    return Err(NetError::TooLarge(cap));
                }
                buf.extend_from_slice(&chunk);
            }
            return Ok(Fetched {
                status,
                headers: resp.headers().clone(),
                body: Bytes::from(buf),
                final_origin: redact(&current),
            });
        }
        Err(NetError::TooManyRedirects)
    }

    /// Open a streamed GET (for large files): vetted and pinned like
    /// [`Http::send`]; the caller reads chunks under its own limits.
    pub async fn open_stream(&self, url: &str) -> Result<reqwest::Response, NetError> {
        let mut current = Url::parse(url).map_err(|e| NetError::InvalidUrl(e.to_string()))?;
        for _hop in 0..=MAX_REDIRECTS {
            let (host, addr) = self.vet(&current).await?;
            let client = self.client(&host, addr)?;
            let resp =
                tokio::time::timeout(self.policy.timeout, client.get(current.clone()).send())
                    .await
                    .map_err(|_| NetError::Timeout(self.policy.timeout.as_secs().max(1)))?
                    .map_err(|e| NetError::Network(e.without_url().to_string()))?;
            let status = resp.status();
            if status.is_redirection() {
                let loc = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| NetError::Network("redirect without Location".into()))?;
                current = current
                    .join(loc)
                    .map_err(|e| NetError::InvalidUrl(e.to_string()))?;
                continue;
            }
            if !status.is_success() {
                return Err(NetError::Status {
                    status: status.as_u16(),
                    retry_after: parse_retry_after(resp.headers()),
                });
            }
            return Ok(resp);
        }
        Err(NetError::TooManyRedirects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_vetting() {
        let strict = NetPolicy::default();
        let loop_ok = NetPolicy {
            allow_loopback: true,
            ..NetPolicy::default()
        };
        for s in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            let ip: IpAddr = s.parse().unwrap();
            assert!(!strict.private_allow().permits(ip), "{s}");
            assert!(loop_ok.private_allow().permits(ip), "{s}");
        }
        for s in [
            "10.0.0.1",
            "169.254.169.254",
            "192.168.1.1",
            "fd00::1",
            "0.0.0.0",
        ] {
            let ip: IpAddr = s.parse().unwrap();
            assert!(
                !loop_ok.private_allow().permits(ip),
                "{s} must stay refused with loopback allowed"
            );
        }
        assert!(strict.private_allow().permits("8.8.8.8".parse().unwrap()));
    }

    #[tokio::test]
    async fn refuses_before_connecting() {
        let http = Http::new(NetPolicy::default());
        let e = http
            .send(Method::GET, "http://127.0.0.1:9/x", &[], None, &[])
            .await
            .unwrap_err();
        assert!(matches!(e, NetError::Forbidden(..)), "{e}");
        let e = http
            .send(Method::GET, "file:///etc/passwd", &[], None, &[])
            .await
            .unwrap_err();
        assert!(matches!(e, NetError::InvalidUrl(_)), "{e}");
    }
}
