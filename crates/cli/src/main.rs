//! `echotrace`: a thin clap layer over the engine and signals crates.

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(name = "echotrace", version, about = "Find known violent-extremist propaganda and its altered re-uploads")]
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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hash(a) => cmd::hash::run(a),
        Command::Compare(a) => cmd::compare::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("echotrace: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
