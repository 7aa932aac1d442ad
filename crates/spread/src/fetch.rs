//! Fetching for liveness checks, behind a small trait so the checker runs
//! on any fetcher: [`HttpFetcher`] here (reqwest, per-host politeness,
//! SOCKS5 proxies for Tor, an SSRF guard), or the collector's once it is
//! wired in.
//!
//! * **One GET per check**, redirects followed by hand (at most
//!   [`MAX_REDIRECTS`]) so every hop is vetted and the final URL is known
//!   (removal pages are often a redirect).
//! * **SSRF guard** (clearnet): the client resolves names through
//!   [`PublicResolver`], which refuses non-public addresses, and IP
//!   literals are vetted before connecting; the operator can allow private
//!   addresses (`allow_private`, for local sites and tests).
//! * **Tor**: a route with a `socks5h://` proxy resolves names *at the
//!   proxy* (no local DNS, so `.onion` works and nothing leaks); an
//!   `.onion` URL without a proxy is refused, never looked up.
//! * **Bounded**: whole-check timeout, bodies streamed and cut at
//!   `max_bytes` (the verdict is then inconclusive: a partial body cannot
//!   be re-hashed).
//! * **Politeness** ([`HostGate`]): one request at a time per host, the
//!   next one `delay` after the previous one finished, across all workers
//!   of a process; slots are reserved ahead so a worker can hand back a
//!   check whose slot is too far off.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Most redirects followed per check.
pub const MAX_REDIRECTS: usize = 5;

/// A boxed `Send` future (keeps [`Fetcher`] object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a check reaches the URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    Clearnet,
    /// Through a SOCKS5 proxy (`socks5h://host:port`, e.g. Tor's 9050).
    Proxy(String),
}

impl Route {
    /// `clearnet` or `proxy`, as recorded with each check.
    pub fn via(&self) -> &'static str {
        match self {
            Route::Clearnet => "clearnet",
            Route::Proxy(_) => "proxy",
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
    /// The body was cut at the size cap.
    pub truncated: bool,
}

/// Why nothing was served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchFailure {
    #[error("DNS: {0}")]
    Dns(String),
    #[error("timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("refused by policy: {0}")]
    Policy(String),
    #[error("proxy: {0}")]
    Proxy(String),
    #[error("too many redirects")]
    Redirects,
    #[error("{0}")]
    Other(String),
}

pub type FetchResult = Result<Fetched, FetchFailure>;

/// Fetches one URL for a liveness check.
pub trait Fetcher: Send + Sync {
    fn fetch<'a>(&'a self, url: &'a str, route: &'a Route) -> BoxFuture<'a, FetchResult>;
}

// ----- politeness --------------------------------------------------------------

/// Per-host spacing of requests (see the module doc).
pub struct HostGate {
    delay: Duration,
    /// Next free slot per host (reservations).
    next: Mutex<HashMap<String, Instant>>,
    /// When the last request to each host actually started (one lock per
    /// host, so waiting for one host never holds up another).
    started: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
}

impl HostGate {
    pub fn new(delay: Duration) -> HostGate {
        HostGate {
            delay,
            next: Mutex::new(HashMap::new()),
            started: Mutex::new(HashMap::new()),
        }
    }

    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Reserve this host's next free slot if it starts by `deadline`;
    /// returns how long to wait for it (None: nothing reserved).
    pub fn reserve(&self, host: &str, deadline: Instant) -> Option<Duration> {
        if self.delay.is_zero() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let key = host.to_ascii_lowercase();
        let mut next = match self.next.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if next.len() > 100_000 {
            next.retain(|_, t| *t > now);
        }
        let slot = next.get(&key).copied().unwrap_or(now).max(now);
        if slot > deadline {
            return None;
        }
        next.insert(key, slot + self.delay);
        Some(slot - now)
    }

    /// Call right before sending to `host` (after the reserved slot):
    /// waits until `delay` has passed since the previous request to that
    /// host *finished*, and holds the host until the returned permit is
    /// dropped (when this request has finished). So a request reaches the
    /// host at least `delay` after the previous one did, whatever the
    /// scheduling or network jitter: the previous one arrived before its
    /// answer came back, and this one leaves `delay` after that.
    pub async fn begin(&self, host: &str) -> HostPermit {
        if self.delay.is_zero() {
            return HostPermit(None);
        }
        let key = host.to_ascii_lowercase();
        let slot = {
            let mut map = match self.started.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if map.len() > 100_000 {
                // Drop hosts nobody is waiting on.
                map.retain(|_, m| Arc::strong_count(m) > 1);
            }
            map.entry(key).or_default().clone()
        };
        let last = slot.lock_owned().await;
        if let Some(t) = *last {
            tokio::time::sleep_until(t + self.delay).await;
        }
        HostPermit(Some(last))
    }

