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
//! * **Same rows, same semantics.** Each lookup's rows are what the
//!   single-lookup path writes (a submission, its matches, and one audit
//!   entry and one outbox event when it matched), with ids in queue order.
//!   The group writes each table in multi-row statements, with ids reserved
//!   first ([`record_many`]): one round trip per table, not four per lookup
//!   (the queue behind a group's per-row round trips was most of a matched
//!   lookup's p99 under load).
//! * **Failure isolation.** If a group's transaction fails, each of its jobs
//!   is retried in a transaction of its own, so one bad job cannot fail the
//!   lookups that happened to share its commit.
//! * **A batch is one job.** `POST /v1/lookup/batch` records its whole batch
//!   in one transaction ([`crate::Engine::lookup_batch`]).
//! * **Recording policy** ([`RecordPolicy`], `serve --record`): `all`
//!   (default) records every lookup; `matches` records only lookups with
//!   something to record — a lookup that matches nothing writes nothing and
//!   answers the same, with `submission_id: null`.
//! * **Flood-guard counts ride along**: the group's hits and every lookup
//!   counted since the last write go into the same transaction, and the
//!   shared sums are read back before it commits (see [`crate::flood`]).
//! * **Hits are read before they are recorded**: the in-memory state keeps
//!   no labels or stored values, so the hits of a lookup are completed from
//!   the store first ([`crate::Engine::hydrate`]), which also confirms exact
//!   hits against the stored value and drops hits deleted meanwhile.
//! * The writer is spawned lazily on the runtime of the first lookup and
//!   ends when the engine (the channel's sender) is dropped.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use echotrace_store::{NewAudit, NewMatch, NewSubmission, Store, WriteTx};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::convert::{match_from_row, parse_labels};
use crate::error::{EngineError, Result};
use crate::flood::FloodGuard;
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
    /// Content items the lookup hit (allow, block and suppressed), for the
    /// flood guard.
    pub flood_hits: Vec<ContentId>,
}

/// Which lookups are written to the store (`serve --record`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecordPolicy {
    /// Every lookup: a submission row each (today's behaviour).
    #[default]
    All,
    /// Only lookups with a match or an allow-bank hit.
    Matches,
}

impl RecordPolicy {
    pub fn parse(s: &str) -> Option<RecordPolicy> {
        match s {
            "all" => Some(RecordPolicy::All),
            "matches" => Some(RecordPolicy::Matches),
            _ => None,
        }
    }
}

/// What the writer wrote for one lookup.
pub(crate) struct Recorded {
    pub submission_id: SubmissionId,
    pub matches: Vec<MatchRecord>,
    pub allowed: Vec<MatchRecord>,
}

/// What a job gets back: its records, and flood-guard verdicts (items
/// over the limit, with their share).
type JobResult = (Vec<Recorded>, Vec<(ContentId, f64)>);

struct Job {
    lookups: Vec<PendingLookup>,
    reply: oneshot::Sender<Result<JobResult>>,
}

/// Handle to the group-commit writer of one engine.
pub(crate) struct Recorder {
    store: Store,
    flood: Arc<FloodGuard>,
    sender: OnceLock<mpsc::UnboundedSender<Job>>,
}

impl Recorder {
    pub(crate) fn new(store: Store, flood: Arc<FloodGuard>) -> Recorder {
        Recorder {
            store,
            flood,
            sender: OnceLock::new(),
        }
    }

    fn sender(&self) -> &mpsc::UnboundedSender<Job> {
        self.sender.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(writer(self.store.clone(), self.flood.clone(), rx));
            tx
        })
    }

    /// Record lookups durably (in one transaction, possibly shared with
    /// other callers' lookups); answers after the commit.
    pub(crate) async fn record(&self, lookups: Vec<PendingLookup>) -> Result<JobResult> {
        let (reply, answer) = oneshot::channel();
        self.sender()
            .send(Job { lookups, reply })
            .map_err(|_| EngineError::Internal("lookup recorder stopped".into()))?;
        answer.await.map_err(|_| {
            EngineError::Internal("lookup recorder stopped before committing".into())
        })?
    }
}

