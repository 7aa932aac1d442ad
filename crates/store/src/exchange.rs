//! Signal exchange persistence (migration 0020): exchanges, their upstream
//! records, and per-API credentials.
//!
//! * An **exchange** row holds a name, an adapter kind (`api`), typed JSON
//!   `config` and `policy` (the engine and the exchange crate own their
//!   shapes), AEAD-encrypted `credentials` (never plaintext here), the bank it
//!   fills, and the fetch status the worker writes in the transaction of each
//!   batch (checkpoint, generation of the current full fetch, counters).
//! * An **exchange record** is one upstream record keyed by
//!   `(exchange_id, signal_type, value)`: upstream id and times, labels and
//!   opinions (`meta`, typed JSON), the tombstone flag, whether it backs a
//!   bank item (`applied`, `content_id`), local overrides (`local_state`) and
//!   the generation it was last seen in (mark-and-sweep).
//!
//! Writes are batched like `bulk.rs`: multi-row statements of bounded size
//! (SQLite resolves `$N` names with a linear scan, so statements stay under
//! about a thousand parameters).

use sqlx::any::AnyRow;

use crate::bulk::{numbered, values_sql, GrowingTable, IdTable, ItemRow, ValueSet};
use crate::rows::{get_bool, get_opt_i64, get_opt_str, get_str};
use crate::rows::{ContentRow, SignalRow};
use crate::{get_i64, now_ms, Result, Store, StoreError, WriteTx};

/// Rows per multi-row statement for record writes (13 parameters each).
const RECORD_ROWS_PER_STATEMENT: usize = 250;
/// Values per `IN (…)` list.
const IN_LIST: usize = 500;

/// An exchange as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ExchangeRow {
    pub id: i64,
    pub name: String,
    pub api: String,
    pub config: String,
    pub policy: String,
    /// AEAD ciphertext, or `None` (the API's shared credentials, or none).
    pub credentials: Option<String>,
    pub write_back: bool,
    pub enabled: bool,
    /// false = dry run: records are fetched, the bank is not touched.
    pub live: bool,
    pub poll_interval_ms: i64,
    pub bank_id: i64,
    pub checkpoint: Option<String>,
    pub generation: i64,
    pub full_fetch: bool,
    pub fetch_started_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub upstream_at: Option<i64>,
    pub fetched_total: i64,
    pub malformed_total: i64,
    pub opinions_unsent: i64,
    pub upstream_checksum: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const EXCHANGE_COLUMNS: &str = "id, name, api, config, policy, credentials, write_back, enabled, \
    live, poll_interval_ms, bank_id, checkpoint, generation, full_fetch, fetch_started_at, \
    last_success_at, last_error, last_error_at, upstream_at, fetched_total, malformed_total, \
    opinions_unsent, upstream_checksum, created_at, updated_at";

impl ExchangeRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(ExchangeRow {
            id: get_i64(r, "id")?,
            name: get_str(r, "name")?,
            api: get_str(r, "api")?,
            config: get_str(r, "config")?,
            policy: get_str(r, "policy")?,
            credentials: get_opt_str(r, "credentials")?,
            write_back: get_bool(r, "write_back")?,
            enabled: get_bool(r, "enabled")?,
            live: get_bool(r, "live")?,
            poll_interval_ms: get_i64(r, "poll_interval_ms")?,
            bank_id: get_i64(r, "bank_id")?,
            checkpoint: get_opt_str(r, "checkpoint")?,
            generation: get_i64(r, "generation")?,
            full_fetch: get_bool(r, "full_fetch")?,
            fetch_started_at: get_opt_i64(r, "fetch_started_at")?,
            last_success_at: get_opt_i64(r, "last_success_at")?,
            last_error: get_opt_str(r, "last_error")?,
            last_error_at: get_opt_i64(r, "last_error_at")?,
            upstream_at: get_opt_i64(r, "upstream_at")?,
            fetched_total: get_i64(r, "fetched_total")?,
            malformed_total: get_i64(r, "malformed_total")?,
            opinions_unsent: get_i64(r, "opinions_unsent")?,
            upstream_checksum: get_opt_str(r, "upstream_checksum")?,
            created_at: get_i64(r, "created_at")?,
            updated_at: get_i64(r, "updated_at")?,
        })
    }
}

