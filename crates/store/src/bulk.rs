//! Bulk writes and range reads: importing hash lists (millions of rows) and
//! the reads that let every process pick such an import up incrementally.
//!
//! Key design decisions:
//!
//! * **Multi-row statements, of moderate size.** A bulk insert writes up to
//!   [`BULK_ROWS_PER_STATEMENT`] rows per `INSERT … VALUES (…), (…), …`
//!   with its parameters bound per row. Per-row round trips through sqlx
//!   cost more than the database work itself at this scale.
//! * **Anonymous `?` parameters on SQLite.** sqlx looks every parameter's
//!   name up (`sqlite3_bind_parameter_name`), which SQLite answers with a
//!   linear scan of the statement's named parameters: with `$N` names,
//!   binding is quadratic in the parameter count (10,000 rows, 30,000
//!   parameters, per statement made a 1M-row import take 446 s of CPU; at
//!   100 rows of 13 parameters it was still 36 % of an exchange apply).
//!   Bare `?` parameters are not named, so the lookup returns at once.
//!   Statements are written with `?` and [`numbered`] turns them into
//!   `$1, $2, …` for PostgreSQL; parameters are bound in order of
//!   appearance, never shared between rows.
//! * **Content ids are reserved, not read back.** The order of rows from a
//!   multi-row `INSERT … RETURNING` is not guaranteed by either database,
//!   and the signals of an item must reference *its* content id. So the ids
//!   are reserved first and inserted explicitly: on SQLite under the
//!   transaction's `BEGIN IMMEDIATE` write lock (the next ids after both
//!   `sqlite_sequence` and `MAX(id)`; an explicit id advances
//!   `sqlite_sequence` itself), on PostgreSQL with `nextval` on the
//!   column's sequence (never reused, safe with concurrent writers).
//! * **Range reads.** An import records one change per batch covering a
//!   content id range ([`CONTENT_RANGE_ENTITY`]); tailers read the range
//!   back in pages with [`Store::content_range_page`] and
//!   [`Store::signals_of_content_range`]. Re-reading a range is
//!   idempotent: rows created by other writers inside it are simply
//!   re-applied, deleted rows are simply absent.

use crate::{get_i64, Backend, ContentRow, Result, SignalRow, Store, StoreError, WriteTx};

/// Rows per multi-row `INSERT` (up to six parameters each).
pub const BULK_ROWS_PER_STATEMENT: usize = 256;

/// Change-sequence entity of a bulk import batch: `entity_id` is the first
/// content id of the batch and `op` is `upsert:<last content id>`.
pub const CONTENT_RANGE_ENTITY: &str = "content_range";

/// The `op` of a [`CONTENT_RANGE_ENTITY`] change covering up to `last`.
pub fn content_range_op(last: i64) -> String {
    format!("upsert:{last}")
}

/// The last content id of a [`CONTENT_RANGE_ENTITY`] change's `op`.
pub fn parse_content_range_op(op: &str) -> Option<i64> {
    op.strip_prefix("upsert:")?.parse().ok()
}

/// One content item of a bulk insert.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BulkContent {
    /// Labels as a JSON array (the engine owns the shape).
    pub labels_json: String,
    pub note: String,
    /// `(signal_type, value)` pairs, already normalised by the caller.
    pub signals: Vec<(String, String)>,
}

impl WriteTx {
    /// Reserve `n` new content ids, ascending (the caller inserts them
    /// explicitly, e.g. [`WriteTx::insert_content_with_ids`]).
    pub async fn reserve_content_ids(&mut self, n: usize) -> Result<Vec<i64>> {
        let count = i64::try_from(n).map_err(|_| StoreError::Corrupt("batch too large".into()))?;
        match self.backend {
            Backend::Sqlite => {
                let row = sqlx::query(
                    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence \
                     WHERE name = 'bank_content'), 0), \
                     COALESCE((SELECT MAX(id) FROM bank_content), 0)) AS m",
                )
                .fetch_one(&mut *self.tx)
                .await?;
                let base = get_i64(&row, "m")?;
                Ok((1..=count).map(|i| base + i).collect())
            }
            Backend::Postgres => {
                let rows = sqlx::query(
                    "SELECT nextval(pg_get_serial_sequence('bank_content', 'id')) AS id \
                     FROM generate_series(1, $1)",
                )
                .bind(count)
                .fetch_all(&mut *self.tx)
                .await?;
                let mut ids = rows
                    .iter()
                    .map(|r| get_i64(r, "id"))
                    .collect::<Result<Vec<_>>>()?;
                ids.sort_unstable();
                Ok(ids)
            }
        }
    }

    /// Give this transaction's connection a page cache for bulk writes
    /// (SQLite; nothing on PostgreSQL). Indexes keyed by hash values receive
    /// random keys; with SQLite's default 2 MiB page cache every insert
    /// re-reads its leaf page, and dirty pages spill to the journal mid
    /// transaction. The setting stays with the pooled connection; memory is
    /// only used as pages are read.
    pub async fn use_bulk_cache(&mut self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA cache_size = -262144")
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Insert many content items with their signals into one bank. Returns
    /// the new content ids in input order. Records no change or audit
    /// entry: the caller does that once per batch.
    pub async fn insert_content_bulk(
        &mut self,
        bank_id: i64,
        items: &[BulkContent],
    ) -> Result<Vec<i64>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.use_bulk_cache().await?;
        let ids = self.reserve_content_ids(items.len()).await?;
        let rows: Vec<ItemRow<'_>> = ids
            .iter()
            .zip(items)
            .map(|(&id, item)| ItemRow {
                id,
                enabled: true,
                labels_json: &item.labels_json,
                note: &item.note,
                signals: &item.signals,
            })
            .collect();
        self.insert_item_rows(bank_id, &rows).await?;
        Ok(ids)
    }
}

