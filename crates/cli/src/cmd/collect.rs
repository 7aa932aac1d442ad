//! `echotrace collect`: the collector from the command line, straight
//! against the database.
//!
//! * `collect add-source NAME --kind KIND [--url URL]… [--path P] [options]`
//!   adds a source (the same validation as `POST /v1/sources`; errors name
//!   the field); `--config JSON` gives the whole config instead.
//! * `collect list-sources [--json]` lists sources with their status.
//! * `collect run [--source NAME]…` seeds the sources (imports file-based
//!   ones), drains the frontier and exits when nothing is due (`--watch`
//!   keeps polling). Progress goes to stderr once a second; the report to
//!   stdout (`--json` for JSON). Per-item errors are counted, not fatal.
//! * `collect import-telegram PATH` / `collect import-warc PATH` import one
//!   export or WARC file into a source (created on first use: `--source`,
//!   default `telegram:<folder>` / `warc:<file>`). A malformed input is a
//!   clear error naming its position (exit 2); per-item errors (a missing
//!   media file, an oversized record) are reported and give exit 1.
//! * `collect add-platform HOST PLATFORM` extends the host → platform table.
//!
//! Fetching needs `--contact` (or `ECHOTRACE_COLLECTOR_CONTACT`): an http(s)
//! URL or mailto: address that goes into the User-Agent.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use echotrace_collector::guard::PrivateAllow;
use echotrace_collector::{
    Collector, CollectorConfig, FetchConfig, ImportReport, RunOptions, RunReport, SourceConfig,
    SourceKind,
};
use echotrace_engine::{Actor, EngineConfig};

#[derive(Args)]
pub struct CollectArgs {
    #[command(flatten)]
    pub database: super::DatabaseArg,
    #[command(subcommand)]
    pub command: CollectCommand,
}

#[derive(Subcommand)]
pub enum CollectCommand {
    /// Seed the sources and fetch until the frontier is drained.
    Run(RunArgs),
    /// Add a source.
    AddSource(AddSourceArgs),
    /// List sources with their status.
    ListSources(ListArgs),
    /// Import a Telegram Desktop JSON export (folder or result.json).
    ImportTelegram(ImportArgs),
    /// Import a WARC file (.warc or .warc.gz).
    ImportWarc(ImportArgs),
    /// Add or replace a host -> platform entry.
    AddPlatform(PlatformArgs),
}

/// Settings of the collector process (fetching, evidence, retention).
#[derive(Args, Clone)]
pub struct CollectorOpts {
    /// Contact URL or mailto: address for the User-Agent (required to fetch).
    #[arg(long, env = "ECHOTRACE_COLLECTOR_CONTACT")]
    pub contact: Option<String>,
    /// Directory for WARC evidence files.
    #[arg(long, default_value = "./warc")]
    pub warc_dir: PathBuf,
    /// Keep payloads in WARC records (default: digests and headers only).
    #[arg(long)]
    pub retain_media: bool,
    /// Non-public addresses that may be fetched: none, all, or CIDRs
    /// (e.g. 10.0.0.0/8,127.0.0.2/32).
    #[arg(long, default_value = "none")]
    pub allow_private_addresses: String,
    /// Concurrent fetches.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// Switch politeness delays off (local tests and benchmarks only).
    #[arg(long)]
    pub no_politeness: bool,
    /// Minimum delay between requests to one host, ms (Heritrix: 3000).
    #[arg(long, default_value_t = 3000)]
    pub min_delay_ms: u64,
    /// Politeness delay factor × the last request's duration (Heritrix: 5).
    #[arg(long, default_value_t = 5.0)]
    pub delay_factor: f64,
    /// Time limit of one request (connect, headers, body), seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// Largest body, MiB.
    #[arg(long, default_value_t = 32)]
    pub max_body_mib: u64,
    /// How long a leased job is held before another worker may take it, s.
    #[arg(long, default_value_t = 300)]
    pub lease_secs: u64,
    /// Attempts before a transiently failing URL is given up.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: i64,
    /// First retry delay, seconds (doubles per attempt).
    #[arg(long, default_value_t = 60)]
    pub retry_secs: u64,
    /// Days an unmatched sighting's hashes are kept for retro-hunting
    /// (0: for ever).
    #[arg(long, default_value_t = 90)]
    pub keep_unmatched_days: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub opts: CollectorOpts,
    /// Only this source (repeatable).
    #[arg(long = "source")]
    pub sources: Vec<String>,
    /// Do not seed: only work the jobs already queued.
    #[arg(long)]
    pub no_seed: bool,
    /// Keep running and polling for work (until Ctrl-C).
    #[arg(long)]
    pub watch: bool,
    /// Stop after this many jobs.
    #[arg(long)]
    pub max_jobs: Option<u64>,
    /// Exit when nothing is due within this many seconds.
    #[arg(long, default_value_t = 300)]
    pub max_idle_secs: u64,
}

