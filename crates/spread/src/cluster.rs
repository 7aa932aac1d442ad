//! Variant clusters: a bank item and every sighting that matched it, by
//! any signal type, with its spread over time — first seen, each host and
//! platform reached, removals, the same URL coming back, and new copies
//! appearing after a removal (resurfacing).

use std::collections::{BTreeMap, HashMap};

use echotrace_store::{ClusterSummary, LivenessRow, SightingQuery, Store};
use serde::Serialize;

use crate::error::{Result, SpreadError};
use crate::RemovalJson;

/// Most sightings one cluster view loads.
pub const CLUSTER_SIGHTINGS_LIMIT: i64 = 5000;

/// One cluster in a list.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterListItem {
    pub content_id: i64,
    pub bank_id: Option<i64>,
    pub bank: Option<String>,
    pub labels: Vec<String>,
    pub sightings: i64,
    pub hosts: i64,
    pub platforms: i64,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub removed: i64,
    pub resurfaced: i64,
}

/// One sighting of a cluster with its liveness.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterSighting {
    pub sighting_id: i64,
    pub url: String,
    pub host: String,
    pub platform: String,
    pub media_type: String,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    /// How it matched the item: signal types with distance/similarity.
    pub matched_by: Vec<MatchedBy>,
    /// `untracked` until the checker enrolls it.
    pub status: String,
    /// The last check's verdict.
    pub state: String,
    pub checks: i64,
    pub last_checked_at: Option<i64>,
    pub last_live_at: Option<i64>,
    pub next_check_at: Option<i64>,
    pub removals: Vec<RemovalJson>,
    pub notices: Vec<i64>,
    pub warc_record_id: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MatchedBy {
    pub signal_type: String,
    pub distance: Option<i64>,
    pub similarity: Option<f64>,
    pub found_by: String,
}

/// What happened, when.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TimelineEvent {
    pub at: i64,
    /// `first_seen`, `new_host`, `new_platform`, `removed`, `resurfaced`
    /// (the same URL back after a confirmed removal), `reupload` (a new
    /// copy first seen after another copy was removed), `notice`.
    pub kind: String,
    pub sighting_id: Option<i64>,
    pub detail: String,
}

/// A cluster with its sightings and timeline.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterView {
    #[serde(flatten)]
    pub summary: ClusterListItem,
    pub sightings: Vec<ClusterSighting>,
    /// Host → (first reached, sightings).
    pub hosts: Vec<(String, i64, i64)>,
    pub platforms: Vec<(String, i64, i64)>,
    pub timeline: Vec<TimelineEvent>,
    /// More sightings exist than were loaded.
    pub truncated: bool,
}

async fn list_item(store: &Store, s: ClusterSummary) -> Result<ClusterListItem> {
    let content = store.get_content(s.content_id).await?;
    let (bank_id, bank, labels) = match content {
        Some(c) => {
            let bank = store.get_bank(c.bank_id).await?.map(|b| b.name);
            (
                Some(c.bank_id),
                bank,
                serde_json::from_str(&c.labels).unwrap_or_default(),
            )
        }
        None => (None, None, Vec::new()),
    };
    Ok(ClusterListItem {
        content_id: s.content_id,
        bank_id,
        bank,
        labels,
        sightings: s.sightings,
        hosts: s.hosts,
        platforms: s.platforms,
        first_seen_at: s.first_seen_at,
        last_seen_at: s.last_seen_at,
        removed: s.removed,
        resurfaced: s.resurfaced,
    })
}

/// The largest clusters (most sightings first).
pub async fn list(store: &Store, limit: i64) -> Result<Vec<ClusterListItem>> {
    let mut out = Vec::new();
    for s in store.cluster_summaries(limit.clamp(1, 1000)).await? {
        out.push(list_item(store, s).await?);
    }
    Ok(out)
}

