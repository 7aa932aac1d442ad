//! Plain data types of the engine API. All are `serde`-serialisable so the
//! server can return them as JSON unchanged. Timestamps are Unix milliseconds
//! (UTC); ids are database row ids.

use std::collections::BTreeMap;

use echotrace_signals::signal::SignalType;
use serde::{Deserialize, Serialize};

/// Row id of a bank.
pub type BankId = i64;
/// Row id of a content item in a bank.
pub type ContentId = i64;
/// Row id of one stored signal of a content item.
pub type SignalId = i64;
/// Row id of a recorded match.
pub type MatchId = i64;
/// Row id of a recorded submission (one lookup call).
pub type SubmissionId = i64;

/// Who performed an action, as recorded in the audit log: `key:<id>`,
/// `user:<name>`, `system` or `cli`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Actor(pub String);

impl Actor {
    /// An API key, by its row id.
    pub fn key(id: i64) -> Actor {
        Actor(format!("key:{id}"))
    }
    /// A console user, by username.
    pub fn user(name: &str) -> Actor {
        Actor(format!("user:{name}"))
    }
    /// The engine itself (flood guard, workers).
    pub fn system() -> Actor {
        Actor("system".to_string())
    }
    /// The local command-line tool.
    pub fn cli() -> Actor {
        Actor("cli".to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether a bank's hits are reported (block) or suppress block hits for the
/// same submission (allow: known-benign content such as news footage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BankKind {
    Block,
    Allow,
}

impl BankKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BankKind::Block => "block",
            BankKind::Allow => "allow",
        }
    }
    pub fn parse(s: &str) -> Option<BankKind> {
        match s {
            "block" => Some(BankKind::Block),
            "allow" => Some(BankKind::Allow),
            _ => None,
        }
    }
}

/// Per-signal-type match thresholds of a bank. Only overrides are stored;
/// a missing type uses the engine default ([`crate::default_threshold`]).
/// Distance types (pdq, vpdq) use a maximum Hamming distance, the text type a
/// minimum similarity in 0..=1; exact types (md5, sha256, url, url_sha256)
/// ignore thresholds. Two further keys set the bank's vPDQ share rule (issue
/// 7: "a match when both meet their thresholds: 80 % / 0 % by default, per
/// bank"): [`VPDQ_QUERY_PCT`] (share of the query's frames with a partner,
/// default 80) and [`VPDQ_COMPARED_PCT`] (share of the bank video's frames,
/// default 0), both percentages in 0..=100.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Thresholds(pub BTreeMap<String, f64>);

/// Threshold key: minimum share (%) of the query video's frames that must
/// have a partner frame in the bank video.
pub const VPDQ_QUERY_PCT: &str = "vpdq_query_pct";
/// Threshold key: minimum share (%) of the bank video's frames that must
/// have a partner frame in the query video.
pub const VPDQ_COMPARED_PCT: &str = "vpdq_compared_pct";

/// A bank as returned by the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bank {
    pub id: BankId,
    pub name: String,
    pub kind: BankKind,
    pub enabled: bool,
    pub description: String,
    /// Threshold overrides per signal type wire name.
    pub thresholds: Thresholds,
    /// The bank's current text-equivalence list (`daesh = isis = isil`, one
    /// group per line), or `None`. Applied to both sides: to bank text when
    /// it is added, and to raw query text at lookup.
    pub text_equivalences: Option<String>,
    /// Version id of that list. Every version is kept; each text item
    /// remembers the version it was signed with and keeps matching under it.
    pub text_equivalences_version: Option<i64>,
    /// How many of the bank's text signals were signed under another list
    /// version than the current one (an older list, or none). They still
    /// match raw-text lookups under the version they were signed with; re-add
    /// them to sign them under the current list. (Hashes only are stored, so
    /// they cannot be re-signed automatically.)
    #[serde(default)]
    pub text_items_older_list: u64,
    /// Robust-matching settings (dihedral and window channels; see
    /// [`crate::robust`]).
    #[serde(default)]
    pub matching: crate::robust::MatchingSettings,
    /// File-added originals whose derived hashes the bank holds (what an
    /// automatic `matching.refine` counts).
    #[serde(default)]
    pub held_originals: u64,
    /// Whether lookups refine toward the bank's windows now
    /// (`matching.refine`, or automatic: [`crate::robust::MatchingSettings::refines`]).
    #[serde(default)]
    pub refining: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Input for [`crate::Engine::create_bank`].
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct NewBank {
    pub name: String,
    pub kind: BankKind,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Optional text-equivalence list (see [`Bank::text_equivalences`]);
    /// a parse error is [`crate::EngineError::InvalidInput`] naming the line.
    #[serde(default)]
    pub text_equivalences: Option<String>,
}

