//! The fetcher: one polite, SSRF-safe, bounded HTTP GET with its redirects.
//!
//! Every request — a page, a file, a robots.txt, a liveness re-check —
//! goes through [`Fetcher::fetch`], which applies, per hop:
//! * the URL rules of [`crate::guard`] (http/https, no credentials, no
//!   refused address: names through the [`GuardedResolver`], IP literals
//!   here), and the `.onion` rule: an onion name is fetched only through a
//!   source's SOCKS proxy, never resolved or dialled directly;
//! * robots.txt for the hop's origin (unless the source ignores it);
//! * the host's politeness slot ([`crate::politeness`]), held while the
//!   request runs;
//! * a deadline covering connect, headers and the whole body, and a body
//!   cap checked against `Content-Length` up front and against the bytes
//!   actually streamed (after gzip/deflate decoding, so a compression bomb
//!   is cut at the cap like an endless body);
//! * redirects followed by hand (at most [`FetchConfig::max_redirects`]),
//!   each `Location` re-vetted; a URL seen twice in one chain is a loop.
//!
//! Through a proxy (`socks5h://…`, per source), names are resolved by the
//! proxy (so DNS never leaks and `.onion` works); `socks5://` (local DNS) is
//! refused for that reason.
//!
//! [`Fetcher::refetch`] is the single-URL call spread tracking uses for
//! liveness re-checks: the same rules, and an outcome (status, final URL,
//! body hash, error kind) instead of an error.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use echotrace_store::{now_ms, Store};
use serde::Serialize;

use crate::guard::{ip_literal, vet_url, GuardError, GuardedResolver, PrivateAllow};
use crate::politeness::{Acquire, Politeness, PolitenessConfig};
use crate::robots::{origin_of, RobotsCache, RobotsRules, ROBOTS_MAX_BYTES};

/// Fetcher settings.
#[derive(Clone, Debug)]
pub struct FetchConfig {
    /// Sent on every request; must carry the operator's contact URL
    /// ([`user_agent`]).
    pub user_agent: String,
    /// Largest body accepted (after content decoding), bytes.
    pub max_body_bytes: u64,
    /// Deadline of one request: connect, headers and body.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_redirects: usize,
    /// Non-public addresses the operator allows (none by default).
    pub allow_private: PrivateAllow,
    pub politeness: PolitenessConfig,
    /// How long robots.txt rules are cached.
    pub robots_ttl: Duration,
    /// Longest a caller of [`Fetcher::fetch`] waits for a host's slot
    /// before the fetch is [`FetchErrorKind::Deferred`].
    pub max_politeness_wait: Duration,
    /// Idle keep-alive connections kept per host (the collector raises it
    /// to its worker count, so concurrent fetches from one host reuse
    /// their connections instead of reconnecting).
    pub max_idle_per_host: usize,
}

impl FetchConfig {
    /// Defaults with a User-Agent carrying `contact` (an http(s) URL or a
    /// `mailto:` address). Errors name the problem.
    pub fn new(contact: &str) -> Result<FetchConfig, String> {
        Ok(FetchConfig {
            user_agent: user_agent(contact)?,
            max_body_bytes: 32 << 20,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_redirects: 5,
            allow_private: PrivateAllow::None,
            politeness: PolitenessConfig::default(),
            robots_ttl: Duration::from_secs(24 * 3600),
            max_politeness_wait: Duration::from_secs(60),
            max_idle_per_host: 4,
        })
    }
}

/// `echotrace/<version> (+<contact>)`: the User-Agent the collector sends.
/// `contact` must be an http(s) URL or a `mailto:` address so site owners
/// can reach the operator.
pub fn user_agent(contact: &str) -> Result<String, String> {
    let c = contact.trim();
    let ok = match url::Url::parse(c) {
        Ok(u) => {
            (matches!(u.scheme(), "http" | "https") && u.has_host())
                || (u.scheme() == "mailto" && c.contains('@'))
        }
        Err(_) => false,
    };
    if !ok
        || c.chars()
            .any(|ch| ch.is_control() || ch == '(' || ch == ')')
    {
        return Err(format!(
            "the collector's contact must be an http(s) URL or a mailto: address (got {c:?}); \
             it goes into the User-Agent so site owners can reach the operator"
        ));
    }
    Ok(format!("echotrace/{} (+{c})", env!("CARGO_PKG_VERSION")))
}

