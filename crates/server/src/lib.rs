//! echotrace-server: the HTTP matching service, a thin axum layer over
//! [`echotrace_engine`].
//!
//! Routes (see [`openapi::ROUTES`] and `/openapi.json`): `/v1/...` JSON API
//! (banks, content, hash, lookup, batch lookup, compare, matches and
//! decisions, webhooks, audit), HMA-compatible `/m/...` and `/c/...`
//! endpoints, and unauthenticated `/healthz`, `/readyz`, `/metrics`.
//!
//! Key design decisions:
//! * **Listen first, load second.** [`start`] binds and serves at once; the
//!   engine (store + in-memory indexes) is opened in the background and put
//!   in a `OnceLock`. Until then `/readyz` and every API route answer 503, so
//!   orchestrators can route traffic only to loaded instances.
//! * **Auth is an extractor, and comes first.** Every API handler takes a
//!   [`auth::Caller<R>`](auth::Caller) (`Authorization: Bearer <key>`)
//!   whose type names the operation the route needs; the role is checked
//!   from the headers before the body extractor runs, so no body of an
//!   unauthorised caller is ever read. Verified keys are cached for a few
//!   seconds (keyed by the key's SHA-256) so hot lookups don't hit the
//!   database for every request; a revocation takes effect within that TTL.
//! * **Buffered bodies share one byte budget** ([`budget`]): a body that
//!   finds no room within a short wait gets 503 + `Retry-After`, so memory
//!   stays bounded however many large uploads arrive at once.
//! * **Hashing is bounded, in two pools.** Uploaded bytes are hashed on
//!   Tokio's blocking pool behind semaphores: PDFs and videos (which may
//!   hold a slot for their whole time limit) in their own small pool
//!   ([`Pool::Heavy`]), everything else (text, images) in the other, so a
//!   text lookup never queues behind a slow PDF; signal lookups never wait
//!   for a permit.
//! * **Errors are counted in one place**: a middleware over every route
//!   counts responses by status class (`echotrace_http_errors_total`).
//! * **Bad input is never a 500.** All extractors map their rejections to
//!   `{"error":{"code","message"}}` 4xx bodies ([`extract`], [`error`]);
//!   engine errors map by variant; internal details are logged, not sent.
//!   Raw content is never logged.
//! * **Delivery** of webhooks uses the engine's persistent outbox; this
//!   crate only supplies the HTTP [`deliver::HttpDeliverer`]. The worker
//!   delivers only while its process holds the `outbox` lease, so of many
//!   replicas on one database exactly one delivers.
//! * **One of many replicas.** `/readyz` reports the lag behind the
//!   database's change sequence and answers 503 past
//!   [`ServerConfig::max_lag`]; background jobs run under leases; the flood
//!   guard and the login throttle count in the database.
//! * **A stop cuts nothing off** ([`serve`]): on the signal the server
//!   drains (readiness 503, `Connection: close`), accepts what the kernel
//!   had queued, lets requests already on their way arrive, finishes every
//!   in-flight request, then waits for the group commit, writes the flood
//!   guard's counts and a snapshot ([`echotrace_engine::Engine::shutdown`]).

pub mod auth;
pub mod budget;
pub mod collect;
pub mod deliver;
pub mod error;
pub mod extract;
pub mod fetch;
pub mod metrics;
pub mod openapi;
mod routes;
pub mod serve;
pub mod ui;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use echotrace_engine::{Engine, EngineConfig};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use echotrace_exchange;
pub use error::ApiError;
pub use fetch::FetchPolicy;
pub use serve::DrainConfig;

/// Default request body cap: 64 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 << 20;
/// Default budget of buffered request bodies, all requests together: two
/// maximum-size bodies (as many as the default hashing pool of a 2-core
/// machine works on at once); 25 bodies of 5 MiB.
pub const DEFAULT_BODY_BUDGET: usize = 2 * DEFAULT_BODY_LIMIT;
/// Most signal sets accepted by `POST /v1/lookup/batch`.
pub const MAX_BATCH: usize = 1000;

/// Called once with a freshly created bootstrap admin key.
pub type KeyAnnouncer = Arc<dyn Fn(&str) + Send + Sync>;

