//! Named leases: exactly one process runs each piece of background work.
//!
//! A lease (`leases` table, migration 0005) is taken or renewed with one
//! conditional upsert: it succeeds when the lease is free, expired, or
//! already ours, and it expires on its own when its holder dies, so another
//! process takes over after at most one TTL. Every change of holder bumps
//! the lease's **epoch**; work committed under a lease re-checks
//! `(holder, epoch)` inside its own transaction ([`WriteTx::holds_lease`]),
//! so a holder that was paused past its TTL and lost the lease cannot
//! commit stale work (a fencing token).

use std::time::Duration;

use crate::{get_i64, now_ms, Backend, Result, Store, WriteTx};

/// A lease as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRow {
    pub name: String,
    pub holder: String,
    pub epoch: i64,
    pub acquired_at: i64,
    pub expires_at: i64,
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 4)
}

impl Store {
    /// Take or renew the lease `name` for `holder` until now + `ttl`.
    /// Returns the lease's epoch when `holder` now holds it, `None` when
    /// another live holder has it.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<Option<i64>> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO leases (name, holder, epoch, acquired_at, expires_at) \
             VALUES ($1, $2, 1, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET \
               epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch \
                            ELSE leases.epoch + 1 END, \
               acquired_at = CASE WHEN leases.holder = excluded.holder \
                                  THEN leases.acquired_at ELSE excluded.acquired_at END, \
               holder = excluded.holder, \
               expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < excluded.acquired_at \
             RETURNING epoch",
        )
        .bind(name)
        .bind(holder)
        .bind(now)
        .bind(now.saturating_add(ttl_ms(ttl)))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| get_i64(&r, "epoch")).transpose()
    }

    /// Give the lease up (no-op unless `holder` holds it), so another process
    /// can take it at once instead of after the TTL. The row stays (expired),
    /// so epochs keep growing across holders.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The lease `name` as stored (expired or not), for status pages.
    pub async fn get_lease(&self, name: &str) -> Result<Option<LeaseRow>> {
        let row = sqlx::query(
            "SELECT name, holder, epoch, acquired_at, expires_at FROM leases WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(LeaseRow {
                name: crate::rows::get_str(&r, "name")?,
                holder: crate::rows::get_str(&r, "holder")?,
                epoch: get_i64(&r, "epoch")?,
                acquired_at: get_i64(&r, "acquired_at")?,
                expires_at: get_i64(&r, "expires_at")?,
            })
        })
        .transpose()
    }
}

impl WriteTx {
    /// Fence a commit: does `holder` still hold `name` at `epoch`? On
    /// PostgreSQL the lease row stays locked until this transaction ends, so
    /// a takeover waits for it; SQLite writers are serialised anyway.
    pub async fn holds_lease(&mut self, name: &str, holder: &str, epoch: i64) -> Result<bool> {
        let sql = match self.backend {
            Backend::Postgres => {
                "SELECT epoch FROM leases WHERE name = $1 AND holder = $2 AND epoch = $3 FOR UPDATE"
            }
            Backend::Sqlite => {
                "SELECT epoch FROM leases WHERE name = $1 AND holder = $2 AND epoch = $3"
            }
        };
        let row = sqlx::query(sql)
            .bind(name)
            .bind(holder)
            .bind(epoch)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.is_some())
    }
}
