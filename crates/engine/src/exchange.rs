//! The domain side of signal exchange: exchanges own a bank, upstream
//! records become bank items through the change sequence, local overrides
//! survive upstream churn, and reviewers' verdicts become opinions queued
//! in the outbox.
//!
//! Key decisions:
//!
//! * **Records and items are separate.** Every upstream record is kept
//!   (`exchange_records`, typed JSON [`RecordMeta`]: labels and opinions),
//!   tombstones included. A record *backs* a bank item when it is not
//!   deleted upstream, passes the exchange's [`ExchangePolicy`], is not
//!   deleted locally, and the exchange is live (not a dry run). Exchanges
//!   that share a bank share items: the same `(signal type, value)` from two
//!   exchanges is ONE item, indexed once, with two provenances. The item is
//!   deleted when the last record backing it goes.
//! * **Everything flows through the change sequence.** New items are
//!   written like a bulk import (reserved ids, multi-row inserts, one
//!   `content_range` change per batch); label updates and deletions are
//!   per-item `content` changes. Every process's indexes follow within one
//!   tail interval; nothing is rebuilt.
//! * **One transaction per batch, checkpoint included,** fenced by the
//!   fetcher's lease ([`LeaseFence`]): a fetcher that lost its lease while
//!   paused cannot commit, and a crash between batches resumes from the last
//!   committed checkpoint with no gap and no duplicate (records are keyed, so
//!   a re-applied batch changes nothing).
//! * **Mark-and-sweep.** A full fetch (no checkpoint, a stale one, or a
//!   snapshot source) bumps the exchange's generation; every record it sees
//!   is marked with it; [`Engine::sweep_exchange`] then tombstones the
//!   records it did not see. A crash mid-sweep re-runs the sweep (idempotent).
//! * **Local overrides.** Item state (enabled, quarantine) is never touched
//!   by upstream updates. When upstream removes an item that was disabled
//!   here, the records remember it (`local_state = 'disabled'`), so a re-add
//!   comes back disabled; an item a curator deleted is never re-created
//!   (`'deleted'`).
//! * **Feedback.** A decision on a match against an exchange-backed item
//!   queues one `exchange.opinion` outbox event per backing record (confirm =
//!   positive, reject = negative) at the decision's publish time, so the undo
//!   window applies; exchanges whose adapter cannot write back count the
//!   opinion as unsent instead (visible in their status).

use std::collections::{BTreeSet, HashMap};

use echotrace_signals::signal::SignalType;
use echotrace_store::{
    ContentWithId, ExchangeProgress, ExchangeRecordRow, ExchangeRow, ExchangeSettings, NewAudit,
    NewExchange, RecordCounts, WriteTx,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{EngineError, Result};
use crate::signals::normalize_signals;
use crate::types::{Actor, BankId, BankKind, ContentId, NewBank, SignalValue, Thresholds};
use crate::{to_json, Engine};

/// Version of [`RecordMeta`], [`ExchangePolicy`] as written.
pub const EXCHANGE_SCHEMA_VERSION: u32 = 1;
/// Outbox event carrying one opinion to one exchange.
pub const OPINION_EVENT: &str = "exchange.opinion";
/// Longest label (or tag) kept from upstream, bytes.
pub const MAX_LABEL_BYTES: usize = 100;
/// Most labels a bank item keeps.
pub const MAX_ITEM_LABELS: usize = 50;
/// Records per transaction when re-running a policy or sweeping.
const PASS_PAGE: i64 = 5_000;

/// Upstream labels of a record, all kept (pytx's TAT adapter drops the
/// ideology; we keep it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordLabels {
    /// Terrorist entity or group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entity: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ideology: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub behaviour: Vec<String>,
    /// File or content type (`mp4`, `image`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content_type: Vec<String>,
    /// Free tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl RecordLabels {
    /// Flat strings as bank items carry them: `entity:…`, `ideology:…`,
    /// `behaviour:…`, `content_type:…`, and free tags as they are.
    pub fn flatten(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (prefix, list) in [
            ("entity:", &self.entity),
            ("ideology:", &self.ideology),
            ("behaviour:", &self.behaviour),
            ("content_type:", &self.content_type),
        ] {
            out.extend(list.iter().map(|v| format!("{prefix}{v}")));
        }
        out.extend(self.tags.iter().cloned());
        out
    }

    /// The inverse of [`RecordLabels::flatten`] (what a peer's feed carries).
    pub fn from_flat(labels: &[String]) -> RecordLabels {
        let mut l = RecordLabels::default();
        for s in labels {
            let (slot, v) = if let Some(v) = s.strip_prefix("entity:") {
                (&mut l.entity, v)
            } else if let Some(v) = s.strip_prefix("ideology:") {
                (&mut l.ideology, v)
            } else if let Some(v) = s.strip_prefix("behaviour:") {
                (&mut l.behaviour, v)
            } else if let Some(v) = s.strip_prefix("content_type:") {
                (&mut l.content_type, v)
            } else {
                (&mut l.tags, s.as_str())
            };
            slot.push(v.to_string());
        }
        l
    }

    /// Check sizes: every label at most [`MAX_LABEL_BYTES`].
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, list) in [
            ("entity", &self.entity),
            ("ideology", &self.ideology),
            ("behaviour", &self.behaviour),
            ("content_type", &self.content_type),
            ("tags", &self.tags),
        ] {
            if let Some(v) = list.iter().find(|v| v.len() > MAX_LABEL_BYTES) {
                return Err(format!(
                    "{name} label of {} bytes (at most {MAX_LABEL_BYTES})",
                    v.len()
                ));
            }
        }
        Ok(())
    }
}

/// What an opinion says about a signal (python-threatexchange's
/// `SignalOpinionCategory`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpinionCategory {
    /// A false positive, or test data.
    Negative,
    /// An indirect indicator that needs verifying.
    Seed,
    /// Content that fits the collaboration's categories.
    Positive,
}

impl OpinionCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            OpinionCategory::Negative => "negative",
            OpinionCategory::Seed => "seed",
            OpinionCategory::Positive => "positive",
        }
    }
    pub fn parse(s: &str) -> Option<OpinionCategory> {
        match s.trim().to_ascii_lowercase().as_str() {
            "negative" => Some(OpinionCategory::Negative),
            "seed" => Some(OpinionCategory::Seed),
            "positive" => Some(OpinionCategory::Positive),
            _ => None,
        }
    }
}

/// The aggregate of several opinions (pytx's rule: the highest category,
/// except that a negative next to anything else is disputed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggregateOpinion {
    Negative,
    Seed,
    Positive,
    Disputed,
}

