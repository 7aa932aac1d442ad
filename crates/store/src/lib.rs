//! Persistence for echotrace: banks, bank content, signals, submissions,
//! matches, decisions, the action outbox, the audit log, API keys, users,
//! webhooks, and the monotonic change sequence.
//!
//! Key design decisions:
//!
//! * **One code path, two backends.** Everything goes through sqlx's `Any`
//!   driver with runtime (not compile-time checked) queries, so the same SQL and
//!   the same tests run on SQLite and PostgreSQL. The SQL is kept to the common
//!   subset: `$n` placeholders (SQLite accepts them too), `BIGINT`/`INTEGER`
//!   columns for ids, timestamps (Unix ms) and 0/1 flags, `TEXT` for JSON. Only
//!   the DDL differs (`AUTOINCREMENT` vs `BIGSERIAL`), so there are two
//!   migration directories embedded at compile time (`migrations/sqlite`,
//!   `migrations/postgres`) and run by sqlx's migrator.
//! * **Backend by URL scheme**: `sqlite://path` (created if missing) or
//!   `postgres://…` / `postgresql://…`. A bare path is taken as SQLite.
//! * **Crash safety on SQLite**: WAL journal, `synchronous=FULL` by default
//!   (every committed write survives kill -9 *and* power loss; `NORMAL`, which
//!   is still kill -9 safe, can be chosen with [`StoreOptions`]), a 5 s busy
//!   timeout, foreign keys on. Write transactions are serialised in-process
//!   and start with `BEGIN IMMEDIATE`, so a read-then-write transaction never
//!   fails with `SQLITE_BUSY_SNAPSHOT`. They run on one dedicated writer
//!   connection whose page cache (16 MiB) outlives each transaction; reads
//!   use the pool. The one exception to `FULL` is
//!   [`Store::write_refetchable`]: a signal exchange's batch, all of which
//!   its upstream can resend, commits at `NORMAL` on its own connection
//!   (still kill -9 safe; see there for what a power loss means).
//! * **Change sequence**: every write that affects matching (bank or content
//!   or its signals) appends a row to `changes` in the same transaction.
//!   Processes tail `changes` by id. On PostgreSQL, sequence values are handed
//!   out at insert time but become visible at commit, so a reader could see id
//!   11 before id 10 commits and skip 10 forever. To rule that out, writers
//!   take a transaction-scoped advisory lock before appending a change, so
//!   change ids become visible in id order.
//! * Raw content bytes are never stored: submissions keep signals and caller
//!   context only; API keys and passwords are stored as hashes only.

mod bulk;
mod exchange;
mod feed;
mod frontier;
mod lease;
mod retention;
mod robust;
mod rows;
mod scale;
mod sighting;
mod spread;
pub mod testing;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor, Row, SqlSafeStr, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use bulk::{
    content_range_op, parse_content_range_op, signal_value_eq, BulkContent,
    BULK_ROWS_PER_STATEMENT, CONTENT_RANGE_ENTITY,
};
pub use exchange::{
    ContentWithId, ExchangeProgress, ExchangeRecordRow, ExchangeRow, ExchangeSettings, NewExchange,
    ProvenanceRow, RecordCounts,
};
pub use feed::{FeedEntryRow, FeedOpinionRow, FeedRow, NewFeedEntry};
pub use frontier::{
    FrontierCounts, FrontierJob, JobOutcome, NewJob, SourceStatsDelta, SourceStatusRow,
    UpsertedSighting, JOB_DONE, JOB_FAILED, JOB_LEASED, JOB_QUEUED,
};
pub use lease::LeaseRow;
pub use retention::{RetentionCutoffs, SweepCounts};
pub use robust::{is_exportable_table, DerivedRow, DERIVED_PDQ_WINDOWS, DERIVED_VPDQ_CROPPED};
pub use rows::*;
pub use scale::{schema_version, ContentFlagsRow, CounterAdd, HitDetail};
pub use sighting::{
    split_implied_signals, NewSighting, NewSightingMatch, NewSource, SightingMatchRow,
    SightingQuery, SightingRow, SightingSignalRow, SourceRow, WarcRef, IMPLIED_SHA256, IMPLIED_URL,
    IMPLIED_URL_SHA256,
};
pub use spread::{
    CheckRow, CheckWrite, ClusterSummary, CopyRow, DueCheck, ItemLabels, LivenessRow, NewNotice,
    NoticeQuery, NoticeRow, RemovalRow,
};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is malformed or names an unsupported backend.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// A row that should exist does not.
    #[error("{0}")]
    NotFound(String),
    /// A uniqueness constraint was violated.
    #[error("{0}")]
    Conflict(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A stored value could not be interpreted.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Text the database cannot hold (PostgreSQL refuses NUL characters).
    /// The server refuses NUL in every request field before it gets here;
    /// this keeps any other path (CLI imports, new code) a 400, not a 500.
    #[error("text contains a character the database cannot store (NUL)")]
    UnstorableText,
    /// A value that breaks the schema's rules (a sighting digest that is
    /// not 64 lowercase hex digits, say). Callers that take it from a
    /// request check it before it gets here; this keeps any other path
    /// from storing it.
    #[error("invalid value: {0}")]
    Invalid(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return StoreError::Conflict(format!("already exists: {}", db.message()));
            }
            // character_not_in_repertoire (a NUL in text), untranslatable_character.
            if matches!(db.code().as_deref(), Some("22021" | "22P05")) {
                return StoreError::UnstorableText;
            }
        }
        if let sqlx::Error::RowNotFound = e {
            return StoreError::NotFound("row not found".into());
        }
        StoreError::Database(e)
    }
}