/// Per-source network options.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetOptions {
    /// `socks5h://host:port`: every request of the source goes through it.
    pub proxy: Option<String>,
    /// Do not read or obey robots.txt (audited when a source sets it).
    pub ignore_robots: bool,
    /// Overrides the politeness minimum delay for this source.
    pub min_delay: Option<Duration>,
}

/// What went wrong, as a stable kind (for sighting errors, liveness states,
/// metrics) plus a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchErrorKind {
    InvalidUrl,
    Scheme,
    /// An `.onion` URL without a SOCKS proxy.
    OnionWithoutProxy,
    /// A `socks5://` proxy (local DNS) or an unparsable proxy setting.
    ProxyConfig,
    ForbiddenAddress,
    /// The name does not resolve.
    Dns,
    /// The connection was refused.
    Refused,
    Timeout,
    /// Another connection failure (reset, unreachable…).
    Connect,
    Tls,
    /// The SOCKS proxy failed or refused the connection.
    Proxy,
    TooLarge,
    TooManyRedirects,
    RedirectLoop,
    RobotsDisallowed,
    /// The body could not be read or decoded (e.g. corrupt gzip).
    Body,
    /// The final answer was an HTTP error status (4xx/5xx).
    Http,
    /// The host's politeness slot is further away than the caller waits.
    Deferred,
    /// The store behind politeness failed.
    Store,
}

impl FetchErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FetchErrorKind::InvalidUrl => "invalid_url",
            FetchErrorKind::Scheme => "scheme",
            FetchErrorKind::OnionWithoutProxy => "onion_without_proxy",
            FetchErrorKind::ProxyConfig => "proxy_config",
            FetchErrorKind::ForbiddenAddress => "forbidden_address",
            FetchErrorKind::Dns => "dns",
            FetchErrorKind::Refused => "refused",
            FetchErrorKind::Timeout => "timeout",
            FetchErrorKind::Connect => "connect",
            FetchErrorKind::Tls => "tls",
            FetchErrorKind::Proxy => "proxy",
            FetchErrorKind::TooLarge => "too_large",
            FetchErrorKind::TooManyRedirects => "too_many_redirects",
            FetchErrorKind::RedirectLoop => "redirect_loop",
            FetchErrorKind::RobotsDisallowed => "robots_disallowed",
            FetchErrorKind::Body => "body",
            FetchErrorKind::Http => "http",
            FetchErrorKind::Deferred => "deferred",
            FetchErrorKind::Store => "store",
        }
    }

    /// Worth retrying later (the remote may recover)?
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            FetchErrorKind::Dns
                | FetchErrorKind::Refused
                | FetchErrorKind::Timeout
                | FetchErrorKind::Connect
                | FetchErrorKind::Proxy
                | FetchErrorKind::Body
                | FetchErrorKind::Store
        )
    }
}

/// A failed fetch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    pub kind: FetchErrorKind,
    pub message: String,
    /// When the host frees up ([`FetchErrorKind::Deferred`]), Unix ms.
    pub retry_at: Option<i64>,
}

impl FetchError {
    pub fn new(kind: FetchErrorKind, message: impl Into<String>) -> Self {
        FetchError {
            kind,
            message: message.into(),
            retry_at: None,
        }
    }
}

impl From<GuardError> for FetchError {
    fn from(e: GuardError) -> Self {
        let kind = match &e {
            GuardError::InvalidUrl(_) => FetchErrorKind::InvalidUrl,
            GuardError::Scheme => FetchErrorKind::Scheme,
            GuardError::ForbiddenAddress(_) => FetchErrorKind::ForbiddenAddress,
            GuardError::Resolve(_) => FetchErrorKind::Dns,
        };
        FetchError::new(kind, e.to_string())
    }
}

