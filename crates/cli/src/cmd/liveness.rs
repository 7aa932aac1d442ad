//! `echotrace liveness run`: the liveness checker. Re-checks every matched
//! sighting's URL on the adaptive schedule through the collector's fetcher
//! (its SSRF guard, robots.txt, politeness and proxies), decides each
//! verdict by re-hashing what is served, and records every outcome exactly
//! once (see `echotrace_spread::checker`). Runs until Ctrl-C / SIGTERM, or
//! one round with `--once`. Progress goes to stderr every few seconds.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use echotrace_collector::{FetchConfig, PolitenessConfig, PrivateAllow};
use echotrace_spread::checker::{Checker, CheckerConfig};
use echotrace_spread::fetch::CollectorFetcher;
use echotrace_spread::machine::Timing;
use echotrace_spread::report::CheckerSettings;
use echotrace_spread::rules::RemovalRules;
use echotrace_spread::schedule::{parse_duration_ms, Schedule, DEFAULT_SCHEDULE};
use echotrace_spread::state::RemovalPolicy;

#[derive(Args)]
pub struct LivenessArgs {
    #[command(flatten)]
    pub database: super::DatabaseArg,
    #[command(subcommand)]
    pub command: LivenessCommand,
}

#[derive(Subcommand)]
pub enum LivenessCommand {
    /// Run the checker.
    Run(RunArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// One round (everything due now), then exit; prints a JSON summary.
    #[arg(long)]
    pub once: bool,
    /// Check schedule: offsets from first seen (see docs), e.g. the
    /// default "1h,6h,24h,+1d..30d,+7d..90d".
    #[arg(long, default_value = DEFAULT_SCHEDULE)]
    pub schedule: String,
    /// Delay before the check confirming a first removed check.
    #[arg(long, default_value = "1h")]
    pub confirm_after: String,
    /// Delay before retrying an inconclusive check.
    #[arg(long, default_value = "1h")]
    pub retry_after: String,
    /// Consecutive removed checks needed before a copy counts as removed.
    #[arg(long, default_value_t = 2)]
    pub confirm_checks: u32,
    /// Verdicts that count as removed (comma-separated).
    #[arg(
        long,
        default_value = "removed_gone,removed_notice_page,account_suspended,live_altered"
    )]
    pub removed_states: String,
    /// Extra removal rules (JSON list; tried before the built-in ones).
    #[arg(long)]
    pub removal_rules: Option<std::path::PathBuf>,
    /// Your contact (an http(s) URL or mailto: address), sent in the
    /// User-Agent so site owners can reach you; the same variable as
    /// `collect run` (ECHOTRACE_CONTACT, read before, is still read).
    #[arg(long, env = "ECHOTRACE_COLLECTOR_CONTACT")]
    pub contact: Option<String>,
    /// Minimum time between two requests to one host, ms (Heritrix's 3 s;
    /// after a request the host also rests 5 × its duration, and a
    /// robots.txt Crawl-delay up to 300 s is honoured). 0: politeness off.
    #[arg(long, default_value_t = 3000)]
    pub politeness_ms: u64,
    /// Checks in flight at once.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Route every check through this SOCKS5 proxy, e.g. Tor:
    /// socks5h://127.0.0.1:9050 (a source's own `proxy` wins).
    #[arg(long)]
    pub proxy: Option<String>,
    /// Allow loopback/private addresses (local sites, tests).
    #[arg(long)]
    pub allow_private_addresses: bool,
    /// Time limit of one check, seconds.
    #[arg(long, default_value_t = 20)]
    pub timeout_secs: u64,
    /// Largest body read per check, MiB.
    #[arg(long, default_value_t = 32)]
    pub max_body_mib: usize,
    /// How long a leased check is reserved for this process, seconds.
    #[arg(long, default_value_t = 300)]
    pub lease_secs: u64,
    /// Record checks as done at this time (YYYY-MM-DD[THH:MM[:SS]Z] or
    /// Unix ms) instead of now: replays and tests.
    #[arg(long)]
    pub at: Option<String>,
}

fn duration(flag: &str, v: &str) -> anyhow::Result<Duration> {
    parse_duration_ms(v)
        .filter(|ms| *ms >= 0)
        .map(|ms| Duration::from_millis(ms as u64))
        .ok_or_else(|| anyhow!("--{flag} {v:?}: expected a duration like 90s, 15m, 1h, 2d"))
}