/// Everything `serve` can be told.
#[derive(Clone)]
pub struct ServerConfig {
    pub engine: EngineConfig,
    /// Largest request body accepted, bytes.
    pub body_limit: usize,
    /// Bytes of request bodies buffered at once, all requests together
    /// (at least the largest body limit).
    pub body_budget: usize,
    /// How long a body waits for room in the budget before its 503.
    pub body_budget_wait: Duration,
    /// Concurrent hashing jobs for text and images.
    pub hash_workers: usize,
    /// Concurrent hashing jobs for PDFs and videos (their own pool).
    pub heavy_hash_workers: usize,
    /// URL fetching for `{"url": ...}` bodies (off by default).
    pub fetch: FetchPolicy,
    /// Time limit of one webhook delivery attempt.
    pub webhook_timeout: Duration,
    /// How long a verified API key is trusted without asking the store.
    pub key_cache_ttl: Duration,
    /// Run the outbox delivery worker in this process.
    pub deliver_webhooks: bool,
    /// Keep the bytes of looked-up uploads for the review console
    /// (off by default: hashing only).
    pub retain_media: bool,
    /// If the database has no API keys yet, create an admin key and pass it
    /// here (printed once by `echotrace serve`).
    pub bootstrap_admin: Option<KeyAnnouncer>,
    /// Delete recorded lookups past this policy, sweeping at this interval
    /// (`None`, the default: keep them).
    pub retention: Option<(echotrace_engine::RetentionPolicy, Duration)>,
    /// Signal exchange: fetch workers, feeds, write-back.
    pub exchanges: ExchangeSettings,
    /// Run a collector loop in this process (`serve --collect`).
    pub collector: Option<echotrace_collector::CollectorConfig>,
    /// Serve the generated demo website under `/demo/site/` (`--demo`).
    pub demo_site: bool,
    /// `/readyz` answers 503 when the oldest change not applied yet is
    /// older than this.
    pub max_lag: Duration,
    /// Write a snapshot this often (when [`echotrace_engine::EngineConfig::snapshot_dir`]
    /// is set and changes were applied since the last one); `None`: only at
    /// a graceful stop.
    pub snapshot_interval: Option<Duration>,
    /// How a graceful stop drains connections.
    pub drain: DrainConfig,
    /// Directory for private temporary copies of MP4 uploads whose index
    /// follows the media data (ffmpeg must seek in them; deleted after
    /// decoding). `None`, the default: such uploads, unless small, are
    /// refused with a 400 saying how to remux them.
    pub video_temp_dir: Option<std::path::PathBuf>,
}

/// How `serve` runs signal exchange.
#[derive(Clone, Debug)]
pub struct ExchangeSettings {
    /// Run the exchange fetch workers in this process.
    pub run_workers: bool,
    /// Run the feed builder in this process.
    pub run_feed_builder: bool,
    /// What adapters may connect to and how much they may read.
    pub net: echotrace_exchange::NetPolicy,
    /// Key file for credentials when `ECHOTRACE_SECRET_KEY` is unset.
    pub secret_key_file: std::path::PathBuf,
    /// Lease of an exchange's fetcher (takeover time after a crash).
    pub lease_ttl: std::time::Duration,
}

