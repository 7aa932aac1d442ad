//! `echotrace serve`: run the HTTP matching service.
//!
//! Binds first (so `/healthz` answers at once), loads the indexes in the
//! background — from the newest valid snapshot in `--snapshot-dir` plus the
//! changes since, else page by page from the database — (`/readyz` turns
//! 200 when done), and shuts down gracefully on SIGTERM or Ctrl-C: stop
//! accepting, finish every accepted request, flush the group commit, write
//! a snapshot, exit 0 (see `echotrace_server::serve`).
//! On the first start against a database without API keys it creates an
//! admin key and prints it once on stdout.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use echotrace_engine::EngineConfig;
use echotrace_server::{FetchPolicy, ServerConfig};

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: super::DatabaseArg,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 64)]
    pub max_body_mib: usize,
    /// Request bodies buffered at once, all requests together, in MiB
    /// (at least --max-body-mib). A body that finds no room within 2 s gets
    /// 503 with Retry-After. Default: 2 × --max-body-mib.
    #[arg(long)]
    pub body_budget_mib: Option<usize>,
    /// Concurrent hashing jobs for text and image uploads (default: number of cores).
    #[arg(long)]
    pub hash_workers: Option<usize>,
    /// Concurrent hashing jobs for PDFs and videos, a pool of their own so
    /// text and image lookups never wait behind them (default: half the cores, at least 1).
    #[arg(long)]
    pub heavy_hash_workers: Option<usize>,
    /// Tokio worker threads (default: number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Allow `{"url": ...}` bodies: fetch public http(s) URLs (SSRF-guarded).
    #[arg(long)]
    pub allow_url_fetch: bool,
    /// Largest fetched body, in MiB.
    #[arg(long, default_value_t = 32)]
    pub fetch_max_mib: usize,
    /// Time limit of one URL fetch, in seconds.
    #[arg(long, default_value_t = 10)]
    pub fetch_timeout_secs: u64,
    /// Do not run the webhook delivery worker in this process.
    #[arg(long)]
    pub no_webhooks: bool,
    /// How often to poll the database for bank changes made elsewhere, ms.
    #[arg(long, default_value_t = 250)]
    pub tail_interval_ms: u64,
    /// Seconds a verified API key is cached (revocations take this long).
    #[arg(long, default_value_t = 5)]
    pub key_cache_secs: u64,
    /// Keep the bytes of looked-up uploads for the review console (off: hashing only).
    #[arg(long)]
    pub retain_media: bool,
    /// Do not OCR images (by default Tesseract is looked for at start and,
    /// when installed, text in images becomes an `ocr_text` signal).
    #[arg(long)]
    pub no_ocr: bool,
    /// Concurrent OCR runs (a pool of its own, so OCR never holds the
    /// hashing permits other lookups need).
    #[arg(long, default_value_t = 1)]
    pub ocr_workers: usize,
    /// Delete recorded lookups (submissions) without matches after DAYS
    /// (fractions allowed), with a background sweep. Submissions with
    /// matches are kept while any match is pending, then --retain-decided
    /// DAYS after their last decision. Default: keep everything.
    #[arg(long, value_name = "DAYS")]
    pub retain_submissions: Option<f64>,
    /// With --retain-submissions: days a matched submission, its matches,
    /// decisions and audit trail are kept after the last decision
    /// (default: the --retain-submissions value).
    #[arg(long, value_name = "DAYS", requires = "retain_submissions")]
    pub retain_decided: Option<f64>,
    /// Seconds between retention sweeps.
    #[arg(long, default_value_t = 600)]
    pub retention_sweep_secs: u64,
    /// Undo window of review decisions, seconds: a decision's webhook event
    /// is published only after it (the console offers Undo until then).
    #[arg(long, default_value_t = 30)]
    pub undo_window: u64,
    /// Demo mode: seeded with generated, benign demo banks and simulated
    /// uploads (media retained), plus admin and reviewer console logins. By
    /// default on a throwaway SQLite database in a temp dir; with an explicit
    /// --db (e.g. postgres://…) the demo is seeded into that database, which
    /// must be empty (a database with banks, users, keys or submissions is
    /// refused).
    #[arg(long)]
    pub demo: bool,
    /// Do not run exchange fetch workers and the feed builder in this
    /// process (another process of the deployment does).
    #[arg(long)]
    pub no_exchange_workers: bool,
    /// Let exchange adapters connect to loopback addresses (a peer on the
    /// same host; tests).
    #[arg(long)]
    pub exchange_allow_loopback: bool,
    /// Let exchange adapters connect to private-network addresses.
    #[arg(long)]
    pub exchange_allow_private: bool,
    /// Key file sealing exchange credentials when ECHOTRACE_SECRET_KEY is
    /// unset (created with mode 0600 on first run; default: next to a
    /// SQLite database, else ./echotrace.secret).
    #[arg(long, env = "ECHOTRACE_SECRET_KEY_FILE")]
    pub secret_key_file: Option<std::path::PathBuf>,
    /// Seconds an exchange fetcher's lease lasts without renewal (after a
    /// crash another process takes the exchange over within it).
    #[arg(long, default_value_t = 15, hide = true)]
    pub exchange_lease_secs: u64,
    /// Run a collector loop in this process (sources, frontier, WARC).
    #[arg(long)]
    pub collect: bool,
    /// Collector: contact URL or mailto: address for the User-Agent.
    #[arg(long, env = "ECHOTRACE_COLLECTOR_CONTACT")]
    pub contact: Option<String>,
    /// Collector: directory for WARC evidence files.
    #[arg(long, default_value = "./warc")]
    pub warc_dir: std::path::PathBuf,
    /// Collector: non-public addresses that may be fetched (none, all, or CIDRs).
    #[arg(long, default_value = "none")]
    pub allow_private_addresses: String,
    /// Collector: concurrent fetches.
    #[arg(long, default_value_t = 4)]
    pub collect_workers: usize,
    /// Directory for snapshots of the in-memory indexes (local to this
    /// process): the newest valid one is loaded at start and only the
    /// changes since are read from the database; a corrupt snapshot or one
    /// of another database is refused and the indexes are loaded from the
    /// database instead.
    #[arg(long, value_name = "DIR")]
    pub snapshot_dir: Option<std::path::PathBuf>,
    /// Seconds between background snapshots (written only when changes
    /// were applied since the last one); 0: only at a graceful stop.
    #[arg(long, default_value_t = 600)]
    pub snapshot_interval_secs: u64,
    /// Which lookups are written to the database: `all` (a submission row
    /// each) or `matches` (only lookups with a match or allow-bank hit; the
    /// others answer the same with `submission_id: null` and write nothing).
    #[arg(long, default_value = "all", value_parser = ["all", "matches"])]
    pub record: String,
    /// `/readyz` answers 503 when the oldest database change not applied
    /// yet is older than this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub max_lag_secs: f64,
    /// After SIGTERM, connections keep working this long (requests already
    /// on their way are answered) before idle ones are closed, ms.
    #[arg(long, default_value_t = 500)]
    pub drain_grace_ms: u64,
    /// Longest wait for in-flight requests after SIGTERM, seconds.
    #[arg(long, default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
    /// Flood guard: window over which an item's share of lookups is
    /// measured (all processes on the database together), seconds.
    #[arg(long, default_value_t = 600)]
    pub flood_window_secs: u64,
    /// Flood guard: no quarantine before the window holds this many lookups.
    #[arg(long, default_value_t = 200)]
    pub flood_min_sample: usize,
    /// Flood guard: quarantine an item that matched more than this share
    /// (0–1) of the window's lookups; 0 disables the guard.
    #[arg(long, default_value_t = 0.2)]
    pub flood_max_share: f64,
    /// Directory where an MP4 upload whose index (moov) follows the media
    /// data is written, as a private 0600 file deleted after decoding, so
    /// ffmpeg can seek in it. Without it such uploads (unless small) are
    /// refused with a 400 saying how to remux them; nothing else is ever
    /// written to disk while hashing.
    #[arg(long, value_name = "DIR", env = "ECHOTRACE_VIDEO_TEMP_DIR")]
    pub video_temp_dir: Option<std::path::PathBuf>,
}

