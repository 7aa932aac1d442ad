//! Group commit for lookup records.
//!
//! Every lookup must be durable before it answers: its submission, its
//! matches, the `lookup.match` audit entry and the `match` outbox event are
//! committed first. Committing each lookup on its own costs one fsync per
//! lookup (SQLite with `synchronous=FULL`, PostgreSQL with `fsync=on`), which
//! caps a disk at a few hundred lookups a second however fast matching is.
//!
//! Key design decisions:
//!
//! * **One writer, many waiters.** Lookups hand their records to a single
//!   writer task (an unbounded channel of jobs, each with a one-shot reply)
//!   and wait. The writer takes every job queued at that moment (up to
//!   [`MAX_GROUP`] lookups), writes them all in **one transaction**, commits
//!   once, and only then answers each waiting lookup with its ids. While it
//!   commits, the next group queues up, so the batch size adapts to the load
//!   by itself: one lookup at a time when idle (no added latency), hundreds
//!   per fsync under load.
//! * **Durability is unchanged.** A lookup still answers only after the
//!   transaction holding its records committed; `kill -9` at any moment
//!   loses only lookups that had not been answered.
//! * **Same rows, same semantics.** Each lookup's rows are exactly what the
//!   single-lookup path wrote (submission, then its matches, then one audit
//!   entry and one outbox event when it matched), in queue order.
//! * **Failure isolation.** If a group's transaction fails, each of its jobs
//!   is retried in a transaction of its own, so one bad job cannot fail the
//!   lookups that happened to share its commit.
//! * **A batch is one job.** `POST /v1/lookup/batch` records its whole batch
//!   in one transaction ([`crate::Engine::lookup_batch`]).
//! * The writer is spawned lazily on the runtime of the first lookup and
//!   ends when the engine (the channel's sender) is dropped.

use std::collections::HashMap;
use std::sync::OnceLock;

use echotrace_store::{NewAudit, NewMatch, NewSubmission, Store, WriteTx};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::convert::match_from_row;
use crate::error::{EngineError, Result};
use crate::signals::normalize_signals;
use crate::state::{Candidate, TextVariants};
use crate::types::{
    Actor, BankId, BankKind, ContentId, LookupRequest, LookupResponse, MatchRecord, SignalValue,
    SubmissionContext, SubmissionId,
};

/// Most lookups written in one transaction.
pub(crate) const MAX_GROUP: usize = 2048;

/// A matched lookup waiting to be recorded.
pub(crate) struct PendingLookup {
    pub actor: String,
    pub context: SubmissionContext,
    pub query_json: String,
    /// The candidates to record (allow hits if any, else block hits).
    pub recorded: Vec<Candidate>,
    pub bank_names: HashMap<BankId, String>,
    pub suppressed: usize,
}

/// What the writer wrote for one lookup.
pub(crate) struct Recorded {
    pub submission_id: SubmissionId,
    pub matches: Vec<MatchRecord>,
    pub allowed: Vec<MatchRecord>,
}

struct Job {
    lookups: Vec<PendingLookup>,
    reply: oneshot::Sender<Result<Vec<Recorded>>>,
}

/// Handle to the group-commit writer of one engine.
pub(crate) struct Recorder {
    store: Store,
    sender: OnceLock<mpsc::UnboundedSender<Job>>,
}

impl Recorder {
    pub(crate) fn new(store: Store) -> Recorder {
        Recorder {
            store,
            sender: OnceLock::new(),
        }
    }

    fn sender(&self) -> &mpsc::UnboundedSender<Job> {
        self.sender.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(writer(self.store.clone(), rx));
            tx
        })
    }

    /// Record lookups durably (in one transaction, possibly shared with
    /// other callers' lookups); answers after the commit.
    pub(crate) async fn record(&self, lookups: Vec<PendingLookup>) -> Result<Vec<Recorded>> {
        let (reply, answer) = oneshot::channel();
        self.sender()
            .send(Job { lookups, reply })
            .map_err(|_| EngineError::Internal("lookup recorder stopped".into()))?;
        answer.await.map_err(|_| {
            EngineError::Internal("lookup recorder stopped before committing".into())
        })?
    }
}

