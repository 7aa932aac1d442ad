//! Fetch workers: one task per exchange, all concurrent; one process per
//! exchange at a time through a lease (`exchange:<id>`); each batch and its
//! checkpoint committed together under the lease's fence.
//!
//! A round: take (or renew) the lease; start a full fetch if there is no
//! checkpoint or it is stale; fetch pages and apply them in groups (one
//! transaction per group of consecutive pages while the upstream has more,
//! up to [`GROUP_MAX_PAGES`], [`GROUP_MAX_RECORDS`], [`GROUP_MAX_BYTES`] or
//! [`GROUP_MAX_WAIT`]); retry 429/5xx,
//! network errors and timeouts with `Retry-After` (or exponential backoff)
//! up to [`MAX_RETRIES`] times; when caught up, sweep if the round was a
//! full fetch and compare checksums with publishers that send one. The
//! round's outcome goes to the exchange's status; the next round comes
//! after the poll interval (at once for long-polling adapters, later after
//! failures).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use echotrace_engine::exchange::{ExchangeBatch, LeaseFence, UpstreamRecord};
use echotrace_engine::EngineError;
use echotrace_store::ExchangeRow;
use serde::Serialize;
use tokio::sync::Notify;

use crate::adapter::{self, Adapter, FetchError, Page};
use crate::ExchangeService;

/// Retries of one page within a round.
pub const MAX_RETRIES: u32 = 5;
/// Longest pause honoured from a `Retry-After`.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Pages applied in one transaction at most: an exchange's page size (the
/// operator's `batch` / `page_size`) still sets the grain of progress, ten
/// times coarser.
pub const GROUP_MAX_PAGES: usize = 10;
/// Records applied in one transaction at most. Pages are grouped because a
/// batch's cost is dominated by the random-keyed B-trees it touches (records
/// by key, signals by value): each transaction rewrites every leaf page it
/// touches, and a 10,000-record batch into a large bank touches about one
/// per record. A 1M-record file exchange took 39 CPU-s at 10,000 records
/// per transaction and 20 at 100,000 (docs/BENCHMARKS.md, "Signal
/// exchange").
pub const GROUP_MAX_RECORDS: usize = 100_000;
/// Estimated bytes of the records held for one transaction at most (a
/// hostile upstream's large records end a group early).
pub const GROUP_MAX_BYTES: usize = 64 << 20;
/// Longest a fetched page waits for the pages after it before it is applied
/// (a slow paginated upstream still becomes matchable page by page).
pub const GROUP_MAX_WAIT: Duration = Duration::from_secs(1);

/// What one round did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RoundReport {
    pub pages: u64,
    pub records: u64,
    pub items_added: u64,
    pub items_deleted: u64,
    pub tombstoned: u64,
    pub swept: u64,
    pub malformed: u64,
    pub unsupported: u64,
    pub retries: u64,
    pub full_fetch: bool,
    pub caught_up: bool,
    /// The publisher's checksum differed from ours: the next round is a
    /// full fetch.
    pub drift: bool,
    /// The first malformed-record reasons (`"<upstream id>: <reason>"`).
    pub malformed_examples: Vec<String>,
    pub upstream_checksum: Option<String>,
}

/// Why a round stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("another process holds the lease of this exchange")]
    LeaseHeld,
}

impl RoundError {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            RoundError::Fetch(FetchError::Net(e)) => e.retry_after(),
            _ => None,
        }
    }
}

impl From<echotrace_store::StoreError> for RoundError {
    fn from(e: echotrace_store::StoreError) -> Self {
        RoundError::Engine(e.into())
    }
}

/// The lease name of an exchange.
pub fn lease_name(id: i64) -> String {
    format!("exchange:{id}")
}

/// Fingerprint of what the adapter is built from.
fn fingerprint(row: &ExchangeRow) -> String {
    format!("{}\u{0}{}\u{0}{:?}", row.api, row.config, row.credentials)
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1u64 << attempt.min(8)))
        .min(Duration::from_secs(60))
}

impl ExchangeService {
    fn lease_ttl(&self) -> Duration {
        self.config.lease_ttl.max(Duration::from_millis(500))
    }