/// A completed fetch (any final status; see [`Fetched::error_kind`]).
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The URL asked for.
    pub url: String,
    /// The URL that answered (after redirects).
    pub final_url: String,
    pub status: u16,
    /// Response headers of the final hop (after content decoding, so
    /// `Content-Encoding`/`Content-Length` of a compressed body are gone).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Lowercase hex SHA-256 of `body`.
    pub sha256: String,
    pub remote_ip: Option<IpAddr>,
    /// When the final request started, Unix ms.
    pub fetched_at: i64,
    pub elapsed: Duration,
    /// `(url, status)` of each redirect hop.
    pub redirects: Vec<(String, u16)>,
    /// Time spent waiting for politeness slots, and how many waits.
    pub politeness_wait: Duration,
    pub politeness_waits: u32,
}

impl Fetched {
    /// The `Content-Type` header, lowercased, without parameters.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// [`FetchErrorKind::Http`] for a 4xx/5xx answer.
    pub fn error_kind(&self) -> Option<FetchErrorKind> {
        (self.status >= 400).then_some(FetchErrorKind::Http)
    }
}

/// The outcome of a liveness re-fetch ([`Fetcher::refetch`]).
#[derive(Clone, Debug, Serialize)]
pub struct Refetch {
    pub url: String,
    pub final_url: Option<String>,
    /// The final HTTP status, when the remote answered.
    pub status: Option<u16>,
    /// SHA-256 of the body within the caps, when one was read.
    pub sha256: Option<String>,
    #[serde(skip)]
    pub body: Option<Bytes>,
    pub content_type: Option<String>,
    /// Why it failed: a transport error, or `http` for a 4xx/5xx status.
    pub error: Option<FetchErrorKind>,
    pub message: Option<String>,
    pub fetched_at: i64,
}

/// How a chain of requests is run.
#[derive(Clone, Copy)]
struct Chain {
    robots: bool,
    max_bytes: u64,
    /// Over the cap: keep the first `max_bytes` (robots.txt) instead of failing.
    truncate: bool,
    max_wait: Duration,
}

/// The collector's HTTP client (see the module doc). Cheap to share
/// (`Arc` it); connections are pooled per proxy.
pub struct Fetcher {
    config: FetchConfig,
    direct: reqwest::Client,
    proxied: Mutex<HashMap<String, reqwest::Client>>,
    robots: RobotsCache,
    politeness: Politeness,
}

impl Fetcher {
    /// A fetcher. `store`: share politeness slots with every process on
    /// that database (else per process); `holder` names this process.
    pub fn new(
        config: FetchConfig,
        store: Option<Store>,
        holder: &str,
    ) -> Result<Self, FetchError> {
        let direct = build_client(&config, None)?;
        Ok(Fetcher {
            robots: RobotsCache::new(config.robots_ttl),
            politeness: Politeness::new(config.politeness.clone(), store, holder.to_string()),
            direct,
            proxied: Mutex::new(HashMap::new()),
            config,
        })
    }

    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    pub fn politeness(&self) -> &Politeness {
        &self.politeness
    }

    /// GET `url` under every rule of the module doc. Any final status is
    /// `Ok` (check [`Fetched::error_kind`]); transport failures, refused
    /// URLs, caps and robots are errors.
    pub async fn fetch(&self, url: &str, net: &NetOptions) -> Result<Fetched, FetchError> {
        self.fetch_waiting(url, net, self.config.max_politeness_wait)
            .await
    }

    /// [`Fetcher::fetch`], waiting at most `max_wait` for each politeness
    /// slot ([`FetchErrorKind::Deferred`] with `retry_at` beyond that).
    pub async fn fetch_waiting(
        &self,
        url: &str,
        net: &NetOptions,
        max_wait: Duration,
    ) -> Result<Fetched, FetchError> {
        let chain = Chain {
            robots: !net.ignore_robots,
            max_bytes: self.config.max_body_bytes,
            truncate: false,
            max_wait,
        };
        self.chain(url, net, chain).await
    }

