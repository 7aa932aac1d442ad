//! `echotrace`: a thin clap layer over the engine and signals crates.

use clap::{Parser, Subcommand};

mod alloc;
mod cmd;

#[derive(Parser)]
#[command(
    name = "echotrace",
    version,
    about = "Find known violent-extremist propaganda and its altered re-uploads"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Hash files (or stdin) into signals.
    Hash(cmd::hash::HashArgs),
    /// Compare two items and report distance / similarity.
    Compare(cmd::compare::CompareArgs),
    /// Match files (or hashes on stdin) against a bank export, offline.
    Match(cmd::match_::MatchArgs),
    /// Run the HTTP matching service.
    Serve(Box<cmd::serve::ServeArgs>),
    /// Manage review-console users (passwords are read from stdin).
    Users(cmd::users::UsersArgs),
    /// Manage API keys (create prints the key once).
    Keys(cmd::keys::KeysArgs),
    /// Bank administration against the database (bulk import of hash lists,
    /// re-derivation from retained originals).
    Bank(cmd::bank::BankArgs),
    /// Signal exchange: pull hash lists in, publish banks as feeds.
    Exchange(cmd::exchange::ExchangeArgs),
    /// Re-check where known content was seen: the liveness checker.
    Liveness(cmd::liveness::LivenessArgs),
    /// Takedown notices: create, list, export, record responses.
    Notice(cmd::notice::NoticeArgs),
    /// Transparency report (JSON, CSV or self-contained HTML).
    Report(cmd::report::ReportArgs),
    /// The collector: sources, crawling, Telegram and WARC imports.
    Collect(cmd::collect::CollectArgs),
    /// Internal: extract a PDF from stdin as JSON (run in a limited child).
    #[command(name = "__extract-pdf", hide = true)]
    ExtractPdf,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The local commands read files the user already has on disk, so an MP4
    // whose index follows its media data may be copied to a private
    // temporary file for ffmpeg to seek in; `serve` and the collector take
    // bytes from others and do so only with `--video-temp-dir`.
    if !matches!(cli.command, Command::Serve(_) | Command::Collect(_)) {
        echotrace_engine::set_video_temp_dir(Some(std::env::temp_dir()));
    }
    // Offline imports trade the allocators' retention of freed memory for
    // ~9 % of their CPU; everything that takes bytes from others keeps
    // glibc's prompt release (alloc.rs).
    if let Command::Collect(c) = &cli.command {
        if matches!(
            c.command,
            cmd::collect::CollectCommand::ImportTelegram(_)
                | cmd::collect::CollectCommand::ImportWarc(_)
        ) {
            alloc::for_batch_import();
        }
    }
    let result = match cli.command {
        Command::Hash(a) => cmd::hash::run(a),
        Command::Compare(a) => cmd::compare::run(a),
        Command::Match(a) => cmd::match_::run(a),
        Command::Serve(a) => cmd::serve::run(*a),
        Command::Users(a) => cmd::users::run(a),
        Command::Keys(a) => cmd::keys::run(a),
        Command::Bank(a) => cmd::bank::run(a),
        Command::Exchange(a) => cmd::exchange::run(a),
        Command::Liveness(a) => cmd::liveness::run(a),
        Command::Notice(a) => cmd::notice::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Collect(a) => cmd::collect::run(a),
        Command::ExtractPdf => Ok(std::process::ExitCode::from(
            echotrace_signals::pdf::run_child(
                &mut std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
                &echotrace_signals::pdf::PdfLimits::default(),
            ) as u8,
        )),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("echotrace: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
