//! The liveness checker through its command line, `echotrace liveness run`,
//! against local sites whose pages change on a script, on SQLite and on
//! PostgreSQL (`$ECHOTRACE_TEST_PG_URL`; FAILS if unset, unless
//! `ECHOTRACE_SKIP_PG=1`). Benign fixture images only
//! (`../shared/fixtures/pdq`).
//!
//! * `disappearing_site`: pages that return 404, a 200 "file removed" page,
//!   a different image, a resized copy of the same image, a suspension
//!   page, 451, 503, an unresolvable name, a one-off 404, and a page that
//!   comes back after removal — every check gets the right state, two
//!   consecutive removed checks confirm a removal, the one-off does not,
//!   and the comeback is a resurfacing (also counted by `echotrace report`).
//! * `politeness_per_host`: with 250 ms configured and 8 workers, no two
//!   requests to one host arrive closer than that (measured by the site;
//!   the checker fetches through the collector's fetcher and politeness).
//! * `kill_9_mid_round`: the checker is killed with SIGKILL mid-round and
//!   run again: every due check has exactly one recorded outcome.
//! * `tor_proxy`: `--proxy socks5h://…` sends every check through a local
//!   SOCKS5 server, names resolved there (an `.onion` host); without a
//!   proxy the `.onion` check is inconclusive with a clear reason.
//!
//! Checks run with `--at`, so rounds land on chosen schedule slots without
//! waiting hours (politeness and leases still use the real clock).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use echotrace_engine::{
    Actor, BankKind, ContentSource, Engine, EngineConfig, NewBank, NewContent, Thresholds,
};
use echotrace_store::testing::TestDb;
use echotrace_store::{both_backends, NewSighting, NewSightingMatch, Store};
use serde_json::Value;

both_backends!(
    disappearing_site,
    politeness_per_host,
    kill_9_mid_round,
    tor_proxy
);

const H: i64 = 3_600_000;
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00Z

fn fixture(rel: &str) -> Vec<u8> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ));
    assert!(
        dir.is_dir(),
        "test fixtures missing: expected ../shared/fixtures at {}",
        dir.display()
    );
    std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

// ----- a scripted local site -------------------------------------------------------

#[derive(Clone)]
struct Page {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

fn page(status: u16, content_type: &'static str, body: &[u8]) -> Page {
    Page {
        status,
        content_type,
        body: body.to_vec(),
    }
}

/// Serves `pages` by path on every given listener; records (host, path,
/// arrival) of each request. `delay` holds each response back.
#[derive(Clone)]
struct Site {
    pages: Arc<Mutex<HashMap<String, Page>>>,
    log: Arc<Mutex<Vec<(String, String, Instant)>>>,
}

impl Site {
    fn start(ips: &[&str], delay: Duration) -> (Site, Vec<u16>) {
        let site = Site {
            pages: Arc::default(),
            log: Arc::default(),
        };
        let mut ports = Vec::new();
        for ip in ips {
            let listener = TcpListener::bind((*ip, 0)).unwrap();
            ports.push(listener.local_addr().unwrap().port());
            let s = site.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let s = s.clone();
                    std::thread::spawn(move || s.serve(stream, delay));
                }
            });
        }
        (site, ports)
    }

    fn set(&self, path: &str, p: Page) {
        self.pages.lock().unwrap().insert(path.to_string(), p);
    }

    fn serve(&self, mut stream: TcpStream, delay: Duration) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut first = String::new();
        if reader.read_line(&mut first).unwrap_or(0) == 0 {
            return;
        }
        let arrived = Instant::now();
        let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut host = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("host:") {
                host = v.trim().to_string();
            }
        }
        self.log.lock().unwrap().push((host, path.clone(), arrived));
        std::thread::sleep(delay);
        let p = self
            .pages
            .lock()
            .unwrap()
            .get(&path)
            .cloned()
            .unwrap_or(page(404, "text/plain", b"not found"));
        let head = format!(
            "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            p.status,
            p.content_type,
            p.body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&p.body);
    }

    fn requests(&self) -> Vec<(String, String, Instant)> {
        self.log.lock().unwrap().clone()
    }
}

// ----- database set-up ----------------------------------------------------------------