    /// One liveness re-check of `url`: same politeness, robots, proxy and
    /// caps as a crawl fetch; never an error, always an outcome.
    pub async fn refetch(&self, url: &str, net: &NetOptions) -> Refetch {
        let fetched_at = now_ms();
        match self.fetch(url, net).await {
            Ok(f) => Refetch {
                url: url.to_string(),
                error: f.error_kind(),
                message: f.error_kind().map(|_| format!("HTTP {}", f.status)),
                final_url: Some(f.final_url.clone()),
                status: Some(f.status),
                sha256: Some(f.sha256.clone()),
                content_type: f.content_type(),
                body: Some(f.body),
                fetched_at: f.fetched_at,
            },
            Err(e) => Refetch {
                url: url.to_string(),
                final_url: None,
                status: None,
                sha256: None,
                body: None,
                content_type: None,
                error: Some(e.kind),
                message: Some(e.message),
                fetched_at,
            },
        }
    }

    fn client(&self, net: &NetOptions) -> Result<reqwest::Client, FetchError> {
        let Some(proxy) = net.proxy.as_deref() else {
            return Ok(self.direct.clone());
        };
        let mut m = self
            .proxied
            .lock()
            .map_err(|_| FetchError::new(FetchErrorKind::ProxyConfig, "proxy table poisoned"))?;
        if let Some(c) = m.get(proxy) {
            return Ok(c.clone());
        }
        let c = build_client(&self.config, Some(proxy))?;
        if m.len() > 64 {
            m.clear();
        }
        m.insert(proxy.to_string(), c.clone());
        Ok(c)
    }

    async fn chain(
        &self,
        url: &str,
        net: &NetOptions,
        chain: Chain,
    ) -> Result<Fetched, FetchError> {
        let mut current = url::Url::parse(url.trim()).map_err(|e| {
            FetchError::new(FetchErrorKind::InvalidUrl, format!("invalid URL: {e}"))
        })?;
        let client = self.client(net)?;
        let mut seen = HashSet::new();
        let mut redirects = Vec::new();
        let mut wait = Duration::ZERO;
        let mut waits = 0u32;
        for _hop in 0..=self.config.max_redirects {
            let (host, _port) = vet_url(&current)?;
            self.vet_destination(&host, net)?;
            current.set_fragment(None);
            if !seen.insert(current.as_str().to_string()) {
                return Err(FetchError::new(
                    FetchErrorKind::RedirectLoop,
                    format!("redirect loop at {current}"),
                ));
            }
            if chain.robots {
                let rules = self.robots_for(&current, net, chain.max_wait).await?;
                if !rules.allowed(current.as_str()) {
                    return Err(FetchError::new(
                        FetchErrorKind::RobotsDisallowed,
                        format!("robots.txt of {host} disallows {}", current.path()),
                    ));
                }
            }
            let slot = match self
                .politeness
                .acquire(&host, net.min_delay, self.config.timeout, chain.max_wait)
                .await
                .map_err(|e| FetchError::new(FetchErrorKind::Store, e.to_string()))?
            {
                Acquire::Granted(s) => s,
                Acquire::Deferred(at) => {
                    let mut e = FetchError::new(
                        FetchErrorKind::Deferred,
                        format!("politeness: {host} is busy"),
                    );
                    e.retry_at = Some(at);
                    return Err(e);
                }
            };
            if slot.did_wait {
                wait += slot.waited;
                waits += 1;
            }
            let started = Instant::now();
            let fetched_at = now_ms();
            let result = tokio::time::timeout(
                self.config.timeout,
                send(&client, &current, chain.max_bytes, chain.truncate),
            )
            .await;
            let took = started.elapsed();
            self.politeness
                .release(slot, took)
                .await
                .map_err(|e| FetchError::new(FetchErrorKind::Store, e.to_string()))?;
            let answer = match result {
                Ok(r) => r?,
                Err(_) => {
                    return Err(FetchError::new(
                        FetchErrorKind::Timeout,
                        format!("no complete answer within {:?}", self.config.timeout),
                    ))
                }
            };
            if let Some(location) = answer.location.as_deref() {
                let next = current.join(location).map_err(|e| {
                    FetchError::new(
                        FetchErrorKind::InvalidUrl,
                        format!("bad redirect Location: {e}"),
                    )
                })?;
                redirects.push((current.to_string(), answer.status));
                current = next;
                continue;
            }
            let sha256 = echotrace_signals::digest::sha256_hex(&answer.body);
            return Ok(Fetched {
                url: url.to_string(),
                final_url: current.to_string(),
                status: answer.status,
                headers: answer.headers,
                body: answer.body,
                sha256,
                remote_ip: answer.remote_ip,
                fetched_at,
                elapsed: took,
                redirects,
                politeness_wait: wait,
                politeness_waits: waits,
            });
        }
        Err(FetchError::new(
            FetchErrorKind::TooManyRedirects,
            format!("more than {} redirects", self.config.max_redirects),
        ))
    }

