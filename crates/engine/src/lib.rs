//! The matching domain of echotrace: banks of known content, per-bank and
//! per-signal thresholds, lookups that turn signals into recorded matches,
//! reviewer decisions, the action outbox, API keys, users and the audit log.
//!
//! Key design decisions:
//!
//! * **The store is the truth; memory is a cache of it.** At startup the
//!   engine loads every bank, content item and signal into in-memory indexes
//!   (PDQ → [`echotrace_index::MihIndex`] keyed by signal row id; md5, sha256,
//!   url, url_sha256 → exact hash maps; text → a signature list compared with
//!   the text crate's rule). After that it never rebuilds: it tails the
//!   store's monotonic `changes` sequence (background task every
//!   [`EngineConfig::tail_interval`], default 250 ms) and re-reads only the
//!   changed bank or content item. Its own writes are applied synchronously
//!   before the call returns, so "disable" takes effect immediately in this
//!   process and within one poll interval in every other process sharing the
//!   database.
//! * **Activity is checked at query time.** Disabled or quarantined content
//!   and disabled banks stay in the indexes but are filtered out of hits, so
//!   enabling/disabling is a flag flip, not an index operation.
//! * **Allow banks** hold known-benign content. If a submission hits any
//!   allow bank (whatever the bank filter), its block matches are suppressed:
//!   not returned and not recorded; the allow hits are returned and recorded.
//! * **Durable before answering**: a lookup records the submission (signals +
//!   caller context, never bytes), every match (status `pending`), an audit
//!   entry and a `match` outbox event in one transaction before returning.
//! * **Flood guard**: a bank item that matches more than
//!   [`FloodGuardConfig::max_share`] of the last [`FloodGuardConfig::window`]
//!   lookups (once at least `min_sample` were seen) is quarantined: disabled
//!   with a reason, audited, and announced with a `quarantine` outbox event.
//!   The window is per process.
//! * **Outbox**: events are rows; a worker leases due rows, hands them to a
//!   [`Deliverer`] and marks them delivered or reschedules them with
//!   exponential backoff. At-least-once: a crash between delivery and marking
//!   re-delivers after the lease expires.
//!
//! # API for the server
//!
//! * [`Engine::open`] with [`EngineConfig`]; then [`Engine::spawn_change_tailer`]
//!   and [`Engine::spawn_outbox_worker`] with a [`Deliverer`]
//!   (use [`sign_body`] for the `X-Echotrace-Signature` header of webhooks,
//!   [`Engine::list_webhooks`] for targets).
//! * Auth: [`Engine::verify_api_key`] → [`ApiKey`] (with [`Role`]);
//!   [`Role::require`] with an [`Operation`]; [`Engine::verify_user`].
//!   Keys: [`Engine::create_api_key`] (returns the key once),
//!   [`Engine::list_api_keys`], [`Engine::revoke_api_key`].
//! * Banks: [`Engine::create_bank`], [`Engine::list_banks`], [`Engine::get_bank`],
//!   [`Engine::bank_by_name`], [`Engine::update_bank`], [`Engine::delete_bank`]
//!   (content and signals go with the bank; matches and decisions stay, with
//!   a dangling bank id, and the bank's JSON is kept in the audit entry).
//! * Content: [`Engine::add_content`] ([`ContentSource`] bytes / text /
//!   signals), [`Engine::get_content`], [`Engine::list_content`],
//!   [`Engine::update_content`], [`Engine::set_content_enabled`],
//!   [`Engine::release_quarantine`], [`Engine::delete_content`].
//! * Matching: [`Engine::lookup`] ([`LookupRequest`] → [`LookupResponse`]),
//!   [`Engine::lookup_bytes`], [`Engine::hash_bytes`], [`parse_signals`] for
//!   `{"pdq": "<hex>", …}` maps. Raw text (typed, a text upload, a PDF's
//!   text: [`Engine::hash_upload`] → [`HashedUpload`]) goes through
//!   [`Engine::lookup_text`] / [`Engine::lookup_batch_with_text`] with a
//!   [`QueryText`], so each bank's text-equivalence list version applies;
//!   the per-version signing runs on the blocking pool, never on an async
//!   worker.
//! * Review: [`Engine::list_matches`], [`Engine::get_match`], [`Engine::decide`].
//! * Records: [`Engine::audit_log`], [`Engine::list_outbox`].
//! * Errors: [`EngineError`] with [`EngineError::http_status`] / [`EngineError::code`].

mod auth;
mod columns;
pub mod console;
mod convert;
pub mod demo;
mod error;
pub mod exchange;
mod flood;
pub mod import;
pub mod limits;
pub mod ocr;
mod ops;
mod outbox;
mod recorder;
mod rederive;
mod retention;
pub mod robust;
pub mod sighting;
mod signals;
mod snapshot;
pub mod ssrf;
mod state;
mod throttle;
mod types;
pub mod utc;

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use echotrace_store::{NewAudit, Store, WriteTx};
use serde_json::json;

pub use auth::{
    generate_api_key, hash_api_key, hash_password, sign_body, verify_body_signature,
    verify_password, ApiKey, Operation, Role, User, API_KEY_PREFIX,
};
pub use echotrace_store::SweepCounts;
pub use echotrace_store::{Backend, SqliteSync, StoreOptions, DEFAULT_DATABASE_URL};
pub use error::{EngineError, Result};
pub use flood::FloodGuardConfig;
pub use import::{
    import_into_store, is_hash_list_header, parse_hash_list_line, ImportItem, ImportReport,
    IMPORT_BATCH,
};
pub use ops::{Lag, PublicStateSource, StateSource};
pub use outbox::{BoxFuture, Deliverer, DeliveryReport, OutboxConfig};
pub use recorder::RecordPolicy;
pub use rederive::{RederivePage, REDERIVE_PAGE_MAX};
pub use retention::RetentionPolicy;
pub use signals::{
    default_threshold, normalize_signal, normalize_signals, parse_signals, set_video_temp_dir,
    HashedUpload, QueryText, PDF_UNPROCESSABLE, VIDEO_UNDECODABLE,
};
pub use throttle::{Admitted, LoginThrottle, Refusal};
pub use types::*;

use convert::*;
use echotrace_signals::signal::SignalType;
use signals::QueryLists;
use state::{MatchState, TextVariants};

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// `sqlite://path` or `postgres://…` (default `sqlite://./echotrace.db`).
    pub database_url: String,
    pub store: StoreOptions,
    /// How often the change tailer polls the store.
    pub tail_interval: Duration,
    pub flood_guard: FloodGuardConfig,
    pub outbox: OutboxConfig,
    /// Delay before a decision's outbox event may be published (undo window).
    pub decision_undo_delay: Duration,
    /// Program run as `PROGRAM __extract-pdf` to extract uploaded PDFs in an
    /// isolated child process (`serve` sets the `echotrace` binary itself).
    /// `None` (default): PDFs are refused with a 400.
    pub pdf_extractor: Option<std::path::PathBuf>,
    /// Largest raw query text, in bytes, that is signed per equivalence-list
    /// version: one [`Engine::lookup_text`] text, or all raw texts of one
    /// [`Engine::lookup_batch_with_text`] batch together (over it: 413).
    /// Default: the hasher's input limit, what one text upload may be.
    pub max_query_text_bytes: usize,
    /// OCR of images into `ocr_text` (off by default; `serve` turns it on
    /// when Tesseract is installed).
    pub ocr: ocr::OcrConfig,
    /// Which lookups are written to the store (`serve --record`).
    pub record: RecordPolicy,
    /// Local directory for snapshots of the in-memory state: loaded at
    /// start when valid (then only the changes since are read), written by
    /// [`Engine::write_snapshot`]. `None`: always a paged load.
    pub snapshot_dir: Option<std::path::PathBuf>,
    /// This process's name among the processes sharing the database (lease
    /// holder, flood-guard counter rows). Default: host, pid and a random
    /// suffix.
    pub replica_id: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            database_url: DEFAULT_DATABASE_URL.to_string(),
            store: StoreOptions::default(),
            tail_interval: Duration::from_millis(250),
            flood_guard: FloodGuardConfig::default(),
            outbox: OutboxConfig::default(),
            decision_undo_delay: Duration::ZERO,
            pdf_extractor: None,
            max_query_text_bytes: usize::try_from(
                echotrace_signals::decode::DecodeLimits::default().max_file_bytes,
            )
            .unwrap_or(usize::MAX),
            ocr: ocr::OcrConfig::default(),
            record: RecordPolicy::All,
            snapshot_dir: None,
            replica_id: ops::default_replica_id(),
        }
    }
}

impl EngineConfig {
    /// Defaults with the given database URL.
    pub fn with_database_url(url: impl Into<String>) -> Self {
        EngineConfig {
            database_url: url.into(),
            ..EngineConfig::default()
        }
    }
}