/// Large buffers (request bodies, decoded images, copies of long texts) are
/// given back to the OS when freed: glibc's default mmap threshold grows
/// with the largest buffer freed, after which multi-MiB buffers come from
/// the heap and stay in the process (measured: peak RSS of a 64-upload
/// flood 200+ MiB over idle instead of ~80). A fixed 1 MiB threshold keeps
/// RSS close to what is live. `MALLOC_MMAP_THRESHOLD_` in the environment
/// still wins.
fn release_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before
        // any thread of ours exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    release_large_buffers();
    // Warnings of the server and engine (failed decodes with the decoder's
    // own words, retries, sweeps) go to stderr, never to clients.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .try_init();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.build().context("starting the async runtime")?;
    rt.block_on(run_async(args))
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// DAYS (fractions allowed) as a duration; refuses negative or non-finite values.
fn days(flag: &str, d: f64) -> anyhow::Result<Duration> {
    if !(d.is_finite() && (0.0..=1e6).contains(&d)) {
        anyhow::bail!("{flag} must be a number of days between 0 and 1000000");
    }
    Ok(Duration::from_secs_f64(d * 86_400.0))
}

async fn run_async(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let retention = match args.retain_submissions {
        Some(d) => {
            let submissions = days("--retain-submissions", d)?;
            let decided = match args.retain_decided {
                Some(dd) => days("--retain-decided", dd)?,
                None => submissions,
            };
            let policy = echotrace_engine::RetentionPolicy {
                submissions,
                decided,
            };
            Some((
                policy,
                Duration::from_secs(args.retention_sweep_secs.max(1)),
            ))
        }
        None => None,
    };
    // --demo with an explicit --db: seed that database, if it is empty.
    let demo_into_db = args.demo && args.database.db != echotrace_engine::DEFAULT_DATABASE_URL;
    if demo_into_db {
        ensure_empty(&args.database.db).await?;
    }
    // --demo: a throwaway database (ECHOTRACE_DEMO_DIR overrides its folder).
    let demo_dir = if args.demo && !demo_into_db {
        let dir = match std::env::var_os("ECHOTRACE_DEMO_DIR") {
            Some(d) => std::path::PathBuf::from(d),
            None => std::env::temp_dir().join(format!(
                "echotrace-demo-{}-{}",
                std::process::id(),
                echotrace_store_now()
            )),
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Some(dir)
    } else {
        None
    };
    let db = match &demo_dir {
        Some(dir) => format!("sqlite://{}", dir.join("demo.sqlite").display()),
        None => args.database.db.clone(),
    };
    let mut engine = EngineConfig::with_database_url(&db);
    engine.tail_interval = Duration::from_millis(args.tail_interval_ms.max(10));
    engine.decision_undo_delay = Duration::from_secs(args.undo_window);
    // PDFs are extracted by this same binary (`__extract-pdf`) in a child
    // process with time and memory limits.
    engine.pdf_extractor = std::env::current_exe().ok();
    engine.ocr.enabled = !args.no_ocr;
    engine.ocr.workers = args.ocr_workers.max(1);
    let collector = if args.collect || args.demo {
        Some(collector_config(&args, demo_dir.as_deref())?)
    } else {
        None
    };
    engine.snapshot_dir = args.snapshot_dir.clone();
    engine.record = echotrace_engine::RecordPolicy::parse(&args.record)
        .ok_or_else(|| anyhow::anyhow!("--record must be all or matches"))?;
    if !(0.0..=1.0).contains(&args.flood_max_share) {
        anyhow::bail!("--flood-max-share must be between 0 and 1");
    }
    if !args.max_lag_secs.is_finite() || args.max_lag_secs < 0.0 {
        anyhow::bail!("--max-lag-secs must be a number of seconds, 0 or more");
    }
    engine.flood_guard = echotrace_engine::FloodGuardConfig {
        enabled: args.flood_max_share > 0.0,
        window: Duration::from_secs(args.flood_window_secs.max(1)),
        min_sample: args.flood_min_sample,
        max_share: args.flood_max_share,
    };
    if let Some(dir) = &args.video_temp_dir {
        if !dir.is_dir() {
            anyhow::bail!("--video-temp-dir {} is not a directory", dir.display());
        }
    }
    let defaults = ServerConfig::default();
    let body_limit = args.max_body_mib.saturating_mul(1 << 20);
    let config = ServerConfig {
        collector,
        demo_site: args.demo,
        engine,
        body_limit,
        body_budget: args
            .body_budget_mib
            .map_or(body_limit.saturating_mul(2), |m| m.saturating_mul(1 << 20)),
        hash_workers: args.hash_workers.unwrap_or(defaults.hash_workers).max(1),
        heavy_hash_workers: args
            .heavy_hash_workers
            .unwrap_or(defaults.heavy_hash_workers)
            .max(1),
        fetch: FetchPolicy {
            enabled: args.allow_url_fetch,
            max_bytes: args.fetch_max_mib.saturating_mul(1 << 20),
            timeout: Duration::from_secs(args.fetch_timeout_secs.max(1)),
        },
        key_cache_ttl: Duration::from_secs(args.key_cache_secs),
        deliver_webhooks: !args.no_webhooks,
        retain_media: args.retain_media || args.demo,
        retention,
        exchanges: echotrace_server::ExchangeSettings {
            run_workers: !args.no_exchange_workers,
            run_feed_builder: !args.no_exchange_workers,
            net: echotrace_exchange::NetPolicy {
                allow_loopback: args.exchange_allow_loopback,
                allow_private: args.exchange_allow_private,
                ..echotrace_exchange::NetPolicy::default()
            },
            secret_key_file: super::exchange::secret_key_path(&db, args.secret_key_file.as_deref()),
            lease_ttl: Duration::from_secs(args.exchange_lease_secs.max(1)),
        },
        max_lag: Duration::from_secs_f64(args.max_lag_secs),
        snapshot_interval: (args.snapshot_interval_secs > 0)
            .then(|| Duration::from_secs(args.snapshot_interval_secs)),
        drain: echotrace_server::DrainConfig {
            grace: Duration::from_millis(args.drain_grace_ms),
            timeout: Duration::from_secs(args.shutdown_timeout_secs),
        },
        video_temp_dir: args.video_temp_dir.clone(),
        bootstrap_admin: Some(Arc::new(|key: &str| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "echotrace: no API keys existed; created an admin API key (shown once): {key}"
            );
            let _ = out.flush();
        })),
        ..defaults
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let handle = echotrace_server::start(config, listener, shutdown_signal())
        .await
        .context("starting the server")?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "echotrace: listening on http://{}", handle.addr);
        let _ = out.flush();
    }
    let export_dir = demo_dir.clone().unwrap_or_else(std::env::temp_dir);
    if let Err(e) = console_bootstrap(&handle, args.demo, &export_dir).await {
        if args.demo {
            return Err(e.context("seeding the demo"));
        }
        eprintln!("echotrace: review console bootstrap skipped: {e:#}");
    }
    handle.wait().await.context("serving")?;
    if let Some(dir) = demo_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    eprintln!("echotrace: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Refuse to seed the demo into a database that already holds data.
async fn ensure_empty(url: &str) -> anyhow::Result<()> {
    let counts = echotrace_engine::console::data_counts(url)
        .await
        .with_context(|| format!("opening {} for --demo", redact(url)))?;
    let found: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(table, n)| format!("{n} {table}"))
        .collect();
    if !found.is_empty() {
        anyhow::bail!(
            "--demo seeds only an empty database, and {} already holds data ({}); \
             use a fresh database, or omit --db for a throwaway SQLite demo",
            redact(url),
            found.join(", ")
        );
    }
    Ok(())
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

fn echotrace_store_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Review console bootstrap: on a database without console users, create
/// `admin` with a random password printed once; with `--demo`, also seed the
/// demo data and a `reviewer` user, and print the console URL and logins.
async fn console_bootstrap(
    handle: &echotrace_server::ServerHandle,
    demo: bool,
    export_dir: &std::path::Path,
) -> anyhow::Result<()> {
    use echotrace_engine::{console, Actor, Role};
    handle
        .ready(Duration::from_secs(600))
        .await
        .map_err(|e| anyhow::anyhow!("engine did not start: {e}"))?;
    let engine = handle
        .state
        .engine()
        .map_err(|_| anyhow::anyhow!("engine not available"))?
        .clone();
    let mut lines = Vec::new();
    if engine.list_users().await?.is_empty() {
        let password = console::generate_password()?;
        engine
            .create_user(&Actor::system(), "admin", &password, Role::Admin)
            .await?;
        if demo {
            lines.push(format!("echotrace demo: login: admin / {password}"));
        } else {
            lines.push(format!(
                "echotrace: no console users existed; created console user admin with password (shown once): {password}"
            ));
        }
    }
    if demo {
        let summary = echotrace_engine::demo::seed(&engine, true).await?;
        let password = console::generate_password()?;
        engine
            .create_user(&Actor::system(), "reviewer", &password, Role::Reviewer)
            .await?;
        lines.push(format!("echotrace demo: login: reviewer / {password}"));
        lines.push(format!(
            "echotrace demo: seeded {} bank items and {} simulated uploads ({} matches, {} suppressed by the allow bank)",
            summary.bank_items, summary.uploads, summary.matches, summary.suppressed
        ));
        let spread = echotrace_spread::demo::seed(&engine, echotrace_store::now_ms()).await?;
        lines.push(format!(
            "echotrace demo: seeded {} sightings with {} liveness checks and {} notices (Spread page)",
            spread.sightings, spread.checks, spread.notices
        ));
        let base = format!("http://{}", handle.addr);
        match echotrace_server::collect::seed_demo(&handle.state, &base, export_dir).await {
            Ok(line) => lines.push(format!("echotrace demo: {line}")),
            Err(e) => lines.push(format!("echotrace demo: collector demo skipped: {e}")),
        }
    }
    lines.push(format!(
        "echotrace: review console: http://{}/ui/",
        handle.addr
    ));
    let mut out = std::io::stdout().lock();
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    let _ = out.flush();
    Ok(())
}

/// The collector settings of `serve --collect` / `--demo`.
fn collector_config(
    args: &ServeArgs,
    demo_dir: Option<&std::path::Path>,
) -> anyhow::Result<echotrace_collector::CollectorConfig> {
    use echotrace_collector::{CollectorConfig, FetchConfig, PrivateAllow};
    let contact = match (&args.contact, args.demo) {
        (Some(c), _) => c.clone(),
        (None, true) => "https://echotrace.invalid/demo".to_string(),
        (None, false) => anyhow::bail!(
            "--collect needs --contact: an http(s) URL or mailto: address for the User-Agent \
             (or ECHOTRACE_COLLECTOR_CONTACT)"
        ),
    };
    let mut fetch = FetchConfig::new(&contact).map_err(|e| anyhow::anyhow!("--contact: {e}"))?;
    let mut allow = args
        .allow_private_addresses
        .parse::<PrivateAllow>()
        .map_err(|e| anyhow::anyhow!("--allow-private-addresses: {e}"))?;
    if args.demo {
        // The demo site is served by this process on loopback.
        let host = args.listen.ip();
        let net: echotrace_collector::guard::IpNet = format!("{host}")
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))?;
        allow = match allow {
            PrivateAllow::All => PrivateAllow::All,
            PrivateAllow::None => PrivateAllow::Nets(vec![net]),
            PrivateAllow::Nets(mut n) => {
                n.push(net);
                PrivateAllow::Nets(n)
            }
        };
    }
    fetch.allow_private = allow;
    let warc_dir = match demo_dir {
        Some(d) if args.demo => d.join("warc"),
        _ => args.warc_dir.clone(),
    };
    let mut cfg = CollectorConfig::new(fetch, warc_dir);
    cfg.retain_media = args.retain_media || args.demo;
    cfg.workers = args.collect_workers.clamp(1, 256);
    Ok(cfg)
}
