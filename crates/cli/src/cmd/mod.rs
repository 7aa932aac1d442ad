//! One module per subcommand. Each exposes an `Args` struct and `run`.

pub mod bank;
pub mod collect;
pub mod compare;
pub mod exchange;
pub mod hash;
pub mod keys;
pub mod liveness;
pub mod match_;
pub mod notice;
pub mod report;
pub mod serve;
pub mod users;

use anyhow::Context;

/// `--db`, shared by every command that opens the database.
#[derive(clap::Args)]
pub struct DatabaseArg {
    /// Database URL: sqlite://path or postgres://user@host/db.
    #[arg(
        long = "db",
        alias = "database-url",
        env = "ECHOTRACE_DATABASE_URL",
        default_value = echotrace_engine::DEFAULT_DATABASE_URL,
        global = true
    )]
    pub db: String,
}

impl DatabaseArg {
    /// Open the engine for offline administration (keys, users, bank
    /// import): migrations run, but the match indexes are not loaded — a
    /// 10 M-item database would otherwise take tens of seconds to create one
    /// API key. Never serve lookups from it.
    pub async fn open_for_admin(&self) -> anyhow::Result<echotrace_engine::Engine> {
        let config = echotrace_engine::EngineConfig::with_database_url(&self.db);
        echotrace_engine::Engine::open_without_indexes(config)
            .await
            .with_context(|| format!("opening {}", self.db))
    }
}
