//! Per-host politeness, Heritrix style.
//!
//! After a request to a host ends, the next one may start only after
//! `clamp(delay_factor × duration of that request, min_delay, max_delay)`,
//! and never sooner than the host's robots.txt `Crawl-delay` (honoured up to
//! [`PolitenessConfig::max_crawl_delay`]). Heritrix's defaults are the
//! defaults here: 3 s minimum, factor 5, 30 s maximum, Crawl-delay up to
//! 300 s. A host is held while a request to it runs, so one host never has
//! two requests in flight.
//!
//! Two layers enforce it:
//! * a **host clock** shared by every collector process when a store is
//!   given (`crawl_hosts`: [`Store::reserve_host`] / [`Store::release_host`]),
//!   else kept in this process's memory;
//! * a **governor keyed limiter** per minimum delay in front of it, so within
//!   one process no two requests to a host start closer than the minimum
//!   delay whatever the clock says (a cheap in-memory guard, also for
//!   callers that fetch outside the frontier).
//!
//! A wait longer than the caller's `max_wait` is not slept: the caller gets
//! [`Acquire::Deferred`] with the time the host frees up, so a frontier
//! worker can put the job back and take another host's job instead.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use echotrace_store::{now_ms, Store};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Politeness settings (Heritrix defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct PolitenessConfig {
    /// Off: no delays at all (benchmarks, local tests).
    pub enabled: bool,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Multiple of the last request's duration to wait.
    pub delay_factor: f64,
    /// robots.txt `Crawl-delay` is honoured up to this.
    pub max_crawl_delay: Duration,
}

impl Default for PolitenessConfig {
    fn default() -> Self {
        PolitenessConfig {
            enabled: true,
            min_delay: Duration::from_millis(3000),
            max_delay: Duration::from_millis(30_000),
            delay_factor: 5.0,
            max_crawl_delay: Duration::from_secs(300),
        }
    }
}

impl PolitenessConfig {
    /// The delay after a request that took `took`, with the host's
    /// `crawl_delay` (already capped) and a per-source minimum.
    pub fn delay_after(
        &self,
        took: Duration,
        min_delay: Duration,
        crawl_delay: Option<Duration>,
    ) -> Duration {
        let max = self.max_delay.max(min_delay);
        let scaled = took.mul_f64(self.delay_factor.max(0.0));
        let d = scaled.clamp(min_delay, max);
        match crawl_delay {
            Some(c) => d.max(c.min(self.max_crawl_delay)),
            None => d,
        }
    }
}

/// The outcome of [`Politeness::acquire`].
#[derive(Debug)]
pub enum Acquire {
    /// The host is ours until [`Politeness::release`].
    Granted(HostSlot),
    /// The host frees up at this Unix time (ms), later than the caller
    /// wanted to wait.
    Deferred(i64),
}

/// A held host slot; give it back with [`Politeness::release`].
#[derive(Debug)]
#[must_use]
pub struct HostSlot {
    host: String,
    min_delay: Duration,
    /// How long the caller waited for the slot.
    pub waited: Duration,
    /// Whether it had to wait at all.
    pub did_wait: bool,
}

enum Clock {
    Store(Store),
    Memory(Mutex<HashMap<String, i64>>),
}

/// The politeness gate of one process (see the module doc).
pub struct Politeness {
    config: PolitenessConfig,
    clock: Clock,
    holder: String,
    /// One keyed limiter per distinct minimum delay (ms).
    limiters: Mutex<HashMap<u64, Arc<DefaultKeyedRateLimiter<String>>>>,
    /// Crawl-delay per host, from robots.txt.
    crawl_delays: Mutex<HashMap<String, Duration>>,
}