    /// The `.onion` rule and the address rule for IP literals.
    fn vet_destination(&self, host: &str, net: &NetOptions) -> Result<(), FetchError> {
        let h = host.trim_end_matches('.').to_ascii_lowercase();
        if (h.ends_with(".onion") || h == "onion") && net.proxy.is_none() {
            return Err(FetchError::new(
                FetchErrorKind::OnionWithoutProxy,
                format!(
                    "{host} is a Tor onion service: set the source's proxy \
                     (e.g. \"socks5h://127.0.0.1:9050\") to fetch it; it is never resolved \
                     or dialled directly"
                ),
            ));
        }
        if let Some(ip) = ip_literal(host) {
            if !self.config.allow_private.permits(ip) {
                return Err(GuardError::ForbiddenAddress(ip).into());
            }
        }
        Ok(())
    }

    /// The robots.txt rules of `url`'s origin, fetched (politely) when not
    /// cached.
    async fn robots_for(
        &self,
        url: &url::Url,
        net: &NetOptions,
        max_wait: Duration,
    ) -> Result<Arc<RobotsRules>, FetchError> {
        let origin = origin_of(url)
            .ok_or_else(|| FetchError::new(FetchErrorKind::InvalidUrl, "URL has no host"))?;
        if let Some(r) = self.robots.get(&origin) {
            return Ok(r);
        }
        let chain = Chain {
            robots: false,
            max_bytes: ROBOTS_MAX_BYTES as u64,
            truncate: true,
            max_wait,
        };
        let robots_url = format!("{origin}/robots.txt");
        let rules = match Box::pin(self.chain(&robots_url, net, chain)).await {
            Ok(f) => RobotsRules::from_response(f.status, &f.body),
            // A robots.txt that redirects in circles or too often is
            // treated as absent (Google: after 5 redirects, a 404).
            Err(e)
                if matches!(
                    e.kind,
                    FetchErrorKind::TooManyRedirects
                        | FetchErrorKind::RedirectLoop
                        | FetchErrorKind::ForbiddenAddress
                        | FetchErrorKind::InvalidUrl
                        | FetchErrorKind::Scheme
                ) =>
            {
                RobotsRules::AllowAll
            }
            Err(e) => return Err(e),
        };
        if let Some(host) = url.host_str() {
            self.politeness.set_crawl_delay(host, rules.crawl_delay());
        }
        Ok(self.robots.put(&origin, rules))
    }
}

/// Check a proxy setting: only `socks5h://host:port` (names resolved by
/// the proxy, so DNS never leaks).
pub fn validate_proxy(proxy: &str) -> Result<(), String> {
    let u =
        url::Url::parse(proxy.trim()).map_err(|e| format!("proxy {proxy:?} is not a URL: {e}"))?;
    match u.scheme() {
        "socks5h" => {}
        "socks5" => {
            return Err(format!(
                "proxy {proxy:?}: use socks5h:// (names resolved by the proxy); socks5:// \
                 resolves names locally, which leaks DNS and cannot reach .onion names"
            ))
        }
        other => {
            return Err(format!(
                "proxy {proxy:?}: unsupported scheme {other:?} (use socks5h://host:port)"
            ))
        }
    }
    if u.host_str().is_none() || u.port().is_none() {
        return Err(format!("proxy {proxy:?}: needs a host and a port"));
    }
    Ok(())
}

