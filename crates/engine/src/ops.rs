//! Running as one of many processes on one database: where the in-memory
//! state comes from at start (a snapshot or a paged load), writing
//! snapshots, lag behind the change sequence, background jobs that run on
//! exactly one process (a lease each), and the flood guard's periodic
//! flush. Graceful shutdown ([`Engine::shutdown`]) flushes, snapshots and
//! gives the leases up.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use echotrace_store::{schema_version, Store};
use serde::Serialize;

use crate::error::{EngineError, Result};
use crate::outbox::BoxFuture;
use crate::snapshot::{self, identity_bytes, Tag};
use crate::state::MatchState;
use crate::{lock_err, Engine, EngineConfig};

/// A name for this process among those sharing the database: host, pid
/// and a random suffix.
pub(crate) fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let mut r = [0u8; 4];
    let _ = getrandom::getrandom(&mut r);
    format!("{host}-{}-{}", std::process::id(), u32::from_le_bytes(r))
}

/// Where the in-memory state came from when the engine opened.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum StateSource {
    /// A snapshot reflecting `change_id`, then the changes since.
    Snapshot { path: String, change_id: i64 },
    /// Every row, page by page; `refused` lists the snapshots found and
    /// why each was not used.
    Paged { refused: Vec<String> },
    /// No indexes (administration without a load).
    Empty,
}

/// What an unauthenticated caller (`/readyz`) may learn of a
/// [`StateSource`]: whether a snapshot was used and which change it
/// reflects, or how many snapshots were refused — never a file path or a
/// refusal's reason (those go to the log).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum PublicStateSource {
    /// A snapshot reflecting `change_id`, then the changes since.
    Snapshot { change_id: i64 },
    /// Every row, page by page, after refusing `refused` snapshots.
    Paged { refused: usize },
    /// No indexes.
    Empty,
}

impl StateSource {
    /// The form `/readyz` shows (see [`PublicStateSource`]).
    pub fn public(&self) -> PublicStateSource {
        match self {
            StateSource::Snapshot { change_id, .. } => PublicStateSource::Snapshot {
                change_id: *change_id,
            },
            StateSource::Paged { refused } => PublicStateSource::Paged {
                refused: refused.len(),
            },
            StateSource::Empty => PublicStateSource::Empty,
        }
    }
}

/// How far this process's indexes are behind the database.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Lag {
    /// Last change applied here.
    pub applied: i64,
    /// Last change in the database.
    pub head: i64,
    /// Changes not applied yet.
    pub changes: i64,
    /// Age of the oldest change not applied yet (0 when current), seconds.
    pub seconds: f64,
}

/// Load the state: the newest snapshot that passes every check, else a
/// paged load. Returns it with the change id it reflects.
pub(crate) async fn open_state(
    store: &Store,
    config: &EngineConfig,
) -> Result<(MatchState, i64, StateSource)> {
    // Read the head first: anything committed after this is re-applied by
    // the first sync (re-applying is idempotent: it re-reads the row).
    let head = store.max_change_id().await?;
    let mut refused = Vec::new();
    if let Some(dir) = &config.snapshot_dir {
        let identity = identity_bytes(&store.database_identity().await?);
        let schema = schema_version();
        for (_, path) in snapshot::list(dir) {
            let p = path.clone();
            let read = tokio::task::spawn_blocking(move || {
                snapshot::read_state(&p, identity, schema, head)
            })
            .await;
            match read {
                Ok(Ok((state, change_id))) => {
                    let source = StateSource::Snapshot {
                        path: path.display().to_string(),
                        change_id,
                    };
                    return Ok((state, change_id, source));
                }
                Ok(Err(e)) => refused.push(format!("{}: {e}", path.display())),
                Err(e) => refused.push(format!("{}: reader failed: {e}", path.display())),
            }
        }
    }
    let state = MatchState::load(store).await?;
    Ok((state, head, StateSource::Paged { refused }))
}

/// Leases this process holds (given up at shutdown).
#[derive(Default)]
pub(crate) struct Leases(Mutex<HashSet<&'static str>>);

impl Leases {
    fn note(&self, name: &'static str, held: bool) {
        if let Ok(mut s) = self.0.lock() {
            if held {
                s.insert(name);
            } else {
                s.remove(name);
            }
        }
    }

    fn take_all(&self) -> Vec<&'static str> {
        self.0
            .lock()
            .map(|mut s| s.drain().collect())
            .unwrap_or_default()
    }
}

/// A job run under a lease: returns whether more work is waiting (then
/// it runs again at once instead of after the interval).
pub type LeasedJob = Arc<dyn Fn(Engine) -> BoxFuture<'static, Result<bool>> + Send + Sync>;

impl Engine {
    /// Where the state came from at start.
    pub fn state_source(&self) -> &StateSource {
        &self.inner.source
    }

    /// This process's name among those sharing the database.
    pub fn replica_id(&self) -> &str {
        &self.inner.config.replica_id
    }

    /// A stable tag for this process that reveals nothing of it (the
    /// first 12 hex digits of the SHA-256 of [`Engine::replica_id`]): what
    /// `/readyz` shows, so a caller can tell replicas apart without
    /// learning host names.
    pub fn replica_tag(&self) -> String {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(self.replica_id().as_bytes());
        d.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }

    /// How far the indexes are behind the database's change sequence.
    pub async fn lag(&self) -> Result<Lag> {
        let applied = self.inner.applied.load(Ordering::Relaxed);
        let Some((_, at)) = self.inner.store.first_change_after(applied).await? else {
            return Ok(Lag {
                applied,
                head: applied,
                ..Lag::default()
            });
        };
        let head = self.inner.store.max_change_id().await?;
        let age = (echotrace_store::now_ms() - at).max(0);
        Ok(Lag {
            applied,
            head,
            changes: (head - applied).max(0),
            seconds: age as f64 / 1000.0,
        })
    }

