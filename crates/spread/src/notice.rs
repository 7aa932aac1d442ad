//! Takedown notices: an alert to a platform about one or more sightings.
//!
//! echotrace never sends email or calls platform APIs. A notice is
//! generated (a text body citing each URL, when it was seen, what it
//! matched and its WARC evidence record), recorded with its audit entry and
//! a `notice.created` outbox event in one transaction — operators wire real
//! delivery to that webhook — and exported as text or JSON. The platform's
//! response (`removed`, `rejected`, `no_response`) is recorded later.

use std::collections::BTreeMap;

use echotrace_engine::Actor;
use echotrace_store::{NewAudit, NewNotice, NoticeQuery, NoticeRow, SightingRow, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Result, SpreadError};
use crate::time::fmt_ts;

/// Most sightings one notice may cover.
pub const MAX_NOTICE_SIGHTINGS: usize = 1000;

/// How a notice reaches the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Email text to the platform's abuse contact.
    Email,
    /// The platform's reporting API.
    Api,
    /// A notice under Article 16 of the EU Digital Services Act.
    DsaArt16,
    /// A removal order under the EU TCO Regulation (2021/784).
    TcoOrder,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Api => "api",
            Channel::DsaArt16 => "dsa_art16",
            Channel::TcoOrder => "tco_order",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        [
            Channel::Email,
            Channel::Api,
            Channel::DsaArt16,
            Channel::TcoOrder,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    fn title(self) -> &'static str {
        match self {
            Channel::Email => "Takedown request (email)",
            Channel::Api => "Takedown request (platform API)",
            Channel::DsaArt16 => "Notice under Article 16 of the Digital Services Act",
            Channel::TcoOrder => "Removal order under Regulation (EU) 2021/784 (TCO)",
        }
    }
}

/// The platform's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    NoResponse,
    Removed,
    Rejected,
}

