//! Sources: what the collector reads, and their typed, versioned config.
//!
//! A source row (`sources`, migration 0006) has a `kind` and a JSON
//! `config`; [`SourceConfig`] is that JSON (version 1), validated per kind
//! by [`SourceConfig::validate`] with errors that name the field
//! (`config.urls[2]: …`). Unknown fields are refused, so a typo never
//! silently does nothing.
//!
//! The **scope rule**: from a seed, the collector expands (fetches links)
//! only onto the seed's own host, the source's `locker_hosts` (file lockers
//! and paste sites, where resolvers apply), hosts named by its locker rules,
//! and its `extra_hosts`; everything else it finds is recorded as an
//! outlink but never fetched. Depth counts hops from the seed (0–2).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fetch::{validate_proxy, NetOptions};
use crate::locker::{LockerRule, LockerTable};

/// What a source is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A list of URLs (inline, or a CSV/TXT file).
    Urls,
    /// HTML pages: text and images hashed, links followed.
    Page,
    /// RSS, Atom or JSON Feed.
    Feed,
    /// A Telegram Desktop JSON export (folder or result.json).
    TelegramExport,
    /// WARC 1.1 files to import.
    Warc,
    /// File-locker or paste landing pages.
    Locker,
}

impl SourceKind {
    pub const ALL: [SourceKind; 6] = [
        SourceKind::Urls,
        SourceKind::Page,
        SourceKind::Feed,
        SourceKind::TelegramExport,
        SourceKind::Warc,
        SourceKind::Locker,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Urls => "urls",
            SourceKind::Page => "page",
            SourceKind::Feed => "feed",
            SourceKind::TelegramExport => "telegram_export",
            SourceKind::Warc => "warc",
            SourceKind::Locker => "locker",
        }
    }

    pub fn parse(s: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Read from local files (imported), rather than fetched.
    pub fn is_file_based(self) -> bool {
        matches!(self, SourceKind::TelegramExport | SourceKind::Warc)
    }

    /// The frontier job kind of this source's seeds.
    pub fn seed_job_kind(self) -> &'static str {
        match self {
            SourceKind::Feed => "feed",
            SourceKind::Locker => "locker",
            // A listed URL may be a page or a file: pages are parsed,
            // anything else is hashed as a file.
            _ => "page",
        }
    }
}

/// A source's config, version 1 (see the module doc).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    #[serde(default = "version_1")]
    pub version: u32,
    /// Seeds (urls, page, feed, locker).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// A local path: a CSV/TXT URL list (urls), an export folder or
    /// result.json (telegram_export), a WARC file (warc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Hops from a seed, 0–2.
    #[serde(default = "depth_1")]
    pub depth: u8,
    /// Also in scope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// File-locker and paste hosts: in scope, resolved by the locker rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locker_hosts: Vec<String>,
    /// Host-specific resolver rules, tried before the built-in ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locker_rules: Vec<LockerRule>,
    /// Telegram and WARC imports: queue the outlinks found for fetching.
    #[serde(default)]
    pub follow_links: bool,
    /// `socks5h://host:port`: every request of this source goes through it
    /// (Tor); `.onion` URLs need it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Do not read robots.txt (audited).
    #[serde(default)]
    pub ignore_robots: bool,
    /// Minimum delay between requests to one host, ms (default: the
    /// collector's, Heritrix's 3000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_delay_ms: Option<u64>,
    /// A finished URL is fetched again when found after this many hours.
    #[serde(default = "revisit_24")]
    pub revisit_hours: u32,
    /// Links kept per page (the rest counted, not followed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_links_per_page: Option<u32>,
    /// Images and videos are matched through the robust channels, as a
    /// `/v1/lookup` upload is (the default). `false`: their plain PDQ/vPDQ
    /// and digests only — about 6× less CPU per image, and a mirrored,
    /// framed or cropped copy is missed.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub robust: bool,
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}

fn version_1() -> u32 {
    1
}
fn depth_1() -> u8 {
    1
}
fn revisit_24() -> u32 {
    24
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            version: 1,
            urls: Vec::new(),
            path: None,
            depth: 1,
            extra_hosts: Vec::new(),
            locker_hosts: Vec::new(),
            locker_rules: Vec::new(),
            follow_links: false,
            proxy: None,
            ignore_robots: false,
            min_delay_ms: None,
            revisit_hours: 24,
            max_links_per_page: None,
            robust: true,
        }
    }
}

/// Most seeds per source.
pub const MAX_SEEDS: usize = 10_000;