struct Inner {
    store: Store,
    config: EngineConfig,
    state: RwLock<MatchState>,
    /// Highest change id applied to `state`; the async mutex serialises syncs.
    cursor: tokio::sync::Mutex<i64>,
    /// The same, readable without waiting for a sync (`/readyz` lag).
    applied: AtomicI64,
    flood: Arc<flood::FloodGuard>,
    /// Where the state came from at start.
    source: StateSource,
    /// Change id of the last snapshot written or loaded.
    snapshotted: AtomicI64,
    /// Leases this process holds.
    leases: ops::Leases,
    /// Group-commit writer of lookup records.
    recorder: recorder::Recorder,
    /// Tesseract and its bounded pool (see [`ocr`]).
    ocr: Arc<ocr::OcrService>,
    /// The last change id applied, published after every sync that applied
    /// something (the feed builder waits on it).
    applied_tx: tokio::sync::watch::Sender<i64>,
}

/// The matching service. Cheap to clone (an `Arc` inside); share one per process.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// Fuzzing entry point of the state-snapshot reader (`fuzz/`): read bytes
/// as a snapshot; `Err` carries the refusal. Never panics.
#[doc(hidden)]
pub fn fuzz_read_snapshot(bytes: &[u8]) -> std::result::Result<(), String> {
    snapshot::fuzz_read(bytes)
}

/// Run CPU-bound work (decoding, ffmpeg, PDF extraction, text signing) on
/// tokio's blocking pool, so it never stalls an async worker.
async fn off_runtime<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| EngineError::Internal(format!("hashing task failed: {e}")))?
}