impl Default for ExchangeSettings {
    fn default() -> Self {
        ExchangeSettings {
            run_workers: true,
            run_feed_builder: true,
            net: echotrace_exchange::NetPolicy::default(),
            secret_key_file: std::path::PathBuf::from("echotrace.secret"),
            lease_ttl: std::time::Duration::from_secs(15),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            engine: EngineConfig::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            body_budget: DEFAULT_BODY_BUDGET,
            body_budget_wait: Duration::from_secs(2),
            hash_workers: cores(),
            heavy_hash_workers: (cores() / 2).max(1),
            fetch: FetchPolicy::default(),
            webhook_timeout: Duration::from_secs(10),
            key_cache_ttl: Duration::from_secs(5),
            deliver_webhooks: true,
            retain_media: false,
            bootstrap_admin: None,
            retention: None,
            exchanges: ExchangeSettings::default(),
            collector: None,
            demo_site: false,
            max_lag: Duration::from_secs(10),
            snapshot_interval: Some(Duration::from_secs(600)),
            drain: DrainConfig::default(),
            video_temp_dir: None,
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Which hashing pool a job runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// Text and images: short jobs.
    Light,
    /// PDFs and videos: child processes that may run for their whole time
    /// limit.
    Heavy,
}

impl Pool {
    /// The pool for hashing `bytes`, by their magic bytes.
    pub fn for_bytes(bytes: &[u8]) -> Pool {
        use echotrace_signals::content::{detect_kind, ContentKind};
        match detect_kind(bytes) {
            Some(ContentKind::Pdf | ContentKind::Video) => Pool::Heavy,
            _ => Pool::Light,
        }
    }
}

/// Shared state handed to every handler.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    engine: OnceLock<Engine>,
    config: ServerConfig,
    metrics: metrics::Metrics,
    hash_permits: Semaphore,
    heavy_permits: Semaphore,
    budget: Arc<budget::BodyBudget>,
    keys: auth::KeyCache,
    /// Set if opening the engine failed (reported by /readyz).
    startup_error: OnceLock<String>,
    /// The exchange subsystem, or why it is not available.
    exchange: OnceLock<Result<Arc<echotrace_exchange::ExchangeService>, String>>,
    /// The collector running in this process, if any.
    collector: OnceLock<echotrace_collector::Collector>,
    /// Set when a graceful stop began (`/readyz` answers 503).
    draining: Arc<AtomicBool>,
}

impl AppState {
    /// State without an engine yet (it is attached by [`AppState::attach`]).
    pub fn new(config: ServerConfig) -> AppState {
        let permits = config.hash_workers.max(1);
        let heavy = config.heavy_hash_workers.max(1);
        let ttl = config.key_cache_ttl;
        // At least one maximum-size API body; console uploads are capped
        // at the budget (ui::router_with).
        let budget = config.body_budget.max(config.body_limit);
        AppState {
            inner: Arc::new(StateInner {
                engine: OnceLock::new(),
                hash_permits: Semaphore::new(permits),
                heavy_permits: Semaphore::new(heavy),
                budget: Arc::new(budget::BodyBudget::new(budget, config.body_budget_wait)),
                keys: auth::KeyCache::new(ttl),
                metrics: metrics::Metrics::default(),
                startup_error: OnceLock::new(),
                exchange: OnceLock::new(),
                collector: OnceLock::new(),
                draining: Arc::new(AtomicBool::new(false)),
                config,
            }),
        }
    }

    /// Attach the loaded engine; from now on the service is ready.
    pub fn attach(&self, engine: Engine) {
        let _ = self.inner.engine.set(engine);
    }

    /// The engine, or 503 while indexes are still loading.
    pub fn engine(&self) -> Result<&Engine, ApiError> {
        self.inner
            .engine
            .get()
            .ok_or_else(|| match self.inner.startup_error.get() {
                Some(e) => ApiError::unavailable(format!("engine failed to start: {e}")),
                None => ApiError::unavailable("indexes are still loading"),
            })
    }

    /// The exchange subsystem (503 while loading or when its key could
    /// not be read).
    pub fn exchanges(&self) -> Result<&Arc<echotrace_exchange::ExchangeService>, ApiError> {
        match self.inner.exchange.get() {
            Some(Ok(s)) => Ok(s),
            Some(Err(e)) => Err(ApiError::unavailable(format!(
                "signal exchange is not available: {e}"
            ))),
            None => Err(ApiError::unavailable("indexes are still loading")),
        }
    }

    /// The collector running in this process (`serve --collect`).
    pub fn collector(&self) -> Option<&echotrace_collector::Collector> {
        self.inner.collector.get()
    }

    pub fn is_ready(&self) -> bool {
        self.inner.engine.get().is_some()
    }

    /// Whether a graceful stop began.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    pub(crate) fn keys(&self) -> &auth::KeyCache {
        &self.inner.keys
    }

    /// The process-wide budget of buffered request bodies.
    pub fn budget(&self) -> &Arc<budget::BodyBudget> {
        &self.inner.budget
    }

