//! The collector itself: sources in, sightings out.
//!
//! [`Collector::run`] seeds the enabled sources (file-based ones — Telegram
//! exports, WARC files — are imported on the spot), then drains the
//! frontier with `workers` concurrent fetches:
//! * a job is leased ([`Store::lease_jobs`]), fetched under the politeness,
//!   robots, proxy and cap rules, turned into items ([`crate::process`]),
//!   hashed and matched ([`Engine::prepare_sighting`]: a page or feed of
//!   modest size on the worker task itself, a file or a large body on the
//!   blocking pool), and its evidence written to WARC;
//! * results are committed in groups: one transaction records every
//!   result's sightings, queues their outlinks, finishes their jobs (fenced
//!   on the lease) and adds to the sources' counters, after the WARC files
//!   are synced. A kill -9 at any point loses nothing: an uncommitted job is
//!   leased again after its lease expires and fetched again;
//! * a job whose host is not ready is put back with its due time (no
//!   attempt counted) and another host's job taken instead;
//! * transient failures (DNS, refused, timeout, 5xx) are retried with
//!   exponential backoff up to `max_attempts`; every final failure is a
//!   recorded per-item error (the job's `error_kind`/`error`, the source's
//!   error counter, and a bare sighting of the URL carrying the error), and
//!   the run goes on.
//!
//! On SQLite one collector process works a database at a time (a lease
//! enforces it); on PostgreSQL any number share the frontier.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use echotrace_engine::sighting::{ItemContent, PreparedSighting, RecordedSighting, SightingConfig};
use echotrace_engine::{Actor, Engine, EngineError};
use echotrace_store::{
    now_ms, Backend, FrontierJob, JobOutcome, NewJob, SourceRow, SourceStatsDelta, SourceStatusRow,
    Store, StoreError, JOB_DONE, JOB_FAILED, JOB_QUEUED,
};
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinSet;

use crate::fetch::{FetchConfig, FetchError, FetchErrorKind, Fetched, Fetcher};
use crate::html::HtmlLimits;
use crate::platform::Platforms;
use crate::process::{bare_item, process_response, Child, Processed, SourceCtx};
use crate::source::{SourceConfig, SourceKind};
use crate::warc::{FetchEvidence, WarcConfig, WarcError, WarcWriter};

/// A source's context and the child jobs its finished jobs queue (with
/// the sighting each child is parented to).
type SourceChildren = (Arc<SourceCtx>, Vec<(Child, Option<i64>)>);

/// Collector settings.
#[derive(Clone, Debug)]
pub struct CollectorConfig {
    pub fetch: FetchConfig,
    /// Where WARC evidence goes.
    pub warc_dir: PathBuf,
    /// Keep payloads in WARC records (the operator's `--retain-media`).
    pub retain_media: bool,
    /// Concurrent fetches.
    pub workers: usize,
    /// How long a leased job is held before another worker may take it.
    pub lease: Duration,
    /// Attempts before a transiently failing URL is given up.
    pub max_attempts: i64,
    /// First retry delay (doubles per attempt).
    pub retry_backoff: Duration,
    pub html: HtmlLimits,
    pub sightings: SightingConfig,
    /// Largest local media file of an import hashed whole.
    pub max_media_bytes: u64,
    /// Names this process in leases, host slots and WARC file names.
    pub holder: String,
    /// Results committed per transaction (at most).
    pub commit_batch: usize,
}

impl CollectorConfig {
    /// Defaults around a fetch config.
    pub fn new(fetch: FetchConfig, warc_dir: PathBuf) -> Self {
        CollectorConfig {
            fetch,
            warc_dir,
            retain_media: false,
            workers: 8,
            lease: Duration::from_secs(300),
            max_attempts: 3,
            retry_backoff: Duration::from_secs(60),
            html: HtmlLimits::default(),
            sightings: SightingConfig::default(),
            max_media_bytes: 64 << 20,
            holder: default_holder(),
            commit_batch: 256,
        }
    }
}

/// Whether the process named in a holder id (`c<pid>-…`, see
/// [`default_holder`]) is gone from this machine (Linux `/proc`; elsewhere
/// never assumed dead).
fn holder_is_dead(holder: &str) -> bool {
    let Some(pid) = holder
        .strip_prefix('c')
        .and_then(|r| r.split('-').next())
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return false;
    };
    if pid == std::process::id() {
        return false;
    }
    std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// `c<pid>-<random>`: unique per process.
pub fn default_holder() -> String {
    let mut b = [0u8; 4];
    let _ = getrandom::getrandom(&mut b);
    format!(
        "c{}-{}",
        std::process::id(),
        echotrace_signals::digest::to_hex(&b)
    )
}

/// Why the collector stopped or refused.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// Bad input from the operator (a source name, a config, a path):
    /// the message names the field.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Another collector process works this SQLite database.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Warc(#[from] WarcError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{0}")]
    Import(String),
}

pub type Result<T, E = CollectorError> = std::result::Result<T, E>;

/// A source with its status, for listings.
#[derive(Clone, Debug, Serialize)]
pub struct SourceView {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    pub config: serde_json::Value,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_run_at: Option<i64>,
    pub last_run_status: String,
    pub items: i64,
    pub errors: i64,
    pub politeness_waits: i64,
    pub politeness_wait_ms: i64,
    pub last_error: Option<String>,
    pub queued: i64,
    pub done: i64,
    pub failed: i64,
}