    /// Wait for this host's next free slot, reserving it, then
    /// [`HostGate::begin`]. Returns how long it waited for the slot.
    pub async fn wait(&self, host: &str) -> Duration {
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let wait = self.reserve(host, far).unwrap_or_default();
        tokio::time::sleep(wait).await;
        drop(self.begin(host).await);
        wait
    }
}

/// A host held for one request ([`HostGate::begin`]); dropping it marks
/// the request finished.
pub struct HostPermit(Option<tokio::sync::OwnedMutexGuard<Option<Instant>>>);

impl Drop for HostPermit {
    fn drop(&mut self) {
        if let Some(g) = self.0.as_mut() {
            **g = Some(Instant::now());
        }
    }
}

// ----- the HTTP fetcher ---------------------------------------------------------

/// Settings of [`HttpFetcher`].
#[derive(Clone, Debug)]
pub struct HttpFetchConfig {
    /// Whole-check deadline (DNS, connect, redirects, body).
    pub timeout: Duration,
    /// Largest body read; the rest is not downloaded.
    pub max_bytes: usize,
    /// Allow loopback/private/link-local targets (local sites, tests).
    pub allow_private: bool,
    /// Sent with every request; should carry the operator's contact URL.
    pub user_agent: String,
}

impl Default for HttpFetchConfig {
    fn default() -> Self {
        HttpFetchConfig {
            timeout: Duration::from_secs(20),
            max_bytes: 32 << 20,
            allow_private: false,
            user_agent: concat!(
                "echotrace-liveness/",
                env!("CARGO_PKG_VERSION"),
                " (+https://example.invalid/echotrace)"
            )
            .to_string(),
        }
    }
}

/// True if `ip` is a public unicast address (no loopback, private,
/// link-local, CGNAT, multicast, documentation or reserved ranges; IPv6
/// unique-local and link-local; IPv4-mapped addresses judged by their IPv4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(a == 0
                || a == 10
                || a == 127
                || (a == 100 && (64..128).contains(&b))
                || (a == 169 && b == 254)
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 0 && (c == 0 || c == 2))
                || (a == 192 && b == 168)
                || (a == 198 && (b == 18 || b == 19))
                || (a == 198 && b == 51 && c == 100)
                || (a == 203 && b == 0 && c == 113)
                || a >= 224)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_unspecified()
                || v6.is_loopback()
                || (s[0] & 0xff00) == 0xff00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || s[0] == 0)
        }
    }
}

/// reqwest DNS resolver that refuses names resolving to non-public
/// addresses (any answer non-public refuses the name).
#[derive(Clone, Debug)]
pub struct PublicResolver;

/// The error a refused or failed resolution carries (found again in the
/// reqwest error chain to classify the failure).
#[derive(Debug)]
struct ResolveError {
    policy: bool,
    message: String,
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ResolveError {}

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(resolve_vetted(name.as_str().to_string(), true))
    }
}

/// Resolver used when private addresses are allowed: classifies failures
/// the same way.
#[derive(Clone, Debug)]
pub struct AnyResolver;

impl reqwest::dns::Resolve for AnyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(resolve_vetted(name.as_str().to_string(), false))
    }
}

async fn resolve_vetted(
    host: String,
    public_only: bool,
) -> Result<reqwest::dns::Addrs, Box<dyn std::error::Error + Send + Sync>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
        .await
        .map_err(|e| {
            Box::new(ResolveError {
                policy: false,
                message: format!("cannot resolve {host}: {e}"),
            }) as Box<dyn std::error::Error + Send + Sync>
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Box::new(ResolveError {
            policy: false,
            message: format!("{host} has no addresses"),
        }));
    }
    if public_only {
        if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(Box::new(ResolveError {
                policy: true,
                message: format!("{host} resolves to a non-public address ({})", bad.ip()),
            }));
        }
    }
    Ok(Box::new(addrs.into_iter()))
}

/// The reqwest-based fetcher (see the module doc).
pub struct HttpFetcher {
    config: HttpFetchConfig,
    clearnet: reqwest::Client,
    proxied: Mutex<HashMap<String, reqwest::Client>>,
}

impl HttpFetcher {
    pub fn new(config: HttpFetchConfig) -> Result<HttpFetcher, String> {
        let builder = Self::base(&config).no_proxy();
        let builder = if config.allow_private {
            builder.dns_resolver(Arc::new(AnyResolver))
        } else {
            builder.dns_resolver(Arc::new(PublicResolver))
        };
        let clearnet = builder.build().map_err(|e| e.to_string())?;
        Ok(HttpFetcher {
            config,
            clearnet,
            proxied: Mutex::new(HashMap::new()),
        })
    }

