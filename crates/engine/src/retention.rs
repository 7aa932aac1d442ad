//! Retention of recorded lookups: the sweep behind `serve
//! --retain-submissions DAYS` (and `--retain-decided DAYS`).
//!
//! [`Engine::sweep_submissions`] is the one entry point (the background task
//! of [`Engine::spawn_retention_sweeper`] calls it; a job runner that holds
//! a lease can call it too). It deletes, a batch per transaction
//! ([`echotrace_store::WriteTx::sweep_submissions_batch`]):
//! submissions without matches older than `submissions`, and submissions
//! whose matches are all decided, the last decision older than `decided` —
//! with their matches, decisions, audit trail and retained media. Pending
//! matches keep their submission however old it is. Each run that deleted
//! anything leaves one `retention.sweep` audit entry with the counts.
//!
//! It is idempotent and safe to run in several processes at once (see the
//! store module): the worst case is a batch that finds its rows already
//! gone.

use std::time::Duration;

use echotrace_store::{NewAudit, RetentionCutoffs, SweepCounts};

use crate::error::Result;
use crate::types::Actor;
use crate::Engine;

/// How long recorded lookups are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Submissions without matches are kept this long.
    pub submissions: Duration,
    /// Submissions with matches are kept while any match is pending, and
    /// then this long after their last decision.
    pub decided: Duration,
}

/// Submissions of each kind deleted per transaction.
const BATCH: i64 = 1000;

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Engine {
    /// Delete what `policy` no longer keeps (see the module doc); returns
    /// what was deleted.
    pub async fn sweep_submissions(&self, policy: &RetentionPolicy) -> Result<SweepCounts> {
        self.sweep_submissions_at(policy, echotrace_store::now_ms())
            .await
    }

    /// [`Engine::sweep_submissions`] as if the time were `now` (Unix ms).
    pub async fn sweep_submissions_at(
        &self,
        policy: &RetentionPolicy,
        now: i64,
    ) -> Result<SweepCounts> {
        let cutoffs = RetentionCutoffs {
            unmatched_before: now.saturating_sub(ms(policy.submissions)),
            decided_before: now.saturating_sub(ms(policy.decided)),
        };
        let mut total = SweepCounts::default();
        loop {
            let mut tx = self.store().write().await?;
            let counts = tx.sweep_submissions_batch(cutoffs, BATCH).await?;
            if counts.submissions == 0 {
                break;
            }
            tx.commit().await?;
            total.add(&counts);
        }
        if total.submissions > 0 {
            let mut tx = self.store().write().await?;
            let detail = serde_json::json!({
                "deleted": total,
                "unmatched_before": cutoffs.unmatched_before,
                "decided_before": cutoffs.decided_before,
            });
            tx.audit(&NewAudit {
                actor: Actor::system().as_str(),
                action: "retention.sweep",
                target: "submissions",
                before: None,
                after: Some(detail.to_string()),
            })
            .await?;
            tx.commit().await?;
        }
        Ok(total)
    }

    /// Run [`Engine::sweep_submissions`] now and then every `every` until
    /// the handle is aborted. Failures are logged and retried next time.
    pub fn spawn_retention_sweeper(
        &self,
        policy: RetentionPolicy,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                match engine.sweep_submissions(&policy).await {
                    Ok(c) if c.submissions > 0 => {
                        tracing::info!(?c, "retention sweep deleted expired submissions")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "retention sweep failed; retrying later"),
                }
                tokio::time::sleep(every).await;
            }
        })
    }
}