/// A bank item for the original image; returns (engine, bank id, content id).
async fn bank_item(db: &TestDb, original: &[u8]) -> (Engine, i64, i64) {
    let engine = Engine::open_without_indexes(EngineConfig::with_database_url(&db.url))
        .await
        .unwrap();
    let bank = engine
        .create_bank(
            &Actor::system(),
            NewBank {
                name: "liveness-test".into(),
                kind: BankKind::Block,
                description: String::new(),
                thresholds: Thresholds::default(),
                text_equivalences: None,
            },
        )
        .await
        .unwrap();
    let c = engine
        .add_content(
            &Actor::system(),
            bank.id,
            NewContent {
                source: ContentSource::Bytes(original.to_vec()),
                labels: Vec::new(),
                note: String::new(),
            },
        )
        .await
        .unwrap();
    (engine, bank.id, c.id)
}

/// A matched sighting of the item at `url` (first seen at T0), with the
/// original's signals.
async fn sighting(
    store: &Store,
    url: &str,
    host: &str,
    original: &[u8],
    bank_id: i64,
    content_id: i64,
) -> i64 {
    let signals = echotrace_signals::content::hash_content(original, &Default::default()).unwrap();
    let url_sha = echotrace_signals::digest::sha256_hex(url.as_bytes());
    let sha = echotrace_signals::digest::sha256_hex(original);
    let mut tx = store.write().await.unwrap();
    let (s, _) = tx
        .upsert_sighting(&NewSighting {
            source_id: None,
            url,
            url_canonical: url,
            url_sha256: &url_sha,
            host,
            platform: "Local",
            parent_id: None,
            content_sha256: &sha,
            media_type: "image",
            seen_at: T0,
            expires_at: None,
            warc: None,
            implied_signals: 0,
        })
        .await
        .unwrap();
    let pairs: Vec<(&str, &str)> = signals
        .iter()
        .map(|s| (s.signal_type.as_str(), s.value.as_str()))
        .collect();
    tx.insert_sighting_signals(s.id, &pairs).await.unwrap();
    tx.mark_sighting_matched(s.id, None).await.unwrap();
    tx.insert_sighting_match(&NewSightingMatch {
        sighting_id: s.id,
        content_id,
        bank_id,
        signal_type: "pdq",
        match_id: None,
        distance: Some(0),
        similarity: None,
        channel: "plain",
        found_by: "fetch",
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    s.id
}

/// `echotrace liveness run --once` at T0 + `hours`, with `extra` flags;
/// returns the JSON summary.
fn round(db: &TestDb, hours: i64, extra: &[&str]) -> Value {
    let at = (T0 + hours * H).to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_echotrace"))
        .args([
            "liveness",
            "--db",
            &db.url,
            "run",
            "--once",
            "--allow-private-addresses",
            "--at",
            &at,
        ])
        .args([
            "--schedule",
            "1h,2h,3h,4h",
            "--confirm-after",
            "1h",
            "--timeout-secs",
            "5",
        ])
        .args(["--contact", "https://example.invalid/echotrace-tests"])
        // Politeness has its own test (politeness_per_host); elsewhere a
        // short gap keeps the one-host scripted site quick.
        .args(if extra.contains(&"--politeness-ms") {
            &[][..]
        } else {
            &["--politeness-ms", "20"][..]
        })
        .args(extra)
        .env_remove("ECHOTRACE_DATABASE_URL")
        .output()
        .expect("run echotrace liveness");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "liveness run failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "JSON summary: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The recorded states of a sighting's checks, in order.
async fn states(store: &Store, id: i64) -> Vec<String> {
    store
        .checks_of(id, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.state)
        .collect()
}

const REMOVED_PAGE: &[u8] = b"<!doctype html><html><body><h1>LocalLocker</h1>\
    <p>Sorry, this file was taken down by LocalLocker staff.</p></body></html>";

async fn disappearing_site(db: &TestDb) {
    let original = fixture("pdq/images/bridge-mods/square-256x256.jpg");
    let resized = fixture("pdq/images/bridge-mods/square-128x128.jpg");
    let other = fixture("pdq/images/labelme/q0003.jpg");
    let (site, ports) = Site::start(&["127.0.0.1"], Duration::ZERO);
    let base = format!("http://127.0.0.1:{}", ports[0]);
    let (engine, bank, item) = bank_item(db, &original).await;
    let store = engine.store().clone();
    let jpeg = "image/jpeg";
    let paths = [
        "same",
        "gone",
        "removed-page",
        "locker-page",
        "swapped",
        "resized",
        "back",
        "blip",
        "geo",
        "suspended",
        "flaky",
    ];
    let mut ids = HashMap::new();
    for p in paths {
        ids.insert(
            p,
            sighting(
                &store,
                &format!("{base}/{p}"),
                "127.0.0.1",
                &original,
                bank,
                item,
            )
            .await,
        );
        site.set(&format!("/{p}"), page(200, jpeg, &original));
    }
    site.set("/resized", page(200, jpeg, &resized));
    site.set(
        "/geo",
        page(451, "text/plain", b"unavailable for legal reasons"),
    );
    site.set(
        "/suspended",
        page(
            200,
            "text/html",
            b"<html><body>This account has been suspended.</body></html>",
        ),
    );
    site.set("/flaky", page(503, "text/plain", b"try later"));
    let dns = sighting(
        &store,
        "http://nothing-here.invalid/x",
        "nothing-here.invalid",
        &original,
        bank,
        item,
    )
    .await;
    // The host's own "removed" page, named by an operator rule.
    let rules = std::env::temp_dir().join(format!(
        "echotrace-rules-{}-{}.json",
        std::process::id(),
        db.backend
    ));
    std::fs::write(&rules, r#"[{"name": "LocalLocker takedown page", "host": "127.0.0.1",
        "state": "removed_notice_page", "status": [200], "body_contains": ["taken down by LocalLocker"]}]"#).unwrap();
    let rules_flag = ["--removal-rules", rules.to_str().unwrap()];

    // Round 1 (+1 h): everything as first seen.
    let r = round(db, 1, &rules_flag);
    assert_eq!(r["enrolled"], 12, "{r}");
    assert_eq!(r["recorded"], 12, "{r}");
    // Round 2 (+2 h): pages disappear in different ways.
    site.set("/gone", page(404, "text/plain", b"no such file"));
    site.set("/removed-page", page(200, "text/html", REMOVED_PAGE));
    // A "file removed" page the collector's built-in locker rules know.
    site.set("/locker-page", page(200, "text/html", b"<html><head><title>Oops</title></head><body><p>This file has been removed.</p></body></html>"));
    site.set("/swapped", page(200, jpeg, &other));
    site.set("/back", page(410, "text/plain", b"gone"));
    site.set("/blip", page(404, "text/plain", b"oops"));
    round(db, 2, &rules_flag);
    for p in [
        "gone",
        "removed-page",
        "locker-page",
        "swapped",
        "back",
        "blip",
    ] {
        let l = store.get_liveness(ids[p]).await.unwrap().unwrap();
        assert_eq!(
            l.status, "removal_pending",
            "{p}: one removed check is not a removal"
        );
    }
    // Round 3 (+3 h): the blip is back; the others are still down.
    site.set("/blip", page(200, jpeg, &original));
    round(db, 3, &rules_flag);
    // Round 4 (+4 h): the page that was removed comes back.
    site.set("/back", page(200, jpeg, &original));
    round(db, 4, &rules_flag);

    let expect: [(&str, &[&str]); 11] = [
        ("same", &["live", "live", "live", "live"]),
        (
            "gone",
            &["live", "removed_gone", "removed_gone", "removed_gone"],
        ),
        (
            "removed-page",
            &[
                "live",
                "removed_notice_page",
                "removed_notice_page",
                "removed_notice_page",
            ],
        ),
        (
            "locker-page",
            &[
                "live",
                "removed_notice_page",
                "removed_notice_page",
                "removed_notice_page",
            ],
        ),
        (
            "swapped",
            &["live", "live_altered", "live_altered", "live_altered"],
        ),
        ("resized", &["live", "live", "live", "live"]),
        ("back", &["live", "removed_gone", "removed_gone", "live"]),
        ("blip", &["live", "removed_gone", "live", "live"]),
        (
            "geo",
            &["geo_blocked", "geo_blocked", "geo_blocked", "geo_blocked"],
        ),
        (
            "suspended",
            &[
                "account_suspended",
                "account_suspended",
                "account_suspended",
                "account_suspended",
            ],
        ),
        (
            "flaky",
            &[
                "inconclusive",
                "inconclusive",
                "inconclusive",
                "inconclusive",
            ],
        ),
    ];
    for (p, want) in expect {
        assert_eq!(states(&store, ids[p]).await, want, "{p}");
    }
    assert_eq!(states(&store, dns).await[0], "dns_fail");
    let status = |p: &'static str| {
        let store = store.clone();
        let id = ids[p];
        async move { store.get_liveness(id).await.unwrap().unwrap() }
    };
    for p in [
        "gone",
        "removed-page",
        "locker-page",
        "swapped",
        "suspended",
    ] {
        assert_eq!(
            status(p).await.status,
            "removed",
            "{p}: two consecutive removed checks"
        );
    }
    for p in ["same", "resized", "blip", "geo", "flaky"] {
        assert_eq!(status(p).await.status, "live", "{p}");
    }
    // Resurfacing: removed in (1 h, 2 h], confirmed at 3 h, back at 4 h.
    let back = status("back").await;
    assert_eq!((back.status.as_str(), back.resurfaced), ("live", 1));
    let rm = store.removals_of(ids["back"]).await.unwrap();
    assert_eq!(
        (
            rm[0].last_live_at,
            rm[0].first_removed_at,
            rm[0].confirmed_at,
            rm[0].resurfaced_at
        ),
        (T0 + H, T0 + 2 * H, T0 + 3 * H, Some(T0 + 4 * H))
    );
    // Why each verdict: re-hashing, not the status code.
    let resized_checks = store.checks_of(ids["resized"], 10).await.unwrap();
    assert!(
        resized_checks[0].detail.contains("pdq distance"),
        "{}",
        resized_checks[0].detail
    );
    let swapped = store.checks_of(ids["swapped"], 10).await.unwrap();
    assert_eq!(swapped[1].http_status, Some(200));
    let page_checks = store.checks_of(ids["removed-page"], 10).await.unwrap();
    assert!(
        page_checks[1].detail.contains("LocalLocker takedown page"),
        "{}",
        page_checks[1].detail
    );
    let locker_checks = store.checks_of(ids["locker-page"], 10).await.unwrap();
    assert!(
        locker_checks[1].detail.contains("locker rule"),
        "{}",
        locker_checks[1].detail
    );

    // The report counts the same: 6 confirmed removals (gone, removed page,
    // locker page, swapped, suspended, back), 5 still removed, 1 resurfaced.
    let out = Command::new(env!("CARGO_BIN_EXE_echotrace"))
        .args([
            "report",
            "--db",
            &db.url,
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
            "--format",
            "json",
        ])
        .env_remove("ECHOTRACE_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["totals"]["copies"], 12);
    assert_eq!(rep["totals"]["confirmed_removals"], 6, "{}", rep["totals"]);
    assert_eq!(rep["totals"]["removed"], 5);
    assert_eq!(rep["totals"]["resurfaced"], 1);
    assert_eq!(
        rep["settings"]["schedule"], "1h,2h,3h,4h",
        "the checker recorded its settings"
    );
    // Bad flags: a clear message and a non-zero exit.
    for (args, needle) in [
        (vec!["--schedule", "6h,1h"], "--schedule"),
        (vec!["--removed-states", "live"], "--removed-states"),
        (vec!["--proxy", "http://127.0.0.1:1"], "--proxy"),
        (vec!["--at", "soon"], "--at"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_echotrace"))
            .args(["liveness", "--db", &db.url, "run", "--once"])
            .args(["--contact", "https://example.invalid/echotrace-tests"])
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let _ = std::fs::remove_file(rules);
    engine.store().close().await;
}

async fn politeness_per_host(db: &TestDb) {
    let original = fixture("pdq/images/bridge-mods/square-256x256.jpg");
    let (site, ports) = Site::start(&["127.0.0.1", "127.0.0.2"], Duration::ZERO);
    let (engine, bank, item) = bank_item(db, &original).await;
    for (i, ip) in ["127.0.0.1", "127.0.0.2"].iter().enumerate() {
        for n in 0..6 {
            let url = format!("http://{ip}:{}/p{n}", ports[i]);
            sighting(engine.store(), &url, ip, &original, bank, item).await;
            site.set(&format!("/p{n}"), page(200, "image/jpeg", &original));
        }
    }
    let started = Instant::now();
    let r = round(db, 1, &["--politeness-ms", "250", "--workers", "8"]);
    let took = started.elapsed();
    assert_eq!(r["recorded"], 12, "{r}");
    let log = site.requests();
    let pages = log.iter().filter(|(_, p, _)| p != "/robots.txt").count();
    assert_eq!(pages, 12);
    for ip in ["127.0.0.1", "127.0.0.2"] {
        // Every request to the host, robots.txt included.
        let mut times: Vec<Instant> = log
            .iter()
            .filter(|(h, ..)| h.starts_with(ip))
            .map(|x| x.2)
            .collect();
        times.sort();
        assert!(times.len() >= 6);
        let min_gap = times.windows(2).map(|w| w[1] - w[0]).min();
        eprintln!(
            "{}: {ip}: closest two requests {min_gap:?} apart (bound 250 ms)",
            db.backend
        );
        for w in times.windows(2) {
            let gap = w[1] - w[0];
            // The collector's politeness holds a host's slot while a request
            // runs and frees it 250 ms (or 5 × its duration) after it ends,
            // so arrivals are at least 250 ms apart whatever the jitter.
            assert!(
                gap >= Duration::from_millis(250),
                "{ip}: two requests {gap:?} apart"
            );
        }
    }
    // Per host, not global: the two hosts were checked side by side, so
    // some request to one host arrived within the politeness gap of a
    // request to the other (one global slot would keep every pair 250 ms
    // apart). Read from the site's log, not the wall clock, so a loaded
    // machine cannot fail it.
    let at = |ip: &str| -> Vec<Instant> {
        log.iter()
            .filter(|(h, ..)| h.starts_with(ip))
            .map(|x| x.2)
            .collect()
    };
    let (a, b) = (at("127.0.0.1"), at("127.0.0.2"));
    let closest = a
        .iter()
        .flat_map(|x| b.iter().map(move |y| if x > y { *x - *y } else { *y - *x }))
        .min()
        .expect("both hosts were requested");
    assert!(
        closest < Duration::from_millis(250),
        "hosts checked one after the other: closest pair {closest:?} (took {took:?})"
    );
    engine.store().close().await;
}

async fn kill_9_mid_round(db: &TestDb) {
    let original = fixture("pdq/images/bridge-mods/square-256x256.jpg");
    let (site, ports) = Site::start(&["127.0.0.1"], Duration::from_millis(15));
    let (engine, bank, item) = bank_item(db, &original).await;
    let store = engine.store().clone();
    const N: usize = 300;
    for n in 0..N {
        let url = format!("http://127.0.0.1:{}/k{n}", ports[0]);
        sighting(&store, &url, "127.0.0.1", &original, bank, item).await;
        site.set(&format!("/k{n}"), page(200, "image/jpeg", &original));
    }
    let at = (T0 + H).to_string();
    let args = |cmd: &mut Command| {
        cmd.args([
            "liveness",
            "--db",
            &db.url,
            "run",
            "--once",
            "--allow-private-addresses",
            "--at",
            &at,
            "--schedule",
            "1h,2h",
            "--politeness-ms",
            "0",
            "--workers",
            "4",
            "--lease-secs",
            "2",
            "--contact",
            "https://example.invalid/echotrace-tests",
        ])
        .env_remove("ECHOTRACE_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    };
    let mut first = Command::new(env!("CARGO_BIN_EXE_echotrace"));
    args(&mut first);
    let mut child = first.spawn().unwrap();
    // Kill -9 once some outcomes are committed, well before the round ends.
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = || async {
        let counts = store.check_counts(0, i64::MAX).await.unwrap();
        counts.iter().map(|c| c.1 as usize).sum::<usize>()
    };
    loop {
        let n = count().await;
        if n >= 20 {
            break;
        }
        assert!(Instant::now() < deadline, "the checker recorded nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let after_kill = count().await;
    assert!(
        after_kill < N,
        "killed too late to prove anything ({after_kill} of {N})"
    );
    // Leases held by the dead process expire after 2 s; then a new run.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut second = Command::new(env!("CARGO_BIN_EXE_echotrace"));
    args(&mut second);
    assert!(second.status().unwrap().success());
    // Exactly one outcome per due check: none lost, none repeated.
    let rows = store
        .checks_page(0, i64::MAX, 0, 10 * N as i64)
        .await
        .unwrap();
    assert_eq!(rows.len(), N, "one outcome per sighting");
    assert!(rows.iter().all(|r| r.seq == 1));
    let distinct: std::collections::HashSet<i64> = rows.iter().map(|r| r.sighting_id).collect();
    assert_eq!(distinct.len(), N);
    let ids: Vec<i64> = distinct.into_iter().collect();
    let live = store.liveness_of(&ids).await.unwrap();
    assert_eq!(live.len(), N);
    assert!(live.iter().all(|l| l.checks == 1));
    let pages = site
        .requests()
        .iter()
        .filter(|(_, p, _)| p != "/robots.txt")
        .count();
    assert!(pages >= N, "every URL was fetched at least once");
    engine.store().close().await;
}

/// A minimal SOCKS5 server: no auth, CONNECT by domain name; every domain
/// is recorded and connected to `target` (the local site).
fn socks5(target: u16) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut b = [0u8; 262];
                c.read_exact(&mut b[..2]).unwrap();
                let n = b[1] as usize;
                c.read_exact(&mut b[..n]).unwrap();
                c.write_all(&[5, 0]).unwrap();
                c.read_exact(&mut b[..4]).unwrap();
                let name = match b[3] {
                    3 => {
                        c.read_exact(&mut b[..1]).unwrap();
                        let len = b[0] as usize;
                        c.read_exact(&mut b[..len]).unwrap();
                        String::from_utf8_lossy(&b[..len]).to_string()
                    }
                    1 => {
                        c.read_exact(&mut b[..4]).unwrap();
                        format!("ip:{}.{}.{}.{}", b[0], b[1], b[2], b[3])
                    }
                    _ => "unsupported".to_string(),
                };
                c.read_exact(&mut b[..2]).unwrap();
                log.lock().unwrap().push(name);
                let up = TcpStream::connect(("127.0.0.1", target)).unwrap();
                c.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).unwrap();
                let (mut a, mut b2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
                let (mut c2, mut up2) = (c, up);
                let t = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut a, &mut b2);
                });
                let _ = std::io::copy(&mut up2, &mut c2);
                let _ = t.join();
            });
        }
    });
    (port, seen)
}

