//! Delivery of outbox events.
//!
//! A pass selects due rows (undelivered, not given up, `next_attempt_at <=
//! now`), leases each by moving its `next_attempt_at` forward (a
//! compare-and-set, so two processes never deliver the same row at the same
//! time), calls the [`Deliverer`], then marks the row delivered or schedules
//! the next attempt after `base_backoff · 2^(attempts-1)` capped at
//! `max_backoff`. After `max_attempts` failures the row is marked failed and
//! left for an operator. A crash mid-delivery leaves the lease, which expires
//! and the row is retried: delivery is at-least-once, so receivers should
//! de-duplicate by event id.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use echotrace_store::{now_ms, Store};

use crate::convert::outbox_from_row;
use crate::error::Result;
use crate::types::OutboxEvent;

/// A boxed `Send` future (keeps [`Deliverer`] object-safe without extra crates).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Delivers one event somewhere (webhooks, a queue…). `Err` carries a short
/// reason that is stored as `last_error`; the event is retried later.
pub trait Deliverer: Send + Sync {
    fn deliver<'a>(&'a self, event: &'a OutboxEvent) -> BoxFuture<'a, Result<(), String>>;
}

/// Outbox worker settings.
#[derive(Clone, Debug)]
pub struct OutboxConfig {
    /// Pause between passes when nothing was due.
    pub poll_interval: Duration,
    /// Delay after the first failure; doubles per further failure.
    pub base_backoff: Duration,
    /// Upper bound of the delay.
    pub max_backoff: Duration,
    /// Give up (mark failed) after this many failed attempts.
    pub max_attempts: u32,
    /// How long a leased event is reserved for the worker delivering it.
    pub lease: Duration,
    /// Max events per pass.
    pub batch: u32,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            poll_interval: Duration::from_millis(500),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3600),
            max_attempts: 20,
            lease: Duration::from_secs(60),
            batch: 100,
        }
    }
}

impl OutboxConfig {
    /// Delay before the next attempt after `attempts` failures (>= 1).
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(40);
        let factor = 1u64 << exp;
        let ms = u64::try_from(self.base_backoff.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(factor);
        Duration::from_millis(ms).min(self.max_backoff)
    }
}

/// Counts of one delivery pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub attempted: usize,
    pub delivered: usize,
    pub retried: usize,
    pub gave_up: usize,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) async fn deliver_due(
    store: &Store,
    cfg: &OutboxConfig,
    deliverer: &dyn Deliverer,
) -> Result<DeliveryReport> {
    let mut report = DeliveryReport::default();
    let now = now_ms();
    let due = store.due_outbox(now, i64::from(cfg.batch.max(1))).await?;
    for row in due {
        let lease_until = now_ms().saturating_add(ms(cfg.lease));
        if !store
            .claim_outbox(row.id, row.next_attempt_at, lease_until)
            .await?
        {
            continue; // another worker has it
        }
        let event = match outbox_from_row(&row) {
            Ok(e) => e,
            Err(e) => {
                // Undeliverable payload: give up at once, keep the reason.
                store
                    .mark_outbox_attempt_failed(
                        row.id,
                        row.attempts + 1,
                        lease_until,
                        &e.to_string(),
                        Some(now_ms()),
                    )
                    .await?;
                report.gave_up += 1;
                continue;
            }
        };
        report.attempted += 1;
        let attempts = row.attempts.saturating_add(1);
        match deliverer.deliver(&event).await {
            Ok(()) => {
                store
                    .mark_outbox_delivered(row.id, attempts, now_ms())
                    .await?;
                report.delivered += 1;
            }
            Err(reason) => {
                let n = u32::try_from(attempts).unwrap_or(u32::MAX);
                let at = now_ms();
                if n >= cfg.max_attempts {
                    store
                        .mark_outbox_attempt_failed(row.id, attempts, at, &reason, Some(at))
                        .await?;
                    report.gave_up += 1;
                } else {
                    let next = at.saturating_add(ms(cfg.backoff(n)));
                    store
                        .mark_outbox_attempt_failed(row.id, attempts, next, &reason, None)
                        .await?;
                    report.retried += 1;
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let cfg = OutboxConfig {
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..OutboxConfig::default()
        };
        assert_eq!(cfg.backoff(1), Duration::from_millis(100));
        assert_eq!(cfg.backoff(2), Duration::from_millis(200));
        assert_eq!(cfg.backoff(4), Duration::from_millis(800));
        assert_eq!(cfg.backoff(5), Duration::from_millis(1000));
        assert_eq!(cfg.backoff(500), Duration::from_millis(1000));
    }
}