fn lock_err<T>(_: T) -> EngineError {
    EngineError::Internal("engine state lock poisoned".into())
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

/// The rows of a `content_range` change as its transaction wrote them
/// (see [`Engine::sync_changes_with`]).
pub(crate) struct WrittenRange {
    pub(crate) change_id: i64,
    pub(crate) rows: Vec<(echotrace_store::ContentRow, Vec<echotrace_store::SignalRow>)>,
}

impl Engine {
    /// Connect to the store (running migrations) and load the indexes.
    pub async fn open(config: EngineConfig) -> Result<Engine> {
        let store = Store::open_with(&config.database_url, config.store.clone()).await?;
        Engine::with_store(store, config).await
    }

    /// Build an engine on an already-open store: from the newest valid
    /// snapshot in [`EngineConfig::snapshot_dir`] plus the changes since, or
    /// else from a paged load (see [`Engine::state_source`]).
    pub async fn with_store(store: Store, config: EngineConfig) -> Result<Engine> {
        let (state, cursor, source) = ops::open_state(&store, &config).await?;
        let engine = Engine::assemble(store, config, cursor, state, source).await;
        // Catch up with everything committed since the snapshot (or since
        // the paged load began; re-applying is idempotent).
        engine.sync_changes().await?;
        Ok(engine)
    }

    /// An engine over `state`, which reflects the store up to change `cursor`.
    async fn assemble(
        store: Store,
        config: EngineConfig,
        cursor: i64,
        state: MatchState,
        source: StateSource,
    ) -> Engine {
        let ocr_config = config.ocr.clone();
        let ocr = tokio::task::spawn_blocking(move || ocr::OcrService::start(&ocr_config))
            .await
            .unwrap_or_else(|_| ocr::OcrService::start(&ocr::OcrConfig::default()));
        let flood = Arc::new(flood::FloodGuard::new(
            config.flood_guard.clone(),
            config.replica_id.clone(),
        ));
        let recorder = recorder::Recorder::new(store.clone(), flood.clone());
        Engine {
            inner: Arc::new(Inner {
                store,
                config,
                state: RwLock::new(state),
                cursor: tokio::sync::Mutex::new(cursor),
                applied: AtomicI64::new(cursor),
                flood,
                snapshotted: AtomicI64::new(match &source {
                    StateSource::Snapshot { change_id, .. } => *change_id,
                    _ => -1,
                }),
                source,
                leases: ops::Leases::default(),
                recorder,
                ocr: Arc::new(ocr),
                applied_tx: tokio::sync::watch::channel(cursor).0,
            }),
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The configuration in use.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Apply every change committed since the last sync to the in-memory
    /// indexes. Returns how many change rows were applied.
    pub async fn sync_changes(&self) -> Result<usize> {
        self.sync_changes_with(None).await
    }

    /// [`Engine::sync_changes`], taking the rows of one `content_range`
    /// change this process has just committed from memory instead of
    /// re-reading the range (only if the tailer has not applied it yet; the
    /// rows are exactly what the transaction wrote, and any later change to
    /// them has a later change id).
    pub(crate) async fn sync_changes_with(
        &self,
        mut written: Option<WrittenRange>,
    ) -> Result<usize> {
        let mut cursor = self.inner.cursor.lock().await;
        let mut applied = 0usize;
        loop {
            let changes = self.inner.store.changes_after(*cursor, 1000).await?;
            if changes.is_empty() {
                break;
            }
            for change in &changes {
                match change.entity.as_str() {
                    "bank" => {
                        let row = self.inner.store.get_bank(change.entity_id).await?;
                        let matching = self.inner.store.bank_matching(change.entity_id).await?;
                        let reapply = {
                            let mut st = self.inner.state.write().map_err(lock_err)?;
                            st.apply_bank(change.entity_id, row.as_ref());
                            st.apply_bank_matching(
                                change.entity_id,
                                matching.map(|m| robust::MatchingSettings::from_stored(&m)),
                            )
                        };
                        if reapply {
                            self.reapply_bank_derived(change.entity_id).await?;
                        }
                    }
                    "content" => {
                        let row = self.inner.store.get_content(change.entity_id).await?;
                        let signals = match &row {
                            Some(_) => {
                                self.inner
                                    .store
                                    .signals_of_content(change.entity_id)
                                    .await?
                            }
                            None => Vec::new(),
                        };
                        let derived = match &row {
                            Some(_) => {
                                self.inner
                                    .store
                                    .derived_of_content(change.entity_id)
                                    .await?
                            }
                            None => Vec::new(),
                        };
                        // Text signed under a list version this process has
                        // not seen yet (normally its bank change came first).
                        let missing = {
                            let st = self.inner.state.read().map_err(lock_err)?;
                            st.missing_lists(&signals)
                        };
                        let mut lists = Vec::new();
                        for v in missing {
                            if let Some(l) = self.inner.store.text_equivalences(v).await? {
                                lists.push(l);
                            }
                        }
                        let mut st = self.inner.state.write().map_err(lock_err)?;
                        for l in &lists {
                            st.insert_list(l.id, &l.body);
                        }
                        st.apply_content(change.entity_id, row.as_ref(), &signals);
                        st.apply_derived(change.entity_id, &derived);
                    }
                    echotrace_store::CONTENT_RANGE_ENTITY
                        if written.as_ref().is_some_and(|w| w.change_id == change.id) =>
                    {
                        if let Some(w) = written.take() {
                            let mut st = self.inner.state.write().map_err(lock_err)?;
                            for (row, signals) in &w.rows {
                                st.apply_content(row.id, Some(row), signals);
                            }
                        }
                    }
                    echotrace_store::CONTENT_RANGE_ENTITY => {
                        // A bulk-import batch (see `import`): re-read the range.
                        match echotrace_store::parse_content_range_op(&change.op) {
                            Some(last) => self.apply_content_range(change.entity_id, last).await?,
                            None => {
                                tracing::warn!(op = %change.op, "malformed content_range change ignored")
                            }
                        }
                    }
                    other => tracing::warn!(entity = other, "unknown change entity ignored"),
                }
                *cursor = change.id;
                self.inner
                    .applied
                    .store(change.id, std::sync::atomic::Ordering::Relaxed);
                applied += 1;
            }
        }
        if applied > 0 {
            self.inner.applied_tx.send_replace(*cursor);
        }
        Ok(applied)
    }

    /// A receiver that changes whenever this process applied new changes
    /// (its value is the last change id applied).
    pub fn subscribe_changes(&self) -> tokio::sync::watch::Receiver<i64> {
        self.inner.applied_tx.subscribe()
    }

    /// Spawn the background task that tails the change sequence. Needs a
    /// Tokio runtime; stops when the returned handle is aborted.
    pub fn spawn_change_tailer(&self) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        let every = self.inner.config.tail_interval;
        tokio::spawn(async move {
            loop {
                if let Err(e) = engine.sync_changes().await {
                    tracing::warn!(error = %e, "change tailer: sync failed; retrying");
                }
                tokio::time::sleep(every).await;
            }
        })
    }

    /// Spawn the outbox delivery worker. It delivers only while this
    /// process holds the `outbox` lease, so of many processes on one
    /// database exactly one delivers (see [`Engine::spawn_leased`]). Stops
    /// when the handle is aborted.
    pub fn spawn_outbox_worker(
        &self,
        deliverer: Arc<dyn Deliverer>,
    ) -> tokio::task::JoinHandle<()> {
        let every = self.inner.config.outbox.poll_interval;
        self.spawn_leased(
            "outbox",
            every,
            Arc::new(move |engine: Engine| {
                let deliverer = deliverer.clone();
                Box::pin(async move {
                    let r = engine.deliver_due(deliverer.as_ref()).await?;
                    if r.attempted > 0 {
                        tracing::debug!(?r, "outbox pass");
                    }
                    // More may be due right away.
                    Ok(r.attempted > 0)
                })
            }),
        )
    }

    /// Commit a write transaction and apply the resulting changes locally.
    async fn commit_and_sync(&self, tx: WriteTx) -> Result<()> {
        tx.commit().await?;
        self.sync_changes().await?;
        Ok(())
    }

    // ----- banks -------------------------------------------------------

    /// Create a bank. Names are unique (409 on duplicates).
    pub async fn create_bank(&self, actor: &Actor, new: NewBank) -> Result<Bank> {
        let name = new.name.as_str();
        limits::validate_bank_name(name)?;
        limits::check_len("description", &new.description, limits::MAX_NOTE_BYTES)?;
        signals::validate_thresholds(&new.thresholds)?;
        let equivalences = new.text_equivalences.as_deref().unwrap_or("");
        signals::parse_equivalences(equivalences)?;
        let mut tx = self.inner.store.write().await?;
        let row = tx
            .insert_bank(
                name,
                new.kind.as_str(),
                &new.description,
                &to_json(&new.thresholds),
            )
            .await?;
        let row = if equivalences.trim().is_empty() {
            row
        } else {
            set_equivalences(&mut tx, row.id, equivalences).await?
        };
        let bank = bank_from_row(&row)?;
        tx.record_change("bank", row.id, "upsert").await?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "bank.create",
            target: &format!("bank:{}", row.id),
            before: None,
            after: Some(to_json(&bank)),
        })
        .await?;
        self.commit_and_sync(tx).await?;
        Ok(bank)
    }

    pub async fn list_banks(&self) -> Result<Vec<Bank>> {
        self.inner
            .store
            .list_banks()
            .await?
            .iter()
            .map(|r| self.bank_with_counts(r))
            .collect()
    }

    pub async fn get_bank(&self, id: BankId) -> Result<Bank> {
        match self.inner.store.get_bank(id).await? {
            Some(r) => self.bank_with_counts(&r),
            None => Err(EngineError::NotFound(format!("bank {id}"))),
        }
    }

    pub async fn bank_by_name(&self, name: &str) -> Result<Bank> {
        match self.inner.store.get_bank_by_name(name).await? {
            Some(r) => self.bank_with_counts(&r),
            None => Err(EngineError::NotFound(format!("bank {name:?}"))),
        }
    }

    /// A bank row as an API bank, with the in-memory count of its text
    /// items signed under an older equivalence list.
    fn bank_with_counts(&self, row: &echotrace_store::BankRow) -> Result<Bank> {
        let mut bank = bank_from_row(row)?;
        let st = self.inner.state.read().map_err(lock_err)?;
        bank.text_items_older_list = st.text_items_older_list(row.id);
        bank.matching = st.bank_matching(row.id);
        bank.held_originals = st.held_originals(row.id);
        bank.refining = bank.matching.refines(bank.held_originals);
        Ok(bank)
    }

    /// Index a bank's stored derived hashes again under its current
    /// settings (a channel turned off drops its records from memory; turned
    /// on, they come back from the stored rows), page by page.
    async fn reapply_bank_derived(&self, bank_id: BankId) -> Result<()> {
        let mut after = 0;
        loop {
            let page = self
                .inner
                .store
                .derived_page_of_bank(bank_id, after, 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.content_id;
            let mut st = self.inner.state.write().map_err(lock_err)?;
            for rows in page.chunk_by(|a, b| a.content_id == b.content_id) {
                if let Some(r) = rows.first() {
                    st.apply_derived(r.content_id, rows);
                }
            }
        }
        Ok(())
    }

    /// Set a bank's robust-matching settings (`robust` module): effective
    /// for lookups in this process when the call returns, and in others
    /// through the bank change.
    pub async fn set_bank_matching(
        &self,
        actor: &Actor,
        id: BankId,
        settings: robust::MatchingSettings,
    ) -> Result<Bank> {
        let mut tx = self.inner.store.write().await?;
        let Some(row) = tx.get_bank(id).await? else {
            return Err(EngineError::NotFound(format!("bank {id}")));
        };
        let before = tx
            .bank_matching(id)
            .await?
            .map(|m| robust::MatchingSettings::from_stored(&m))
            .unwrap_or_default();
        tx.set_bank_matching(id, &settings.to_stored()).await?;
        tx.record_change("bank", id, "upsert").await?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "bank.matching",
            target: &format!("bank:{id}"),
            before: Some(to_json(&before)),
            after: Some(to_json(&settings)),
        })
        .await?;
        self.commit_and_sync(tx).await?;
        self.bank_with_counts(&row)
    }

    /// A bank's matching settings and file-added originals as the
    /// database holds them (for callers without match indexes, such as
    /// `echotrace bank matching`; a serving engine's [`Bank`] reports the
    /// same from memory).
    pub async fn stored_bank_matching(
        &self,
        id: BankId,
    ) -> Result<(robust::MatchingSettings, u64)> {
        let Some(json) = self.inner.store.bank_matching(id).await? else {
            return Err(EngineError::NotFound(format!("bank {id}")));
        };
        let held = self.inner.store.derived_pdq_items_of_bank(id).await?;
        Ok((
            robust::MatchingSettings::from_stored(&json),
            u64::try_from(held).unwrap_or(0),
        ))
    }

    /// Enable/disable a bank, change its description, thresholds or text
    /// equivalence list (a changed list becomes a new version; items signed
    /// under older versions keep matching under theirs).
    pub async fn update_bank(&self, actor: &Actor, id: BankId, update: BankUpdate) -> Result<Bank> {
        if let Some(d) = &update.description {
            limits::check_len("description", d, limits::MAX_NOTE_BYTES)?;
        }
        if let Some(t) = &update.thresholds {
            signals::validate_thresholds(t)?;
        }
        if let Some(body) = &update.text_equivalences {
            signals::parse_equivalences(body)?;
        }
        let mut tx = self.inner.store.write().await?;
        let Some(before_row) = tx.get_bank(id).await? else {
            return Err(EngineError::NotFound(format!("bank {id}")));
        };
        let before = bank_from_row(&before_row)?;
        let enabled = update.enabled.unwrap_or(before.enabled);
        let description = update
            .description
            .unwrap_or_else(|| before.description.clone());
        let thresholds = update
            .thresholds
            .unwrap_or_else(|| before.thresholds.clone());
        let row = tx
            .update_bank(id, enabled, &description, &to_json(&thresholds))
            .await?;
        let row = match update.text_equivalences.as_deref() {
            Some(body) if body.trim().is_empty() && row.text_equivalences_id.is_some() => {
                tx.set_bank_text_equivalences(id, None).await?;
                tx.get_bank(id).await?.unwrap_or(row)
            }
            Some(body)
                if !body.trim().is_empty() && row.text_equivalences.as_deref() != Some(body) =>
            {
                set_equivalences(&mut tx, id, body).await?
            }
            _ => row,
        };
        let after = bank_from_row(&row)?;
        tx.record_change("bank", id, "upsert").await?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "bank.update",
            target: &format!("bank:{id}"),
            before: Some(to_json(&before)),
            after: Some(to_json(&after)),
        })
        .await?;
        self.commit_and_sync(tx).await?;
        self.bank_with_counts(&row)
    }

    /// Delete a bank with all its content and signals in one transaction.
    /// Every content item is removed through the same path as
    /// [`Engine::delete_content`] (so every process's indexes drop it
    /// incrementally), then the bank row; its name is free again. Matches
    /// and decisions are history and stay, keeping the deleted bank's id;
    /// the `bank.delete` audit entry holds the bank (name, kind, settings)
    /// and how many content items went with it.
    pub async fn delete_bank(&self, actor: &Actor, id: BankId) -> Result<()> {
        let mut tx = self.inner.store.write().await?;
        let Some(before_row) = tx.get_bank(id).await? else {
            return Err(EngineError::NotFound(format!("bank {id}")));
        };
        let before = bank_from_row(&before_row)?;
        let content_ids = tx.content_ids_of_bank(id).await?;
        for content_id in &content_ids {
            delete_content_in(&mut tx, *content_id).await?;
        }
        tx.delete_bank(id).await?;
        tx.record_change("bank", id, "delete").await?;
        let mut before_json = serde_json::to_value(&before).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(map) = &mut before_json {
            map.insert("content_deleted".into(), content_ids.len().into());
        }
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "bank.delete",
            target: &format!("bank:{id}"),
            before: Some(before_json.to_string()),
            after: None,
        })
        .await?;
        self.commit_and_sync(tx).await?;
        Ok(())
    }

    // ----- content -----------------------------------------------------

    /// Hash raw bytes into signals (image → pdq + md5 + sha256; UTF-8 text
    /// → text_minhash + md5 + sha256; video → vpdq at one frame a second +
    /// md5 + sha256, when ffmpeg is installed; PDF → text_minhash + one pdq
    /// per embedded image + md5 + sha256, when
    /// [`EngineConfig::pdf_extractor`] is set). Blocking: call it from
    /// `spawn_blocking`. Bytes are not kept. (`add_content` hashes video
    /// bank entries at every frame instead.)
    pub fn hash_bytes(&self, bytes: &[u8]) -> Result<Vec<SignalValue>> {
        signals::hash_bytes_using(
            bytes,
            signals::VideoSampling::Query,
            self.inner.config.pdf_extractor.as_deref(),
            None,
        )
    }

    /// [`Engine::hash_bytes`] for a lookup that is to honour equivalence
    /// lists: the signals plus the text of a text upload (the bytes
    /// themselves, not copied) or of a PDF (its extracted page text), to
    /// hand to [`Engine::lookup_text`]. Blocking, like `hash_bytes`.
    ///
    /// With OCR on, an image that passes the text-presence test comes back
    /// with [`HashedUpload::ocr`] set: hand it to [`Engine::finish_ocr`]
    /// (after releasing any hashing permit) to add its `ocr_text`.
    pub fn hash_upload(&self, bytes: bytes::Bytes) -> Result<HashedUpload> {
        signals::hash_upload(
            bytes,
            signals::VideoSampling::Query,
            self.inner.config.pdf_extractor.as_deref(),
            self.ocr_gate(),
        )
    }

    /// The OCR gate for lookups (`None` when OCR is off).
    fn ocr_gate(&self) -> Option<echotrace_signals::content::OcrGate> {
        self.inner
            .ocr
            .enabled()
            .then_some(echotrace_signals::content::OcrGate::TextPresence)
    }

    /// Whether OCR is on, and which Tesseract (or why not).
    pub fn ocr_status(&self) -> ocr::OcrStatus {
        self.inner.ocr.status().clone()
    }

    /// Run the pending OCR of a hashed upload in the engine's bounded OCR
    /// pool: adds its `ocr_text` signal (when enough words were read) and,
    /// if the upload has no other text, keeps the OCR text as the query
    /// text so banks' equivalence lists apply. Returns what OCR read (for
    /// the debugger). An OCR failure only means no `ocr_text`.
    pub async fn finish_ocr(&self, hashed: &mut HashedUpload) -> Option<ocr::OcrReading> {
        let pending = hashed.ocr.take()?;
        let out = self.inner.ocr.read(pending).await?;
        if let Some(signal) = self.inner.ocr.signal(&out, None) {
            hashed.signals.push(signal);
            if hashed.text.is_none() {
                hashed.text = Some(QueryText::from(out.text.clone()));
            }
        }
        Some(out)
    }

    /// Read the text of `bytes` by OCR — an image whatever the presence
    /// test says, a video's key frames, a scanned PDF's pages — in the
    /// engine's OCR pool, for the console's side-by-side view of an
    /// `ocr_text` match. Nothing is stored. `Ok(None)` when OCR is off or
    /// nothing could be read.
    pub async fn read_text(&self, bytes: bytes::Bytes) -> Result<Option<ocr::OcrReading>> {
        if !self.inner.ocr.enabled() {
            return Ok(None);
        }
        let pdf = self.inner.config.pdf_extractor.clone();
        let hashed = off_runtime(move || {
            signals::hash_upload(
                bytes,
                signals::VideoSampling::Query,
                pdf.as_deref(),
                Some(echotrace_signals::content::OcrGate::Always),
            )
        })
        .await?;
        match hashed.ocr {
            Some(pending) => Ok(self.inner.ocr.read(pending).await),
            None => Ok(None),
        }
    }

    /// [`Engine::hash_upload`] for typed text: hashed as text whatever its
    /// first bytes look like (no content sniffing). Blocking.
    pub fn hash_text(&self, text: String) -> Result<HashedUpload> {
        signals::hash_typed_text(text)
    }

    /// Hash a file for a bank entry on a caller's own bounded pool: the
    /// signals plus, for images and videos, the local derived hashes of
    /// robust matching and (OCR on) the prepared OCR input, which
    /// [`Engine::add_content`] reads in the OCR pool. Blocking.
    pub fn hash_bank_file(&self, bytes: &[u8]) -> Result<HashedFile> {
        // A bank entry: videos at every frame, like `add_content`'s bytes
        // (PostgreSQL indexes signal values by hash, migration 0012, so an
        // every-frame vPDQ value of tens of KiB stores fine).
        let sampling = signals::VideoSampling::BankEntry;
        let pdf = self.inner.config.pdf_extractor.as_deref();
        let h = signals::hash_bank_entry(bytes, sampling, pdf, None, self.bank_ocr_gate())?;
        Ok(HashedFile {
            signals: h.signals,
            derived: h.derived,
            ocr: h.ocr,
            list: None,
        })
    }

    /// Hash bytes as a bank entry of `bank_id` (text under the bank's
    /// current equivalence list, a video at every frame, derived hashes of
    /// images and videos, OCR input prepared but not read), for a caller
    /// that holds a hashing permit only for this part; hand the result to
    /// [`Engine::add_content`] as [`ContentSource::HashedFile`], which
    /// reads the OCR in the engine's own pool.
    pub async fn hash_bank_bytes(&self, bank_id: BankId, bytes: Vec<u8>) -> Result<HashedFile> {
        let list = self.bank_list(bank_id).await?;
        self.hash_bank_entry(bytes, list).await
    }

    async fn hash_bank_entry(
        &self,
        bytes: Vec<u8>,
        list: Option<(i64, Arc<echotrace_signals::text::EquivalenceList>)>,
    ) -> Result<HashedFile> {
        let pdf = self.inner.config.pdf_extractor.clone();
        let gate = self.bank_ocr_gate();
        let eq = list.as_ref().map(|(_, l)| l.clone());
        let h = off_runtime(move || {
            signals::hash_bank_entry(
                &bytes,
                signals::VideoSampling::BankEntry,
                pdf.as_deref(),
                eq.as_deref(),
                gate,
            )
        })
        .await?;
        Ok(HashedFile {
            signals: h.signals,
            derived: h.derived,
            ocr: h.ocr,
            list,
        })
    }

    /// The OCR gate for bank entries (`None` when OCR is off): bank images
    /// are OCRed whatever the presence test says — a missed card costs
    /// recall, an extra OCR only time.
    fn bank_ocr_gate(&self) -> Option<echotrace_signals::content::OcrGate> {
        self.inner
            .ocr
            .enabled()
            .then_some(echotrace_signals::content::OcrGate::Always)
    }

    /// Read a bank entry's pending OCR (in the OCR pool, both readings)
    /// and insert its `ocr_text` signals, signed under the bank's `list`,
    /// before the two digest signals.
    async fn add_bank_ocr(
        &self,
        values: &mut Vec<SignalValue>,
        pending: Option<ocr::PendingOcr>,
        list: Option<Arc<echotrace_signals::text::EquivalenceList>>,
    ) -> Result<()> {
        let Some(pending) = pending else {
            return Ok(());
        };
        let outs = self.inner.ocr.read_bank(pending).await;
        if outs.is_empty() {
            return Ok(());
        }
        let ocr = self.inner.ocr.clone();
        let signals = off_runtime(move || {
            Ok(outs
                .iter()
                .filter_map(|o| ocr.signal(o, list.as_deref()))
                .collect::<Vec<_>>())
        })
        .await?;
        let at = values.len().saturating_sub(2);
        values.splice(at..at, signals);
        Ok(())
    }

    /// Add a content item with its signals to a bank, or, when the bank
    /// already holds them, the item that holds them
    /// ([`Engine::add_item`]).
    pub async fn add_content(
        &self,
        actor: &Actor,
        bank_id: BankId,
        new: NewContent,
    ) -> Result<Content> {
        Ok(self.add_item(actor, bank_id, new).await?.content)
    }

    /// Add a content item with its signals to a bank, unless the bank
    /// already holds them: then nothing is written and the answer is the
    /// item holding them, `already_held` (as `bank import` skips a held
    /// line). Held is decided as an import decides it — the bank holds
    /// any of the item's signals, in any item, enabled or not — over
    /// [`held_keys`]: for a file, text or URL, neither OCR text (two
    /// pictures may carry the same words) nor, for text signed under an
    /// equivalence list, its digests (the same bytes re-added under a new
    /// list are a new signature). A file whose plain signals are held is
    /// held whatever derived hashes it would add. The check and the write
    /// share one transaction under the bank's add lock, so adds and
    /// imports of one bank running at once add each signal once.
    pub async fn add_item(&self, actor: &Actor, bank_id: BankId, new: NewContent) -> Result<Added> {
        let ready_made = matches!(new.source, ContentSource::Signals(_));
        limits::check_len("note", &new.note, limits::MAX_NOTE_BYTES)?;
        let labels = clean_labels(new.labels)?;
        // Text is signed under the bank's current equivalence list, and
        // the version is recorded with the signal (ready-made signals: none).
        let bank_list = self.bank_list(bank_id).await?;
        let list = bank_list.as_ref().map(|(_, l)| l.clone());
        let list_version = bank_list.as_ref().map(|(v, _)| *v);
        // Images and videos added as files also get local derived hashes
        // (robust matching); they are stored apart from the signals.
        let mut derived: robust::DerivedValues = Vec::new();
        let (values, list_version) = match new.source {
            ContentSource::Bytes(bytes) => {
                let h = self.hash_bank_entry(bytes, bank_list).await?;
                derived = h.derived;
                let mut values = h.signals;
                let version = h.list.as_ref().map(|(v, _)| *v);
                self.add_bank_ocr(&mut values, h.ocr, h.list.map(|(_, l)| l))
                    .await?;
                (values, version)
            }
            ContentSource::Text(text) => (
                off_runtime(move || signals::hash_text_with_list(&text, list.as_deref())).await?,
                list_version,
            ),
            ContentSource::Signals(list) => (normalize_signals(&list)?, None),
            ContentSource::HashedFile(h) => {
                derived = h.derived;
                let mut values = normalize_signals(&h.signals)?;
                // Text in it was signed under `h.list`; OCR text is too.
                let version = h.list.as_ref().map(|(v, _)| *v);
                self.add_bank_ocr(&mut values, h.ocr, h.list.map(|(_, l)| l))
                    .await?;
                (values, version)
            }
        };
        if values.is_empty() {
            return Err(EngineError::InvalidInput("content has no signals".into()));
        }
        let mut tx = self.inner.store.write().await?;
        if tx.get_bank(bank_id).await?.is_none() {
            return Err(EngineError::NotFound(format!("bank {bank_id}")));
        }
        let values = dedup_signals(values);
        let keys = held_keys(&values, ready_made, list_version.is_some());
        let holders = tx.bank_signal_holders(bank_id, &keys).await?;
        if let Some(&held) = holders.values().min() {
            let derived_added = self
                .give_derived(&mut tx, actor, bank_id, held, &values, derived)
                .await?;
            if derived_added {
                self.commit_and_sync(tx).await?;
            } else {
                drop(tx);
            }
            return Ok(Added {
                content: self.get_content(held).await?,
                already_held: true,
                derived_added,
            });
        }
        let row = tx
            .insert_content(bank_id, true, &to_json(&labels), &new.note)
            .await?;
        let mut stored = Vec::with_capacity(values.len());
        for v in values {
            let version = list_version.filter(|_| v.signal_type.is_text());
            stored.push(
                tx.insert_signal_signed_with(
                    row.id,
                    bank_id,
                    v.signal_type.as_str(),
                    &v.value,
                    version,
                )
                .await?,
            );
        }
        let settings = tx
            .bank_matching(bank_id)
            .await?
            .map(|m| robust::MatchingSettings::from_stored(&m))
            .unwrap_or_default();
        for (kind, value) in &robust::stored_values(derived, settings) {
            tx.put_derived(row.id, bank_id, kind, value).await?;
        }
        let content = content_from_rows(&row, &stored)?;
        tx.record_change("content", row.id, "upsert").await?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "content.add",
            target: &format!("content:{}", row.id),
            before: None,
            after: Some(to_json(&content)),
        })
        .await?;
        self.commit_and_sync(tx).await?;
        Ok(Added {
            content,
            already_held: false,
            derived_added: false,
        })
    }

    /// A file added to a bank that already holds it gives the holding item
    /// its derived hashes when the item lacks a kind the file brings — a
    /// hash-only item (imported from an exchange, added as signals) has
    /// none, an item stored before a channel existed lacks that one — and
    /// is the same picture: its stored PDQ / vPDQ are the file's. Each kind
    /// the file brings is replaced, as `rederive` does from a retained
    /// original: adding the file again is how an item without one gains
    /// the robust channels (docs/ROBUST.md, "Upgrading"). One change and
    /// one audit entry (`content.derive`); `true` when it wrote, in `tx`.
    async fn give_derived(
        &self,
        tx: &mut echotrace_store::WriteTx,
        actor: &Actor,
        bank_id: BankId,
        held: ContentId,
        values: &[SignalValue],
        derived: robust::DerivedValues,
    ) -> Result<bool> {
        if derived.is_empty() {
            return Ok(false);
        }
        let stored = self.inner.store.signals_of_content(held).await?;
        let stored_has = |v: &SignalValue| {
            stored
                .iter()
                .any(|s| s.signal_type == v.signal_type.as_str() && s.value == v.value)
        };
        if !same_picture(values, stored_has) {
            return Ok(false);
        }
        let settings = tx
            .bank_matching(bank_id)
            .await?
            .map(|m| robust::MatchingSettings::from_stored(&m))
            .unwrap_or_default();
        let values = robust::stored_values(derived, settings);
        let have: std::collections::HashSet<String> = self
            .inner
            .store
            .derived_of_content(held)
            .await?
            .into_iter()
            .map(|r| r.kind)
            .collect();
        if values.iter().all(|(kind, _)| have.contains(*kind)) {
            return Ok(false);
        }
        for (kind, value) in &values {
            tx.put_derived(held, bank_id, kind, value).await?;
        }
        tx.record_change("content", held, "upsert").await?;
        let kinds: Vec<&str> = values.iter().map(|(k, _)| *k).collect();
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "content.derive",
            target: &format!("content:{held}"),
            before: None,
            after: Some(serde_json::json!({ "derived": kinds }).to_string()),
        })
        .await?;
        Ok(true)
    }

    pub async fn get_content(&self, id: ContentId) -> Result<Content> {
        let Some(row) = self.inner.store.get_content(id).await? else {
            return Err(EngineError::NotFound(format!("content {id}")));
        };
        let sigs = self.inner.store.signals_of_content(id).await?;
        content_from_rows(&row, &sigs)
    }

    /// The derived channels an item holds stored hashes of (`window`,
    /// `region`, `part`; a video's border-cropped vPDQ is `region`), in
    /// that order: empty for a hash-only item, and without `part` for an
    /// image added before the part channel (or while its bank had `part`
    /// off).
    pub async fn derived_channels(&self, id: ContentId) -> Result<Vec<&'static str>> {
        let rows = self.inner.store.derived_of_content(id).await?;
        Ok(robust::channels_of_rows(&rows))
    }

    /// Content of a bank in id order, starting after `after_id`.
    pub async fn list_content(
        &self,
        bank_id: BankId,
        after_id: ContentId,
        limit: u32,
    ) -> Result<Vec<Content>> {
        let limit = i64::from(limit.clamp(1, 1000));
        let rows = self
            .inner
            .store
            .list_content(bank_id, after_id, limit)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let sigs = self.inner.store.signals_of_content(r.id).await?;
            out.push(content_from_rows(&r, &sigs)?);
        }
        Ok(out)
    }

    async fn modify_content<F>(
        &self,
        actor: &Actor,
        id: ContentId,
        action: &str,
        f: F,
    ) -> Result<Content>
    where
        F: FnOnce(&mut echotrace_store::ContentRow),
    {
        let mut tx = self.inner.store.write().await?;
        let Some(before_row) = tx.get_content(id).await? else {
            return Err(EngineError::NotFound(format!("content {id}")));
        };
        let sigs = self.inner.store.signals_of_content(id).await?;
        let before = content_from_rows(&before_row, &sigs)?;
        let mut next = before_row.clone();
        f(&mut next);
        let row = tx.update_content(&next).await?;
        let after = content_from_rows(&row, &sigs)?;
        tx.record_change("content", id, "upsert").await?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action,
            target: &format!("content:{id}"),
            before: Some(to_json(&before)),
            after: Some(to_json(&after)),
        })
        .await?;
        self.commit_and_sync(tx).await?;
        Ok(after)
    }

    /// Enable or disable a content item; effective for lookups in this
    /// process when the call returns.
    pub async fn set_content_enabled(
        &self,
        actor: &Actor,
        id: ContentId,
        enabled: bool,
    ) -> Result<Content> {
        let action = if enabled {
            "content.enable"
        } else {
            "content.disable"
        };
        self.modify_content(actor, id, action, |c| c.enabled = enabled)
            .await
    }

    /// Change labels, note or enabled flag.
    pub async fn update_content(
        &self,
        actor: &Actor,
        id: ContentId,
        update: ContentUpdate,
    ) -> Result<Content> {
        let labels = match update.labels {
            Some(l) => Some(to_json(&clean_labels(l)?)),
            None => None,
        };
        if let Some(n) = &update.note {
            limits::check_len("note", n, limits::MAX_NOTE_BYTES)?;
        }
        self.modify_content(actor, id, "content.update", move |c| {
            if let Some(e) = update.enabled {
                c.enabled = e;
            }
            if let Some(l) = labels {
                c.labels = l;
            }
            if let Some(n) = update.note {
                c.note = n;
            }
        })
        .await
    }

    /// Lift a quarantine after review (the item becomes matchable again if enabled).
    pub async fn release_quarantine(&self, actor: &Actor, id: ContentId) -> Result<Content> {
        let content = self
            .modify_content(actor, id, "content.release_quarantine", |c| {
                c.quarantined = false;
                c.quarantine_reason = None;
                c.quarantined_at = None;
            })
            .await?;
        // The flood guard starts afresh for it.
        self.inner
            .store
            .delete_counters(&[flood::item_counter(id)])
            .await?;
        Ok(content)
    }

    /// Delete a content item and its signals.
    pub async fn delete_content(&self, actor: &Actor, id: ContentId) -> Result<()> {
        let before = self.get_content(id).await?;
        let mut tx = self.inner.store.write().await?;
        delete_content_in(&mut tx, id).await?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "content.delete",
            target: &format!("content:{id}"),
            before: Some(to_json(&before)),
            after: None,
        })
        .await?;
        self.commit_and_sync(tx).await
    }

    // ----- lookup ------------------------------------------------------

    /// Hash bytes (off the async runtime; the upload is moved, not copied),
    /// then [`Engine::lookup`] — or, when they are text or a PDF,
    /// [`Engine::lookup_text`] with their text, so banks' equivalence lists
    /// apply. The hashing and the per-list signing run in one blocking task.
    pub async fn lookup_bytes(
        &self,
        actor: &Actor,
        bytes: impl Into<bytes::Bytes>,
        banks: Option<Vec<BankId>>,
        context: SubmissionContext,
    ) -> Result<LookupResponse> {
        let bytes = bytes.into();
        let lists = self.text_lists(banks.as_deref())?;
        let pdf = self.inner.config.pdf_extractor.clone();
        let gate = self.ocr_gate();
        let mut hashed = off_runtime(move || {
            signals::hash_upload(bytes, signals::VideoSampling::Query, pdf.as_deref(), gate)
        })
        .await?;
        self.finish_ocr(&mut hashed).await;
        let (signals, variants, robust) = off_runtime(move || {
            let variants = hashed.text.as_ref().and_then(|t| {
                let base = signals::text_minhash_of(&hashed.signals);
                signals::sign_variants(t.as_str(), &lists, base)
            });
            Ok((hashed.signals, variants, hashed.robust))
        })
        .await?;
        let req = LookupRequest {
            signals,
            banks,
            context,
        };
        self.record_one(self.prepare_lookup_with(actor, req, variants.as_ref(), robust.as_ref())?)
            .await
    }

    /// [`Engine::lookup`] for a query whose `text_minhash` signal was made
    /// from `raw_text` (without a list, e.g. by [`Engine::hash_upload`]): the
    /// text is also signed under every equivalence-list version present
    /// among the target banks' text items, and each bank item is compared
    /// with the query signed under the version *it* was signed with. (A
    /// ready-made `text_minhash` signal in [`Engine::lookup`] cannot be
    /// re-normalised and is compared as-is.) The signing runs on the
    /// blocking pool, so a large text never stalls an async worker.
    pub async fn lookup_text(
        &self,
        actor: &Actor,
        req: LookupRequest,
        raw_text: impl Into<QueryText>,
    ) -> Result<LookupResponse> {
        let variants = self.sign_query_text(&req, raw_text.into()).await?;
        self.record_one(self.prepare_lookup_with(actor, req, variants.as_ref(), None)?)
            .await
    }

    /// Sign a query's raw text under every list version of its target
    /// banks (on the blocking pool), for [`Engine::lookup_text`].
    async fn sign_query_text(
        &self,
        req: &LookupRequest,
        text: QueryText,
    ) -> Result<Option<TextVariants>> {
        self.check_text_size(text.len())?;
        let lists = self.text_lists(req.banks.as_deref())?;
        let base = signals::text_minhash_of(&req.signals).map(str::to_string);
        off_runtime(move || {
            Ok(signals::sign_variants(
                text.as_str(),
                &lists,
                base.as_deref(),
            ))
        })
        .await
    }

    /// [`Engine::lookup_batch`] where an item may carry raw text instead of
    /// a ready-made `text_minhash` signal (`POST /v1/lookup/batch` items
    /// with `"text"`). Each text is signed without a list (that signature
    /// becomes the item's `text_minhash` signal) and under every list
    /// version its target banks hold, like [`Engine::lookup_text`]; all
    /// texts are signed in one blocking task. An item with both raw text and
    /// a `text_minhash` signal, or with text that has no words, is
    /// [`EngineError::InvalidInput`] naming `items[i]`, and nothing is
    /// recorded. The whole batch is recorded in one transaction.
    pub async fn lookup_batch_with_text(
        &self,
        actor: &Actor,
        items: Vec<(LookupRequest, Option<QueryText>)>,
    ) -> Result<Vec<LookupResponse>> {
        let total: usize = items
            .iter()
            .filter_map(|(_, t)| t.as_ref().map(QueryText::len))
            .fold(0, usize::saturating_add);
        self.check_text_size(total)?;
        for (i, (req, _)) in items.iter().enumerate() {
            req.context.validate(&format!("items[{i}]."))?;
        }
        let mut requests = Vec::with_capacity(items.len());
        let mut texts = Vec::new();
        for (i, (req, text)) in items.into_iter().enumerate() {
            if let Some(text) = text {
                if req
                    .signals
                    .iter()
                    .any(|s| s.signal_type == SignalType::TextMinhash)
                {
                    return Err(EngineError::InvalidInput(format!(
                        "items[{i}]: give raw \"text\" or a text_minhash signal, not both"
                    )));
                }
                texts.push((i, text, self.text_lists(req.banks.as_deref())?));
            }
            requests.push(req);
        }
        let signed = if texts.is_empty() {
            Vec::new()
        } else {
            off_runtime(move || {
                texts
                    .into_iter()
                    .map(|(i, text, lists)| {
                        signals::sign_variants(text.as_str(), &lists, None)
                            .map(|v| (i, v))
                            .ok_or_else(|| {
                                EngineError::InvalidInput(format!(
                                    "items[{i}]: text has no words to hash"
                                ))
                            })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .await?
        };
        let mut variants: Vec<Option<TextVariants>> = vec![None; requests.len()];
        for (i, v) in signed {
            if let (Some(req), Some(slot)) = (requests.get_mut(i), variants.get_mut(i)) {
                req.signals.push(SignalValue {
                    signal_type: SignalType::TextMinhash,
                    value: v.base.clone(),
                });
                *slot = Some(v);
            }
        }
        let prepared = requests
            .into_iter()
            .zip(&variants)
            .map(|(r, v)| self.prepare_lookup_with(actor, r, v.as_ref(), None))
            .collect::<Result<Vec<_>>>()?;
        self.record_lookups(prepared).await
    }

    /// Refuse raw query text over [`EngineConfig::max_query_text_bytes`].
    fn check_text_size(&self, len: usize) -> Result<()> {
        let max = self.inner.config.max_query_text_bytes;
        if len > max {
            return Err(EngineError::TooLarge(format!(
                "raw query text is {len} bytes, over the {max}-byte limit"
            )));
        }
        Ok(())
    }

    /// Record one prepared lookup and answer it.
    async fn record_one(&self, prepared: recorder::Prepared) -> Result<LookupResponse> {
        self.record_lookups(vec![prepared])
            .await?
            .pop()
            .ok_or_else(|| EngineError::Internal("lookup was not recorded".into()))
    }

    /// Match signals against the banks, record the submission and its
    /// matches durably, then answer.
    pub async fn lookup(&self, actor: &Actor, req: LookupRequest) -> Result<LookupResponse> {
        // Records go through the group-commit writer (see `recorder`).
        self.record_one(self.prepare_lookup(actor, req)?).await
    }

    /// What a lookup of `upload` would match right now, through every
    /// channel (plain and derived), without recording anything: the match
    /// debugger's view of the robust channels.
    pub fn preview_matches(&self, upload: &HashedUpload) -> Result<Vec<robust::MatchPreview>> {
        let query = normalize_signals(&upload.signals)?;
        let st = self.inner.state.read().map_err(lock_err)?;
        let hits = st.find_with(&query, None, None, upload.robust.as_ref());
        Ok(hits
            .into_iter()
            .map(|c| robust::MatchPreview {
                bank_id: c.bank_id,
                bank_name: st.bank_name(c.bank_id).unwrap_or_default().to_string(),
                content_id: c.content_id,
                signal_type: c.signal_type.as_str().to_string(),
                channel: c.channel.as_str().to_string(),
                distance: c.distance,
                similarity: c.similarity,
                detail: c
                    .detail
                    .as_deref()
                    .and_then(|d| serde_json::from_str(d).ok()),
            })
            .collect())
    }

    /// Look up what [`Engine::hash_upload`] (or [`Engine::hash_text`])
    /// made of an upload (after [`Engine::finish_ocr`]): its raw text —
    /// typed, a text file's, a PDF's or read by OCR — is signed as in
    /// [`Engine::lookup_text`] (equivalence lists), and an image or video
    /// also goes through the robust channels with its derived query hashes
    /// (`robust` module). `req.signals` is replaced by the upload's signals.
    pub async fn lookup_upload(
        &self,
        actor: &Actor,
        mut req: LookupRequest,
        upload: HashedUpload,
    ) -> Result<LookupResponse> {
        req.signals = upload.signals;
        // An OCRed image has both: its OCR text and its derived hashes.
        let variants = match upload.text {
            Some(text) => self.sign_query_text(&req, text).await?,
            None => None,
        };
        let robust = upload.robust.as_ref();
        self.record_one(self.prepare_lookup_with(actor, req, variants.as_ref(), robust)?)
            .await
    }

    /// Flood guard: quarantine an item over the limit (see [`flood`]).
    /// One conditional update, so of several processes deciding at once
    /// exactly one quarantines, audits and announces it.
    async fn quarantine(&self, content_id: ContentId, share: f64) -> Result<()> {
        let cfg = self.inner.flood.config();
        let reason = format!(
            "flood guard: matched {:.1}% of the lookups in the last {} s (limit {:.1}%)",
            share * 100.0,
            cfg.window.as_secs(),
            cfg.max_share * 100.0
        );
        let mut tx = self.inner.store.write().await?;
        let Some(before_row) = tx.get_content(content_id).await? else {
            return Ok(()); // deleted meanwhile
        };
        if before_row.quarantined {
            return Ok(());
        }
        if !tx
            .quarantine_content_once(content_id, &reason, echotrace_store::now_ms())
            .await?
        {
            return Ok(()); // another process quarantined it first
        }
        let Some(row) = tx.get_content(content_id).await? else {
            return Ok(());
        };
        let sigs = self.inner.store.signals_of_content(content_id).await?;
        let before = content_from_rows(&before_row, &sigs)?;
        let after = content_from_rows(&row, &sigs)?;
        tx.record_change("content", content_id, "upsert").await?;
        tx.audit(&NewAudit {
            actor: Actor::system().as_str(),
            action: "content.quarantine",
            target: &format!("content:{content_id}"),
            before: Some(to_json(&before)),
            after: Some(to_json(&after)),
        })
        .await?;
        let payload = json!({
            "content_id": content_id,
            "bank_id": after.bank_id,
            "reason": reason,
            "share": share,
        });
        tx.enqueue(
            "quarantine",
            &payload.to_string(),
            echotrace_store::now_ms(),
        )
        .await?;
        tx.delete_counters(&[flood::item_counter(content_id)])
            .await?;
        self.commit_and_sync(tx).await?;
        tracing::warn!(content_id, %reason, "content quarantined");
        Ok(())
    }

    // ----- matches and decisions ---------------------------------------

    pub async fn get_match(&self, id: MatchId) -> Result<MatchRecord> {
        let Some(row) = self.inner.store.get_match(id).await? else {
            return Err(EngineError::NotFound(format!("match {id}")));
        };
        self.enrich_match(&row).await
    }

    async fn enrich_match(&self, row: &echotrace_store::MatchRow) -> Result<MatchRecord> {
        let labels = self.inner.store.content_labels(&[row.content_id]).await?;
        self.enrich_with(row, &labels)
    }

    /// A match row as an API match: bank name from memory, item labels
    /// from `labels` (JSON by content id; read from the store, which keeps
    /// them).
    fn enrich_with(
        &self,
        row: &echotrace_store::MatchRow,
        labels: &std::collections::HashMap<ContentId, String>,
    ) -> Result<MatchRecord> {
        let name = {
            let st = self.inner.state.read().map_err(lock_err)?;
            st.bank_name(row.bank_id).unwrap_or_default().to_string()
        };
        let labels = labels
            .get(&row.content_id)
            .and_then(|l| parse_labels(l).ok())
            .unwrap_or_default();
        match_from_row(row, name, labels)
    }

    /// Matches newest first.
    pub async fn list_matches(&self, filter: MatchFilter) -> Result<Vec<MatchRecord>> {
        let q = echotrace_store::MatchQuery {
            status: filter.status.map(|s| s.as_str().to_string()),
            bank_id: filter.bank_id,
            submission_id: filter.submission_id,
            before_id: filter.before_id,
            limit: i64::from(filter.limit.unwrap_or(100).clamp(1, 1000)),
        };
        let rows = self.inner.store.list_matches(&q).await?;
        let mut ids: Vec<ContentId> = rows.iter().map(|r| r.content_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let labels = self.inner.store.content_labels(&ids).await?;
        rows.iter().map(|r| self.enrich_with(r, &labels)).collect()
    }

    /// Confirm or reject a match. Records the decision, audits before/after
    /// and queues a `decision` event publishable after the undo delay.
    pub async fn decide(
        &self,
        actor: &Actor,
        match_id: MatchId,
        verdict: Verdict,
        note: &str,
    ) -> Result<Decision> {
        limits::check_len("note", note, limits::MAX_NOTE_BYTES)?;
        let mut tx = self.inner.store.write().await?;
        let Some(before) = tx.get_match(match_id).await? else {
            return Err(EngineError::NotFound(format!("match {match_id}")));
        };
        let status = match verdict {
            Verdict::Confirm => MatchStatus::Confirmed,
            Verdict::Reject => MatchStatus::Rejected,
        };
        let after = tx.set_match_status(match_id, status.as_str()).await?;
        let delay = i64::try_from(self.inner.config.decision_undo_delay.as_millis()).unwrap_or(0);
        let publish_after = echotrace_store::now_ms().saturating_add(delay);
        let d = tx
            .insert_decision(
                match_id,
                verdict.as_str(),
                note,
                actor.as_str(),
                publish_after,
            )
            .await?;
        let decision = decision_from_row(&d)?;
        let opinion = match verdict {
            Verdict::Confirm => exchange::OpinionCategory::Positive,
            Verdict::Reject => exchange::OpinionCategory::Negative,
        };
        exchange::queue_opinions(&mut tx, d.id, &after, opinion, publish_after).await?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "match.decide",
            target: &format!("match:{match_id}"),
            before: Some(json!({"status": before.status}).to_string()),
            after: Some(json!({"status": after.status, "decision": decision}).to_string()),
        })
        .await?;
        let payload = json!({
            "decision": decision,
            "match_id": match_id,
            "submission_id": after.submission_id,
            "bank_id": after.bank_id,
            "content_id": after.content_id,
            "signal_type": after.signal_type,
            "status": after.status,
        });
        tx.enqueue("decision", &payload.to_string(), publish_after)
            .await?;
        tx.commit().await?;
        Ok(decision)
    }

    // ----- API keys and users ------------------------------------------

    /// Create an API key. Returns its metadata and the key itself, which is
    /// not stored and cannot be shown again.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
    ) -> Result<(ApiKey, String)> {
        // A blank name becomes `<role>-<UTC timestamp>`.
        let name = limits::key_name(name, role.as_str(), echotrace_store::now_ms())?;
        let key = generate_api_key()?;
        let mut tx = self.inner.store.write().await?;
        let row = tx
            .insert_api_key(&name, role.as_str(), &hash_api_key(&key))
            .await?;
        let info = api_key_from_row(&row)?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "api_key.create",
            target: &format!("api_key:{}", row.id),
            before: None,
            after: Some(to_json(&info)),
        })
        .await?;
        tx.commit().await?;
        Ok((info, key))
    }

    /// Check a presented key. Unknown or revoked → [`EngineError::Unauthorized`].
    pub async fn verify_api_key(&self, key: &str) -> Result<ApiKey> {
        let key = key.trim();
        if !key.starts_with(API_KEY_PREFIX) {
            return Err(EngineError::Unauthorized);
        }
        match self.inner.store.api_key_by_hash(&hash_api_key(key)).await? {
            Some(row) if row.revoked_at.is_none() => api_key_from_row(&row),
            _ => Err(EngineError::Unauthorized),
        }
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        self.inner
            .store
            .list_api_keys()
            .await?
            .iter()
            .map(api_key_from_row)
            .collect()
    }

    pub async fn revoke_api_key(&self, actor: &Actor, id: i64) -> Result<ApiKey> {
        let mut tx = self.inner.store.write().await?;
        let row = tx.revoke_api_key(id).await?;
        let info = api_key_from_row(&row)?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "api_key.revoke",
            target: &format!("api_key:{id}"),
            before: None,
            after: Some(to_json(&info)),
        })
        .await?;
        tx.commit().await?;
        Ok(info)
    }

    /// Create a console user with an argon2id password hash.
    pub async fn create_user(
        &self,
        actor: &Actor,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<User> {
        let username = username.trim();
        if username.is_empty() || username.len() > 100 {
            return Err(EngineError::InvalidInput(
                "username must be 1-100 characters".into(),
            ));
        }
        if password.chars().count() < 8 {
            return Err(EngineError::InvalidInput(
                "password must be at least 8 characters".into(),
            ));
        }
        role.require_console()?;
        let hash = hash_password(password)?;
        let mut tx = self.inner.store.write().await?;
        let row = tx.insert_user(username, &hash, role.as_str()).await?;
        let user = user_from_row(&row)?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "user.create",
            target: &format!("user:{}", row.id),
            before: None,
            after: Some(to_json(&user)),
        })
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Check a username/password. Any failure → [`EngineError::Unauthorized`].
    pub async fn verify_user(&self, username: &str, password: &str) -> Result<User> {
        match self.inner.store.user_by_name(username.trim()).await? {
            Some(row)
                if row.disabled_at.is_none() && verify_password(password, &row.password_hash) =>
            {
                user_from_row(&row)
            }
            _ => Err(EngineError::Unauthorized),
        }
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        self.inner
            .store
            .list_users()
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    // ----- webhooks ----------------------------------------------------

    /// Register a webhook (`events` empty = all events).
    pub async fn create_webhook(
        &self,
        actor: &Actor,
        url: &str,
        secret: &str,
        events: Vec<String>,
    ) -> Result<Webhook> {
        let url = url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(EngineError::InvalidInput(
                "webhook url must be http(s)".into(),
            ));
        }
        if secret.len() < limits::MIN_SECRET_BYTES {
            return Err(EngineError::InvalidInput(format!(
                "secret is {} bytes; a webhook secret keys the HMAC signature of every \
                 delivery and must be at least {} bytes",
                secret.len(),
                limits::MIN_SECRET_BYTES
            )));
        }
        limits::check_len("url", url, limits::MAX_URL_BYTES)?;
        limits::check_len("secret", secret, limits::MAX_SECRET_BYTES)?;
        let mut tx = self.inner.store.write().await?;
        let row = tx.insert_webhook(url, secret, &to_json(&events)).await?;
        let hook = webhook_from_row(&row)?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "webhook.create",
            target: &format!("webhook:{}", row.id),
            before: None,
            after: Some(json!({"url": hook.url, "events": hook.events}).to_string()),
        })
        .await?;
        tx.commit().await?;
        Ok(hook)
    }

    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        self.inner
            .store
            .list_webhooks()
            .await?
            .iter()
            .map(webhook_from_row)
            .collect()
    }

    pub async fn delete_webhook(&self, actor: &Actor, id: i64) -> Result<()> {
        let mut tx = self.inner.store.write().await?;
        tx.delete_webhook(id).await?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "webhook.delete",
            target: &format!("webhook:{id}"),
            before: None,
            after: None,
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- audit and outbox --------------------------------------------

    /// Audit entries newest first.
    pub async fn audit_log(&self, before_id: Option<i64>, limit: u32) -> Result<Vec<AuditEntry>> {
        self.inner
            .store
            .list_audit(before_id, i64::from(limit.clamp(1, 1000)))
            .await?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    /// Outbox events newest first.
    pub async fn list_outbox(&self, pending_only: bool, limit: u32) -> Result<Vec<OutboxEvent>> {
        self.inner
            .store
            .list_outbox(pending_only, i64::from(limit.clamp(1, 1000)))
            .await?
            .iter()
            .map(outbox_from_row)
            .collect()
    }

    /// One delivery pass over due outbox events (what the worker runs).
    pub async fn deliver_due(&self, deliverer: &dyn Deliverer) -> Result<DeliveryReport> {
        outbox::deliver_due(&self.inner.store, &self.inner.config.outbox, deliverer).await
    }

    /// Counts of what the in-memory indexes hold (for health endpoints).
    pub fn index_stats(&self) -> Result<IndexStats> {
        let st = self.inner.state.read().map_err(lock_err)?;
        Ok(st.stats())
    }

    /// A bank's current equivalence list (version, parsed), from memory, or
    /// from the store for a bank this process has not applied yet.
    async fn bank_list(
        &self,
        bank_id: BankId,
    ) -> Result<Option<(i64, Arc<echotrace_signals::text::EquivalenceList>)>> {
        {
            let st = self.inner.state.read().map_err(lock_err)?;
            if st.has_bank(bank_id) {
                return Ok(st.bank_list(bank_id));
            }
        }
        let Some(row) = self.inner.store.get_bank(bank_id).await? else {
            return Err(EngineError::NotFound(format!("bank {bank_id}")));
        };
        match (row.text_equivalences_id, row.text_equivalences.as_deref()) {
            (Some(v), Some(body)) => {
                Ok(signals::parse_equivalences(body)?.map(|l| (v, Arc::new(l))))
            }
            _ => Ok(None),
        }
    }

    /// The list versions (with their parsed lists, shared) a raw-text query
    /// against `banks` must be signed under: the state lock is held only to
    /// copy these out; the signing happens later, off the runtime
    /// ([`signals::sign_variants`]).
    fn text_lists(&self, banks: Option<&[BankId]>) -> Result<QueryLists> {
        let st = self.inner.state.read().map_err(lock_err)?;
        Ok(st.text_query_lists(banks))
    }
}

/// Store a new version of a bank's equivalence list (validated by the
/// caller) and return the bank row as it now stands.
async fn set_equivalences(
    tx: &mut WriteTx,
    bank_id: BankId,
    body: &str,
) -> Result<echotrace_store::BankRow> {
    let digest = echotrace_signals::digest::sha256_hex(body.as_bytes());
    tx.set_bank_text_equivalences(bank_id, Some((body, &digest)))
        .await?;
    tx.get_bank(bank_id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("bank {bank_id}")))
}

