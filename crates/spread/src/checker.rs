//! The liveness checker: enrolls newly matched sightings, leases due
//! checks, fetches each URL politely, decides a verdict by re-hashing, and
//! records every outcome exactly once.
//!
//! Flow of one round ([`Checker::run_round`]): enroll → lease a batch of
//! due checks (`4 × workers`) → per check, fetch through the collector's
//! fetcher (its politeness, robots.txt and SSRF rules; the source's proxy,
//! or the checker's `--proxy`), decide ([`crate::verdict::decide`], with
//! the source's locker rules; re-hashing on the blocking pool only when the
//! bytes differ), advance the state machine
//! ([`crate::machine::advance`]) → a writer task commits outcomes in
//! groups (one transaction per ≤ 256 outcomes, so thousands of checks per
//! second fit in a few fsyncs) → next batch, until nothing is due.
//!
//! Crash safety: an outcome is committed with its liveness update in one
//! transaction, conditional on the leased `checks` counter
//! ([`echotrace_store::WriteTx::apply_check`]). A checker killed mid-round
//! loses only uncommitted outcomes; their leases expire and another round
//! redoes those checks. Nothing is recorded twice.
//!
//! A check whose host is busy for longer than the fetcher waits
//! (politeness) is handed back, not recorded, and picked up by a later
//! batch, so politeness never makes a lease run out under a worker.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use echotrace_collector::{LockerTable, SourceConfig};
use echotrace_signals::content::HashOptions;
use echotrace_store::{now_ms, CheckWrite, DueCheck, Store};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use crate::error::{Result, SpreadError};
use crate::fetch::{FetchFailure, Fetcher, Route};
use crate::machine::{advance, Timing};
use crate::rehash::{presence, Reference};
use crate::rules::RemovalRules;
use crate::state::{LivenessState, RemovalPolicy};
use crate::verdict::{decide, Presence, Target};

/// Checker settings.
#[derive(Clone, Debug)]
pub struct CheckerConfig {
    /// Lease holder name (unique per process).
    pub holder: String,
    /// Checks in flight at once.
    pub workers: usize,
    /// How long a leased check is reserved for this process.
    pub lease: Duration,
    pub timing: Timing,
    pub policy: RemovalPolicy,
    pub rules: RemovalRules,
    /// Route every check through this SOCKS5 proxy (`socks5h://…`), unless
    /// the sighting's source names its own.
    pub proxy: Option<String>,
    /// Hashing limits for re-hashing served bytes.
    pub hash: HashOptions,
    /// Record checks as done at this time instead of the clock (replays
    /// and tests; politeness and leases still use the real clock).
    pub at: Option<i64>,
}

impl CheckerConfig {
    pub fn new(holder: impl Into<String>) -> CheckerConfig {
        CheckerConfig {
            holder: holder.into(),
            workers: 16,
            lease: Duration::from_secs(300),
            timing: Timing::default(),
            policy: RemovalPolicy::default(),
            rules: RemovalRules::builtin(),
            proxy: None,
            hash: HashOptions::default(),
            at: None,
        }
    }
}

/// Live counters of a checker (for progress lines).
#[derive(Debug, Default)]
pub struct Progress {
    pub enrolled: AtomicU64,
    pub leased: AtomicU64,
    pub checked: AtomicU64,
    pub recorded: AtomicU64,
    /// Outcomes not recorded because another checker already had (lease lost).
    pub superseded: AtomicU64,
    /// Checks handed back because the host's politeness slot was too far.
    pub deferred: AtomicU64,
    by_state: Mutex<BTreeMap<&'static str, u64>>,
}

impl Progress {
    fn count_state(&self, s: LivenessState) {
        if let Ok(mut m) = self.by_state.lock() {
            *m.entry(s.as_str()).or_default() += 1;
        }
    }