/// Partial update for [`crate::Engine::update_bank`]; `None` leaves a field as is.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct BankUpdate {
    pub enabled: Option<bool>,
    pub description: Option<String>,
    pub thresholds: Option<Thresholds>,
    /// A new text-equivalence list (a new version when it differs from the
    /// current one); `Some("")` (blank) removes the list.
    #[serde(default)]
    pub text_equivalences: Option<String>,
}

/// One signal as sent by callers or stored with content: a type and its
/// canonical string value (lowercase hex for hashes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignalValue {
    pub signal_type: SignalType,
    pub value: String,
}

/// A stored signal of a content item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredSignal {
    pub id: SignalId,
    pub signal_type: SignalType,
    pub value: String,
}

/// Why a content item is not matched any more although enabled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quarantine {
    pub reason: String,
    pub at: i64,
}

/// A content item of a bank with its signals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Content {
    pub id: ContentId,
    pub bank_id: BankId,
    pub enabled: bool,
    pub labels: Vec<String>,
    pub note: String,
    pub quarantine: Option<Quarantine>,
    pub signals: Vec<StoredSignal>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What [`crate::Engine::add_item`] did: added `content`, or found it held.
#[derive(Clone, Debug, PartialEq)]
pub struct Added {
    /// The new item, or, when `already_held`, the bank's item that holds
    /// the signals (the lowest id of those holding any).
    pub content: Content,
    /// The bank already held the signals: no item was added.
    pub already_held: bool,
    /// A held item without derived hashes gained the added file's (the
    /// same picture, its stored PDQ / vPDQ the file's): the way a
    /// hash-only item gains the robust channels.
    pub derived_added: bool,
}

/// Where the signals of new content come from.
#[derive(Clone, Debug)]
pub enum ContentSource {
    /// Raw bytes (image, text file…): hashed with the signals content
    /// dispatcher; the bytes themselves are never stored.
    Bytes(Vec<u8>),
    /// Plain text: hashed to a text MinHash signature.
    Text(String),
    /// Signals computed elsewhere, e.g. `{"pdq": "<hex>", "md5": "<hex>"}`.
    Signals(Vec<SignalValue>),
    /// A file hashed beforehand with [`crate::Engine::hash_bank_bytes`] or
    /// [`crate::Engine::hash_bank_file`] (on the caller's hashing pool):
    /// its signals plus the local derived hashes of robust matching and
    /// its pending OCR.
    HashedFile(HashedFile),
}

/// A bank file hashed by [`crate::Engine::hash_bank_bytes`] or
/// [`crate::Engine::hash_bank_file`].
#[derive(Clone, Debug)]
pub struct HashedFile {
    pub signals: Vec<SignalValue>,
    pub(crate) derived: crate::robust::DerivedValues,
    /// OCR on: the image (or a video's key frames) prepared for OCR, read
    /// by [`crate::Engine::add_content`] in the engine's OCR pool.
    pub(crate) ocr: Option<crate::ocr::PendingOcr>,
    /// The bank's equivalence list (version, list) its text was signed
    /// under, and its OCR text will be.
    pub(crate) list: Option<(
        i64,
        std::sync::Arc<echotrace_signals::text::EquivalenceList>,
    )>,
}

/// Input for [`crate::Engine::add_content`].
#[derive(Clone, Debug)]
pub struct NewContent {
    pub source: ContentSource,
    pub labels: Vec<String>,
    pub note: String,
}

/// Partial update for [`crate::Engine::update_content`].
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ContentUpdate {
    pub enabled: Option<bool>,
    pub labels: Option<Vec<String>>,
    pub note: Option<String>,
}

/// Caller context recorded with a submission. Never the raw bytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SubmissionContext {
    /// The caller's own id for the content (post id, upload id…).
    #[serde(default)]
    pub content_id: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub uploader_id: Option<String>,
}

/// Input for [`crate::Engine::lookup`].
#[derive(Clone, Debug, Default)]
pub struct LookupRequest {
    pub signals: Vec<SignalValue>,
    /// Restrict matching to these banks (allow banks among them still
    /// suppress); `None` = every enabled bank.
    pub banks: Option<Vec<BankId>>,
    pub context: SubmissionContext,
}

/// Review state of a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchStatus {
    Pending,
    Confirmed,
    Rejected,
}

impl MatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchStatus::Pending => "pending",
            MatchStatus::Confirmed => "confirmed",
            MatchStatus::Rejected => "rejected",
        }
    }
    pub fn parse(s: &str) -> Option<MatchStatus> {
        match s {
            "pending" => Some(MatchStatus::Pending),
            "confirmed" => Some(MatchStatus::Confirmed),
            "rejected" => Some(MatchStatus::Rejected),
            _ => None,
        }
    }
}