    fn base(config: &HttpFetchConfig) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(config.user_agent.clone())
            .pool_max_idle_per_host(4)
    }

    fn client(&self, route: &Route) -> Result<reqwest::Client, FetchFailure> {
        match route {
            Route::Clearnet => Ok(self.clearnet.clone()),
            Route::Proxy(proxy) => {
                let mut map = self
                    .proxied
                    .lock()
                    .map_err(|_| FetchFailure::Other("proxy client cache poisoned".into()))?;
                if let Some(c) = map.get(proxy) {
                    return Ok(c.clone());
                }
                let p = reqwest::Proxy::all(proxy)
                    .map_err(|e| FetchFailure::Proxy(format!("bad proxy URL: {e}")))?;
                let c = Self::base(&self.config)
                    .proxy(p)
                    .build()
                    .map_err(|e| FetchFailure::Proxy(e.to_string()))?;
                map.insert(proxy.clone(), c.clone());
                Ok(c)
            }
        }
    }

    async fn fetch_inner(&self, url: &str, route: &Route) -> FetchResult {
        let client = self.client(route)?;
        let mut current =
            reqwest::Url::parse(url).map_err(|e| FetchFailure::Policy(format!("bad URL: {e}")))?;
        for _hop in 0..=MAX_REDIRECTS {
            vet_url(&current, route, self.config.allow_private)?;
            let resp = client
                .get(current.clone())
                .send()
                .await
                .map_err(|e| classify(&e))?;
            let status = resp.status();
            if status.is_redirection() {
                if let Some(loc) = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                {
                    current = current
                        .join(loc)
                        .map_err(|e| FetchFailure::Other(format!("bad redirect: {e}")))?;
                    continue;
                }
            }
            return read_capped(resp, current.to_string(), self.config.max_bytes).await;
        }
        Err(FetchFailure::Redirects)
    }
}

impl Fetcher for HttpFetcher {
    fn fetch<'a>(&'a self, url: &'a str, route: &'a Route) -> BoxFuture<'a, FetchResult> {
        Box::pin(async move {
            match tokio::time::timeout(self.config.timeout, self.fetch_inner(url, route)).await {
                Ok(r) => r,
                Err(_) => Err(FetchFailure::Timeout),
            }
        })
    }
}

fn vet_url(url: &reqwest::Url, route: &Route, allow_private: bool) -> Result<(), FetchFailure> {
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(FetchFailure::Policy(format!(
            "scheme {} is not http(s)",
            url.scheme()
        )));
    }
    let host = url
        .host_str()
        .ok_or_else(|| FetchFailure::Policy("URL has no host".into()))?;
    let onion = host.to_ascii_lowercase().ends_with(".onion");
    if onion && *route == Route::Clearnet {
        return Err(FetchFailure::Policy(
            "an .onion address needs a proxy (--proxy socks5h://127.0.0.1:9050)".into(),
        ));
    }
    if *route == Route::Clearnet && !allow_private {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            if !is_public(ip) {
                return Err(FetchFailure::Policy(format!(
                    "{ip} is not a public address"
                )));
            }
        }
    }
    Ok(())
}

async fn read_capped(
    mut resp: reqwest::Response,
    final_url: String,
    max_bytes: usize,
) -> FetchResult {
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&e))? {
        let room = max_bytes.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status,
        final_url,
        body,
        truncated,
    })
}

/// Map a reqwest error to a failure kind (DNS, policy, timeout, proxy…).
fn classify(e: &reqwest::Error) -> FetchFailure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut chain = Vec::new();
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<ResolveError>() {
            return if r.policy {
                FetchFailure::Policy(r.message.clone())
            } else {
                FetchFailure::Dns(r.message.clone())
            };
        }
        chain.push(s.to_string());
        source = s.source();
    }
    let text = chain.join(": ");
    if e.is_timeout() {
        FetchFailure::Timeout
    } else if text.contains("socks") || text.contains("SOCKS") || text.contains("proxy") {
        FetchFailure::Proxy(short(&text))
    } else if e.is_connect() {
        FetchFailure::Connect(short(&text))
    } else {
        FetchFailure::Other(short(&text))
    }
}

/// Error text without the URL (kept short for the check's detail).
fn short(s: &str) -> String {
    let mut out: String = s.chars().take(300).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses() {
        for private in ["127.0.0.1", "10.1.2.3", "192.168.0.1", "::1", "fe80::1", "::ffff:127.0.0.1"] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn gate_spaces_requests_per_host() {
        let gate = HostGate::new(Duration::from_millis(50));
        let t0 = Instant::now();
        gate.wait("a.example").await;
        gate.wait("b.example").await;
        gate.wait("a.example").await;
        let elapsed = t0.elapsed();
        assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
    }

    #[test]
    fn onion_needs_a_proxy() {
        let u = reqwest::Url::parse("http://abcdefghijklmnop.onion/x").unwrap();
        assert!(matches!(
            vet_url(&u, &Route::Clearnet, true),
            Err(FetchFailure::Policy(_))
        ));
        assert!(vet_url(&u, &Route::Proxy("socks5h://127.0.0.1:9050".into()), false).is_ok());
        let u = reqwest::Url::parse("http://127.0.0.1:8080/").unwrap();
        assert!(vet_url(&u, &Route::Clearnet, false).is_err());
        assert!(vet_url(&u, &Route::Clearnet, true).is_ok());
    }
}
