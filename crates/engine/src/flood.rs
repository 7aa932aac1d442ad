//! Flood guard: quarantine a bank item that matches too large a share of
//! recent lookups — typically a near-blank image or a stock phrase that
//! slipped into a bank and now matches everything.
//!
//! The counts are **shared by every process on the database** (the store's
//! `shared_counters`, in time buckets), so N replicas behind a load
//! balancer enforce one limit at one global count:
//!
//! * `flood:lookups` counts lookups, `flood:c:<content id>` the lookups
//!   that hit that item, per bucket of `window / 10` (at least 1 s); a
//!   share is the item's sum over the last ten buckets divided by the
//!   lookups' sum over the same buckets.
//! * Each process writes its own rows (`replica` = its id), so replicas
//!   never wait for each other's row locks; readers sum over replicas.
//! * Hits are written in the same transaction as the lookup records (the
//!   group commit), together with every lookup counted since the last write,
//!   and the sums are read back in that transaction: a replica decides on
//!   the hits of every replica that committed before it.
//! * Lookups that record nothing (`--record matches`, no match) are only
//!   counted in memory and written by the next group commit or by the
//!   once-a-second flush ([`crate::Engine::flush_flood_counts`]); until
//!   then another replica's share can read slightly high (its denominator
//!   lacks at most a second of this replica's unmatched lookups).
//! * An item over the limit (once the window holds `min_sample` lookups) is
//!   quarantined with one conditional update, so of several replicas
//!   deciding at once exactly one quarantines, audits and announces it; its
//!   counters are then deleted so a release starts afresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use echotrace_store::{CounterAdd, WriteTx};

use crate::error::Result;
use crate::types::ContentId;

/// Flood-guard settings.
#[derive(Clone, Debug)]
pub struct FloodGuardConfig {
    pub enabled: bool,
    /// Lookups within this long count (shared by all processes).
    pub window: Duration,
    /// No quarantine before the window holds this many lookups.
    pub min_sample: usize,
    /// Quarantine when an item matched more than this share (0..1) of the window.
    pub max_share: f64,
}

impl Default for FloodGuardConfig {
    fn default() -> Self {
        FloodGuardConfig {
            enabled: true,
            window: Duration::from_secs(600),
            min_sample: 200,
            max_share: 0.2,
        }
    }
}

/// Counter of all lookups.
const LOOKUPS: &str = "flood:lookups";
/// Buckets per window.
const BUCKETS: i64 = 10;

/// Counter of lookups that hit `content_id`.
pub(crate) fn item_counter(content_id: ContentId) -> String {
    format!("flood:c:{content_id}")
}

pub(crate) struct FloodGuard {
    cfg: FloodGuardConfig,
    replica: String,
    /// Lookups counted here and not yet written.
    pending: AtomicU64,
}

impl FloodGuard {
    pub(crate) fn new(cfg: FloodGuardConfig, replica: String) -> FloodGuard {
        FloodGuard {
            cfg,
            replica,
            pending: AtomicU64::new(0),
        }
    }

    pub(crate) fn config(&self) -> &FloodGuardConfig {
        &self.cfg
    }

    fn active(&self) -> bool {
        self.cfg.enabled && !self.cfg.window.is_zero()
    }

    fn bucket_ms(&self) -> i64 {
        let w = i64::try_from(self.cfg.window.as_millis()).unwrap_or(i64::MAX / 4);
        (w / BUCKETS).max(1000)
    }

    fn bucket_of(&self, now: i64) -> i64 {
        let b = self.bucket_ms();
        now - now.rem_euclid(b)
    }

    /// Start of the oldest bucket inside the window at `now`.
    fn since(&self, now: i64) -> i64 {
        self.bucket_of(now) - (BUCKETS - 1) * self.bucket_ms()
    }