    /// Run `work` once a permit of `pool` is free (held until it finishes).
    /// Errs only when the server is shutting down.
    pub(crate) async fn in_pool<T, F>(&self, pool: Pool, work: F) -> Result<T, ApiError>
    where
        F: std::future::Future<Output = T>,
    {
        let permits = match pool {
            Pool::Light => &self.inner.hash_permits,
            Pool::Heavy => &self.inner.heavy_permits,
        };
        let _permit = permits
            .acquire()
            .await
            .map_err(|_| ApiError::unavailable("server is shutting down"))?;
        Ok(work.await)
    }

    /// Run `job` on the blocking pool once a permit of `pool` is free.
    pub(crate) async fn hash_job<T, F>(&self, pool: Pool, job: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.in_pool(pool, async move {
            match tokio::task::spawn_blocking(job).await {
                Ok(r) => r,
                Err(_) => Err(ApiError::internal("hashing task failed")),
            }
        })
        .await?
    }
}

/// The full router (API, HMA compatibility, operations endpoints, review
/// console), with the byte budget over every body and error counting over
/// every response.
pub fn router(state: AppState) -> Router {
    let limit = state.config().body_limit;
    let budget = budget::BudgetLayer {
        budget: state.budget().clone(),
        limit,
    };
    let demo = if state.config().demo_site {
        match echotrace_collector::demo::demo_site() {
            Ok(site) => Router::new()
                .route("/demo/site/{*path}", axum::routing::get(collect::demo_file))
                .with_state(Arc::new(site)),
            Err(e) => {
                eprintln!("echotrace-server: demo site unavailable: {e}");
                Router::new()
            }
        }
    } else {
        Router::new()
    };
    demo.merge(
        routes::router()
            .layer(DefaultBodyLimit::max(limit))
            .layer(axum::middleware::from_fn_with_state(budget, budget::scope))
            .with_state(state.clone()),
    )
    .merge(ui::router(state.clone()))
    .layer(axum::middleware::map_response_with_state(
        state,
        count_errors,
    ))
}

/// Count every error response by status class (4xx, 5xx), whatever route
/// or extractor produced it.
async fn count_errors(
    axum::extract::State(state): axum::extract::State<AppState>,
    resp: axum::response::Response,
) -> axum::response::Response {
    state.metrics().record_status(resp.status());
    resp
}

/// A running server.
pub struct ServerHandle {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ServerHandle {
    /// Wait until the engine is loaded (or failed to load).
    pub async fn ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.state.is_ready() {
                return Ok(());
            }
            if let Some(e) = self.state.inner.startup_error.get() {
                return Err(e.clone());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err("timed out waiting for the engine".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop accepting, finish in-flight requests, stop background tasks.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }

    /// Wait for the server to stop (after `signal` fired).
    pub async fn wait(self) -> std::io::Result<()> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }
}

/// Serve on `listener`: answers at once, loads the engine in the
/// background, and shuts down gracefully when `signal` resolves or
/// [`ServerHandle::shutdown`] is called.
pub async fn start<F>(
    config: ServerConfig,
    listener: TcpListener,
    signal: F,
) -> std::io::Result<ServerHandle>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let addr = listener.local_addr()?;
    echotrace_engine::set_video_temp_dir(config.video_temp_dir.clone());
    let state = AppState::new(config);
    let app = router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();

    // Open the engine, then start its background tasks.
    let boot_state = state.clone();
    let boot = tokio::spawn(async move { boot_engine(boot_state).await });

    let serve_state = state.clone();
    let drain = state.config().drain;
    let draining = state.inner.draining.clone();
    let task = tokio::spawn(async move {
        let stop = async move {
            tokio::select! {
                _ = signal => {},
                _ = rx => {},
            }
        };
        // Peer addresses reach handlers (console login throttling).
        let result = serve::serve(listener, app, stop, drain, draining).await;
        // Background tasks end with the server. A load still running is
        // abandoned: it only reads.
        if !serve_state.is_ready() {
            boot.abort();
        }
        let background = boot.await.unwrap_or_default();
        for h in background {
            h.abort();
            let _ = h.await;
        }
        if let Some(engine) = serve_state.inner.engine.get() {
            // Every request has finished: flush, snapshot, give leases up.
            if let Err(e) = engine.shutdown().await {
                eprintln!("echotrace-server: shutdown: {e}");
            }
            engine.store().close().await;
        }
        result
    });
    Ok(ServerHandle {
        addr,
        state,
        shutdown: Some(tx),
        task,
    })
}

