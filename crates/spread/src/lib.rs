//! Spread tracking: where known propaganda went, whether it came down, how
//! fast, and whether it came back.
//!
//! (The full essay is written once the crate settles; see ARCHITECTURE.md.)

pub mod chart;
pub mod checker;
pub mod cluster;
pub mod demo;
pub mod error;
pub mod fetch;
pub mod html;
pub mod machine;
pub mod notice;
pub mod rehash;
pub mod report;
pub mod rules;
pub mod schedule;
pub mod state;
pub mod survival;
pub mod time;
pub mod verdict;

pub use error::{Result, SpreadError};

use echotrace_store::{CheckRow, LivenessRow, RemovalRow, SightingRow, Store};

/// A sighting's liveness with its check outcomes and removals.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LivenessView {
    pub sighting: SightingSummary,
    /// `None` until the checker enrolls the sighting.
    pub liveness: Option<LivenessJson>,
    pub checks: Vec<CheckJson>,
    pub removals: Vec<RemovalJson>,
    pub notices: Vec<i64>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SightingSummary {
    pub id: i64,
    pub url: String,
    pub host: String,
    pub platform: String,
    pub content_sha256: String,
    pub media_type: String,
    pub matched: bool,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
}

impl From<&SightingRow> for SightingSummary {
    fn from(s: &SightingRow) -> Self {
        SightingSummary {
            id: s.id,
            url: s.url.clone(),
            host: s.host.clone(),
            platform: s.platform.clone(),
            content_sha256: s.content_sha256.clone(),
            media_type: s.media_type.clone(),
            matched: s.matched,
            first_seen_at: s.first_seen_at,
            last_seen_at: s.last_seen_at,
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct LivenessJson {
    pub state: String,
    pub status: String,
    pub removed_streak: i64,
    pub checks: i64,
    pub last_checked_at: Option<i64>,
    pub last_live_at: i64,
    pub first_removed_at: Option<i64>,
    pub removals: i64,
    pub resurfaced: i64,
    pub next_check_at: Option<i64>,
}

impl From<&LivenessRow> for LivenessJson {
    fn from(l: &LivenessRow) -> Self {
        LivenessJson {
            state: l.state.clone(),
            status: l.status.clone(),
            removed_streak: l.removed_streak,
            checks: l.checks,
            last_checked_at: l.last_checked_at,
            last_live_at: l.last_live_at,
            first_removed_at: l.first_removed_at,
            removals: l.removals,
            resurfaced: l.resurfaced,
            next_check_at: l.next_check_at,
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct CheckJson {
    pub seq: i64,
    pub checked_at: i64,
    pub state: String,
    pub http_status: Option<i64>,
    pub final_url: String,
    pub served_sha256: String,
    pub detail: String,
    pub via: String,
}

impl From<&CheckRow> for CheckJson {
    fn from(c: &CheckRow) -> Self {
        CheckJson {
            seq: c.seq,
            checked_at: c.checked_at,
            state: c.state.clone(),
            http_status: c.http_status,
            final_url: c.final_url.clone(),
            served_sha256: c.served_sha256.clone(),
            detail: c.detail.clone(),
            via: c.via.clone(),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RemovalJson {
    pub episode: i64,
    pub last_live_at: i64,
    pub first_removed_at: i64,
    pub confirmed_at: i64,
    pub removed_state: String,
    pub resurfaced_at: Option<i64>,
}

impl From<&RemovalRow> for RemovalJson {
    fn from(r: &RemovalRow) -> Self {
        RemovalJson {
            episode: r.episode,
            last_live_at: r.last_live_at,
            first_removed_at: r.first_removed_at,
            confirmed_at: r.confirmed_at,
            removed_state: r.removed_state.clone(),
            resurfaced_at: r.resurfaced_at,
        }
    }
}

/// Most check outcomes a liveness view lists.
pub const LIVENESS_CHECKS_LIMIT: i64 = 1000;

/// One sighting's liveness (404 for an unknown sighting).
pub async fn liveness_view(store: &Store, sighting_id: i64) -> Result<LivenessView> {
    let s = store
        .get_sighting(sighting_id)
        .await?
        .ok_or_else(|| SpreadError::NotFound(format!("sighting {sighting_id}")))?;
    let l = store.get_liveness(sighting_id).await?;
    let checks = store.checks_of(sighting_id, LIVENESS_CHECKS_LIMIT).await?;
    let removals = store.removals_of(sighting_id).await?;
    let notices = store
        .list_notices(&echotrace_store::NoticeQuery {
            sighting_id: Some(sighting_id),
            limit: 1000,
            ..Default::default()
        })
        .await?;
    Ok(LivenessView {
        sighting: SightingSummary::from(&s),
        liveness: l.as_ref().map(LivenessJson::from),
        checks: checks.iter().map(CheckJson::from).collect(),
        removals: removals.iter().map(RemovalJson::from).collect(),
        notices: notices.iter().map(|n| n.id).collect(),
    })
}