#[derive(Args)]
pub struct AddSourceArgs {
    pub name: String,
    /// urls, page, feed, telegram_export, warc, locker.
    #[arg(long)]
    pub kind: String,
    /// A seed URL (repeatable).
    #[arg(long = "url")]
    pub urls: Vec<String>,
    /// A local path (URL list, export folder, WARC file).
    #[arg(long)]
    pub path: Option<String>,
    /// Hops from a seed, 0-2.
    #[arg(long)]
    pub depth: Option<u8>,
    /// socks5h://host:port for every request of this source (Tor).
    #[arg(long)]
    pub proxy: Option<String>,
    /// Do not obey robots.txt (audited).
    #[arg(long)]
    pub ignore_robots: bool,
    /// A file-locker or paste host (repeatable; *.example for subdomains).
    #[arg(long = "locker-host")]
    pub locker_hosts: Vec<String>,
    /// Another host in scope (repeatable).
    #[arg(long = "extra-host")]
    pub extra_hosts: Vec<String>,
    /// Per-source minimum delay between requests to a host, ms.
    #[arg(long)]
    pub min_delay_ms: Option<u64>,
    /// Imports: queue the outlinks found for fetching.
    #[arg(long)]
    pub follow_links: bool,
    /// Match images and videos on their plain PDQ/vPDQ and digests only
    /// (config "robust": false): ~6x less CPU per image, and mirrored,
    /// framed or cropped copies are missed.
    #[arg(long)]
    pub no_robust: bool,
    /// The whole config as JSON (instead of the options above).
    #[arg(long)]
    pub config: Option<String>,
    /// Print the source as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ImportArgs {
    /// The export folder / result.json, or the WARC file.
    pub path: PathBuf,
    /// Source to import into (created if missing).
    #[arg(long)]
    pub source: Option<String>,
    /// Queue the outlinks found for fetching (new sources only).
    #[arg(long)]
    pub follow_links: bool,
    /// Match images and videos on their plain PDQ/vPDQ and digests only
    /// (config "robust": false; new sources only): ~6x less CPU per image,
    /// and mirrored, framed or cropped copies are missed.
    #[arg(long)]
    pub no_robust: bool,
    #[command(flatten)]
    pub opts: CollectorOpts,
}

#[derive(Args)]
pub struct PlatformArgs {
    pub host: String,
    pub platform: String,
}

pub fn run(args: CollectArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        match args.command {
            CollectCommand::Run(a) => run_collect(&args.database, a).await,
            CollectCommand::AddSource(a) => add_source(&args.database, a).await,
            CollectCommand::ListSources(a) => list_sources(&args.database, a).await,
            CollectCommand::ImportTelegram(a) => {
                import(&args.database, a, SourceKind::TelegramExport).await
            }
            CollectCommand::ImportWarc(a) => import(&args.database, a, SourceKind::Warc).await,
            CollectCommand::AddPlatform(a) => add_platform(&args.database, a).await,
        }
    })
}

/// Build the collector (loads the match indexes: items are matched).
async fn open(
    db: &super::DatabaseArg,
    o: &CollectorOpts,
    fetching: bool,
) -> anyhow::Result<Collector> {
    let contact = match (&o.contact, fetching) {
        (Some(c), _) => c.clone(),
        (None, false) => "https://echotrace.invalid/contact-not-set".to_string(),
        (None, true) => bail!(
            "--contact is required to fetch: an http(s) URL or mailto: address where site \
             owners can reach you (it goes into the User-Agent); or set ECHOTRACE_COLLECTOR_CONTACT"
        ),
    };
    let mut fetch = FetchConfig::new(&contact).map_err(|e| anyhow!("--contact: {e}"))?;
    fetch.allow_private = o
        .allow_private_addresses
        .parse::<PrivateAllow>()
        .map_err(|e| anyhow!("--allow-private-addresses: {e}"))?;
    fetch.politeness.enabled = !o.no_politeness;
    fetch.politeness.min_delay = Duration::from_millis(o.min_delay_ms);
    if !(0.0..=100.0).contains(&o.delay_factor) {
        bail!("--delay-factor: 0 to 100");
    }
    fetch.politeness.delay_factor = o.delay_factor;
    fetch.timeout = Duration::from_secs(o.timeout_secs.max(1));
    fetch.max_body_bytes = o.max_body_mib.max(1) << 20;
    if o.lease_secs < 2 {
        bail!("--lease-secs: at least 2");
    }
    let mut engine_cfg = EngineConfig::with_database_url(&db.db);
    engine_cfg.pdf_extractor = std::env::current_exe().ok();
    let engine = echotrace_engine::Engine::open(engine_cfg)
        .await
        .with_context(|| format!("opening {}", db.db))?;
    let mut cfg = CollectorConfig::new(fetch, o.warc_dir.clone());
    cfg.retain_media = o.retain_media;
    cfg.workers = o.workers.clamp(1, 1024);
    cfg.lease = Duration::from_secs(o.lease_secs);
    cfg.max_attempts = o.max_attempts.clamp(1, 100);
    cfg.retry_backoff = Duration::from_secs(o.retry_secs);
    cfg.sightings.unmatched_ttl =
        (o.keep_unmatched_days > 0).then(|| Duration::from_secs(o.keep_unmatched_days * 86_400));
    Collector::new(engine, cfg).map_err(|e| anyhow!("{e}"))
}