    /// Verdicts so far, by state.
    pub fn by_state(&self) -> BTreeMap<&'static str, u64> {
        self.by_state.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RoundReport {
    pub enrolled: u64,
    pub checked: u64,
    pub recorded: u64,
    pub superseded: u64,
    pub deferred: u64,
    pub by_state: BTreeMap<String, u64>,
}

/// The checker. Cheap to share (`Arc` inside).
#[derive(Clone)]
pub struct Checker {
    store: Store,
    fetcher: Arc<dyn Fetcher>,
    config: Arc<CheckerConfig>,
    progress: Arc<Progress>,
}

/// What a sighting's source says about checking it.
struct SourceRules {
    route: Route,
    lockers: LockerTable,
    locker_hosts: Vec<String>,
}

/// Per-round caches: sources and bank thresholds.
#[derive(Default)]
struct RoundCache {
    sources: HashMap<i64, SourceRules>,
    builtin_lockers: LockerTable,
    bank_thresholds: tokio::sync::Mutex<HashMap<i64, BTreeMap<String, f64>>>,
}

impl Checker {
    pub fn new(store: Store, fetcher: Arc<dyn Fetcher>, config: CheckerConfig) -> Checker {
        Checker {
            store,
            fetcher,
            config: Arc::new(config),
            progress: Arc::new(Progress::default()),
        }
    }

    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    fn now(&self) -> i64 {
        self.config.at.unwrap_or_else(now_ms)
    }

    /// One round: enroll, then check everything due now (see the module doc).
    pub async fn run_round(&self) -> Result<RoundReport> {
        let before = snapshot(&self.progress);
        let first = self.config.timing.schedule.first();
        loop {
            let n = self.store.enroll_liveness(first, 10_000).await?;
            self.progress.enrolled.fetch_add(n, Ordering::Relaxed);
            if n < 10_000 {
                break;
            }
        }
        let cache = Arc::new(self.round_cache().await?);
        let (tx, rx) = mpsc::channel::<CheckWrite>(1024);
        let writer = tokio::spawn(write_outcomes(
            self.store.clone(),
            rx,
            self.progress.clone(),
        ));
        let result = self.check_due(&cache, &tx).await;
        drop(tx);
        let written = writer
            .await
            .map_err(|e| SpreadError::Internal(format!("outcome writer failed: {e}")))?;
        result?;
        written?;
        let after = snapshot(&self.progress);
        let by_state = self
            .progress
            .by_state()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v - before.5.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect();
        Ok(RoundReport {
            enrolled: after.0 - before.0,
            checked: after.1 - before.1,
            recorded: after.2 - before.2,
            superseded: after.3 - before.3,
            deferred: after.4 - before.4,
            by_state,
        })
    }

