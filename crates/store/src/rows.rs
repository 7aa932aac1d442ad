//! Row structs, one per table, decoded from `AnyRow` by column name.
//! Flags are stored as 0/1 integers and exposed as `bool`; JSON columns are
//! exposed as their raw text (the engine owns their shape).

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{get_i64, Result, StoreError};

pub(crate) fn get_str(row: &AnyRow, col: &str) -> Result<String> {
    row.try_get::<String, _>(col)
        .map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}

pub(crate) fn get_opt_str(row: &AnyRow, col: &str) -> Result<Option<String>> {
    row.try_get::<Option<String>, _>(col)
        .map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}

pub(crate) fn get_opt_i64(row: &AnyRow, col: &str) -> Result<Option<i64>> {
    row.try_get::<Option<i64>, _>(col)
        .map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}

pub(crate) fn get_opt_f64(row: &AnyRow, col: &str) -> Result<Option<f64>> {
    row.try_get::<Option<f64>, _>(col)
        .map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}

pub(crate) fn get_bool(row: &AnyRow, col: &str) -> Result<bool> {
    Ok(get_i64(row, col)? != 0)
}

/// A column added by a later migration: `None` when the query did not
/// select it (so older or narrower queries keep decoding).
fn get_added_i64(row: &AnyRow, col: &str) -> Result<Option<i64>> {
    match row.try_get::<Option<i64>, _>(col) {
        Ok(v) => Ok(v),
        Err(sqlx::Error::ColumnNotFound(_)) => Ok(None),
        Err(e) => Err(StoreError::Corrupt(format!("column {col}: {e}"))),
    }
}

