//! Spread tracking over HTTP, on both backends (a real server on a
//! loopback port): the transparency report's numbers equal hand-counted
//! ones on a small fixed data set (JSON, CSV, HTML, redaction), survival
//! curves and the log-rank test, variant clusters, liveness views,
//! takedown notices (create, export with evidence, response, the signed
//! `notice.created` webhook), bad input as JSON 4xx, roles, and the
//! console's Spread and cluster pages (including recording a notice).
//!
//! Liveness histories here come from the real state machine with
//! scripted verdicts (the fetching checker itself is tested through the
//! CLI in `crates/cli/tests/cli_liveness.rs`).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use echotrace_engine::Role;
use echotrace_spread::machine::{advance, Timing};
use echotrace_spread::schedule::Schedule;
use echotrace_spread::state::{LivenessState, RemovalPolicy};
use echotrace_spread::verdict::Verdict;
use echotrace_store::testing::TestDb;
use echotrace_store::{both_backends, NewSighting, NewSightingMatch, Store, WarcRef};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_backends!(
    report_numbers_equal_hand_counts,
    notices_clusters_and_errors
);

const H: i64 = 3_600_000;
/// 2026-01-01T00:00Z.
const T0: i64 = 1_767_225_600_000;

use common::{console_session, csrf_of, Server as Service};

async fn start(db: &TestDb) -> Service {
    let mut config = common::config(&db.url);
    config.engine.outbox = common::fast_outbox();
    Service::start(config, None).await
}

impl Service {
    fn store(&self) -> Store {
        self.engine().store().clone()
    }
}