async fn tor_proxy(db: &TestDb) {
    let original = fixture("pdq/images/bridge-mods/square-256x256.jpg");
    let (site, ports) = Site::start(&["127.0.0.1"], Duration::ZERO);
    site.set("/hidden", page(200, "image/jpeg", &original));
    let (socks_port, seen) = socks5(ports[0]);
    let (engine, bank, item) = bank_item(db, &original).await;
    let onion = "exampleexampleexampleexampleexampleexampleexampleexampl.onion";
    let id = sighting(
        engine.store(),
        &format!("http://{onion}/hidden"),
        onion,
        &original,
        bank,
        item,
    )
    .await;
    // Without a proxy: refused, never looked up.
    round(db, 1, &[]);
    let c = engine.store().checks_of(id, 10).await.unwrap();
    assert_eq!(c[0].state, "inconclusive");
    assert!(
        c[0].detail.contains("onion service") && c[0].detail.contains("proxy"),
        "{}",
        c[0].detail
    );
    // Through the SOCKS5 proxy: the name goes to the proxy (socks5h).
    let proxy = format!("socks5h://127.0.0.1:{socks_port}");
    round(db, 2, &["--proxy", &proxy]);
    let c = engine.store().checks_of(id, 10).await.unwrap();
    assert_eq!(
        (c[1].state.as_str(), c[1].via.as_str()),
        ("live", "proxy"),
        "{}",
        c[1].detail
    );
    // robots.txt and the page, both through the proxy, both by name.
    let names = seen.lock().unwrap().clone();
    assert!(
        !names.is_empty() && names.iter().all(|n| n == onion),
        "{names:?}"
    );
    let pages: Vec<String> = site.requests().into_iter().map(|r| r.1).collect();
    assert!(pages.contains(&"/hidden".to_string()), "{pages:?}");
    engine.store().close().await;
}

/// `liveness run` reads the contact from `--contact` or from the same
/// variable as `collect run` (`ECHOTRACE_COLLECTOR_CONTACT`); with neither
/// it exits non-zero naming both, before touching anything.
#[test]
fn contact_comes_from_the_collectors_variable() {
    let db = TestDb::sqlite();
    let run = |env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_echotrace"));
        c.args(["liveness", "--db", &db.url, "run", "--once"])
            .env_remove("ECHOTRACE_COLLECTOR_CONTACT")
            .env_remove("ECHOTRACE_CONTACT")
            .env_remove("ECHOTRACE_DATABASE_URL");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run echotrace liveness")
    };
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("--contact") && err.contains("ECHOTRACE_COLLECTOR_CONTACT"),
        "{err}"
    );
    for var in ["ECHOTRACE_COLLECTOR_CONTACT", "ECHOTRACE_CONTACT"] {
        let out = run(&[(var, "https://example.invalid/echotrace-tests")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{var}: {err}");
        let summary: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{var}: {e}: {:?}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(summary["checked"], 0, "{var}: {summary}");
    }
}
