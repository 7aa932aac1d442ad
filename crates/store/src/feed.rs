//! Published feeds (migration 0020): a bank shared with partner keys as an
//! ordered log of `(signal type, value)` entries, live or tombstones.
//!
//! * `feeds` holds one row per published bank: the last sequence number
//!   handed out (`head_seq`), the highest tombstone sequence purged after
//!   the horizon (`purged_seq`; a cursor below it cannot be continued), and
//!   the horizon itself.
//! * `feed_entries` holds the current state of every key ever published,
//!   re-sequenced on each change, so a page "after cursor N" is one range
//!   scan of the `(bank_id, seq)` index.
//! * The builder (the exchange crate's feed worker) derives entries from
//!   the change sequence; its position is the one row of `feed_state`.

use sqlx::any::AnyRow;

use crate::bulk::{numbered, values_sql, GrowingTable, ValueSet};
use crate::rows::{get_bool, get_opt_i64, get_str};
use crate::{get_i64, now_ms, Result, Store, StoreError, WriteTx};

/// Entries per multi-row upsert (6 parameters each).
const ENTRY_ROWS_PER_STATEMENT: usize = 150;

/// A published bank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedRow {
    pub bank_id: i64,
    pub head_seq: i64,
    pub purged_seq: i64,
    pub horizon_ms: i64,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl FeedRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(FeedRow {
            bank_id: get_i64(r, "bank_id")?,
            head_seq: get_i64(r, "head_seq")?,
            purged_seq: get_i64(r, "purged_seq")?,
            horizon_ms: get_i64(r, "horizon_ms")?,
            created_by: get_str(r, "created_by")?,
            created_at: get_i64(r, "created_at")?,
            updated_at: get_i64(r, "updated_at")?,
        })
    }
}

/// One feed entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedEntryRow {
    pub bank_id: i64,
    pub signal_type: String,
    pub value: String,
    pub seq: i64,
    pub live: bool,
    /// The bank item the entry is live through (lowest active id).
    pub content_id: Option<i64>,
    /// The item's labels (JSON array).
    pub labels: String,
    pub updated_at: i64,
}

impl FeedEntryRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(FeedEntryRow {
            bank_id: get_i64(r, "bank_id")?,
            signal_type: get_str(r, "signal_type")?,
            value: get_str(r, "value")?,
            seq: get_i64(r, "seq")?,
            live: get_bool(r, "live")?,
            content_id: get_opt_i64(r, "content_id")?,
            labels: get_str(r, "labels")?,
            updated_at: get_i64(r, "updated_at")?,
        })
    }
}

const ENTRY_COLUMNS: &str =
    "bank_id, signal_type, value, seq, live, content_id, labels, updated_at";

/// The new state of one key ([`WriteTx::write_feed_entries`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFeedEntry {
    pub signal_type: String,
    pub value: String,
    pub live: bool,
    pub content_id: Option<i64>,
    pub labels: String,
}

/// A partner's opinion on a feed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedOpinionRow {
    pub bank_id: i64,
    pub key_id: i64,
    pub signal_type: String,
    pub value: String,
    pub category: String,
    /// JSON array of strings.
    pub tags: String,
    pub received_at: i64,
}

impl FeedOpinionRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(FeedOpinionRow {
            bank_id: get_i64(r, "bank_id")?,
            key_id: get_i64(r, "key_id")?,
            signal_type: get_str(r, "signal_type")?,
            value: get_str(r, "value")?,
            category: get_str(r, "category")?,
            tags: get_str(r, "tags")?,
            received_at: get_i64(r, "received_at")?,
        })
    }
}