/// How a run goes.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Only these sources (names); all enabled ones when `None`.
    pub sources: Option<Vec<String>>,
    /// Queue the sources' seeds (and import file-based sources) first.
    pub seed: bool,
    /// Stop when nothing is ready and nothing is due within
    /// `max_idle_wait` (else keep polling until `stop` fires).
    pub until_idle: bool,
    pub max_idle_wait: Duration,
    /// Stop after this many finished jobs.
    pub max_jobs: Option<u64>,
    /// Fires to stop (serve's shutdown).
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// Re-seed every source this often when not `until_idle`.
    pub reseed_every: Option<Duration>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            sources: None,
            seed: true,
            until_idle: true,
            max_idle_wait: Duration::from_secs(300),
            max_jobs: None,
            stop: None,
            reseed_every: None,
        }
    }
}

/// Counters of a run (also its progress reports).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunReport {
    pub jobs_done: u64,
    pub jobs_failed: u64,
    pub jobs_retried: u64,
    pub deferred: u64,
    pub fetched: u64,
    pub items: u64,
    pub new_sightings: u64,
    pub matched: u64,
    pub errors: u64,
    pub errors_by_kind: std::collections::BTreeMap<String, u64>,
    pub imported_items: u64,
    pub queued_remaining: i64,
    pub elapsed_ms: u64,
}

/// Largest page or feed body parsed and hashed on the worker task itself
/// (see `prepare_fetched`); larger bodies go to the blocking pool.
const INLINE_HASH_MAX_BYTES: usize = 256 << 10;

/// The lease one SQLite database's collector holds.
const SQLITE_WORKER_LEASE: &str = "collector:sqlite-worker";

/// The collector (see the module doc). Cheap to clone.
#[derive(Clone)]
pub struct Collector {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    config: CollectorConfig,
    fetcher: Arc<Fetcher>,
    warc: Mutex<WarcWriter>,
}