/// One cluster (404 when no sighting matched the item).
pub async fn get(store: &Store, content_id: i64) -> Result<ClusterView> {
    let summary = store
        .cluster_summary(content_id)
        .await?
        .ok_or_else(|| SpreadError::NotFound(format!("no sightings of bank item {content_id}")))?;
    let summary = list_item(store, summary).await?;
    let rows = store
        .list_sightings(&SightingQuery {
            content_id: Some(content_id),
            limit: CLUSTER_SIGHTINGS_LIMIT + 1,
            ..SightingQuery::default()
        })
        .await?;
    let truncated = rows.len() as i64 > CLUSTER_SIGHTINGS_LIMIT;
    let mut rows: Vec<_> = rows
        .into_iter()
        .take(CLUSTER_SIGHTINGS_LIMIT as usize)
        .collect();
    rows.sort_by_key(|s| (s.first_seen_at, s.id));
    let ids: Vec<i64> = rows.iter().map(|s| s.id).collect();
    let live: HashMap<i64, LivenessRow> = store
        .liveness_of(&ids)
        .await?
        .into_iter()
        .map(|l| (l.sighting_id, l))
        .collect();
    let mut matches: HashMap<i64, Vec<MatchedBy>> = HashMap::new();
    for m in store.cluster_matches(content_id).await? {
        matches.entry(m.sighting_id).or_default().push(MatchedBy {
            signal_type: m.signal_type,
            distance: m.distance,
            similarity: m.similarity,
            found_by: m.found_by,
        });
    }
    let mut sightings = Vec::with_capacity(rows.len());
    let mut timeline = Vec::new();
    let mut hosts: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut platforms: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut notice_events: BTreeMap<i64, (i64, String)> = BTreeMap::new();
    for s in &rows {
        let platform = crate::notice::platform_of(s);
        let l = live.get(&s.id);
        let removals = if l.is_some_and(|l| l.removals > 0) {
            store.removals_of(s.id).await?
        } else {
            Vec::new()
        };
        let notices = store
            .list_notices(&echotrace_store::NoticeQuery {
                sighting_id: Some(s.id),
                limit: 100,
                ..Default::default()
            })
            .await?;
        for n in &notices {
            notice_events.insert(n.id, (n.sent_at, n.platform.clone()));
        }
        timeline.push(TimelineEvent {
            at: s.first_seen_at,
            kind: "first_seen".into(),
            sighting_id: Some(s.id),
            detail: s.url.clone(),
        });
        for (map, key, kind) in [
            (&mut hosts, s.host.clone(), "new_host"),
            (&mut platforms, platform.clone(), "new_platform"),
        ] {
            let e = map.entry(key.clone()).or_insert((s.first_seen_at, 0));
            if e.1 == 0 {
                timeline.push(TimelineEvent {
                    at: s.first_seen_at,
                    kind: kind.into(),
                    sighting_id: Some(s.id),
                    detail: key,
                });
            }
            e.1 += 1;
        }
        for r in &removals {
            timeline.push(TimelineEvent {
                at: r.confirmed_at,
                kind: "removed".into(),
                sighting_id: Some(s.id),
                detail: format!(
                    "{} (went down between {} and {})",
                    r.removed_state,
                    crate::time::fmt_ts(r.last_live_at),
                    crate::time::fmt_ts(r.first_removed_at)
                ),
            });
            if let Some(at) = r.resurfaced_at {
                timeline.push(TimelineEvent {
                    at,
                    kind: "resurfaced".into(),
                    sighting_id: Some(s.id),
                    detail: format!("{} is back after removal {}", s.url, r.episode),
                });
            }
        }
        sightings.push(ClusterSighting {
            sighting_id: s.id,
            url: s.url.clone(),
            host: s.host.clone(),
            platform,
            media_type: s.media_type.clone(),
            first_seen_at: s.first_seen_at,
            last_seen_at: s.last_seen_at,
            matched_by: matches.remove(&s.id).unwrap_or_default(),
            status: l.map_or_else(|| "untracked".to_string(), |l| l.status.clone()),
            state: l.map_or_else(|| "unchecked".to_string(), |l| l.state.clone()),
            checks: l.map_or(0, |l| l.checks),
            last_checked_at: l.and_then(|l| l.last_checked_at),
            last_live_at: l.map(|l| l.last_live_at),
            next_check_at: l.and_then(|l| l.next_check_at),
            removals: removals.iter().map(RemovalJson::from).collect(),
            notices: notices.iter().map(|n| n.id).collect(),
            warc_record_id: s.warc.as_ref().map(|w| w.record_id.clone()),
        });
    }
    // Re-uploads: copies first seen after another copy's confirmed removal.
    let first_removal = sightings
        .iter()
        .flat_map(|s| s.removals.iter().map(|r| r.confirmed_at))
        .min();
    if let Some(t) = first_removal {
        for s in sightings.iter().filter(|s| s.first_seen_at > t) {
            timeline.push(TimelineEvent {
                at: s.first_seen_at,
                kind: "reupload".into(),
                sighting_id: Some(s.sighting_id),
                detail: format!("new copy at {} after a removal", s.host),
            });
        }
    }
    for (id, (at, platform)) in notice_events {
        timeline.push(TimelineEvent {
            at,
            kind: "notice".into(),
            sighting_id: None,
            detail: format!("notice {id} to {platform}"),
        });
    }
    timeline.sort_by(|a, b| a.at.cmp(&b.at).then(a.kind.cmp(&b.kind)));
    let flat = |m: BTreeMap<String, (i64, i64)>| {
        let mut v: Vec<(String, i64, i64)> = m.into_iter().map(|(k, (t, n))| (k, t, n)).collect();
        v.sort_by_key(|x| (x.1, x.0.clone()));
        v
    };
    Ok(ClusterView {
        summary,
        sightings,
        hosts: flat(hosts),
        platforms: flat(platforms),
        timeline,
        truncated,
    })
}
