//! Helpers for tests (ours and dependants'): a fresh, isolated database per
//! test on either backend.
//!
//! * SQLite: a new file under the system temp directory.
//! * PostgreSQL: a new randomly named schema in the database at
//!   `$ECHOTRACE_TEST_PG_URL`; the returned URL pins `search_path` to it, so
//!   concurrent tests never see each other's tables.
//!
//! If `ECHOTRACE_TEST_PG_URL` is unset, [`TestDb::postgres`] panics with a
//! clear message, unless `ECHOTRACE_SKIP_PG=1` is set, in which case it
//! prints that the test was skipped and returns `None`.
//!
//! [`both_backends!`](crate::both_backends) turns `async fn name(db: &TestDb)`
//! bodies into a `name::sqlite` and a `name::postgres` test each, the one
//! harness every crate's both-backend tests share.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{AnyConnection, Connection, Executor};

use crate::{Result, StoreError};

/// Environment variable naming the PostgreSQL server used by tests.
pub const PG_URL_ENV: &str = "ECHOTRACE_TEST_PG_URL";
/// Set to `1` to skip PostgreSQL tests explicitly.
pub const SKIP_PG_ENV: &str = "ECHOTRACE_SKIP_PG";

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A throw-away database for one test.
#[derive(Debug)]
pub struct TestDb {
    /// URL to hand to `Store::open` / `EngineConfig`.
    pub url: String,
    /// Backend name for messages: `sqlite` or `postgres`.
    pub backend: &'static str,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    File(std::path::PathBuf),
    Schema { base_url: String, schema: String },
}

impl TestDb {
    /// A fresh SQLite file.
    pub fn sqlite() -> TestDb {
        let path = std::env::temp_dir().join(format!("echotrace-test-{}.db", unique_suffix()));
        TestDb {
            url: format!("sqlite://{}", path.display()),
            backend: "sqlite",
            cleanup: Cleanup::File(path),
        }
    }

    /// A fresh schema on the test PostgreSQL server (see the module doc).
    pub async fn postgres() -> Result<Option<TestDb>> {
        let base = match std::env::var(PG_URL_ENV) {
            Ok(u) if !u.trim().is_empty() => u.trim().to_string(),
            _ => {
                if std::env::var(SKIP_PG_ENV).as_deref() == Ok("1") {
                    eprintln!("PostgreSQL test SKIPPED: {SKIP_PG_ENV}=1 and {PG_URL_ENV} is unset");
                    return Ok(None);
                }
                panic!(
                    "{PG_URL_ENV} is not set: PostgreSQL tests need a server \
                     (e.g. `source /tmp/pg.env`), or set {SKIP_PG_ENV}=1 to skip them explicitly"
                );
            }
        };
        sqlx::any::install_default_drivers();
        let schema = format!("et_test_{}", unique_suffix());
        let mut conn = AnyConnection::connect(&base).await?;
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .await?;
        conn.close().await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        Ok(Some(TestDb {
            url: format!("{base}{sep}options[search_path]={schema}"),
            backend: "postgres",
            cleanup: Cleanup::Schema {
                base_url: base,
                schema,
            },
        }))
    }

    /// Remove the database (call at the end of a passing test).
    pub async fn cleanup(self) -> Result<()> {
        match self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
                Ok(())
            }
            Cleanup::Schema { base_url, schema } => {
                let mut conn = AnyConnection::connect(&base_url).await?;
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .await
                .map_err(StoreError::from)?;
                conn.close().await?;
                Ok(())
            }
        }
    }
}

/// Runs each listed `async fn name(db: &TestDb)` twice, as the tests
/// `name::sqlite` (a fresh SQLite file) and `name::postgres` (a fresh schema
/// at `$ECHOTRACE_TEST_PG_URL`, see [`TestDb::postgres`]), each on a
/// two-worker tokio runtime; the database is removed when the body returns.
/// The calling crate needs `tokio` (with `macros` and `rt-multi-thread`).
///
/// ```text
/// use echotrace_store::both_backends;
/// both_backends!(round_trip, conflicts);
/// async fn round_trip(db: &echotrace_store::testing::TestDb) { /* ... */ }
/// ```
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let db = $crate::testing::TestDb::sqlite();
                    super::$name(&db).await;
                    db.cleanup().await.unwrap();
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(db) = $crate::testing::TestDb::postgres().await.unwrap() else {
                        return;
                    };
                    super::$name(&db).await;
                    db.cleanup().await.unwrap();
                }
            }
        )*
    };
}