impl SourceConfig {
    /// Parse a stored or submitted config (`{}` and `""` are the defaults).
    pub fn parse(json: &str) -> Result<SourceConfig, String> {
        if json.trim().is_empty() {
            return Ok(SourceConfig::default());
        }
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("config: {e}"))?;
        echotrace_engine::limits::typed_json("config", value)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Check the config for `kind`. Errors name the field.
    pub fn validate(&self, kind: SourceKind) -> Result<(), String> {
        if self.version != 1 {
            return Err(format!(
                "config.version: unsupported version {} (expected 1)",
                self.version
            ));
        }
        if self.depth > 2 {
            return Err(format!(
                "config.depth: {} is over the limit of 2 hops",
                self.depth
            ));
        }
        if self.urls.len() > MAX_SEEDS {
            return Err(format!(
                "config.urls: {} URLs, at most {MAX_SEEDS}",
                self.urls.len()
            ));
        }
        for (i, u) in self.urls.iter().enumerate() {
            let parsed = seed_url(u).map_err(|e| format!("config.urls[{i}]: {e}"))?;
            let onion = parsed.host_str().is_some_and(|h| {
                h.trim_end_matches('.')
                    .to_ascii_lowercase()
                    .ends_with(".onion")
            });
            if onion && self.proxy.is_none() {
                return Err(format!(
                    "config.urls[{i}]: {u:?} is a Tor onion service; set config.proxy \
                     (e.g. \"socks5h://127.0.0.1:9050\") to fetch it — it is never resolved or \
                     dialled directly"
                ));
            }
        }
        match kind {
            SourceKind::Page | SourceKind::Feed | SourceKind::Locker => {
                if self.urls.is_empty() {
                    return Err(format!(
                        "config.urls: a {} source needs at least one URL",
                        kind.as_str()
                    ));
                }
                if self.path.is_some() {
                    return Err(format!(
                        "config.path: not used by a {} source",
                        kind.as_str()
                    ));
                }
            }
            SourceKind::Urls => {
                if self.urls.is_empty() && self.path.is_none() {
                    return Err(
                        "config.urls: a urls source needs URLs, or config.path naming a CSV/TXT file"
                            .into(),
                    );
                }
            }
            SourceKind::TelegramExport | SourceKind::Warc => {
                if self.path.as_deref().is_none_or(|p| p.trim().is_empty()) {
                    return Err(format!(
                        "config.path: a {} source needs the path of its {}",
                        kind.as_str(),
                        if kind == SourceKind::Warc {
                            "WARC file"
                        } else {
                            "export folder or result.json"
                        }
                    ));
                }
                if !self.urls.is_empty() {
                    return Err(format!(
                        "config.urls: not used by a {} source",
                        kind.as_str()
                    ));
                }
            }
        }
        for (field, hosts) in [
            ("extra_hosts", &self.extra_hosts),
            ("locker_hosts", &self.locker_hosts),
        ] {
            for (i, h) in hosts.iter().enumerate() {
                validate_host_pattern(h).map_err(|e| format!("config.{field}[{i}]: {e}"))?;
            }
        }
        for (i, r) in self.locker_rules.iter().enumerate() {
            LockerTable::validate_rule(r).map_err(|e| format!("config.locker_rules[{i}]: {e}"))?;
        }
        if let Some(p) = &self.proxy {
            validate_proxy(p).map_err(|e| format!("config.proxy: {e}"))?;
        }
        if let Some(ms) = self.min_delay_ms {
            if ms > 300_000 {
                return Err("config.min_delay_ms: at most 300000 (5 minutes)".into());
            }
        }
        if self.revisit_hours == 0 || self.revisit_hours > 24 * 365 {
            return Err("config.revisit_hours: 1 to 8760".into());
        }
        if let Some(n) = self.max_links_per_page {
            if n == 0 || n > 100_000 {
                return Err("config.max_links_per_page: 1 to 100000".into());
            }
        }
        Ok(())
    }

    /// The network options of this source.
    pub fn net(&self) -> NetOptions {
        NetOptions {
            proxy: self.proxy.clone(),
            ignore_robots: self.ignore_robots,
            min_delay: self.min_delay_ms.map(Duration::from_millis),
        }
    }

    /// May a link found under `seed_host` be fetched (the scope rule)?
    pub fn in_scope(&self, host: &str, seed_host: &str, lockers: &LockerTable) -> bool {
        host.eq_ignore_ascii_case(seed_host)
            || self.locker_hosts.iter().any(|p| host_matches(p, host))
            || self.extra_hosts.iter().any(|p| host_matches(p, host))
            || lockers.rule_hosts().any(|p| host_matches(p, host))
    }
}

/// Check a seed URL: an absolute http(s) URL with a host.
pub fn seed_url(u: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(u.trim()).map_err(|e| format!("{u:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{u:?}: only http and https URLs"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{u:?}: no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("{u:?}: credentials in URLs are not allowed"));
    }
    Ok(parsed)
}

/// A host pattern: `host.example`, `*.example` (any subdomain and the
/// domain itself), or an IP address.
pub fn validate_host_pattern(p: &str) -> Result<(), String> {
    let body = p.strip_prefix("*.").unwrap_or(p);
    let ok = !body.is_empty()
        && body.len() <= 253
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || b == b'.'
                || b == b'-'
                || b == b':'
                || b == b'['
                || b == b']'
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{p:?} is not a host pattern (host.example or *.example)"
        ))
    }
}

