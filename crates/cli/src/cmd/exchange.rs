//! `echotrace exchange`: manage signal exchanges against the database
//! (no running server needed): `add`, `list`, `status`, `fetch` (one round
//! now, in this process, with progress), `remove`, and `publish` (share a
//! bank with partner keys as a feed).
//!
//! Credentials are never taken on the command line (shell history): pass
//! `--credentials-file FILE` or `--credentials-stdin` (a JSON object, e.g.
//! `{"username": …, "password": …}` for `tat`).

use std::io::Read;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use echotrace_engine::exchange::ExchangePolicy;
use echotrace_engine::Actor;
use echotrace_exchange::{
    ExchangeRequest, ExchangeService, NetPolicy, RoundError, SecretBox, ServiceConfig,
};

#[derive(Args)]
pub struct ExchangeArgs {
    #[command(flatten)]
    pub database: super::DatabaseArg,
    /// Key file sealing credentials (when ECHOTRACE_SECRET_KEY is unset;
    /// default: next to a SQLite database, else ./echotrace.secret).
    #[arg(long, env = "ECHOTRACE_SECRET_KEY_FILE", global = true)]
    pub secret_key_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: ExchangeCommand,
}

#[derive(Subcommand)]
pub enum ExchangeCommand {
    /// Create an exchange (and its bank).
    Add {
        /// Exchange name (also the name of the bank it creates).
        name: String,
        /// echotrace, tat, fb_threatexchange or file.
        #[arg(long)]
        api: String,
        /// The API's config as a JSON object, e.g. '{"path": "/data/hashes.txt"}'.
        #[arg(long, default_value = "{}")]
        config: String,
        /// Read the credentials (a JSON object) from this file.
        #[arg(long, conflicts_with = "credentials_stdin")]
        credentials_file: Option<std::path::PathBuf>,
        /// Read the credentials (a JSON object) from stdin.
        #[arg(long)]
        credentials_stdin: bool,
        /// Fill this bank (shared with its other exchanges; created if no
        /// bank has that name) instead of one named like the exchange.
        #[arg(long)]
        bank: Option<String>,
        /// Policy as JSON: signal_types, include_labels, exclude_labels,
        /// skip_negative, skip_disputed.
        #[arg(long)]
        policy: Option<String>,
        /// Seconds between fetches.
        #[arg(long, default_value_t = echotrace_exchange::DEFAULT_POLL_SECS)]
        poll_secs: u64,
        /// Fetch and keep records without touching the bank (review the
        /// "would add / delete" diff, then go live in the console).
        #[arg(long)]
        dry_run: bool,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List exchanges with their status.
    List {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one exchange's status (JSON).
    Status { name: String },
    /// Fetch one round now, in this process (progress on stderr).
    Fetch {
        name: String,
        /// Allow upstreams on loopback addresses (a local peer, a test).
        #[arg(long)]
        allow_loopback: bool,
        /// Allow upstreams on private addresses.
        #[arg(long)]
        allow_private: bool,
    },
    /// Delete an exchange, its items and (unless shared) its bank.
    Remove { name: String },
    /// Publish a bank as a feed to partner keys (by key name).
    Publish {
        bank: String,
        /// A partner key's name (repeatable). The feed's partners become
        /// exactly these keys: name every partner, the old ones included.
        #[arg(long = "partner")]
        partners: Vec<String>,
        /// Keep tombstones this many days (default 180).
        #[arg(long)]
        horizon_days: Option<u32>,
        /// Stop publishing instead.
        #[arg(long)]
        unpublish: bool,
    },
}

/// The key file: explicit, else next to a SQLite database, else
/// `./echotrace.secret`.
pub fn secret_key_path(db: &str, explicit: Option<&std::path::Path>) -> std::path::PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    let path = db
        .strip_prefix("sqlite://")
        .or_else(|| db.strip_prefix("sqlite:"))
        .or_else(|| (!db.contains("://")).then_some(db));
    match path.map(|p| p.split('?').next().unwrap_or(p)) {
        Some(p) if !p.is_empty() && p != ":memory:" => {
            std::path::PathBuf::from(format!("{p}.secret"))
        }
        _ => std::path::PathBuf::from("echotrace.secret"),
    }
}

pub fn run(args: ExchangeArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(args))
}