impl Recorder {
    /// Wait until every lookup queued so far has been written (or failed).
    pub(crate) async fn drain(&self) {
        let _ = self.record(Vec::new()).await;
    }
}

async fn writer(store: Store, flood: Arc<FloodGuard>, mut rx: mpsc::UnboundedReceiver<Job>) {
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
        match write_group(&store, &flood, &jobs).await {
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
                    let result = write_group(&store, &flood, one)
                        .await
                        .map(|mut r| r.pop().unwrap_or_default());
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

/// Write every job's lookups in one transaction, with the flood guard's
/// counts, and commit.
async fn write_group(store: &Store, flood: &FloodGuard, jobs: &[Job]) -> Result<Vec<JobResult>> {
    let lookups = flood.take_pending();
    let result = write_group_counted(store, flood, jobs, lookups).await;
    if result.is_err() {
        flood.restore(lookups);
    }
    result
}

async fn write_group_counted(
    store: &Store,
    flood: &FloodGuard,
    jobs: &[Job],
    lookups: u64,
) -> Result<Vec<JobResult>> {
    let mut tx = store.write().await?;
    let all: Vec<&PendingLookup> = jobs.iter().flat_map(|j| &j.lookups).collect();
    let mut hits: HashMap<ContentId, u64> = HashMap::new();
    for c in all.iter().flat_map(|p| &p.flood_hits) {
        *hits.entry(*c).or_default() += 1;
    }
    let mut recorded = record_many(&mut tx, &all).await?.into_iter();
    let out: Vec<Vec<Recorded>> = jobs
        .iter()
        .map(|job| recorded.by_ref().take(job.lookups.len()).collect())
        .collect();
    let over = flood.write_and_check(&mut tx, lookups, &hits).await?;
    tx.commit().await?;
    Ok(out
        .into_iter()
        .zip(jobs)
        .map(|(recorded, job)| {
            let mine: Vec<(ContentId, f64)> = over
                .iter()
                .filter(|(c, _)| job.lookups.iter().any(|p| p.flood_hits.contains(c)))
                .copied()
                .collect();
            (recorded, mine)
        })
        .collect())
}

/// The rows of one lookup: submission, matches, audit entry, outbox event
/// ([`record_many`] for one).
pub(crate) async fn record_one(tx: &mut WriteTx, p: &PendingLookup) -> Result<Recorded> {
    record_many(tx, &[p])
        .await?
        .pop()
        .ok_or_else(|| EngineError::Internal("lookup recorder wrote nothing".into()))
}

/// The rows of many lookups, in order: each one's submission, its matches,
/// and when it hit something one `lookup.match` audit entry (and one
/// `match` outbox event when a block bank matched). Ids are reserved
/// first, so every table is written in one multi-row statement per 256
/// rows for the whole group instead of four round trips per lookup; ids
/// within each table follow the lookups' order.
pub(crate) async fn record_many(
    tx: &mut WriteTx,
    lookups: &[&PendingLookup],
) -> Result<Vec<Recorded>> {
    let match_count: usize = lookups.iter().map(|p| p.recorded.len()).sum();
    let (submission_ids, match_ids) = tx.reserve_lookup_ids(lookups.len(), match_count).await?;
    if submission_ids.len() != lookups.len() || match_ids.len() != match_count {
        return Err(EngineError::Internal(
            "reserved ids do not cover the group".into(),
        ));
    }
    let submissions: Vec<(i64, NewSubmission<'_>)> = lookups
        .iter()
        .zip(&submission_ids)
        .map(|(p, &id)| {
            let ctx = &p.context;
            (
                id,
                NewSubmission {
                    actor: &p.actor,
                    content_ref: ctx.content_id.as_deref(),
                    url: ctx.url.as_deref(),
                    uploader_id: ctx.uploader_id.as_deref(),
                    signals_json: &p.query_json,
                    match_count: i64::try_from(p.recorded.len()).unwrap_or(i64::MAX),
                },
            )
        })
        .collect();
    tx.insert_submissions_with_ids(&submissions).await?;
    let new_matches: Vec<(i64, NewMatch<'_>)> = lookups
        .iter()
        .zip(&submission_ids)
        .flat_map(|(p, &submission_id)| p.recorded.iter().map(move |c| (submission_id, c)))
        .zip(&match_ids)
        .map(|((submission_id, c), &id)| {
            (
                id,
                NewMatch {
                    submission_id,
                    bank_id: c.bank_id,
                    content_id: c.content_id,
                    signal_id: Some(c.signal_id),
                    signal_type: c.signal_type.as_str(),
                    matched_value: &c.matched_value,
                    query_value: &c.query_value,
                    distance: c.distance,
                    similarity: c.similarity,
                    compared_similarity: c.compared_similarity,
                    channel: c.channel.as_str(),
                    channel_detail: c.detail.as_deref(),
                },
            )
        })
        .collect();
    let mut rows = tx.insert_matches_with_ids(&new_matches).await?.into_iter();
    let mut out = Vec::with_capacity(lookups.len());
    // (actor, target, summary) of each lookup that hit something.
    let mut audits: Vec<(&str, String, String)> = Vec::new();
    let mut events: Vec<String> = Vec::new();
    for (p, &submission_id) in lookups.iter().zip(&submission_ids) {
        let mut matches = Vec::new();
        let mut allowed = Vec::new();
        for c in &p.recorded {
            let row = rows
                .next()
                .ok_or_else(|| EngineError::Internal("match rows do not cover the group".into()))?;
            let name = p.bank_names.get(&c.bank_id).cloned().unwrap_or_default();
            let rec = match_from_row(&row, name, c.labels.clone())?;
            if c.bank_kind == BankKind::Allow {
                allowed.push(rec);
            } else {
                matches.push(rec);
            }
        }
        if !p.recorded.is_empty() {
            // Audit entries and webhooks carry no vPDQ frame lists (megabytes
            // for a long video); GET /v1/matches/{id}?frames=true has them.
            let compact = |list: &[MatchRecord]| -> Vec<MatchRecord> {
                list.iter()
                    .cloned()
                    .map(MatchRecord::without_frame_lists)
                    .collect()
            };
            let summary = json!({
                "submission_id": submission_id,
                "context": &p.context,
                "matches": compact(&matches),
                "allowed": compact(&allowed),
                "suppressed": p.suppressed,
            })
            .to_string();
            if !matches.is_empty() {
                events.push(summary.clone());
            }
            audits.push((&p.actor, format!("submission:{submission_id}"), summary));
        }
        out.push(Recorded {
            submission_id,
            matches,
            allowed,
        });
    }
    let entries: Vec<NewAudit<'_>> = audits
        .iter_mut()
        .map(|(actor, target, summary)| NewAudit {
            actor,
            action: "lookup.match",
            target: target.as_str(),
            before: None,
            after: Some(std::mem::take(summary)),
        })
        .collect();
    tx.audit_many(&entries).await?;
    tx.enqueue_many("match", &events, echotrace_store::now_ms())
        .await?;
    Ok(out)
}

/// A validated, matched lookup whose hits are not yet read from the store.
pub(crate) struct Prepared {
    actor: String,
    context: SubmissionContext,
    query_json: String,
    candidates: Vec<Candidate>,
    bank_names: HashMap<BankId, String>,
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
        req.context.validate("")?;
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
        Ok(Prepared {
            actor: actor.as_str().to_string(),
            context: req.context,
            query_json: crate::to_json(&query),
            candidates,
            bank_names,
        })
    }

    /// Complete hits from the store: each hit's stored value and its item's
    /// labels (not kept in memory). Drops hits whose signal was deleted
    /// since the match, and exact hits whose stored value differs from the
    /// query's (a fingerprint collision). One query for all lookups.
    pub(crate) async fn hydrate(&self, prepared: &mut [Prepared]) -> Result<()> {
        let mut lists: Vec<&mut Vec<Candidate>> =
            prepared.iter_mut().map(|p| &mut p.candidates).collect();
        self.hydrate_lists(&mut lists).await
    }

    /// [`crate::Engine::hydrate`] for lists of candidates found outside a
    /// lookup (sightings, retro-hunts).
    pub(crate) async fn hydrate_lists(&self, lists: &mut [&mut Vec<Candidate>]) -> Result<()> {
        let mut ids: Vec<i64> = lists
            .iter()
            .flat_map(|l| l.iter().map(|c| c.signal_id))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        ids.sort_unstable();
        ids.dedup();
        let details: HashMap<i64, echotrace_store::HitDetail> = self
            .inner
            .store
            .hit_details(&ids)
            .await?
            .into_iter()
            .map(|d| (d.signal_id, d))
            .collect();
        for list in lists.iter_mut() {
            list.retain_mut(|c| {
                let Some(d) = details.get(&c.signal_id) else {
                    return false;
                };
                if d.content_id != c.content_id {
                    return false;
                }
                if c.exact && d.value != c.query_value {
                    return false;
                }
                c.matched_value = d.value.clone();
                c.labels = parse_labels(&d.labels).unwrap_or_default();
                true
            });
        }
        Ok(())
    }

    /// Record prepared lookups durably (one transaction, shared with
    /// concurrent lookups; under [`RecordPolicy::Matches`] only those with
    /// hits), run the flood guard, and build the answers.
    pub(crate) async fn record_lookups(
        &self,
        mut prepared: Vec<Prepared>,
    ) -> Result<Vec<LookupResponse>> {
        let n = prepared.len();
        self.hydrate(&mut prepared).await?;
        let policy = self.inner.config.record;
        self.inner.flood.count_lookups(n);
        // (index in the answer, lookup to write)
        let mut to_write = Vec::with_capacity(n);
        let mut unrecorded: Vec<Option<LookupResponse>> = Vec::with_capacity(n);
        for (i, p) in prepared.into_iter().enumerate() {
            let (allowed, blocked): (Vec<Candidate>, Vec<Candidate>) = p
                .candidates
                .into_iter()
                .partition(|c| c.bank_kind == BankKind::Allow);
            let suppressed = if allowed.is_empty() { 0 } else { blocked.len() };
            let mut flood_hits: Vec<ContentId> = allowed
                .iter()
                .chain(blocked.iter())
                .map(|c| c.content_id)
                .collect();
            flood_hits.sort_unstable();
            flood_hits.dedup();
            let recorded = if allowed.is_empty() { blocked } else { allowed };
            if recorded.is_empty() && policy == RecordPolicy::Matches {
                unrecorded.push(Some(LookupResponse {
                    submission_id: None,
                    matches: Vec::new(),
                    allowed: Vec::new(),
                    suppressed: 0,
                }));
                continue;
            }
            unrecorded.push(None);
            to_write.push((
                i,
                PendingLookup {
                    actor: p.actor,
                    context: p.context,
                    query_json: p.query_json,
                    recorded,
                    bank_names: p.bank_names,
                    suppressed,
                    flood_hits,
                },
            ));
        }
        let mut out = unrecorded;
        if !to_write.is_empty() {
            let (slots, pending): (Vec<usize>, Vec<(usize, PendingLookup)>) =
                to_write.into_iter().map(|(i, p)| (i, (i, p))).unzip();
            let suppressed: Vec<usize> = pending.iter().map(|(_, p)| p.suppressed).collect();
            let lookups: Vec<PendingLookup> = pending.into_iter().map(|(_, p)| p).collect();
            let (recorded, over) = self.inner.recorder.record(lookups).await?;
            if recorded.len() != slots.len() {
                return Err(EngineError::Internal(format!(
                    "lookup recorder answered {} of {} lookups",
                    recorded.len(),
                    slots.len()
                )));
            }
            for ((i, r), suppressed) in slots.into_iter().zip(recorded).zip(suppressed) {
                if let Some(slot) = out.get_mut(i) {
                    *slot = Some(LookupResponse {
                        submission_id: Some(r.submission_id),
                        matches: r.matches,
                        allowed: r.allowed,
                        suppressed,
                    });
                }
            }
            for (content_id, share) in over {
                if let Err(e) = self.quarantine(content_id, share).await {
                    tracing::warn!(content_id, error = %e, "flood guard: quarantine failed");
                }
            }
        }
        out.into_iter()
            .map(|r| r.ok_or_else(|| EngineError::Internal("lookup was not answered".into())))
            .collect()
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