/// Does `host` match `pattern` (see [`validate_host_pattern`])?
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            host.eq_ignore_ascii_case(suffix)
                || (host.len() > suffix.len()
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix))
        }
        None => host.eq_ignore_ascii_case(pattern),
    }
}

/// Read a URL list: TXT (one URL a line; `#` comments) or CSV (a column
/// named `url` — TCAP exports have `URL` — else the first column). Returns
/// the URLs and the bad lines (`line N: why`).
pub fn read_url_list(text: &str) -> (Vec<String>, Vec<String>) {
    let mut urls = Vec::new();
    let mut bad = Vec::new();
    let first = text.lines().next().unwrap_or("");
    let looks_csv = first.contains(',') && !first.trim_start().starts_with("http");
    if looks_csv {
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(text.as_bytes());
        let col = rdr
            .headers()
            .ok()
            .and_then(|h| h.iter().position(|c| c.trim().eq_ignore_ascii_case("url")))
            .unwrap_or(0);
        for (i, rec) in rdr.records().enumerate() {
            let line = i + 2;
            match rec {
                Ok(r) => match r.get(col).map(str::trim) {
                    Some(u) if !u.is_empty() => match seed_url(u) {
                        Ok(_) => urls.push(u.to_string()),
                        Err(e) => bad.push(format!("line {line}: {e}")),
                    },
                    _ => bad.push(format!("line {line}: no URL in column {}", col + 1)),
                },
                Err(e) => bad.push(format!("line {line}: {e}")),
            }
        }
    } else {
        for (i, l) in text.lines().enumerate() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            match seed_url(l) {
                Ok(_) => urls.push(l.to_string()),
                Err(e) => bad.push(format!("line {}: {e}", i + 1)),
            }
        }
    }
    (urls, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_fields() {
        let c = SourceConfig::parse(r#"{"urls": ["http://a.test/", "ftp://x"]}"#).unwrap();
        assert_eq!(
            c.validate(SourceKind::Page).unwrap_err(),
            "config.urls[1]: \"ftp://x\": only http and https URLs"
        );
        assert!(SourceConfig::default()
            .validate(SourceKind::Feed)
            .unwrap_err()
            .starts_with("config.urls"));
        assert!(SourceConfig::default()
            .validate(SourceKind::TelegramExport)
            .unwrap_err()
            .starts_with("config.path"));
        let c = SourceConfig::parse(
            r#"{"urls": ["http://a.test/"], "proxy": "socks5://127.0.0.1:9050"}"#,
        )
        .unwrap();
        assert!(c
            .validate(SourceKind::Page)
            .unwrap_err()
            .starts_with("config.proxy"));
        let c = SourceConfig::parse(r#"{"urls": ["http://a.test/"], "depth": 3}"#).unwrap();
        assert!(c
            .validate(SourceKind::Page)
            .unwrap_err()
            .starts_with("config.depth"));
        assert!(SourceConfig::parse(r#"{"url": "x"}"#)
            .unwrap_err()
            .contains("unknown field"));
        let ok = SourceConfig::parse(r#"{"urls": ["http://a.test/"], "proxy": "socks5h://127.0.0.1:9050", "locker_hosts": ["*.lock.test"]}"#).unwrap();
        assert!(ok.validate(SourceKind::Page).is_ok());
        assert_eq!(SourceConfig::parse(&ok.to_json()).unwrap(), ok);
    }

    #[test]
    fn scope_and_patterns() {
        let c = SourceConfig {
            locker_hosts: vec!["*.lock.test".into()],
            extra_hosts: vec!["cdn.test".into()],
            ..SourceConfig::default()
        };
        let t = LockerTable::builtin();
        assert!(c.in_scope("seed.test", "seed.test", &t));
        assert!(c.in_scope("lock.test", "seed.test", &t));
        assert!(c.in_scope("a.b.lock.test", "seed.test", &t));
        assert!(!c.in_scope("xlock.test", "seed.test", &t));
        assert!(c.in_scope("cdn.test", "seed.test", &t));
        assert!(!c.in_scope("other.test", "seed.test", &t));
        assert!(validate_host_pattern("*.ok.test").is_ok());
        assert!(validate_host_pattern("bad host").is_err());
    }

    #[test]
    fn url_lists() {
        let (u, bad) = read_url_list("# list\nhttp://a.test/1\n\nnot a url\nhttps://b.test/2\n");
        assert_eq!(u, vec!["http://a.test/1", "https://b.test/2"]);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].starts_with("line 4:"));
        let csv = "ID,Description,URL,Domain\n1,x,http://a.test/1,a.test\n2,\"y, z\",https://b.test/2,b.test\n3,w,,c\n";
        let (u, bad) = read_url_list(csv);
        assert_eq!(u, vec!["http://a.test/1", "https://b.test/2"]);
        assert_eq!(bad, vec!["line 4: no URL in column 3"]);
    }
}