async fn boot_engine(state: AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let config = state.config().clone();
    let engine = match Engine::open(config.engine.clone()).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("echotrace-server: cannot open the engine: {e}");
            let _ = state.inner.startup_error.set(e.to_string());
            return Vec::new();
        }
    };
    if let Some(announce) = &config.bootstrap_admin {
        match engine.list_api_keys().await {
            Ok(keys) if keys.is_empty() => {
                match engine
                    .create_api_key(
                        &echotrace_engine::Actor::system(),
                        "bootstrap-admin",
                        echotrace_engine::Role::Admin,
                    )
                    .await
                {
                    Ok((_, key)) => announce(&key),
                    Err(e) => eprintln!("echotrace-server: cannot create the admin key: {e}"),
                }
            }
            Ok(_) => {}
            Err(e) => eprintln!("echotrace-server: cannot list API keys: {e}"),
        }
    }
    report_state_source(&engine);
    let mut handles = vec![
        engine.spawn_change_tailer(),
        engine.spawn_flood_flusher(),
        engine.spawn_counter_sweeper(),
    ];
    if let (Some(every), Some(_)) = (config.snapshot_interval, &config.engine.snapshot_dir) {
        handles.push(engine.spawn_snapshot_writer(every));
    }
    let (collector, background) = collect::spawn(&engine, config.collector.as_ref());
    handles.extend(background);
    if let Some(c) = collector {
        let _ = state.inner.collector.set(c);
    }
    if let Some((policy, every)) = config.retention {
        handles.push(engine.spawn_retention_sweeper(policy, every));
    }
    let exchanges = start_exchanges(&engine, &config.exchanges);
    if let Ok(service) = &exchanges {
        if config.exchanges.run_workers {
            handles.push(service.spawn_workers());
        }
        if config.exchanges.run_feed_builder {
            handles.push(service.spawn_feed_builder());
        }
    }
    if config.deliver_webhooks {
        let webhooks: Option<Arc<dyn echotrace_engine::Deliverer>> =
            match deliver::HttpDeliverer::new(config.webhook_timeout) {
                Ok(http) => Some(Arc::new(deliver::WebhookDeliverer::new(
                    engine.clone(),
                    http,
                ))),
                Err(e) => {
                    eprintln!("echotrace-server: webhook delivery disabled: {e}");
                    None
                }
            };
        // Exchange opinions go through their adapters, the rest to webhooks.
        let deliverer = match &exchanges {
            Ok(service) => Some(service.deliverer(webhooks)),
            Err(_) => webhooks,
        };
        if let Some(d) = deliverer {
            handles.push(engine.spawn_outbox_worker(d));
        }
    }
    let _ = state.inner.exchange.set(exchanges);
    state.attach(engine);
    handles
}

/// Open the credentials key and build the exchange service. A key that
/// cannot be used leaves matching running and exchanges unavailable (503
/// with the reason).
fn start_exchanges(
    engine: &Engine,
    settings: &ExchangeSettings,
) -> Result<Arc<echotrace_exchange::ExchangeService>, String> {
    let secrets = echotrace_exchange::SecretBox::from_env_or_file_lazy(&settings.secret_key_file)
        .map_err(|e| {
        eprintln!("echotrace-server: signal exchange disabled: {e}");
        e.to_string()
    })?;
    Ok(echotrace_exchange::ExchangeService::new(
        engine.clone(),
        secrets,
        echotrace_exchange::ServiceConfig {
            net: settings.net.clone(),
            lease_ttl: settings.lease_ttl,
            ..echotrace_exchange::ServiceConfig::default()
        },
    ))
}

/// One line on stderr saying where the indexes came from, and one per
/// snapshot that was refused (why).
fn report_state_source(engine: &Engine) {
    match engine.state_source() {
        echotrace_engine::StateSource::Snapshot { path, change_id } => {
            eprintln!("echotrace-server: indexes loaded from snapshot {path} (change {change_id}), then the changes since");
        }
        echotrace_engine::StateSource::Paged { refused } => {
            for r in refused {
                eprintln!("echotrace-server: snapshot refused: {r}");
            }
            eprintln!("echotrace-server: indexes loaded from the database (paged load)");
        }
        echotrace_engine::StateSource::Empty => {}
    }
}
