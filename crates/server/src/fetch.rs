//! SSRF-safe fetching of content by URL (off unless the operator enables it).
//!
//! The address rules are the one SSRF guard (`echotrace_engine::ssrf`) and
//! the fetching is the exchange adapters' pinned, redirect-vetting, capped
//! client (`echotrace_exchange::net::Http`); this module is the one-shot
//! `{"url": …}` fetch of the API and its errors.
//!
//! A URL supplied by a client must never make the server talk to itself or
//! to the private network behind it: every resolved address and every
//! redirect is vetted by the guard (its rules are listed in
//! `echotrace_engine::ssrf`), the connection is pinned to the vetted
//! address, at most [`MAX_REDIRECTS`] redirects are followed, and the whole
//! fetch is bounded in time and body size.

use std::time::Duration;

/// How many redirects are followed (each one re-vetted).
pub use echotrace_exchange::net::MAX_REDIRECTS;

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
    /// Refused by the SSRF guard (URL shape, scheme, address, DNS).
    #[error(transparent)]
    Refused(#[from] GuardError),
    #[error("remote fetch failed: {0}")]
    Remote(String),
    #[error("remote content exceeds {0} bytes")]
    TooLarge(usize),
    #[error("too many redirects")]
    TooManyRedirects,
    #[error("fetch timed out")]
    Timeout,
}

use echotrace_engine::ssrf::GuardError;
use echotrace_exchange::net::{Http, NetError, NetPolicy};

impl From<NetError> for FetchError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::InvalidUrl(m) => GuardError::InvalidUrl(m).into(),
            NetError::Forbidden(_, ip) => GuardError::ForbiddenAddress(ip).into(),
            NetError::Resolve(h) => GuardError::Resolve(h).into(),
            NetError::Network(m) => FetchError::Remote(m),
            NetError::Timeout(_) => FetchError::Timeout,
            NetError::TooLarge(n) => FetchError::TooLarge(n),
            NetError::TooManyRedirects => FetchError::TooManyRedirects,
            NetError::Status { status, .. } => {
                FetchError::Remote(format!("remote answered HTTP {status}"))
            }
        }
    }
}

/// Fetch `url` under `policy`, returning the body bytes.
pub async fn fetch(url: &str, policy: &FetchPolicy) -> Result<Vec<u8>, FetchError> {
    if !policy.enabled {
        return Err(FetchError::Disabled);
    }
    // The URL's shape first, for a precise error (the client vets it again,
    // and every redirect).
    let parsed = reqwest::Url::parse(url).map_err(|e| GuardError::InvalidUrl(e.to_string()))?;
    echotrace_engine::ssrf::vet_url(&parsed)?;
    let http = Http::new(NetPolicy {
        allow_loopback: false,
        allow_private: false,
        timeout: policy.timeout,
        max_body: policy.max_bytes,
    });
    // One deadline for the whole fetch, redirects included.
    let send = http.send(reqwest::Method::GET, parsed.as_str(), &[], None, &[]);
    match tokio::time::timeout(policy.timeout, send).await {
        Ok(fetched) => Ok(Vec::from(fetched?.body)),
        Err(_) => Err(FetchError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

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
            Err(FetchError::Refused(GuardError::Scheme))
        );
        assert_eq!(
            fetch("gopher://example.com/", &p).await,
            Err(FetchError::Refused(GuardError::Scheme))
        );
        assert_eq!(
            fetch("http://127.0.0.1:9/x", &p).await,
            Err(FetchError::Refused(GuardError::ForbiddenAddress(ip(
                "127.0.0.1"
            ))))
        );
        assert_eq!(
            fetch("http://[::ffff:7f00:1]/", &p).await,
            Err(FetchError::Refused(GuardError::ForbiddenAddress(ip(
                "::ffff:127.0.0.1"
            ))))
        );
        assert_eq!(
            fetch("http://169.254.169.254/latest/meta-data", &p).await,
            Err(FetchError::Refused(GuardError::ForbiddenAddress(ip(
                "169.254.169.254"
            ))))
        );
        // Names are resolved here and vetted: localhost is loopback.
        assert!(matches!(
            fetch("http://localhost:1/", &p).await,
            Err(FetchError::Refused(GuardError::ForbiddenAddress(_)))
        ));
        assert!(matches!(
            fetch("http://user:pw@8.8.8.8/", &p).await,
            Err(FetchError::Refused(GuardError::InvalidUrl(_)))
        ));
    }
}