fn read_credentials(
    file: Option<&std::path::Path>,
    stdin: bool,
) -> anyhow::Result<Option<serde_json::Value>> {
    let text = match (file, stdin) {
        (Some(f), _) => std::fs::read_to_string(f)
            .with_context(|| format!("reading credentials from {}", f.display()))?,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .take(1 << 20)
                .read_to_string(&mut s)
                .context("reading credentials from stdin")?;
            s
        }
        (None, false) => return Ok(None),
    };
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .map_err(|e| anyhow!("credentials must be a JSON object: {e}"))?;
    if !v.is_object() {
        bail!("credentials must be a JSON object");
    }
    Ok(Some(v))
}

fn service(
    engine: &echotrace_engine::Engine,
    args_db: &str,
    key_file: Option<&std::path::Path>,
    net: NetPolicy,
) -> anyhow::Result<std::sync::Arc<ExchangeService>> {
    let path = secret_key_path(args_db, key_file);
    let secrets = SecretBox::from_env_or_file_lazy(&path)
        .with_context(|| format!("opening the credentials key ({})", path.display()))?;
    Ok(ExchangeService::new(
        engine.clone(),
        secrets,
        ServiceConfig {
            net,
            ..ServiceConfig::default()
        },
    ))
}

fn ms_to_text(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => {
            let age = (echotrace_store_now() - ms).max(0) / 1000;
            format!("{age}s ago")
        }
        None => "never".into(),
    }
}

