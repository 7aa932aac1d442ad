//! `echotrace report`: the transparency report for copies first seen in a
//! window, as JSON, CSV or one self-contained HTML file (inline SVG, no
//! network requests). Reads the database directly; no server needed.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::Args;
use echotrace_spread::report::{self, ReportOptions};

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub database: super::DatabaseArg,
    /// Window start: YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]Z or Unix ms (UTC).
    /// Default: 30 days before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// Window end (excluded). Default: now.
    #[arg(long)]
    pub to: Option<String>,
    /// json, csv or html.
    #[arg(long, default_value = "json")]
    pub format: String,
    /// Replace platform and group names by pseudonyms; omit hosts.
    #[arg(long)]
    pub redact: bool,
    /// Bank-item labels starting with this name a copy's group.
    #[arg(long, default_value = "group:")]
    pub group_prefix: String,
    /// Report title.
    #[arg(long, default_value = "Transparency report")]
    pub title: String,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub out: Option<std::path::PathBuf>,
}

/// Parse `--from`/`--to`.
pub fn window(from: Option<&str>, to: Option<&str>) -> anyhow::Result<(i64, i64)> {
    use echotrace_spread::time::{self, WindowError};
    time::window(from, to, echotrace_store::now_ms()).map_err(|e| match e {
        WindowError::Unparsed(field) => anyhow!("--{field}: expected {}", time::TIME_FORMS),
        WindowError::Order => anyhow!("--to must be after --from"),
    })
}

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    if !matches!(args.format.as_str(), "json" | "csv" | "html") {
        return Err(anyhow!(
            "--format {:?}: expected json, csv or html",
            args.format
        ));
    }
    if args.group_prefix.is_empty() {
        return Err(anyhow!("--group-prefix must not be empty"));
    }
    let (from, to) = window(args.from.as_deref(), args.to.as_deref())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let text = rt.block_on(async {
        let engine = args.database.open_for_admin().await?;
        let mut opts = ReportOptions::new(from, to);
        opts.redact = args.redact;
        opts.group_prefix = args.group_prefix.clone();
        opts.title = args.title.clone();
        let started = std::time::Instant::now();
        let r = report::build(engine.store(), &opts).await?;
        eprintln!(
            "echotrace report: {} copies, {} removals observed, built in {:.2} s",
            r.overall.n,
            r.overall.removed,
            started.elapsed().as_secs_f64()
        );
        anyhow::Ok(match args.format.as_str() {
            "csv" => report::to_csv(&r),
            "html" => echotrace_spread::html::render(&r),
            _ => serde_json::to_string_pretty(&r)? + "\n",
        })
    })?;
    match &args.out {
        Some(path) => std::fs::write(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
