//! Storage for running many processes on one database (migration 0060),
//! and the lean reads of the columnar matching state.
//!
//! * **Database identity**: `instance.identity`, random, made when the
//!   schema is created. Index snapshots carry it (with [`schema_version`]
//!   and the change id they reflect) so a snapshot of another database is
//!   refused.
//! * **Shared counters** (`shared_counters`): named counts in time buckets
//!   (`bucket` = bucket start, Unix ms), summed over a window by whoever
//!   reads them. Two uses: the flood guard adds lookups and per-item hits
//!   (each process writes its own rows, `replica` = its id, so processes
//!   never wait on each other's row locks) and the login throttle adds
//!   failures per username and per client address (one row per bucket,
//!   `replica` = '', so that the check-and-count of concurrent attempts on
//!   different processes is serialised by the row lock). Rows carry
//!   `expires_at` and are swept by whoever holds the sweep lease.
//! * **Hit details**: the stored value of a matched signal and its item's
//!   labels, read only for the hits a lookup reports (the in-memory state
//!   keeps neither).

use std::collections::{BTreeMap, HashMap};

use sqlx::any::AnyRow;
use sqlx::Any;

use crate::bulk::{numbered, values_list, ValueSet};
use crate::rows::get_str;
use crate::{get_i64, Backend, Result, Store, WriteTx};

/// The schema version this build migrates to (the last migration's
/// number). Snapshots record it; one from another schema is refused.
pub fn schema_version() -> i64 {
    crate::migration_sources(Backend::Sqlite)
        .last()
        .map(|(v, _, _)| *v)
        .unwrap_or(0)
}

/// What the matching state needs of a content row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentFlagsRow {
    pub id: i64,
    pub bank_id: i64,
    pub enabled: bool,
    pub quarantined: bool,
}

/// The stored value of one signal and the labels (JSON) of its item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HitDetail {
    pub signal_id: i64,
    pub content_id: i64,
    pub value: String,
    pub labels: String,
}

/// One counter increment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterAdd {
    pub name: String,
    /// Bucket start, Unix ms.
    pub bucket: i64,
    /// Writer's id, or '' for rows shared by every writer.
    pub replica: String,
    pub delta: i64,
    pub expires_at: i64,
}

/// Most ids bound in one `IN (…)` list.
const IN_CHUNK: usize = 500;

fn hit_detail(r: &AnyRow) -> Result<HitDetail> {
    Ok(HitDetail {
        signal_id: get_i64(r, "id")?,
        content_id: get_i64(r, "content_id")?,
        value: get_str(r, "value")?,
        labels: get_str(r, "labels")?,
    })
}

/// Counter rows per upsert statement (5 parameters each).
const COUNTER_CHUNK: usize = 200;

/// The counter upsert for `rows` rows.
fn upsert_counters_sql(backend: Backend, rows: usize) -> String {
    numbered(
        backend,
        &format!(
            "{} ON CONFLICT (name, bucket, replica) DO UPDATE SET \
             count = shared_counters.count + excluded.count, expires_at = excluded.expires_at",
            values_list(
                "INSERT INTO shared_counters (name, bucket, replica, count, expires_at) VALUES ",
                "(?, ?, ?, ?, ?)",
                rows
            )
        ),
    )
}

/// Lists of names are padded to the next power of two with this name, which
/// no counter has, so a statement's shape (and its prepared plan) is one of
/// a dozen instead of one per list length.
const NO_COUNTER: &str = "";

async fn sums_in<'e, E>(
    exec: E,
    backend: Backend,
    names: &[String],
    since: i64,
) -> Result<HashMap<String, i64>>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let padded = names.len().next_power_of_two();
    let set = ValueSet::new(backend, "name", 2, padded);
    let sql = numbered(
        backend,
        &format!(
            "SELECT name, CAST(SUM(count) AS BIGINT) AS total FROM shared_counters{} \
             WHERE bucket >= ? AND {} GROUP BY name",
            set.select_from(),
            set.cond
        ),
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(since);
    for n in names {
        q = q.bind(n.as_str());
    }
    for _ in names.len()..padded {
        q = q.bind(NO_COUNTER);
    }
    let rows = q.fetch_all(exec).await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in &rows {
        out.insert(get_str(r, "name")?, get_i64(r, "total")?);
    }
    Ok(out)
}

