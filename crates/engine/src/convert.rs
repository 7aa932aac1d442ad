//! Store rows → API types. JSON columns are parsed here; a malformed stored
//! value is an internal error, never a panic.

use echotrace_signals::signal::SignalType;
use echotrace_store::{
    ApiKeyRow, AuditRow, BankRow, ContentRow, DecisionRow, MatchRow, OutboxRow, SignalRow, UserRow,
    WebhookRow,
};

use crate::auth::{ApiKey, Role, User};
use crate::error::{EngineError, Result};
use crate::types::*;

fn corrupt(what: &str, detail: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(format!("corrupt stored {what}: {detail}"))
}

pub(crate) fn parse_signal_type(s: &str) -> Result<SignalType> {
    s.parse::<SignalType>()
        .map_err(|e| corrupt("signal type", e))
}

pub(crate) fn parse_thresholds(json: &str) -> Result<Thresholds> {
    serde_json::from_str(json).map_err(|e| corrupt("thresholds", e))
}

pub(crate) fn parse_labels(json: &str) -> Result<Vec<String>> {
    serde_json::from_str(json).map_err(|e| corrupt("labels", e))
}

fn parse_role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| corrupt("role", s))
}

fn parse_json_opt(s: &Option<String>) -> Option<serde_json::Value> {
    s.as_deref().map(|t| {
        serde_json::from_str(t).unwrap_or_else(|_| serde_json::Value::String(t.to_string()))
    })
}

pub(crate) fn bank_from_row(r: &BankRow) -> Result<Bank> {
    Ok(Bank {
        id: r.id,
        name: r.name.clone(),
        kind: BankKind::parse(&r.kind).ok_or_else(|| corrupt("bank kind", &r.kind))?,
        enabled: r.enabled,
        description: r.description.clone(),
        thresholds: parse_thresholds(&r.thresholds)?,
        text_equivalences: r.text_equivalences.clone(),
        text_equivalences_version: r.text_equivalences_id,
        // Filled in by the engine from its index state.
        text_items_older_list: 0,
        matching: crate::robust::MatchingSettings::default(),
        held_originals: 0,
        refining: false,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

pub(crate) fn content_from_rows(r: &ContentRow, signals: &[SignalRow]) -> Result<Content> {
    Ok(Content {
        id: r.id,
        bank_id: r.bank_id,
        enabled: r.enabled,
        labels: parse_labels(&r.labels)?,
        note: r.note.clone(),
        quarantine: if r.quarantined {
            Some(Quarantine {
                reason: r.quarantine_reason.clone().unwrap_or_default(),
                at: r.quarantined_at.unwrap_or(r.updated_at),
            })
        } else {
            None
        },
        signals: signals
            .iter()
            .map(|s| {
                Ok(StoredSignal {
                    id: s.id,
                    signal_type: parse_signal_type(&s.signal_type)?,
                    value: s.value.clone(),
                })
            })
            .collect::<Result<_>>()?,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

pub(crate) fn match_from_row(
    r: &MatchRow,
    bank_name: String,
    labels: Vec<String>,
) -> Result<MatchRecord> {
    Ok(MatchRecord {
        id: r.id,
        submission_id: r.submission_id,
        bank_id: r.bank_id,
        bank_name,
        content_id: r.content_id,
        signal_type: parse_signal_type(&r.signal_type)?,
        matched_value: r.matched_value.clone(),
        query_value: r.query_value.clone(),
        distance: r.distance,
        similarity: r.similarity,
        vpdq: vpdq_shares(r),
        labels,
        status: MatchStatus::parse(&r.status).ok_or_else(|| corrupt("match status", &r.status))?,
        created_at: r.created_at,
        channel: r.channel.clone(),
        channel_detail: r
            .channel_detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok()),
    })
}

/// A vPDQ match's shares and frame counts (`None` for other types).
fn vpdq_shares(r: &MatchRow) -> Option<VpdqShares> {
    if r.signal_type != SignalType::Vpdq.as_str() {
        return None;
    }
    // Stored values are canonical `VPDQSignal` JSON: an array of
    // "hex,quality,timestamp" strings.
    let frames = |v: &str| {
        serde_json::from_str::<Vec<&str>>(v)
            .map(|f| f.len())
            .unwrap_or(0)
    };
    let pct = |s: f64| (s * 100.0 * 1000.0).round() / 1000.0;
    Some(VpdqShares {
        query_match_pct: pct(r.similarity.unwrap_or(0.0)),
        compared_match_pct: r.compared_similarity.map(pct),
        query_frames: frames(&r.query_value),
        compared_frames: frames(&r.matched_value),
    })
}

pub(crate) fn decision_from_row(r: &DecisionRow) -> Result<Decision> {
    let verdict = match r.verdict.as_str() {
        "confirm" => Verdict::Confirm,
        "reject" => Verdict::Reject,
        other => return Err(corrupt("verdict", other)),
    };
    Ok(Decision {
        id: r.id,
        match_id: r.match_id,
        verdict,
        note: r.note.clone(),
        actor: r.actor.clone(),
        created_at: r.created_at,
        publish_after: r.publish_after,
    })
}

pub(crate) fn audit_from_row(r: &AuditRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.id,
        actor: r.actor.clone(),
        action: r.action.clone(),
        target: r.target.clone(),
        before: parse_json_opt(&r.before_json),
        after: parse_json_opt(&r.after_json),
        at: r.at,
    })
}

pub(crate) fn outbox_from_row(r: &OutboxRow) -> Result<OutboxEvent> {
    Ok(OutboxEvent {
        id: r.id,
        event: r.event.clone(),
        payload: serde_json::from_str(&r.payload).map_err(|e| corrupt("outbox payload", e))?,
        attempts: r.attempts,
        next_attempt_at: r.next_attempt_at,
        delivered_at: r.delivered_at,
        failed_at: r.failed_at,
        last_error: r.last_error.clone(),
        created_at: r.created_at,
    })
}

pub(crate) fn api_key_from_row(r: &ApiKeyRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: r.id,
        name: r.name.clone(),
        role: parse_role(&r.role)?,
        created_at: r.created_at,
        revoked_at: r.revoked_at,
    })
}

pub(crate) fn user_from_row(r: &UserRow) -> Result<User> {
    Ok(User {
        id: r.id,
        username: r.username.clone(),
        role: parse_role(&r.role)?,
        created_at: r.created_at,
        disabled_at: r.disabled_at,
    })
}

pub(crate) fn webhook_from_row(r: &WebhookRow) -> Result<Webhook> {
    Ok(Webhook {
        id: r.id,
        url: r.url.clone(),
        secret: r.secret.clone(),
        events: serde_json::from_str(&r.events).map_err(|e| corrupt("webhook events", e))?,
        enabled: r.enabled,
        created_at: r.created_at,
    })
}