fn build_client(config: &FetchConfig, proxy: Option<&str>) -> Result<reqwest::Client, FetchError> {
    let mut b = reqwest::Client::builder()
        .user_agent(config.user_agent.clone())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.connect_timeout)
        .dns_resolver(Arc::new(GuardedResolver::new(config.allow_private.clone())))
        .pool_max_idle_per_host(config.max_idle_per_host.max(1))
        .tcp_nodelay(true);
    b = match proxy {
        None => b.no_proxy(),
        Some(p) => {
            validate_proxy(p).map_err(|m| FetchError::new(FetchErrorKind::ProxyConfig, m))?;
            let proxy = reqwest::Proxy::all(p.trim()).map_err(|e| {
                FetchError::new(FetchErrorKind::ProxyConfig, format!("proxy {p:?}: {e}"))
            })?;
            b.proxy(proxy)
        }
    };
    b.build()
        .map_err(|e| FetchError::new(FetchErrorKind::ProxyConfig, format!("HTTP client: {e}")))
}

/// One hop's answer.
struct Answer {
    status: u16,
    /// Set for a redirect status with a Location.
    location: Option<String>,
    headers: Vec<(String, String)>,
    body: Bytes,
    remote_ip: Option<IpAddr>,
}

async fn send(
    client: &reqwest::Client,
    url: &url::Url,
    max_bytes: u64,
    truncate: bool,
) -> Result<Answer, FetchError> {
    let mut resp = client.get(url.clone()).send().await.map_err(classify)?;
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let remote_ip = resp.remote_addr().map(|a| a.ip());
    if matches!(status, 301 | 302 | 303 | 307 | 308) {
        if let Some(loc) = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
        {
            return Ok(Answer {
                status,
                location: Some(loc.to_string()),
                headers,
                body: Bytes::new(),
                remote_ip,
            });
        }
    }
    if !truncate && resp.content_length().is_some_and(|n| n > max_bytes) {
        return Err(FetchError::new(
            FetchErrorKind::TooLarge,
            format!(
                "Content-Length {} exceeds the {max_bytes}-byte cap",
                resp.content_length().unwrap_or(0)
            ),
        ));
    }
    let cap = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > cap {
            if truncate {
                let room = cap - body.len();
                body.extend_from_slice(&chunk[..room]);
                break;
            }
            return Err(FetchError::new(
                FetchErrorKind::TooLarge,
                format!("body exceeds the {max_bytes}-byte cap"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        location: None,
        headers,
        body: Bytes::from(body),
        remote_ip,
    })
}

/// Map a reqwest error to a kind by walking its causes. Messages never
/// carry the URL (the caller has it).
fn classify(e: reqwest::Error) -> FetchError {
    let mut kind = if e.is_timeout() {
        FetchErrorKind::Timeout
    } else if e.is_body() || e.is_decode() {
        FetchErrorKind::Body
    } else {
        // Connection failures and anything unclassified.
        FetchErrorKind::Connect
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    let mut detail = String::new();
    while let Some(s) = source {
        if let Some(g) = s.downcast_ref::<GuardError>() {
            return FetchError::from(g.clone());
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => kind = FetchErrorKind::Refused,
                std::io::ErrorKind::TimedOut => kind = FetchErrorKind::Timeout,
                _ => {}
            }
        }
        let text = s.to_string();
        let lower = text.to_ascii_lowercase();
        if lower.contains("socks") {
            kind = FetchErrorKind::Proxy;
        } else if kind == FetchErrorKind::Connect
            && (lower.contains("certificate")
                || lower.contains("tls")
                || lower.contains("handshake"))
        {
            kind = FetchErrorKind::Tls;
        }
        detail = text;
        source = s.source();
    }
    let what = match kind {
        FetchErrorKind::Timeout => "timed out",
        FetchErrorKind::Refused => "connection refused",
        FetchErrorKind::Body => "could not read the body",
        FetchErrorKind::Proxy => "SOCKS proxy failed",
        FetchErrorKind::Tls => "TLS failed",
        _ => "connection failed",
    };
    let mut message = if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {detail}")
    };
    if let Some(u) = e.url() {
        message = message.replace(u.as_str(), "<url>");
    }
    FetchError::new(kind, message)
}