/// Input for [`WriteTx::insert_exchange`].
#[derive(Clone, Debug)]
pub struct NewExchange<'a> {
    pub name: &'a str,
    pub api: &'a str,
    pub config: &'a str,
    pub policy: &'a str,
    pub credentials: Option<&'a str>,
    pub write_back: bool,
    pub enabled: bool,
    pub live: bool,
    pub poll_interval_ms: i64,
    pub bank_id: i64,
}

/// The settings an operator can change ([`WriteTx::update_exchange_settings`]).
#[derive(Clone, Debug)]
pub struct ExchangeSettings {
    pub config: String,
    pub policy: String,
    /// `Some(None)` clears the exchange's own credentials.
    pub credentials: Option<Option<String>>,
    pub enabled: bool,
    pub live: bool,
    pub poll_interval_ms: i64,
}

/// What one applied batch moves forward ([`WriteTx::set_exchange_progress`]).
#[derive(Clone, Debug, Default)]
pub struct ExchangeProgress {
    pub checkpoint: Option<String>,
    pub generation: i64,
    pub full_fetch: bool,
    pub upstream_at: Option<i64>,
    pub fetched: i64,
    pub malformed: i64,
}

/// One upstream record as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeRecordRow {
    pub exchange_id: i64,
    pub signal_type: String,
    pub value: String,
    pub upstream_id: String,
    /// Typed JSON (labels and opinions); the engine owns the shape.
    pub meta: String,
    pub upstream_created_at: Option<i64>,
    pub upstream_updated_at: Option<i64>,
    pub deleted: bool,
    pub applied: bool,
    pub content_id: Option<i64>,
    /// `''`, `'disabled'` or `'deleted'` (local overrides).
    pub local_state: String,
    /// This instance's own opinion sent upstream (`positive` / `negative`).
    pub my_opinion: Option<String>,
    pub seen_gen: i64,
    pub updated_at: i64,
}

const RECORD_COLUMNS: &str = "exchange_id, signal_type, value, upstream_id, meta, \
    upstream_created_at, upstream_updated_at, deleted, applied, content_id, local_state, \
    my_opinion, seen_gen, updated_at";

impl ExchangeRecordRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(ExchangeRecordRow {
            exchange_id: get_i64(r, "exchange_id")?,
            signal_type: get_str(r, "signal_type")?,
            value: get_str(r, "value")?,
            upstream_id: get_str(r, "upstream_id")?,
            meta: get_str(r, "meta")?,
            upstream_created_at: get_opt_i64(r, "upstream_created_at")?,
            upstream_updated_at: get_opt_i64(r, "upstream_updated_at")?,
            deleted: get_bool(r, "deleted")?,
            applied: get_bool(r, "applied")?,
            content_id: get_opt_i64(r, "content_id")?,
            local_state: get_str(r, "local_state")?,
            my_opinion: get_opt_str(r, "my_opinion")?,
            seen_gen: get_i64(r, "seen_gen")?,
            updated_at: get_i64(r, "updated_at")?,
        })
    }
}

/// Record counts of one exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordCounts {
    /// Every record kept (tombstones included).
    pub total: i64,
    /// Records not deleted upstream.
    pub upstream_live: i64,
    /// Records backing a bank item.
    pub applied: i64,
}

/// A record with the name and API of its exchange (provenance of a match).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenanceRow {
    pub exchange: String,
    pub api: String,
    pub record: ExchangeRecordRow,
}

/// One content item of [`WriteTx::insert_content_with_ids`].
#[derive(Clone, Debug, PartialEq)]
pub struct ContentWithId {
    pub id: i64,
    pub enabled: bool,
    pub labels_json: String,
    pub signals: Vec<(String, String)>,
}