impl Store {
    pub async fn get_feed(&self, bank_id: i64) -> Result<Option<FeedRow>> {
        let row = sqlx::query(
            "SELECT bank_id, head_seq, purged_seq, horizon_ms, created_by, created_at, \
             updated_at FROM feeds WHERE bank_id = $1",
        )
        .bind(bank_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(FeedRow::from_row).transpose()
    }

    pub async fn list_feeds(&self) -> Result<Vec<FeedRow>> {
        let rows = sqlx::query(
            "SELECT bank_id, head_seq, purged_seq, horizon_ms, created_by, created_at, \
             updated_at FROM feeds ORDER BY bank_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(FeedRow::from_row).collect()
    }

    /// Partner key ids granted a feed.
    pub async fn feed_partner_keys(&self, bank_id: i64) -> Result<Vec<i64>> {
        let rows =
            sqlx::query("SELECT key_id FROM feed_partners WHERE bank_id = $1 ORDER BY key_id")
                .bind(bank_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| get_i64(r, "key_id")).collect()
    }

    /// Whether a key was granted a feed.
    pub async fn feed_granted(&self, bank_id: i64, key_id: i64) -> Result<bool> {
        let row =
            sqlx::query("SELECT 1 AS one FROM feed_partners WHERE bank_id = $1 AND key_id = $2")
                .bind(bank_id)
                .bind(key_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    /// Entries with `seq > after`, in sequence order.
    pub async fn feed_entries_after(
        &self,
        bank_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<FeedEntryRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM feed_entries WHERE bank_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3"
        )))
        .bind(bank_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(FeedEntryRow::from_row).collect()
    }

    /// Live entries in key order after `after` (exclusive) with
    /// `seq <= max_seq` (snapshots and checksums).
    pub async fn feed_live_page(
        &self,
        bank_id: i64,
        after: Option<(&str, &str)>,
        max_seq: i64,
        limit: i64,
    ) -> Result<Vec<FeedEntryRow>> {
        let (t, v) = after.unwrap_or(("", ""));
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM feed_entries WHERE bank_id = $1 \
             AND (signal_type > $2 OR (signal_type = $2 AND value > $3)) AND live = 1 \
             AND seq <= $4 ORDER BY signal_type, value LIMIT $5"
        )))
        .bind(bank_id)
        .bind(t)
        .bind(v)
        .bind(max_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(FeedEntryRow::from_row).collect()
    }

    /// Live and tombstone counts of a feed.
    pub async fn feed_counts(&self, bank_id: i64) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(live), 0) AS BIGINT) AS live, COUNT(*) AS total \
             FROM feed_entries WHERE bank_id = $1",
        )
        .bind(bank_id)
        .fetch_one(&self.pool)
        .await?;
        let live = get_i64(&row, "live")?;
        Ok((live, get_i64(&row, "total")? - live))
    }

    /// The feed builder's position in the change sequence.
    pub async fn feed_builder_cursor(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT change_id FROM feed_state WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| get_i64(&r, "change_id")).transpose()
    }

    /// Partner opinions on a feed, newest first.
    pub async fn feed_opinions(&self, bank_id: i64, limit: i64) -> Result<Vec<FeedOpinionRow>> {
        let rows = sqlx::query(
            "SELECT bank_id, key_id, signal_type, value, category, tags, received_at \
             FROM feed_opinions WHERE bank_id = $1 ORDER BY received_at DESC LIMIT $2",
        )
        .bind(bank_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(FeedOpinionRow::from_row).collect()
    }
}

