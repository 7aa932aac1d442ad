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

use crate::{
    get_i64, Backend, ContentRow, MatchRow, NewAudit, NewMatch, NewSubmission, Result, SignalRow,
    Store, StoreError, WriteTx,
};

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

/// A table whose ids a writer may reserve ([`WriteTx::reserve_ids`]): a
/// closed set, so no table name ever comes from input.
#[derive(Clone, Copy, Debug)]
pub(crate) enum IdTable {
    Content,
    Signals,
    Submissions,
    Matches,
}

impl IdTable {
    fn name(self) -> &'static str {
        match self {
            IdTable::Content => "bank_content",
            IdTable::Signals => "signals",
            IdTable::Submissions => "submissions",
            IdTable::Matches => "matches",
        }
    }
}

/// A table a job fills and reads back by key in the same run
/// ([`WriteTx::refresh_statistics_when_doubled`]): a closed set, so no table
/// name ever comes from input.
#[derive(Clone, Copy, Debug)]
pub(crate) enum GrowingTable {
    ExchangeRecords,
    FeedEntries,
    Signals,
}

impl GrowingTable {
    fn name(self) -> &'static str {
        match self {
            GrowingTable::ExchangeRecords => "exchange_records",
            GrowingTable::FeedEntries => "feed_entries",
            GrowingTable::Signals => "signals",
        }
    }
}

/// Below this many pages (8 KiB each) a table's plan does not matter.
const GROWING_TABLE_MIN_PAGES: i64 = 64;

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
        self.reserve_ids(IdTable::Content, n).await
    }

    /// Reserve `n` new ids of `table`, ascending, for rows the caller
    /// inserts with explicit ids (see the module notes).
    pub(crate) async fn reserve_ids(&mut self, table: IdTable, n: usize) -> Result<Vec<i64>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let count = i64::try_from(n).map_err(|_| StoreError::Corrupt("batch too large".into()))?;
        let table = table.name();
        match self.backend {
            Backend::Sqlite => {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence \
                     WHERE name = '{table}'), 0), \
                     COALESCE((SELECT MAX(id) FROM {table}), 0)) AS m"
                )))
                .fetch_one(&mut *self.tx)
                .await?;
                let base = get_i64(&row, "m")?;
                Ok((1..=count).map(|i| base + i).collect())
            }
            Backend::Postgres => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT nextval(pg_get_serial_sequence('{table}', 'id')) AS id \
                     FROM generate_series(1, $1)"
                )))
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

    /// PostgreSQL: `ANALYZE table` once the table has at least doubled in
    /// pages since its statistics were last gathered (`pg_class.relpages`,
    /// which `ANALYZE` and `VACUUM` set; a new table has 0). A job that
    /// fills a table and reads it back by key in the same run — an exchange
    /// fetch applies up to 100,000 records per transaction and looks every
    /// page's values up in the records before it; the feed builder does the
    /// same with a newly published bank's feed entries — would otherwise be
    /// planned from an empty table's statistics: the default selectivities
    /// estimate two rows for an exchange's records, and the plan hashes all
    /// of them for each list of 500 values (a 200k-record fetch spent 15.8
    /// of its 31.9 s there; autovacuum looks at a database once a minute,
    /// too late for a fetch). `ANALYZE` samples a bounded number of rows,
    /// counts this transaction's own inserts, and invalidates cached plans;
    /// doubling keeps it to O(log n) runs per fill. `SKIP_LOCKED`: the
    /// lock `ANALYZE` takes is held to the end of the transaction, so a
    /// second process fetching another exchange would otherwise wait for
    /// this whole transaction, or deadlock with it over the change
    /// sequence's advisory lock; it skips instead (its next page tries
    /// again, and the table is being analysed anyway). SQLite: nothing to
    /// do.
    pub(crate) async fn refresh_statistics_when_doubled(
        &mut self,
        table: GrowingTable,
    ) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let name = table.name();
        let row = sqlx::query(
            "SELECT CAST(relpages AS BIGINT) AS analyzed, \
             pg_relation_size(oid) / current_setting('block_size')::bigint AS now \
             FROM pg_class WHERE oid = CAST($1 AS regclass)",
        )
        .bind(name)
        .fetch_one(&mut *self.tx)
        .await?;
        let (analyzed, now) = (get_i64(&row, "analyzed")?, get_i64(&row, "now")?);
        if now > 2 * analyzed.max(GROWING_TABLE_MIN_PAGES) {
            sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE (SKIP_LOCKED) {name}")))
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
        self.insert_item_rows(bank_id, &rows, None).await?;
        Ok(ids)
    }
}

