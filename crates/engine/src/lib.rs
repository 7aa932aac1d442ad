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
//!   `{"pdq": "<hex>", …}` maps.
//! * Review: [`Engine::list_matches`], [`Engine::get_match`], [`Engine::decide`].
//! * Records: [`Engine::audit_log`], [`Engine::list_outbox`].
//! * Errors: [`EngineError`] with [`EngineError::http_status`] / [`EngineError::code`].

mod auth;
pub mod console;
mod convert;
pub mod demo;
mod error;
mod flood;
mod outbox;
mod signals;
mod state;
mod types;

use std::sync::{Arc, Mutex as StdMutex, RwLock};
use std::time::Duration;

use echotrace_store::{NewAudit, NewMatch, NewSubmission, Store, WriteTx};
use serde_json::json;

pub use auth::{
    generate_api_key, hash_api_key, hash_password, sign_body, verify_body_signature,
    verify_password, ApiKey, Operation, Role, User, API_KEY_PREFIX,
};
pub use echotrace_store::{Backend, SqliteSync, StoreOptions, DEFAULT_DATABASE_URL};
pub use error::{EngineError, Result};
pub use flood::FloodGuardConfig;
pub use outbox::{BoxFuture, Deliverer, DeliveryReport, OutboxConfig};
pub use signals::{default_threshold, normalize_signal, normalize_signals, parse_signals};
pub use types::*;

use convert::*;
use state::{Candidate, MatchState};

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
    flood: StdMutex<flood::FloodWindow>,
}

/// The matching service. Cheap to clone (an `Arc` inside); share one per process.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// Hash bytes on tokio's blocking pool: decoding an image or running ffmpeg
/// over a video must not stall the async workers.
async fn hash_off_runtime(
    bytes: Vec<u8>,
    sampling: signals::VideoSampling,
) -> Result<Vec<SignalValue>> {
    tokio::task::spawn_blocking(move || signals::hash_bytes(&bytes, sampling))
        .await
        .map_err(|e| EngineError::Internal(format!("hashing task failed: {e}")))?
}

