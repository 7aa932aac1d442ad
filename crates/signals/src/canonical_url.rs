//! URL signals: canonicalisation (`url-canon-v1`), the `url` and
//! `url_sha256` signals, and the registrable domain.
//!
//! The same resource, shared with different tracking decoration, case or
//! encoding, must give one canonical string. Rules, in order:
//!
//! 1. Surrounding whitespace is trimmed. Input without `://` that does not
//!    parse as an absolute URL is retried as `http://<input>`
//!    (`example.com/a` and `example.com:8080/a` work); input with an
//!    explicit other scheme (`javascript:alert(1)`, `mailto:…`) is rejected
//!    as an unsupported scheme.
//! 2. **WHATWG parsing** (`url` crate): scheme and host lowercased, IDNA
//!    host → punycode (`bücher.de` → `xn--bcher-kva.de`), IPv4 forms
//!    normalised (`0x7f.1` → `127.0.0.1`), **default ports dropped**
//!    (`:80`, `:443`), `.`/`..` path segments resolved, backslashes read as
//!    slashes, non-ASCII path bytes percent-encoded.
//! 3. Only `http` and `https` are accepted; **`http` is folded to
//!    `https`**, since a propaganda URL is the same item whichever scheme it
//!    was shared with. The scheme is still shown, so the canonical form
//!    remains a working link.
//! 4. **User info** (`user:pass@`) is dropped, as is a **trailing dot** on
//!    the host (`example.com.` → `example.com`). `www.` is kept (use the
//!    registrable domain for domain-level matching).
//! 5. **Fragment** dropped.
//! 6. **Query**: split at `&`, empty parameters dropped, **tracking
//!    parameters dropped** (case-insensitive key: any `utm_*`, plus
//!    [`TRACKING_PARAMS`]), percent-encoding normalised (below), then
//!    **sorted** by key then value (byte order). An empty query drops `?`.
//! 7. **Percent-encoding normalisation** in path and query: `%XX` of an
//!    unreserved character (`A–Z a–z 0–9 - . _ ~`) is decoded, all other
//!    escapes get uppercase hex (`%2f` → `%2F`). `+` is left alone.
//! 8. **Trailing slashes** removed from the path, except the root `/`.
//!
//! The `url` signal is the canonical string; `url_sha256` is the lowercase
//! hex SHA-256 of its UTF-8 bytes (shareable without revealing the URL).
//! The registrable domain ("eTLD+1", e.g. `news.example.co.uk` →
//! `example.co.uk`) comes from the `psl` crate, whose public suffix list is
//! compiled in: nothing is downloaded at run time.

use url::{Host, Url};

/// Canonicalisation version name.
pub const URL_CANON_VERSION: &str = "url-canon-v1";

/// Query parameters dropped besides every `utm_*` (compared lowercase).
pub const TRACKING_PARAMS: &[&str] = &[
    "fbclid",
    "gclid",
    "gclsrc",
    "dclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "yclid",
    "twclid",
    "ttclid",
    "li_fat_id",
    "mc_eid",
    "mc_cid",
    "igshid",
    "igsh",
    "_ga",
    "_gl",
    "_hsenc",
    "_hsmi",
    "mkt_tok",
    "vero_id",
    "oly_enc_id",
    "oly_anon_id",
    "rb_clickid",
    "s_cid",
    "wickedid",
    "ref_src",
    "ref_url",
];

/// Longest input accepted (bytes).
pub const MAX_URL_LEN: usize = 8192;

/// A canonicalised URL and its derived signals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalUrl {
    /// The `url` signal.
    pub canonical: String,
    /// The `url_sha256` signal: lowercase hex SHA-256 of `canonical`.
    pub sha256: String,
    /// Host as in the canonical form (punycode for IDN).
    pub host: String,
    /// eTLD+1 from the public suffix list; `None` for IP addresses and
    /// hosts that are themselves a public suffix.
    pub registrable_domain: Option<String>,
}

/// Why a string is not a canonicalisable URL.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("URL is empty")]
    Empty,
    #[error("URL longer than {MAX_URL_LEN} bytes")]
    TooLong,
    #[error("invalid URL: {0}")]
    Parse(String),
    #[error("unsupported scheme {0:?} (only http and https)")]
    Scheme(String),
    #[error("URL has no host")]
    NoHost,
}

