//! `echotrace keys`: manage API keys from the command line (works without a
//! running server; talks to the database directly).
//!
//! `keys create --role ROLE [--name N]` prints the new key once on stdout;
//! only its SHA-256 is stored. Without `--name` the key is named after its
//! role and the time (`matcher-20250102T030405Z`).

use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use echotrace_engine::{Actor, Role};

#[derive(Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub database: super::DatabaseArg,
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (once).
    Create {
        /// admin, curator, matcher, reviewer or partner (a partner key reads
        /// only the feeds published to it: `exchange publish BANK --partner NAME`).
        #[arg(long)]
        role: String,
        /// A label for the key (who or what uses it); default: the role and
        /// the UTC time of creation, e.g. matcher-20250102T030405Z.
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by id.
    Revoke { id: i64 },
}

pub fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(args))
}

async fn run_async(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let engine = args.database.open_for_admin().await?;
    let result = match args.command {
        KeysCommand::Create { role, name } => {
            let role = Role::parse(&role)
                .ok_or_else(|| anyhow!("unknown role {role:?} ({})", Role::names()))?;
            let (meta, key) = engine
                .create_api_key(&Actor::cli(), name.as_deref().unwrap_or(""), role)
                .await?;
            eprintln!(
                "created {} key id {} named {:?} (store it now: it is not shown again)",
                meta.role.as_str(),
                meta.id,
                meta.name
            );
            println!("{key}");
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::List => {
            for k in engine.list_api_keys().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    k.id,
                    k.role.as_str(),
                    k.name,
                    if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Revoke { id } => {
            let k = engine.revoke_api_key(&Actor::cli(), id).await?;
            eprintln!("revoked key {}", k.id);
            Ok(ExitCode::SUCCESS)
        }
    };
    engine.store().close().await;
    result
}
