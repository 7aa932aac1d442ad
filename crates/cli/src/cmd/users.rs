//! `echotrace users`: manage review-console users.
//!
//! `echotrace users create --role reviewer NAME` reads the password from
//! standard input (first line), so it never appears in the process list or
//! shell history. Passwords are stored as argon2id hashes only.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use echotrace_engine::{Actor, Role};

#[derive(Args)]
pub struct UsersArgs {
    #[command(flatten)]
    pub database: super::DatabaseArg,
    #[command(subcommand)]
    pub command: UsersCommand,
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a console user; the password is read from stdin.
    Create {
        /// admin, curator or reviewer (matcher and partner are API-key roles).
        #[arg(long)]
        role: String,
        /// Login name.
        name: String,
    },
    /// List console users.
    List,
}

pub fn run(args: UsersArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(args))
}

async fn run_async(args: UsersArgs) -> anyhow::Result<ExitCode> {
    let engine = args.database.open_for_admin().await?;
    match args.command {
        UsersCommand::Create { role, name } => {
            let role = Role::parse(&role).ok_or_else(|| {
                anyhow!(
                    "unknown role {role:?} (a console user's role is one of {})",
                    Role::console_names()
                )
            })?;
            role.require_console()?;
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprint!("Password for {name}: ");
                std::io::stderr().flush().ok();
            }
            let mut line = String::new();
            stdin
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                bail!("no password on stdin");
            }
            let user = engine
                .create_user(&Actor::cli(), &name, password, role)
                .await?;
            println!(
                "created user {} (role {}, id {})",
                user.username,
                user.role.as_str(),
                user.id
            );
        }
        UsersCommand::List => {
            for u in engine.list_users().await? {
                let state = if u.disabled_at.is_some() {
                    "disabled"
                } else {
                    "active"
                };
                println!("{}\t{}\t{}\t{}", u.id, u.username, u.role.as_str(), state);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