/// A bank item with a PDQ hash and labels; returns its id.
async fn item(svc: &Service, bank: &str, pdq: &str, labels: &[&str]) -> i64 {
    let v = svc
        .ok(
            Method::POST,
            &format!("/v1/banks/{bank}/content"),
            Some(json!({"signals": {"pdq": pdq}, "labels": labels})),
        )
        .await;
    v["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("content id in {v}"))
}

struct Copy {
    url: &'static str,
    host: &'static str,
    platform: &'static str,
    item: usize,
    first_seen_h: i64,
    /// Extra hours after first seen the collector saw it again.
    seen_again_h: Option<i64>,
    /// (from hour after first seen, verdict)
    script: Vec<(f64, LivenessState)>,
}

/// Insert a sighting matched to `content_id`, with a WARC evidence ref;
/// its hours count from `origin`.
async fn sighting(store: &Store, c: &Copy, origin: i64, content_id: i64, bank_id: i64) -> i64 {
    let url_sha = echotrace_signals::digest::sha256_hex(c.url.as_bytes());
    let content_sha =
        echotrace_signals::digest::sha256_hex(format!("bytes of {}", c.url).as_bytes());
    let warc = WarcRef {
        file: "evidence-0001.warc.gz".into(),
        offset: 1234,
        length: 567,
        record_id: format!(
            "<urn:uuid:{:08x}-0000-4000-8000-000000000000>",
            c.first_seen_h
        ),
    };
    let mut tx = store.write().await.unwrap();
    let (s, _) = tx
        .upsert_sighting(&NewSighting {
            source_id: None,
            url: c.url,
            url_canonical: c.url,
            url_sha256: &url_sha,
            host: c.host,
            platform: c.platform,
            parent_id: None,
            content_sha256: &content_sha,
            media_type: "image",
            seen_at: origin + c.first_seen_h * H,
            expires_at: None,
            warc: Some(&warc),
            implied_signals: 0,
        })
        .await
        .unwrap();
    if let Some(h) = c.seen_again_h {
        tx.upsert_sighting(&NewSighting {
            source_id: None,
            url: c.url,
            url_canonical: c.url,
            url_sha256: &url_sha,
            host: c.host,
            platform: c.platform,
            parent_id: None,
            content_sha256: &content_sha,
            media_type: "image",
            seen_at: origin + (c.first_seen_h + h) * H,
            expires_at: None,
            warc: Some(&warc),
            implied_signals: 0,
        })
        .await
        .unwrap();
    }
    tx.mark_sighting_matched(s.id, None).await.unwrap();
    tx.insert_sighting_match(&NewSightingMatch {
        sighting_id: s.id,
        content_id,
        bank_id,
        signal_type: "pdq",
        match_id: None,
        distance: Some(4),
        similarity: None,
        channel: "plain",
        found_by: "fetch",
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    s.id
}

/// Drive the real state machine with scripted verdicts, hour by hour,
/// from `start` to `end` (checks happen at their scheduled times).
async fn drive(
    store: &Store,
    timing: &Timing,
    copies: &[(i64, &Copy)],
    start: i64,
    end: i64,
) -> u64 {
    let policy = RemovalPolicy::default();
    store
        .enroll_liveness(timing.schedule.first(), 1000)
        .await
        .unwrap();
    let mut checks = 0;
    let mut t = start;
    while t <= end {
        loop {
            let due = store
                .lease_due_checks("scripted", t, echotrace_store::now_ms(), 60_000, 1000)
                .await
                .unwrap();
            if due.is_empty() {
                break;
            }
            let mut tx = store.write().await.unwrap();
            for d in &due {
                let at = d.liveness.next_check_at.unwrap();
                let (_, c) = copies
                    .iter()
                    .find(|(id, _)| *id == d.liveness.sighting_id)
                    .expect("scripted copy");
                let rel = (at - (T0 + c.first_seen_h * H)) as f64 / H as f64;
                let state = c
                    .script
                    .iter()
                    .rfind(|(from, _)| *from <= rel)
                    .map(|s| s.1)
                    .unwrap_or(LivenessState::Live);
                let v = Verdict {
                    state,
                    http_status: Some(200),
                    final_url: c.url.to_string(),
                    served_sha256: String::new(),
                    detail: "scripted".into(),
                };
                let w = advance(d, &v, "clearnet", at, "scripted", &policy, timing);
                assert!(tx.apply_check(&w).await.unwrap());
                checks += 1;
            }
            tx.commit().await.unwrap();
        }
        t += H;
    }
    checks
}

const PDQ_A: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
const PDQ_B: &str = "0000f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c0000";

/// The fixed data set of the report test (see the module doc of the
/// hand count in `report_numbers_equal_hand_counts`).
fn copies() -> Vec<Copy> {
    use LivenessState::*;
    vec![
        // 1: A on Files: live at 1 h, 404 at 6 h and 7 h → removed in (1, 6].
        Copy {
            url: "https://files.example/a1",
            host: "files.example",
            platform: "Files",
            item: 0,
            first_seen_h: 0,
            seen_again_h: None,
            script: vec![(0.0, Live), (5.0, RemovedGone)],
        },
        // 2: A on Files, first seen at 1 h: removed page from 20 h → (6, 24].
        Copy {
            url: "https://files.example/a2",
            host: "files.example",
            platform: "Files",
            item: 0,
            first_seen_h: 1,
            seen_again_h: None,
            script: vec![(0.0, Live), (20.0, RemovedNoticePage)],
        },
        // 3: A on Paste: always up → censored at 48 h.
        Copy {
            url: "https://paste.example/a3",
            host: "paste.example",
            platform: "Paste",
            item: 0,
            first_seen_h: 0,
            seen_again_h: None,
            script: vec![(0.0, Live)],
        },
        // 4: B on Paste, first seen at 3 h (after copy 6's removal): gone at once → (0, 1].
        Copy {
            url: "https://paste.example/b4",
            host: "paste.example",
            platform: "Paste",
            item: 1,
            first_seen_h: 3,
            seen_again_h: None,
            script: vec![(0.0, RemovedGone)],
        },
        // 5: B on Video: suspended once at 6 h, live again at 7 h → not confirmed; censored at 48 h.
        Copy {
            url: "https://video.example/b5",
            host: "video.example",
            platform: "Video",
            item: 1,
            first_seen_h: 0,
            seen_again_h: None,
            script: vec![(0.0, Live), (5.0, AccountSuspended), (6.5, Live)],
        },
        // 6: B on Video: altered at 1 h and 2 h → removed in (0, 1]; back at 6 h (resurfaced).
        Copy {
            url: "https://video.example/b6",
            host: "video.example",
            platform: "Video",
            item: 1,
            first_seen_h: 0,
            seen_again_h: None,
            script: vec![(0.0, LiveAltered), (3.0, Live)],
        },
        // 7: A on a host with no platform name, not an http URL → never tracked;
        //    seen again at 2 h → censored at 2 h.
        Copy {
            url: "ftp://mirror.example/a7",
            host: "mirror.example",
            platform: "",
            item: 0,
            first_seen_h: 0,
            seen_again_h: Some(2),
            script: vec![],
        },
        // 8: A, first seen 10 days before the window → not in the report.
        Copy {
            url: "https://files.example/old",
            host: "files.example",
            platform: "Files",
            item: 0,
            first_seen_h: -240,
            seen_again_h: None,
            script: vec![(0.0, Live)],
        },
    ]
}

async fn report_numbers_equal_hand_counts(db: &TestDb) {
    let svc = start(db).await;
    svc.ok(
        Method::POST,
        "/v1/banks",
        Some(json!({"name": "spread-test"})),
    )
    .await;
    let bank_id = svc.ok(Method::GET, "/v1/banks/spread-test", None).await["id"]
        .as_i64()
        .unwrap();
    let items = [
        item(&svc, "spread-test", PDQ_A, &["demo", "group:alpha"]).await,
        item(&svc, "spread-test", PDQ_B, &["group:beta"]).await,
    ];
    let copies = copies();
    let mut ids = Vec::new();
    for c in &copies {
        ids.push(sighting(&svc.store(), c, T0, items[c.item], bank_id).await);
    }
    let timing = Timing {
        schedule: Schedule::parse("1h,6h,24h,48h").unwrap(),
        ..Timing::default()
    };
    let scripted: Vec<(i64, &Copy)> = ids.iter().copied().zip(copies.iter()).collect();
    let checks = drive(&svc.store(), &timing, &scripted, T0 - 240 * H, T0 + 60 * H).await;
    assert!(checks > 20, "{checks} checks");
    // Checks recorded without the checker's settings (as `serve --demo`
    // seeds them): the methodology must not deny the removals it counts.
    let r = svc
        .ok(
            Method::GET,
            "/v1/reports/transparency?from=2026-01-01&to=2026-02-01",
            None,
        )
        .await;
    let liveness = r["methodology"][1].as_str().unwrap_or_default();
    assert_eq!(r["totals"]["confirmed_removals"], 4);
    assert!(
        liveness.starts_with("Liveness:")
            && liveness.contains("4 confirmed removals")
            && !liveness.contains("no copy has a confirmed removal"),
        "{liveness}"
    );
    svc.store()
        .put_spread_setting(
            "checker",
            &json!({"schedule": "1h,6h,24h,48h", "confirm_checks": 2, "confirm_after_secs": 3600,
                    "retry_after_secs": 3600, "removed_states": ["removed_gone", "removed_notice_page",
                    "account_suspended", "live_altered"], "politeness_ms": 3000, "proxy": false,
                    "removal_rules": 4})
            .to_string(),
        )
        .await
        .unwrap();

    // Notices: Files about copies 1 and 2 at 3 h (before both removals);
    // Video about copy 5 at 72 h (after it was last seen up: not counted
    // as "with notice").
    let n1 = svc
        .ok(
            Method::POST,
            "/v1/notices",
            Some(json!({"channel": "dsa_art16", "reference": "REF-1",
            "sighting_ids": [ids[0], ids[1]], "sent_at": T0 + 3 * H})),
        )
        .await;
    assert_eq!(n1["platform"], "Files", "platform taken from the sightings");
    let n2 = svc
        .ok(
            Method::POST,
            "/v1/notices",
            Some(json!({"channel": "email", "platform": "Video",
            "sighting_ids": [ids[4]], "sent_at": T0 + 72 * H})),
        )
        .await;
    svc.ok(
        Method::POST,
        &format!("/v1/notices/{}/response", n1["id"]),
        Some(json!({"response": "removed"})),
    )
    .await;
    svc.ok(
        Method::POST,
        &format!("/v1/notices/{}/response", n2["id"]),
        Some(json!({"response": "rejected"})),
    )
    .await;

    let q = "from=2026-01-01&to=2026-02-01";
    // `/v1/sightings?from=&to=` takes the report's time forms too: copies
    // 1-7 were first seen in January, copy 8 ten days before.
    let by_day = svc
        .ok(Method::GET, &format!("/v1/sightings?{q}&limit=1000"), None)
        .await;
    let by_ms = svc
        .ok(
            Method::GET,
            &format!("/v1/sightings?from={T0}&to={}&limit=1000", T0 + 31 * 24 * H),
            None,
        )
        .await;
    assert_eq!(
        by_day["sightings"].as_array().map(Vec::len),
        Some(7),
        "{by_day}"
    );
    assert_eq!(by_day, by_ms);
    let (s, v) = svc
        .admin_call(Method::GET, "/v1/sightings?from=yesterday", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("\"from\" must be"),
        "{v}"
    );
    let r = svc
        .ok(Method::GET, &format!("/v1/reports/transparency?{q}"), None)
        .await;
    let t = &r["totals"];
    // Hand count (copies 1-7 are in the window; 8 is not):
    assert_eq!(t["urls_found"], 7, "{t}");
    assert_eq!(t["copies"], 7);
    assert_eq!(t["clusters"], 2);
    assert_eq!(t["hosts"], 4);
    assert_eq!(t["platforms"], 4, "Files, Paste, Video, mirror.example");
    assert_eq!(t["notices_sent"], 2);
    assert_eq!(t["platforms_notified"], 2);
    assert_eq!(t["removed"], 3, "copies 1, 2, 4 (6 came back)");
    assert!((t["removed_pct"].as_f64().unwrap() - 300.0 / 7.0).abs() < 1e-9);
    assert_eq!(t["not_tracked"], 1, "copy 7");
    assert_eq!(t["confirmed_removals"], 4, "copies 1, 2, 4, 6");
    assert_eq!(t["resurfaced"], 1, "copy 6");
    assert_eq!(t["resurfacing_rate"], 0.25);
    assert_eq!(t["clusters_with_removal"], 2);
    assert_eq!(
        t["clusters_reuploaded"], 1,
        "B: copy 4 first seen after copy 6 was removed"
    );
    // Kaplan–Meier on (hours, removed): 6 ✓, 24 ✓, 48, 1 ✓, 48, 1 ✓, 2.
    let o = &r["overall"];
    assert_eq!(
        (
            o["n"].as_u64(),
            o["removed"].as_u64(),
            o["censored"].as_u64()
        ),
        (Some(7), Some(4), Some(3))
    );
    assert_eq!(
        o["median_hours"], 24.0,
        "S: 5/7 at 1 h, 15/28 at 6 h, 5/14 at 24 h"
    );
    assert_eq!(
        o["median_ci_hours"],
        json!([1.0, null]),
        "lifelines: (1.0, inf)"
    );
    let rw = &o["removed_within"];
    assert!((rw["h1"].as_f64().unwrap() - 2.0 / 7.0).abs() < 1e-12);
    assert!((rw["h24"].as_f64().unwrap() - 9.0 / 14.0).abs() < 1e-12);
    assert!((rw["d7"].as_f64().unwrap() - 9.0 / 14.0).abs() < 1e-12);
    // Median removal interval widths: 5 (copy 1), 18 (copy 2), 1, 1 → 3 h.
    assert_eq!(t["median_interval_hours"], 3.0);
    let by = |section: &str, name: &str| -> Value {
        r[section]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{section} has no {name}: {}", r[section]))
    };
    let files = by("by_platform", "Files");
    assert_eq!(
        (
            files["copies"].as_u64(),
            files["removed"].as_u64(),
            files["noticed"].as_u64()
        ),
        (Some(2), Some(2), Some(2))
    );
    assert_eq!(files["removed_pct"], 100.0);
    assert_eq!(by("by_platform", "Paste")["removed_pct"], 50.0);
    assert_eq!(by("by_platform", "Video")["removed"], 0);
    assert_eq!(by("by_platform", "mirror.example")["copies"], 1);
    let alpha = by("by_group", "alpha");
    assert_eq!(
        (alpha["copies"].as_u64(), alpha["removed"].as_u64()),
        (Some(4), Some(2))
    );
    assert_eq!(alpha["curve"]["median_hours"], 24.0);
    assert_eq!(by("by_group", "beta")["removed"], 1);
    assert_eq!(by("by_notice", "with notice")["copies"], 2);
    assert_eq!(by("by_notice", "without notice")["copies"], 5);
    let lr = r["logrank"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["between"] == "notice")
        .unwrap();
    // lifelines.statistics.logrank_test([6, 24], [48, 1, 48, 1, 2], [1, 1], [0, 1, 0, 1, 0])
    assert!(
        (lr["statistic"].as_f64().unwrap() - 0.4361479413817168).abs() < 1e-9,
        "{lr}"
    );
    assert!(
        (lr["p_value"].as_f64().unwrap() - 0.5089875638431216).abs() < 1e-9,
        "{lr}"
    );
    let notices = r["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 2);
    assert!(notices
        .iter()
        .any(|n| n["platform"] == "Files" && n["removed"] == 1));
    assert!(notices
        .iter()
        .any(|n| n["platform"] == "Video" && n["rejected"] == 1));
    // Checks in the window = every check outcome dated in it, as listed per sighting.
    let mut checked_at: Vec<i64> = Vec::new();
    for id in &ids {
        let v = svc
            .ok(Method::GET, &format!("/v1/liveness/{id}"), None)
            .await;
        checked_at.extend(
            v["checks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["checked_at"].as_i64().unwrap()),
        );
    }
    let listed = checked_at.iter().filter(|&&at| at >= T0).count();
    assert_eq!(t["checks"], listed as u64);
    // The same over a window whose edges fall inside hours (the report sums
    // whole hours from the hourly tally and counts the edge hours directly).
    let (from, to) = (T0 + 30 * 60_000, T0 + 36 * 3_600_000 + 45 * 60_000);
    let edged = svc
        .ok(
            Method::GET,
            "/v1/reports/transparency?from=2026-01-01T00:30Z&to=2026-01-02T12:45Z",
            None,
        )
        .await;
    let in_edged = checked_at
        .iter()
        .filter(|&&at| at >= from && at < to)
        .count();
    assert!(in_edged > 0 && in_edged < listed, "{in_edged} of {listed}");
    assert_eq!(edged["totals"]["checks"], in_edged as u64);
    let methodology = r["methodology"].as_array().unwrap();
    assert!(
        methodology
            .iter()
            .any(|p| p.as_str().unwrap().contains("1h,6h,24h,48h")),
        "method from settings"
    );
    assert!(methodology
        .iter()
        .any(|p| p.as_str().unwrap().contains("right-censored")));

    // Survival by platform with a chosen pair.
    let s = svc
        .ok(
            Method::GET,
            &format!("/v1/survival?by=platform&a=Files&b=Video&{q}"),
            None,
        )
        .await;
    assert_eq!(s["logrank"]["a"], "Files");
    assert!(s["logrank"]["p_value"].as_f64().unwrap() > 0.0);
    assert_eq!(s["strata"].as_array().unwrap().len(), 4);

    // CSV and HTML carry the same numbers.
    let (st, csv) = svc
        .raw(
            Some(&svc.admin),
            Method::GET,
            &format!("/v1/reports/transparency?{q}&format=csv"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(csv.starts_with("section,name,metric,value\n"));
    for line in [
        "totals,,urls_found,7",
        "totals,,notices_sent,2",
        "totals,,platforms_notified,2",
        "survival,all copies,median_hours,24",
        "by_platform,Files,removed_pct,100",
    ] {
        assert!(csv.lines().any(|l| l == line), "CSV lacks {line:?}:\n{csv}");
    }
    let (st, html) = svc
        .raw(
            Some(&svc.admin),
            Method::GET,
            &format!("/v1/reports/transparency?{q}&format=html"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        html.contains("data-k=\"urls_found\">7<"),
        "HTML summary card"
    );
    assert!(html.contains("<svg") && !html.contains("<script") && !html.contains("src=\"http"));
    assert!(html.contains("Files"));

    // Redaction: no platform, group or host names.
    let red = svc
        .ok(
            Method::GET,
            &format!("/v1/reports/transparency?{q}&redact=true"),
            None,
        )
        .await;
    let text = red.to_string();
    for name in [
        "Files",
        "Paste",
        "Video",
        "files.example",
        "alpha",
        "beta",
        "mirror.example",
    ] {
        assert!(!text.contains(name), "redacted report names {name}");
    }
    assert!(text.contains("Platform A") && text.contains("Group 1"));
    assert_eq!(red["totals"]["urls_found"], 7);
    svc.stop().await;
}

/// A local webhook receiver recording (event header, body).
/// Webhook deliveries received: (event, body).
type Received = Arc<Mutex<Vec<(String, Value)>>>;

fn receiver() -> (String, Received) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut len, mut event) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if let Some(v) = l.strip_prefix("x-echotrace-event:") {
                    event = v.trim().to_string();
                }
            }
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).is_ok() {
                sink.lock()
                    .unwrap()
                    .push((event, serde_json::from_slice(&body).unwrap_or(Value::Null)));
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, seen)
}

async fn notices_clusters_and_errors(db: &TestDb) {
    let svc = start(db).await;
    svc.ok(
        Method::POST,
        "/v1/banks",
        Some(json!({"name": "spread-test"})),
    )
    .await;
    let bank_id = svc.ok(Method::GET, "/v1/banks/spread-test", None).await["id"]
        .as_i64()
        .unwrap();
    let a = item(&svc, "spread-test", PDQ_A, &["group:alpha"]).await;
    let copies = copies();
    // Seen ten days ago, so the console's default window shows them.
    let origin = echotrace_store::now_ms() - 240 * H;
    let s1 = sighting(&svc.store(), &copies[0], origin, a, bank_id).await;
    let s3 = sighting(&svc.store(), &copies[2], origin, a, bank_id).await;
    let (hook, seen) = receiver();
    svc.ok(
        Method::POST,
        "/v1/actions/webhooks",
        Some(json!({"url": hook, "secret": "a-webhook-s3cret-key", "events": ["notice.created"]})),
    )
    .await;

    // Create: the sightings span two platforms, so the platform must be given.
    let (s, v) = svc
        .call(
            Some(&svc.admin),
            Method::POST,
            "/v1/notices",
            Some(json!({"channel": "email", "sighting_ids": [s1, s3]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("platform"),
        "{v}"
    );
    let n = svc
        .ok(
            Method::POST,
            "/v1/notices",
            Some(json!({"channel": "tco_order", "platform": "Files",
        "reference": "TCO-7", "sighting_ids": [s1, s3], "note": "two copies"})),
        )
        .await;
    let id = n["id"].as_i64().unwrap();
    assert_eq!(n["sightings"].as_array().unwrap().len(), 2);
    assert_eq!(
        n["sightings"][0]["evidence"]["warc_file"],
        "evidence-0001.warc.gz"
    );
    // The notice.created webhook reaches the receiver with the evidence.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((_, body)) = seen
            .lock()
            .unwrap()
            .iter()
            .find(|(e, _)| e == "notice.created")
        {
            assert_eq!(body["payload"]["notice_id"], id);
            assert_eq!(body["payload"]["sightings"][0]["evidence"]["offset"], 1234);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "notice.created not delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Export: text cites URLs, channel and WARC records; JSON has everything.
    let (st, text) = svc
        .raw(
            Some(&svc.admin),
            Method::GET,
            &format!("/v1/notices/{id}/export?format=text"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        text.contains("Regulation (EU) 2021/784")
            && text.contains("https://files.example/a1")
            && text.contains("evidence-0001.warc.gz")
            && text.contains("TCO-7"),
        "{text}"
    );
    let j = svc
        .ok(
            Method::GET,
            &format!("/v1/notices/{id}/export?format=json"),
            None,
        )
        .await;
    assert_eq!(j["reference"], "TCO-7");
    let list = svc
        .ok(Method::GET, &format!("/v1/notices?sighting={s3}"), None)
        .await;
    assert_eq!(list["notices"][0]["id"], id);
    let audit = svc
        .ok(Method::GET, "/v1/audit?limit=50", None)
        .await
        .to_string();
    assert!(audit.contains("notice.create"));

    // Clusters and liveness.
    let cl = svc.ok(Method::GET, "/v1/clusters", None).await;
    assert_eq!(cl["clusters"][0]["content_id"], a);
    assert_eq!(cl["clusters"][0]["sightings"], 2);
    let c = svc
        .ok(Method::GET, &format!("/v1/clusters/{a}"), None)
        .await;
    assert_eq!(c["hosts"].as_array().unwrap().len(), 2);
    assert!(c["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "notice"));
    assert_eq!(c["sightings"][0]["status"], "untracked");
    let l = svc
        .ok(Method::GET, &format!("/v1/liveness/{s1}"), None)
        .await;
    assert_eq!(l["notices"], json!([id]));

    // Bad input: JSON 4xx naming the field; never a 500.
    for (method, path, body, status, needle) in [
        (
            Method::POST,
            "/v1/notices",
            Some(json!({"channel": "fax", "sighting_ids": [s1]})),
            400,
            "channel",
        ),
        (
            Method::POST,
            "/v1/notices",
            Some(json!({"channel": "email", "sighting_ids": []})),
            400,
            "sighting_ids",
        ),
        (
            Method::POST,
            "/v1/notices",
            Some(json!({"channel": "email", "sighting_ids": [999999]})),
            400,
            "sighting_ids",
        ),
        (
            Method::POST,
            "/v1/notices",
            Some(json!({"channel": "email", "sighting_ids": [s1], "sent_at": 99999999999999i64})),
            400,
            "sent_at",
        ),
        (
            Method::POST,
            "/v1/notices",
            Some(json!({"channel": "email", "sighting_ids": [s1], "colour": 1})),
            422,
            "colour",
        ),
        (
            Method::POST,
            &format!("/v1/notices/{id}/response"),
            Some(json!({"response": "maybe"})),
            400,
            "response",
        ),
        (
            Method::POST,
            "/v1/notices/999999/response",
            Some(json!({"response": "removed"})),
            404,
            "notice",
        ),
        (Method::GET, "/v1/notices/999999", None, 404, "notice"),
        (
            Method::GET,
            &format!("/v1/notices/{id}/export?format=pdf"),
            None,
            400,
            "format",
        ),
        (Method::GET, "/v1/clusters/999999", None, 404, "999999"),
        (Method::GET, "/v1/liveness/999999", None, 404, "sighting"),
        (
            Method::GET,
            "/v1/reports/transparency?from=yesterday",
            None,
            400,
            "from",
        ),
        (
            Method::GET,
            "/v1/reports/transparency?from=2026-02-01&to=2026-01-01",
            None,
            400,
            "to",
        ),
        (
            Method::GET,
            "/v1/reports/transparency?format=pdf",
            None,
            400,
            "format",
        ),
        (
            Method::GET,
            "/v1/reports/transparency?redact=perhaps",
            None,
            400,
            "redact",
        ),
        (Method::GET, "/v1/survival?by=colour", None, 400, "by"),
        (
            Method::GET,
            "/v1/survival?by=platform&a=Files",
            None,
            400,
            "\"b\"",
        ),
        (
            Method::GET,
            "/v1/survival?by=platform&a=Nowhere&b=Elsewhere",
            None,
            400,
            "Nowhere",
        ),
    ] {
        let (s, v) = svc.call(Some(&svc.admin), method.clone(), path, body).await;
        assert_eq!(s.as_u16(), status, "{method} {path}: {v}");
        let msg = v["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no JSON error: {v}"));
        assert!(
            msg.contains(needle),
            "{method} {path}: {msg:?} should name {needle}"
        );
    }

    // Roles: matchers cannot read spread data; reviewers can record notices.
    let matcher = svc.key("matcher").await;
    let (s, _) = svc
        .call(
            Some(&matcher),
            Method::GET,
            "/v1/reports/transparency",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = svc.call(None, Method::GET, "/v1/clusters", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let reviewer = svc.key("reviewer").await;
    let (s, v) = svc
        .call(
            Some(&reviewer),
            Method::POST,
            "/v1/notices",
            Some(json!({"channel": "api", "sighting_ids": [s1]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // Console: the Spread dashboard and the cluster page render, and a
    // notice can be recorded from the cluster page.
    let engine = svc.handle.as_ref().unwrap().state.engine().unwrap().clone();
    engine
        .create_user(
            &echotrace_engine::Actor::system(),
            "curie",
            "a long enough password",
            Role::Reviewer,
        )
        .await
        .unwrap();
    let (console, cookie) = console_session(&svc.base, "curie", "a long enough password").await;
    let page = |path: String| {
        let console = console.clone();
        let cookie = cookie.clone();
        async move {
            let r = console
                .get(path)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.text().await.unwrap()
        }
    };
    let dash = page(format!("{}/ui/spread", svc.base)).await;
    assert!(
        dash.contains("<h1>Spread</h1>")
            && dash.contains("class=\"survival\"")
            && dash.contains(&format!("/ui/clusters/{a}"))
    );
    let cluster = page(format!("{}/ui/clusters/{a}", svc.base)).await;
    assert!(cluster.contains("class=\"timeline\"") && cluster.contains("https://files.example/a1"));
    assert!(
        !cluster.contains("href=\"https://files.example"),
        "copies are text, never links"
    );
    let csrf = csrf_of(&cluster);
    let r = console
        .post(format!("{}/ui/clusters/{a}/notice", svc.base))
        .header("cookie", cookie.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={csrf}&channel=email&sighting={s1}&reference=UI-1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let list = svc
        .ok(Method::GET, "/v1/notices?platform=Files", None)
        .await;
    assert!(list["notices"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["reference"] == "UI-1" && n["created_by"] == "user:curie"));
    // Without the CSRF token the form is refused.
    let r = console
        .post(format!("{}/ui/clusters/{a}/notice", svc.base))
        .header("cookie", cookie.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("channel=email&sighting={s1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    svc.stop().await;
}