impl AggregateOpinion {
    /// `None` when there are no opinions.
    pub fn of(opinions: &[Opinion]) -> Option<AggregateOpinion> {
        let mut acc: Option<AggregateOpinion> = None;
        for o in opinions {
            let next = match o.category {
                OpinionCategory::Negative => AggregateOpinion::Negative,
                OpinionCategory::Seed => AggregateOpinion::Seed,
                OpinionCategory::Positive => AggregateOpinion::Positive,
            };
            acc = Some(match acc {
                None => next,
                Some(prev) => {
                    let (lo, hi) = if prev.rank() <= next.rank() {
                        (prev, next)
                    } else {
                        (next, prev)
                    };
                    if lo == hi {
                        hi
                    } else if lo == AggregateOpinion::Negative {
                        AggregateOpinion::Disputed
                    } else {
                        hi
                    }
                }
            });
        }
        acc
    }

    fn rank(self) -> u8 {
        match self {
            AggregateOpinion::Negative => 0,
            AggregateOpinion::Seed => 1,
            AggregateOpinion::Positive => 2,
            AggregateOpinion::Disputed => 3,
        }
    }
}

/// One owner's opinion on a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Opinion {
    /// Who holds it (a ThreatExchange app id, a partner name…).
    pub owner: String,
    pub category: OpinionCategory,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// This instance's own opinion.
    #[serde(default)]
    pub is_mine: bool,
    /// The upstream object that carries it (a ThreatExchange descriptor id),
    /// needed to react to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ref: Option<String>,
}

/// The typed JSON of `exchange_records.meta`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordMeta {
    pub v: u32,
    #[serde(default)]
    pub labels: RecordLabels,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opinions: Vec<Opinion>,
}

impl RecordMeta {
    fn parse(s: &str) -> RecordMeta {
        serde_json::from_str(s).unwrap_or_default()
    }
}

/// Which upstream records an exchange turns into bank items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangePolicy {
    #[serde(default = "schema_version")]
    pub version: u32,
    /// Signal types to keep (empty = all).
    #[serde(default)]
    pub signal_types: Vec<SignalType>,
    /// Keep only records with at least one of these labels (flat form:
    /// `ideology:far-right`, a free tag…); empty = all.
    #[serde(default)]
    pub include_labels: Vec<String>,
    /// Drop records with any of these labels.
    #[serde(default)]
    pub exclude_labels: Vec<String>,
    /// Drop records whose aggregate opinion is negative.
    #[serde(default)]
    pub skip_negative: bool,
    /// Drop records whose aggregate opinion is disputed.
    #[serde(default)]
    pub skip_disputed: bool,
}

fn schema_version() -> u32 {
    EXCHANGE_SCHEMA_VERSION
}

impl Default for ExchangePolicy {
    fn default() -> Self {
        ExchangePolicy {
            version: EXCHANGE_SCHEMA_VERSION,
            signal_types: Vec::new(),
            include_labels: Vec::new(),
            exclude_labels: Vec::new(),
            skip_negative: false,
            skip_disputed: false,
        }
    }
}

impl ExchangePolicy {
    /// Parse the stored JSON (an unreadable policy keeps nothing out).
    pub fn parse(s: &str) -> Result<ExchangePolicy> {
        serde_json::from_str(s)
            .map_err(|e| EngineError::InvalidInput(format!("exchange policy: {e}")))
    }

    fn validate(&self) -> Result<()> {
        if self.version != EXCHANGE_SCHEMA_VERSION {
            return Err(EngineError::InvalidInput(format!(
                "policy version {} is not supported (expected {EXCHANGE_SCHEMA_VERSION})",
                self.version
            )));
        }
        for l in self.include_labels.iter().chain(&self.exclude_labels) {
            if l.trim().is_empty() || l.len() > MAX_LABEL_BYTES {
                return Err(EngineError::InvalidInput(format!(
                    "policy labels must be 1-{MAX_LABEL_BYTES} bytes"
                )));
            }
        }
        Ok(())
    }

    /// Whether a record of `signal_type` with `meta` may back a bank item.
    pub fn admits(&self, signal_type: &str, meta: &RecordMeta) -> bool {
        if !self.signal_types.is_empty()
            && !self.signal_types.iter().any(|t| t.as_str() == signal_type)
        {
            return false;
        }
        let flat = meta.labels.flatten();
        if !self.include_labels.is_empty() && !flat.iter().any(|l| self.include_labels.contains(l))
        {
            return false;
        }
        if flat.iter().any(|l| self.exclude_labels.contains(l)) {
            return false;
        }
        match AggregateOpinion::of(&meta.opinions) {
            Some(AggregateOpinion::Negative) if self.skip_negative => false,
            Some(AggregateOpinion::Disputed) if self.skip_disputed => false,
            _ => true,
        }
    }
}

/// One upstream record handed to [`Engine::apply_exchange_batch`]: the
/// adapter has normalised the signal ([`crate::normalize_signal`]) and
/// checked label sizes ([`RecordLabels::validate`]).
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamRecord {
    pub signal: SignalValue,
    pub upstream_id: String,
    pub labels: RecordLabels,
    pub opinions: Vec<Opinion>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    /// A tombstone: the record was removed upstream.
    pub deleted: bool,
}

/// One batch of a fetch: records, the checkpoint after them, and counters.
#[derive(Clone, Debug, Default)]
pub struct ExchangeBatch {
    pub records: Vec<UpstreamRecord>,
    /// Records that could not be read (counted; already logged by the adapter).
    pub malformed: u64,
    /// The adapter's checkpoint after this batch (typed JSON).
    pub checkpoint: Option<String>,
    /// The upstream time this checkpoint corresponds to (ms), for lag.
    pub upstream_at: Option<i64>,
    /// These records start a new full fetch (bump the generation first).
    pub restart: bool,
}

/// "Only the holder of this lease may commit" ([`echotrace_store::WriteTx::holds_lease`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseFence {
    pub name: String,
    pub holder: String,
    pub epoch: i64,
}

/// What a batch (or a sweep, or a policy pass) changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchReport {
    /// Records received.
    pub records: u64,
    /// Bank items created.
    pub items_added: u64,
    /// Bank items deleted.
    pub items_deleted: u64,
    /// Bank items whose labels changed.
    pub items_relabelled: u64,
    /// Records now backed by an item another exchange created (shared bank).
    pub items_shared: u64,
    /// Records that became tombstones.
    pub tombstoned: u64,
    pub malformed: u64,
}

impl BatchReport {
    fn add(&mut self, o: &BatchReport) {
        self.records += o.records;
        self.items_added += o.items_added;
        self.items_deleted += o.items_deleted;
        self.items_relabelled += o.items_relabelled;
        self.items_shared += o.items_shared;
        self.tombstoned += o.tombstoned;
        self.malformed += o.malformed;
    }
}

