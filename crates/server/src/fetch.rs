//! SSRF-safe fetching of content by URL (off unless the operator enables it).
//!
//! The address rules live in the collector's guard
//! (`echotrace_collector::guard`), shared with the crawler; this module is
//! the one-shot `{"url": …}` fetch of the API.
//!
//! A URL supplied by a client must never make the server talk to itself or
//! to the private network behind it. The rules:
//! - only `http` and `https`; no credentials in the URL;
//! - the host is resolved here, and *every* resolved address must be a
//!   public unicast address (no loopback, private, link-local, unspecified,
//!   multicast, CGNAT, documentation/benchmark/reserved ranges; IPv6
//!   unique-local/site-local; IPv4-mapped, IPv4-compatible, NAT64 and 6to4
//!   addresses are judged by the IPv4 address they embed);
//! - the connection goes to the vetted address (reqwest's `resolve` pins the
//!   name, so a second DNS answer cannot swap in an internal address),
//!   proxies from the environment are ignored;
//! - redirects are not followed by the client: each `Location` is re-vetted
//!   the same way, at most [`MAX_REDIRECTS`] times;
//! - total time and body size are capped; the body is streamed and cut off
//!   at the cap rather than trusted from `Content-Length`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How many redirects are followed (each one re-vetted).
pub const MAX_REDIRECTS: usize = 3;

/// Operator settings for URL fetching.
#[derive(Clone, Debug)]
pub struct FetchPolicy {
    /// URL fetching is refused unless this is set.
    pub enabled: bool,
    /// Largest body accepted, in bytes.
    pub max_bytes: usize,
    /// Whole-fetch deadline (DNS, connect, redirects, body).
    pub timeout: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            enabled: false,
            max_bytes: 32 << 20,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a fetch was refused or failed. All are the caller's problem (4xx)
/// except none: an unreachable remote is reported as a bad gateway.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("fetching content by URL is disabled on this server")]
    Disabled,
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("URL scheme must be http or https")]
    Scheme,
    #[error("URL resolves to a non-public address ({0})")]
    ForbiddenAddress(IpAddr),
    #[error("could not resolve host {0}")]
    Resolve(String),
    #[error("remote fetch failed: {0}")]
    Remote(String),
    #[error("remote content exceeds {0} bytes")]
    TooLarge(usize),
    #[error("too many redirects")]
    TooManyRedirects,
    #[error("fetch timed out")]
    Timeout,
}

pub use echotrace_collector::guard::is_public;
use echotrace_collector::guard::{GuardError, PrivateAllow};

impl From<GuardError> for FetchError {
    fn from(e: GuardError) -> Self {
        match e {
            GuardError::InvalidUrl(m) => FetchError::InvalidUrl(m),
            GuardError::Scheme => FetchError::Scheme,
            GuardError::ForbiddenAddress(ip) => FetchError::ForbiddenAddress(ip),
            GuardError::Resolve(h) => FetchError::Resolve(h),
        }
    }
}

/// Resolve `host:port` and vet every address (the collector's guard, with
/// no private address allowed); return the one to connect to.
async fn vet_host(host: &str, port: u16) -> Result<SocketAddr, FetchError> {
    Ok(echotrace_collector::guard::vet_host(host, port, &PrivateAllow::None).await?)
}

/// Check a URL's shape; returns (host, port).
fn vet_url(url: &reqwest::Url) -> Result<(String, u16), FetchError> {
    Ok(echotrace_collector::guard::vet_url(url)?)
}

/// Fetch `url` under `policy`, returning the body bytes.
pub async fn fetch(url: &str, policy: &FetchPolicy) -> Result<Vec<u8>, FetchError> {
    if !policy.enabled {
        return Err(FetchError::Disabled);
    }
    match tokio::time::timeout(policy.timeout, fetch_inner(url, policy)).await {
        Ok(r) => r,
        Err(_) => Err(FetchError::Timeout),
    }
}

async fn fetch_inner(url: &str, policy: &FetchPolicy) -> Result<Vec<u8>, FetchError> {
    let mut current =
        reqwest::Url::parse(url).map_err(|e| FetchError::InvalidUrl(e.to_string()))?;
    for _hop in 0..=MAX_REDIRECTS {
        let (host, port) = vet_url(&current)?;
        let addr = vet_host(&host, port).await?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .resolve(&host, addr)
            .timeout(policy.timeout)
            .build()
            .map_err(|e| FetchError::Remote(e.to_string()))?;
        let mut resp = client
            .get(current.clone())
            .send()
            .await
            .map_err(|e| FetchError::Remote(without_url(&e)))?;
        let status = resp.status();
        if status.is_redirection() {
            let loc = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| FetchError::Remote("redirect without Location".into()))?;
            current = current
                .join(loc)
                .map_err(|e| FetchError::InvalidUrl(e.to_string()))?;
            continue;
        }
        if !status.is_success() {
            return Err(FetchError::Remote(format!("remote answered {status}")));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > policy.max_bytes as u64)
        {
            return Err(FetchError::TooLarge(policy.max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| FetchError::Remote(without_url(&e)))?
        {
            if body.len() + chunk.len() > policy.max_bytes {
                return Err(FetchError::TooLarge(policy.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        return Ok(body);
    }
    Err(FetchError::TooManyRedirects)
}

fn without_url(e: &reqwest::Error) -> String {
    // The URL may be sensitive; the caller already knows it.
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<url>");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn enabled() -> FetchPolicy {
        FetchPolicy {
            enabled: true,
            ..FetchPolicy::default()
        }
    }

    #[tokio::test]
    async fn fetch_refuses_before_connecting() {
        assert_eq!(
            fetch("http://127.0.0.1/", &FetchPolicy::default()).await,
            Err(FetchError::Disabled)
        );
        let p = enabled();
        assert_eq!(
            fetch("file:///etc/passwd", &p).await,
            Err(FetchError::Scheme)
        );
        assert_eq!(
            fetch("gopher://example.com/", &p).await,
            Err(FetchError::Scheme)
        );
        assert_eq!(
            fetch("http://127.0.0.1:9/x", &p).await,
            Err(FetchError::ForbiddenAddress(ip("127.0.0.1")))
        );
        assert_eq!(
            fetch("http://[::ffff:7f00:1]/", &p).await,
            Err(FetchError::ForbiddenAddress(ip("::ffff:127.0.0.1")))
        );
        assert_eq!(
            fetch("http://169.254.169.254/latest/meta-data", &p).await,
            Err(FetchError::ForbiddenAddress(ip("169.254.169.254")))
        );
        // Names are resolved here and vetted: localhost is loopback.
        assert!(matches!(
            fetch("http://localhost:1/", &p).await,
            Err(FetchError::ForbiddenAddress(_))
        ));
        assert!(matches!(
            fetch("http://user:pw@8.8.8.8/", &p).await,
            Err(FetchError::InvalidUrl(_))
        ));
    }
}