/// Values per statement of [`WriteTx::bank_signals_held`].
const HELD_IN_LIST: usize = 500;

impl WriteTx {
    /// Which of `signals` (`(signal_type, value)` pairs, normalised) bank
    /// `bank_id` already holds, in any item, enabled or not: what makes a
    /// re-run import skip them. One statement per signal type and
    /// [`HELD_IN_LIST`] values, through the value index: on SQLite the
    /// index holds the value's first 16 characters, so the prefixes are
    /// looked up and the whole value compared here; PostgreSQL's hash index
    /// on the value answers the whole value. Run inside the import's
    /// transaction, it also sees the batches this import committed before.
    ///
    /// It first takes the bank's add lock ([`WriteTx::lock_bank_adds`]), so
    /// what it answers stays true until this transaction ends: two writers
    /// adding the same signals to one bank at once cannot both see them
    /// missing.
    pub async fn bank_signals_held(
        &mut self,
        bank_id: i64,
        signals: &[(&str, &str)],
    ) -> Result<std::collections::HashSet<(String, String)>> {
        Ok(self
            .bank_signal_holders(bank_id, signals)
            .await?
            .into_keys()
            .collect())
    }

    /// As [`WriteTx::bank_signals_held`], with the lowest id of an item
    /// of the bank holding each signal held.
    pub async fn bank_signal_holders(
        &mut self,
        bank_id: i64,
        signals: &[(&str, &str)],
    ) -> Result<std::collections::HashMap<(String, String), i64>> {
        self.lock_bank_adds(bank_id).await?;
        let mut by_type: std::collections::BTreeMap<&str, Vec<&str>> =
            std::collections::BTreeMap::new();
        for &(t, v) in signals {
            by_type.entry(t).or_default().push(v);
        }
        // An import fills `signals` and reads it back batch after batch:
        // planned from an empty table's statistics, each read would scan
        // the whole table (a 1M-row import on PostgreSQL: 106 s, not 42).
        self.refresh_statistics_when_doubled(GrowingTable::Signals)
            .await?;
        let mut held: std::collections::HashMap<(String, String), i64> =
            std::collections::HashMap::new();
        for (signal_type, values) in by_type {
            let wanted: std::collections::HashSet<&str> = values.iter().copied().collect();
            for chunk in values.chunks(HELD_IN_LIST) {
                let (column, prefixes) = match self.backend {
                    Backend::Sqlite => ("substr(value, 1, 16)", true),
                    Backend::Postgres => ("value", false),
                };
                let set = ValueSet::new(self.backend, column, 3, chunk.len());
                let sql = numbered(
                    self.backend,
                    &format!(
                        "SELECT value, content_id FROM signals{} \
                         WHERE bank_id = ? AND signal_type = ? AND {}",
                        set.select_from(),
                        set.cond
                    ),
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(bank_id)
                    .bind(signal_type);
                for v in chunk {
                    q = q.bind(if prefixes { prefix16(v) } else { v });
                }
                for row in q.fetch_all(&mut *self.tx).await? {
                    let value = crate::get_str(&row, "value")?;
                    if wanted.contains(value.as_str()) {
                        let id = get_i64(&row, "content_id")?;
                        held.entry((signal_type.to_string(), value))
                            .and_modify(|h| *h = (*h).min(id))
                            .or_insert(id);
                    }
                }
            }
        }
        Ok(held)
    }
}

impl WriteTx {
    /// Hold bank `bank_id`'s add lock until this transaction ends: every
    /// writer that checks what a bank holds before adding to it
    /// ([`WriteTx::bank_signals_held`]: bank imports, single adds) takes
    /// it first, so such writers of one bank run one after the other and
    /// each sees what the one before committed. On PostgreSQL a
    /// transaction-scoped advisory lock keyed by the `banks` table (so by
    /// schema) and the bank id, in the two-key space apart from the change
    /// sequence's lock; taken before the change sequence's lock by every
    /// writer that takes both, so the two never deadlock. SQLite's write
    /// transactions are serialised already (`BEGIN IMMEDIATE` behind one
    /// in-process lock): nothing to do.
    pub async fn lock_bank_adds(&mut self, bank_id: i64) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query(
                "SELECT pg_advisory_xact_lock('banks'::regclass::oid::int4, \
                 ($1 % 2147483647)::int4)",
            )
            .bind(bank_id)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }
}