fn lock_err<T>(_: T) -> EngineError {
    EngineError::Internal("engine state lock poisoned".into())
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

impl Engine {
    /// Connect to the store (running migrations) and load the indexes.
    pub async fn open(config: EngineConfig) -> Result<Engine> {
        let store = Store::open_with(&config.database_url, config.store.clone()).await?;
        Engine::with_store(store, config).await
    }

    /// Build an engine on an already-open store.
    pub async fn with_store(store: Store, config: EngineConfig) -> Result<Engine> {
        // Read the cursor first: anything committed after this is re-applied
        // by the first sync (re-applying is idempotent: it re-reads the row).
        let cursor = store.max_change_id().await?;
        let state = MatchState::load(&store).await?;
        let flood = flood::FloodWindow::new(config.flood_guard.clone());
        Ok(Engine {
            inner: Arc::new(Inner {
                store,
                config,
                state: RwLock::new(state),
                cursor: tokio::sync::Mutex::new(cursor),
                flood: StdMutex::new(flood),
            }),
        })
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
                        let mut st = self.inner.state.write().map_err(lock_err)?;
                        st.apply_bank(change.entity_id, row.as_ref());
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
                        let mut st = self.inner.state.write().map_err(lock_err)?;
                        st.apply_content(change.entity_id, row.as_ref(), &signals);
                    }
                    other => tracing::warn!(entity = other, "unknown change entity ignored"),
                }
                *cursor = change.id;
                applied += 1;
            }
        }
        Ok(applied)
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

    /// Spawn the outbox delivery worker. Stops when the handle is aborted.
    pub fn spawn_outbox_worker(
        &self,
        deliverer: Arc<dyn Deliverer>,
    ) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        let every = self.inner.config.outbox.poll_interval;
        tokio::spawn(async move {
            loop {
                match engine.deliver_due(deliverer.as_ref()).await {
                    Ok(r) if r.attempted > 0 => {
                        tracing::debug!(?r, "outbox pass");
                        continue; // more may be due right away
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox worker: pass failed"),
                }
                tokio::time::sleep(every).await;
            }
        })
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
        let name = new.name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(EngineError::InvalidInput(
                "bank name must be 1-200 characters".into(),
            ));
        }
        signals::validate_thresholds(&new.thresholds)?;
        let mut tx = self.inner.store.write().await?;
        let row = tx
            .insert_bank(
                name,
                new.kind.as_str(),
                &new.description,
                &to_json(&new.thresholds),
            )
            .await?;
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
            .map(bank_from_row)
            .collect()
    }

    pub async fn get_bank(&self, id: BankId) -> Result<Bank> {
        match self.inner.store.get_bank(id).await? {
            Some(r) => bank_from_row(&r),
            None => Err(EngineError::NotFound(format!("bank {id}"))),
        }
    }

    pub async fn bank_by_name(&self, name: &str) -> Result<Bank> {
        match self.inner.store.get_bank_by_name(name).await? {
            Some(r) => bank_from_row(&r),
            None => Err(EngineError::NotFound(format!("bank {name:?}"))),
        }
    }

    /// Enable/disable a bank, change its description or thresholds.
    pub async fn update_bank(&self, actor: &Actor, id: BankId, update: BankUpdate) -> Result<Bank> {
        if let Some(t) = &update.thresholds {
            signals::validate_thresholds(t)?;
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
        Ok(after)
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
        if let Ok(mut w) = self.inner.flood.lock() {
            for content_id in content_ids {
                w.forget(content_id);
            }
        }
        Ok(())
    }

    // ----- content -----------------------------------------------------

    /// Hash raw bytes into signals (image → pdq + md5 + sha256; UTF-8 text
    /// → text_minhash + md5 + sha256; video → vpdq at one frame a second +
    /// md5 + sha256, when ffmpeg is installed). Blocking: call it from
    /// `spawn_blocking`. Bytes are not kept. (`add_content` hashes video
    /// bank entries at every frame instead.)
    pub fn hash_bytes(&self, bytes: &[u8]) -> Result<Vec<SignalValue>> {
        signals::hash_bytes(bytes, signals::VideoSampling::Query)
    }

    /// Add a content item with its signals to a bank.
    pub async fn add_content(
        &self,
        actor: &Actor,
        bank_id: BankId,
        new: NewContent,
    ) -> Result<Content> {
        let values = match new.source {
            ContentSource::Bytes(bytes) => {
                hash_off_runtime(bytes, signals::VideoSampling::BankEntry).await?
            }
            ContentSource::Text(text) => signals::hash_text(&text)?,
            ContentSource::Signals(list) => normalize_signals(&list)?,
        };
        if values.is_empty() {
            return Err(EngineError::InvalidInput("content has no signals".into()));
        }
        let labels = clean_labels(new.labels)?;
        let mut tx = self.inner.store.write().await?;
        if tx.get_bank(bank_id).await?.is_none() {
            return Err(EngineError::NotFound(format!("bank {bank_id}")));
        }
        let row = tx
            .insert_content(bank_id, true, &to_json(&labels), &new.note)
            .await?;
        let mut stored = Vec::with_capacity(values.len());
        for v in dedup_signals(values) {
            stored.push(
                tx.insert_signal(row.id, bank_id, v.signal_type.as_str(), &v.value)
                    .await?,
            );
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
        Ok(content)
    }

    pub async fn get_content(&self, id: ContentId) -> Result<Content> {
        let Some(row) = self.inner.store.get_content(id).await? else {
            return Err(EngineError::NotFound(format!("content {id}")));
        };
        let sigs = self.inner.store.signals_of_content(id).await?;
        content_from_rows(&row, &sigs)
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
        if let Ok(mut w) = self.inner.flood.lock() {
            w.forget(id);
        }
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

    /// Hash bytes, then [`Engine::lookup`].
    pub async fn lookup_bytes(
        &self,
        actor: &Actor,
        bytes: &[u8],
        banks: Option<Vec<BankId>>,
        context: SubmissionContext,
    ) -> Result<LookupResponse> {
        let signals = hash_off_runtime(bytes.to_vec(), signals::VideoSampling::Query).await?;
        self.lookup(
            actor,
            LookupRequest {
                signals,
                banks,
                context,
            },
        )
        .await
    }

    /// Match signals against the banks, record the submission and its
    /// matches durably, then answer.
    pub async fn lookup(&self, actor: &Actor, req: LookupRequest) -> Result<LookupResponse> {
        if req.signals.is_empty() {
            return Err(EngineError::InvalidInput("no signals to look up".into()));
        }
        if req.signals.len() > 256 {
            return Err(EngineError::InvalidInput(
                "at most 256 signals per lookup".into(),
            ));
        }
        let query: Vec<SignalValue> = normalize_signals(&req.signals)?;
        let (candidates, bank_names) = {
            let st = self.inner.state.read().map_err(lock_err)?;
            let c = st.find(&query, req.banks.as_deref());
            let names: std::collections::HashMap<BankId, String> = c
                .iter()
                .filter_map(|c| st.bank_name(c.bank_id).map(|n| (c.bank_id, n.to_string())))
                .collect();
            (c, names)
        };
        let (allowed, blocked): (Vec<Candidate>, Vec<Candidate>) = candidates
            .into_iter()
            .partition(|c| c.bank_kind == BankKind::Allow);
        let suppressed = if allowed.is_empty() { 0 } else { blocked.len() };
        let recorded: Vec<&Candidate> = if allowed.is_empty() {
            blocked.iter().collect()
        } else {
            allowed.iter().collect()
        };

        let ctx = &req.context;
        let mut tx = self.inner.store.write().await?;
        let submission_id = tx
            .insert_submission(&NewSubmission {
                actor: actor.as_str(),
                content_ref: ctx.content_id.as_deref(),
                url: ctx.url.as_deref(),
                uploader_id: ctx.uploader_id.as_deref(),
                signals_json: &to_json(&query),
                match_count: i64::try_from(recorded.len()).unwrap_or(i64::MAX),
            })
            .await?;
        let mut matches = Vec::new();
        let mut allow_records = Vec::new();
        for c in &recorded {
            let row = tx
                .insert_match(&NewMatch {
                    submission_id,
                    bank_id: c.bank_id,
                    content_id: c.content_id,
                    signal_id: Some(c.signal_id),
                    signal_type: c.signal_type.as_str(),
                    matched_value: &c.matched_value,
                    query_value: &c.query_value,
                    distance: c.distance,
                    similarity: c.similarity,
                })
                .await?;
            let name = bank_names.get(&c.bank_id).cloned().unwrap_or_default();
            let rec = match_from_row(&row, name, c.labels.clone())?;
            if c.bank_kind == BankKind::Allow {
                allow_records.push(rec);
            } else {
                matches.push(rec);
            }
        }
        if !recorded.is_empty() {
            let summary = json!({
                "submission_id": submission_id,
                "context": ctx,
                "matches": matches,
                "allowed": allow_records,
                "suppressed": suppressed,
            });
            tx.audit(&NewAudit {
                actor: actor.as_str(),
                action: "lookup.match",
                target: &format!("submission:{submission_id}"),
                before: None,
                after: Some(summary.to_string()),
            })
            .await?;
            if !matches.is_empty() {
                tx.enqueue("match", &summary.to_string(), echotrace_store::now_ms())
                    .await?;
            }
        }
        tx.commit().await?;

        // Flood guard: count every content item that matched (allow or block).
        let mut hit_ids: Vec<ContentId> = matches
            .iter()
            .chain(allow_records.iter())
            .map(|m| m.content_id)
            .collect();
        if suppressed > 0 {
            hit_ids.extend(blocked.iter().map(|c| c.content_id));
        }
        hit_ids.sort_unstable();
        hit_ids.dedup();
        let to_quarantine = {
            let mut w = self.inner.flood.lock().map_err(lock_err)?;
            w.record(&hit_ids)
        };
        for (content_id, share) in to_quarantine {
            if let Err(e) = self.quarantine(content_id, share).await {
                tracing::warn!(content_id, error = %e, "flood guard: quarantine failed");
            }
        }

        Ok(LookupResponse {
            submission_id,
            matches,
            allowed: allow_records,
            suppressed,
        })
    }

    async fn quarantine(&self, content_id: ContentId, share: f64) -> Result<()> {
        let cfg = &self.inner.config.flood_guard;
        let reason = format!(
            "flood guard: matched {:.1}% of the last {} lookups (limit {:.1}%)",
            share * 100.0,
            cfg.window,
            cfg.max_share * 100.0
        );
        let mut tx = self.inner.store.write().await?;
        let Some(before_row) = tx.get_content(content_id).await? else {
            return Ok(()); // deleted meanwhile
        };
        if before_row.quarantined {
            return Ok(());
        }
        let sigs = self.inner.store.signals_of_content(content_id).await?;
        let before = content_from_rows(&before_row, &sigs)?;
        let mut next = before_row.clone();
        next.quarantined = true;
        next.quarantine_reason = Some(reason.clone());
        next.quarantined_at = Some(echotrace_store::now_ms());
        let row = tx.update_content(&next).await?;
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
        self.commit_and_sync(tx).await?;
        if let Ok(mut w) = self.inner.flood.lock() {
            w.forget(content_id);
        }
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
        let (name, labels) = {
            let st = self.inner.state.read().map_err(lock_err)?;
            (
                st.bank_name(row.bank_id).unwrap_or_default().to_string(),
                st.labels(row.content_id),
            )
        };
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
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.enrich_match(r).await?);
        }
        Ok(out)
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
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(EngineError::InvalidInput(
                "key name must be 1-200 characters".into(),
            ));
        }
        let key = generate_api_key()?;
        let mut tx = self.inner.store.write().await?;
        let row = tx
            .insert_api_key(name, role.as_str(), &hash_api_key(&key))
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
        if secret.is_empty() {
            return Err(EngineError::InvalidInput(
                "webhook secret must not be empty".into(),
            ));
        }
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
        if l.len() > 100 {
            return Err(EngineError::InvalidInput(
                "labels must be at most 100 characters".into(),
            ));
        }
        if !out.contains(&l) {
            out.push(l);
        }
    }
    if out.len() > 50 {
        return Err(EngineError::InvalidInput("at most 50 labels".into()));
    }
    Ok(out)
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
