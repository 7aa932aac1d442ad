//! `echotrace notice`: record, list, export and answer takedown notices
//! from the command line (the database directly; `notice.created` is
//! queued for the webhook worker of a running server).

use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use echotrace_engine::Actor;
use echotrace_spread::notice::{self, ExportFormat, NoticeRequest};
use echotrace_store::NoticeQuery;

#[derive(Args)]
pub struct NoticeArgs {
    #[command(flatten)]
    pub database: super::DatabaseArg,
    #[command(subcommand)]
    pub command: NoticeCommand,
}

#[derive(Subcommand)]
pub enum NoticeCommand {
    /// Record a notice covering one or more sightings; prints it as JSON.
    Create {
        /// email, api, dsa_art16 or tco_order.
        #[arg(long)]
        channel: String,
        /// A sighting id (repeat for several).
        #[arg(long = "sighting", required = true)]
        sightings: Vec<i64>,
        /// Default: the sightings' platform (they must share one).
        #[arg(long)]
        platform: Option<String>,
        #[arg(long, default_value = "")]
        reference: String,
        #[arg(long, default_value = "")]
        note: String,
        /// When it was sent (YYYY-MM-DD[THH:MM[:SS]Z] or Unix ms); default now.
        #[arg(long)]
        sent_at: Option<String>,
    },
    /// List notices, newest first.
    List {
        #[arg(long)]
        platform: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Print a notice as text or JSON (with its evidence references).
    Export {
        id: i64,
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// Record the platform's response: removed, rejected or no_response.
    Respond {
        id: i64,
        #[arg(long)]
        response: String,
    },
}

pub fn run(args: NoticeArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let engine = args.database.open_for_admin().await?;
        let store = engine.store();
        match args.command {
            NoticeCommand::Create {
                channel,
                sightings,
                platform,
                reference,
                note,
                sent_at,
            } => {
                let sent_at = match sent_at.as_deref() {
                    Some(s) => Some(echotrace_spread::time::parse_time(s).ok_or_else(|| {
                        anyhow!("--sent-at {s:?}: expected YYYY-MM-DD[THH:MM[:SS]Z] or Unix ms")
                    })?),
                    None => None,
                };
                let n = notice::create(
                    store,
                    &Actor::cli(),
                    NoticeRequest {
                        platform,
                        channel,
                        reference,
                        sighting_ids: sightings,
                        sent_at,
                        note,
                    },
                )
                .await?;
                println!("{}", serde_json::to_string_pretty(&n)?);
            }
            NoticeCommand::List { platform, limit } => {
                let rows = notice::list(
                    store,
                    &NoticeQuery {
                        platform,
                        limit: limit.clamp(1, 10_000),
                        ..NoticeQuery::default()
                    },
                )
                .await?;
                for n in rows {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        n.id,
                        echotrace_spread::time::fmt_ts(n.sent_at),
                        n.platform,
                        n.channel,
                        n.response,
                        n.reference
                    );
                }
            }
            NoticeCommand::Export { id, format } => {
                let f = ExportFormat::parse(&format)
                    .ok_or_else(|| anyhow!("--format {format:?}: expected text or json"))?;
                let n = notice::get(store, id).await?;
                println!("{}", notice::export(&n, f));
            }
            NoticeCommand::Respond { id, response } => {
                let row = notice::respond(store, &Actor::cli(), id, &response, None).await?;
                println!("{}", notice::row_json(&row));
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