fn get_added_str(row: &AnyRow, col: &str) -> Result<Option<String>> {
    match row.try_get::<Option<String>, _>(col) {
        Ok(v) => Ok(v),
        Err(sqlx::Error::ColumnNotFound(_)) => Ok(None),
        Err(e) => Err(StoreError::Corrupt(format!("column {col}: {e}"))),
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BankRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    pub description: String,
    pub thresholds: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Current text-equivalence list version (`bank_text_equivalences.id`).
    pub text_equivalences_id: Option<i64>,
    /// Its body, as the curator wrote it.
    pub text_equivalences: Option<String>,
}

impl BankRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(BankRow {
            id: get_i64(r, "id")?,
            name: get_str(r, "name")?,
            kind: get_str(r, "kind")?,
            enabled: get_bool(r, "enabled")?,
            description: get_str(r, "description")?,
            thresholds: get_str(r, "thresholds")?,
            created_at: get_i64(r, "created_at")?,
            updated_at: get_i64(r, "updated_at")?,
            text_equivalences_id: get_added_i64(r, "text_equivalences_id")?,
            text_equivalences: get_added_str(r, "text_equivalences")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ContentRow {
    pub id: i64,
    pub bank_id: i64,
    pub enabled: bool,
    pub labels: String,
    pub note: String,
    pub quarantined: bool,
    pub quarantine_reason: Option<String>,
    pub quarantined_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ContentRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(ContentRow {
            id: get_i64(r, "id")?,
            bank_id: get_i64(r, "bank_id")?,
            enabled: get_bool(r, "enabled")?,
            labels: get_str(r, "labels")?,
            note: get_str(r, "note")?,
            quarantined: get_bool(r, "quarantined")?,
            quarantine_reason: get_opt_str(r, "quarantine_reason")?,
            quarantined_at: get_opt_i64(r, "quarantined_at")?,
            created_at: get_i64(r, "created_at")?,
            updated_at: get_i64(r, "updated_at")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SignalRow {
    pub id: i64,
    pub content_id: i64,
    pub bank_id: i64,
    pub signal_type: String,
    pub value: String,
    pub created_at: i64,
    /// Text-equivalence list version a `text_minhash` was signed with.
    pub equivalences_id: Option<i64>,
}

impl SignalRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(SignalRow {
            id: get_i64(r, "id")?,
            content_id: get_i64(r, "content_id")?,
            bank_id: get_i64(r, "bank_id")?,
            signal_type: get_str(r, "signal_type")?,
            value: get_str(r, "value")?,
            created_at: get_i64(r, "created_at")?,
            equivalences_id: get_added_i64(r, "equivalences_id")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SubmissionRow {
    pub id: i64,
    pub actor: String,
    pub content_ref: Option<String>,
    pub url: Option<String>,
    pub uploader_id: Option<String>,
    pub signals: String,
    pub match_count: i64,
    pub created_at: i64,
}

impl SubmissionRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(SubmissionRow {
            id: get_i64(r, "id")?,
            actor: get_str(r, "actor")?,
            content_ref: get_opt_str(r, "content_ref")?,
            url: get_opt_str(r, "url")?,
            uploader_id: get_opt_str(r, "uploader_id")?,
            signals: get_str(r, "signals")?,
            match_count: get_i64(r, "match_count")?,
            created_at: get_i64(r, "created_at")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct MatchRow {
    pub id: i64,
    pub submission_id: i64,
    pub bank_id: i64,
    pub content_id: i64,
    pub signal_id: Option<i64>,
    pub signal_type: String,
    pub matched_value: String,
    pub query_value: String,
    pub distance: Option<i64>,
    pub similarity: Option<f64>,
    /// vPDQ: the share (0..1) of the bank video's frames with a partner.
    pub compared_similarity: Option<f64>,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Matching channel (migration 0030; `plain` before it).
    pub channel: String,
    /// JSON detail of a derived-channel match.
    pub channel_detail: Option<String>,
}

impl MatchRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(MatchRow {
            id: get_i64(r, "id")?,
            submission_id: get_i64(r, "submission_id")?,
            bank_id: get_i64(r, "bank_id")?,
            content_id: get_i64(r, "content_id")?,
            signal_id: get_opt_i64(r, "signal_id")?,
            signal_type: get_str(r, "signal_type")?,
            matched_value: get_str(r, "matched_value")?,
            query_value: get_str(r, "query_value")?,
            distance: get_opt_i64(r, "distance")?,
            similarity: get_opt_f64(r, "similarity")?,
            compared_similarity: get_opt_f64(r, "compared_similarity")?,
            status: get_str(r, "status")?,
            created_at: get_i64(r, "created_at")?,
            updated_at: get_i64(r, "updated_at")?,
            channel: get_added_str(r, "channel")?.unwrap_or_else(|| "plain".into()),
            channel_detail: get_added_str(r, "channel_detail")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRow {
    pub id: i64,
    pub match_id: i64,
    pub verdict: String,
    pub note: String,
    pub actor: String,
    pub created_at: i64,
    pub publish_after: i64,
}

impl DecisionRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(DecisionRow {
            id: get_i64(r, "id")?,
            match_id: get_i64(r, "match_id")?,
            verdict: get_str(r, "verdict")?,
            note: get_str(r, "note")?,
            actor: get_str(r, "actor")?,
            created_at: get_i64(r, "created_at")?,
            publish_after: get_i64(r, "publish_after")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub event: String,
    pub payload: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
}

impl OutboxRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(OutboxRow {
            id: get_i64(r, "id")?,
            event: get_str(r, "event")?,
            payload: get_str(r, "payload")?,
            attempts: get_i64(r, "attempts")?,
            next_attempt_at: get_i64(r, "next_attempt_at")?,
            delivered_at: get_opt_i64(r, "delivered_at")?,
            failed_at: get_opt_i64(r, "failed_at")?,
            last_error: get_opt_str(r, "last_error")?,
            created_at: get_i64(r, "created_at")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AuditRow {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub at: i64,
}

impl AuditRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(AuditRow {
            id: get_i64(r, "id")?,
            actor: get_str(r, "actor")?,
            action: get_str(r, "action")?,
            target: get_str(r, "target")?,
            before_json: get_opt_str(r, "before_json")?,
            after_json: get_opt_str(r, "after_json")?,
            at: get_i64(r, "at")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyRow {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub key_hash: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl ApiKeyRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(ApiKeyRow {
            id: get_i64(r, "id")?,
            name: get_str(r, "name")?,
            role: get_str(r, "role")?,
            key_hash: get_str(r, "key_hash")?,
            created_at: get_i64(r, "created_at")?,
            revoked_at: get_opt_i64(r, "revoked_at")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

impl UserRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(UserRow {
            id: get_i64(r, "id")?,
            username: get_str(r, "username")?,
            password_hash: get_str(r, "password_hash")?,
            role: get_str(r, "role")?,
            created_at: get_i64(r, "created_at")?,
            disabled_at: get_opt_i64(r, "disabled_at")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookRow {
    pub id: i64,
    pub url: String,
    pub secret: String,
    pub events: String,
    pub enabled: bool,
    pub created_at: i64,
}

impl WebhookRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(WebhookRow {
            id: get_i64(r, "id")?,
            url: get_str(r, "url")?,
            secret: get_str(r, "secret")?,
            events: get_str(r, "events")?,
            enabled: get_bool(r, "enabled")?,
            created_at: get_i64(r, "created_at")?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChangeRow {
    pub id: i64,
    pub entity: String,
    pub entity_id: i64,
    pub op: String,
    pub at: i64,
}

impl ChangeRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(ChangeRow {
            id: get_i64(r, "id")?,
            entity: get_str(r, "entity")?,
            entity_id: get_i64(r, "entity_id")?,
            op: get_str(r, "op")?,
            at: get_i64(r, "at")?,
        })
    }
}

/// One version of a bank's text-equivalence list.
#[derive(Clone, Debug, PartialEq)]
pub struct TextEquivalencesRow {
    pub id: i64,
    pub bank_id: i64,
    /// SHA-256 hex of the body.
    pub digest: String,
    pub body: String,
    pub created_at: i64,
}

impl TextEquivalencesRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(TextEquivalencesRow {
            id: get_i64(r, "id")?,
            bank_id: get_i64(r, "bank_id")?,
            digest: get_str(r, "digest")?,
            body: get_str(r, "body")?,
            created_at: get_i64(r, "created_at")?,
        })
    }
}