impl Response {
    pub fn as_str(self) -> &'static str {
        match self {
            Response::NoResponse => "no_response",
            Response::Removed => "removed",
            Response::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Response> {
        [Response::NoResponse, Response::Removed, Response::Rejected]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// What a caller asks for.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeRequest {
    /// Defaults to the sightings' platform (they must share one).
    #[serde(default)]
    pub platform: Option<String>,
    pub channel: String,
    #[serde(default)]
    pub reference: String,
    pub sighting_ids: Vec<i64>,
    /// When it was (or will be) sent, Unix ms; default now.
    #[serde(default)]
    pub sent_at: Option<i64>,
    #[serde(default)]
    pub note: String,
}

/// One covered sighting, as exported.
#[derive(Clone, Debug, Serialize)]
pub struct NoticeItem {
    pub sighting_id: i64,
    pub url: String,
    pub host: String,
    pub platform: String,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub content_sha256: String,
    /// Liveness status when exported (`live`, `removal_pending`,
    /// `removed`, or `untracked`).
    pub status: String,
    pub matched: Vec<NoticeMatch>,
    pub evidence: Option<Evidence>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NoticeMatch {
    pub content_id: i64,
    pub bank: String,
    pub labels: Vec<String>,
    pub signal_type: String,
    pub distance: Option<i64>,
    pub similarity: Option<f64>,
}

/// The WARC record a sighting's evidence lives in.
#[derive(Clone, Debug, Serialize)]
pub struct Evidence {
    pub warc_file: String,
    pub offset: i64,
    pub length: i64,
    pub record_id: String,
}

/// A notice with its sightings.
#[derive(Clone, Debug, Serialize)]
pub struct Notice {
    pub id: i64,
    pub platform: String,
    pub channel: String,
    pub reference: String,
    pub sent_at: i64,
    pub response: String,
    pub responded_at: Option<i64>,
    pub note: String,
    pub created_by: String,
    pub created_at: i64,
    pub sightings: Vec<NoticeItem>,
    /// The generated text, as recorded.
    pub body: String,
}

/// The platform of a sighting as reports count it: its platform, or its
/// host when the operator's table does not know the host.
pub fn platform_of(s: &SightingRow) -> String {
    if s.platform.is_empty() {
        s.host.clone()
    } else {
        s.platform.clone()
    }
}

fn field_len(name: &str, v: &str, max: usize) -> Result<()> {
    if v.len() > max {
        return Err(SpreadError::InvalidInput(format!(
            "\"{name}\" is longer than {max} bytes"
        )));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(SpreadError::InvalidInput(format!(
            "\"{name}\" contains control characters"
        )));
    }
    Ok(())
}

async fn items(store: &Store, ids: &[i64]) -> Result<Vec<NoticeItem>> {
    let mut banks: BTreeMap<i64, String> = BTreeMap::new();
    let mut out = Vec::with_capacity(ids.len());
    let live: BTreeMap<i64, String> = store
        .liveness_of(ids)
        .await?
        .into_iter()
        .map(|l| (l.sighting_id, l.status))
        .collect();
    for &id in ids {
        let s = store
            .get_sighting(id)
            .await?
            .ok_or_else(|| SpreadError::NotFound(format!("sighting {id}")))?;
        let mut matched = Vec::new();
        for m in store.sighting_matches(id).await? {
            if let std::collections::btree_map::Entry::Vacant(e) = banks.entry(m.bank_id) {
                let name = store
                    .get_bank(m.bank_id)
                    .await?
                    .map(|b| b.name)
                    .unwrap_or_else(|| format!("bank {} (deleted)", m.bank_id));
                e.insert(name);
            }
            let labels = match store.get_content(m.content_id).await? {
                Some(c) => serde_json::from_str(&c.labels).unwrap_or_default(),
                None => Vec::new(),
            };
            matched.push(NoticeMatch {
                content_id: m.content_id,
                bank: banks.get(&m.bank_id).cloned().unwrap_or_default(),
                labels,
                signal_type: m.signal_type,
                distance: m.distance,
                similarity: m.similarity,
            });
        }
        out.push(NoticeItem {
            sighting_id: s.id,
            platform: platform_of(&s),
            url: s.url,
            host: s.host,
            first_seen_at: s.first_seen_at,
            last_seen_at: s.last_seen_at,
            content_sha256: s.content_sha256,
            status: live.get(&id).cloned().unwrap_or_else(|| "untracked".into()),
            matched,
            evidence: s.warc.map(|w| Evidence {
                warc_file: w.file,
                offset: w.offset,
                length: w.length,
                record_id: w.record_id,
            }),
        });
    }
    Ok(out)
}

/// The generated text of a notice.
fn render_body(
    channel: Channel,
    platform: &str,
    reference: &str,
    sent_at: i64,
    created_by: &str,
    note: &str,
    items: &[NoticeItem],
) -> String {
    let mut t = String::new();
    t.push_str(channel.title());
    t.push_str("\n\n");
    t.push_str(&format!("Platform: {platform}\n"));
    if !reference.is_empty() {
        t.push_str(&format!("Reference: {reference}\n"));
    }
    t.push_str(&format!("Date: {}\n", fmt_ts(sent_at)));
    t.push_str(&format!("Submitted by: {created_by}\n\n"));
    t.push_str(
        "The content at the locations below matches items in hash banks of known terrorist \
         or violent-extremist content. Each location was fetched and hashed; the evidence \
         record of each fetch is cited. We ask you to review and remove it under your terms \
         of service and applicable law.\n",
    );
    if !note.is_empty() {
        t.push_str(&format!("\n{note}\n"));
    }
    t.push_str(&format!("\nLocations ({}):\n", items.len()));
    for (i, it) in items.iter().enumerate() {
        t.push_str(&format!("\n{}. {}\n", i + 1, it.url));
        t.push_str(&format!(
            "   first seen {}; last seen {}\n",
            fmt_ts(it.first_seen_at),
            fmt_ts(it.last_seen_at)
        ));
        if !it.content_sha256.is_empty() {
            t.push_str(&format!(
                "   SHA-256 of the content seen: {}\n",
                it.content_sha256
            ));
        }
        for m in &it.matched {
            let how = match (m.distance, m.similarity) {
                (Some(d), _) => format!(" (distance {d})"),
                (None, Some(s)) => format!(" (similarity {s:.2})"),
                _ => String::new(),
            };
            let labels = if m.labels.is_empty() {
                String::new()
            } else {
                format!(", labels: {}", m.labels.join(", "))
            };
            t.push_str(&format!(
                "   matched bank item {} in bank \"{}\" by {}{how}{labels}\n",
                m.content_id, m.bank, m.signal_type
            ));
        }
        match &it.evidence {
            Some(e) => t.push_str(&format!(
                "   evidence: WARC {} offset {} length {}, record {}\n",
                e.warc_file, e.offset, e.length, e.record_id
            )),
            None => t.push_str("   evidence: hashes only (no WARC record)\n"),
        }
    }
    t.push_str(
        "\nThis notice was generated by echotrace. The information in it is accurate to the \
         best of the sender's knowledge.\n",
    );
    t
}

/// Validate, generate and record a notice (see the module doc).
pub async fn create(store: &Store, actor: &Actor, req: NoticeRequest) -> Result<Notice> {
    let channel = Channel::parse(req.channel.trim()).ok_or_else(|| {
        SpreadError::InvalidInput(
            "\"channel\" must be one of email, api, dsa_art16, tco_order".into(),
        )
    })?;
    let mut ids = req.sighting_ids.clone();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Err(SpreadError::InvalidInput(
            "\"sighting_ids\" must name at least one sighting".into(),
        ));
    }
    if ids.len() > MAX_NOTICE_SIGHTINGS {
        return Err(SpreadError::InvalidInput(format!(
            "\"sighting_ids\" may name at most {MAX_NOTICE_SIGHTINGS} sightings"
        )));
    }
    let reference = req.reference.trim().to_string();
    field_len("reference", &reference, 500)?;
    let note = req.note.trim().to_string();
    field_len("note", &note, 5000)?;
    let now = echotrace_store::now_ms();
    let sent_at = req.sent_at.unwrap_or(now);
    if sent_at < 0 || sent_at > now + 86_400_000 {
        return Err(SpreadError::InvalidInput(
            "\"sent_at\" must be Unix milliseconds, at most a day ahead".into(),
        ));
    }
    let items = match items(store, &ids).await {
        Err(SpreadError::NotFound(what)) => {
            return Err(SpreadError::InvalidInput(format!(
                "\"sighting_ids\": {what} does not exist"
            )))
        }
        other => other?,
    };
    let platform = match req.platform.as_deref().map(str::trim) {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => {
            let mut ps: Vec<&str> = items.iter().map(|i| i.platform.as_str()).collect();
            ps.sort_unstable();
            ps.dedup();
            if ps.len() != 1 {
                return Err(SpreadError::InvalidInput(format!(
                    "the sightings are on {} platforms ({}); give \"platform\"",
                    ps.len(),
                    ps.join(", ")
                )));
            }
            ps[0].to_string()
        }
    };
    field_len("platform", &platform, 200)?;
    let body = render_body(
        channel,
        &platform,
        &reference,
        sent_at,
        actor.as_str(),
        &note,
        &items,
    );
    let mut tx = store.write().await?;
    let row = tx
        .insert_notice(
            &NewNotice {
                platform: &platform,
                channel: channel.as_str(),
                reference: &reference,
                sent_at,
                note: &note,
                body: &body,
                created_by: actor.as_str(),
            },
            &ids,
        )
        .await?;
    let payload = json!({
        "notice_id": row.id,
        "platform": row.platform,
        "channel": row.channel,
        "reference": row.reference,
        "sent_at": row.sent_at,
        "sightings": items.iter().map(|i| json!({
            "sighting_id": i.sighting_id,
            "url": i.url,
            "evidence": i.evidence,
        })).collect::<Vec<_>>(),
    });
    tx.enqueue("notice.created", &payload.to_string(), now)
        .await?;
    tx.audit(&NewAudit {
        actor: actor.as_str(),
        action: "notice.create",
        target: &format!("notice:{}", row.id),
        before: None,
        after: Some(
            json!({"platform": row.platform, "channel": row.channel,
                   "reference": row.reference, "sightings": ids})
            .to_string(),
        ),
    })
    .await?;
    tx.commit().await?;
    Ok(assemble(row, items))
}

fn assemble(row: NoticeRow, sightings: Vec<NoticeItem>) -> Notice {
    Notice {
        id: row.id,
        platform: row.platform,
        channel: row.channel,
        reference: row.reference,
        sent_at: row.sent_at,
        response: row.response,
        responded_at: row.responded_at,
        note: row.note,
        created_by: row.created_by,
        created_at: row.created_at,
        sightings,
        body: row.body,
    }
}

/// One notice with its sightings (as they are now).
pub async fn get(store: &Store, id: i64) -> Result<Notice> {
    let row = store
        .get_notice(id)
        .await?
        .ok_or_else(|| SpreadError::NotFound(format!("notice {id}")))?;
    let ids = store.notice_sightings(id).await?;
    let items = items(store, &ids).await?;
    Ok(assemble(row, items))
}

/// Notices, newest first (without their sightings).
pub async fn list(store: &Store, q: &NoticeQuery) -> Result<Vec<NoticeRow>> {
    Ok(store.list_notices(q).await?)
}

/// A notice row as JSON (lists, responses).
pub fn row_json(n: &NoticeRow) -> serde_json::Value {
    json!({
        "id": n.id, "platform": n.platform, "channel": n.channel, "reference": n.reference,
        "sent_at": n.sent_at, "response": n.response, "responded_at": n.responded_at,
        "note": n.note, "created_by": n.created_by, "created_at": n.created_at,
    })
}

/// Record the platform's response.
pub async fn respond(
    store: &Store,
    actor: &Actor,
    id: i64,
    response: &str,
    responded_at: Option<i64>,
) -> Result<NoticeRow> {
    let r = Response::parse(response.trim()).ok_or_else(|| {
        SpreadError::InvalidInput(
            "\"response\" must be one of removed, rejected, no_response".into(),
        )
    })?;
    let at = match r {
        Response::NoResponse => None,
        _ => Some(responded_at.unwrap_or_else(echotrace_store::now_ms)),
    };
    let mut tx = store.write().await?;
    let row = tx.set_notice_response(id, r.as_str(), at).await?;
    tx.audit(&NewAudit {
        actor: actor.as_str(),
        action: "notice.respond",
        target: &format!("notice:{id}"),
        before: None,
        after: Some(json!({"response": r.as_str(), "responded_at": at}).to_string()),
    })
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Export formats of a notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Text,
    Json,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<ExportFormat> {
        match s {
            "text" | "txt" => Some(ExportFormat::Text),
            "json" => Some(ExportFormat::Json),
            _ => None,
        }
    }
}

/// The notice as text (its recorded body) or JSON (everything, with the
/// evidence references of each sighting).
pub fn export(n: &Notice, format: ExportFormat) -> String {
    match format {
        ExportFormat::Text => n.body.clone(),
        ExportFormat::Json => serde_json::to_string_pretty(n).unwrap_or_else(|_| "{}".into()),
    }
}