    /// Take (or renew) an exchange's lease for this process.
    async fn lease(&self, id: i64) -> Result<Option<LeaseFence>, RoundError> {
        let name = lease_name(id);
        Ok(self
            .engine
            .store()
            .try_lease(&name, &self.config.holder, self.lease_ttl())
            .await?
            .map(|epoch| LeaseFence {
                name,
                holder: self.config.holder.clone(),
                epoch,
            }))
    }

    /// Run one fetch round of an exchange now, in this process (CLI
    /// `exchange fetch`, "fetch now" in the console). Fails with
    /// [`RoundError::LeaseHeld`] when another process is fetching it.
    pub async fn fetch_once(&self, id: i64) -> Result<RoundReport, RoundError> {
        self.fetch_once_with(id, None).await
    }

    /// [`ExchangeService::fetch_once`] calling `progress` after every page.
    pub async fn fetch_once_with(
        &self,
        id: i64,
        progress: Option<&(dyn Fn(&RoundReport) + Sync)>,
    ) -> Result<RoundReport, RoundError> {
        let row = self.engine.exchange_row(id).await?;
        let Some(fence) = self.lease(id).await? else {
            return Err(RoundError::LeaseHeld);
        };
        let mut adapter = self.adapter_for(&row)?;
        let result = self.round(id, adapter.as_mut(), &fence, progress).await;
        self.record_outcome(id, &result).await;
        let _ = self
            .engine
            .store()
            .release_lease(&fence.name, &fence.holder)
            .await;
        result
    }

    /// Write a round's outcome to the exchange's status.
    async fn record_outcome(&self, id: i64, result: &Result<RoundReport, RoundError>) {
        let store = self.engine.store();
        let now = echotrace_store::now_ms();
        let written = match result {
            Ok(r) => {
                let ok = store
                    .set_exchange_fetch_done(
                        id,
                        now,
                        None,
                        r.upstream_checksum.as_deref(),
                        r.caught_up,
                    )
                    .await;
                if r.malformed > 0 || r.drift {
                    let mut msg = String::new();
                    if r.malformed > 0 {
                        msg.push_str(&format!(
                            "{} malformed record(s) skipped in the last fetch; first: {}",
                            r.malformed,
                            r.malformed_examples.join("; ")
                        ));
                    }
                    if r.drift {
                        if !msg.is_empty() {
                            msg.push_str("; ");
                        }
                        msg.push_str(
                            "checksum drift against the publisher: re-fetching everything",
                        );
                    }
                    let _ = store
                        .set_exchange_fetch_done(id, now, Some(&msg), None, false)
                        .await;
                }
                ok
            }
            Err(e) => {
                tracing::warn!(exchange = id, error = %e, "exchange fetch failed");
                store
                    .set_exchange_fetch_done(id, now, Some(&e.to_string()), None, false)
                    .await
            }
        };
        if let Err(e) = written {
            tracing::warn!(exchange = id, error = %e, "exchange status not written");
        }
    }