impl WriteTx {
    /// Publish a bank (or change its horizon). Starts the builder's cursor at
    /// `start_change` if it has none yet.
    pub async fn upsert_feed(
        &mut self,
        bank_id: i64,
        horizon_ms: i64,
        created_by: &str,
        start_change: i64,
    ) -> Result<FeedRow> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO feeds (bank_id, head_seq, purged_seq, horizon_ms, created_by, created_at, \
             updated_at) VALUES ($1, 0, 0, $2, $3, $4, $4) ON CONFLICT (bank_id) DO UPDATE SET \
             horizon_ms = excluded.horizon_ms, updated_at = excluded.updated_at \
             RETURNING bank_id, head_seq, purged_seq, horizon_ms, created_by, created_at, updated_at",
        )
        .bind(bank_id)
        .bind(horizon_ms)
        .bind(created_by)
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await?;
        sqlx::query(
            "INSERT INTO feed_state (id, change_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(start_change)
        .execute(&mut *self.tx)
        .await?;
        FeedRow::from_row(&row)
    }

    pub async fn get_feed(&mut self, bank_id: i64) -> Result<Option<FeedRow>> {
        let row = sqlx::query(
            "SELECT bank_id, head_seq, purged_seq, horizon_ms, created_by, created_at, \
             updated_at FROM feeds WHERE bank_id = $1",
        )
        .bind(bank_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(FeedRow::from_row).transpose()
    }

    /// Replace the partner keys granted a feed.
    pub async fn set_feed_partners(&mut self, bank_id: i64, key_ids: &[i64]) -> Result<()> {
        sqlx::query("DELETE FROM feed_partners WHERE bank_id = $1")
            .bind(bank_id)
            .execute(&mut *self.tx)
            .await?;
        for k in key_ids {
            sqlx::query(
                "INSERT INTO feed_partners (bank_id, key_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (bank_id, key_id) DO NOTHING",
            )
            .bind(bank_id)
            .bind(*k)
            .bind(now_ms())
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    /// Stop publishing a bank: its entries, grants and opinions go.
    pub async fn delete_feed(&mut self, bank_id: i64) -> Result<()> {
        for table in ["feed_entries", "feed_partners", "feed_opinions"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE bank_id = $1"
            )))
            .bind(bank_id)
            .execute(&mut *self.tx)
            .await?;
        }
        let done = sqlx::query("DELETE FROM feeds WHERE bank_id = $1")
            .bind(bank_id)
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("feed of bank {bank_id}")));
        }
        Ok(())
    }

    /// Bank ids of every feed.
    pub async fn feed_bank_ids(&mut self) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT bank_id FROM feeds ORDER BY bank_id")
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(|r| get_i64(r, "bank_id")).collect()
    }

    /// Entries live through a content item (any bank).
    pub async fn feed_entries_of_content(&mut self, content_id: i64) -> Result<Vec<FeedEntryRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM feed_entries WHERE content_id = $1"
        )))
        .bind(content_id)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(FeedEntryRow::from_row).collect()
    }

    /// Entries of one bank with these values of one signal type.
    pub async fn feed_entries_by_values(
        &mut self,
        bank_id: i64,
        signal_type: &str,
        values: &[&str],
    ) -> Result<Vec<FeedEntryRow>> {
        let mut out = Vec::new();
        for chunk in values.chunks(500) {
            let set = ValueSet::new(self.backend, "value", 3, chunk.len());
            let sql = numbered(
                self.backend,
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM feed_entries{} WHERE bank_id = ? \
                     AND signal_type = ? AND {}",
                    set.select_from(),
                    set.cond
                ),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(bank_id)
                .bind(signal_type);
            for v in chunk {
                q = q.bind(*v);
            }
            for r in q.fetch_all(&mut *self.tx).await? {
                out.push(FeedEntryRow::from_row(&r)?);
            }
        }
        Ok(out)
    }

    /// The lowest-id active (enabled, not quarantined) item of a bank
    /// carrying a signal, with its labels.
    pub async fn active_content_with_signal(
        &mut self,
        bank_id: i64,
        signal_type: &str,
        value: &str,
    ) -> Result<Option<(i64, String)>> {
        let sql = format!(
            "SELECT c.id AS id, c.labels AS labels FROM signals s \
             JOIN bank_content c ON c.id = s.content_id \
             WHERE s.signal_type = $1 AND {} AND s.bank_id = $3 \
             AND c.enabled = 1 AND c.quarantined = 0 ORDER BY c.id LIMIT 1",
            crate::signal_value_eq(self.backend, "s.value", 2)
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(signal_type)
            .bind(value)
            .bind(bank_id)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|r| Ok((get_i64(&r, "id")?, get_str(&r, "labels")?)))
            .transpose()
    }

    /// Give `entries` the next sequence numbers of the bank's feed, in
    /// order, and write them (insert or overwrite). Returns the new head.
    pub async fn write_feed_entries(
        &mut self,
        bank_id: i64,
        entries: &[NewFeedEntry],
    ) -> Result<i64> {
        let n = i64::try_from(entries.len())
            .map_err(|_| StoreError::Corrupt("too many feed entries".into()))?;
        let row = sqlx::query(
            "UPDATE feeds SET head_seq = head_seq + $1, updated_at = $2 WHERE bank_id = $3 \
             RETURNING head_seq",
        )
        .bind(n)
        .bind(now_ms())
        .bind(bank_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(format!("feed of bank {bank_id}")));
        };
        let head = get_i64(&row, "head_seq")?;
        let mut seq = head - n;
        let now = now_ms();
        for chunk in entries.chunks(ENTRY_ROWS_PER_STATEMENT) {
            // Anonymous `?` parameters, bound in order (see `bulk`).
            let sql = values_sql(
                self.backend,
                "INSERT INTO feed_entries (bank_id, signal_type, value, seq, live, content_id, \
                 labels, updated_at) VALUES ",
                "(?, ?, ?, ?, ?, ?, ?, ?)",
                chunk.len(),
            )
                + " ON CONFLICT (bank_id, signal_type, value) DO UPDATE SET seq = excluded.seq, \
                 live = excluded.live, content_id = excluded.content_id, \
                 labels = excluded.labels, updated_at = excluded.updated_at";
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in chunk {
                seq += 1;
                q = q
                    .bind(bank_id)
                    .bind(e.signal_type.as_str())
                    .bind(e.value.as_str())
                    .bind(seq)
                    .bind(i64::from(e.live))
                    .bind(e.content_id)
                    .bind(e.labels.as_str())
                    .bind(now);
            }
            q.execute(&mut *self.tx).await?;
        }
        if !entries.is_empty() {
            self.refresh_statistics_when_doubled(GrowingTable::FeedEntries)
                .await?;
        }
        Ok(head)
    }

    /// Point an unchanged live entry at another item (no new sequence).
    pub async fn repoint_feed_entry(
        &mut self,
        bank_id: i64,
        signal_type: &str,
        value: &str,
        content_id: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE feed_entries SET content_id = $1 WHERE bank_id = $2 AND signal_type = $3 \
             AND value = $4",
        )
        .bind(content_id)
        .bind(bank_id)
        .bind(signal_type)
        .bind(value)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Move the builder's position in the change sequence.
    pub async fn set_feed_builder_cursor(&mut self, change_id: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO feed_state (id, change_id) VALUES (1, $1) ON CONFLICT (id) DO UPDATE \
             SET change_id = excluded.change_id",
        )
        .bind(change_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Purge tombstones last changed before `before` (ms) and remember the
    /// highest purged sequence. Returns how many were purged.
    pub async fn purge_feed_tombstones(&mut self, bank_id: i64, before: i64) -> Result<u64> {
        let row = sqlx::query(
            "SELECT MAX(seq) AS m FROM feed_entries WHERE bank_id = $1 AND live = 0 \
             AND updated_at < $2",
        )
        .bind(bank_id)
        .bind(before)
        .fetch_one(&mut *self.tx)
        .await?;
        let Some(max) = get_opt_i64(&row, "m")? else {
            return Ok(0);
        };
        let done = sqlx::query(
            "DELETE FROM feed_entries WHERE bank_id = $1 AND live = 0 AND updated_at < $2",
        )
        .bind(bank_id)
        .bind(before)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "UPDATE feeds SET purged_seq = CASE WHEN purged_seq > $1 THEN purged_seq ELSE $1 END \
             WHERE bank_id = $2",
        )
        .bind(max)
        .bind(bank_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected())
    }

    /// Store a partner's opinion (the latest per partner and record wins).
    pub async fn upsert_feed_opinion(&mut self, o: &FeedOpinionRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO feed_opinions (bank_id, key_id, signal_type, value, category, tags, \
             received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (bank_id, key_id, signal_type, value) DO UPDATE SET \
             category = excluded.category, tags = excluded.tags, received_at = excluded.received_at",
        )
        .bind(o.bank_id)
        .bind(o.key_id)
        .bind(o.signal_type.as_str())
        .bind(o.value.as_str())
        .bind(o.category.as_str())
        .bind(o.tags.as_str())
        .bind(o.received_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}