/// The first 16 characters of `v` (SQLite's `substr(v, 1, 16)` of text).
fn prefix16(v: &str) -> &str {
    match v.char_indices().nth(16) {
        Some((at, _)) => v.get(..at).unwrap_or(v),
        None => v,
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
    /// batches). `signal_ids` (reserved, one per signal in item order) gives
    /// the signals explicit ids; `None` lets the database number them.
    /// Returns the creation time written.
    pub(crate) async fn insert_item_rows(
        &mut self,
        bank_id: i64,
        rows: &[ItemRow<'_>],
        signal_ids: Option<&[i64]>,
    ) -> Result<i64> {
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
        if let Some(ids) = signal_ids {
            if ids.len() != signals.len() {
                return Err(StoreError::Corrupt(format!(
                    "{} signal ids reserved for {} signals",
                    ids.len(),
                    signals.len()
                )));
            }
        }
        let (columns, tuple) = match signal_ids {
            Some(_) => (
                "INSERT INTO signals (id, content_id, bank_id, signal_type, value, created_at) \
                 VALUES ",
                "(?, ?, ?, ?, ?, ?)",
            ),
            None => (
                "INSERT INTO signals (content_id, bank_id, signal_type, value, created_at) VALUES ",
                "(?, ?, ?, ?, ?)",
            ),
        };
        for (k, chunk) in signals.chunks(BULK_ROWS_PER_STATEMENT).enumerate() {
            let sql = values_sql(self.backend, columns, tuple, chunk.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (j, (content_id, t, v)) in chunk.iter().enumerate() {
                if let Some(ids) = signal_ids {
                    // In range: the lengths were checked above.
                    q = q.bind(ids.get(k * BULK_ROWS_PER_STATEMENT + j).copied());
                }
                q = q
                    .bind(*content_id)
                    .bind(bank_id)
                    .bind(*t)
                    .bind(*v)
                    .bind(now);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(now)
    }
}

/// "`column` (a `signals.value`) equals parameter `$param`", written so the
/// backend's value index answers it. SQLite indexes the value's first 16
/// characters (migration 0062): the prefix is compared for the index, the
/// whole value for the answer, and the `+` keeps SQLite from rewriting the
/// prefix into a constant, which hides the index (SQLite 3.40 does; the
/// bundled 3.5x does not, and the store test checks the plan). PostgreSQL's hash
/// index on the value answers `column = $param` itself.
pub fn signal_value_eq(backend: Backend, column: &str, param: usize) -> String {
    match backend {
        Backend::Sqlite => {
            format!("substr({column}, 1, 16) = substr(${param}, 1, 16) AND +{column} = ${param}")
        }
        Backend::Postgres => format!("{column} = ${param}"),
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

/// How many rows each multi-row statement of `len` rows takes, as index
/// ranges: full statements of `max` rows, then the rest as descending powers
/// of two. A multi-row statement is compiled once per shape and kept in the
/// connection's statement cache; cutting an odd tail (every batch has one)
/// into a handful of repeating shapes costs a few more round trips instead
/// of compiling a new statement of hundreds of rows for every batch.
pub(crate) fn statement_sizes(
    len: usize,
    max: usize,
) -> impl Iterator<Item = std::ops::Range<usize>> {
    let max = max.max(1);
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let left = len - at;
        if left == 0 {
            return None;
        }
        let n = if left >= max {
            max
        } else {
            1usize << (usize::BITS - 1 - left.leading_zeros())
        };
        at += n;
        Some(at - n..at)
    })
}

/// `prefix` followed by `rows` copies of `tuple` (with `?` parameters),
/// comma-separated, [`numbered`] for the backend.
pub(crate) fn values_sql(backend: Backend, prefix: &str, tuple: &str, rows: usize) -> String {
    numbered(backend, &values_list(prefix, tuple, rows))
}

/// [`values_sql`] before [`numbered`]: for a statement that goes on after
/// its `VALUES` list (`ON CONFLICT … ?`) and is numbered whole.
pub(crate) fn values_list(prefix: &str, tuple: &str, rows: usize) -> String {
    let mut sql = String::with_capacity(prefix.len() + rows * (tuple.len() + 1));
    sql.push_str(prefix);
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(tuple);
    }
    sql
}

/// How a statement keeps the rows whose `column` is one of `n` values,
/// bound after the statement's other parameters (the one way the store
/// writes a bound list; lists of ids the database just gave are written
/// inline instead). SQLite takes `column IN (?, …)`, which it probes
/// through the index. PostgreSQL joins a `VALUES` list whose parameters are
/// numbered from `first_param`, so that the statement's own `?` (numbered
/// by [`numbered`] in order of appearance) keep `$1…`: a cached *generic*
/// plan of `column IN ($3, …)` compares every row with every parameter, and
/// one made while the table was nearly empty (a fetch or a publish fills it
/// in its first transactions, before any ANALYZE) stays a sequential scan —
/// a 1M-record exchange fetch took 572 s instead of 163 s
/// (docs/BENCHMARKS.md, "Signal exchange").
pub(crate) struct ValueSet {
    /// PostgreSQL: `(VALUES ($k), …) AS wanted(k)`.
    relation: Option<String>,
    /// The condition for the `WHERE` clause.
    pub(crate) cond: String,
}

impl ValueSet {
    pub(crate) fn new(backend: Backend, column: &str, first_param: usize, n: usize) -> Self {
        match backend {
            Backend::Sqlite => ValueSet {
                relation: None,
                cond: format!("{column} IN ({})", question_marks(n)),
            },
            Backend::Postgres => {
                let mut rel = String::with_capacity(n * 8 + 32);
                rel.push_str("(VALUES ");
                for i in 0..n {
                    if i > 0 {
                        rel.push(',');
                    }
                    rel.push_str(&format!("(${})", first_param + i));
                }
                rel.push_str(") AS wanted(k)");
                ValueSet {
                    relation: Some(rel),
                    cond: format!("{column} = wanted.k"),
                }
            }
        }
    }

    /// What follows the tables (and joins) of a `SELECT`'s `FROM`.
    pub(crate) fn select_from(&self) -> String {
        self.relation
            .as_ref()
            .map_or_else(String::new, |r| format!(", {r}"))
    }

    /// What follows an `UPDATE`'s `SET` list, or a `DELETE`'s table
    /// (`USING`), before `WHERE`.
    fn extra(&self, keyword: &str) -> String {
        self.relation
            .as_ref()
            .map_or_else(String::new, |r| format!(" {keyword} {r}"))
    }

    /// [`ValueSet::extra`] for an `UPDATE … SET …`.
    pub(crate) fn update_from(&self) -> String {
        self.extra("FROM")
    }

    /// [`ValueSet::extra`] for a `DELETE FROM table`.
    pub(crate) fn delete_using(&self) -> String {
        self.extra("USING")
    }
}

/// `?, ?, …` (`n` of them), for an `IN (…)` list.
fn question_marks(n: usize) -> String {
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

/// Lookup records written many lookups at a time (the engine's group-commit
/// writer): ids are reserved first, so each statement covers the whole
/// group and the caller builds its audit entries and events from the ids
/// before anything is sent. A group of N matched lookups costs a handful of
/// statements instead of four round trips per lookup.
impl WriteTx {
    /// Reserve ids for `submissions` new submissions and `matches` new
    /// matches, each ascending.
    pub async fn reserve_lookup_ids(
        &mut self,
        submissions: usize,
        matches: usize,
    ) -> Result<(Vec<i64>, Vec<i64>)> {
        let s = self.reserve_ids(IdTable::Submissions, submissions).await?;
        let m = self.reserve_ids(IdTable::Matches, matches).await?;
        Ok((s, m))
    }

    /// Insert submissions with the ids [`WriteTx::reserve_lookup_ids`] gave.
    pub async fn insert_submissions_with_ids(
        &mut self,
        rows: &[(i64, NewSubmission<'_>)],
    ) -> Result<()> {
        let now = crate::now_ms();
        for chunk in rows.chunks(BULK_ROWS_PER_STATEMENT) {
            let sql = values_sql(
                self.backend,
                "INSERT INTO submissions (id, actor, content_ref, url, uploader_id, signals, \
                 match_count, created_at) VALUES ",
                "(?, ?, ?, ?, ?, ?, ?, ?)",
                chunk.len(),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, s) in chunk {
                q = q
                    .bind(*id)
                    .bind(s.actor)
                    .bind(s.content_ref)
                    .bind(s.url)
                    .bind(s.uploader_id)
                    .bind(s.signals_json)
                    .bind(s.match_count)
                    .bind(now);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Insert matches with reserved ids; returns the rows as stored (status
    /// `pending`, created and updated now), in input order.
    pub async fn insert_matches_with_ids(
        &mut self,
        rows: &[(i64, NewMatch<'_>)],
    ) -> Result<Vec<MatchRow>> {
        let now = crate::now_ms();
        for chunk in rows.chunks(BULK_ROWS_PER_STATEMENT) {
            // Similarities are bound as text and cast in SQL: see `resolve_url`
            // on sqlx's NULL f64.
            let sql = values_sql(
                self.backend,
                "INSERT INTO matches (id, submission_id, bank_id, content_id, signal_id, \
                 signal_type, matched_value, query_value, distance, similarity, \
                 compared_similarity, status, created_at, updated_at, channel, channel_detail) \
                 VALUES ",
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS DOUBLE PRECISION), \
                 CAST(? AS DOUBLE PRECISION), 'pending', ?, ?, ?, ?)",
                chunk.len(),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, m) in chunk {
                q = q
                    .bind(*id)
                    .bind(m.submission_id)
                    .bind(m.bank_id)
                    .bind(m.content_id)
                    .bind(m.signal_id)
                    .bind(m.signal_type)
                    .bind(m.matched_value)
                    .bind(m.query_value)
                    .bind(m.distance)
                    .bind(m.similarity.map(|s| s.to_string()))
                    .bind(m.compared_similarity.map(|s| s.to_string()))
                    .bind(now)
                    .bind(now)
                    .bind(m.channel)
                    .bind(m.channel_detail);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(rows
            .iter()
            .map(|(id, m)| MatchRow {
                id: *id,
                submission_id: m.submission_id,
                bank_id: m.bank_id,
                content_id: m.content_id,
                signal_id: m.signal_id,
                signal_type: m.signal_type.to_string(),
                matched_value: m.matched_value.to_string(),
                query_value: m.query_value.to_string(),
                distance: m.distance,
                similarity: m.similarity,
                compared_similarity: m.compared_similarity,
                status: "pending".to_string(),
                created_at: now,
                updated_at: now,
                channel: m.channel.to_string(),
                channel_detail: m.channel_detail.map(str::to_string),
            })
            .collect())
    }

    /// Append audit entries, in order.
    pub async fn audit_many(&mut self, entries: &[NewAudit<'_>]) -> Result<()> {
        let now = crate::now_ms();
        for chunk in entries.chunks(BULK_ROWS_PER_STATEMENT) {
            let sql = values_sql(
                self.backend,
                "INSERT INTO audit_log (actor, action, target, before_json, after_json, at) VALUES ",
                "(?, ?, ?, ?, ?, ?)",
                chunk.len(),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in chunk {
                q = q
                    .bind(e.actor)
                    .bind(e.action)
                    .bind(e.target)
                    .bind(e.before.as_deref())
                    .bind(e.after.as_deref());
                q = q.bind(now);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Queue outbox events of one kind, deliverable from `next_attempt_at`.
    pub async fn enqueue_many(
        &mut self,
        event: &str,
        payloads: &[String],
        next_attempt_at: i64,
    ) -> Result<()> {
        let now = crate::now_ms();
        for chunk in payloads.chunks(BULK_ROWS_PER_STATEMENT) {
            let sql = values_sql(
                self.backend,
                "INSERT INTO outbox (event, payload, attempts, next_attempt_at, created_at) VALUES ",
                "(?, ?, 0, ?, ?)",
                chunk.len(),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for payload in chunk {
                q = q
                    .bind(event)
                    .bind(payload.as_str())
                    .bind(next_attempt_at)
                    .bind(now);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod statement_size_tests {
    use super::statement_sizes;

    #[test]
    fn full_statements_then_powers_of_two() {
        let sizes = |len, max| {
            statement_sizes(len, max)
                .map(|r| r.len())
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(0, 400), Vec::<usize>::new());
        assert_eq!(sizes(1, 400), vec![1]);
        assert_eq!(sizes(400, 400), vec![400]);
        assert_eq!(sizes(1067, 400), vec![400, 400, 256, 8, 2, 1]);
        assert_eq!(sizes(399, 400), vec![256, 128, 8, 4, 2, 1]);
        // The ranges cover 0..len in order, without gaps.
        for len in 0..1500 {
            let mut at = 0;
            for r in statement_sizes(len, 400) {
                assert_eq!(r.start, at);
                assert!(!r.is_empty() && r.len() <= 400);
                at = r.end;
            }
            assert_eq!(at, len);
        }
    }
}
