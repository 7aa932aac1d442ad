//! Retention of recorded lookups (`--retain-submissions`).
//!
//! Every lookup writes a submission row (~900 B with its index entries), so
//! without retention the database grows with traffic forever. A sweep
//! deletes, in batches of one transaction each:
//!
//! * submissions without matches created before the submissions cutoff;
//! * submissions with matches once **every** match is decided (none
//!   pending) and the last decision is older than the decisions cutoff —
//!   with their matches, decisions, their audit trail (`lookup.match` on
//!   `submission:ID`, `match.decide` / `match.undo` on `match:ID`) and
//!   retained media.
//!
//! Nothing else is touched: banks, content, outbox events (self-contained
//! payloads) and the rest of the audit log stay.
//!
//! **Safe to run twice at once.** Each batch selects its rows inside its own
//! write transaction and deletes them by id; a second sweeper running at the
//! same moment finds the rows gone (SQLite: writers are serialised; on
//! PostgreSQL the second one's deletes wait for the first to commit, then
//! match nothing), so it deletes nothing twice and fails nothing. A match
//! decided again while its submission is being deleted makes that batch's
//! transaction fail on the foreign key; nothing is lost, and the next sweep
//! re-evaluates it (now inside the window, kept).

use sqlx::{AssertSqlSafe, Row};

use crate::{get_i64, Result, WriteTx};

/// What a sweep may delete: rows older than these Unix-ms instants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionCutoffs {
    /// Submissions without matches created before this go.
    pub unmatched_before: i64,
    /// Submissions whose matches are all decided, last before this, go.
    pub decided_before: i64,
}

/// Rows one sweep batch deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepCounts {
    pub submissions: u64,
    pub matches: u64,
    pub decisions: u64,
    pub audit_entries: u64,
    pub retained_media: u64,
}

impl SweepCounts {
    /// Add another batch's counts.
    pub fn add(&mut self, o: &SweepCounts) {
        self.submissions += o.submissions;
        self.matches += o.matches;
        self.decisions += o.decisions;
        self.audit_entries += o.audit_entries;
        self.retained_media += o.retained_media;
    }
}

impl WriteTx {
    /// `DELETE FROM {table_where_column} IN (items)`, 1,000 items a statement
    /// (items are SQL literals we built from ids). Returns the rows deleted.
    async fn delete_in(&mut self, table_where_column: &str, items: &[String]) -> Result<u64> {
        let mut deleted = 0;
        for chunk in items.chunks(1000) {
            let sql = format!("DELETE FROM {table_where_column} IN ({})", chunk.join(", "));
            deleted += sqlx::query(AssertSqlSafe(sql))
                .persistent(false)
                .execute(&mut *self.tx)
                .await?
                .rows_affected();
        }
        Ok(deleted)
    }

    /// Delete up to `batch` expired submissions (half at most of each kind
    /// when both are due) with everything that hangs off them. Call in a
    /// loop, one transaction per batch, until it deletes none.
    pub async fn sweep_submissions_batch(
        &mut self,
        cutoffs: RetentionCutoffs,
        batch: i64,
    ) -> Result<SweepCounts> {
        let mut ids: Vec<i64> = Vec::new();
        let unmatched = sqlx::query(
            "SELECT id FROM submissions WHERE match_count = 0 AND created_at < $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(cutoffs.unmatched_before)
        .bind(batch)
        .fetch_all(&mut *self.tx)
        .await?;
        for r in &unmatched {
            ids.push(get_i64(r, "id")?);
        }
        let decided = sqlx::query(
            "SELECT s.id AS id FROM submissions s WHERE s.match_count > 0 AND s.created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM matches m WHERE m.submission_id = s.id \
                             AND (m.status = 'pending' OR m.updated_at >= $1)) \
             ORDER BY s.id LIMIT $2",
        )
        .bind(cutoffs.decided_before)
        .bind(batch)
        .fetch_all(&mut *self.tx)
        .await?;
        for r in &decided {
            ids.push(get_i64(r, "id")?);
        }
        let mut counts = SweepCounts::default();
        if ids.is_empty() {
            return Ok(counts);
        }
        // Every list below is made of ids the database just gave us, so it
        // is written inline (no bind per id, one statement per 1,000).
        let subs: Vec<String> = ids.iter().map(i64::to_string).collect();
        let mut match_ids: Vec<String> = Vec::new();
        for chunk in subs.chunks(1000) {
            let sql = format!(
                "SELECT id FROM matches WHERE submission_id IN ({})",
                chunk.join(", ")
            );
            for r in sqlx::query(AssertSqlSafe(sql))
                .persistent(false)
                .fetch_all(&mut *self.tx)
                .await?
            {
                match_ids.push(get_i64(&r, "id")?.to_string());
            }
        }
        let targets: Vec<String> = subs
            .iter()
            .map(|i| format!("'submission:{i}'"))
            .chain(match_ids.iter().map(|i| format!("'match:{i}'")))
            .collect();
        counts.audit_entries = self.delete_in("audit_log WHERE target", &targets).await?;
        counts.decisions = self
            .delete_in("decisions WHERE match_id", &match_ids)
            .await?;
        counts.matches = self.delete_in("matches WHERE submission_id", &subs).await?;
        counts.retained_media = self
            .delete_in(
                "retained_media WHERE owner = 'submission' AND owner_id",
                &subs,
            )
            .await?;
        counts.submissions = self.delete_in("submissions WHERE id", &subs).await?;
        Ok(counts)
    }
}

/// Rows in `submissions` (for retention reports and tests).
impl crate::Store {
    pub async fn count_submissions(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM submissions")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<i64, _>("n").unwrap_or(0))
    }
}
