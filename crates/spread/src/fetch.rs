//! Fetching for liveness checks, behind a small trait so the state machine
//! and the checker are independent of how bytes are fetched.
//!
//! The production fetcher is the collector's ([`CollectorFetcher`] over
//! `echotrace_collector::Fetcher::refetch`): one GET with its redirects under
//! the collector's rules — the SSRF guard (every resolved address and every
//! redirect vetted; private addresses only where the operator allows them),
//! robots.txt (cached 24 h), per-host politeness with Heritrix's defaults
//! over a host clock shared through the store by every process (the slot is
//! held while the request runs), SOCKS5 proxies with remote DNS for Tor (an
//! `.onion` URL is refused without one), and caps on time and bytes. A
//! check therefore runs on exactly the politeness and proxy rules the crawl
//! runs on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use echotrace_collector::{FetchErrorKind, NetOptions};

/// A boxed `Send` future (keeps [`Fetcher`] object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a check reaches its URL: the sighting's source network options
/// (or the checker's defaults).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Route {
    /// Through this SOCKS5 proxy (`socks5h://host:port`, e.g. Tor's 9050).
    pub proxy: Option<String>,
    /// Do not read robots.txt (a source's audited setting).
    pub ignore_robots: bool,
    /// The source's own minimum delay between requests to one host.
    pub min_delay: Option<Duration>,
}

impl Route {
    /// `clearnet` or `proxy`, as recorded with each check.
    pub fn via(&self) -> &'static str {
        if self.proxy.is_some() {
            "proxy"
        } else {
            "clearnet"
        }
    }
}

/// What a host served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub status: u16,
    /// After redirects.
    pub final_url: String,
    pub body: Vec<u8>,
    /// The body was cut at the size cap (it cannot be re-hashed).
    pub truncated: bool,
}

/// Why nothing (usable) was served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchFailure {
    #[error("DNS: {0}")]
    Dns(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("refused by policy: {0}")]
    Policy(String),
    #[error("proxy: {0}")]
    Proxy(String),
    #[error("body over the size cap: {0}")]
    TooLarge(String),
    /// The host's politeness slot is further off than a check waits; the
    /// check is handed back, not recorded (`retry_at`, Unix ms).
    #[error("politeness: host busy")]
    Deferred(Option<i64>),
    #[error("{0}")]
    Other(String),
}

pub type FetchResult = Result<Fetched, FetchFailure>;

/// Fetches one URL for a liveness check.
pub trait Fetcher: Send + Sync {
    fn fetch<'a>(&'a self, url: &'a str, route: &'a Route) -> BoxFuture<'a, FetchResult>;
}

/// The collector's fetcher as a liveness [`Fetcher`].
#[derive(Clone)]
pub struct CollectorFetcher(pub Arc<echotrace_collector::Fetcher>);

impl Fetcher for CollectorFetcher {
    fn fetch<'a>(&'a self, url: &'a str, route: &'a Route) -> BoxFuture<'a, FetchResult> {
        Box::pin(async move {
            let net = NetOptions {
                proxy: route.proxy.clone(),
                ignore_robots: route.ignore_robots,
                min_delay: route.min_delay,
            };
            let r = self.0.refetch(url, &net).await;
            if let (Some(status), Some(body)) = (r.status, r.body) {
                // Any answer, 4xx/5xx included: the verdict reads it.
                return Ok(Fetched {
                    status,
                    final_url: r.final_url.unwrap_or_else(|| url.to_string()),
                    body: body.to_vec(),
                    truncated: false,
                });
            }
            let message = r.message.unwrap_or_default();
            Err(match r.error {
                Some(FetchErrorKind::Dns) => FetchFailure::Dns(message),
                Some(FetchErrorKind::Timeout) => FetchFailure::Timeout(message),
                Some(FetchErrorKind::Refused | FetchErrorKind::Connect | FetchErrorKind::Tls) => {
                    FetchFailure::Connect(message)
                }
                Some(FetchErrorKind::Proxy | FetchErrorKind::ProxyConfig) => {
                    FetchFailure::Proxy(message)
                }
                Some(
                    FetchErrorKind::OnionWithoutProxy
                    | FetchErrorKind::ForbiddenAddress
                    | FetchErrorKind::InvalidUrl
                    | FetchErrorKind::Scheme
                    | FetchErrorKind::RobotsDisallowed,
                ) => FetchFailure::Policy(message),
                Some(FetchErrorKind::TooLarge) => FetchFailure::TooLarge(message),
                Some(FetchErrorKind::Deferred) => FetchFailure::Deferred(None),
                _ => FetchFailure::Other(message),
            })
        })
    }
}