/// An exchange as the API shows it (never its credentials).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Exchange {
    pub id: i64,
    pub name: String,
    pub api: String,
    /// The adapter's typed config (JSON text; the exchange crate owns it).
    #[serde(skip)]
    pub config: String,
    pub policy: ExchangePolicy,
    pub enabled: bool,
    /// false = dry run: records are fetched and kept, the bank is untouched.
    pub live: bool,
    pub poll_interval_ms: i64,
    pub bank_id: BankId,
    pub bank: String,
    /// Whether reviewers' verdicts are sent upstream.
    pub write_back: bool,
    /// Whether credentials are stored for it (never the credentials).
    pub has_credentials: bool,
    pub status: ExchangeStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Fetch status of an exchange.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExchangeStatus {
    /// The adapter's checkpoint (typed JSON), if any.
    pub checkpoint: Option<String>,
    /// Generation of the current / last full fetch.
    pub generation: i64,
    /// A full fetch (mark-and-sweep) is in progress.
    pub full_fetch: bool,
    pub running_since: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// Upstream time of the checkpoint (ms).
    pub upstream_at: Option<i64>,
    /// How far behind upstream's clock the checkpoint is, ms (`None` when
    /// the adapter has no upstream time).
    pub lag_ms: Option<i64>,
    pub fetched_total: i64,
    pub malformed_total: i64,
    /// Verdicts not sent because the adapter cannot write back.
    pub opinions_unsent: i64,
    /// Records kept (tombstones included).
    pub records: i64,
    /// Records live upstream.
    pub upstream_live: i64,
    /// Records backing bank items.
    pub applied: i64,
    /// The upstream's last published checksum, if it publishes one.
    pub upstream_checksum: Option<String>,
}

/// Input for [`Engine::create_exchange`].
#[derive(Clone, Debug)]
pub struct NewExchangeSpec {
    pub name: String,
    pub api: String,
    pub config: String,
    pub policy: ExchangePolicy,
    /// Already encrypted by the caller (the exchange crate's secret box).
    pub credentials: Option<String>,
    pub write_back: bool,
    pub enabled: bool,
    pub live: bool,
    pub poll_interval_ms: i64,
    /// The bank to fill: `None` creates one named like the exchange (HMA);
    /// an existing bank is shared (items are shared across its exchanges).
    pub bank: Option<String>,
}

/// Changes for [`Engine::update_exchange`]; `None` keeps a field.
#[derive(Clone, Debug, Default)]
pub struct ExchangeChange {
    pub enabled: Option<bool>,
    pub live: Option<bool>,
    pub poll_interval_ms: Option<i64>,
    pub policy: Option<ExchangePolicy>,
    pub config: Option<String>,
    /// `Some(None)` removes the exchange's own credentials.
    pub credentials: Option<Option<String>>,
}

/// Where a matched bank item came from: one record of one exchange.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Provenance {
    pub exchange: String,
    pub api: String,
    pub upstream_id: String,
    pub signal_type: String,
    pub value: String,
    pub labels: RecordLabels,
    pub opinions: Vec<Opinion>,
    pub aggregate: Option<AggregateOpinion>,
    pub upstream_updated_at: Option<i64>,
    /// This instance's opinion sent upstream, if any.
    pub my_opinion: Option<String>,
}

/// "Would add N, delete M": the effect of a policy (or of going live).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PolicyDiff {
    pub would_add: u64,
    pub would_delete: u64,
    pub unchanged_live: u64,
}

/// Payload of an [`OPINION_EVENT`] outbox event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpinionOut {
    pub decision_id: i64,
    pub match_id: i64,
    pub exchange_id: i64,
    pub exchange: String,
    pub api: String,
    pub signal_type: String,
    pub value: String,
    pub upstream_id: String,
    pub category: OpinionCategory,
    /// Upstream objects to react to (ThreatExchange descriptor ids) that are
    /// not ours.
    #[serde(default)]
    pub upstream_refs: Vec<String>,
}

fn exchange_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Minimum poll interval (ms).
pub const MIN_POLL_MS: i64 = 1_000;

fn check_poll(ms: i64) -> Result<()> {
    if !(MIN_POLL_MS..=7 * 24 * 3_600_000).contains(&ms) {
        return Err(EngineError::InvalidInput(format!(
            "poll_interval must be between {} s and 7 days",
            MIN_POLL_MS / 1000
        )));
    }
    Ok(())
}

fn labels_json(mut labels: Vec<String>) -> String {
    labels.sort();
    labels.dedup();
    labels.retain(|l| !l.trim().is_empty() && l.len() <= MAX_LABEL_BYTES);
    labels.truncate(MAX_ITEM_LABELS);
    to_json(&labels)
}

/// A record's key.
type Key = (String, String);

fn key_of(r: &ExchangeRecordRow) -> Key {
    (r.signal_type.clone(), r.value.clone())
}

/// An upstream record's key, borrowed.
fn upstream_key(r: &UpstreamRecord) -> (&str, &str) {
    (r.signal.signal_type.as_str(), r.signal.value.as_str())
}

/// One record for [`reconcile`]: the stored row (if any), the row to store,
/// and the new row's parsed metadata (parsed once, used for the policy and
/// the item's labels).
struct Pair {
    old: Option<ExchangeRecordRow>,
    new: ExchangeRecordRow,
    meta: RecordMeta,
}

impl Pair {
    /// A stored row and its replacement, metadata read from the row.
    fn stored(old: Option<ExchangeRecordRow>, new: ExchangeRecordRow) -> Pair {
        let meta = RecordMeta::parse(&new.meta);
        Pair { old, new, meta }
    }
}

/// Whether two rows differ in anything but bookkeeping.
fn same_record(a: &ExchangeRecordRow, b: &ExchangeRecordRow) -> bool {
    a.upstream_id == b.upstream_id
        && a.meta == b.meta
        && a.upstream_created_at == b.upstream_created_at
        && a.upstream_updated_at == b.upstream_updated_at
        && a.deleted == b.deleted
        && a.applied == b.applied
        && a.content_id == b.content_id
        && a.local_state == b.local_state
        && a.my_opinion == b.my_opinion
}

impl Engine {
    /// Exchanges, oldest first.
    pub async fn list_exchanges(&self) -> Result<Vec<Exchange>> {
        let mut out = Vec::new();
        for row in self.store().list_exchanges().await? {
            out.push(self.exchange_view(&row).await?);
        }
        Ok(out)
    }

    /// One exchange by id.
    pub async fn exchange(&self, id: i64) -> Result<Exchange> {
        match self.store().get_exchange(id).await? {
            Some(row) => self.exchange_view(&row).await,
            None => Err(EngineError::NotFound(format!("exchange {id}"))),
        }
    }

    /// One exchange by name.
    pub async fn exchange_by_name(&self, name: &str) -> Result<Exchange> {
        match self.store().get_exchange_by_name(name.trim()).await? {
            Some(row) => self.exchange_view(&row).await,
            None => Err(EngineError::NotFound(format!("exchange {name:?}"))),
        }
    }

