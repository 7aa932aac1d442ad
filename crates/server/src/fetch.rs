//! SSRF-safe fetching of content by URL (off unless the operator enables it).
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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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

/// True if `ip` is a public unicast address a server may be sent to.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let blocked = a == 0                                   // "this network", unspecified
        || a == 10                                         // private
        || a == 127                                        // loopback
        || (a == 100 && (64..128).contains(&b))            // CGNAT 100.64/10
        || (a == 169 && b == 254)                          // link-local
        || (a == 172 && (16..32).contains(&b))             // private
        || (a == 192 && b == 0 && c == 0)                  // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)                  // TEST-NET-1
        || (a == 192 && b == 88 && c == 99)                // 6to4 relay anycast
        || (a == 192 && b == 168)                          // private
        || (a == 198 && (b == 18 || b == 19))              // benchmarking
        || (a == 198 && b == 51 && c == 100)               // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)                // TEST-NET-3
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    !blocked
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    // Addresses that embed an IPv4 address are judged by it.
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let blocked = ip.is_unspecified()
        || ip.is_loopback()
        || (seg[0] & 0xff00) == 0xff00          // multicast
        || (seg[0] & 0xffc0) == 0xfe80          // link-local
        || (seg[0] & 0xffc0) == 0xfec0          // site-local (deprecated)
        || (seg[0] & 0xfe00) == 0xfc00          // unique local
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x2001 && seg[1] == 0)    // Teredo
        || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0]) // discard-only
        || seg[0] == 0; // remaining ::/16 oddities
    !blocked
}

/// The IPv4 address carried by IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4
/// (`2002:aabb:ccdd::`) addresses.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[0..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || s[5] == 0) {
        if s[5] == 0 && s[6] == 0 && s[7] <= 1 {
            return None; // :: and ::1, handled as IPv6
        }
        return Some(low(s[6], s[7]));
    }
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(low(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(low(s[1], s[2]));
    }
    None
}

/// Resolve `host:port` and vet every address; return the one to connect to.
async fn vet_host(host: &str, port: u16) -> Result<SocketAddr, FetchError> {
    // IP literals (incl. bracketed IPv6 from the URL) skip DNS.
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return if is_public(ip) {
            Ok(SocketAddr::new(ip, port))
        } else {
            Err(FetchError::ForbiddenAddress(ip))
        };
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| FetchError::Resolve(host.to_string()))?
        .collect();
    let first = *addrs
        .first()
        .ok_or_else(|| FetchError::Resolve(host.to_string()))?;
    // Refuse if ANY answer is internal: a mixed answer is an attack signal.
    if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(FetchError::ForbiddenAddress(bad.ip()));
    }
    Ok(first)
}

/// Check a URL's shape; returns (host, port).
fn vet_url(url: &reqwest::Url) -> Result<(String, u16), FetchError> {
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(FetchError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FetchError::InvalidUrl("credentials in URL".into()));
    }
    let host = url
        .host_str()
        .ok_or_else(|| FetchError::InvalidUrl("no host".into()))?
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| FetchError::InvalidUrl("no port".into()))?;
    Ok((host, port))
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

    #[test]
    fn internal_addresses_are_refused() {
        for s in [
            "127.0.0.1",
            "127.5.6.7",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:7f00:0001::",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip(s)), "{s} must be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(s)), "{s} must be allowed");
        }
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
