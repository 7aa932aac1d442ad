//! robots.txt rules per origin, parsed by `texting_robots` (Google's
//! reading of the spec) and cached for 24 hours.
//!
//! What a fetch of `/robots.txt` means (Google's rules):
//! * 2xx: the rules in the body (capped at 512 KiB; a body that does not
//!   parse allows everything);
//! * 4xx (404 included): no rules, everything allowed;
//! * 5xx: everything disallowed for now (cached for an hour, not a day, so
//!   a host that recovers is crawled again).
//!
//! A network failure (DNS, refused, timeout) is not cached: the page fetch
//! would fail the same way and reports that error itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The product token matched against `User-agent:` lines.
pub const ROBOTS_AGENT: &str = "echotrace";

/// Largest robots.txt read.
pub const ROBOTS_MAX_BYTES: usize = 512 << 10;

/// How long a 5xx answer disallows a host.
const SERVER_ERROR_TTL: Duration = Duration::from_secs(3600);

/// The rules of one origin.
pub enum RobotsRules {
    AllowAll,
    DisallowAll,
    Rules(Box<texting_robots::Robot>),
}

impl std::fmt::Debug for RobotsRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RobotsRules::AllowAll => f.write_str("AllowAll"),
            RobotsRules::DisallowAll => f.write_str("DisallowAll"),
            RobotsRules::Rules(r) => write!(f, "Rules(delay {:?})", r.delay),
        }
    }
}

impl RobotsRules {
    /// Rules from a fetch of `/robots.txt` that answered `status`.
    pub fn from_response(status: u16, body: &[u8]) -> RobotsRules {
        match status {
            200..=299 => RobotsRules::parse(body),
            500..=599 => RobotsRules::DisallowAll,
            _ => RobotsRules::AllowAll,
        }
    }

    /// Parse a robots.txt body for [`ROBOTS_AGENT`]. Never panics: a parser
    /// failure (or panic) allows everything, as an unreadable file does.
    pub fn parse(body: &[u8]) -> RobotsRules {
        let body = &body[..body.len().min(ROBOTS_MAX_BYTES)];
        match std::panic::catch_unwind(|| texting_robots::Robot::new(ROBOTS_AGENT, body)) {
            Ok(Ok(r)) => RobotsRules::Rules(Box::new(r)),
            _ => RobotsRules::AllowAll,
        }
    }

    /// May `url` (absolute, or a path) be fetched?
    pub fn allowed(&self, url: &str) -> bool {
        match self {
            RobotsRules::AllowAll => true,
            RobotsRules::DisallowAll => false,
            RobotsRules::Rules(r) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.allowed(url)))
                    .unwrap_or(true)
            }
        }
    }

    /// The `Crawl-delay`, if any (non-finite or negative values ignored).
    pub fn crawl_delay(&self) -> Option<Duration> {
        match self {
            RobotsRules::Rules(r) => r
                .delay
                .filter(|d| d.is_finite() && *d > 0.0)
                .map(|d| Duration::from_secs_f64(f64::from(d).min(86_400.0))),
            _ => None,
        }
    }

    fn ttl(&self, normal: Duration) -> Duration {
        match self {
            RobotsRules::DisallowAll => normal.min(SERVER_ERROR_TTL),
            _ => normal,
        }
    }
}

/// Cached rules by origin (`scheme://host:port`), each for its TTL.
pub struct RobotsCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Arc<RobotsRules>, Instant)>>,
}

/// Most origins cached before the cache is swept.
const MAX_ENTRIES: usize = 50_000;

impl RobotsCache {
    pub fn new(ttl: Duration) -> Self {
        RobotsCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Fresh rules of `origin`, if cached.
    pub fn get(&self, origin: &str) -> Option<Arc<RobotsRules>> {
        self.get_at(origin, Instant::now())
    }

    /// [`RobotsCache::get`] as of `now`.
    fn get_at(&self, origin: &str, now: Instant) -> Option<Arc<RobotsRules>> {
        let m = self.entries.lock().ok()?;
        let (rules, at) = m.get(origin)?;
        (now.saturating_duration_since(*at) < rules.ttl(self.ttl)).then(|| rules.clone())
    }

    pub fn put(&self, origin: &str, rules: RobotsRules) -> Arc<RobotsRules> {
        let rules = Arc::new(rules);
        if let Ok(mut m) = self.entries.lock() {
            if m.len() >= MAX_ENTRIES {
                let ttl = self.ttl;
                m.retain(|_, (r, at)| at.elapsed() < r.ttl(ttl));
                if m.len() >= MAX_ENTRIES {
                    m.clear();
                }
            }
            m.insert(origin.to_string(), (rules.clone(), Instant::now()));
        }
        rules
    }
}

/// `scheme://host[:port]` of a URL: the key robots.txt applies to.
pub fn origin_of(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{}://{}:{}", url.scheme(), host, p),
        None => format!("{}://{}", url.scheme(), host),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_rules() {
        let r = RobotsRules::from_response(
            200,
            b"User-agent: *\nDisallow: /private\nCrawl-delay: 7\n\nUser-agent: echotrace\nDisallow: /no-echotrace\n",
        );
        assert!(!r.allowed("http://h/no-echotrace/x"));
        assert!(
            r.allowed("http://h/private/x"),
            "a specific group replaces *"
        );
        let star =
            RobotsRules::from_response(200, b"User-agent: *\nDisallow: /private\nCrawl-delay: 7\n");
        assert!(!star.allowed("http://h/private/x"));
        assert!(star.allowed("http://h/public"));
        assert_eq!(star.crawl_delay(), Some(Duration::from_secs(7)));
        assert!(RobotsRules::from_response(404, b"").allowed("/x"));
        assert!(!RobotsRules::from_response(503, b"").allowed("/x"));
        // Garbage allows everything.
        assert!(RobotsRules::from_response(200, &[0xff, 0xfe, 0, 1, 2]).allowed("/x"));
    }

    #[test]
    fn cache_expires() {
        // Fresh and stale are checked at given instants: a real-clock "still
        // fresh" check failed whenever the thread stalled for the TTL (50 ms)
        // between `put` and `get` on a loaded machine.
        let c = RobotsCache::new(Duration::from_millis(50));
        let before = Instant::now();
        c.put("http://a", RobotsRules::DisallowAll);
        let after = Instant::now();
        assert!(c.get_at("http://a", before).is_some());
        assert!(c
            .get_at("http://a", after + Duration::from_millis(50))
            .is_none());
        assert!(c.get_at("http://b", before).is_none());
        // And on the real clock: after the TTL, gone.
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get("http://a").is_none());
    }
}