/// One recorded match of a submission against a bank item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatchRecord {
    pub id: MatchId,
    pub submission_id: SubmissionId,
    pub bank_id: BankId,
    pub bank_name: String,
    pub content_id: ContentId,
    pub signal_type: SignalType,
    /// The bank's stored value that matched (for vPDQ its whole frame list,
    /// left out of API answers, audit entries and webhooks unless asked
    /// for: [`MatchRecord::without_frame_lists`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub matched_value: String,
    /// The submitted value that matched it (vPDQ: as `matched_value`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query_value: String,
    /// Hamming distance for pdq, 0 for exact types; `None` for vPDQ (a
    /// video match is two shares, [`VpdqShares`]) and text.
    pub distance: Option<i64>,
    /// Estimated similarity in 0..=1 for text; the query share / 100 for vPDQ.
    pub similarity: Option<f64>,
    /// vPDQ only: both shares and both frame counts.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub vpdq: Option<VpdqShares>,
    pub labels: Vec<String>,
    pub status: MatchStatus,
    pub created_at: i64,
    /// The channel that found the match: `plain`, or for adapted
    /// re-uploads `dihedral`, `border`, `window`, `region`, `part` (see
    /// [`crate::robust`]).
    #[serde(default = "plain_channel")]
    pub channel: String,
    /// How a derived channel matched: query rectangle and variant, bank
    /// window, the plain distance and the channel's threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_detail: Option<crate::robust::ChannelDetail>,
}

fn plain_channel() -> String {
    "plain".to_string()
}

/// How a vPDQ match was decided: the share of each side's frames (quality
/// ≥ 50, deduplicated) with a partner within the frame distance, and how
/// many frames each side has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VpdqShares {
    /// Percentage of the query video's frames with a partner in the bank video.
    pub query_match_pct: f64,
    /// Percentage of the bank video's frames with a partner in the query
    /// (`None` for matches recorded before it was kept).
    pub compared_match_pct: Option<f64>,
    /// Frames in the query's vPDQ signal.
    pub query_frames: usize,
    /// Frames in the bank item's vPDQ signal.
    pub compared_frames: usize,
}

impl MatchRecord {
    /// The record without vPDQ frame lists (`matched_value` and
    /// `query_value` emptied, so they are not serialised): a long video's
    /// list is megabytes, and every match would repeat it. Other signal
    /// types are unchanged.
    pub fn without_frame_lists(mut self) -> MatchRecord {
        if self.signal_type == SignalType::Vpdq {
            self.matched_value.clear();
            self.query_value.clear();
        }
        self
    }
}

/// Answer of [`crate::Engine::lookup`]: block-bank matches not suppressed by
/// an allow bank, plus the allow-bank hits that did the suppressing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LookupResponse {
    /// The recorded submission; `None` when nothing was recorded (a lookup
    /// without hits under `serve --record matches`).
    pub submission_id: Option<SubmissionId>,
    pub matches: Vec<MatchRecord>,
    /// Allow-bank hits (recorded, status pending like any match).
    pub allowed: Vec<MatchRecord>,
    /// How many block matches an allow hit suppressed (not recorded).
    pub suppressed: usize,
}

/// Filter for [`crate::Engine::list_matches`].
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct MatchFilter {
    pub status: Option<MatchStatus>,
    pub bank_id: Option<BankId>,
    pub submission_id: Option<SubmissionId>,
    /// Only ids below this (for paging newest-first).
    pub before_id: Option<MatchId>,
    /// Max rows (default 100, capped at 1000).
    pub limit: Option<u32>,
}

/// A reviewer's verdict on a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Confirm,
    Reject,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Confirm => "confirm",
            Verdict::Reject => "reject",
        }
    }
}

/// A recorded decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub id: i64,
    pub match_id: MatchId,
    pub verdict: Verdict,
    pub note: String,
    pub actor: String,
    pub created_at: i64,
    /// When its `decision` event may be published (undo window).
    pub publish_after: i64,
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub at: i64,
}

/// A persistent outbox event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEvent {
    pub id: i64,
    /// `match`, `decision`, `quarantine`.
    pub event: String,
    pub payload: serde_json::Value,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
}

/// A registered webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    /// HMAC key for [`crate::sign_body`]; returned so the server can sign.
    pub secret: String,
    /// Event names it wants; empty = all.
    pub events: Vec<String>,
    pub enabled: bool,
    pub created_at: i64,
}