impl Store {
    /// The database's identity (migration 0060).
    pub async fn database_identity(&self) -> Result<String> {
        let row = sqlx::query("SELECT identity FROM instance WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        get_str(&row, "identity")
    }

    /// Content rows reduced to what matching needs (startup load), ascending
    /// id, paged.
    pub async fn content_flags_page(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<ContentFlagsRow>> {
        let rows = sqlx::query(
            "SELECT id, bank_id, enabled, quarantined FROM bank_content \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ContentFlagsRow {
                    id: get_i64(r, "id")?,
                    bank_id: get_i64(r, "bank_id")?,
                    enabled: get_i64(r, "enabled")? != 0,
                    quarantined: get_i64(r, "quarantined")? != 0,
                })
            })
            .collect()
    }

    /// Value and item labels of these signals (missing ids: deleted).
    pub async fn hit_details(&self, signal_ids: &[i64]) -> Result<Vec<HitDetail>> {
        let mut out = Vec::with_capacity(signal_ids.len());
        for chunk in signal_ids.chunks(IN_CHUNK) {
            let set = ValueSet::new(self.backend, "s.id", 1, chunk.len());
            let sql = numbered(
                self.backend,
                &format!(
                    "SELECT s.id, s.content_id, s.value, c.labels FROM signals s \
                     JOIN bank_content c ON c.id = s.content_id{} WHERE {}",
                    set.select_from(),
                    set.cond
                ),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(hit_detail(&r)?);
            }
        }
        Ok(out)
    }

    /// Labels (JSON) of these content items (missing ids: deleted).
    pub async fn content_labels(&self, content_ids: &[i64]) -> Result<HashMap<i64, String>> {
        let mut out = HashMap::with_capacity(content_ids.len());
        for chunk in content_ids.chunks(IN_CHUNK) {
            let set = ValueSet::new(self.backend, "id", 1, chunk.len());
            let sql = numbered(
                self.backend,
                &format!(
                    "SELECT id, labels FROM bank_content{} WHERE {}",
                    set.select_from(),
                    set.cond
                ),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(get_i64(&r, "id")?, get_str(&r, "labels")?);
            }
        }
        Ok(out)
    }

    /// The first change after `cursor`: (id, when it was made, Unix ms).
    pub async fn first_change_after(&self, cursor: i64) -> Result<Option<(i64, i64)>> {
        let row = sqlx::query("SELECT id, at FROM changes WHERE id > $1 ORDER BY id LIMIT 1")
            .bind(cursor)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((get_i64(&r, "id")?, get_i64(&r, "at")?)))
            .transpose()
    }

    /// Sums of the named counters over buckets starting at or after `since`.
    pub async fn counter_sums(&self, names: &[String], since: i64) -> Result<HashMap<String, i64>> {
        sums_in(&self.pool, self.backend, names, since).await
    }

    /// Add to counters in one transaction.
    pub async fn add_counters(&self, adds: &[CounterAdd]) -> Result<()> {
        if adds.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        tx.add_counters(adds).await?;
        tx.commit().await
    }

    /// Delete every bucket of the named counters (all writers).
    pub async fn delete_counters(&self, names: &[String]) -> Result<()> {
        let mut tx = self.write().await?;
        tx.delete_counters(names).await?;
        tx.commit().await
    }

    /// Delete counter rows that expired before `now`; returns how many.
    pub async fn sweep_counters(&self, now: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM shared_counters WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}

impl WriteTx {
    /// Add to counters (inside this transaction): one multi-row upsert per
    /// [`COUNTER_CHUNK`] rows. Adds to the same row are summed first (one
    /// statement may not update a row twice), and rows go in key order, so
    /// concurrent writers lock shared rows in one order.
    pub async fn add_counters(&mut self, adds: &[CounterAdd]) -> Result<()> {
        let mut merged: BTreeMap<(&str, i64, &str), (i64, i64)> = BTreeMap::new();
        for a in adds {
            let e = merged
                .entry((a.name.as_str(), a.bucket, a.replica.as_str()))
                .or_insert((0, a.expires_at));
            e.0 += a.delta;
            e.1 = e.1.max(a.expires_at);
        }
        let rows: Vec<_> = merged.into_iter().collect();
        for chunk in rows.chunks(COUNTER_CHUNK) {
            let sql = upsert_counters_sql(self.backend, chunk.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for ((name, bucket, replica), (delta, expires_at)) in chunk {
                q = q
                    .bind(*name)
                    .bind(*bucket)
                    .bind(*replica)
                    .bind(*delta)
                    .bind(*expires_at);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// [`Store::counter_sums`] inside this transaction (sees its own adds).
    pub async fn counter_sums(
        &mut self,
        names: &[String],
        since: i64,
    ) -> Result<HashMap<String, i64>> {
        sums_in(&mut *self.tx, self.backend, names, since).await
    }

    /// The buckets of one counter starting at or after `since`, oldest
    /// first: (bucket start, count summed over writers).
    pub async fn counter_buckets(&mut self, name: &str, since: i64) -> Result<Vec<(i64, i64)>> {
        let rows = sqlx::query(
            "SELECT bucket, CAST(SUM(count) AS BIGINT) AS total FROM shared_counters \
             WHERE name = $1 AND bucket >= $2 GROUP BY bucket ORDER BY bucket",
        )
        .bind(name)
        .bind(since)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| Ok((get_i64(r, "bucket")?, get_i64(r, "total")?)))
            .collect()
    }

    /// Delete every bucket of the named counters (all writers).
    pub async fn delete_counters(&mut self, names: &[String]) -> Result<()> {
        for chunk in names.chunks(IN_CHUNK) {
            let set = ValueSet::new(self.backend, "name", 1, chunk.len());
            let sql = numbered(
                self.backend,
                &format!(
                    "DELETE FROM shared_counters{} WHERE {}",
                    set.delete_using(),
                    set.cond
                ),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for n in chunk {
                q = q.bind(n.as_str());
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Quarantine a content item unless it already is, as one conditional
    /// update (so of several processes deciding at once, one wins). Returns
    /// whether this call quarantined it.
    pub async fn quarantine_content_once(
        &mut self,
        id: i64,
        reason: &str,
        at: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE bank_content SET quarantined = 1, quarantine_reason = $2, \
             quarantined_at = $3, updated_at = $3 WHERE id = $1 AND quarantined = 0",
        )
        .bind(id)
        .bind(reason)
        .bind(at)
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_version_is_the_last_migration() {
        assert!(schema_version() >= 60);
    }

    #[test]
    fn placeholders_are_numbered_from_the_start() {
        let set = ValueSet::new(Backend::Postgres, "name", 2, 3);
        assert_eq!(set.select_from(), ", (VALUES ($2),($3),($4)) AS wanted(k)");
        assert_eq!(set.cond, "name = wanted.k");
        let set = ValueSet::new(Backend::Sqlite, "name", 2, 3);
        assert_eq!(
            (set.select_from().as_str(), set.cond.as_str()),
            ("", "name IN (?, ?, ?)")
        );
    }
}