/// What one job produced, for the committer.
enum JobResult {
    Done {
        job: FrontierJob,
        src: Arc<SourceCtx>,
        /// Taken (moved into the batch) when the job is committed.
        main: Option<Box<PreparedSighting>>,
        outlinks: Vec<PreparedSighting>,
        children: Vec<Child>,
        http_status: Option<i64>,
        warning: Option<(&'static str, String)>,
        wait_ms: i64,
        waits: i64,
    },
    Failed {
        job: FrontierJob,
        src: Arc<SourceCtx>,
        kind: String,
        message: String,
        http_status: Option<i64>,
        /// Retry at this time instead of failing.
        retry_at: Option<i64>,
        bare: Option<Box<PreparedSighting>>,
        wait_ms: i64,
        waits: i64,
    },
    Deferred {
        id: i64,
    },
}

impl Collector {
    /// A collector over `engine`'s store.
    pub fn new(engine: Engine, config: CollectorConfig) -> Result<Self> {
        let mut fetch = config.fetch.clone();
        fetch.max_idle_per_host = fetch.max_idle_per_host.max(config.workers);
        let fetcher = Fetcher::new(fetch, Some(engine.store().clone()), &config.holder)?;
        let warc = WarcWriter::new(WarcConfig {
            dir: config.warc_dir.clone(),
            prefix: config.holder.clone(),
            retain_payloads: config.retain_media,
            max_file_bytes: 1 << 30,
        })?;
        Ok(Collector {
            inner: Arc::new(Inner {
                engine,
                fetcher: Arc::new(fetcher),
                warc: Mutex::new(warc),
                config,
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn store(&self) -> &Store {
        self.inner.engine.store()
    }

    pub fn config(&self) -> &CollectorConfig {
        &self.inner.config
    }

    /// The fetcher (spread tracking's liveness re-checks use it).
    pub fn fetcher(&self) -> Arc<Fetcher> {
        self.inner.fetcher.clone()
    }

    // ----- sources (see [`crate::registry`]) ---------------------------------

    pub async fn add_source(
        &self,
        actor: &Actor,
        name: &str,
        kind: &str,
        config: &str,
    ) -> Result<SourceView> {
        crate::registry::add_source(self.store(), actor, name, kind, config).await
    }

    pub async fn list_sources(&self) -> Result<Vec<SourceView>> {
        crate::registry::list_sources(self.store()).await
    }

    // ----- seeding ---------------------------------------------------------

    pub(crate) fn ctx(row: &SourceRow) -> Result<SourceCtx> {
        let kind = SourceKind::parse(&row.kind).ok_or_else(|| {
            CollectorError::Invalid(format!(
                "source {:?}: unknown kind {:?}",
                row.name, row.kind
            ))
        })?;
        let config = SourceConfig::parse(&row.config)
            .map_err(|e| CollectorError::Invalid(format!("source {:?}: {e}", row.name)))?;
        Ok(SourceCtx::new(row.id, &row.name, kind, config))
    }

    /// Queue a source's seeds ([`crate::registry::seed`]).
    pub async fn seed_source(&self, row: &SourceRow) -> Result<u64> {
        crate::registry::seed(self.store(), row).await
    }

    // ----- the run -----------------------------------------------------------

    /// Seed, import and drain the frontier (see the module doc). `progress`
    /// is called about once a second.
    pub async fn run<P>(&self, opts: RunOptions, progress: P) -> Result<RunReport>
    where
        P: Fn(&RunReport) + Send + Sync,
    {
        let started = Instant::now();
        let store = self.store().clone();
        let holder = self.inner.config.holder.clone();
        let lease_ms = i64::try_from(self.inner.config.lease.as_millis()).unwrap_or(300_000);
        let sqlite = store.backend() == Backend::Sqlite;
        if sqlite && !self.take_sqlite_lease().await? {
            return Err(CollectorError::Busy(
                "another collector process is working this SQLite database (SQLite runs one \
                 collector process; use PostgreSQL to run several)"
                    .into(),
            ));
        }
        let mut report = RunReport::default();
        let selected = self.selected_sources(opts.sources.as_deref()).await?;
        if opts.seed {
            self.seed_all(&selected, &mut report, &progress).await?;
        }
        let mut ctxs: HashMap<i64, Arc<SourceCtx>> = HashMap::new();
        for row in store.list_sources().await? {
            if let Ok(c) = Collector::ctx(&row) {
                ctxs.insert(row.id, Arc::new(c));
            }
        }
        let platforms = Arc::new(Platforms::load(&store).await?);
        let workers = self.inner.config.workers.max(1);
        let politeness = self.inner.config.fetch.politeness.enabled;
        let mut inflight: JoinSet<JobResult> = JoinSet::new();
        let mut local: Vec<FrontierJob> = Vec::new();
        let mut pending: Vec<JobResult> = Vec::new();
        let mut last_commit = Instant::now();
        let mut last_progress = Instant::now();
        let mut last_renew = Instant::now();
        let mut last_seed = Instant::now();
        let mut stop = opts.stop.clone();
        let mut finished: u64 = 0;
        // Jobs this process holds (started or waiting): their leases are
        // renewed, so a slow fetch never lets another process take them.
        let mut held: std::collections::HashSet<i64> = std::collections::HashSet::new();
        let mut last_job_renew = Instant::now();
        loop {
            let stopping = stop.as_ref().is_some_and(|s| *s.borrow())
                || opts
                    .max_jobs
                    .is_some_and(|m| finished + inflight.len() as u64 >= m);
            if sqlite && last_renew.elapsed() > self.inner.config.lease / 3 {
                store
                    .try_lease(SQLITE_WORKER_LEASE, &holder, self.inner.config.lease)
                    .await?;
                last_renew = Instant::now();
            }
            if !stopping {
                if let (Some(every), false) = (opts.reseed_every, opts.until_idle) {
                    if last_seed.elapsed() >= every {
                        let rows = self.selected_sources(opts.sources.as_deref()).await?;
                        self.seed_all(&rows, &mut report, &progress).await?;
                        for row in store.list_sources().await? {
                            if let Ok(c) = Collector::ctx(&row) {
                                ctxs.insert(row.id, Arc::new(c));
                            }
                        }
                        last_seed = Instant::now();
                    }
                }
                while inflight.len() < workers
                    && opts
                        .max_jobs
                        .is_none_or(|m| finished + (inflight.len() as u64) < m)
                {
                    if local.is_empty() {
                        let want = (workers * 4).clamp(16, 512) as i64;
                        local = store
                            .lease_jobs(&holder, want, lease_ms, politeness)
                            .await?;
                        local.reverse();
                        held.extend(local.iter().map(|j| j.id));
                    }
                    let Some(job) = local.pop() else { break };
                    let src = match ctxs.get(&job.source_id) {
                        Some(s) => s.clone(),
                        None => match store.get_source(job.source_id).await? {
                            Some(row) => {
                                let c = Arc::new(Collector::ctx(&row)?);
                                ctxs.insert(row.id, c.clone());
                                c
                            }
                            None => continue,
                        },
                    };
                    let this = self.clone();
                    let platforms = platforms.clone();
                    inflight.spawn(async move { this.work(job, src, platforms).await });
                }
            }
            if last_job_renew.elapsed() > self.inner.config.lease / 3 && !held.is_empty() {
                let ids: Vec<i64> = held.iter().copied().collect();
                store.renew_jobs(&ids, &holder, lease_ms).await?;
                last_job_renew = Instant::now();
            }
            if inflight.is_empty() {
                self.commit(&mut pending, &mut report).await?;
                last_commit = Instant::now();
                // Give back jobs leased but not started (stopping).
                for j in local.drain(..) {
                    held.remove(&j.id);
                    store.defer_job(j.id, &holder, j.not_before).await?;
                }
                if stopping {
                    break;
                }
                let counts = store.frontier_counts(None).await?;
                if counts.ready == 0 {
                    let next = [counts.next_due_at, counts.next_lease_expiry]
                        .into_iter()
                        .flatten()
                        .min();
                    let now = now_ms();
                    let wait_ms = next.map(|t| (t - now).max(0));
                    let idle_limit =
                        i64::try_from(opts.max_idle_wait.as_millis()).unwrap_or(i64::MAX);
                    if opts.until_idle && wait_ms.is_none_or(|w| w > idle_limit) {
                        report.queued_remaining = counts.queued;
                        break;
                    }
                    let nap = wait_ms.unwrap_or(1000).clamp(20, 1000);
                    let sleep = tokio::time::sleep(Duration::from_millis(nap as u64));
                    match stop.as_mut() {
                        Some(s) => {
                            tokio::select! {
                                _ = sleep => {}
                                _ = s.changed() => {}
                            }
                        }
                        None => sleep.await,
                    }
                } else {
                    // Jobs are ready but none could be leased (their hosts'
                    // politeness slots are taken): wait a moment.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            } else {
                let tick = tokio::time::sleep(Duration::from_millis(200));
                tokio::select! {
                    r = inflight.join_next() => {
                        if let Some(r) = r {
                            match r {
                                Ok(res) => {
                                    match &res {
                                        JobResult::Deferred { id } => {
                                            held.remove(id);
                                            report.deferred += 1;
                                        }
                                        JobResult::Done { job, .. } | JobResult::Failed { job, .. } => {
                                            held.remove(&job.id);
                                            finished += 1;
                                        }
                                    }
                                    pending.push(res);
                                }
                                Err(e) => tracing::warn!(error = %e, "collector worker task failed"),
                            }
                        }
                    }
                    _ = tick => {}
                }
            }
            if pending.len() >= self.inner.config.commit_batch
                || (!pending.is_empty() && last_commit.elapsed() > Duration::from_millis(200))
            {
                self.commit(&mut pending, &mut report).await?;
                last_commit = Instant::now();
            }
            if last_progress.elapsed() >= Duration::from_secs(1) {
                report.elapsed_ms = started.elapsed().as_millis() as u64;
                progress(&report);
                last_progress = Instant::now();
            }
        }
        self.commit(&mut pending, &mut report).await?;
        if let Ok(mut w) = self.inner.warc.lock() {
            w.close()?;
        }
        let mut tx = store.write().await?;
        for row in &selected {
            tx.source_run_finished(row.id, "done").await?;
        }
        tx.commit().await?;
        if sqlite {
            store.release_lease(SQLITE_WORKER_LEASE, &holder).await?;
        }
        report.queued_remaining = store.frontier_counts(None).await?.queued;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        progress(&report);
        Ok(report)
    }

    /// Take the SQLite database's one-collector lease. A lease left by a
    /// collector process that no longer exists (killed; SQLite files are
    /// local, so its holder's process id is checked on this machine) is
    /// taken over at once instead of after it expires.
    async fn take_sqlite_lease(&self) -> Result<bool> {
        let store = self.store();
        let holder = &self.inner.config.holder;
        let ttl = self.inner.config.lease;
        if store
            .try_lease(SQLITE_WORKER_LEASE, holder, ttl)
            .await?
            .is_some()
        {
            return Ok(true);
        }
        let Some(lease) = store.get_lease(SQLITE_WORKER_LEASE).await? else {
            return Ok(false);
        };
        if holder_is_dead(&lease.holder) {
            store
                .release_lease(SQLITE_WORKER_LEASE, &lease.holder)
                .await?;
            return Ok(store
                .try_lease(SQLITE_WORKER_LEASE, holder, ttl)
                .await?
                .is_some());
        }
        Ok(false)
    }

    async fn selected_sources(&self, names: Option<&[String]>) -> Result<Vec<SourceRow>> {
        let all = self.store().list_sources().await?;
        match names {
            None => Ok(all.into_iter().filter(|s| s.enabled).collect()),
            Some(names) => names
                .iter()
                .map(|n| {
                    all.iter()
                        .find(|s| s.name == n.trim())
                        .cloned()
                        .ok_or_else(|| CollectorError::NotFound(format!("source {:?}", n.trim())))
                })
                .collect(),
        }
    }

    async fn seed_all<P>(
        &self,
        rows: &[SourceRow],
        report: &mut RunReport,
        progress: &P,
    ) -> Result<()>
    where
        P: Fn(&RunReport) + Send + Sync,
    {
        for row in rows {
            let mut tx = self.store().write().await?;
            tx.source_run_started(row.id).await?;
            tx.commit().await?;
            let ctx = Collector::ctx(row)?;
            match ctx.kind {
                SourceKind::TelegramExport | SourceKind::Warc => {
                    let path =
                        std::path::PathBuf::from(ctx.config.path.clone().unwrap_or_default());
                    let on_progress = |p: &crate::import::ImportReport| {
                        let mut rep = report.clone();
                        rep.imported_items += p.items;
                        progress(&rep);
                    };
                    let r = if ctx.kind == SourceKind::Warc {
                        self.import_warc(row, &path, on_progress).await
                    } else {
                        self.import_telegram(row, &path, on_progress).await
                    };
                    match r {
                        Ok(r) => report.imported_items += r.items,
                        Err(e) => self.source_failed(row.id, &e.to_string()).await?,
                    }
                }
                _ => {
                    if let Err(e) = self.seed_source(row).await {
                        self.source_failed(row.id, &e.to_string()).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn source_failed(&self, id: i64, message: &str) -> Result<()> {
        let mut tx = self.store().write().await?;
        tx.add_source_stats(
            id,
            &SourceStatsDelta {
                errors: 1,
                last_error: Some(message.chars().take(500).collect()),
                ..SourceStatsDelta::default()
            },
        )
        .await?;
        tx.source_run_finished(id, "failed").await?;
        tx.commit().await?;
        Ok(())
    }

    /// Fetch and prepare one job (runs on a worker task).
    async fn work(
        &self,
        job: FrontierJob,
        src: Arc<SourceCtx>,
        platforms: Arc<Platforms>,
    ) -> JobResult {
        let fetcher = self.inner.fetcher.clone();
        let net = src.config.net();
        // Wait a little for a busy host; beyond that, put the job back.
        let max_wait = Duration::from_secs(2);
        let fetched = fetcher.fetch_waiting(&job.url, &net, max_wait).await;
        match fetched {
            Err(e) if e.kind == FetchErrorKind::Deferred => {
                let at = e.retry_at.unwrap_or_else(|| now_ms() + 1000);
                if let Err(err) = self
                    .store()
                    .defer_job(job.id, &self.inner.config.holder, at)
                    .await
                {
                    tracing::warn!(error = %err, "could not put a deferred job back");
                }
                JobResult::Deferred { id: job.id }
            }
            Err(e) => {
                self.failure(
                    job,
                    src,
                    &platforms,
                    e.kind.as_str(),
                    e.message,
                    None,
                    e.kind.is_transient(),
                    0,
                    0,
                )
                .await
            }
            Ok(f) => {
                let wait_ms = f.politeness_wait.as_millis() as i64;
                let waits = i64::from(f.politeness_waits);
                let locker = src
                    .lockers
                    .rule_for(
                        &url::Url::parse(&f.final_url)
                            .ok()
                            .and_then(|u| u.host_str().map(str::to_string))
                            .unwrap_or_default(),
                        "",
                        &src.config.locker_hosts,
                    )
                    .is_some()
                    || job.kind == "locker";
                if !(f.is_success() || locker && f.status >= 400) {
                    let transient = f.status >= 500 || f.status == 429;
                    let msg = format!("HTTP {}", f.status);
                    let status = Some(i64::from(f.status));
                    self.write_evidence(&f, None).ok();
                    return self
                        .failure(
                            job, src, &platforms, "http", msg, status, transient, wait_ms, waits,
                        )
                        .await;
                }
                self.prepare_fetched(job, src, platforms, f, wait_ms, waits)
                    .await
            }
        }
    }

    async fn prepare_fetched(
        &self,
        job: FrontierJob,
        src: Arc<SourceCtx>,
        platforms: Arc<Platforms>,
        f: Fetched,
        wait_ms: i64,
        waits: i64,
    ) -> JobResult {
        let engine = self.inner.engine.clone();
        let limits = self.inner.config.html.clone();
        let src2 = src.clone();
        let job2 = job.clone();
        let platforms2 = platforms.clone();
        let store = self.store().clone();
        // Content dedup: bytes already hashed under another URL.
        // (Pages are cheap to hash and rarely repeat: only files are looked up.)
        // Images are always hashed again: their robust query set (dihedral,
        // borders, crops) is not stored, and the same bytes must match the
        // same way at every URL, as a lookup of them would.
        let page_like = f
            .content_type()
            .is_some_and(|t| t.contains("html") || t.contains("xml") || t.contains("json"));
        let image = matches!(
            echotrace_signals::content::detect_kind(&f.body),
            Some(echotrace_signals::content::ContentKind::Image(_))
        );
        let known = if f.body.is_empty() || page_like || image || job.kind == "feed" {
            None
        } else {
            store.signals_of_content_sha(&f.sha256).await.ok().flatten()
        };
        // A page or feed of modest size is parsed and hashed right here, on
        // the worker task (text MinHash and digests: tens of microseconds);
        // anything else — images, video, PDF, large bodies — on the
        // blocking pool, where a slow decoder holds no runtime thread.
        let html = f.content_type().is_some_and(|t| t.contains("html"));
        // The type is the server's word: a body that sniffs as an image,
        // video or PDF is decoded on the blocking pool whatever it claims.
        let inline = (html || (job.kind == "feed" && page_like))
            && job.kind != "file"
            && f.body.len() <= INLINE_HASH_MAX_BYTES
            && matches!(
                echotrace_signals::content::detect_kind(&f.body),
                Some(echotrace_signals::content::ContentKind::Text) | None
            );
        let prepare = move || {
            let Processed {
                mut main,
                outlinks,
                children,
                warning,
            } = process_response(&src2, &platforms2, &job2, &f, &limits);
            if let (Some(signals), ItemContent::Bytes(_)) = (&known, &main.content) {
                let parsed: Vec<echotrace_engine::SignalValue> = signals
                    .iter()
                    .filter(|(t, _)| t != "url" && t != "url_sha256")
                    .filter_map(|(t, v)| {
                        let t: echotrace_signals::signal::SignalType = t.parse().ok()?;
                        Some(echotrace_engine::SignalValue {
                            signal_type: t,
                            value: v.clone(),
                        })
                    })
                    .collect();
                let media = echotrace_engine::sighting::media_type_of(&f.body);
                main.content = ItemContent::Known {
                    content_sha256: f.sha256.clone(),
                    media_type: media.to_string(),
                    signals: parsed,
                };
            }
            let main = engine.prepare_sighting(main);
            let outlinks: Vec<PreparedSighting> = outlinks
                .into_iter()
                .filter_map(|o| engine.prepare_sighting(o).ok())
                .collect();
            (main, outlinks, children, warning, f)
        };
        let work = if inline {
            Ok(prepare())
        } else {
            tokio::task::spawn_blocking(prepare).await
        };
        let (main, outlinks, children, warning, f) = match work {
            Ok(x) => x,
            Err(e) => {
                return self
                    .failure(
                        job,
                        src,
                        &platforms,
                        "internal",
                        e.to_string(),
                        None,
                        false,
                        wait_ms,
                        waits,
                    )
                    .await
            }
        };
        let mut main = match main {
            Ok(m) => m,
            Err(e) => {
                return self
                    .failure(
                        job,
                        src,
                        &platforms,
                        "invalid_url",
                        e.to_string(),
                        Some(i64::from(f.status)),
                        false,
                        wait_ms,
                        waits,
                    )
                    .await
            }
        };
        match self.write_evidence(&f, Some(&main)) {
            Ok(Some(w)) => main.set_warc(w),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "WARC write failed"),
        }
        JobResult::Done {
            http_status: Some(i64::from(f.status)),
            job,
            src,
            main: Some(Box::new(main)),
            outlinks,
            children,
            warning,
            wait_ms,
            waits,
        }
    }

    /// Write the WARC records of a fetch; the response record's reference.
    fn write_evidence(
        &self,
        f: &Fetched,
        prepared: Option<&PreparedSighting>,
    ) -> Result<Option<echotrace_store::WarcRef>, WarcError> {
        let target = url::Url::parse(&f.final_url).ok();
        let (host, path) = target
            .as_ref()
            .map(|u| {
                let mut p = u.path().to_string();
                if let Some(q) = u.query() {
                    p.push('?');
                    p.push_str(q);
                }
                (u.host_str().unwrap_or("").to_string(), p)
            })
            .unwrap_or_default();
        let request_head = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {}\r\nAccept-Encoding: gzip, deflate\r\n\r\n",
            self.inner.config.fetch.user_agent
        );
        let metadata = match prepared {
            Some(p) => evidence_metadata(p),
            None => json!({"echotrace": {"matched": false, "http_status": f.status}}).to_string(),
        };
        let ct = f.content_type();
        let mut w = self.inner.warc.lock().map_err(|_| {
            WarcError::Write("?".into(), std::io::Error::other("WARC writer poisoned"))
        })?;
        let recs = w.write_fetch(&FetchEvidence {
            target_uri: &f.final_url,
            date_ms: f.fetched_at,
            remote_ip: f.remote_ip,
            request_head,
            status: f.status,
            response_headers: &f.headers,
            payload: &f.body,
            payload_sha256_hex: Some(&f.sha256),
            content_type: ct.as_deref(),
            metadata,
        })?;
        Ok(Some(echotrace_store::WarcRef {
            file: recs.response.file,
            offset: i64::try_from(recs.response.offset).unwrap_or(i64::MAX),
            length: i64::try_from(recs.response.length).unwrap_or(i64::MAX),
            record_id: recs.response.record_id,
        }))
    }

    #[allow(clippy::too_many_arguments)]
    async fn failure(
        &self,
        job: FrontierJob,
        src: Arc<SourceCtx>,
        platforms: &Platforms,
        kind: &str,
        message: String,
        http_status: Option<i64>,
        transient: bool,
        wait_ms: i64,
        waits: i64,
    ) -> JobResult {
        let retry_at = (transient && job.attempts < self.inner.config.max_attempts).then(|| {
            let backoff = self.inner.config.retry_backoff.as_millis() as i64;
            now_ms() + backoff.saturating_mul(1 << (job.attempts - 1).clamp(0, 10))
        });
        let bare = if retry_at.is_none() {
            let item = bare_item(
                &src,
                platforms,
                &job.url,
                job.parent_sighting_id,
                now_ms(),
                Some(json!({"fetch_error": kind, "message": message, "http_status": http_status})),
            );
            let engine = self.inner.engine.clone();
            tokio::task::spawn_blocking(move || engine.prepare_sighting(item).ok())
                .await
                .ok()
                .flatten()
                .map(Box::new)
        } else {
            None
        };
        JobResult::Failed {
            job,
            src,
            kind: kind.to_string(),
            message,
            http_status,
            retry_at,
            bare,
            wait_ms,
            waits,
        }
    }

    /// Commit finished jobs in one transaction (see the module doc): the
    /// jobs still held are locked, their items recorded in two bulk calls
    /// (the jobs' own items, then their outlinks parented to them), their
    /// links queued, the jobs finished and the sources' counters added.
    async fn commit(&self, pending: &mut Vec<JobResult>, report: &mut RunReport) -> Result<()> {
        pending.retain(|r| !matches!(r, JobResult::Deferred { .. }));
        if pending.is_empty() {
            return Ok(());
        }
        if let Ok(mut w) = self.inner.warc.lock() {
            w.sync()?;
        }
        let holder = self.inner.config.holder.clone();
        let engine = &self.inner.engine;
        let cfg = &self.inner.config.sightings;
        let mut tx = self.store().write().await?;
        let ids: Vec<i64> = pending
            .iter()
            .filter_map(|r| match r {
                JobResult::Done { job, .. } | JobResult::Failed { job, .. } => Some(job.id),
                JobResult::Deferred { .. } => None,
            })
            .collect();
        let held: std::collections::HashSet<i64> =
            tx.held_jobs(&ids, &holder).await?.into_iter().collect();
        // A job whose lease was taken over by another worker is dropped:
        // that worker's result counts.
        pending.retain(|r| match r {
            JobResult::Done { job, .. } | JobResult::Failed { job, .. } => held.contains(&job.id),
            JobResult::Deferred { .. } => false,
        });
        let mut stats: HashMap<i64, SourceStatsDelta> = HashMap::new();
        let mut rep = report.clone();
        // 1. The jobs' own items (and the bare items of final failures).
        let mut mains: Vec<PreparedSighting> = Vec::with_capacity(pending.len());
        let mut main_of: Vec<Option<usize>> = Vec::with_capacity(pending.len());
        for r in pending.iter_mut() {
            let item = match r {
                JobResult::Done { main, .. } => main.take(),
                JobResult::Failed { bare, .. } => bare.take(),
                JobResult::Deferred { .. } => None,
            };
            match item {
                Some(m) => {
                    main_of.push(Some(mains.len()));
                    mains.push(*m);
                }
                None => main_of.push(None),
            }
        }
        let recs = engine.record_sightings(&mut tx, &mains, cfg).await?;
        count(&mut rep, recs.iter());
        let id_of = |i: usize| main_of[i].and_then(|m| recs.get(m)).map(|r| r.sighting_id);
        // 2. Outlinks, parented to their job's item; 3. links to queue.
        let mut outlinks: Vec<PreparedSighting> = Vec::new();
        let mut jobs_by_source: HashMap<i64, SourceChildren> = HashMap::new();
        for (i, r) in pending.iter_mut().enumerate() {
            if let JobResult::Done {
                src,
                outlinks: outs,
                children,
                ..
            } = r
            {
                let parent = id_of(i);
                for mut o in std::mem::take(outs) {
                    o.parent_id = parent;
                    outlinks.push(o);
                }
                let e = jobs_by_source
                    .entry(src.id)
                    .or_insert_with(|| (src.clone(), Vec::new()));
                e.1.extend(std::mem::take(children).into_iter().map(|c| (c, parent)));
            }
        }
        let rec_out = engine.record_sightings(&mut tx, &outlinks, cfg).await?;
        count(&mut rep, rec_out.iter());
        for (src, kids) in jobs_by_source.values() {
            enqueue_with_parents(&mut tx, src, kids).await?;
        }
        // 4. Finish the jobs (one statement for the batch).
        let mut outcomes: Vec<(i64, JobOutcome<'_>)> = Vec::with_capacity(pending.len());
        for (i, r) in pending.iter().enumerate() {
            match r {
                JobResult::Deferred { .. } => {}
                JobResult::Done {
                    job,
                    src,
                    outlinks: _,
                    http_status,
                    warning,
                    wait_ms,
                    waits,
                    ..
                } => {
                    outcomes.push((
                        job.id,
                        JobOutcome {
                            state: JOB_DONE,
                            not_before: 0,
                            http_status: *http_status,
                            error_kind: warning.as_ref().map(|w| w.0),
                            error: warning.as_ref().map(|w| w.1.as_str()),
                            sighting_id: id_of(i),
                        },
                    ));
                    rep.fetched += 1;
                    rep.jobs_done += 1;
                    let s = stats.entry(src.id).or_default();
                    s.items += 1;
                    s.politeness_waits += *waits;
                    s.politeness_wait_ms += *wait_ms;
                    if let Some((k, m)) = warning {
                        s.errors += 1;
                        s.last_error = Some(format!("{}: {m}", job.url));
                        *rep.errors_by_kind.entry(k.to_string()).or_default() += 1;
                        rep.errors += 1;
                    }
                }
                JobResult::Failed {
                    job,
                    src,
                    kind,
                    message,
                    http_status,
                    retry_at,
                    wait_ms,
                    waits,
                    ..
                } => {
                    let state = if retry_at.is_some() {
                        JOB_QUEUED
                    } else {
                        JOB_FAILED
                    };
                    outcomes.push((
                        job.id,
                        JobOutcome {
                            state,
                            not_before: retry_at.unwrap_or(0),
                            http_status: *http_status,
                            error_kind: Some(kind),
                            error: Some(message),
                            sighting_id: id_of(i),
                        },
                    ));
                    let s = stats.entry(src.id).or_default();
                    s.politeness_waits += *waits;
                    s.politeness_wait_ms += *wait_ms;
                    if retry_at.is_some() {
                        rep.jobs_retried += 1;
                    } else {
                        rep.jobs_failed += 1;
                        rep.errors += 1;
                        *rep.errors_by_kind.entry(kind.clone()).or_default() += 1;
                        s.errors += 1;
                        s.last_error = Some(format!("{}: {message}", job.url));
                        s.items += 1;
                    }
                }
            }
        }
        tx.finish_jobs(&holder, &outcomes).await?;
        // Outlinks count as items of their source.
        for (r, o) in rec_out.iter().zip(&outlinks) {
            let _ = r;
            if let Some(sid) = o.source_id {
                stats.entry(sid).or_default().items += 1;
            }
        }
        for (id, d) in &stats {
            tx.add_source_stats(*id, d).await?;
        }
        tx.commit().await?;
        *report = rep;
        pending.clear();
        Ok(())
    }
}

/// The `metadata` record of a fetch: the item's signals and match result,
/// serialised straight from the prepared item (keys in the order a
/// `serde_json::Value` writes them, so the record is as before).
fn evidence_metadata(p: &PreparedSighting) -> String {
    #[derive(Serialize)]
    struct Signal<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        value: &'a str,
    }
    #[derive(Serialize)]
    struct Meta<'a> {
        content_sha256: &'a str,
        hash_error: &'a Option<String>,
        matched: bool,
        /// Through a `Value`, so each hit's keys stay sorted as before.
        matches: serde_json::Value,
        media_type: &'a str,
        signals: Vec<Signal<'a>>,
        source: &'a str,
        suppressed_by_allow: bool,
        url_canonical: &'a str,
    }
    #[derive(Serialize)]
    struct Doc<'a> {
        echotrace: Meta<'a>,
    }
    let doc = Doc {
        echotrace: Meta {
            content_sha256: &p.content_sha256,
            hash_error: &p.hash_error,
            matched: p.is_match(),
            // No hits is `[]`: the empty list of `hits()`.
            matches: serde_json::to_value(p.hits()).unwrap_or_default(),
            media_type: &p.media_type,
            signals: p
                .signals
                .iter()
                .map(|s| Signal {
                    kind: s.signal_type.as_str(),
                    value: &s.value,
                })
                .collect(),
            source: &p.source_name,
            suppressed_by_allow: p.suppressed_by_allow,
            url_canonical: &p.url_canonical,
        },
    };
    serde_json::to_string(&doc).unwrap_or_default()
}

fn count<'a>(rep: &mut RunReport, recs: impl Iterator<Item = &'a RecordedSighting>) {
    for r in recs {
        rep.items += 1;
        if r.is_new {
            rep.new_sightings += 1;
        }
        if !r.match_ids.is_empty() {
            rep.matched += 1;
        }
    }
}

/// [`enqueue`] for links with their own parents.
pub(crate) async fn enqueue_with_parents(
    tx: &mut echotrace_store::WriteTx,
    src: &SourceCtx,
    children: &[(Child, Option<i64>)],
) -> Result<u64> {
    let revisit_ms = i64::from(src.config.revisit_hours) * 3_600_000;
    let requeue_before = now_ms() - revisit_ms;
    let keys: Vec<Option<(String, String)>> = children
        .iter()
        .map(|(c, _)| {
            echotrace_signals::canonical_url::canonicalize_url(&c.url)
                .ok()
                .map(|k| (k.sha256, k.host))
        })
        .collect();
    let rows: Vec<NewJob> = children
        .iter()
        .zip(&keys)
        .filter_map(|((c, parent), k)| {
            let (sha, host) = k.as_ref()?;
            Some(NewJob {
                source_id: src.id,
                url: &c.url,
                url_sha256: sha,
                host,
                kind: c.kind,
                depth: c.depth,
                seed_host: &c.seed_host,
                parent_sighting_id: *parent,
                not_before: 0,
            })
        })
        .collect();
    Ok(tx.enqueue_jobs(&rows, requeue_before).await?)
}

/// Queue `children` of a source (canonical-URL dedup; finished jobs older
/// than the revisit interval are queued again).
pub(crate) async fn enqueue(
    tx: &mut echotrace_store::WriteTx,
    src: &SourceCtx,
    children: &[Child],
    parent: Option<i64>,
) -> Result<u64> {
    let with: Vec<(Child, Option<i64>)> = children.iter().map(|c| (c.clone(), parent)).collect();
    enqueue_with_parents(tx, src, &with).await
}

pub(crate) fn view(
    row: &SourceRow,
    st: &SourceStatusRow,
    queued: i64,
    done: i64,
    failed: i64,
) -> SourceView {
    SourceView {
        id: row.id,
        name: row.name.clone(),
        kind: row.kind.clone(),
        enabled: row.enabled,
        config: serde_json::from_str(&row.config).unwrap_or(serde_json::Value::Null),
        created_by: row.created_by.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
        last_run_at: st.last_run_at,
        last_run_status: st.last_run_status.clone(),
        items: st.items_total,
        errors: st.errors_total,
        politeness_waits: st.politeness_waits,
        politeness_wait_ms: st.politeness_wait_ms,
        last_error: st.last_error.clone(),
        queued,
        done,
        failed,
    }
}

/// Source names: 1-100 characters of A-Z a-z 0-9 _ - . :
pub fn validate_source_name(name: &str) -> Result<&str> {
    let n = name.trim();
    let ok = !n.is_empty()
        && n.len() <= 100
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(n)
    } else {
        Err(CollectorError::Invalid(
            "name: source names are 1-100 characters of A-Z a-z 0-9 _ - . :".into(),
        ))
    }
}