/// Sizes of the in-memory indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IndexStats {
    pub banks: usize,
    pub content: usize,
    pub signals: usize,
    pub pdq: usize,
    pub exact: usize,
    pub text: usize,
    /// Stored vPDQ signals (videos).
    pub vpdq: usize,
    /// Derived PDQ hashes (robust matching; windows and regions of items
    /// added as files) and the approximate bytes their index takes.
    pub derived_pdq: usize,
    pub derived_bytes: usize,
}

/// Delete one content item with its signals and record the change, so every
/// process's indexes drop it. The one path behind [`Engine::delete_content`]
/// and [`Engine::delete_bank`].
async fn delete_content_in(tx: &mut WriteTx, id: ContentId) -> Result<()> {
    tx.delete_content(id).await?;
    tx.record_change("content", id, "delete").await?;
    Ok(())
}

fn clean_labels(labels: Vec<String>) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(labels.len());
    for l in labels {
        let l = l.trim().to_string();
        if l.is_empty() {
            continue;
        }
        if l.len() > limits::MAX_LABEL_BYTES {
            return Err(EngineError::InvalidInput(format!(
                "labels must be at most {} bytes",
                limits::MAX_LABEL_BYTES
            )));
        }
        if !out.contains(&l) {
            out.push(l);
        }
    }
    if out.len() > limits::MAX_LABELS {
        return Err(EngineError::InvalidInput(format!(
            "at most {} labels",
            limits::MAX_LABELS
        )));
    }
    Ok(out)
}