async fn writer(store: Store, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut size = first.lookups.len();
        let mut jobs = vec![first];
        while size < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => {
                    size += job.lookups.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        match write_group(&store, &jobs).await {
            Ok(results) => {
                for (job, recorded) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(Ok(recorded));
                }
            }
            Err(e) if jobs.len() == 1 => {
                if let Some(job) = jobs.into_iter().next() {
                    let _ = job.reply.send(Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = jobs.len(), "group commit failed; retrying jobs one by one");
                for job in jobs {
                    let one = std::slice::from_ref(&job);
                    let result = write_group(&store, one)
                        .await
                        .map(|mut r| r.pop().unwrap_or_default());
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

/// Write every job's lookups in one transaction and commit.
async fn write_group(store: &Store, jobs: &[Job]) -> Result<Vec<Vec<Recorded>>> {
    let mut tx = store.write().await?;
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut recorded = Vec::with_capacity(job.lookups.len());
        for p in &job.lookups {
            recorded.push(record_one(&mut tx, p).await?);
        }
        out.push(recorded);
    }
    tx.commit().await?;
    Ok(out)
}

/// The rows of one lookup: submission, matches, audit entry, outbox event.
async fn record_one(tx: &mut WriteTx, p: &PendingLookup) -> Result<Recorded> {
    let ctx = &p.context;
    let submission_id = tx
        .insert_submission(&NewSubmission {
            actor: &p.actor,
            content_ref: ctx.content_id.as_deref(),
            url: ctx.url.as_deref(),
            uploader_id: ctx.uploader_id.as_deref(),
            signals_json: &p.query_json,
            match_count: i64::try_from(p.recorded.len()).unwrap_or(i64::MAX),
        })
        .await?;
    let mut matches = Vec::new();
    let mut allowed = Vec::new();
    for c in &p.recorded {
        let row = tx
            .insert_match(&NewMatch {
                submission_id,
                bank_id: c.bank_id,
                content_id: c.content_id,
                signal_id: Some(c.signal_id),
                signal_type: c.signal_type.as_str(),
                matched_value: &c.matched_value,
                query_value: &c.query_value,
                distance: c.distance,
                similarity: c.similarity,
                channel: c.channel.as_str(),
                channel_detail: c.detail.as_deref(),
            })
            .await?;
        let name = p.bank_names.get(&c.bank_id).cloned().unwrap_or_default();
        let rec = match_from_row(&row, name, c.labels.clone())?;
        if c.bank_kind == BankKind::Allow {
            allowed.push(rec);
        } else {
            matches.push(rec);
        }
    }
    if !p.recorded.is_empty() {
        let summary = json!({
            "submission_id": submission_id,
            "context": ctx,
            "matches": matches,
            "allowed": allowed,
            "suppressed": p.suppressed,
        });
        tx.audit(&NewAudit {
            actor: &p.actor,
            action: "lookup.match",
            target: &format!("submission:{submission_id}"),
            before: None,
            after: Some(summary.to_string()),
        })
        .await?;
        if !matches.is_empty() {
            tx.enqueue("match", &summary.to_string(), echotrace_store::now_ms())
                .await?;
        }
    }
    Ok(Recorded {
        submission_id,
        matches,
        allowed,
    })
}

/// A validated, matched lookup: what to record, plus what the flood guard
/// needs afterwards.
pub(crate) struct Prepared {
    pending: PendingLookup,
    /// Content ids of block hits an allow hit suppressed (counted by the
    /// flood guard, not recorded).
    suppressed_ids: Vec<ContentId>,
}

impl crate::Engine {
    /// Validate and match one lookup (no writes).
    pub(crate) fn prepare_lookup(&self, actor: &Actor, req: LookupRequest) -> Result<Prepared> {
        self.prepare_lookup_with(actor, req, None, None)
    }

    /// [`crate::Engine::prepare_lookup`] for a query whose text signal was
    /// made from raw text that was also signed under each bank
    /// equivalence-list version in play (`variants`, signed off the runtime
    /// beforehand; see `Engine::lookup_text`).
    pub(crate) fn prepare_lookup_with(
        &self,
        actor: &Actor,
        req: LookupRequest,
        variants: Option<&TextVariants>,
        robust: Option<&crate::robust::RobustQuery>,
    ) -> Result<Prepared> {
        if req.signals.is_empty() {
            return Err(EngineError::InvalidInput("no signals to look up".into()));
        }
        if req.signals.len() > 256 {
            return Err(EngineError::InvalidInput(
                "at most 256 signals per lookup".into(),
            ));
        }
        let query: Vec<SignalValue> = normalize_signals(&req.signals)?;
        let (candidates, bank_names) = {
            let st = self.inner.state.read().map_err(crate::lock_err)?;
            let c = st.find_with(&query, req.banks.as_deref(), variants, robust);
            let names: HashMap<BankId, String> = c
                .iter()
                .filter_map(|c| st.bank_name(c.bank_id).map(|n| (c.bank_id, n.to_string())))
                .collect();
            (c, names)
        };
        let (allowed, blocked): (Vec<Candidate>, Vec<Candidate>) = candidates
            .into_iter()
            .partition(|c| c.bank_kind == BankKind::Allow);
        let suppressed = if allowed.is_empty() { 0 } else { blocked.len() };
        let (recorded, suppressed_ids) = if allowed.is_empty() {
            (blocked, Vec::new())
        } else {
            (allowed, blocked.iter().map(|c| c.content_id).collect())
        };
        Ok(Prepared {
            pending: PendingLookup {
                actor: actor.as_str().to_string(),
                context: req.context,
                query_json: crate::to_json(&query),
                recorded,
                bank_names,
                suppressed,
            },
            suppressed_ids,
        })
    }

    /// Record prepared lookups durably (one transaction, shared with
    /// concurrent lookups), run the flood guard, and build the answers.
    pub(crate) async fn record_lookups(
        &self,
        prepared: Vec<Prepared>,
    ) -> Result<Vec<LookupResponse>> {
        let n = prepared.len();
        let mut tails = Vec::with_capacity(n);
        let mut pending = Vec::with_capacity(n);
        for p in prepared {
            tails.push((p.pending.suppressed, p.suppressed_ids));
            pending.push(p.pending);
        }
        let recorded = self.inner.recorder.record(pending).await?;
        if recorded.len() != n {
            return Err(EngineError::Internal(format!(
                "lookup recorder answered {} of {n} lookups",
                recorded.len()
            )));
        }
        let mut out = Vec::with_capacity(n);
        for (r, (suppressed, suppressed_ids)) in recorded.into_iter().zip(tails) {
            // Flood guard: count every content item that matched (allow or block).
            let mut hit_ids: Vec<ContentId> = r
                .matches
                .iter()
                .chain(r.allowed.iter())
                .map(|m| m.content_id)
                .collect();
            hit_ids.extend(suppressed_ids);
            hit_ids.sort_unstable();
            hit_ids.dedup();
            self.flood_check(&hit_ids).await?;
            out.push(LookupResponse {
                submission_id: r.submission_id,
                matches: r.matches,
                allowed: r.allowed,
                suppressed,
            });
        }
        Ok(out)
    }

    /// Match and record many signal sets in one transaction (`POST
    /// /v1/lookup/batch`). Every request is validated before anything is
    /// recorded; answers come back in request order. Items with raw text:
    /// [`crate::Engine::lookup_batch_with_text`].
    pub async fn lookup_batch(
        &self,
        actor: &Actor,
        requests: Vec<LookupRequest>,
    ) -> Result<Vec<LookupResponse>> {
        let items = requests.into_iter().map(|r| (r, None)).collect();
        self.lookup_batch_with_text(actor, items).await
    }
}
