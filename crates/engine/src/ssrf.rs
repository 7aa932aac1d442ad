//! Where a fetch may connect: the one SSRF guard of every outbound request
//! (the collector's fetcher, the exchange adapters' HTTP, the server's
//! `{"url": …}` fetching). It lives here, below all three, so there is one
//! copy of the address rules.
//!
//! A URL that reaches echotrace from outside (a client's request, a crawled
//! page's link, a redirect) must never make it talk to itself or to the
//! private network behind it. The rules:
//! - only `http` and `https`; no credentials in the URL;
//! - the host is resolved here ([`vet_host`], [`resolve_vetted`]; the
//!   collector plugs the latter into reqwest as its resolver) and *every*
//!   resolved address
//!   must be a public unicast address (no loopback, private, link-local,
//!   unspecified, multicast, CGNAT, documentation/benchmark/reserved ranges;
//!   IPv6 unique-local/site-local; IPv4-mapped, IPv4-compatible, NAT64 and
//!   6to4 addresses are judged by the IPv4 address they embed), unless the
//!   operator allowed that address ([`PrivateAllow`]: none by default, a list
//!   of networks, or all);
//! - a mixed DNS answer (one public, one internal address) is refused whole;
//! - IP-literal hosts skip DNS and are judged the same way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Why an address or URL is refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum GuardError {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("URL scheme must be http or https")]
    Scheme,
    #[error("URL resolves to a non-public address ({0})")]
    ForbiddenAddress(IpAddr),
    #[error("could not resolve host {0}")]
    Resolve(String),
}

/// Which non-public addresses the operator allows (e.g. a lab network, or
/// loopback for tests). Public addresses are always allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PrivateAllow {
    /// Only public addresses (the default).
    #[default]
    None,
    /// These networks too.
    Nets(Vec<IpNet>),
    /// Every address.
    All,
}

impl PrivateAllow {
    /// Is a connection to `ip` allowed?
    pub fn permits(&self, ip: IpAddr) -> bool {
        if is_public(ip) {
            return true;
        }
        match self {
            PrivateAllow::None => false,
            PrivateAllow::All => true,
            // An IPv4-mapped address (`::ffff:127.0.0.1`) is the IPv4
            // address it carries.
            PrivateAllow::Nets(nets) => nets.iter().any(|n| n.contains(ip.to_canonical())),
        }
    }

    /// Loopback only (127.0.0.0/8 and ::1): a peer on the same host, tests.
    pub fn loopback() -> Self {
        PrivateAllow::Nets(vec![
            IpNet {
                addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                prefix: 8,
            },
            IpNet {
                addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ])
    }
}

impl FromStr for PrivateAllow {
    type Err = String;

    /// `none`, `all`, or a comma-separated list of `addr/prefix` networks
    /// (a bare address is a /32 or /128).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s {
            "" | "none" => return Ok(PrivateAllow::None),
            "all" => return Ok(PrivateAllow::All),
            _ => {}
        }
        let nets = s
            .split(',')
            .map(|p| p.trim().parse::<IpNet>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PrivateAllow::Nets(nets))
    }
}

/// An IP network, `addr/prefix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let shift = 32 - u32::from(self.prefix.min(32));
                let mask = if shift == 32 { 0 } else { u32::MAX << shift };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let shift = 128 - u32::from(self.prefix.min(128));
                let mask = if shift == 128 { 0 } else { u128::MAX << shift };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network (expected e.g. 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix must be 0-{max}"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
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

/// The IP address of an IP-literal host (`1.2.3.4`, `[::1]`), if it is one.
pub fn ip_literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()
}

/// Resolve `host:port` and vet every address; return the one to connect to.
pub async fn vet_host(
    host: &str,
    port: u16,
    allow: &PrivateAllow,
) -> Result<SocketAddr, GuardError> {
    if let Some(ip) = ip_literal(host) {
        return if allow.permits(ip) {
            Ok(SocketAddr::new(ip, port))
        } else {
            Err(GuardError::ForbiddenAddress(ip))
        };
    }
    let addrs = resolve_vetted(host, port, allow).await?;
    addrs
        .first()
        .copied()
        .ok_or_else(|| GuardError::Resolve(host.to_string()))
}

/// Resolve `host` and vet every answer; all of them, or an error.
pub async fn resolve_vetted(
    host: &str,
    port: u16,
    allow: &PrivateAllow,
) -> Result<Vec<SocketAddr>, GuardError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| GuardError::Resolve(host.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(GuardError::Resolve(host.to_string()));
    }
    // Refuse if ANY answer is internal: a mixed answer is an attack signal.
    if let Some(bad) = addrs.iter().find(|a| !allow.permits(a.ip())) {
        return Err(GuardError::ForbiddenAddress(bad.ip()));
    }
    Ok(addrs)
}

/// Check a URL's shape; returns (host, port).
pub fn vet_url(url: &url::Url) -> Result<(String, u16), GuardError> {
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(GuardError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(GuardError::InvalidUrl("credentials in URL".into()));
    }
    let host = url
        .host_str()
        .ok_or_else(|| GuardError::InvalidUrl("no host".into()))?
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| GuardError::InvalidUrl("no port".into()))?;
    Ok((host, port))
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
            assert!(!PrivateAllow::None.permits(ip(s)), "{s} must be refused");
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

    #[test]
    fn operator_allowances() {
        let allow: PrivateAllow = "127.0.0.2/31, 10.9.0.0/16".parse().unwrap();
        assert!(allow.permits(ip("127.0.0.2")));
        assert!(allow.permits(ip("127.0.0.3")));
        assert!(!allow.permits(ip("127.0.0.1")));
        assert!(!allow.permits(ip("127.0.0.4")));
        assert!(allow.permits(ip("10.9.200.1")));
        assert!(!allow.permits(ip("10.8.0.1")));
        assert!(allow.permits(ip("8.8.8.8")));
        assert!("all".parse::<PrivateAllow>().unwrap().permits(ip("::1")));
        assert_eq!("none".parse::<PrivateAllow>(), Ok(PrivateAllow::None));
        assert!("10.0.0.0/33".parse::<PrivateAllow>().is_err());
        assert!("banana".parse::<PrivateAllow>().is_err());
        let one: IpNet = "::1".parse().unwrap();
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        let any: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(ip("127.0.0.1")));
        let lo = PrivateAllow::loopback();
        for s in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert!(lo.permits(ip(s)), "{s}");
        }
        for s in ["10.0.0.1", "169.254.169.254", "fd00::1", "0.0.0.0", "::"] {
            assert!(!lo.permits(ip(s)), "{s}");
        }
    }
}