impl Politeness {
    /// `store`: share host slots with other processes; `holder` names this
    /// process in them.
    pub fn new(config: PolitenessConfig, store: Option<Store>, holder: String) -> Self {
        Politeness {
            config,
            clock: match store {
                Some(s) => Clock::Store(s),
                None => Clock::Memory(Mutex::new(HashMap::new())),
            },
            holder,
            limiters: Mutex::new(HashMap::new()),
            crawl_delays: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &PolitenessConfig {
        &self.config
    }

    /// Remember a host's robots.txt Crawl-delay.
    pub fn set_crawl_delay(&self, host: &str, delay: Option<Duration>) {
        if let Ok(mut m) = self.crawl_delays.lock() {
            match delay {
                Some(d) => {
                    if m.len() > 100_000 {
                        m.clear();
                    }
                    m.insert(host.to_string(), d.min(self.config.max_crawl_delay));
                }
                None => {
                    m.remove(host);
                }
            }
        }
    }

    fn crawl_delay(&self, host: &str) -> Option<Duration> {
        self.crawl_delays.lock().ok()?.get(host).copied()
    }

    fn limiter(&self, min_delay: Duration) -> Option<Arc<DefaultKeyedRateLimiter<String>>> {
        let ms = u64::try_from(min_delay.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return None;
        }
        let mut m = self.limiters.lock().ok()?;
        if let Some(l) = m.get(&ms) {
            return Some(l.clone());
        }
        let quota = Quota::with_period(min_delay)?.allow_burst(NonZeroU32::MIN);
        let l = Arc::new(RateLimiter::keyed(quota));
        m.insert(ms, l.clone());
        Some(l)
    }

    /// Wait for `host`'s slot (at most `max_wait`) and hold it for up to
    /// `hold` (the request's deadline). `min_delay` overrides the configured
    /// minimum (a source's setting).
    pub async fn acquire(
        &self,
        host: &str,
        min_delay: Option<Duration>,
        hold: Duration,
        max_wait: Duration,
    ) -> Result<Acquire, echotrace_store::StoreError> {
        let min_delay = min_delay.unwrap_or(self.config.min_delay);
        if !self.config.enabled {
            return Ok(Acquire::Granted(HostSlot {
                host: host.to_string(),
                min_delay,
                waited: Duration::ZERO,
                did_wait: false,
            }));
        }
        let start = tokio::time::Instant::now();
        let hold_ms = i64::try_from(hold.as_millis()).unwrap_or(i64::MAX / 4);
        loop {
            let next = self.try_reserve(host, hold_ms).await?;
            let Some(next_at) = next else { break };
            let wait_ms = next_at.saturating_sub(now_ms()).max(1);
            let wait = Duration::from_millis(u64::try_from(wait_ms).unwrap_or(u64::MAX));
            if start.elapsed() + wait > max_wait {
                return Ok(Acquire::Deferred(next_at));
            }
            tokio::time::sleep(wait).await;
        }
        if let Some(l) = self.limiter(min_delay) {
            l.until_key_ready(&host.to_string()).await;
        }
        let waited = start.elapsed();
        Ok(Acquire::Granted(HostSlot {
            host: host.to_string(),
            min_delay,
            waited,
            did_wait: waited >= Duration::from_millis(1),
        }))
    }

    async fn try_reserve(
        &self,
        host: &str,
        hold_ms: i64,
    ) -> Result<Option<i64>, echotrace_store::StoreError> {
        match &self.clock {
            Clock::Store(s) => s.reserve_host(host, &self.holder, hold_ms).await,
            Clock::Memory(m) => {
                let now = now_ms();
                let Ok(mut m) = m.lock() else {
                    return Ok(None);
                };
                if m.len() > 100_000 {
                    m.retain(|_, next| *next > now);
                }
                match m.get(host) {
                    Some(next) if *next > now => Ok(Some(*next)),
                    _ => {
                        m.insert(host.to_string(), now.saturating_add(hold_ms));
                        Ok(None)
                    }
                }
            }
        }
    }

    /// Give a slot back after a request that took `took`: the host's next
    /// request may start after the politeness delay.
    pub async fn release(
        &self,
        slot: HostSlot,
        took: Duration,
    ) -> Result<(), echotrace_store::StoreError> {
        if !self.config.enabled {
            return Ok(());
        }
        let delay = self
            .config
            .delay_after(took, slot.min_delay, self.crawl_delay(&slot.host));
        // The host clock counts whole milliseconds and grants once
        // `now_ms() >= next_at`; `now_ms()` truncates, so `now + delay` could
        // grant up to 1 ms before `delay` has passed. One more millisecond
        // makes the delay a lower bound.
        let next_at = now_ms()
            .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 4))
            .saturating_add(1);
        match &self.clock {
            Clock::Store(s) => s.release_host(&slot.host, &self.holder, next_at).await,
            Clock::Memory(m) => {
                if let Ok(mut m) = m.lock() {
                    m.insert(slot.host, next_at);
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heritrix_delay_rule() {
        let c = PolitenessConfig::default();
        let min = c.min_delay;
        // Fast responses: the minimum.
        assert_eq!(c.delay_after(Duration::from_millis(10), min, None), min);
        // factor 5 × 1 s = 5 s.
        assert_eq!(
            c.delay_after(Duration::from_secs(1), min, None),
            Duration::from_secs(5)
        );
        // Capped at 30 s.
        assert_eq!(
            c.delay_after(Duration::from_secs(60), min, None),
            Duration::from_secs(30)
        );
        // Crawl-delay raises it, up to 300 s.
        assert_eq!(
            c.delay_after(
                Duration::from_millis(10),
                min,
                Some(Duration::from_secs(10))
            ),
            Duration::from_secs(10)
        );
        assert_eq!(
            c.delay_after(
                Duration::from_millis(10),
                min,
                Some(Duration::from_secs(9000))
            ),
            Duration::from_secs(300)
        );
    }

    #[tokio::test]
    async fn memory_clock_spaces_requests() {
        let p = Politeness::new(
            PolitenessConfig {
                min_delay: Duration::from_millis(200),
                ..PolitenessConfig::default()
            },
            None,
            "t".into(),
        );
        let t0 = std::time::Instant::now();
        let a = p
            .acquire("h", None, Duration::from_secs(5), Duration::from_secs(5))
            .await
            .unwrap();
        let Acquire::Granted(a) = a else {
            panic!("first acquire must be granted")
        };
        let released = now_ms();
        p.release(a, Duration::from_millis(1)).await.unwrap();
        // Deferred when the caller will not wait.
        match p
            .acquire("h", None, Duration::from_secs(5), Duration::ZERO)
            .await
            .unwrap()
        {
            // `now_ms() >= at` grants; `released` may be up to 1 ms behind the
            // true time, so only `at > released + 200` makes 200 ms a lower bound.
            Acquire::Deferred(at) => assert!(at > released + 200 && at > now_ms()),
            Acquire::Granted(_) => panic!("second acquire must wait"),
        }
        let b = p
            .acquire("h", None, Duration::from_secs(5), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(matches!(b, Acquire::Granted(_)));
        assert!(t0.elapsed() >= Duration::from_millis(195));
    }
}