/// One content item of a multi-row insert, its id already reserved.
pub(crate) struct ItemRow<'a> {
    pub id: i64,
    pub enabled: bool,
    pub labels_json: &'a str,
    pub note: &'a str,
    /// `(signal_type, value)` pairs, already normalised by the caller.
    pub signals: &'a [(String, String)],
}

impl WriteTx {
    /// Insert content rows with reserved ids and their signals into one bank
    /// in multi-row statements (the one writer of bulk imports and exchange
    /// batches).
    pub(crate) async fn insert_item_rows(
        &mut self,
        bank_id: i64,
        rows: &[ItemRow<'_>],
    ) -> Result<()> {
        let now = crate::now_ms();
        for chunk in rows.chunks(BULK_ROWS_PER_STATEMENT) {
            let sql = values_sql(
                self.backend,
                "INSERT INTO bank_content (id, bank_id, enabled, labels, note, quarantined, \
                 created_at, updated_at) VALUES ",
                "(?, ?, ?, ?, ?, 0, ?, ?)",
                chunk.len(),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                q = q
                    .bind(row.id)
                    .bind(bank_id)
                    .bind(i64::from(row.enabled))
                    .bind(row.labels_json)
                    .bind(row.note)
                    .bind(now)
                    .bind(now);
            }
            q.execute(&mut *self.tx).await?;
        }
        let signals: Vec<(i64, &str, &str)> = rows
            .iter()
            .flat_map(|row| {
                row.signals
                    .iter()
                    .map(move |(t, v)| (row.id, t.as_str(), v.as_str()))
            })
            .collect();
        for chunk in signals.chunks(BULK_ROWS_PER_STATEMENT) {
            let sql = values_sql(
                self.backend,
                "INSERT INTO signals (content_id, bank_id, signal_type, value, created_at) VALUES ",
                "(?, ?, ?, ?, ?)",
                chunk.len(),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (content_id, t, v) in chunk {
                q = q
                    .bind(*content_id)
                    .bind(bank_id)
                    .bind(*t)
                    .bind(*v)
                    .bind(now);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }
}

/// `sql` with its `?` parameters as the backend wants them: left anonymous
/// on SQLite, `$1, $2, …` in order of appearance on PostgreSQL. `sql` holds
/// no other `?` (none in literals).
pub(crate) fn numbered(backend: Backend, sql: &str) -> String {
    match backend {
        Backend::Sqlite => sql.to_string(),
        Backend::Postgres => {
            let mut out = String::with_capacity(sql.len() + sql.len() / 2);
            let mut n = 0usize;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(c);
                }
            }
            out
        }
    }
}

/// `prefix` followed by `rows` copies of `tuple` (with `?` parameters),
/// comma-separated, [`numbered`] for the backend.
pub(crate) fn values_sql(backend: Backend, prefix: &str, tuple: &str, rows: usize) -> String {
    let mut sql = String::with_capacity(prefix.len() + rows * (tuple.len() + 1));
    sql.push_str(prefix);
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(tuple);
    }
    numbered(backend, &sql)
}

/// `?, ?, …` (`n` of them), for an `IN (…)` list.
pub(crate) fn question_marks(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s
}

impl Store {
    /// Content rows with `first <= id <= last` and `id > after`, ascending, paged.
    pub async fn content_range_page(
        &self,
        first: i64,
        last: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ContentRow>> {
        let rows = sqlx::query(
            "SELECT id, bank_id, enabled, labels, note, quarantined, quarantine_reason, \
             quarantined_at, created_at, updated_at FROM bank_content \
             WHERE id >= $1 AND id <= $2 AND id > $3 ORDER BY id LIMIT $4",
        )
        .bind(first)
        .bind(last)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ContentRow::from_row).collect()
    }

    /// Signals of every content item with `first <= content_id <= last`,
    /// ordered by content id, then id.
    pub async fn signals_of_content_range(&self, first: i64, last: i64) -> Result<Vec<SignalRow>> {
        let rows = sqlx::query(
            // Every column: `SignalRow` reads columns added by later
            // migrations when present.
            "SELECT * FROM signals WHERE content_id >= $1 AND content_id <= $2 \
             ORDER BY content_id, id",
        )
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SignalRow::from_row).collect()
    }
}