    /// Rounds until `stop` resolves, sleeping until the next due check
    /// (at most `idle`) between rounds.
    pub async fn run_until<F>(&self, idle: Duration, stop: F) -> Result<()>
    where
        F: std::future::Future<Output = ()>,
    {
        tokio::pin!(stop);
        loop {
            self.run_round().await?;
            let wait = match self.store.next_due_at().await? {
                Some(t) => Duration::from_millis(u64::try_from(t - now_ms()).unwrap_or(0)),
                None => idle,
            }
            .clamp(Duration::from_millis(50), idle);
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn round_cache(&self) -> Result<RoundCache> {
        let mut cache = RoundCache {
            builtin_lockers: LockerTable::builtin(),
            ..RoundCache::default()
        };
        for s in self.store.list_sources().await? {
            // A config the collector cannot read (it validates on write)
            // checks like a sighting without a source.
            let Ok(cfg) = SourceConfig::parse(&s.config) else {
                continue;
            };
            let net = cfg.net();
            cache.sources.insert(
                s.id,
                SourceRules {
                    route: Route {
                        proxy: net.proxy.or_else(|| self.config.proxy.clone()),
                        ignore_robots: net.ignore_robots,
                        min_delay: net.min_delay,
                    },
                    lockers: LockerTable::with_rules(&cfg.locker_rules),
                    locker_hosts: cfg.locker_hosts.clone(),
                },
            );
        }
        Ok(cache)
    }

    async fn check_due(
        &self,
        cache: &Arc<RoundCache>,
        tx: &mpsc::Sender<CheckWrite>,
    ) -> Result<()> {
        let workers = self.config.workers.max(1);
        let permits = Arc::new(Semaphore::new(workers));
        let lease_ms = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX / 4);
        loop {
            let due_at = self.now();
            let lease_start = now_ms();
            let jobs = self
                .store
                .lease_due_checks(
                    &self.config.holder,
                    due_at,
                    lease_start,
                    lease_ms,
                    i64::try_from(workers * 4).unwrap_or(64),
                )
                .await?;
            if jobs.is_empty() {
                return Ok(());
            }
            self.progress
                .leased
                .fetch_add(jobs.len() as u64, Ordering::Relaxed);
            // The latest moment a fetch may start and still finish in the lease.
            let deadline = Instant::now() + self.config.lease.mul_f64(0.5);
            let mut set = tokio::task::JoinSet::new();
            let mut handed_back = Vec::new();
            for job in jobs {
                let permit = permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| SpreadError::Internal("checker stopped".into()))?;
                let this = self.clone();
                let cache = cache.clone();
                let tx = tx.clone();
                set.spawn(async move {
                    let _permit = permit;
                    if Instant::now() > deadline {
                        // Too late to start within the lease: hand back.
                        return Ok(Some(job.liveness.sighting_id));
                    }
                    this.check_one(job, &cache, &tx).await
                });
            }
            while let Some(r) = set.join_next().await {
                match r {
                    Ok(Ok(Some(id))) => handed_back.push(id),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(SpreadError::Internal(format!("check task: {e}"))),
                }
            }
            if !handed_back.is_empty() {
                self.progress
                    .deferred
                    .fetch_add(handed_back.len() as u64, Ordering::Relaxed);
                self.store
                    .release_check_leases(&self.config.holder, &handed_back)
                    .await?;
                // What is left waits for busy hosts: give them a moment.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// Check one leased job. `Ok(Some(id))`: handed back (the host's
    /// politeness slot is too far off).
    async fn check_one(
        &self,
        job: DueCheck,
        cache: &RoundCache,
        tx: &mpsc::Sender<CheckWrite>,
    ) -> Result<Option<i64>> {
        let source = job.source_id.and_then(|id| cache.sources.get(&id));
        let route = match source {
            Some(s) => s.route.clone(),
            None => Route {
                proxy: self.config.proxy.clone(),
                ..Route::default()
            },
        };
        let fetched = self.fetcher.fetch(&job.url, &route).await;
        if let Err(FetchFailure::Deferred(_)) = fetched {
            return Ok(Some(job.liveness.sighting_id));
        }
        // The collector's locker rules for this host: the source's own
        // and the built-in ones (which apply to every checked host).
        let path = url_path(&job.url);
        let own_hosts = [job.host.clone()];
        let rule = match source {
            Some(s) => s
                .lockers
                .rule_for(&job.host, &path, &s.locker_hosts)
                .or_else(|| s.lockers.rule_for(&job.host, &path, &own_hosts)),
            None => cache.builtin_lockers.rule_for(&job.host, &path, &own_hosts),
        };
        let locker_check = |status: u16, body: &[u8]| -> Option<String> {
            let rule = rule?;
            let text =
                crate::rehash::html_text(&body[..body.len().min(crate::rules::RULE_SCAN_BYTES)]);
            LockerTable::removed(rule, status, "", &text)
                .map(|why| format!("{:?}, {why}", rule.name))
        };
        let target = Target {
            url: &job.url,
            host: &job.host,
            content_sha256: &job.content_sha256,
            locker: Some(&locker_check),
        };
        // Re-hash only when the bytes differ from the sighting's.
        let needs_rehash = match &fetched {
            Ok(r) => {
                (200..300).contains(&r.status)
                    && !r.truncated
                    && !job.content_sha256.is_empty()
                    && echotrace_signals::digest::sha256_hex(&r.body) != job.content_sha256
            }
            Err(_) => false,
        };
        let found = if needs_rehash {
            let reference = self.reference(&job, cache).await?;
            let body = fetched.as_ref().map(|r| r.body.clone()).unwrap_or_default();
            let opts = self.config.hash.clone();
            tokio::task::spawn_blocking(move || presence(&body, &reference, &opts))
                .await
                .unwrap_or_else(|e| Presence::Unknown(format!("re-hash failed: {e}")))
        } else {
            Presence::Differs(String::new())
        };
        let verdict = decide(&target, &fetched, &self.config.rules, |_| found);
        self.progress.checked.fetch_add(1, Ordering::Relaxed);
        self.progress.count_state(verdict.state);
        let write = advance(
            &job,
            &verdict,
            route.via(),
            self.now(),
            &self.config.holder,
            &self.config.policy,
            &self.config.timing,
        );
        tx.send(write)
            .await
            .map_err(|_| SpreadError::Internal("outcome writer stopped".into()))?;
        Ok(None)
    }

    /// The signals served bytes are compared with: the sighting's own and
    /// those of the bank items it matched, at each bank's thresholds.
    async fn reference(&self, job: &DueCheck, cache: &RoundCache) -> Result<Reference> {
        let id = job.liveness.sighting_id;
        let mut r = Reference::default();
        let matches = self.store.sighting_matches(id).await?;
        let mut thresholds = BTreeMap::new();
        for m in &matches {
            let t = self.bank_thresholds(m.bank_id, cache).await?;
            thresholds.extend(t);
        }
        for s in self.store.sighting_signals(id).await? {
            r.add(
                &s.signal_type,
                &s.value,
                thresholds.get(&s.signal_type).copied(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for m in &matches {
            if !seen.insert(m.content_id) {
                continue;
            }
            let bank = self.bank_thresholds(m.bank_id, cache).await?;
            for s in self.store.signals_of_content(m.content_id).await? {
                r.add(&s.signal_type, &s.value, bank.get(&s.signal_type).copied());
            }
        }
        Ok(r)
    }

    async fn bank_thresholds(
        &self,
        bank_id: i64,
        cache: &RoundCache,
    ) -> Result<BTreeMap<String, f64>> {
        let mut map = cache.bank_thresholds.lock().await;
        if let Some(t) = map.get(&bank_id) {
            return Ok(t.clone());
        }
        let t = match self.store.get_bank(bank_id).await? {
            Some(b) => {
                serde_json::from_str::<BTreeMap<String, f64>>(&b.thresholds).unwrap_or_default()
            }
            None => BTreeMap::new(),
        };
        map.insert(bank_id, t.clone());
        Ok(t)
    }
}

type Snapshot = (u64, u64, u64, u64, u64, BTreeMap<&'static str, u64>);

fn snapshot(p: &Progress) -> Snapshot {
    (
        p.enrolled.load(Ordering::Relaxed),
        p.checked.load(Ordering::Relaxed),
        p.recorded.load(Ordering::Relaxed),
        p.superseded.load(Ordering::Relaxed),
        p.deferred.load(Ordering::Relaxed),
        p.by_state(),
    )
}

/// Most outcomes committed in one transaction.
const WRITE_GROUP: usize = 256;

async fn write_outcomes(
    store: Store,
    mut rx: mpsc::Receiver<CheckWrite>,
    progress: Arc<Progress>,
) -> Result<()> {
    let mut group: Vec<CheckWrite> = Vec::with_capacity(WRITE_GROUP);
    loop {
        let Some(first) = rx.recv().await else {
            return Ok(());
        };
        group.push(first);
        // Take whatever else is already queued (group commit).
        while group.len() < WRITE_GROUP {
            match rx.try_recv() {
                Ok(w) => group.push(w),
                Err(_) => break,
            }
        }
        // In (hour, verdict) order: each outcome bumps its hourly tally row
        // (migration 0051), so concurrent writers lock those rows in one
        // order and never deadlock.
        group.sort_by_key(|w| (w.checked_at.div_euclid(3_600_000), w.state.clone()));
        let mut tx = store.write().await?;
        let mut recorded = 0u64;
        for w in &group {
            if tx.apply_check(w).await? {
                recorded += 1;
            }
        }
        tx.commit().await?;
        progress.recorded.fetch_add(recorded, Ordering::Relaxed);
        progress
            .superseded
            .fetch_add(group.len() as u64 - recorded, Ordering::Relaxed);
        group.clear();
    }
}

/// The path of a URL ('/' when it has none or does not parse).
fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |x| x.1);
    match rest.find('/') {
        Some(i) => rest[i..]
            .split(['?', '#'])
            .next()
            .unwrap_or("/")
            .to_string(),
        None => "/".to_string(),
    }
}
