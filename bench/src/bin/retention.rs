//! Retention sweep benchmark (issue 12, `serve --retain-submissions`):
//! records N lookups through the engine (group-committed batches of 1,000,
//! 1 % of them matching a bank item, whose matches are then decided), then
//! times one `Engine::sweep_submissions_at` that deletes them all, and
//! reports the database's size in use before and after. No peer: nothing
//! else sweeps echotrace's tables; the figure to watch is deleted rows per
//! second and the largest transaction (one batch of ≤ 2,000 submissions).
//!
//!   retention --db sqlite:///tmp/ret.db --n 200000
//!   retention --db postgres://user@host/db --n 200000
//!
//! Prints one JSON line.

use std::time::{Duration, Instant};

use anyhow::Context;
use echotrace_engine::{
    Actor, ContentSource, Engine, EngineConfig, LookupRequest, NewBank, NewContent,
    RetentionPolicy, SignalValue, SubmissionContext, Verdict,
};
use echotrace_signals::signal::SignalType;

fn arg(name: &str) -> Option<String> {
    let mut it = std::env::args();
    while let Some(a) = it.next() {
        if a == name {
            return it.next();
        }
    }
    None
}

async fn bytes_in_use(engine: &Engine) -> anyhow::Result<i64> {
    use sqlx::Row;
    let pool = engine.store().pool();
    Ok(match engine.store().backend() {
        echotrace_engine::Backend::Sqlite => {
            let pages: i64 = sqlx::query("PRAGMA page_count")
                .fetch_one(pool)
                .await?
                .try_get(0)?;
            let free: i64 = sqlx::query("PRAGMA freelist_count")
                .fetch_one(pool)
                .await?
                .try_get(0)?;
            let size: i64 = sqlx::query("PRAGMA page_size")
                .fetch_one(pool)
                .await?
                .try_get(0)?;
            (pages - free) * size
        }
        echotrace_engine::Backend::Postgres => {
            // Live tuples only: the relations' size minus what VACUUM frees.
            sqlx::query("VACUUM").execute(pool).await?;
            sqlx::query(
                "SELECT CAST(SUM(pg_total_relation_size(c.oid) - \
                 COALESCE(pg_relation_size(c.oid, 'fsm'), 0)) AS BIGINT) AS n \
                 FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace \
                 WHERE c.relkind = 'r' AND ns.nspname = current_schema()",
            )
            .fetch_one(pool)
            .await?
            .try_get::<i64, _>("n")?
        }
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let db = arg("--db").context("--db URL")?;
    let n: usize = arg("--n").map_or(Ok(100_000), |v| v.parse())?;
    let engine = Engine::open(EngineConfig::with_database_url(&db)).await?;
    let actor = Actor::cli();
    let bank = engine
        .create_bank(
            &actor,
            NewBank {
                name: format!("retention-{}", echotrace_store::now_ms()),
                kind: echotrace_engine::BankKind::Block,
                description: String::new(),
                thresholds: Default::default(),
                text_equivalences: None,
            },
        )
        .await?;
    let known = "7".repeat(32);
    engine
        .add_content(
            &actor,
            bank.id,
            NewContent {
                source: ContentSource::Signals(vec![SignalValue {
                    signal_type: SignalType::Md5,
                    value: known.clone(),
                }]),
                labels: vec![],
                note: String::new(),
            },
        )
        .await?;
    let size_empty = bytes_in_use(&engine).await?;
    let started = Instant::now();
    let mut matches = Vec::new();
    for chunk in 0..n.div_ceil(1000) {
        let batch: Vec<LookupRequest> = (0..1000.min(n - chunk * 1000))
            .map(|i| {
                let k = chunk * 1000 + i;
                let value = if k % 100 == 0 {
                    known.clone()
                } else {
                    format!("{k:032x}")
                };
                LookupRequest {
                    signals: vec![SignalValue {
                        signal_type: SignalType::Md5,
                        value,
                    }],
                    banks: None,
                    context: SubmissionContext {
                        content_id: Some(format!("post-{k}")),
                        url: Some(format!("https://platform.example/p/{k}")),
                        uploader_id: Some(format!("user-{}", k % 977)),
                    },
                }
            })
            .collect();
        for r in engine.lookup_batch(&actor, batch).await? {
            matches.extend(r.matches.iter().map(|m| m.id));
        }
    }
    let record_secs = started.elapsed().as_secs_f64();
    for id in &matches {
        engine.decide(&actor, *id, Verdict::Reject, "").await?;
    }
    let size_full = bytes_in_use(&engine).await?;
    let policy = RetentionPolicy {
        submissions: Duration::from_secs(86_400),
        decided: Duration::from_secs(86_400),
    };
    let later = echotrace_store::now_ms() + 2 * 86_400_000;
    let started = Instant::now();
    let swept = engine.sweep_submissions_at(&policy, later).await?;
    let sweep_secs = started.elapsed().as_secs_f64();
    let size_after = bytes_in_use(&engine).await?;
    println!(
        "{}",
        serde_json::json!({
            "backend": format!("{:?}", engine.store().backend()),
            "lookups": n,
            "matched": matches.len(),
            "record_lookups_per_s": (n as f64 / record_secs).round(),
            "bytes_per_lookup": (size_full - size_empty) / n as i64,
            "swept": swept,
            "sweep_secs": (sweep_secs * 100.0).round() / 100.0,
            "swept_submissions_per_s": (swept.submissions as f64 / sweep_secs).round(),
            "bytes_in_use": {"empty": size_empty, "full": size_full, "after_sweep": size_after},
        })
    );
    engine.store().close().await;
    Ok(())
}