/// Whether the text after the first `:` is a port — digits only, up to the
/// path, query or fragment — as in `example.com:8080/a` (a host and port,
/// not a scheme). `mailto:1@evil.example` is a scheme.
fn after_colon_is_port(s: &str) -> bool {
    s.split_once(':').is_some_and(|(_, rest)| {
        let port = rest.split(['/', '?', '#']).next().unwrap_or("");
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Canonicalises `input` (rules in the module docs).
pub fn canonicalize_url(input: &str) -> Result<CanonicalUrl, UrlError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(UrlError::Empty);
    }
    if trimmed.len() > MAX_URL_LEN {
        return Err(UrlError::TooLong);
    }
    let mut url = match Url::parse(trimmed) {
        Ok(u) if u.has_host() || trimmed.contains("://") => u,
        // An explicit non-web scheme (`javascript:`, `mailto:`, `data:`…):
        // say so, rather than retrying it as `http://javascript:alert(1)`
        // and reporting a bad port. `host:8080/…` (a digit after the colon)
        // is a host and port, retried below.
        Ok(u) if !after_colon_is_port(trimmed) => {
            return Err(UrlError::Scheme(u.scheme().to_string()));
        }
        first => {
            if trimmed.contains("://") {
                return Err(UrlError::Parse(
                    first.err().map(|e| e.to_string()).unwrap_or_default(),
                ));
            }
            Url::parse(&format!("http://{trimmed}")).map_err(|e| UrlError::Parse(e.to_string()))?
        }
    };
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(UrlError::Scheme(other.to_string())),
    }
    if url.scheme() == "http" {
        url.set_scheme("https")
            .map_err(|()| UrlError::Scheme("http".into()))?;
    }
    let host = match url.host() {
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.');
            if d.is_empty() {
                return Err(UrlError::NoHost);
            }
            d.to_string()
        }
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => format!("[{ip}]"),
        None => return Err(UrlError::NoHost),
    };
    // Setting the trimmed name can change its kind: `0xd..` is a domain,
    // `0xd` is the IPv4 address 0.0.0.13. The host reported is the one the
    // canonical URL holds.
    let host = if url.host_str() == Some(host.as_str()) {
        host
    } else {
        url.set_host(Some(&host))
            .map_err(|e| UrlError::Parse(e.to_string()))?;
        url.host_str().ok_or(UrlError::NoHost)?.to_string()
    };
    // set_username/set_password only fail for URLs that cannot have them.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_fragment(None);

    let query = url.query().map(canonical_query).filter(|q| !q.is_empty());
    url.set_query(query.as_deref());

    let path = normalize_percent(url.path());
    let trimmed_path = path.trim_end_matches('/');
    let path = if trimmed_path.is_empty() {
        "/"
    } else {
        trimmed_path
    };
    url.set_path(path);

    let canonical = url.as_str().to_string();
    let sha256 = crate::digest::sha256_hex(canonical.as_bytes());
    let registrable_domain = match url.host() {
        Some(Host::Domain(d)) => psl::domain_str(d).map(str::to_string),
        _ => None,
    };
    Ok(CanonicalUrl {
        canonical,
        sha256,
        host,
        registrable_domain,
    })
}

fn canonical_query(q: &str) -> String {
    let mut params: Vec<(String, String)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (normalize_percent(k), Some(normalize_percent(v))),
            None => (normalize_percent(p), None),
        })
        .filter(|(k, _)| !is_tracking(k))
        .map(|(k, v)| match v {
            Some(v) => (k, format!("={v}")),
            None => (k, String::new()),
        })
        .collect();
    params.sort();
    let mut out = String::with_capacity(q.len());
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push_str(v);
    }
    out
}

fn is_tracking(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.starts_with("utm_") || TRACKING_PARAMS.contains(&k.as_str())
}

/// Decodes escapes of unreserved characters, uppercases the rest, and
/// escapes a `%` that starts no escape as `%25`: left bare, it could meet
/// the hex digits of a decoded escape and become a new escape on the next
/// pass (`%%330` → `%30` → `0`), and canonicalisation must be idempotent.
fn normalize_percent(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|x| hex_val(*x)),
                b.get(i + 2).and_then(|x| hex_val(*x)),
            ) {
                let v = h * 16 + l;
                if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(v));
                } else {
                    out.push('%');
                    out.push(char::from(HEX_UPPER[usize::from(h)]));
                    out.push(char::from(HEX_UPPER[usize::from(l)]));
                }
                i += 3;
                continue;
            }
            out.push_str("%25");
            i += 1;
            continue;
        }
        // Copy one UTF-8 character.
        let ch_len = s
            .get(i..)
            .and_then(|r| r.chars().next())
            .map_or(1, char::len_utf8);
        out.push_str(s.get(i..i + ch_len).unwrap_or(""));
        i += ch_len;
    }
    out
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The `url` and `url_sha256` signals of `input`, in that order.
pub fn url_signals(input: &str) -> Result<Vec<crate::signal::Signal>, UrlError> {
    use crate::signal::{Signal, SignalType};
    let c = canonicalize_url(input)?;
    Ok(vec![
        Signal::new(SignalType::Url, c.canonical),
        Signal::new(SignalType::UrlSha256, c.sha256),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_web_schemes_are_reported_as_schemes() {
        for (input, scheme) in [
            ("javascript:alert(1)", "javascript"),
            ("JavaScript:void(0)", "javascript"),
            ("mailto:press@example.com", "mailto"),
            ("mailto:1@evil.example", "mailto"),
            ("data:text/html,hello", "data"),
            ("ftp://example.com/x", "ftp"),
        ] {
            let e = canonicalize_url(input).unwrap_err();
            assert_eq!(e, UrlError::Scheme(scheme.into()), "{input}");
            assert!(e.to_string().contains("only http and https"), "{e}");
        }
        // Host and port without a scheme still work.
        let c = canonicalize_url("example.com:8080/a/").unwrap();
        assert_eq!(c.canonical, "https://example.com:8080/a");
        // A name that becomes an IPv4 address once its trailing dots go
        // (found by the `url_canonical` fuzz target): the host reported is
        // the canonical URL's, so canonicalising again changes nothing.
        let c = canonicalize_url("/0Xd%2E%2E.").unwrap();
        assert_eq!(c.canonical, "https://0.0.0.13/");
        assert_eq!(c.host, "0.0.0.13");
        let again = canonicalize_url(&c.canonical).unwrap();
        assert_eq!((again.canonical, again.host), (c.canonical, c.host));
        let c = canonicalize_url("localhost:80/x").unwrap();
        assert_eq!(c.canonical, "https://localhost/x");
    }
}
