//! Demo spread data for `serve --demo`: generated, benign sightings of the
//! demo bank items on fictional `.example` hosts, with liveness histories
//! produced by the real state machine (scripted verdicts on the default
//! schedule), some removals, a resurfacing, and notices — so the Spread
//! dashboard, cluster pages and the report have something to show.
//!
//! Nothing is fetched: verdicts come from a script, check rows say
//! `(demo)` in their detail, and every URL is under the reserved
//! `.example` TLD.

use echotrace_engine::{Actor, ContentUpdate, Engine};
use echotrace_store::{NewSighting, NewSightingMatch};

use crate::error::Result;
use crate::machine::{advance, Timing};
use crate::notice::{self, NoticeRequest};
use crate::state::{LivenessState, RemovalPolicy};
use crate::verdict::Verdict;

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;

/// What the demo seeded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DemoSummary {
    pub sightings: u64,
    pub checks: u64,
    pub notices: u64,
}

/// (host, platform, how it removes, hours to removal by item index or
/// None for "stays up").
struct Host {
    host: &'static str,
    platform: &'static str,
    removed_as: LivenessState,
    hours: [Option<i64>; 5],
}

const HOSTS: [Host; 5] = [
    Host {
        host: "files.example",
        platform: "ExampleFiles",
        removed_as: LivenessState::RemovedNoticePage,
        hours: [Some(3), Some(20), Some(5), None, Some(40)],
    },
    Host {
        host: "paste.example",
        platform: "ExamplePaste",
        removed_as: LivenessState::RemovedGone,
        hours: [Some(30), Some(2), None, Some(9), Some(80)],
    },
    Host {
        host: "video.example",
        platform: "ExampleVideo",
        removed_as: LivenessState::AccountSuspended,
        hours: [Some(1), Some(4), Some(2), Some(12), None],
    },
    Host {
        host: "social.example",
        platform: "ExampleSocial",
        removed_as: LivenessState::LiveAltered,
        hours: [Some(150), None, Some(300), None, Some(60)],
    },
    Host {
        host: "mirror.example",
        platform: "",
        removed_as: LivenessState::RemovedGone,
        hours: [None, None, Some(500), None, None],
    },
];

/// Fictional, benign group names for the demo items' `group:` labels.
const GROUPS: [&str; 3] = [
    "group:gradient-club",
    "group:pattern-society",
    "group:wave-riders",
];