impl Store {
    pub async fn list_exchanges(&self) -> Result<Vec<ExchangeRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EXCHANGE_COLUMNS} FROM exchanges ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ExchangeRow::from_row).collect()
    }

    pub async fn get_exchange(&self, id: i64) -> Result<Option<ExchangeRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EXCHANGE_COLUMNS} FROM exchanges WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ExchangeRow::from_row).transpose()
    }

    pub async fn get_exchange_by_name(&self, name: &str) -> Result<Option<ExchangeRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EXCHANGE_COLUMNS} FROM exchanges WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ExchangeRow::from_row).transpose()
    }

    /// Exchanges filling a bank.
    pub async fn exchanges_of_bank(&self, bank_id: i64) -> Result<Vec<ExchangeRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EXCHANGE_COLUMNS} FROM exchanges WHERE bank_id = $1 ORDER BY id"
        )))
        .bind(bank_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ExchangeRow::from_row).collect()
    }

    /// The credentials (ciphertext) shared by every exchange of `api`.
    pub async fn exchange_api_credentials(&self, api: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT credentials FROM exchange_api_credentials WHERE api = $1")
            .bind(api)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| get_str(&r, "credentials")).transpose()
    }

    /// Set (`Some`) or clear (`None`) an API's shared credentials.
    pub async fn set_exchange_api_credentials(
        &self,
        api: &str,
        ciphertext: Option<&str>,
    ) -> Result<()> {
        match ciphertext {
            Some(c) => {
                sqlx::query(
                    "INSERT INTO exchange_api_credentials (api, credentials, updated_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (api) DO UPDATE SET \
                     credentials = excluded.credentials, updated_at = excluded.updated_at",
                )
                .bind(api)
                .bind(c)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM exchange_api_credentials WHERE api = $1")
                    .bind(api)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Record counts of an exchange.
    pub async fn exchange_record_counts(&self, exchange_id: i64) -> Result<RecordCounts> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS total, CAST(COALESCE(SUM(1 - deleted), 0) AS BIGINT) AS up, \
             CAST(COALESCE(SUM(applied), 0) AS BIGINT) AS applied FROM exchange_records \
             WHERE exchange_id = $1",
        )
        .bind(exchange_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(RecordCounts {
            total: get_i64(&row, "total")?,
            upstream_live: get_i64(&row, "up")?,
            applied: get_i64(&row, "applied")?,
        })
    }

    /// Records of an exchange in key order after `after` (exclusive);
    /// `upstream_live_only` skips tombstones.
    pub async fn exchange_records_page(
        &self,
        exchange_id: i64,
        after: Option<(&str, &str)>,
        upstream_live_only: bool,
        limit: i64,
    ) -> Result<Vec<ExchangeRecordRow>> {
        let (t, v) = after.unwrap_or(("", ""));
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM exchange_records WHERE exchange_id = $1 \
             AND (signal_type > $2 OR (signal_type = $2 AND value > $3)) \
             AND ($4 = 0 OR deleted = 0) ORDER BY signal_type, value LIMIT $5"
        )))
        .bind(exchange_id)
        .bind(t)
        .bind(v)
        .bind(i64::from(upstream_live_only))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ExchangeRecordRow::from_row).collect()
    }

    /// Only the keys of an exchange's upstream-live records, in key order
    /// (checksums over millions of records read two columns, not fourteen).
    pub async fn exchange_live_keys_page(
        &self,
        exchange_id: i64,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> Result<Vec<(String, String)>> {
        let (t, v) = after.unwrap_or(("", ""));
        let rows = sqlx::query(
            "SELECT signal_type, value FROM exchange_records WHERE exchange_id = $1 \
             AND (signal_type > $2 OR (signal_type = $2 AND value > $3)) AND deleted = 0 \
             ORDER BY signal_type, value LIMIT $4",
        )
        .bind(exchange_id)
        .bind(t)
        .bind(v)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((get_str(r, "signal_type")?, get_str(r, "value")?)))
            .collect()
    }

    /// One record.
    pub async fn exchange_record(
        &self,
        exchange_id: i64,
        signal_type: &str,
        value: &str,
    ) -> Result<Option<ExchangeRecordRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM exchange_records WHERE exchange_id = $1 \
             AND signal_type = $2 AND value = $3"
        )))
        .bind(exchange_id)
        .bind(signal_type)
        .bind(value)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ExchangeRecordRow::from_row).transpose()
    }

    /// The records backing these bank items, with their exchange's name and
    /// API (the provenance of a match), ordered by content id, exchange.
    pub async fn provenance_of(&self, content_ids: &[i64]) -> Result<Vec<ProvenanceRow>> {
        let mut out = Vec::new();
        for chunk in content_ids.chunks(IN_LIST) {
            let set = ValueSet::new(self.backend, "r.content_id", 1, chunk.len());
            let sql = numbered(
                self.backend,
                &format!(
                    "SELECT e.name AS exchange_name, e.api AS exchange_api, {} FROM exchange_records r \
                     JOIN exchanges e ON e.id = r.exchange_id{} WHERE {} \
                     ORDER BY r.content_id, e.id",
                    prefixed("r.", RECORD_COLUMNS),
                    set.select_from(),
                    set.cond
                ),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(ProvenanceRow {
                    exchange: get_str(&r, "exchange_name")?,
                    api: get_str(&r, "exchange_api")?,
                    record: ExchangeRecordRow::from_row(&r)?,
                });
            }
        }
        Ok(out)
    }
}