/// Result alias of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database the store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// SQLite durability level (ignored on PostgreSQL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqliteSync {
    /// fsync on every commit: survives process kill and power loss.
    Full,
    /// fsync at checkpoints only: survives process kill (kill -9), may lose
    /// the last commits on power loss.
    Normal,
}

/// Connection options.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub sqlite_sync: SqliteSync,
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            sqlite_sync: SqliteSync::Full,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Default database URL: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./echotrace.db";

/// Current time as Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Every schema migration, in order: (version, name, file stem under
/// `migrations/{sqlite,postgres}/`). Both directories hold the same stems.
/// Add new migrations at the end; never edit an applied one.
macro_rules! schema_migrations {
    ($(($version:literal, $name:literal, $file:literal)),* $(,)?) => {
        fn migration_sources(backend: Backend) -> Vec<(i64, &'static str, &'static str)> {
            match backend {
                Backend::Sqlite => vec![$((
                    $version,
                    $name,
                    include_str!(concat!("../migrations/sqlite/", $file, ".sql")),
                )),*],
                Backend::Postgres => vec![$((
                    $version,
                    $name,
                    include_str!(concat!("../migrations/postgres/", $file, ".sql")),
                )),*],
            }
        }
    };
}

schema_migrations![
    (1, "init", "0001_init"),
    // Review console (sessions, user settings, retained media).
    (2, "console", "0002_console"),
    // Matches no longer reference banks, so banks can be deleted.
    (3, "bank_delete", "0003_bank_delete"),
    // Per-bank text equivalence lists, every version kept.
    (4, "bank_settings", "0004_bank_settings"),
    // Named leases: one process runs each background job.
    (5, "leases", "0005_leases"),
    // The sighting model: sources, sightings, their signals and matches.
    (6, "sightings", "0006_sightings"),
    // vPDQ matches keep the compared share too.
    (10, "vpdq_shares", "0010_vpdq_shares"),
    // Retention sweeps delete audit entries by target.
    (11, "retention", "0011_retention"),
    // PostgreSQL: vPDQ values outgrow B-tree rows; index them by hash.
    (12, "signal_value_index", "0012_signal_value_index"),
    // Signal exchange: exchanges, upstream records, published feeds.
    (20, "exchanges", "0020_exchanges"),
    // Robust matching: derived hashes, bank matching settings, match channel.
    (30, "robust", "0030_robust"),
    // The collector: frontier, host politeness slots, source status,
    // cursors, host -> platform table, sighting attributes (issue 15).
    (40, "collector", "0040_collector"),
    // Spread tracking: liveness, checks, removals, takedown notices.
    (50, "spread", "0050_spread"),
    // Liveness checks tallied per hour and verdict (reports count them).
    (51, "check_hours", "0051_check_hours"),
    // One summary row per copy, kept by triggers (reports read only it).
    (52, "spread_copies", "0052_spread_copies"),
    // Replicas as one service: database identity, shared counters.
    (60, "scale", "0060_scale"),
    // Sighting signals: no (signal_type, value) index (nothing reads it).
    (61, "sighting_signal_values", "0061_sighting_signal_values"),
    // SQLite looks signals up by the value's first 16 characters.
    (62, "signal_value_prefix", "0062_signal_value_prefix"),
    // A sighting's sha256, url and url_sha256 signals are its own columns.
    (
        63,
        "implied_sighting_signals",
        "0063_implied_sighting_signals"
    ),
    // Sightings: the unique key as bytes, the content index by prefix.
    (64, "sighting_keys", "0064_sighting_keys"),
];