/// Whether an item holds (`held`) every perceptual hash (PDQ, vPDQ) of
/// `values`, and there is one: the same picture or video. A file given to
/// a held item (`give_derived`) and a retained original re-derived
/// (`rederive_page`) must both pass it.
pub(crate) fn same_picture(values: &[SignalValue], held: impl Fn(&SignalValue) -> bool) -> bool {
    let mut perceptual = values
        .iter()
        .filter(|v| matches!(v.signal_type, SignalType::Pdq | SignalType::Vpdq))
        .peekable();
    perceptual.peek().is_some() && perceptual.all(held)
}

/// The signals of a new item whose being held makes the item held
/// ([`Engine::add_item`]): all of ready-made signals; of a file, text or
/// URL hashed here, all but `ocr_text`, and of text signed under an
/// equivalence list (`listed`) its text signals only.
fn held_keys(values: &[SignalValue], ready_made: bool, listed: bool) -> Vec<(&str, &str)> {
    let signed_text = listed
        && values
            .iter()
            .any(|v| v.signal_type == SignalType::TextMinhash);
    values
        .iter()
        .filter(|v| {
            ready_made
                || (v.signal_type != SignalType::OcrText
                    && (!signed_text || v.signal_type.is_text()))
        })
        .map(|v| (v.signal_type.as_str(), v.value.as_str()))
        .collect()
}

fn dedup_signals(values: Vec<SignalValue>) -> Vec<SignalValue> {
    let mut out: Vec<SignalValue> = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}