fn echotrace_store_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn run_async(args: ExchangeArgs) -> anyhow::Result<ExitCode> {
    let engine = args.database.open_for_admin().await?;
    let db = args.database.db.clone();
    let key_file = args.secret_key_file.clone();
    let result = match args.command {
        ExchangeCommand::Add {
            name,
            api,
            config,
            credentials_file,
            credentials_stdin,
            bank,
            policy,
            poll_secs,
            dry_run,
            disabled,
        } => {
            let config: serde_json::Value = serde_json::from_str(&config)
                .map_err(|e| anyhow!("--config must be a JSON object: {e}"))?;
            let policy: Option<ExchangePolicy> = match policy {
                Some(p) => {
                    let v: serde_json::Value =
                        serde_json::from_str(&p).map_err(|e| anyhow!("--policy: {e}"))?;
                    // A wrong-typed field is named, as in --config.
                    let policy = echotrace_engine::limits::typed_json("", v)
                        .map_err(|e| anyhow!("--policy: {e}"))?;
                    Some(policy)
                }
                None => None,
            };
            let credentials = read_credentials(credentials_file.as_deref(), credentials_stdin)?;
            let svc = service(&engine, &db, key_file.as_deref(), NetPolicy::default())?;
            let ex = svc
                .create(
                    &Actor::cli(),
                    ExchangeRequest {
                        name,
                        api,
                        config,
                        credentials,
                        policy,
                        enabled: Some(!disabled),
                        live: Some(!dry_run),
                        poll_interval_secs: Some(poll_secs),
                        bank,
                    },
                )
                .await?;
            eprintln!(
                "created {} exchange {} filling bank {}{}",
                ex.api,
                ex.name,
                ex.bank,
                if ex.live { "" } else { " (dry run)" }
            );
            Ok(ExitCode::SUCCESS)
        }
        ExchangeCommand::List { json } => {
            for ex in engine.list_exchanges().await? {
                if json {
                    println!("{}", serde_json::json!(ex));
                } else {
                    let s = &ex.status;
                    println!(
                        "{}\t{}\tbank={}\t{}{}\trecords={}\titems={}\tlast_success={}\t{}",
                        ex.name,
                        ex.api,
                        ex.bank,
                        if ex.enabled { "enabled" } else { "disabled" },
                        if ex.live { "" } else { ",dry-run" },
                        s.upstream_live,
                        s.applied,
                        ms_to_text(s.last_success_at),
                        s.last_error
                            .as_deref()
                            .filter(|_| s.last_error_at > s.last_success_at)
                            .map(|e| format!("error: {e}"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ExchangeCommand::Status { name } => {
            let ex = engine.exchange_by_name(&name).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "name": ex.name, "api": ex.api, "bank": ex.bank, "enabled": ex.enabled,
                    "live": ex.live, "write_back": ex.write_back,
                    "config": ExchangeService::config_json(&ex),
                    "policy": ex.policy, "status": ex.status,
                }))?
            );
            Ok(ExitCode::SUCCESS)
        }
        ExchangeCommand::Fetch {
            name,
            allow_loopback,
            allow_private,
        } => {
            let ex = engine.exchange_by_name(&name).await?;
            let svc = service(
                &engine,
                &db,
                key_file.as_deref(),
                NetPolicy {
                    allow_loopback,
                    allow_private,
                    ..NetPolicy::default()
                },
            )?;
            let started = std::time::Instant::now();
            let progress = |r: &echotrace_exchange::RoundReport| {
                eprintln!(
                    "echotrace: {name}: {} records in {} pages ({} items added, {} deleted, {} malformed)",
                    r.records, r.pages, r.items_added, r.items_deleted, r.malformed
                );
            };
            match svc.fetch_once_with(ex.id, Some(&progress)).await {
                Ok(r) => {
                    eprintln!(
                        "echotrace: {name}: done in {:.1}s: {} records, {} items added, {} deleted, {} swept, {} malformed{}",
                        started.elapsed().as_secs_f64(),
                        r.records,
                        r.items_added,
                        r.items_deleted,
                        r.swept,
                        r.malformed,
                        if r.drift { ", checksum drift: the next fetch is a full one" } else { "" }
                    );
                    println!("{}", serde_json::json!(r));
                    Ok(if r.malformed > 0 {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    })
                }
                Err(RoundError::LeaseHeld) => Err(anyhow!(
                    "exchange {name} is being fetched by another process right now; try later"
                )),
                Err(e) => Err(anyhow!("fetching {name} failed: {e}")),
            }
        }
        ExchangeCommand::Remove { name } => {
            let svc = service(&engine, &db, key_file.as_deref(), NetPolicy::default())?;
            svc.remove(&Actor::cli(), &name).await?;
            eprintln!("removed exchange {name}");
            Ok(ExitCode::SUCCESS)
        }
        ExchangeCommand::Publish {
            bank,
            partners,
            horizon_days,
            unpublish,
        } => {
            let svc = service(&engine, &db, key_file.as_deref(), NetPolicy::default())?;
            if unpublish {
                svc.feeds()
                    .unpublish(&Actor::cli(), &bank)
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                eprintln!("bank {bank} is no longer published");
            } else {
                let info = svc
                    .feeds()
                    .publish(&Actor::cli(), &bank, &partners, horizon_days)
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                eprintln!(
                    "bank {} published to {} partner key(s); {} live entries",
                    info.bank,
                    info.partners.len(),
                    info.live
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    };
    engine.store().close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_follows_sqlite_db() {
        assert_eq!(
            secret_key_path("sqlite:///tmp/a.db", None),
            std::path::PathBuf::from("/tmp/a.db.secret")
        );
        assert_eq!(
            secret_key_path("sqlite://./x.db?mode=rwc", None),
            std::path::PathBuf::from("./x.db.secret")
        );
        assert_eq!(
            secret_key_path("postgres://u@h/db", None),
            std::path::PathBuf::from("echotrace.secret")
        );
        assert_eq!(
            secret_key_path("postgres://u@h/db", Some(std::path::Path::new("/k"))),
            std::path::PathBuf::from("/k")
        );
    }
}