/// Seed demo spread data for the demo bank (`demo-shapes-and-texts`).
pub async fn seed(engine: &Engine, now: i64) -> Result<DemoSummary> {
    let store = engine.store().clone();
    let bank = engine.bank_by_name("demo-shapes-and-texts").await?;
    let items = engine.list_content(bank.id, 0, 100).await?;
    let items: Vec<_> = items.into_iter().take(5).collect();
    let mut summary = DemoSummary::default();
    // Group labels, so the report has groups to break down by.
    for (i, item) in items.iter().enumerate() {
        let mut labels = item.labels.clone();
        labels.push(GROUPS[i % GROUPS.len()].to_string());
        engine
            .update_content(
                &Actor::system(),
                item.id,
                ContentUpdate {
                    labels: Some(labels),
                    ..ContentUpdate::default()
                },
            )
            .await?;
    }
    // Sightings: every item on every host, first seen over the last 28 days.
    struct Script {
        id: i64,
        first_seen: i64,
        removed_at: Option<i64>,
        back_at: Option<i64>,
        removed_as: LivenessState,
        platform: &'static str,
    }
    let mut scripts = Vec::new();
    let mut tx = store.write().await?;
    for (i, item) in items.iter().enumerate() {
        for (j, h) in HOSTS.iter().enumerate() {
            let first_seen = now - (28 - (i as i64) * 5 - (j as i64)) * DAY + (j as i64) * 5 * H;
            let url = format!("https://{}/demo/{}/{}", h.host, item.id, j);
            let url_sha = echotrace_signals::digest::sha256_hex(url.as_bytes());
            let content_sha = echotrace_signals::digest::sha256_hex(
                format!("demo-bytes-{}-{}", item.id, j).as_bytes(),
            );
            let (s, _) = tx
                .upsert_sighting(&NewSighting {
                    source_id: None,
                    url: &url,
                    url_canonical: &url,
                    url_sha256: &url_sha,
                    host: h.host,
                    platform: h.platform,
                    parent_id: None,
                    content_sha256: &content_sha,
                    media_type: if i < 3 { "image" } else { "text" },
                    seen_at: first_seen,
                    expires_at: None,
                    warc: None,
                    implied_signals: 0,
                })
                .await?;
            tx.mark_sighting_matched(s.id, None).await?;
            tx.insert_sighting_match(&NewSightingMatch {
                sighting_id: s.id,
                content_id: item.id,
                bank_id: bank.id,
                signal_type: if i < 3 { "pdq" } else { "text_minhash" },
                match_id: None,
                distance: if i < 3 {
                    Some(((i + j) * 3) as i64)
                } else {
                    None
                },
                similarity: if i < 3 { None } else { Some(0.8) },
                channel: "plain",
                found_by: "fetch",
            })
            .await?;
            let removed_at = h.hours[i].map(|hrs| first_seen + hrs * H);
            // One copy comes back two days after its removal.
            let back_at = if i == 0 && j == 2 {
                removed_at.map(|t| t + 2 * DAY)
            } else {
                None
            };
            scripts.push(Script {
                id: s.id,
                first_seen,
                removed_at,
                back_at,
                removed_as: h.removed_as,
                platform: h.platform,
            });
            summary.sightings += 1;
        }
    }
    tx.commit().await?;
    // Notices to two platforms, before some removals.
    for platform in ["ExampleFiles", "ExampleVideo"] {
        let covered: Vec<&Script> = scripts
            .iter()
            .filter(|s| s.platform == platform)
            .take(3)
            .collect();
        let ids: Vec<i64> = covered.iter().map(|s| s.id).collect();
        let sent_at = covered.iter().map(|s| s.first_seen).max().unwrap_or(now) + 2 * H;
        let n = notice::create(
            &store,
            &Actor::system(),
            NoticeRequest {
                platform: Some(platform.to_string()),
                channel: "dsa_art16".into(),
                reference: format!("DEMO-{platform}"),
                sighting_ids: ids,
                sent_at: Some(sent_at.min(now)),
                note: "Demo notice (generated data).".into(),
            },
        )
        .await?;
        if platform == "ExampleVideo" {
            notice::respond(
                &store,
                &Actor::system(),
                n.id,
                "removed",
                Some(sent_at + DAY),
            )
            .await?;
        }
        summary.notices += 1;
    }
    // Liveness histories through the real state machine.
    let timing = Timing::default();
    let policy = RemovalPolicy::default();
    store
        .enroll_liveness(timing.schedule.first(), 10_000)
        .await?;
    let verdict_at = |sid: i64, t: i64| -> Verdict {
        let s = scripts.iter().find(|s| s.id == sid);
        let down = s.is_some_and(|s| {
            s.removed_at.is_some_and(|r| t >= r) && s.back_at.is_none_or(|b| t < b)
        });
        let state = match s {
            Some(s) if down => s.removed_as,
            _ => LivenessState::Live,
        };
        Verdict {
            state,
            http_status: Some(match state {
                LivenessState::RemovedGone => 404,
                _ => 200,
            }),
            final_url: String::new(),
            served_sha256: String::new(),
            detail: "(demo) scripted verdict".into(),
        }
    };
    let mut t = now - 29 * DAY;
    while t <= now {
        loop {
            let due = store
                .lease_due_checks("demo", t, echotrace_store::now_ms(), 60_000, 1000)
                .await?;
            if due.is_empty() {
                break;
            }
            let mut tx = store.write().await?;
            for d in &due {
                let at = d.liveness.next_check_at.unwrap_or(t).min(now);
                let v = verdict_at(d.liveness.sighting_id, at);
                let w = advance(d, &v, "clearnet", at, "demo", &policy, &timing);
                if tx.apply_check(&w).await? {
                    summary.checks += 1;
                }
            }
            tx.commit().await?;
        }
        t += 6 * H;
    }
    Ok(summary)
}