    /// One round: pages until caught up (or an error), each applied with
    /// its checkpoint under `fence`.
    pub(crate) async fn round(
        &self,
        id: i64,
        adapter: &mut dyn Adapter,
        fence: &LeaseFence,
        progress: Option<&(dyn Fn(&RoundReport) + Sync)>,
    ) -> Result<RoundReport, RoundError> {
        let store = self.engine.store();
        store
            .set_exchange_fetch_started(id, echotrace_store::now_ms())
            .await?;
        let mut row = self.engine.exchange_row(id).await?;
        let stale = row
            .checkpoint
            .as_deref()
            .is_some_and(|c| adapter.is_stale(c));
        if (row.checkpoint.is_none() && !row.full_fetch) || stale {
            self.engine.begin_full_fetch(id, Some(fence)).await?;
            row = self.engine.exchange_row(id).await?;
        }
        let mut report = RoundReport {
            full_fetch: row.full_fetch,
            ..RoundReport::default()
        };
        // Keep the lease alive while pages are fetched (a long-poll or a
        // slow page may outlast it); a lost lease shows at the next fenced
        // commit.
        let renewer = {
            let store = self.engine.store().clone();
            let (name, holder, ttl) = (fence.name.clone(), fence.holder.clone(), self.lease_ttl());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    if !matches!(store.try_lease(&name, &holder, ttl).await, Ok(Some(_))) {
                        break;
                    }
                }
            })
        };
        let _stop_renewer = AbortOnDrop(renewer);
        let mut cp = row.checkpoint.clone();
        let mut attempt = 0u32;
        let mut restarts = 0u32;
        // Pages fetched and not yet applied; their checkpoint is not stored
        // until they are, so a crash only makes them be fetched again.
        let mut group: Option<Group> = None;
        // The page after a full group, fetched while the group was applied.
        let mut prefetched: Option<Result<Page, FetchError>> = None;
        loop {
            if self.lease(id).await?.map(|f| f.epoch) != Some(fence.epoch) {
                return Err(RoundError::LeaseHeld);
            }
            let fetched = match prefetched.take() {
                Some(f) => f,
                None => adapter.fetch(cp.as_deref()).await,
            };
            let page = match fetched {
                Ok(p) => p,
                Err(FetchError::Restart(why)) if restarts < 2 => {
                    self.apply_group(id, fence, group.take(), &mut report, progress)
                        .await?;
                    tracing::info!(exchange = id, %why, "full re-fetch");
                    restarts += 1;
                    self.engine.begin_full_fetch(id, Some(fence)).await?;
                    report.full_fetch = true;
                    cp = None;
                    continue;
                }
                Err(e) if e.retryable() && attempt < MAX_RETRIES => {
                    // What was fetched before the failure is applied now,
                    // not after the pause.
                    self.apply_group(id, fence, group.take(), &mut report, progress)
                        .await?;
                    let pause = match &e {
                        FetchError::Net(n) => n.retry_after().unwrap_or_else(|| backoff(attempt)),
                        _ => backoff(attempt),
                    }
                    .min(MAX_RETRY_AFTER);
                    tracing::info!(exchange = id, error = %e, ?pause, "retrying");
                    attempt += 1;
                    report.retries += 1;
                    tokio::time::sleep(pause).await;
                    continue;
                }
                Err(e) => {
                    self.apply_group(id, fence, group.take(), &mut report, progress)
                        .await?;
                    return Err(e.into());
                }
            };
            attempt = 0;
            for why in &page.malformed {
                tracing::warn!(exchange = id, record = %why, "malformed upstream record skipped");
            }
            if report.malformed_examples.len() < 5 {
                report
                    .malformed_examples
                    .extend(page.malformed.iter().take(5).cloned());
            }
            report.malformed += page.malformed_count;
            report.unsupported += page.unsupported;
            report.pages += 1;
            if page.restart {
                // A new pass starts with its own batch (the generation is
                // bumped before its records).
                self.apply_group(id, fence, group.take(), &mut report, progress)
                    .await?;
                report.full_fetch = true;
            }
            let checkpoint = page.checkpoint.clone().or_else(|| cp.clone());
            let g = group.get_or_insert_with(|| Group::new(page.restart));
            g.push(
                page.records,
                page.malformed_count,
                checkpoint.clone(),
                page.upstream_at,
            );
            cp = checkpoint;
            if page.caught_up {
                self.apply_group(id, fence, group.take(), &mut report, progress)
                    .await?;
            } else if g.full() {
                // Upstream has more: fetch the next page while this group is
                // written (the database works on its own thread). Its
                // checkpoint is stored only once it is applied in turn.
                let (applied, next) = tokio::join!(
                    self.apply_group(id, fence, group.take(), &mut report, progress),
                    adapter.fetch(cp.as_deref())
                );
                applied?;
                prefetched = Some(next);
            }
            if page.caught_up {
                report.caught_up = true;
                let row = self.engine.exchange_row(id).await?;
                if row.full_fetch {
                    let swept = self.engine.sweep_exchange(id, Some(fence)).await?;
                    report.swept += swept.tombstoned;
                    report.items_deleted += swept.items_deleted;
                }
                if let Some(up) = page.upstream_checksum {
                    let known = self
                        .last_compared
                        .lock()
                        .ok()
                        .and_then(|m| m.get(&id).cloned());
                    if known.as_deref() != Some(up.as_str()) {
                        let ours = self.engine.exchange_checksum(id).await?;
                        if ours != up {
                            report.drift = true;
                            store.reset_exchange_checkpoint(id).await?;
                            adapter_reset_hint(id);
                        } else if let Ok(mut m) = self.last_compared.lock() {
                            m.insert(id, up.clone());
                        }
                    }
                    report.upstream_checksum = Some(up);
                }
                break;
            }
        }
        Ok(report)
    }

    /// Apply a group of pages in one transaction with the last page's
    /// checkpoint (nothing when there is none).
    async fn apply_group(
        &self,
        id: i64,
        fence: &LeaseFence,
        group: Option<Group>,
        report: &mut RoundReport,
        progress: Option<&(dyn Fn(&RoundReport) + Sync)>,
    ) -> Result<(), RoundError> {
        let Some(group) = group else {
            return Ok(());
        };
        let applied = self
            .engine
            .apply_exchange_batch(id, Some(fence), group.batch)
            .await?;
        report.records += applied.records;
        report.items_added += applied.items_added;
        report.items_deleted += applied.items_deleted;
        report.tombstoned += applied.tombstoned;
        if let Some(p) = progress {
            p(report);
        }
        Ok(())
    }

    /// Build the adapter of an exchange (credentials opened in memory only).
    pub fn adapter_for(&self, row: &ExchangeRow) -> Result<Box<dyn Adapter>, FetchError> {
        let sealed = match &row.credentials {
            Some(c) => Some(c.clone()),
            None => self.api_credentials(&row.api),
        };
        let plain = match sealed {
            Some(s) => Some(
                self.secrets
                    .open(&s)
                    .map_err(|e| FetchError::Config(e.to_string()))?,
            ),
            None => None,
        };
        adapter::build(&row.api, &row.config, plain.as_deref(), self.http.clone())
    }

    fn api_credentials(&self, api: &str) -> Option<String> {
        self.api_creds
            .lock()
            .ok()
            .and_then(|m| m.get(api).cloned())
            .flatten()
    }

    /// Refresh the cache of per-API credentials from the store.
    pub(crate) async fn load_api_credentials(&self) {
        let mut fresh = HashMap::new();
        for a in adapter::APIS {
            if let Ok(c) = self.engine.store().exchange_api_credentials(a.name).await {
                fresh.insert(a.name.to_string(), c);
            }
        }
        if let Ok(mut m) = self.api_creds.lock() {
            *m = fresh;
        }
    }

    /// Nudge an exchange's worker (after an edit, or "fetch now").
    pub fn wake(&self, id: i64) {
        if let Ok(m) = self.wakers.lock() {
            if let Some(n) = m.get(&id) {
                n.notify_one();
            }
        }
    }

    /// The worker of one exchange; ends when the exchange is deleted.
    pub(crate) async fn run_worker(self: Arc<Self>, id: i64, wake: Arc<Notify>) {
        let mut adapter: Option<(String, Box<dyn Adapter>)> = None;
        let mut failures: u32 = 0;
        loop {
            let row = match self.engine.exchange_row(id).await {
                Ok(r) => r,
                Err(EngineError::NotFound(_)) => return,
                Err(e) => {
                    tracing::warn!(exchange = id, error = %e, "cannot read exchange");
                    sleep_or_wake(&wake, Duration::from_secs(5)).await;
                    continue;
                }
            };
            let poll = Duration::from_millis(u64::try_from(row.poll_interval_ms).unwrap_or(60_000));
            if !row.enabled {
                adapter = None;
                sleep_or_wake(&wake, poll.min(Duration::from_secs(10))).await;
                continue;
            }
            self.load_api_credentials().await;
            let fp = format!(
                "{}\u{0}{:?}",
                fingerprint(&row),
                self.api_credentials(&row.api)
            );
            if adapter.as_ref().map(|(f, _)| f) != Some(&fp) {
                adapter = match self.adapter_for(&row) {
                    Ok(a) => Some((fp, a)),
                    Err(e) => {
                        let r: Result<RoundReport, RoundError> = Err(e.into());
                        self.record_outcome(id, &r).await;
                        sleep_or_wake(&wake, poll.max(Duration::from_secs(5))).await;
                        continue;
                    }
                };
            }
            let fence = match self.lease(id).await {
                Ok(Some(f)) => f,
                Ok(None) => {
                    sleep_or_wake(&wake, poll.min(Duration::from_secs(10))).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(exchange = id, error = %e, "lease failed");
                    sleep_or_wake(&wake, Duration::from_secs(5)).await;
                    continue;
                }
            };
            let Some((_, a)) = adapter.as_mut() else {
                continue;
            };
            let result = self.round(id, a.as_mut(), &fence, None).await;
            self.record_outcome(id, &result).await;
            let long_polls = a.long_polls();
            let pause = match &result {
                Ok(_) => {
                    failures = 0;
                    if long_polls {
                        Duration::ZERO
                    } else {
                        poll
                    }
                }
                Err(e) => {
                    failures += 1;
                    // The adapter's in-round state may be stale: rebuild.
                    adapter = None;
                    e.retry_after()
                        .unwrap_or_else(|| backoff(failures + 2))
                        .min(poll.max(Duration::from_secs(1)))
                        .min(MAX_RETRY_AFTER)
                }
            };
            if !pause.is_zero() {
                sleep_or_wake(&wake, pause).await;
            }
        }
    }

    /// Keep one worker per exchange (re-scanned every few seconds).
    pub(crate) async fn run_supervisor(self: Arc<Self>) {
        let mut workers: HashMap<i64, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            match self.engine.store().list_exchanges().await {
                Ok(rows) => {
                    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                    workers.retain(|id, h| {
                        let keep = ids.contains(id) && !h.is_finished();
                        if !keep {
                            h.abort();
                        }
                        keep
                    });
                    for id in ids {
                        if let std::collections::hash_map::Entry::Vacant(slot) = workers.entry(id) {
                            let wake = Arc::new(Notify::new());
                            if let Ok(mut m) = self.wakers.lock() {
                                m.insert(id, wake.clone());
                            }
                            let me = self.clone();
                            slot.insert(tokio::spawn(me.run_worker(id, wake)));
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list exchanges"),
            }
            sleep_or_wake(&self.rescan, self.config.rescan_every).await;
        }
    }
}

/// Consecutive pages applied as one batch (see [`GROUP_MAX_RECORDS`]).
struct Group {
    batch: ExchangeBatch,
    pages: usize,
    bytes: usize,
    started: Instant,
}

impl Group {
    fn new(restart: bool) -> Self {
        Group {
            batch: ExchangeBatch {
                restart,
                ..ExchangeBatch::default()
            },
            pages: 0,
            bytes: 0,
            started: Instant::now(),
        }
    }

    fn push(
        &mut self,
        records: Vec<UpstreamRecord>,
        malformed: u64,
        checkpoint: Option<String>,
        upstream_at: Option<i64>,
    ) {
        self.pages += 1;
        self.bytes += records.iter().map(record_bytes).sum::<usize>();
        self.batch.records.extend(records);
        self.batch.malformed += malformed;
        self.batch.checkpoint = checkpoint;
        if upstream_at.is_some() {
            self.batch.upstream_at = upstream_at;
        }
    }

    /// Apply now rather than wait for the next page.
    fn full(&self) -> bool {
        self.pages >= GROUP_MAX_PAGES
            || self.batch.records.len() >= GROUP_MAX_RECORDS
            || self.bytes >= GROUP_MAX_BYTES
            || self.started.elapsed() >= GROUP_MAX_WAIT
    }
}

/// Roughly what a record holds in memory (for [`GROUP_MAX_BYTES`]).
fn record_bytes(r: &UpstreamRecord) -> usize {
    let strings = |v: &[String]| v.iter().map(|s| s.len() + 24).sum::<usize>();
    let l = &r.labels;
    std::mem::size_of::<UpstreamRecord>()
        + r.signal.value.len()
        + r.upstream_id.len()
        + strings(&l.entity)
        + strings(&l.ideology)
        + strings(&l.behaviour)
        + strings(&l.content_type)
        + strings(&l.tags)
        + r.opinions
            .iter()
            .map(|o| {
                std::mem::size_of_val(o)
                    + o.owner.len()
                    + strings(&o.tags)
                    + o.upstream_ref.as_ref().map_or(0, String::len)
            })
            .sum::<usize>()
}

/// Aborts a task when dropped (the lease renewer of a round).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn adapter_reset_hint(id: i64) {
    tracing::warn!(
        exchange = id,
        "checksum drift against the publisher: the next round re-fetches everything"
    );
}

async fn sleep_or_wake(n: &Notify, d: Duration) {
    tokio::select! {
        _ = n.notified() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// Shared mutable caches of the service.
pub(crate) type Wakers = Mutex<HashMap<i64, Arc<Notify>>>;
