//! Sightings as the API and the console show them: filters (bank item,
//! source, host, platform, matched, time), keyset paging, and the detail of
//! one sighting (signals, bank matches, attributes, its parent chain and
//! its WARC evidence).

use std::collections::HashMap;

use echotrace_store::{SightingQuery, SightingRow, Store};
use serde::Serialize;

use crate::run::{CollectorError, Result};

/// Filters of [`list_sightings`] (all optional; newest first).
#[derive(Clone, Debug, Default)]
pub struct SightingFilter {
    /// Sightings of this URL (compared canonically, `url-canon-v1`).
    pub url: Option<String>,
    /// Sightings that matched this bank item (its variant cluster).
    pub content_id: Option<i64>,
    /// Source name.
    pub source: Option<String>,
    pub host: Option<String>,
    pub platform: Option<String>,
    pub matched: Option<bool>,
    /// First seen at or after (Unix ms).
    pub from: Option<i64>,
    /// First seen before (Unix ms).
    pub to: Option<i64>,
    /// Keyset paging: ids below this.
    pub before: Option<i64>,
    pub limit: u32,
}

/// A sighting's WARC evidence.
#[derive(Clone, Debug, Serialize)]
pub struct EvidenceView {
    pub file: String,
    pub offset: i64,
    pub length: i64,
    pub record_id: String,
}

/// One bank item a sighting matched.
#[derive(Clone, Debug, Serialize)]
pub struct SightingMatchView {
    pub content_id: i64,
    pub bank_id: i64,
    pub signal_type: String,
    pub match_id: Option<i64>,
    pub distance: Option<i64>,
    pub similarity: Option<f64>,
    /// The channel that found it (`plain`, `dihedral`, `border`, …).
    pub channel: String,
    pub found_by: String,
    pub created_at: i64,
}

/// A sighting.
#[derive(Clone, Debug, Serialize)]
pub struct SightingView {
    pub id: i64,
    pub source_id: Option<i64>,
    pub source: Option<String>,
    pub url: String,
    pub url_canonical: String,
    pub host: String,
    pub platform: String,
    pub parent_id: Option<i64>,
    pub content_sha256: String,
    pub media_type: String,
    pub matched: bool,
    pub submission_id: Option<i64>,
    pub evidence: Option<EvidenceView>,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub expires_at: Option<i64>,
    pub matches: Vec<SightingMatchView>,
}

/// A sighting with everything known about it.
#[derive(Clone, Debug, Serialize)]
pub struct SightingDetail {
    #[serde(flatten)]
    pub sighting: SightingView,
    pub attributes: serde_json::Value,
    /// `[{type, value}]`, hashes only.
    pub signals: Vec<serde_json::Value>,
    /// The parents, nearest first (the page or message that linked to it,
    /// the page that linked to that…), at most 10.
    pub parents: Vec<SightingView>,
}

async fn source_names(store: &Store) -> Result<HashMap<i64, String>> {
    Ok(store
        .list_sources()
        .await?
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect())
}

async fn view(
    store: &Store,
    row: SightingRow,
    names: &HashMap<i64, String>,
) -> Result<SightingView> {
    let matches = store
        .sighting_matches(row.id)
        .await?
        .into_iter()
        .map(|m| SightingMatchView {
            content_id: m.content_id,
            bank_id: m.bank_id,
            signal_type: m.signal_type,
            match_id: m.match_id,
            distance: m.distance,
            similarity: m.similarity,
            channel: m.channel,
            found_by: m.found_by,
            created_at: m.created_at,
        })
        .collect();
    Ok(SightingView {
        source: row.source_id.and_then(|id| names.get(&id).cloned()),
        id: row.id,
        source_id: row.source_id,
        url: row.url,
        url_canonical: row.url_canonical,
        host: row.host,
        platform: row.platform,
        parent_id: row.parent_id,
        content_sha256: row.content_sha256,
        media_type: row.media_type,
        matched: row.matched,
        submission_id: row.submission_id,
        evidence: row.warc.map(|w| EvidenceView {
            file: w.file,
            offset: w.offset,
            length: w.length,
            record_id: w.record_id,
        }),
        first_seen_at: row.first_seen_at,
        last_seen_at: row.last_seen_at,
        expires_at: row.expires_at,
        matches,
    })
}

/// Sightings matching `f`, newest first, and the `before` cursor of the
/// next page (when the page was full).
pub async fn list_sightings(
    store: &Store,
    f: &SightingFilter,
) -> Result<(Vec<SightingView>, Option<i64>)> {
    let names = source_names(store).await?;
    let source_id = match &f.source {
        Some(n) => Some(
            names
                .iter()
                .find(|(_, name)| name.as_str() == n.trim())
                .map(|(id, _)| *id)
                .ok_or_else(|| CollectorError::NotFound(format!("source {:?}", n.trim())))?,
        ),
        None => None,
    };
    let limit = f.limit.clamp(1, 1000);
    if let Some(u) = &f.url {
        let canon = echotrace_signals::canonical_url::canonicalize_url(u)
            .map_err(|e| CollectorError::Invalid(format!("url: {e}")))?;
        let mut out = Vec::new();
        for id in store.sightings_at_url(&canon.sha256, 10_000).await? {
            let Some(row) = store.get_sighting(id).await? else {
                continue;
            };
            let keep = f.before.is_none_or(|b| row.id < b)
                && source_id.is_none_or(|s| row.source_id == Some(s))
                && f.matched.is_none_or(|m| row.matched == m)
                && f.from.is_none_or(|t| row.first_seen_at >= t)
                && f.to.is_none_or(|t| row.first_seen_at < t);
            if keep {
                out.push(view(store, row, &names).await?);
            }
            if out.len() >= limit as usize {
                break;
            }
        }
        let next = (out.len() == limit as usize)
            .then(|| out.last().map(|r| r.id))
            .flatten();
        return Ok((out, next));
    }
    let rows = store
        .list_sightings(&SightingQuery {
            content_id: f.content_id,
            source_id,
            host: f.host.as_ref().map(|h| h.trim().to_ascii_lowercase()),
            platform: f.platform.as_ref().map(|p| p.trim().to_string()),
            matched: f.matched,
            seen_from: f.from,
            seen_to: f.to,
            before_id: f.before,
            limit: i64::from(limit),
        })
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(view(store, r, &names).await?);
    }
    Ok((out, next))
}

/// One sighting in full.
pub async fn sighting_detail(store: &Store, id: i64) -> Result<SightingDetail> {
    let names = source_names(store).await?;
    let row = store
        .get_sighting(id)
        .await?
        .ok_or_else(|| CollectorError::NotFound(format!("sighting {id}")))?;
    let attributes = serde_json::from_str(&store.sighting_attributes(id).await?)
        .unwrap_or(serde_json::Value::Null);
    let signals = store
        .sighting_signals(id)
        .await?
        .into_iter()
        .map(|s| serde_json::json!({"type": s.signal_type, "value": s.value}))
        .collect();
    let mut parents = Vec::new();
    let mut next = row.parent_id;
    while let Some(pid) = next {
        if parents.len() >= 10 || pid == id {
            break;
        }
        match store.get_sighting(pid).await? {
            Some(p) => {
                next = p.parent_id;
                parents.push(view(store, p, &names).await?);
            }
            None => break,
        }
    }
    Ok(SightingDetail {
        sighting: view(store, row, &names).await?,
        attributes,
        signals,
        parents,
    })
}
