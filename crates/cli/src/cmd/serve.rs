//! `echotrace serve`: run the HTTP matching service.
//!
//! Binds first (so `/healthz` answers at once), loads the indexes in the
//! background (`/readyz` turns 200 when done), and shuts down gracefully on
//! SIGTERM or Ctrl-C: in-flight requests finish, background tasks stop.
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
    /// Concurrent hashing jobs for uploads (default: number of cores).
    #[arg(long)]
    pub hash_workers: Option<usize>,
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
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.build().context("starting the async runtime")?;
    rt.block_on(run_async(args))
}

async fn shutdown_signal() {
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

async fn run_async(args: ServeArgs) -> anyhow::Result<ExitCode> {
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
    let defaults = ServerConfig::default();
    let config = ServerConfig {
        engine,
        body_limit: args.max_body_mib.saturating_mul(1 << 20),
        hash_workers: args.hash_workers.unwrap_or(defaults.hash_workers).max(1),
        fetch: FetchPolicy {
            enabled: args.allow_url_fetch,
            max_bytes: args.fetch_max_mib.saturating_mul(1 << 20),
            timeout: Duration::from_secs(args.fetch_timeout_secs.max(1)),
        },
        key_cache_ttl: Duration::from_secs(args.key_cache_secs),
        deliver_webhooks: !args.no_webhooks,
        retain_media: args.retain_media || args.demo,
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
    if let Err(e) = console_bootstrap(&handle, args.demo).await {
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
