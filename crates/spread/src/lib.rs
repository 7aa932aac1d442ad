//! Spread tracking: where known propaganda went, whether it came down, how
//! fast, and whether it came back.
//!
//! The collector records **sightings** (an item seen at a URL) and which
//! bank items they matched. This crate reads them and adds everything that
//! happens afterwards:
//!
//! * **Variant clusters** ([`cluster`]): a bank item and all its sightings,
//!   across signal types, with a timeline — first seen, each new host and
//!   platform, removals, the same URL coming back, new copies after a
//!   removal.
//! * **Liveness** ([`checker`], [`verdict`], [`machine`], [`schedule`]):
//!   every matched http(s) sighting is re-checked on an adaptive schedule
//!   (default `1h,6h,24h,+1d..30d,+7d..90d` from first seen). The verdict
//!   comes from **re-hashing what is served** ([`rehash`]), because
//!   soft-404s and "file removed" pages answer 200: the same bytes, or
//!   bytes that still match the bank item within its thresholds, are
//!   `live`; otherwise the collector's locker rules name the host's "file
//!   removed" page, table-driven removal rules ([`rules`]) its suspension
//!   or geo-block page, and anything else is `live_altered`. A removal counts only after two consecutive removed
//!   checks, recorded as the interval (last live, first removed].
//! * **Notices** ([`notice`]): takedown alerts (email, API, DSA Art. 16,
//!   TCO order) generated with their WARC evidence references, recorded,
//!   exported, and announced as the `notice.created` webhook event;
//!   echotrace never sends them itself.
//! * **Survival analysis** ([`survival`]): Kaplan–Meier with right
//!   censoring, lifelines' confidence band and median CI, and the log-rank
//!   test — our own code (no crate fitted), tested to 1e-9 against lifelines.
//! * **Transparency reports** ([`report`], [`html`], [`chart`]): TCAP's
//!   fields (URLs found, notices sent, platforms notified, % removed by
//!   group and platform) plus survival curves, censoring counts and a
//!   methodology section generated from the checker's stored settings; as
//!   JSON, CSV or one self-contained HTML file with inline SVG.
//!
//! Key decisions:
//!
//! * **Exactly one outcome per check.** Checks are leased (a lease per
//!   liveness row, `FOR UPDATE SKIP LOCKED` on PostgreSQL) and an outcome
//!   is committed only if the row's check counter is still what was
//!   leased, with a unique `(sighting, seq)`: kill -9 at any point neither
//!   loses a check (its lease expires and it is redone) nor records one
//!   twice. Outcomes are group-committed (one transaction per batch).
//! * **The collector's fetcher, behind a trait** ([`fetch::Fetcher`],
//!   [`fetch::CollectorFetcher`]): checks run on the collector's SSRF
//!   guard, robots.txt, per-host politeness (Heritrix defaults, a host
//!   clock shared through the store by every process, the slot held while
//!   the request runs), SOCKS5 with remote DNS for Tor (`.onion` refused
//!   without a proxy) and caps; the source's own proxy and locker rules
//!   apply to its sightings' checks.
//! * **Honest time-to-removal.** The estimator places a removal at the
//!   interval's right end (when it was first observed) and reports the
//!   left-end curve as a lower bound, so it never claims a removal before
//!   it was seen; see [`report`] for every convention.
//! * **Replays.** A checker can record checks "as of" a given time
//!   (`--at`), so tests and backfills land on schedule slots without
//!   waiting; politeness and leases keep using the real clock.

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