    /// The stored row (with the credentials ciphertext), for the exchange
    /// crate's workers. Never hand it to a client.
    pub async fn exchange_row(&self, id: i64) -> Result<ExchangeRow> {
        self.store()
            .get_exchange(id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("exchange {id}")))
    }

    async fn exchange_view(&self, row: &ExchangeRow) -> Result<Exchange> {
        let counts: RecordCounts = self.store().exchange_record_counts(row.id).await?;
        let bank = self
            .store()
            .get_bank(row.bank_id)
            .await?
            .map(|b| b.name)
            .unwrap_or_default();
        let now = echotrace_store::now_ms();
        Ok(Exchange {
            id: row.id,
            name: row.name.clone(),
            api: row.api.clone(),
            config: row.config.clone(),
            policy: ExchangePolicy::parse(&row.policy).unwrap_or_default(),
            enabled: row.enabled,
            live: row.live,
            poll_interval_ms: row.poll_interval_ms,
            bank_id: row.bank_id,
            bank,
            write_back: row.write_back,
            has_credentials: row.credentials.is_some(),
            status: ExchangeStatus {
                checkpoint: row.checkpoint.clone(),
                generation: row.generation,
                full_fetch: row.full_fetch,
                running_since: row.fetch_started_at,
                last_success_at: row.last_success_at,
                last_error: row.last_error.clone(),
                last_error_at: row.last_error_at,
                upstream_at: row.upstream_at,
                lag_ms: row.upstream_at.map(|t| (now - t).max(0)),
                fetched_total: row.fetched_total,
                malformed_total: row.malformed_total,
                opinions_unsent: row.opinions_unsent,
                records: counts.total,
                upstream_live: counts.upstream_live,
                applied: counts.applied,
                upstream_checksum: row.upstream_checksum.clone(),
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    /// Create an exchange and (unless it names an existing bank) its bank.
    pub async fn create_exchange(&self, actor: &Actor, spec: NewExchangeSpec) -> Result<Exchange> {
        let name = spec.name.trim().to_string();
        if !exchange_name_ok(&name) {
            return Err(EngineError::InvalidInput(
                "exchange names are 1-100 characters of A-Z a-z 0-9 _ - .".into(),
            ));
        }
        spec.policy.validate()?;
        check_poll(spec.poll_interval_ms)?;
        if self.store().get_exchange_by_name(&name).await?.is_some() {
            return Err(EngineError::Conflict(format!(
                "exchange {name:?} already exists"
            )));
        }
        let bank_name = spec.bank.clone().unwrap_or_else(|| name.clone());
        let bank = match self.store().get_bank_by_name(bank_name.trim()).await? {
            Some(b) if spec.bank.is_some() => crate::convert::bank_from_row(&b)?,
            Some(_) => {
                return Err(EngineError::Conflict(format!(
                    "a bank named {bank_name:?} already exists; name another bank with \"bank\" \
                     to share it, or choose another exchange name"
                )))
            }
            None => {
                self.create_bank(
                    actor,
                    NewBank {
                        name: bank_name.trim().to_string(),
                        kind: BankKind::Block,
                        description: format!("Filled by exchange {name}"),
                        thresholds: Thresholds::default(),
                        text_equivalences: None,
                    },
                )
                .await?
            }
        };
        let mut tx = self.store().write().await?;
        let row = tx
            .insert_exchange(&NewExchange {
                name: &name,
                api: spec.api.trim(),
                config: &spec.config,
                policy: &to_json(&spec.policy),
                credentials: spec.credentials.as_deref(),
                write_back: spec.write_back,
                enabled: spec.enabled,
                live: spec.live,
                poll_interval_ms: spec.poll_interval_ms,
                bank_id: bank.id,
            })
            .await?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "exchange.create",
            target: &format!("exchange:{}", row.id),
            before: None,
            after: Some(audit_json(&row)),
        })
        .await?;
        tx.commit().await?;
        self.exchange_view(&row).await
    }

    /// Change an exchange's settings. A new policy, or going live, re-runs
    /// every record through the policy (items added and deleted accordingly).
    pub async fn update_exchange(
        &self,
        actor: &Actor,
        id: i64,
        change: ExchangeChange,
    ) -> Result<Exchange> {
        if let Some(p) = &change.policy {
            p.validate()?;
        }
        if let Some(ms) = change.poll_interval_ms {
            check_poll(ms)?;
        }
        let mut tx = self.store().write().await?;
        let Some(before) = tx.get_exchange_for_update(id).await? else {
            return Err(EngineError::NotFound(format!("exchange {id}")));
        };
        let policy = match &change.policy {
            Some(p) => to_json(p),
            None => before.policy.clone(),
        };
        let settings = ExchangeSettings {
            config: change
                .config
                .clone()
                .unwrap_or_else(|| before.config.clone()),
            policy,
            credentials: change.credentials.clone(),
            enabled: change.enabled.unwrap_or(before.enabled),
            live: change.live.unwrap_or(before.live),
            poll_interval_ms: change.poll_interval_ms.unwrap_or(before.poll_interval_ms),
        };
        let after = tx.update_exchange_settings(id, &settings).await?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "exchange.update",
            target: &format!("exchange:{id}"),
            before: Some(audit_json(&before)),
            after: Some(audit_json(&after)),
        })
        .await?;
        tx.commit().await?;
        if after.policy != before.policy || after.live != before.live {
            self.reapply_exchange(id).await?;
        }
        self.exchange_view(&after).await
    }

    /// Delete an exchange: its items go (unless another exchange of a
    /// shared bank still backs them), then its records; its bank goes too
    /// when no other exchange fills it.
    pub async fn delete_exchange(&self, actor: &Actor, id: i64) -> Result<()> {
        let row = self.exchange_row(id).await?;
        // Release every item first, page by page (each its own transaction).
        let mut after: Option<Key> = None;
        loop {
            let mut tx = self.store().write().await?;
            let page = tx
                .exchange_records_after(
                    id,
                    after.as_ref().map(|(t, v)| (t.as_str(), v.as_str())),
                    PASS_PAGE,
                )
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(key_of(last));
            let pairs = page
                .into_iter()
                .map(|old| {
                    let mut new = old.clone();
                    new.deleted = true;
                    Pair::stored(Some(old), new)
                })
                .collect();
            let (_report, _written) =
                reconcile(&mut tx, &row, &ExchangePolicy::default(), pairs, false).await?;
            tx.commit().await?;
        }
        let mut tx = self.store().write().await?;
        tx.delete_exchange(id).await?;
        let others = tx.exchange_ids_of_bank(row.bank_id).await?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "exchange.delete",
            target: &format!("exchange:{id}"),
            before: Some(audit_json(&row)),
            after: None,
        })
        .await?;
        tx.commit().await?;
        self.sync_changes().await?;
        if others.is_empty() {
            match self.delete_bank(actor, row.bank_id).await {
                Ok(()) | Err(EngineError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Start a full fetch: the next batches are marked with a new generation
    /// and [`Engine::sweep_exchange`] tombstones what they did not see.
    pub async fn begin_full_fetch(&self, id: i64, fence: Option<&LeaseFence>) -> Result<i64> {
        let mut tx = self.store().write().await?;
        check_fence(&mut tx, fence).await?;
        let Some(row) = tx.get_exchange_for_update(id).await? else {
            return Err(EngineError::NotFound(format!("exchange {id}")));
        };
        let generation = row.generation + 1;
        tx.set_exchange_progress(
            id,
            &ExchangeProgress {
                checkpoint: None,
                generation,
                full_fetch: true,
                ..ExchangeProgress::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(generation)
    }

    /// Apply one batch of upstream records and its checkpoint in one
    /// transaction (fenced by `fence`), then bring this process's indexes
    /// up to date.
    pub async fn apply_exchange_batch(
        &self,
        id: i64,
        fence: Option<&LeaseFence>,
        batch: ExchangeBatch,
    ) -> Result<BatchReport> {
        // Every row of the batch (records, items, checkpoint) can be fetched
        // again from upstream: see `Store::write_refetchable`.
        let mut tx = self.store().write_refetchable().await?;
        tx.use_bulk_cache().await?;
        check_fence(&mut tx, fence).await?;
        let Some(mut row) = tx.get_exchange_for_update(id).await? else {
            return Err(EngineError::NotFound(format!("exchange {id}")));
        };
        if batch.restart {
            row.generation += 1;
            row.full_fetch = true;
        }
        let policy = ExchangePolicy::parse(&row.policy).unwrap_or_default();
        // Last record wins within a batch. Key order: the random-keyed
        // B-trees (records by key, signals by value) are then read and
        // written in order, leaf after leaf, and new items get ascending ids
        // in the same order. The sort is on positions (ties by position, so
        // the last of equal keys is the one kept), not on the records.
        let mut records: Vec<Option<UpstreamRecord>> =
            batch.records.into_iter().map(Some).collect();
        let key_at = |i: u32| {
            records
                .get(i as usize)
                .and_then(Option::as_ref)
                .map(upstream_key)
        };
        let mut order: Vec<u32> = (0..u32::try_from(records.len()).unwrap_or(u32::MAX)).collect();
        order.sort_unstable_by(|&a, &b| key_at(a).cmp(&key_at(b)).then(a.cmp(&b)));
        let mut keep: Vec<u32> = Vec::with_capacity(order.len());
        for (n, &i) in order.iter().enumerate() {
            let next = order.get(n + 1).copied();
            if next.is_none_or(|j| key_at(j) != key_at(i)) {
                keep.push(i);
            }
        }
        let incoming: Vec<UpstreamRecord> = keep
            .into_iter()
            .filter_map(|i| records.get_mut(i as usize).and_then(Option::take))
            .collect();
        drop(records);
        let incoming_len = incoming.len();
        let mut existing = load_existing(&mut tx, &[row.id], &incoming).await?;
        let now = echotrace_store::now_ms();
        let mut pairs = Vec::with_capacity(incoming.len());
        for r in incoming {
            let old = existing
                .get_mut(r.signal.signal_type.as_str())
                .and_then(|m| m.remove(r.signal.value.as_str()));
            if old.is_none() && r.deleted {
                continue; // a tombstone for something we never had
            }
            let mut new = match &old {
                Some(o) => o.clone(),
                None => ExchangeRecordRow {
                    exchange_id: row.id,
                    signal_type: r.signal.signal_type.as_str().to_string(),
                    value: r.signal.value,
                    upstream_id: String::new(),
                    meta: String::new(),
                    upstream_created_at: None,
                    upstream_updated_at: None,
                    deleted: false,
                    applied: false,
                    content_id: None,
                    local_state: String::new(),
                    my_opinion: None,
                    seen_gen: 0,
                    updated_at: now,
                },
            };
            new.seen_gen = row.generation;
            let meta = if r.deleted {
                new.deleted = true;
                if let Some(t) = r.updated_at {
                    new.upstream_updated_at = Some(t);
                }
                RecordMeta::parse(&new.meta)
            } else {
                let meta = RecordMeta {
                    v: EXCHANGE_SCHEMA_VERSION,
                    labels: r.labels,
                    opinions: r.opinions,
                };
                new.deleted = false;
                new.upstream_id = r.upstream_id;
                new.meta = to_json(&meta);
                new.upstream_created_at = r.created_at;
                new.upstream_updated_at = r.updated_at;
                meta
            };
            pairs.push(Pair { old, new, meta });
        }
        let received = incoming_len as u64;
        let (mut report, written) = reconcile(&mut tx, &row, &policy, pairs, true).await?;
        report.records = received;
        report.malformed = batch.malformed;
        tx.set_exchange_progress(
            row.id,
            &ExchangeProgress {
                checkpoint: batch.checkpoint.clone(),
                generation: row.generation,
                full_fetch: row.full_fetch,
                upstream_at: batch.upstream_at,
                fetched: i64::try_from(report.records).unwrap_or(i64::MAX),
                malformed: i64::try_from(batch.malformed).unwrap_or(i64::MAX),
            },
        )
        .await?;
        if report.records > 0 || report.malformed > 0 {
            tx.audit(&NewAudit {
                actor: Actor::system().as_str(),
                action: "exchange.fetch",
                target: &format!("exchange:{}", row.id),
                before: None,
                after: Some(
                    json!({"exchange": row.name, "report": report, "restart": batch.restart})
                        .to_string(),
                ),
            })
            .await?;
        }
        tx.commit().await?;
        // The new items go to the indexes from the rows just written, not
        // re-read from the database.
        self.sync_changes_with(written).await?;
        Ok(report)
    }

    /// Finish a full fetch: records of the exchange not seen in its current
    /// generation become tombstones (their items go), then the full-fetch
    /// flag is cleared. Idempotent; each page is its own fenced transaction.
    pub async fn sweep_exchange(&self, id: i64, fence: Option<&LeaseFence>) -> Result<BatchReport> {
        let mut total = BatchReport::default();
        let mut after: Option<Key> = None;
        loop {
            let mut tx = self.store().write().await?;
            check_fence(&mut tx, fence).await?;
            let Some(row) = tx.get_exchange_for_update(id).await? else {
                return Err(EngineError::NotFound(format!("exchange {id}")));
            };
            let policy = ExchangePolicy::parse(&row.policy).unwrap_or_default();
            let page = tx
                .unseen_exchange_records(
                    id,
                    row.generation,
                    after.as_ref().map(|(t, v)| (t.as_str(), v.as_str())),
                    PASS_PAGE,
                )
                .await?;
            after = page.last().map(key_of);
            if page.is_empty() {
                tx.set_exchange_progress(
                    id,
                    &ExchangeProgress {
                        checkpoint: row.checkpoint.clone(),
                        generation: row.generation,
                        full_fetch: false,
                        ..ExchangeProgress::default()
                    },
                )
                .await?;
                if total.tombstoned > 0 {
                    tx.audit(&NewAudit {
                        actor: Actor::system().as_str(),
                        action: "exchange.sweep",
                        target: &format!("exchange:{id}"),
                        before: None,
                        after: Some(json!({"exchange": row.name, "report": total}).to_string()),
                    })
                    .await?;
                }
                tx.commit().await?;
                break;
            }
            let pairs = page
                .into_iter()
                .map(|old| {
                    let mut new = old.clone();
                    new.deleted = true;
                    Pair::stored(Some(old), new)
                })
                .collect();
            let (report, _) = reconcile(&mut tx, &row, &policy, pairs, false).await?;
            total.add(&report);
            tx.commit().await?;
        }
        self.sync_changes().await?;
        Ok(total)
    }

    /// Re-run every record of an exchange through its policy (after a
    /// policy change or going live).
    pub async fn reapply_exchange(&self, id: i64) -> Result<BatchReport> {
        let mut total = BatchReport::default();
        let mut after: Option<Key> = None;
        loop {
            let mut tx = self.store().write().await?;
            let Some(row) = tx.get_exchange_for_update(id).await? else {
                return Err(EngineError::NotFound(format!("exchange {id}")));
            };
            let policy = ExchangePolicy::parse(&row.policy).unwrap_or_default();
            let page = tx
                .exchange_records_after(
                    id,
                    after.as_ref().map(|(t, v)| (t.as_str(), v.as_str())),
                    PASS_PAGE,
                )
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(key_of(last));
            let pairs = page
                .into_iter()
                .map(|old| Pair::stored(Some(old.clone()), old))
                .collect();
            let (report, _) = reconcile(&mut tx, &row, &policy, pairs, false).await?;
            total.add(&report);
            tx.commit().await?;
        }
        self.sync_changes().await?;
        Ok(total)
    }

    /// What a policy would change for an exchange's kept records ("would add
    /// N, delete M"), as if the exchange were live. Reads only.
    pub async fn exchange_policy_diff(
        &self,
        id: i64,
        policy: &ExchangePolicy,
    ) -> Result<PolicyDiff> {
        policy.validate()?;
        let mut diff = PolicyDiff::default();
        let mut after: Option<Key> = None;
        loop {
            let page = self
                .store()
                .exchange_records_page(
                    id,
                    after.as_ref().map(|(t, v)| (t.as_str(), v.as_str())),
                    false,
                    PASS_PAGE,
                )
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(key_of(last));
            for r in &page {
                let want = !r.deleted
                    && r.local_state != "deleted"
                    && policy.admits(&r.signal_type, &RecordMeta::parse(&r.meta));
                match (r.applied, want) {
                    (false, true) => diff.would_add += 1,
                    (true, false) => diff.would_delete += 1,
                    (true, true) => diff.unchanged_live += 1,
                    (false, false) => {}
                }
            }
        }
        Ok(diff)
    }

    /// Provenance of bank items: the exchange records backing each.
    pub async fn provenance(
        &self,
        content_ids: &[ContentId],
    ) -> Result<HashMap<ContentId, Vec<Provenance>>> {
        let mut ids: Vec<ContentId> = content_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut out: HashMap<ContentId, Vec<Provenance>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        for p in self.store().provenance_of(&ids).await? {
            let Some(cid) = p.record.content_id else {
                continue;
            };
            if !p.record.applied {
                continue;
            }
            let meta = RecordMeta::parse(&p.record.meta);
            out.entry(cid).or_default().push(Provenance {
                exchange: p.exchange,
                api: p.api,
                upstream_id: p.record.upstream_id,
                signal_type: p.record.signal_type,
                value: p.record.value,
                aggregate: AggregateOpinion::of(&meta.opinions),
                labels: meta.labels,
                opinions: meta.opinions,
                upstream_updated_at: p.record.upstream_updated_at,
                my_opinion: p.record.my_opinion,
            });
        }
        Ok(out)
    }

    /// SHA-256 (hex) over the sorted `(type, value)` set of an exchange's
    /// records that are live upstream: compared with the upstream feed's
    /// checksum to detect drift.
    pub async fn exchange_checksum(&self, id: i64) -> Result<String> {
        let mut h = KeySetHasher::default();
        let mut after: Option<Key> = None;
        loop {
            let page = self
                .store()
                .exchange_live_keys_page(
                    id,
                    after.as_ref().map(|(t, v)| (t.as_str(), v.as_str())),
                    50_000,
                )
                .await?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            for (t, v) in &page {
                h.push(t, v);
            }
            after = Some(last);
        }
        Ok(h.finish())
    }
}

impl Engine {
    /// Append one audit entry (exchange events that are not otherwise
    /// audited: opinions sent or dropped, shared credentials changed).
    /// Never pass credentials.
    pub async fn record_audit(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        after: serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.store().write().await?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action,
            target,
            before: None,
            after: Some(after.to_string()),
        })
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The checksum of a `(type, value)` set: SHA-256 over `type \t value \n`
/// lines in byte order of `(type, value)` — what feeds publish and
/// subscribers recompute. Feed the keys already sorted.
#[derive(Default)]
pub struct KeySetHasher {
    h: sha2::Sha256,
}

impl KeySetHasher {
    pub fn push(&mut self, signal_type: &str, value: &str) {
        use sha2::Digest;
        self.h.update(signal_type.as_bytes());
        self.h.update(b"\t");
        self.h.update(value.as_bytes());
        self.h.update(b"\n");
    }
    pub fn finish(self) -> String {
        use sha2::Digest;
        crate::auth::hex_lower(&self.h.finalize())
    }
}

async fn check_fence(tx: &mut WriteTx, fence: Option<&LeaseFence>) -> Result<()> {
    if let Some(f) = fence {
        if !tx.holds_lease(&f.name, &f.holder, f.epoch).await? {
            return Err(EngineError::Conflict(format!(
                "lease {} was lost; another process fetches this exchange now",
                f.name
            )));
        }
    }
    Ok(())
}

/// Existing records of `exchange_ids` for the keys of `incoming`.
async fn load_existing(
    tx: &mut WriteTx,
    exchange_ids: &[i64],
    incoming: &[UpstreamRecord],
) -> Result<HashMap<String, HashMap<String, ExchangeRecordRow>>> {
    let mut by_type: HashMap<&str, Vec<&str>> = HashMap::new();
    for r in incoming {
        by_type
            .entry(r.signal.signal_type.as_str())
            .or_default()
            .push(r.signal.value.as_str());
    }
    // By type, then by value: looked up with borrowed strings.
    let mut out: HashMap<String, HashMap<String, ExchangeRecordRow>> = HashMap::new();
    for (t, values) in by_type {
        let rows = tx
            .exchange_records_by_values(exchange_ids, t, &values)
            .await?;
        if !rows.is_empty() {
            out.entry(t.to_string())
                .or_default()
                .extend(rows.into_iter().map(|r| (r.value.clone(), r)));
        }
    }
    Ok(out)
}

/// The audit view of an exchange row: never the credentials.
fn audit_json(row: &ExchangeRow) -> String {
    json!({
        "name": row.name,
        "api": row.api,
        "config": serde_json::from_str::<serde_json::Value>(&row.config).unwrap_or_default(),
        "policy": serde_json::from_str::<serde_json::Value>(&row.policy).unwrap_or_default(),
        "enabled": row.enabled,
        "live": row.live,
        "poll_interval_ms": row.poll_interval_ms,
        "bank_id": row.bank_id,
        "write_back": row.write_back,
        "credentials": if row.credentials.is_some() { "set" } else { "none" },
    })
    .to_string()
}

/// Bring bank items in line with records: `pairs` are (stored row, row to
/// store). Decides per record whether it backs an item, creates, relabels
/// or deletes items (recording changes), and writes the rows. `mark_seen`:
/// rows identical to their stored version still get their `seen_gen` set.
async fn reconcile(
    tx: &mut WriteTx,
    ex: &ExchangeRow,
    policy: &ExchangePolicy,
    pairs: Vec<Pair>,
    mark_seen: bool,
) -> Result<(BatchReport, Option<crate::WrittenRange>)> {
    let mut written = None;
    let mut report = BatchReport {
        records: pairs.len() as u64,
        ..BatchReport::default()
    };
    let siblings: Vec<i64> = tx
        .exchange_ids_of_bank(ex.bank_id)
        .await?
        .into_iter()
        .filter(|id| *id != ex.id)
        .collect();
    // Sibling records for the same keys (a shared bank's other exchanges).
    let mut sibling_rows: HashMap<Key, Vec<ExchangeRecordRow>> = HashMap::new();
    if !siblings.is_empty() {
        let mut by_type: HashMap<String, Vec<String>> = HashMap::new();
        for p in &pairs {
            by_type
                .entry(p.new.signal_type.clone())
                .or_default()
                .push(p.new.value.clone());
        }
        for (t, values) in &by_type {
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            for r in tx.exchange_records_by_values(&siblings, t, &refs).await? {
                sibling_rows.entry(key_of(&r)).or_default().push(r);
            }
        }
    }
    let mut new_items: Vec<usize> = Vec::new();
    let mut relabel: BTreeSet<ContentId> = BTreeSet::new();
    // A sibling's rows for a key (none without siblings: no key is built).
    let sibling = |new: &ExchangeRecordRow| -> &[ExchangeRecordRow] {
        if sibling_rows.is_empty() {
            return &[];
        }
        sibling_rows
            .get(&key_of(new))
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    let mut rows: Vec<Pair> = pairs;
    for (i, Pair { old, new, meta }) in rows.iter_mut().enumerate() {
        let want = ex.live
            && !new.deleted
            && new.local_state != "deleted"
            && policy.admits(&new.signal_type, meta);
        let was = old.as_ref().is_some_and(|o| o.applied) && new.content_id.is_some();
        if old.as_ref().is_some_and(|o| !o.deleted) && new.deleted {
            report.tombstoned += 1;
        }
        let sib_backing = sibling(new)
            .iter()
            .find(|r| r.applied && r.content_id.is_some())
            .and_then(|r| r.content_id);
        match (was, want) {
            (false, true) => match sib_backing {
                Some(cid) => {
                    new.applied = true;
                    new.content_id = Some(cid);
                    relabel.insert(cid);
                    report.items_shared += 1;
                }
                None => new_items.push(i),
            },
            (true, true) => {
                let changed = old.as_ref().is_some_and(|o| o.meta != new.meta);
                if let (true, Some(cid)) = (changed, new.content_id) {
                    relabel.insert(cid);
                }
            }
            (true, false) => {
                let cid = new.content_id.unwrap_or_default();
                new.applied = false;
                new.content_id = None;
                if sib_backing == Some(cid) {
                    relabel.insert(cid);
                } else {
                    match tx.get_content(cid).await? {
                        Some(c) => {
                            if !c.enabled && new.local_state.is_empty() {
                                new.local_state = "disabled".into();
                            }
                            tx.delete_content(cid).await?;
                            tx.record_change("content", cid, "delete").await?;
                            report.items_deleted += 1;
                        }
                        None => {
                            // Deleted here by a curator: never re-create it.
                            new.local_state = "deleted".into();
                        }
                    }
                }
            }
            (false, false) => {}
        }
    }
    // New items: reserved ids, multi-row inserts, one range change.
    if !new_items.is_empty() {
        let ids = tx.reserve_content_ids(new_items.len()).await?;
        let mut items = Vec::with_capacity(new_items.len());
        for (&i, &id) in new_items.iter().zip(&ids) {
            let Some(Pair { new, meta, .. }) = rows.get_mut(i) else {
                continue;
            };
            let sib_disabled = sibling(new).iter().any(|r| r.local_state == "disabled");
            let enabled = !(new.local_state == "disabled" || sib_disabled);
            if new.local_state == "disabled" {
                // The item carries the override from now on.
                new.local_state.clear();
            }
            new.applied = true;
            new.content_id = Some(id);
            let t: SignalType = new
                .signal_type
                .parse()
                .map_err(|e| EngineError::Internal(format!("stored record: {e}")))?;
            // Records are stored normalised (the adapter normalised them);
            // only a URL brings a second signal, its hash.
            let plain = SignalValue {
                signal_type: t,
                value: new.value.clone(),
            };
            let signals = if t == SignalType::Url {
                normalize_signals(std::slice::from_ref(&plain)).unwrap_or_else(|_| vec![plain])
            } else {
                vec![plain]
            };
            items.push(ContentWithId {
                id,
                enabled,
                labels_json: labels_json(meta.labels.flatten()),
                signals: signals
                    .into_iter()
                    .map(|s| (s.signal_type.as_str().to_string(), s.value))
                    .collect(),
            });
        }
        let rows = tx.insert_content_with_ids(ex.bank_id, items).await?;
        if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
            let change_id = tx
                .record_change(
                    echotrace_store::CONTENT_RANGE_ENTITY,
                    *first,
                    &echotrace_store::content_range_op(*last),
                )
                .await?;
            written = Some(crate::WrittenRange { change_id, rows });
        }
        report.items_added += new_items.len() as u64;
    }
    // Relabel shared or changed items: the union of the labels of the
    // records backing them (this batch's rows, and other exchanges' rows of
    // a shared bank). An item that is gone was deleted here by a curator:
    // its records stop backing it and never re-create it.
    for cid in relabel {
        let mut labels = Vec::new();
        for p in rows
            .iter()
            .filter(|p| p.new.applied && p.new.content_id == Some(cid))
        {
            labels.extend(p.meta.labels.flatten());
        }
        if !siblings.is_empty() {
            for r in tx.exchange_records_of_content(cid).await? {
                if r.applied && r.exchange_id != ex.id {
                    labels.extend(RecordMeta::parse(&r.meta).labels.flatten());
                }
            }
        }
        if tx.set_content_labels(cid, &labels_json(labels)).await? {
            tx.record_change("content", cid, "upsert").await?;
            report.items_relabelled += 1;
        } else {
            for p in rows.iter_mut().filter(|p| p.new.content_id == Some(cid)) {
                p.new.applied = false;
                p.new.content_id = None;
                p.new.local_state = "deleted".into();
            }
        }
    }
    // Write the rows: inserts, full updates, or just the seen mark.
    let mut inserts: Vec<&ExchangeRecordRow> = Vec::new();
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for Pair { old, new, .. } in &rows {
        match old {
            None => inserts.push(new),
            Some(o) if !same_record(o, new) => tx.update_exchange_record(new).await?,
            Some(o) => {
                if mark_seen && o.seen_gen != new.seen_gen {
                    seen.entry(new.signal_type.clone())
                        .or_default()
                        .push(new.value.clone());
                }
            }
        }
    }
    tx.insert_exchange_records(&inserts).await?;
    for (t, values) in &seen {
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        tx.mark_exchange_records_seen(ex.id, t, &refs, ex.generation)
            .await?;
    }
    Ok((report, written))
}

// ----- feedback ---------------------------------------------------------------

/// Queue this instance's opinion on the records backing a matched item
/// (inside the decision's transaction). Exchanges without write-back count
/// it as unsent.
pub(crate) async fn queue_opinions(
    tx: &mut WriteTx,
    decision_id: i64,
    m: &echotrace_store::MatchRow,
    category: OpinionCategory,
    publish_after: i64,
) -> Result<()> {
    let records = tx.exchange_records_of_content(m.content_id).await?;
    if records.is_empty() {
        return Ok(());
    }
    tx.set_my_opinion(m.content_id, category.as_str()).await?;
    for r in records.iter().filter(|r| r.applied) {
        let Some(ex) = tx.get_exchange_for_update(r.exchange_id).await? else {
            continue;
        };
        if !ex.write_back {
            tx.count_unsent_opinion(ex.id).await?;
            continue;
        }
        let meta = RecordMeta::parse(&r.meta);
        let out = OpinionOut {
            decision_id,
            match_id: m.id,
            exchange_id: ex.id,
            exchange: ex.name.clone(),
            api: ex.api.clone(),
            signal_type: r.signal_type.clone(),
            value: r.value.clone(),
            upstream_id: r.upstream_id.clone(),
            category,
            upstream_refs: meta
                .opinions
                .iter()
                .filter(|o| !o.is_mine)
                .filter_map(|o| o.upstream_ref.clone())
                .collect(),
        };
        tx.enqueue(OPINION_EVENT, &to_json(&out), publish_after)
            .await?;
    }
    Ok(())
}

/// Undo: drop the unsent opinions of a decision (inside the undo's
/// transaction).
pub(crate) async fn drop_opinions(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    decision_id: i64,
    now: i64,
) -> std::result::Result<(), sqlx::Error> {
    use sqlx::Row;
    let events = sqlx::query(
        "SELECT id, payload FROM outbox WHERE event = $1 AND delivered_at IS NULL \
         AND attempts = 0 AND next_attempt_at > $2 ORDER BY id DESC LIMIT 1000",
    )
    .bind(OPINION_EVENT)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    for e in &events {
        let payload: String = e.try_get("payload")?;
        let ours = serde_json::from_str::<OpinionOut>(&payload)
            .map(|o| o.decision_id == decision_id)
            .unwrap_or(false);
        if ours {
            let id: i64 = e.try_get("id")?;
            sqlx::query("DELETE FROM outbox WHERE id = $1 AND delivered_at IS NULL")
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(c: OpinionCategory) -> Opinion {
        Opinion {
            owner: "x".into(),
            category: c,
            tags: vec![],
            is_mine: false,
            upstream_ref: None,
        }
    }

    #[test]
    fn aggregate_follows_pytx() {
        use AggregateOpinion as A;
        use OpinionCategory::*;
        assert_eq!(A::of(&[]), None);
        assert_eq!(A::of(&[op(Positive)]), Some(A::Positive));
        assert_eq!(A::of(&[op(Seed), op(Positive)]), Some(A::Positive));
        assert_eq!(A::of(&[op(Positive), op(Negative)]), Some(A::Disputed));
        assert_eq!(A::of(&[op(Negative), op(Seed)]), Some(A::Disputed));
        assert_eq!(A::of(&[op(Negative), op(Negative)]), Some(A::Negative));
        assert_eq!(
            A::of(&[op(Positive), op(Negative), op(Seed)]),
            Some(A::Disputed)
        );
    }

    #[test]
    fn labels_flatten_round_trip() {
        let l = RecordLabels {
            entity: vec!["group a".into()],
            ideology: vec!["far-right".into()],
            behaviour: vec![],
            content_type: vec!["mp4".into()],
            tags: vec!["free".into()],
        };
        let flat = l.flatten();
        assert_eq!(
            flat,
            vec![
                "entity:group a",
                "ideology:far-right",
                "content_type:mp4",
                "free"
            ]
        );
        assert_eq!(RecordLabels::from_flat(&flat), l);
    }

    #[test]
    fn policy_filters() {
        let meta = RecordMeta {
            v: 1,
            labels: RecordLabels {
                ideology: vec!["islamist".into()],
                ..RecordLabels::default()
            },
            opinions: vec![op(OpinionCategory::Negative), op(OpinionCategory::Positive)],
        };
        let mut p = ExchangePolicy::default();
        assert!(p.admits("pdq", &meta));
        p.signal_types = vec![SignalType::Md5];
        assert!(!p.admits("pdq", &meta));
        p.signal_types.clear();
        p.include_labels = vec!["ideology:far-right".into()];
        assert!(!p.admits("pdq", &meta));
        p.include_labels = vec!["ideology:islamist".into()];
        assert!(p.admits("pdq", &meta));
        p.exclude_labels = vec!["ideology:islamist".into()];
        assert!(!p.admits("pdq", &meta));
        p.exclude_labels.clear();
        p.skip_disputed = true;
        assert!(!p.admits("pdq", &meta));
    }

    #[test]
    fn checksum_is_over_sorted_lines() {
        let mut h = KeySetHasher::default();
        h.push("md5", "aa");
        h.push("pdq", "bb");
        let expected = crate::auth::hex_lower(&{
            use sha2::Digest;
            sha2::Sha256::digest(b"md5\taa\npdq\tbb\n")
        });
        assert_eq!(h.finish(), expected);
    }
}