fn progress_line(r: &RunReport) {
    let secs = (r.elapsed_ms as f64 / 1000.0).max(0.001);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "collect: {} fetched, {} failed, {} retrying, {} sightings ({} new, {} matched), {} imported, {:.1} jobs/s",
        r.fetched, r.jobs_failed, r.jobs_retried, r.items, r.new_sightings, r.matched, r.imported_items,
        (r.jobs_done + r.jobs_failed) as f64 / secs
    );
}

async fn run_collect(db: &super::DatabaseArg, a: RunArgs) -> anyhow::Result<ExitCode> {
    let collector = open(db, &a.opts, true).await?;
    // Retro-hunt bank items added since the last pass before fetching.
    let _ = collector
        .engine()
        .retro_hunt_step(&collector.config().holder, Duration::from_secs(60), 1000)
        .await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let opts = RunOptions {
        sources: (!a.sources.is_empty()).then_some(a.sources.clone()),
        seed: !a.no_seed,
        until_idle: !a.watch,
        max_idle_wait: Duration::from_secs(a.max_idle_secs),
        max_jobs: a.max_jobs,
        stop: Some(stop_rx),
        reseed_every: a.watch.then_some(Duration::from_secs(3600)),
    };
    let report = collector
        .run(opts, progress_line)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let mut out = std::io::stdout().lock();
    if a.opts.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        writeln!(
            out,
            "collected: {} fetched, {} failed ({} errors), {} sightings recorded ({} new, {} matched), {} still queued",
            report.fetched, report.jobs_failed, report.errors, report.items, report.new_sightings,
            report.matched, report.queued_remaining
        )?;
        for (k, n) in &report.errors_by_kind {
            writeln!(out, "  errors: {k}: {n}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn add_source(db: &super::DatabaseArg, a: AddSourceArgs) -> anyhow::Result<ExitCode> {
    let kind = SourceKind::parse(a.kind.trim()).ok_or_else(|| {
        anyhow!(
            "--kind: {:?} is not a source kind (urls, page, feed, telegram_export, warc, locker)",
            a.kind
        )
    })?;
    let config = match &a.config {
        Some(c) => c.clone(),
        None => {
            let mut c = SourceConfig {
                urls: a.urls.clone(),
                path: a.path.clone(),
                proxy: a.proxy.clone(),
                ignore_robots: a.ignore_robots,
                locker_hosts: a.locker_hosts.clone(),
                extra_hosts: a.extra_hosts.clone(),
                min_delay_ms: a.min_delay_ms,
                follow_links: a.follow_links,
                robust: !a.no_robust,
                ..SourceConfig::default()
            };
            if let Some(d) = a.depth {
                c.depth = d;
            }
            c.to_json()
        }
    };
    let engine = db.open_for_admin().await?;
    let view = echotrace_collector::registry::add_source(
        engine.store(),
        &Actor::cli(),
        &a.name,
        kind.as_str(),
        &config,
    )
    .await
    .map_err(|e| anyhow!("{e}"))?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&view)?)?;
    } else {
        writeln!(
            out,
            "source {} ({}) added, id {}",
            view.name, view.kind, view.id
        )?;
        if a.ignore_robots {
            writeln!(
                out,
                "note: this source ignores robots.txt; that is recorded in the audit log"
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list_sources(db: &super::DatabaseArg, a: ListArgs) -> anyhow::Result<ExitCode> {
    let engine = db.open_for_admin().await?;
    let list = echotrace_collector::registry::list_sources(engine.store())
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&list)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<24} {:<16} {:<8} {:>8} {:>7} {:>7} {:>7}  last run",
        "name", "kind", "enabled", "items", "errors", "queued", "waits"
    )?;
    for s in &list {
        writeln!(
            out,
            "{:<24} {:<16} {:<8} {:>8} {:>7} {:>7} {:>7}  {}",
            s.name,
            s.kind,
            if s.enabled { "yes" } else { "no" },
            s.items,
            s.errors,
            s.queued,
            s.politeness_waits,
            if s.last_run_status.is_empty() {
                "never".to_string()
            } else {
                s.last_run_status.clone()
            }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn import(
    db: &super::DatabaseArg,
    a: ImportArgs,
    kind: SourceKind,
) -> anyhow::Result<ExitCode> {
    let path = a.path.clone();
    if !path.exists() {
        bail!("{}: no such file or folder", path.display());
    }
    let collector = open(db, &a.opts, false).await?;
    let default_name = {
        // A Telegram export is named after its folder, also when given as
        // its `result.json` (every export's file has that name); `.` and
        // other relative paths are resolved first.
        let named = match kind {
            SourceKind::TelegramExport => {
                let full = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                match full.parent() {
                    Some(folder) if full.is_file() => folder.to_path_buf(),
                    _ => full,
                }
            }
            _ => path.clone(),
        };
        let stem = named
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "import".into());
        let stem: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .take(80)
            .collect();
        match kind {
            SourceKind::Warc => format!("warc:{stem}"),
            _ => format!("telegram:{stem}"),
        }
    };
    let name = a.source.clone().unwrap_or(default_name);
    let store = collector.store().clone();
    let row = match store.get_source_by_name(name.trim()).await? {
        Some(r) => {
            if r.kind != kind.as_str() {
                bail!(
                    "--source {name:?} is a {} source, not {}",
                    r.kind,
                    kind.as_str()
                );
            }
            if a.no_robust && SourceConfig::parse(&r.config).is_ok_and(|c| c.robust) {
                bail!(
                    "--no-robust: source {name:?} exists and matches images through the robust \
                     channels; the flag applies to new sources (to change it, PATCH \
                     /v1/sources/{name} with its whole config and \"robust\": false)"
                );
            }
            r
        }
        None => {
            let cfg = SourceConfig {
                path: Some(path.display().to_string()),
                follow_links: a.follow_links,
                robust: !a.no_robust,
                ..SourceConfig::default()
            };
            echotrace_collector::registry::add_source(
                &store,
                &Actor::cli(),
                &name,
                kind.as_str(),
                &cfg.to_json(),
            )
            .await
            .map_err(|e| anyhow!("{e}"))?;
            store
                .get_source_by_name(name.trim())
                .await?
                .ok_or_else(|| anyhow!("source {name:?} vanished"))?
        }
    };
    let progress = |r: &ImportReport| {
        let _ = writeln!(
            std::io::stderr().lock(),
            "import: {} messages, {} records, {} sightings ({} new, {} matched), {} media hashed, {} missing, {} errors",
            r.messages, r.records, r.items, r.new_sightings, r.matched, r.media_hashed, r.media_missing, r.errors
        );
    };
    let result = match kind {
        SourceKind::Warc => collector.import_warc(&row, &path, progress).await,
        _ => collector.import_telegram(&row, &path, progress).await,
    };
    let report = result.map_err(|e| anyhow!("{e}"))?;
    let mut out = std::io::stdout().lock();
    if a.opts.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        writeln!(
            out,
            "imported into {}: {} sightings ({} new, {} matched), {} outlinks, {} media hashed, {} media not exported, {} errors",
            row.name, report.items, report.new_sightings, report.matched, report.outlinks,
            report.media_hashed, report.media_missing, report.errors
        )?;
    }
    for e in report.error_samples.iter().take(20) {
        let _ = writeln!(std::io::stderr().lock(), "import: {e}");
    }
    Ok(if report.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn add_platform(db: &super::DatabaseArg, a: PlatformArgs) -> anyhow::Result<ExitCode> {
    let engine = db.open_for_admin().await?;
    echotrace_collector::registry::set_platform(
        engine.store(),
        &Actor::cli(),
        &a.host,
        &a.platform,
    )
    .await
    .map_err(|e| anyhow!("{e}"))?;
    writeln!(
        std::io::stdout().lock(),
        "{} -> {}",
        a.host.trim().to_ascii_lowercase(),
        a.platform.trim()
    )?;
    Ok(ExitCode::SUCCESS)
}