    /// Count lookups (written later).
    pub(crate) fn count_lookups(&self, n: usize) {
        if self.active() {
            self.pending.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Take the lookups counted so far (give them back with
    /// [`FloodGuard::restore`] if writing them fails).
    pub(crate) fn take_pending(&self) -> u64 {
        self.pending.swap(0, Ordering::Relaxed)
    }

    pub(crate) fn restore(&self, n: u64) {
        self.pending.fetch_add(n, Ordering::Relaxed);
    }

    fn add(&self, name: String, delta: u64, now: i64) -> CounterAdd {
        let bucket = self.bucket_of(now);
        CounterAdd {
            name,
            bucket,
            replica: self.replica.clone(),
            delta: i64::try_from(delta).unwrap_or(i64::MAX),
            expires_at: bucket + (BUCKETS + 1) * self.bucket_ms(),
        }
    }

    /// Inside a transaction: write `lookups` (taken with
    /// [`FloodGuard::take_pending`]) and the hits of `hits` (content id →
    /// lookups that hit it), then read the window's sums back and return
    /// the hit items now over the limit, with their share.
    pub(crate) async fn write_and_check(
        &self,
        tx: &mut WriteTx,
        lookups: u64,
        hits: &HashMap<ContentId, u64>,
    ) -> Result<Vec<(ContentId, f64)>> {
        if !self.active() {
            return Ok(Vec::new());
        }
        let now = echotrace_store::now_ms();
        let mut adds = Vec::with_capacity(hits.len() + 1);
        if lookups > 0 {
            adds.push(self.add(LOOKUPS.to_string(), lookups, now));
        }
        let mut ids: Vec<ContentId> = hits.keys().copied().collect();
        ids.sort_unstable();
        for id in &ids {
            adds.push(self.add(item_counter(*id), hits[id], now));
        }
        tx.add_counters(&adds).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut names: Vec<String> = ids.iter().map(|id| item_counter(*id)).collect();
        names.push(LOOKUPS.to_string());
        let sums = tx.counter_sums(&names, self.since(now)).await?;
        let total = sums.get(LOOKUPS).copied().unwrap_or(0);
        if total <= 0 || (total as u64) < self.cfg.min_sample.max(1) as u64 {
            return Ok(Vec::new());
        }
        Ok(ids
            .into_iter()
            .filter_map(|id| {
                let n = *sums.get(&item_counter(id))?;
                let share = n as f64 / total as f64;
                (share > self.cfg.max_share).then_some((id, share))
            })
            .collect())
    }

    /// The rows for lookups counted but not written (the periodic flush).
    pub(crate) fn flush_adds(&self, lookups: u64) -> Vec<CounterAdd> {
        if lookups == 0 || !self.active() {
            return Vec::new();
        }
        vec![self.add(LOOKUPS.to_string(), lookups, echotrace_store::now_ms())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_window() {
        let g = FloodGuard::new(
            FloodGuardConfig {
                window: Duration::from_secs(60),
                ..FloodGuardConfig::default()
            },
            "r".into(),
        );
        assert_eq!(g.bucket_ms(), 6000);
        let now = 1_000_000_123;
        assert_eq!(g.bucket_of(now) % 6000, 0);
        assert!(g.bucket_of(now) <= now && now - g.bucket_of(now) < 6000);
        // Ten buckets: the current one and nine before it.
        assert_eq!(g.bucket_of(now) - g.since(now), 9 * 6000);
        let a = g.add(LOOKUPS.into(), 3, now);
        assert_eq!(a.delta, 3);
        assert_eq!(a.replica, "r");
        assert!(a.expires_at > now + 60_000);
    }

    #[test]
    fn short_windows_use_one_second_buckets_and_disabled_counts_nothing() {
        let g = FloodGuard::new(
            FloodGuardConfig {
                window: Duration::from_secs(2),
                ..FloodGuardConfig::default()
            },
            "r".into(),
        );
        assert_eq!(g.bucket_ms(), 1000);
        let off = FloodGuard::new(
            FloodGuardConfig {
                enabled: false,
                ..FloodGuardConfig::default()
            },
            "r".into(),
        );
        off.count_lookups(5);
        assert_eq!(off.take_pending(), 0);
        assert!(off.flush_adds(5).is_empty());
        g.count_lookups(5);
        assert_eq!(g.take_pending(), 5);
        g.restore(2);
        assert_eq!(g.take_pending(), 2);
    }
}