/// `a, b` → `p.a, p.b`.
fn prefixed(prefix: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{prefix}{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl WriteTx {
    pub async fn insert_exchange(&mut self, e: &NewExchange<'_>) -> Result<ExchangeRow> {
        let now = now_ms();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO exchanges (name, api, config, policy, credentials, write_back, enabled, \
             live, poll_interval_ms, bank_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING {EXCHANGE_COLUMNS}"
        )))
        .bind(e.name)
        .bind(e.api)
        .bind(e.config)
        .bind(e.policy)
        .bind(e.credentials)
        .bind(i64::from(e.write_back))
        .bind(i64::from(e.enabled))
        .bind(i64::from(e.live))
        .bind(e.poll_interval_ms)
        .bind(e.bank_id)
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(|err| match StoreError::from(err) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("exchange {:?} already exists", e.name))
            }
            other => other,
        })?;
        ExchangeRow::from_row(&row)
    }

    /// The exchange row, locked for this transaction on PostgreSQL (two
    /// writers applying batches to one exchange serialise here).
    pub async fn get_exchange_for_update(&mut self, id: i64) -> Result<Option<ExchangeRow>> {
        let lock = match self.backend {
            crate::Backend::Postgres => " FOR UPDATE",
            crate::Backend::Sqlite => "",
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EXCHANGE_COLUMNS} FROM exchanges WHERE id = $1{lock}"
        )))
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(ExchangeRow::from_row).transpose()
    }

    /// Ids of the exchanges filling `bank_id`.
    pub async fn exchange_ids_of_bank(&mut self, bank_id: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT id FROM exchanges WHERE bank_id = $1 ORDER BY id")
            .bind(bank_id)
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(|r| get_i64(r, "id")).collect()
    }

    pub async fn update_exchange_settings(
        &mut self,
        id: i64,
        s: &ExchangeSettings,
    ) -> Result<ExchangeRow> {
        let (set_credentials, credentials) = match &s.credentials {
            Some(c) => (1i64, c.clone()),
            None => (0i64, None),
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE exchanges SET config = $1, policy = $2, enabled = $3, live = $4, \
             poll_interval_ms = $5, credentials = CASE WHEN $6 = 1 THEN $7 ELSE credentials END, \
             updated_at = $8 WHERE id = $9 RETURNING {EXCHANGE_COLUMNS}"
        )))
        .bind(s.config.as_str())
        .bind(s.policy.as_str())
        .bind(i64::from(s.enabled))
        .bind(i64::from(s.live))
        .bind(s.poll_interval_ms)
        .bind(set_credentials)
        .bind(credentials)
        .bind(now_ms())
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        match row {
            Some(r) => ExchangeRow::from_row(&r),
            None => Err(StoreError::NotFound(format!("exchange {id}"))),
        }
    }

    /// Move the fetch state forward (the batch's checkpoint, counters).
    pub async fn set_exchange_progress(&mut self, id: i64, p: &ExchangeProgress) -> Result<()> {
        sqlx::query(
            "UPDATE exchanges SET checkpoint = $1, generation = $2, full_fetch = $3, \
             upstream_at = COALESCE($4, upstream_at), fetched_total = fetched_total + $5, \
             malformed_total = malformed_total + $6, updated_at = $7 WHERE id = $8",
        )
        .bind(p.checkpoint.as_deref())
        .bind(p.generation)
        .bind(i64::from(p.full_fetch))
        .bind(p.upstream_at)
        .bind(p.fetched)
        .bind(p.malformed)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Count an opinion that could not be sent (the adapter has no write-back).
    pub async fn count_unsent_opinion(&mut self, id: i64) -> Result<()> {
        sqlx::query("UPDATE exchanges SET opinions_unsent = opinions_unsent + 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Delete an exchange row and its records.
    pub async fn delete_exchange(&mut self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM exchange_records WHERE exchange_id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        let done = sqlx::query("DELETE FROM exchanges WHERE id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("exchange {id}")));
        }
        Ok(())
    }

    /// Records of `exchange_ids` with these values of one signal type.
    pub async fn exchange_records_by_values(
        &mut self,
        exchange_ids: &[i64],
        signal_type: &str,
        values: &[&str],
    ) -> Result<Vec<ExchangeRecordRow>> {
        let mut out = Vec::new();
        if exchange_ids.is_empty() {
            return Ok(out);
        }
        for exchange_id in exchange_ids {
            for chunk in values.chunks(IN_LIST) {
                let set = ValueSet::new(self.backend, "value", 3, chunk.len());
                let sql = numbered(
                    self.backend,
                    &format!(
                        "SELECT {RECORD_COLUMNS} FROM exchange_records{} WHERE \
                         exchange_id = ? AND signal_type = ? AND {}",
                        set.select_from(),
                        set.cond
                    ),
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(*exchange_id)
                    .bind(signal_type);
                for v in chunk {
                    q = q.bind(*v);
                }
                for r in q.fetch_all(&mut *self.tx).await? {
                    out.push(ExchangeRecordRow::from_row(&r)?);
                }
            }
        }
        Ok(out)
    }

    /// Records of one exchange whose upstream record was not seen in
    /// generation `generation` and that are not tombstones yet (the sweep of
    /// a full fetch), in key order after `after`.
    pub async fn unseen_exchange_records(
        &mut self,
        exchange_id: i64,
        generation: i64,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> Result<Vec<ExchangeRecordRow>> {
        // Keyset pagination: a sweep of many records never re-scans the
        // pages it already swept.
        let (t, v) = after.unwrap_or(("", ""));
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM exchange_records WHERE exchange_id = $1 \
             AND (signal_type > $2 OR (signal_type = $2 AND value > $3)) \
             AND deleted = 0 AND seen_gen < $4 ORDER BY signal_type, value LIMIT $5"
        )))
        .bind(exchange_id)
        .bind(t)
        .bind(v)
        .bind(generation)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(ExchangeRecordRow::from_row).collect()
    }

    /// Records of one exchange in key order after `after` (policy re-runs).
    pub async fn exchange_records_after(
        &mut self,
        exchange_id: i64,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> Result<Vec<ExchangeRecordRow>> {
        let (t, v) = after.unwrap_or(("", ""));
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM exchange_records WHERE exchange_id = $1 \
             AND (signal_type > $2 OR (signal_type = $2 AND value > $3)) \
             ORDER BY signal_type, value LIMIT $4"
        )))
        .bind(exchange_id)
        .bind(t)
        .bind(v)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(ExchangeRecordRow::from_row).collect()
    }

    /// The records of other exchanges backing the same item (shared banks).
    pub async fn exchange_records_of_content(
        &mut self,
        content_id: i64,
    ) -> Result<Vec<ExchangeRecordRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM exchange_records WHERE content_id = $1"
        )))
        .bind(content_id)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(ExchangeRecordRow::from_row).collect()
    }

    /// Insert new records (multi-row statements).
    pub async fn insert_exchange_records(&mut self, rows: &[&ExchangeRecordRow]) -> Result<()> {
        let now = now_ms();
        for chunk in rows.chunks(RECORD_ROWS_PER_STATEMENT) {
            let sql = values_sql(
                self.backend,
                "INSERT INTO exchange_records (exchange_id, signal_type, value, upstream_id, meta, \
                 upstream_created_at, upstream_updated_at, deleted, applied, content_id, \
                 local_state, my_opinion, seen_gen, updated_at) VALUES ",
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                chunk.len(),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(r.exchange_id)
                    .bind(r.signal_type.as_str())
                    .bind(r.value.as_str())
                    .bind(r.upstream_id.as_str())
                    .bind(r.meta.as_str())
                    .bind(r.upstream_created_at)
                    .bind(r.upstream_updated_at)
                    .bind(i64::from(r.deleted))
                    .bind(i64::from(r.applied))
                    .bind(r.content_id)
                    .bind(r.local_state.as_str())
                    .bind(r.my_opinion.as_deref())
                    .bind(r.seen_gen)
                    .bind(now);
            }
            q.execute(&mut *self.tx).await?;
        }
        if !rows.is_empty() {
            self.refresh_statistics_when_doubled(GrowingTable::ExchangeRecords)
                .await?;
        }
        Ok(())
    }

    /// Overwrite one record's mutable fields.
    pub async fn update_exchange_record(&mut self, r: &ExchangeRecordRow) -> Result<()> {
        sqlx::query(
            "UPDATE exchange_records SET upstream_id = $1, meta = $2, upstream_created_at = $3, \
             upstream_updated_at = $4, deleted = $5, applied = $6, content_id = $7, \
             local_state = $8, my_opinion = $9, seen_gen = $10, updated_at = $11 \
             WHERE exchange_id = $12 AND signal_type = $13 AND value = $14",
        )
        .bind(r.upstream_id.as_str())
        .bind(r.meta.as_str())
        .bind(r.upstream_created_at)
        .bind(r.upstream_updated_at)
        .bind(i64::from(r.deleted))
        .bind(i64::from(r.applied))
        .bind(r.content_id)
        .bind(r.local_state.as_str())
        .bind(r.my_opinion.as_deref())
        .bind(r.seen_gen)
        .bind(now_ms())
        .bind(r.exchange_id)
        .bind(r.signal_type.as_str())
        .bind(r.value.as_str())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Mark unchanged records as seen in `generation` (one statement per
    /// [`IN_LIST`] values).
    pub async fn mark_exchange_records_seen(
        &mut self,
        exchange_id: i64,
        signal_type: &str,
        values: &[&str],
        generation: i64,
    ) -> Result<()> {
        for chunk in values.chunks(IN_LIST) {
            let set = ValueSet::new(self.backend, "value", 4, chunk.len());
            let sql = numbered(
                self.backend,
                &format!(
                    "UPDATE exchange_records SET seen_gen = ?{} WHERE exchange_id = ? \
                     AND signal_type = ? AND {}",
                    set.update_from(),
                    set.cond
                ),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(generation)
                .bind(exchange_id)
                .bind(signal_type);
            for v in chunk {
                q = q.bind(*v);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Record this instance's own opinion on the records backing an item.
    pub async fn set_my_opinion(&mut self, content_id: i64, opinion: &str) -> Result<()> {
        sqlx::query("UPDATE exchange_records SET my_opinion = $1 WHERE content_id = $2")
            .bind(opinion)
            .bind(content_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Insert content items with ids reserved by [`WriteTx::reserve_content_ids`]
    /// and their signals into one bank (multi-row statements; the signals'
    /// ids are reserved too). Returns the rows written, in input order, as
    /// [`Store::content_range_page`] and [`Store::signals_of_content_range`]
    /// would read them back: the caller's indexes can take them without
    /// re-reading the range.
    pub async fn insert_content_with_ids(
        &mut self,
        bank_id: i64,
        items: Vec<ContentWithId>,
    ) -> Result<Vec<(ContentRow, Vec<SignalRow>)>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<ItemRow<'_>> = items
            .iter()
            .map(|item| ItemRow {
                id: item.id,
                enabled: item.enabled,
                labels_json: &item.labels_json,
                note: "",
                signals: &item.signals,
            })
            .collect();
        let signals: usize = items.iter().map(|i| i.signals.len()).sum();
        let signal_ids = self.reserve_ids(IdTable::Signals, signals).await?;
        let now = self
            .insert_item_rows(bank_id, &rows, Some(&signal_ids))
            .await?;
        drop(rows);
        // What was written, as the range reads would return it.
        let mut ids = signal_ids.into_iter();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let content = ContentRow {
                id: item.id,
                bank_id,
                enabled: item.enabled,
                labels: item.labels_json,
                note: String::new(),
                quarantined: false,
                quarantine_reason: None,
                quarantined_at: None,
                created_at: now,
                updated_at: now,
            };
            let mut sigs = Vec::with_capacity(item.signals.len());
            for ((t, v), id) in item.signals.into_iter().zip(ids.by_ref()) {
                sigs.push(SignalRow {
                    id,
                    content_id: item.id,
                    bank_id,
                    signal_type: t,
                    value: v,
                    created_at: now,
                    equivalences_id: None,
                });
            }
            out.push((content, sigs));
        }
        Ok(out)
    }

    /// Replace a content item's labels; false when the item is gone.
    pub async fn set_content_labels(&mut self, content_id: i64, labels_json: &str) -> Result<bool> {
        let done =
            sqlx::query("UPDATE bank_content SET labels = $1, updated_at = $2 WHERE id = $3")
                .bind(labels_json)
                .bind(now_ms())
                .bind(content_id)
                .execute(&mut *self.tx)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    /// A fetch of the exchange started (status only).
    pub async fn set_exchange_fetch_started(&self, id: i64, at: i64) -> Result<()> {
        sqlx::query("UPDATE exchanges SET fetch_started_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A fetch finished: success (`error` None: clears the running mark,
    /// stamps the success, keeps the upstream's checksum; when
    /// `caught_up`, the copy is current as of `at`, which resets the lag),
    /// or failure (the error and its time; the last success stays).
    pub async fn set_exchange_fetch_done(
        &self,
        id: i64,
        at: i64,
        error: Option<&str>,
        upstream_checksum: Option<&str>,
        caught_up: bool,
    ) -> Result<()> {
        match error {
            None => {
                sqlx::query(
                    "UPDATE exchanges SET fetch_started_at = NULL, last_success_at = $1, \
                     upstream_checksum = COALESCE($2, upstream_checksum), \
                     upstream_at = CASE WHEN $3 = 1 THEN $1 ELSE upstream_at END WHERE id = $4",
                )
                .bind(at)
                .bind(upstream_checksum)
                .bind(i64::from(caught_up))
                .bind(id)
                .execute(&self.pool)
                .await?;
            }
            Some(e) => {
                let e: String = e.chars().take(2000).collect();
                sqlx::query(
                    "UPDATE exchanges SET fetch_started_at = NULL, last_error = $1, \
                     last_error_at = $2 WHERE id = $3",
                )
                .bind(e)
                .bind(at)
                .bind(id)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Forget the checkpoint so the next fetch is a full one (mark-and-sweep).
    pub async fn reset_exchange_checkpoint(&self, id: i64) -> Result<()> {
        sqlx::query("UPDATE exchanges SET checkpoint = NULL, updated_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