    /// Write a snapshot of the state to [`EngineConfig::snapshot_dir`]
    /// (`Ok(None)` when none is configured). Changes are not applied while
    /// the state is written (lookups go on); the file is made durable and
    /// renamed into place after that.
    pub async fn write_snapshot(&self) -> Result<Option<PathBuf>> {
        let Some(dir) = self.inner.config.snapshot_dir.clone() else {
            return Ok(None);
        };
        let identity = identity_bytes(&self.inner.store.database_identity().await?);
        let cursor = self.inner.cursor.lock().await;
        let change_id = *cursor;
        let tag = Tag {
            identity,
            schema: schema_version(),
            change_id,
        };
        let engine = self.clone();
        let dir2 = dir.clone();
        let tmp = tokio::task::spawn_blocking(move || -> Result<PathBuf> {
            let st = engine.inner.state.read().map_err(lock_err)?;
            snapshot::write_state(&dir2, &st, &tag)
                .map_err(|e| EngineError::Internal(format!("writing a snapshot: {e}")))
        })
        .await
        .map_err(|e| EngineError::Internal(format!("snapshot task failed: {e}")))??;
        drop(cursor);
        let path = tokio::task::spawn_blocking(move || snapshot::publish(&dir, &tmp, change_id))
            .await
            .map_err(|e| EngineError::Internal(format!("snapshot task failed: {e}")))?
            .map_err(|e| EngineError::Internal(format!("publishing a snapshot: {e}")))?;
        self.inner.snapshotted.store(change_id, Ordering::Relaxed);
        Ok(Some(path))
    }

    /// Write a snapshot every `every` when changes were applied since the
    /// last one. Stops when the handle is aborted.
    pub fn spawn_snapshot_writer(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let applied = engine.inner.applied.load(Ordering::Relaxed);
                if applied == engine.inner.snapshotted.load(Ordering::Relaxed) {
                    continue;
                }
                if let Err(e) = engine.write_snapshot().await {
                    eprintln!("echotrace: snapshot not written: {e}");
                }
            }
        })
    }

    /// Write the flood guard's lookups counted here but not written yet.
    pub async fn flush_flood_counts(&self) -> Result<()> {
        let n = self.inner.flood.take_pending();
        let adds = self.inner.flood.flush_adds(n);
        if adds.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.inner.store.add_counters(&adds).await {
            self.inner.flood.restore(n);
            return Err(e.into());
        }
        Ok(())
    }

    /// Flush the flood guard's counts every second.
    pub fn spawn_flood_flusher(&self) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Err(e) = engine.flush_flood_counts().await {
                    tracing::warn!(error = %e, "flood guard: counts not written; retrying");
                }
            }
        })
    }

    /// Run `job` every `every` on exactly one of the processes sharing the
    /// database: the one holding the lease `name` (taken or renewed before
    /// each run, TTL `max(3 × every, 15 s)`; a dead holder's lease expires
    /// and another process takes over). Stops when the handle is aborted.
    pub fn spawn_leased(
        &self,
        name: &'static str,
        every: Duration,
        job: LeasedJob,
    ) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        let ttl = (every * 3).max(Duration::from_secs(15));
        tokio::spawn(async move {
            loop {
                let held = match engine
                    .inner
                    .store
                    .try_lease(name, engine.replica_id(), ttl)
                    .await
                {
                    Ok(epoch) => epoch.is_some(),
                    Err(e) => {
                        tracing::warn!(lease = name, error = %e, "lease not renewed");
                        false
                    }
                };
                engine.inner.leases.note(name, held);
                let more = if held {
                    match job(engine.clone()).await {
                        Ok(more) => more,
                        Err(e) => {
                            tracing::warn!(lease = name, error = %e, "leased job failed");
                            false
                        }
                    }
                } else {
                    false
                };
                if !more {
                    tokio::time::sleep(every).await;
                }
            }
        })
    }

    /// Sweep expired shared counters once a minute (on one process).
    pub fn spawn_counter_sweeper(&self) -> tokio::task::JoinHandle<()> {
        self.spawn_leased(
            "shared-counters-sweep",
            Duration::from_secs(60),
            Arc::new(|engine: Engine| {
                Box::pin(async move {
                    engine
                        .store()
                        .sweep_counters(echotrace_store::now_ms())
                        .await?;
                    Ok(false)
                })
            }),
        )
    }

    /// Graceful stop, after the server stopped taking requests and every
    /// in-flight one finished: wait for the group commit to drain, write the
    /// flood guard's counts, write a snapshot (when configured and changes
    /// were applied since the last one), give every lease up. Background
    /// tasks must have been aborted first, so nothing changes meanwhile.
    pub async fn shutdown(&self) -> Result<()> {
        self.inner.recorder.drain().await;
        let mut first_error = self.flush_flood_counts().await.err();
        let applied = self.inner.applied.load(Ordering::Relaxed);
        let stale = applied != self.inner.snapshotted.load(Ordering::Relaxed)
            || self
                .inner
                .config
                .snapshot_dir
                .as_deref()
                .is_some_and(|d| snapshot::list(d).is_empty());
        if stale {
            if let Err(e) = self.write_snapshot().await {
                first_error.get_or_insert(e);
            }
        }
        for name in self.inner.leases.take_all() {
            if let Err(e) = self
                .inner
                .store
                .release_lease(name, self.replica_id())
                .await
            {
                first_error.get_or_insert(e.into());
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