/// Validate the flags into a checker configuration (no I/O but the rules file).
fn config(a: &RunArgs) -> anyhow::Result<(CheckerConfig, FetchConfig, CheckerSettings)> {
    let schedule = Schedule::parse(&a.schedule).map_err(|e| anyhow!("--schedule: {e}"))?;
    let removed = RemovalPolicy::parse_removed(&a.removed_states)
        .map_err(|e| anyhow!("--removed-states: {e}"))?;
    if a.confirm_checks == 0 || a.confirm_checks > 10 {
        return Err(anyhow!("--confirm-checks must be 1-10"));
    }
    if a.workers == 0 || a.workers > 1024 {
        return Err(anyhow!("--workers must be 1-1024"));
    }
    if let Some(p) = &a.proxy {
        echotrace_collector::fetch::validate_proxy(p).map_err(|e| anyhow!("--proxy: {e}"))?;
    }
    let mut rules = RemovalRules::builtin();
    if let Some(path) = &a.removal_rules {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let own = RemovalRules::parse_json(&text)
            .map_err(|e| anyhow!("--removal-rules {}: {e}", path.display()))?;
        rules = own.then(rules);
    }
    let at = match a.at.as_deref() {
        Some(s) => Some(echotrace_spread::time::parse_time(s).ok_or_else(|| {
            anyhow!(
                "--at {s:?}: expected {}",
                echotrace_spread::time::TIME_FORMS
            )
        })?),
        None => None,
    };
    let timing = Timing {
        schedule,
        confirm_after: duration("confirm-after", &a.confirm_after)?,
        retry_after: duration("retry-after", &a.retry_after)?,
    };
    let settings = CheckerSettings {
        schedule: timing.schedule.text().to_string(),
        confirm_checks: a.confirm_checks,
        confirm_after_secs: timing.confirm_after.as_secs(),
        retry_after_secs: timing.retry_after.as_secs(),
        removed_states: removed.iter().map(|s| s.as_str().to_string()).collect(),
        politeness_ms: a.politeness_ms,
        proxy: a.proxy.is_some(),
        removal_rules: rules.rules().len(),
    };
    let holder = format!(
        "liveness-{}-{}",
        std::process::id(),
        echotrace_store::now_ms()
    );
    let mut cfg = CheckerConfig::new(holder);
    cfg.workers = a.workers;
    cfg.lease = Duration::from_secs(a.lease_secs.max(1));
    cfg.timing = timing;
    cfg.policy = RemovalPolicy {
        removed,
        confirm_checks: a.confirm_checks,
    };
    cfg.rules = rules;
    cfg.proxy = a.proxy.clone();
    cfg.at = at;
    let contact = a
        .contact
        .clone()
        .or_else(|| std::env::var("ECHOTRACE_CONTACT").ok())
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| {
            anyhow!(
                "--contact is required: an http(s) URL or mailto: address where site owners can \
                 reach you (it goes into the User-Agent); or set ECHOTRACE_COLLECTOR_CONTACT"
            )
        })?;
    let mut fetch = FetchConfig::new(&contact).map_err(|e| anyhow!("--contact: {e}"))?;
    fetch.timeout = Duration::from_secs(a.timeout_secs.max(1));
    fetch.connect_timeout = fetch.timeout.min(Duration::from_secs(10));
    fetch.max_body_bytes = (a.max_body_mib.max(1) as u64).saturating_mul(1 << 20);
    if a.allow_private_addresses {
        fetch.allow_private = PrivateAllow::All;
    }
    fetch.politeness = if a.politeness_ms == 0 {
        PolitenessConfig {
            enabled: false,
            ..PolitenessConfig::default()
        }
    } else {
        PolitenessConfig {
            min_delay: Duration::from_millis(a.politeness_ms),
            ..PolitenessConfig::default()
        }
    };
    // A check waits at most a few seconds for a busy host; past that it is
    // handed back and retried by a later batch.
    fetch.max_politeness_wait = Duration::from_millis(a.politeness_ms.saturating_mul(4).max(1000));
    Ok((cfg, fetch, settings))
}

pub fn run(args: LivenessArgs) -> anyhow::Result<ExitCode> {
    let LivenessCommand::Run(a) = args.command;
    let (cfg, fetch_cfg, settings) = config(&a)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let engine = args.database.open_for_admin().await?;
        let store = engine.store().clone();
        store
            .put_spread_setting("checker", &serde_json::to_string(&settings)?)
            .await?;
        let fetcher = echotrace_collector::Fetcher::new(fetch_cfg, Some(store.clone()), &cfg.holder)
            .map_err(|e| anyhow!("the fetcher: {e}"))?;
        let checker = Checker::new(store, Arc::new(CollectorFetcher(Arc::new(fetcher))), cfg);
        let progress = checker.progress();
        let reporter = {
            let p = progress.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    eprintln!(
                        "echotrace liveness: {} checked, {} recorded, {} deferred by politeness, {:?}",
                        p.checked.load(Ordering::Relaxed),
                        p.recorded.load(Ordering::Relaxed),
                        p.deferred.load(Ordering::Relaxed),
                        p.by_state()
                    );
                }
            })
        };
        let result = if a.once {
            let started = std::time::Instant::now();
            let report = checker.run_round().await?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{}",
                serde_json::json!({
                    "enrolled": report.enrolled,
                    "checked": report.checked,
                    "recorded": report.recorded,
                    "superseded": report.superseded,
                    "deferred": report.deferred,
                    "by_state": report.by_state,
                    "seconds": secs,
                })
            );
            Ok(())
        } else {
            eprintln!("echotrace liveness: running (Ctrl-C to stop)");
            checker
                .run_until(Duration::from_secs(30), super::serve::shutdown_signal())
                .await
        };
        reporter.abort();
        result?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