fn migrator(backend: Backend) -> Migrator {
    let migrations = migration_sources(backend)
        .into_iter()
        .map(|(version, name, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(name),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// Normalise a user-supplied URL and pick the backend.
fn resolve_url(url: &str) -> Result<(Backend, String)> {
    let url = url.trim();
    if url.is_empty() {
        return resolve_url(DEFAULT_DATABASE_URL);
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // sqlx 0.9's `Any` driver encodes a NULL `f64` as a NULL `float4`
        // (sqlx-core any/arguments.rs swaps Real and Double). With cached
        // prepared statements, the first execution with a NULL similarity
        // would fix the parameter type to float4 and every later non-NULL
        // f64 would fail with "incorrect binary data format". The store
        // therefore never binds an `Option<f64>`: the one nullable float
        // (`matches.similarity`) is bound as text and cast in SQL, which
        // keeps PostgreSQL's statement cache usable (without it every
        // statement is parsed and planned again: 1.5-1.7x fewer lookups/s
        // in `bench/run_load.sh`, see docs/BENCHMARKS.md).
        return Ok((Backend::Postgres, url.to_string()));
    }
    let rest = if let Some(r) = url.strip_prefix("sqlite://") {
        r
    } else if let Some(r) = url.strip_prefix("sqlite:") {
        r
    } else if url.contains("://") {
        return Err(StoreError::InvalidUrl(format!(
            "unsupported scheme in {url:?} (expected sqlite:// or postgres://)"
        )));
    } else {
        url
    };
    if rest.is_empty() {
        return Err(StoreError::InvalidUrl("empty SQLite path".into()));
    }
    let full = if rest.contains("mode=") {
        format!("sqlite://{rest}")
    } else if rest.contains('?') {
        format!("sqlite://{rest}&mode=rwc")
    } else {
        format!("sqlite://{rest}?mode=rwc")
    };
    Ok((Backend::Sqlite, full))
}

/// Handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Serialises write transactions on SQLite (one writer at a time anyway).
    write_lock: Arc<Mutex<()>>,
    /// SQLite: the one connection every [`Store::write`] transaction runs
    /// on, with its own page cache (`None` on PostgreSQL and for an
    /// in-memory database, whose writes use the pool).
    writer: Option<AnyPool>,
    /// SQLite: one connection at `synchronous=NORMAL` for
    /// [`Store::write_refetchable`] (`None` on PostgreSQL).
    refetchable: Option<AnyPool>,
}

/// SQLite: the page cache of the writer connection (KiB). Writes land in
/// indexes keyed by hashes (sightings by URL and content digest, frontier
/// jobs by URL digest, signals by value), so consecutive transactions touch
/// leaf pages all over those B-trees; with SQLite's default 2 MiB cache,
/// spread over whichever pooled connection a transaction got, each one read
/// its pages back from the OS and spilled dirty pages to the WAL before it
/// committed. One connection with a cache kept between transactions reads
/// them once. Bounded: pages are allocated as they are read, at most this.
const WRITER_CACHE_KIB: u32 = 16 * 1024;

/// SQLite: the page size of a database this build creates (bytes). An
/// existing database keeps the size it was created with (SQLite changes it
/// only by `VACUUM` outside WAL mode), so both sizes are in use and every
/// setting below counted in pages holds for either.
///
/// Why 8 KiB rather than SQLite's 4 KiB (session 19, docs/BENCHMARKS.md):
/// most bytes a collector import writes are large sequential rows (a text
/// MinHash signal is 1.7 KB) that go through the WAL and then the
/// checkpoint, and each page costs a frame header, a checksum pass and
/// system calls; with 8 KiB pages a 100,000-message Telegram import used
/// 8–10 % fewer CPU-seconds, a 1M-record exchange apply (random keys, where
/// larger pages could have meant more bytes per dirtied leaf) 9 % fewer, and
/// a crawl the same. 16 KiB bought the import little more.
const SQLITE_PAGE_SIZE: u32 = 8192;

/// SQLite: WAL pages the writer connection lets accumulate before it
/// checkpoints (64 MiB at 8 KiB pages, 32 MiB in a database of 4 KiB
/// ones). At SQLite's default of 1,000 pages a
/// collector import checkpointed every second batch or so, writing the same
/// hot index pages back to the database file (and fsyncing it) each time.
const WRITER_WAL_PAGES: u32 = 8_192;

/// SQLite: WAL pages the refetchable connection lets accumulate before it
/// checkpoints (512 MiB at 8 KiB pages, 256 MiB at 4 KiB). Each exchange
/// batch of 10,000 random hashes
/// dirties a leaf page per record in the hash-keyed B-trees; checkpointing
/// after every batch (SQLite's default of 1,000 pages) wrote each of those
/// pages to the database file again per batch. Checkpointing every few
/// batches writes a page touched by several batches once.
const REFETCHABLE_WAL_PAGES: u32 = 65_536;

/// SQLite: what the WAL file is truncated to after a checkpoint (bytes).
const WAL_SIZE_LIMIT: u64 = 64 << 20;

/// A pool of one SQLite connection, opened on first use, that runs
/// `pragmas` when it connects.
fn single_connection(url: &str, pragmas: String) -> Result<AnyPool> {
    let opts = AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _meta| {
            let pragmas = pragmas.clone();
            Box::pin(async move {
                conn.execute(sqlx::AssertSqlSafe(pragmas)).await?;
                Ok(())
            })
        });
    Ok(opts.connect_lazy(url)?)
}

/// Arbitrary constant for the PostgreSQL advisory lock that orders change ids.
/// Advisory locks are per database, not per schema, so the key taken is this
/// XOR the oid of the `changes` table on the `search_path`: the writers of
/// one change sequence serialise, and two deployments (or two tests) in
/// different schemas of one database never wait for each other.
const CHANGE_LOCK_KEY: i64 = 0x6563_686f_7472_6163; // "echotrac"

impl Store {
    /// Connect with default options and apply pending migrations.
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with(url, StoreOptions::default()).await
    }

    /// Connect and apply pending migrations.
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = resolve_url(url)?;
        let sync = match options.sqlite_sync {
            SqliteSync::Full => "FULL",
            SqliteSync::Normal => "NORMAL",
        };
        let busy_ms = i64::try_from(options.busy_timeout.as_millis()).unwrap_or(5000);
        let pool_opts = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30));
        let pool_opts = if backend == Backend::Sqlite {
            pool_opts.after_connect(move |conn, _meta| {
                Box::pin(async move {
                    // `page_size` first: it takes effect only while the
                    // file is still empty, before WAL mode writes its header.
                    let pragmas = format!(
                        "PRAGMA page_size = {SQLITE_PAGE_SIZE}; \
                         PRAGMA busy_timeout = {busy_ms}; PRAGMA journal_mode = WAL; \
                         PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;"
                    );
                    conn.execute(sqlx::AssertSqlSafe(pragmas)).await?;
                    Ok(())
                })
            })
        } else {
            pool_opts
        };
        let pool = pool_opts.connect(&url).await?;
        migrator(backend).run(&pool).await?;
        // SQLite's dedicated connections, each opened on first use (not for
        // an in-memory database: another connection would open another
        // database). The writer takes every `Store::write` transaction
        // (writes are serialised anyway): its page cache stays warm between
        // transactions, and `temp_store` keeps a multi-row statement's
        // rollback journal in memory instead of a temporary file. The
        // refetchable connection takes writes whose every row can be
        // fetched again from upstream (see [`Store::write_refetchable`]).
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let dedicated = backend == Backend::Sqlite && !in_memory;
        let base = format!(
            "PRAGMA busy_timeout = {busy_ms}; PRAGMA journal_mode = WAL; \
             PRAGMA foreign_keys = ON; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
        );
        let writer = dedicated
            .then(|| {
                single_connection(
                    &url,
                    format!(
                        "{base} PRAGMA synchronous = {sync}; \
                         PRAGMA cache_size = -{WRITER_CACHE_KIB}; PRAGMA temp_store = MEMORY; \
                         PRAGMA wal_autocheckpoint = {WRITER_WAL_PAGES};"
                    ),
                )
            })
            .transpose()?;
        let refetchable = dedicated
            .then(|| {
                single_connection(
                    &url,
                    format!(
                        "{base} PRAGMA synchronous = NORMAL; \
                         PRAGMA wal_autocheckpoint = {REFETCHABLE_WAL_PAGES};"
                    ),
                )
            })
            .transpose()?;
        Ok(Store {
            pool,
            backend,
            write_lock: Arc::new(Mutex::new(())),
            writer,
            refetchable,
        })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying pool (for tests and diagnostics).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Close all connections.
    pub async fn close(&self) {
        for p in [&self.writer, &self.refetchable].into_iter().flatten() {
            p.close().await;
        }
        self.pool.close().await;
    }

    /// Begin a write transaction. Nothing is visible to others until
    /// [`WriteTx::commit`]; dropping it rolls back.
    pub async fn write(&self) -> Result<WriteTx> {
        self.begin_write(false).await
    }

    /// Begin a write transaction whose rows can all be fetched again from
    /// upstream (a signal exchange's batch and its checkpoint): durable
    /// against a killed process, but not fsync'd at commit.
    ///
    /// SQLite commits it on a dedicated connection at `synchronous=NORMAL`:
    /// in WAL mode the commit reaches the OS at once (a kill -9 loses
    /// nothing) and is fsync'd by the next checkpoint or the next `FULL`
    /// commit of any connection, which flushes the one WAL file up to its
    /// own frames. A power loss can then roll back the last such commits,
    /// each as a whole and never without a later `FULL` commit also being
    /// lost: the batch goes with its checkpoint, the fetch resumes from the
    /// older one, and every process of that machine restarts from the
    /// database anyway. PostgreSQL commits it like any other transaction:
    /// `synchronous_commit = off` would let a *server* crash drop change
    /// ids that processes still running have already applied (and then
    /// reissue them), so it is not used. Never use this for anything an
    /// upstream cannot resend.
    pub async fn write_refetchable(&self) -> Result<WriteTx> {
        self.begin_write(true).await
    }

    async fn begin_write(&self, refetchable: bool) -> Result<WriteTx> {
        let guard = match self.backend {
            Backend::Sqlite => Some(self.write_lock.clone().lock_owned().await),
            Backend::Postgres => None,
        };
        let tx = match self.backend {
            Backend::Sqlite => {
                let dedicated = if refetchable {
                    &self.refetchable
                } else {
                    &self.writer
                };
                dedicated
                    .as_ref()
                    .unwrap_or(&self.pool)
                    .begin_with("BEGIN IMMEDIATE")
                    .await?
            }
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx {
            tx,
            backend: self.backend,
            change_locked: false,
            _guard: guard,
        })
    }

    // ----- banks -------------------------------------------------------

    pub async fn list_banks(&self) -> Result<Vec<BankRow>> {
        let rows = sqlx::query(BANK_SELECT_ALL).fetch_all(&self.pool).await?;
        rows.iter().map(BankRow::from_row).collect()
    }

    pub async fn get_bank(&self, id: i64) -> Result<Option<BankRow>> {
        let row = sqlx::query(BANK_SELECT_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(BankRow::from_row).transpose()
    }

    pub async fn get_bank_by_name(&self, name: &str) -> Result<Option<BankRow>> {
        let row = sqlx::query(
            "SELECT id, name, kind, enabled, description, thresholds, created_at, updated_at, \
             text_equivalences_id, text_equivalences FROM banks WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(BankRow::from_row).transpose()
    }

    // ----- content -----------------------------------------------------

    pub async fn get_content(&self, id: i64) -> Result<Option<ContentRow>> {
        let row = sqlx::query(CONTENT_SELECT_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(ContentRow::from_row).transpose()
    }

    /// Content of a bank, ascending id, `after_id` exclusive.
    pub async fn list_content(
        &self,
        bank_id: i64,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<ContentRow>> {
        let rows = sqlx::query(
            "SELECT id, bank_id, enabled, labels, note, quarantined, quarantine_reason, \
             quarantined_at, created_at, updated_at FROM bank_content \
             WHERE bank_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(bank_id)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ContentRow::from_row).collect()
    }

    /// Every content row (startup load), ascending id, paged.
    pub async fn all_content_page(&self, after_id: i64, limit: i64) -> Result<Vec<ContentRow>> {
        let rows = sqlx::query(
            "SELECT id, bank_id, enabled, labels, note, quarantined, quarantine_reason, \
             quarantined_at, created_at, updated_at FROM bank_content \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ContentRow::from_row).collect()
    }

    /// Every signal row (startup load), ascending id, paged.
    pub async fn all_signals_page(&self, after_id: i64, limit: i64) -> Result<Vec<SignalRow>> {
        let rows = sqlx::query(
            "SELECT id, content_id, bank_id, signal_type, value, created_at, equivalences_id \
             FROM signals WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SignalRow::from_row).collect()
    }

    pub async fn signals_of_content(&self, content_id: i64) -> Result<Vec<SignalRow>> {
        let rows = sqlx::query(
            "SELECT id, content_id, bank_id, signal_type, value, created_at, equivalences_id \
             FROM signals WHERE content_id = $1 ORDER BY id",
        )
        .bind(content_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SignalRow::from_row).collect()
    }

    /// Text-equivalence list versions that some signal was signed with, or
    /// that are some bank's current list (startup load).
    pub async fn text_equivalences_in_use(&self) -> Result<Vec<TextEquivalencesRow>> {
        let rows = sqlx::query(
            "SELECT id, bank_id, digest, body, created_at FROM bank_text_equivalences \
             WHERE id IN (SELECT equivalences_id FROM signals WHERE equivalences_id IS NOT NULL) \
             OR id IN (SELECT text_equivalences_id FROM banks \
             WHERE text_equivalences_id IS NOT NULL) ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(TextEquivalencesRow::from_row).collect()
    }

    /// One text-equivalence list version.
    pub async fn text_equivalences(&self, id: i64) -> Result<Option<TextEquivalencesRow>> {
        let row = sqlx::query(
            "SELECT id, bank_id, digest, body, created_at FROM bank_text_equivalences \
             WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(TextEquivalencesRow::from_row).transpose()
    }

    // ----- change sequence ---------------------------------------------

    /// Highest change id so far (0 if none).
    pub async fn max_change_id(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS m FROM changes")
            .fetch_one(&self.pool)
            .await?;
        get_i64(&row, "m")
    }

    /// Changes with id > `after`, ascending.
    pub async fn changes_after(&self, after: i64, limit: i64) -> Result<Vec<ChangeRow>> {
        let rows = sqlx::query(
            "SELECT id, entity, entity_id, op, at FROM changes WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ChangeRow::from_row).collect()
    }

    // ----- submissions and matches ---------------------------------------

    pub async fn get_submission(&self, id: i64) -> Result<Option<SubmissionRow>> {
        let row = sqlx::query(
            "SELECT id, actor, content_ref, url, uploader_id, signals, match_count, created_at \
             FROM submissions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(SubmissionRow::from_row).transpose()
    }

    pub async fn get_match(&self, id: i64) -> Result<Option<MatchRow>> {
        let row = sqlx::query(MATCH_SELECT_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(MatchRow::from_row).transpose()
    }

    /// Matches newest first with optional filters.
    pub async fn list_matches(&self, filter: &MatchQuery) -> Result<Vec<MatchRow>> {
        // Optional filters as "param IS NULL OR column = param" keep one static
        // statement for every combination.
        let rows = sqlx::query(
            "SELECT id, submission_id, bank_id, content_id, signal_id, signal_type, matched_value, \
             query_value, distance, similarity, compared_similarity, status, created_at, \
             updated_at, channel, channel_detail FROM matches WHERE ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR bank_id = $2) \
             AND ($3 IS NULL OR submission_id = $3) AND id < $4 ORDER BY id DESC LIMIT $5",
        )
        .bind(filter.status.clone())
        .bind(filter.bank_id)
        .bind(filter.submission_id)
        .bind(filter.before_id.unwrap_or(i64::MAX))
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(MatchRow::from_row).collect()
    }

    pub async fn decisions_of_match(&self, match_id: i64) -> Result<Vec<DecisionRow>> {
        let rows = sqlx::query(
            "SELECT id, match_id, verdict, note, actor, created_at, publish_after FROM decisions \
             WHERE match_id = $1 ORDER BY id",
        )
        .bind(match_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(DecisionRow::from_row).collect()
    }

    // ----- outbox ------------------------------------------------------

    /// Undelivered, not given-up events due at `now`, oldest first.
    pub async fn due_outbox(&self, now: i64, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(
            "SELECT id, event, payload, attempts, next_attempt_at, delivered_at, failed_at, \
             last_error, created_at FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL \
             AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(OutboxRow::from_row).collect()
    }

    /// Outbox events newest first (`pending_only`: undelivered and not failed).
    pub async fn list_outbox(&self, pending_only: bool, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(
            "SELECT id, event, payload, attempts, next_attempt_at, delivered_at, failed_at, \
             last_error, created_at FROM outbox \
             WHERE ($1 = 0 OR (delivered_at IS NULL AND failed_at IS NULL)) \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(i64::from(pending_only))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(OutboxRow::from_row).collect()
    }

    pub async fn get_outbox(&self, id: i64) -> Result<Option<OutboxRow>> {
        let row = sqlx::query(
            "SELECT id, event, payload, attempts, next_attempt_at, delivered_at, failed_at, \
             last_error, created_at FROM outbox WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(OutboxRow::from_row).transpose()
    }

    /// Lease an event: move its `next_attempt_at` from `expected` to `lease_until`.
    /// Returns false if another worker got there first.
    pub async fn claim_outbox(&self, id: i64, expected: i64, lease_until: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at = $3 \
             AND delivered_at IS NULL AND failed_at IS NULL",
        )
        .bind(lease_until)
        .bind(id)
        .bind(expected)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn mark_outbox_delivered(&self, id: i64, attempts: i64, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET delivered_at = $1, attempts = $2, last_error = NULL WHERE id = $3",
        )
        .bind(at)
        .bind(attempts)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Record a failed attempt; `failed_at` set = given up.
    pub async fn mark_outbox_attempt_failed(
        &self,
        id: i64,
        attempts: i64,
        next_attempt_at: i64,
        error: &str,
        failed_at: Option<i64>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET attempts = $1, next_attempt_at = $2, last_error = $3, failed_at = $4 \
             WHERE id = $5",
        )
        .bind(attempts)
        .bind(next_attempt_at)
        .bind(error)
        .bind(failed_at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ----- audit -------------------------------------------------------

    /// Audit entries newest first, ids below `before_id`.
    pub async fn list_audit(&self, before_id: Option<i64>, limit: i64) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT id, actor, action, target, before_json, after_json, at FROM audit_log \
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AuditRow::from_row).collect()
    }

    // ----- keys, users, webhooks ---------------------------------------

    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRow>> {
        let row = sqlx::query(
            "SELECT id, name, role, key_hash, created_at, revoked_at FROM api_keys WHERE key_hash = $1",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ApiKeyRow::from_row).transpose()
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        let rows = sqlx::query(
            "SELECT id, name, role, key_hash, created_at, revoked_at FROM api_keys ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ApiKeyRow::from_row).collect()
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>> {
        let row = sqlx::query(
            "SELECT id, username, password_hash, role, created_at, disabled_at FROM users \
             WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(UserRow::from_row).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<UserRow>> {
        let rows = sqlx::query(
            "SELECT id, username, password_hash, role, created_at, disabled_at FROM users ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(UserRow::from_row).collect()
    }

    pub async fn list_webhooks(&self) -> Result<Vec<WebhookRow>> {
        let rows = sqlx::query(
            "SELECT id, url, secret, events, enabled, created_at FROM webhooks ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(WebhookRow::from_row).collect()
    }
}

/// Filter for [`Store::list_matches`].
#[derive(Clone, Debug, Default)]
pub struct MatchQuery {
    pub status: Option<String>,
    pub bank_id: Option<i64>,
    pub submission_id: Option<i64>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

const BANK_SELECT_ALL: &str = "SELECT id, name, kind, enabled, description, thresholds, \
    created_at, updated_at, text_equivalences_id, text_equivalences FROM banks ORDER BY id";
const BANK_SELECT_ID: &str = "SELECT id, name, kind, enabled, description, thresholds, \
    created_at, updated_at, text_equivalences_id, text_equivalences FROM banks WHERE id = $1";
const CONTENT_SELECT_ID: &str = "SELECT id, bank_id, enabled, labels, note, quarantined, \
    quarantine_reason, quarantined_at, created_at, updated_at FROM bank_content WHERE id = $1";
const MATCH_SELECT_ID: &str = "SELECT id, submission_id, bank_id, content_id, signal_id, \
    signal_type, matched_value, query_value, distance, similarity, compared_similarity, status, \
    created_at, updated_at, channel, channel_detail FROM matches WHERE id = $1";

/// An open write transaction. Every method runs inside it; call
/// [`WriteTx::commit`] to make the writes durable and visible.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    backend: Backend,
    change_locked: bool,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commit (durable on return, per the SQLite sync level).
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Append to the change sequence (see the crate doc on ordering).
    pub async fn record_change(&mut self, entity: &str, entity_id: i64, op: &str) -> Result<i64> {
        if self.backend == Backend::Postgres && !self.change_locked {
            sqlx::query("SELECT pg_advisory_xact_lock($1 # 'changes'::regclass::oid::bigint)")
                .bind(CHANGE_LOCK_KEY)
                .execute(&mut *self.tx)
                .await?;
            self.change_locked = true;
        }
        let row = sqlx::query(
            "INSERT INTO changes (entity, entity_id, op, at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(entity)
        .bind(entity_id)
        .bind(op)
        .bind(now_ms())
        .fetch_one(&mut *self.tx)
        .await?;
        get_i64(&row, "id")
    }

    /// Append an audit entry.
    pub async fn audit(&mut self, entry: &NewAudit<'_>) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO audit_log (actor, action, target, before_json, after_json, at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(entry.actor)
        .bind(entry.action)
        .bind(entry.target)
        .bind(entry.before.clone())
        .bind(entry.after.clone())
        .bind(now_ms())
        .fetch_one(&mut *self.tx)
        .await?;
        get_i64(&row, "id")
    }

    /// Queue an outbox event deliverable from `next_attempt_at`.
    pub async fn enqueue(
        &mut self,
        event: &str,
        payload: &str,
        next_attempt_at: i64,
    ) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO outbox (event, payload, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, 0, $3, $4) RETURNING id",
        )
        .bind(event)
        .bind(payload)
        .bind(next_attempt_at)
        .bind(now_ms())
        .fetch_one(&mut *self.tx)
        .await?;
        get_i64(&row, "id")
    }

    // ----- banks -------------------------------------------------------

    pub async fn insert_bank(
        &mut self,
        name: &str,
        kind: &str,
        description: &str,
        thresholds_json: &str,
    ) -> Result<BankRow> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO banks (name, kind, enabled, description, thresholds, created_at, updated_at) \
             VALUES ($1, $2, 1, $3, $4, $5, $5) RETURNING id, name, kind, enabled, description, \
             thresholds, created_at, updated_at, text_equivalences_id, text_equivalences",
        )
        .bind(name)
        .bind(kind)
        .bind(description)
        .bind(thresholds_json)
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("bank {name:?} already exists")),
            other => other,
        })?;
        BankRow::from_row(&row)
    }

    pub async fn get_bank(&mut self, id: i64) -> Result<Option<BankRow>> {
        let row = sqlx::query(BANK_SELECT_ID)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.as_ref().map(BankRow::from_row).transpose()
    }

    pub async fn update_bank(
        &mut self,
        id: i64,
        enabled: bool,
        description: &str,
        thresholds_json: &str,
    ) -> Result<BankRow> {
        let row = sqlx::query(
            "UPDATE banks SET enabled = $1, description = $2, thresholds = $3, updated_at = $4 \
             WHERE id = $5 RETURNING id, name, kind, enabled, description, thresholds, \
             created_at, updated_at, text_equivalences_id, text_equivalences",
        )
        .bind(i64::from(enabled))
        .bind(description)
        .bind(thresholds_json)
        .bind(now_ms())
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        match row {
            Some(r) => BankRow::from_row(&r),
            None => Err(StoreError::NotFound(format!("bank {id}"))),
        }
    }

    // ----- content -----------------------------------------------------

    pub async fn insert_content(
        &mut self,
        bank_id: i64,
        enabled: bool,
        labels_json: &str,
        note: &str,
    ) -> Result<ContentRow> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO bank_content (bank_id, enabled, labels, note, quarantined, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, 0, $5, $5) RETURNING id, bank_id, enabled, \
             labels, note, quarantined, quarantine_reason, quarantined_at, created_at, updated_at",
        )
        .bind(bank_id)
        .bind(i64::from(enabled))
        .bind(labels_json)
        .bind(note)
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await?;
        ContentRow::from_row(&row)
    }

    pub async fn insert_signal(
        &mut self,
        content_id: i64,
        bank_id: i64,
        signal_type: &str,
        value: &str,
    ) -> Result<SignalRow> {
        self.insert_signal_signed_with(content_id, bank_id, signal_type, value, None)
            .await
    }

    /// [`WriteTx::insert_signal`] recording the bank text-equivalence list
    /// version a `text_minhash` value was signed with (`None` = no list).
    pub async fn insert_signal_signed_with(
        &mut self,
        content_id: i64,
        bank_id: i64,
        signal_type: &str,
        value: &str,
        equivalences_id: Option<i64>,
    ) -> Result<SignalRow> {
        let row = sqlx::query(
            "INSERT INTO signals (content_id, bank_id, signal_type, value, created_at, \
             equivalences_id) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, content_id, bank_id, \
             signal_type, value, created_at, equivalences_id",
        )
        .bind(content_id)
        .bind(bank_id)
        .bind(signal_type)
        .bind(value)
        .bind(now_ms())
        .bind(equivalences_id)
        .fetch_one(&mut *self.tx)
        .await?;
        SignalRow::from_row(&row)
    }

    /// Make `body` the bank's current text-equivalence list as a new version
    /// (older versions are kept: signals signed with them still reference
    /// them), or remove the list (`None`). Returns the new version id.
    pub async fn set_bank_text_equivalences(
        &mut self,
        bank_id: i64,
        body: Option<(&str, &str)>,
    ) -> Result<Option<i64>> {
        let version = match body {
            Some((body, digest)) => {
                let row = sqlx::query(
                    "INSERT INTO bank_text_equivalences (bank_id, digest, body, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(bank_id)
                .bind(digest)
                .bind(body)
                .bind(now_ms())
                .fetch_one(&mut *self.tx)
                .await?;
                Some(get_i64(&row, "id")?)
            }
            None => None,
        };
        let done = sqlx::query(
            "UPDATE banks SET text_equivalences_id = $1, text_equivalences = $2, updated_at = $3 \
             WHERE id = $4",
        )
        .bind(version)
        .bind(body.map(|(b, _)| b.to_string()))
        .bind(now_ms())
        .bind(bank_id)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("bank {bank_id}")));
        }
        Ok(version)
    }

    pub async fn get_content(&mut self, id: i64) -> Result<Option<ContentRow>> {
        let row = sqlx::query(CONTENT_SELECT_ID)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.as_ref().map(ContentRow::from_row).transpose()
    }

    /// Overwrite the mutable fields of a content row.
    pub async fn update_content(&mut self, c: &ContentRow) -> Result<ContentRow> {
        let row = sqlx::query(
            "UPDATE bank_content SET enabled = $1, labels = $2, note = $3, quarantined = $4, \
             quarantine_reason = $5, quarantined_at = $6, updated_at = $7 WHERE id = $8 \
             RETURNING id, bank_id, enabled, labels, note, quarantined, quarantine_reason, \
             quarantined_at, created_at, updated_at",
        )
        .bind(i64::from(c.enabled))
        .bind(c.labels.as_str())
        .bind(c.note.as_str())
        .bind(i64::from(c.quarantined))
        .bind(c.quarantine_reason.clone())
        .bind(c.quarantined_at)
        .bind(now_ms())
        .bind(c.id)
        .fetch_optional(&mut *self.tx)
        .await?;
        match row {
            Some(r) => ContentRow::from_row(&r),
            None => Err(StoreError::NotFound(format!("content {}", c.id))),
        }
    }

    /// Ids of a bank's content items, in id order.
    pub async fn content_ids_of_bank(&mut self, bank_id: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT id FROM bank_content WHERE bank_id = $1 ORDER BY id")
            .bind(bank_id)
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(|r| get_i64(r, "id")).collect()
    }

    /// Delete a bank row. Its content must be deleted first; matches keep
    /// the (then dangling) bank id.
    pub async fn delete_bank(&mut self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM bank_text_equivalences WHERE bank_id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        let done = sqlx::query("DELETE FROM banks WHERE id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("bank {id}")));
        }
        Ok(())
    }

    /// Delete a content row and its signals.
    pub async fn delete_content(&mut self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM signals WHERE content_id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        self.delete_derived(id).await?;
        let done = sqlx::query("DELETE FROM bank_content WHERE id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("content {id}")));
        }
        Ok(())
    }

    // ----- submissions, matches, decisions ---------------------------------

    pub async fn get_match(&mut self, id: i64) -> Result<Option<MatchRow>> {
        let row = sqlx::query(MATCH_SELECT_ID)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.as_ref().map(MatchRow::from_row).transpose()
    }

    pub async fn set_match_status(&mut self, id: i64, status: &str) -> Result<MatchRow> {
        let row = sqlx::query(
            "UPDATE matches SET status = $1, updated_at = $2 WHERE id = $3 RETURNING id, \
             submission_id, bank_id, content_id, signal_id, signal_type, matched_value, \
             query_value, distance, similarity, compared_similarity, status, created_at, \
             updated_at, channel, channel_detail",
        )
        .bind(status)
        .bind(now_ms())
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        match row {
            Some(r) => MatchRow::from_row(&r),
            None => Err(StoreError::NotFound(format!("match {id}"))),
        }
    }

    pub async fn insert_decision(
        &mut self,
        match_id: i64,
        verdict: &str,
        note: &str,
        actor: &str,
        publish_after: i64,
    ) -> Result<DecisionRow> {
        let row = sqlx::query(
            "INSERT INTO decisions (match_id, verdict, note, actor, created_at, publish_after) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, match_id, verdict, note, actor, \
             created_at, publish_after",
        )
        .bind(match_id)
        .bind(verdict)
        .bind(note)
        .bind(actor)
        .bind(now_ms())
        .bind(publish_after)
        .fetch_one(&mut *self.tx)
        .await?;
        DecisionRow::from_row(&row)
    }

    // ----- keys, users, webhooks ---------------------------------------

    pub async fn insert_api_key(
        &mut self,
        name: &str,
        role: &str,
        key_hash: &str,
    ) -> Result<ApiKeyRow> {
        let row = sqlx::query(
            "INSERT INTO api_keys (name, role, key_hash, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, name, role, key_hash, created_at, revoked_at",
        )
        .bind(name)
        .bind(role)
        .bind(key_hash)
        .bind(now_ms())
        .fetch_one(&mut *self.tx)
        .await?;
        ApiKeyRow::from_row(&row)
    }

    /// Revoke a key (idempotent: keeps the first revocation time).
    pub async fn revoke_api_key(&mut self, id: i64) -> Result<ApiKeyRow> {
        let row = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 \
             RETURNING id, name, role, key_hash, created_at, revoked_at",
        )
        .bind(now_ms())
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?;
        match row {
            Some(r) => ApiKeyRow::from_row(&r),
            None => Err(StoreError::NotFound(format!("api key {id}"))),
        }
    }

    pub async fn insert_user(
        &mut self,
        username: &str,
        password_hash: &str,
        role: &str,
    ) -> Result<UserRow> {
        let row = sqlx::query(
            "INSERT INTO users (username, password_hash, role, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, username, password_hash, role, created_at, disabled_at",
        )
        .bind(username)
        .bind(password_hash)
        .bind(role)
        .bind(now_ms())
        .fetch_one(&mut *self.tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("user {username:?} already exists")),
            other => other,
        })?;
        UserRow::from_row(&row)
    }

    pub async fn insert_webhook(
        &mut self,
        url: &str,
        secret: &str,
        events_json: &str,
    ) -> Result<WebhookRow> {
        let row = sqlx::query(
            "INSERT INTO webhooks (url, secret, events, enabled, created_at) VALUES ($1, $2, $3, 1, $4) \
             RETURNING id, url, secret, events, enabled, created_at",
        )
        .bind(url)
        .bind(secret)
        .bind(events_json)
        .bind(now_ms())
        .fetch_one(&mut *self.tx)
        .await?;
        WebhookRow::from_row(&row)
    }

    pub async fn delete_webhook(&mut self, id: i64) -> Result<()> {
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("webhook {id}")));
        }
        Ok(())
    }
}

/// Input for [`WriteTx::audit`]. `before`/`after` are JSON documents.
#[derive(Clone, Debug)]
pub struct NewAudit<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Input for [`WriteTx::insert_submissions_with_ids`].
#[derive(Clone, Debug)]
pub struct NewSubmission<'a> {
    pub actor: &'a str,
    pub content_ref: Option<&'a str>,
    pub url: Option<&'a str>,
    pub uploader_id: Option<&'a str>,
    pub signals_json: &'a str,
    pub match_count: i64,
}

/// Input for [`WriteTx::insert_matches_with_ids`].
#[derive(Clone, Debug)]
pub struct NewMatch<'a> {
    pub submission_id: i64,
    pub bank_id: i64,
    pub content_id: i64,
    pub signal_id: Option<i64>,
    pub signal_type: &'a str,
    pub matched_value: &'a str,
    pub query_value: &'a str,
    pub distance: Option<i64>,
    pub similarity: Option<f64>,
    /// vPDQ: the share (0..1) of the bank video's frames with a partner.
    pub compared_similarity: Option<f64>,
    /// Which matching channel found it (`plain` for every non-PDQ type).
    pub channel: &'a str,
    /// JSON: how the channel matched (rectangles, variant, plain distance).
    pub channel_detail: Option<&'a str>,
}

pub(crate) fn get_i64(row: &AnyRow, col: &str) -> Result<i64> {
    row.try_get::<i64, _>(col)
        .map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}
