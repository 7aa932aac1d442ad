//! Signal exchange over HTTP: exchanges against local mock servers that
//! follow the TCAP and ThreatExchange wire formats (pagination, cursor
//! resume, tombstones, 429 with Retry-After, 500s, malformed records,
//! expired tokens, write-back), hostile upstreams, HMA's `/c/exchange…`
//! shapes, published feeds (cursor, long-poll, snapshot, checksum, 410,
//! partner scope, opinions), provenance in lookups, and credentials that
//! never come back. A real server on a loopback port; every test body runs
//! on SQLite and on PostgreSQL (`$ECHOTRACE_TEST_PG_URL`).

#[path = "../../exchange/tests/mocks/mod.rs"]
mod mocks;

mod common;

use std::time::{Duration, Instant};

use echotrace_server::ExchangeSettings;
use echotrace_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use echotrace_store::both_backends;

both_backends!(
    tat_adapter_against_mock,
    threatexchange_adapter_and_hma_routes,
    hostile_upstreams_end_in_recorded_errors,
    feeds_cursor_long_poll_snapshot_gone_and_scope,
    credentials_never_come_back,
    fetch_without_credentials_is_a_conflict,
    config_and_credential_errors_name_the_field,
);

use common::Server as Service;

/// A server whose exchange fetches are driven by the tests and whose
/// upstream responses are capped at `max_body` bytes.
async fn start(db: &TestDb, max_body: usize) -> Service {
    // Tests start servers in parallel: a millisecond clock alone could give
    // two of them one directory (and one key file, removed by the first to stop).
    static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "et-exchange-api-{}-{}-{}",
        std::process::id(),
        echotrace_store::now_ms(),
        STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = common::config(&db.url);
    config.engine.outbox = common::fast_outbox();
    config.exchanges = ExchangeSettings {
        // Fetches are driven by the tests (POST …/fetch); feeds build.
        run_workers: false,
        run_feed_builder: true,
        net: echotrace_server::echotrace_exchange::NetPolicy {
            allow_loopback: true,
            max_body,
            timeout: Duration::from_secs(10),
            ..Default::default()
        },
        secret_key_file: dir.join("key.secret"),
        lease_ttl: Duration::from_secs(15),
    };
    let mut svc = Service::start(config, None).await.remove_on_stop(dir);
    svc.timeout = Some(Duration::from_secs(60));
    svc
}

impl Service {
    async fn lookup(&self, signals: Value) -> Value {
        self.ok(
            Method::POST,
            "/v1/lookup",
            Some(json!({"signals": signals})),
        )
        .await
    }
}

fn pdq(i: i64) -> String {
    let mut x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut s = String::new();
    for _ in 0..4 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x}"));
    }
    s
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const TAT_PASSWORD: &str = "correct horse";

async fn tat_exchange(svc: &Service, base: &str, name: &str, page: u32) {
    let (s, v) = svc
        .call(
            Some(&svc.admin),
            Method::POST,
            "/v1/exchanges",
            Some(json!({
                "name": name, "api": "tat",
                "config": {"base_url": format!("{base}/"), "page_size": page},
                "credentials": {"username": "analyst", "password": TAT_PASSWORD},
                "poll_interval_secs": 3600,
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(!v.to_string().contains(TAT_PASSWORD));
    assert_eq!(v["has_credentials"], true);
    assert_eq!(v["bank"], name);
}

async fn tat_adapter_against_mock(db: &TestDb) {
    let svc = start(db, 64 << 20).await;
    let mut records = mocks::tat_records(25, pdq);
    records.push(mocks::TatRecord {
        id: 26,
        broken: true,
        ..records[0].clone()
    });
    records.push(mocks::TatRecord {
        id: 27,
        algorithm: "SHA512".into(),
        hash_digest: "ab".repeat(64),
        updated_on: 1_704_085_300.0,
        ..records[0].clone()
    });
    let (base, mock) = mocks::tat(records).await;
    {
        let mut m = mock.lock().unwrap();
        m.token_uses = 2; // tokens expire after two data requests
        m.faults.push_back(mocks::Fault::TooMany(1));
        m.faults.push_back(mocks::Fault::ServerError);
    }
    tat_exchange(&svc, &base, "TCAP", 10).await;
    let started = Instant::now();
    let r = svc.ok(Method::POST, "/v1/exchanges/TCAP/fetch", None).await;
    let report = &r["report"];
    assert_eq!(report["records"], 25, "{r}");
    assert_eq!(report["malformed"], 1, "{r}");
    assert_eq!(report["unsupported"], 1, "{r}");
    assert_eq!(report["retries"], 2, "{r}");
    assert_eq!(report["items_added"], 25, "{r}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert!(mock.lock().unwrap().issued >= 2, "expired token re-issued");
    // Labels and provenance in v1 and HMA lookups.
    let hit = svc.lookup(json!({"pdq": pdq(4)})).await;
    let m = &hit["matches"][0];
    assert_eq!(m["bank_name"], "TCAP", "{hit}");
    assert_eq!(
        m["labels"],
        json!(["content_type:jpg", "ideology:islamist"])
    );
    assert_eq!(m["provenance"][0]["exchange"], "TCAP");
    assert_eq!(m["provenance"][0]["upstream_id"], "4");
    assert_eq!(
        m["provenance"][0]["labels"]["ideology"],
        json!(["islamist"])
    );
    let hma = svc
        .ok(
            Method::GET,
            &format!("/m/lookup?signal_type=pdq&signal={}", pdq(4)),
            None,
        )
        .await;
    assert_eq!(hma["TCAP"][0]["provenance"][0]["exchange"], "TCAP", "{hma}");
    // The malformed record is in the status.
    let st = svc.ok(Method::GET, "/v1/exchanges/TCAP/status", None).await;
    let err = st["status"]["last_error"].as_str().unwrap_or("");
    assert!(err.contains("malformed") && err.contains("id 26"), "{st}");
    assert_eq!(st["status"]["applied"], 25);
    // Upstream adds five and deletes two: the cursor resumes (only the
    // seven changes come back), tombstones delete.
    {
        let mut m = mock.lock().unwrap();
        m.records.retain(|r| !r.broken && r.algorithm != "SHA512");
        for r in m.records.iter_mut().filter(|r| r.id == 4 || r.id == 5) {
            r.deleted = true;
            r.updated_on = 1_704_090_000.0 + r.id as f64;
        }
        for i in 100..105 {
            let mut r = mocks::tat_records(1, pdq).remove(0);
            r.id = i;
            r.hash_digest = pdq(i);
            r.updated_on = 1_704_090_100.0 + i as f64;
            m.records.push(r);
        }
    }
    let r = svc.ok(Method::POST, "/v1/exchanges/TCAP/fetch", None).await;
    assert_eq!(r["report"]["records"], 7, "{r}");
    assert_eq!(r["report"]["items_deleted"], 2, "{r}");
    assert_eq!(r["report"]["items_added"], 5, "{r}");
    assert!(svc.lookup(json!({"pdq": pdq(4)})).await["matches"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        svc.lookup(json!({"pdq": pdq(101)})).await["matches"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A reviewer rejects a match: TCAP gets FALSE_POSITIVE feedback.
    let hit = svc.lookup(json!({"pdq": pdq(7)})).await;
    let match_id = hit["matches"][0]["id"].as_i64().unwrap();
    svc.ok(
        Method::POST,
        &format!("/v1/matches/{match_id}/decision"),
        Some(json!({"decision": "reject"})),
    )
    .await;
    wait_for("TCAP feedback", Duration::from_secs(10), || {
        !mock.lock().unwrap().feedback.is_empty()
    })
    .await;
    let fb = mock.lock().unwrap().feedback[0].clone();
    assert_eq!(fb["hash_digest"], pdq(7));
    assert_eq!(fb["category"], 1, "FALSE_POSITIVE: {fb}");
    // The worker records the opinion after TCAP has answered, so the
    // audit entry may land just after the mock saw the feedback.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let audit = svc.ok(Method::GET, "/v1/audit?limit=200", None).await;
        if audit.to_string().contains("exchange.opinion_sent") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no exchange.opinion_sent: {audit}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Wrong password: an authentication error, recorded.
    svc.ok(
        Method::PATCH,
        "/v1/exchanges/TCAP",
        Some(json!({"credentials": {"username": "analyst", "password": "wrong"}})),
    )
    .await;
    let (s, v) = svc
        .call(
            Some(&svc.admin),
            Method::POST,
            "/v1/exchanges/TCAP/fetch",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("authentication"),
        "{v}"
    );
    let st = svc.ok(Method::GET, "/v1/exchanges/TCAP", None).await;
    assert!(st["status"]["last_error"]
        .as_str()
        .unwrap()
        .contains("authentication"));
    assert_eq!(st["status"]["applied"], 28, "nothing applied is lost: {st}");
    svc.stop().await;
}

async fn threatexchange_adapter_and_hma_routes(db: &TestDb) {
    let svc = start(db, 64 << 20).await;
    let updates = mocks::te_updates_set(30, pdq);
    let (base, mock) = mocks::te(updates.clone()).await;
    mock.lock()
        .unwrap()
        .faults
        .push_back(mocks::Fault::ServerError);
    // HMA's routes.
    let apis = svc.ok(Method::GET, "/c/exchanges/apis", None).await;
    assert!(
        apis.as_array()
            .unwrap()
            .contains(&json!("fb_threatexchange")),
        "{apis}"
    );
    let schema = svc
        .ok(
            Method::GET,
            "/c/exchanges/api/fb_threatexchange/schema",
            None,
        )
        .await;
    assert!(schema["config_schema"]["fields"]
        .to_string()
        .contains("privacy_group"));
    let (s, v) = svc
        .call(
            Some(&svc.admin),
            Method::POST,
            "/c/exchanges",
            Some(json!({"bank": "bad-name", "api": "fb_threatexchange", "api_json": {}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = svc
        .call(
            Some(&svc.admin),
            Method::POST,
            "/c/exchanges",
            Some(json!({"bank": "GIFCT_TE", "api": "fb_threatexchange",
                        "api_json": {"privacy_group": 123, "base_url": base, "page_size": 8}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["message"], "Created successfully");
    let st = svc
        .ok(
            Method::POST,
            "/c/exchanges/api/fb_threatexchange",
            Some(json!({"credential_json": {"api_token": mocks::TE_TOKEN}})),
        )
        .await;
    assert_eq!(
        st,
        json!({"supports_authentification": true, "has_set_authentification": true})
    );
    assert_eq!(
        svc.ok(Method::GET, "/c/exchanges", None).await,
        json!(["GIFCT_TE"])
    );
    let ex = svc.ok(Method::GET, "/c/exchange/GIFCT_TE", None).await;
    assert_eq!(ex["privacy_group"], 123);
    assert_eq!(ex["api"], "fb_threatexchange");
    assert_eq!(ex["enabled"], true);
    // Fetch: 30 updates in 4 pages, tombstones and unsupported types.
    let r = svc
        .ok(Method::POST, "/v1/exchanges/GIFCT_TE/fetch", None)
        .await;
    assert_eq!(r["report"]["records"], 30, "{r}");
    assert_eq!(r["report"]["retries"], 1, "{r}");
    let live: Vec<&mocks::TeUpdate> = updates.iter().filter(|u| !u.should_delete).collect();
    assert_eq!(r["report"]["items_added"], live.len(), "{r}");
    let status = svc
        .ok(Method::GET, "/c/exchange/GIFCT_TE/status", None)
        .await;
    assert_eq!(status["fetched_items"], live.len(), "{status}");
    assert_eq!(status["last_fetch_succeeded"], true);
    // A URI indicator matches a url lookup (canonicalised); opinions and
    // tags come along.
    let hit = svc
        .lookup(json!({"url": "https://EXAMPLE.com/propaganda/9"}))
        .await;
    let m = &hit["matches"][0];
    assert_eq!(m["provenance"][0]["exchange"], "GIFCT_TE", "{hit}");
    assert_eq!(m["provenance"][0]["labels"]["tags"], json!(["terrorism"]));
    assert_eq!(m["provenance"][0]["aggregate"], "positive");
    assert_eq!(m["provenance"][0]["opinions"].as_array().unwrap().len(), 2);
    // Incremental: one more update and one deletion since the checkpoint.
    {
        let mut s = mock.lock().unwrap();
        let mut gone = s.updates[1].clone();
        gone.should_delete = true;
        gone.last_updated = 1_700_000_500;
        s.updates[1] = gone;
        let mut new = s.updates[2].clone();
        new.id = 9_999;
        new.indicator = pdq(999);
        new.last_updated = 1_700_000_501;
        s.updates.push(new);
    }
    let r = svc
        .ok(Method::POST, "/v1/exchanges/GIFCT_TE/fetch", None)
        .await;
    assert!(
        r["report"]["records"].as_u64().unwrap() <= 3,
        "start_time resume: {r}"
    );
    assert_eq!(r["report"]["items_deleted"], 1, "{r}");
    assert_eq!(
        svc.lookup(json!({"pdq": pdq(999)})).await["matches"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Confirm: HELPFUL reactions on the other apps' descriptors.
    let hit = svc.lookup(json!({"pdq": pdq(999)})).await;
    let id = hit["matches"][0]["id"].as_i64().unwrap();
    svc.ok(
        Method::POST,
        &format!("/v1/matches/{id}/decision"),
        Some(json!({"decision": "confirm"})),
    )
    .await;
    wait_for("reactions", Duration::from_secs(10), || {
        mock.lock().unwrap().reactions.len() >= 2
    })
    .await;
    let reactions = mock.lock().unwrap().reactions.clone();
    assert!(
        reactions.iter().all(|(_, r)| r == "HELPFUL"),
        "{reactions:?}"
    );
    assert!(reactions.iter().any(|(d, _)| d == "5003"), "{reactions:?}");
    // Disable, then delete through HMA's shapes.
    let v = svc
        .ok(
            Method::PUT,
            "/c/exchange/GIFCT_TE",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(v["enabled"], false);
    let v = svc.ok(Method::DELETE, "/c/exchange/GIFCT_TE", None).await;
    assert_eq!(v["message"], "Exchange deleted");
    assert_eq!(svc.ok(Method::GET, "/c/exchanges", None).await, json!([]));
    assert!(svc.lookup(json!({"pdq": pdq(999)})).await["matches"]
        .as_array()
        .unwrap()
        .is_empty());
    let (s, _) = svc
        .call(Some(&svc.admin), Method::GET, "/v1/banks/GIFCT_TE", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the exchange's bank goes with it");
    svc.stop().await;
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn hostile_upstreams_end_in_recorded_errors(db: &TestDb) {
    let svc = start(db, 16 << 20).await;
    let (base, mock) = mocks::tat(mocks::tat_records(20, pdq)).await;
    tat_exchange(&svc, &base, "HOSTILE", 10).await;
    let before = peak_rss_kib();
    let cases: Vec<(mocks::Fault, &str)> = vec![
        (mocks::Fault::Huge, "exceeds"),
        (mocks::Fault::Endless, "exceeds"),
        (mocks::Fault::NotJson, "malformed response"),
        (
            mocks::Fault::Redirect("http://10.1.2.3/steal".into()),
            "non-public",
        ),
    ];
    let mut first = true;
    for (fault, expect) in cases {
        {
            let mut m = mock.lock().unwrap();
            // The first round gets one good page in before the fault.
            if first {
                m.faults.push_back(mocks::Fault::Pass);
            }
            m.faults.push_back(fault.clone());
        }
        let (s, v) = svc
            .call(
                Some(&svc.admin),
                Method::POST,
                "/v1/exchanges/HOSTILE/fetch",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_GATEWAY, "{fault:?}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(expect), "{fault:?}: {msg}");
        assert!(!msg.contains("10.1.2.3/steal"), "no URLs in errors: {msg}");
        let st = svc.ok(Method::GET, "/v1/exchanges/HOSTILE", None).await;
        assert!(
            st["status"]["last_error"]
                .as_str()
                .unwrap()
                .contains(expect),
            "{st}"
        );
        first = false;
    }
    // A record with a 10 MB tag is skipped (and recorded); the rest apply.
    {
        let mut m = mock.lock().unwrap();
        m.faults.clear();
        let mut r = mocks::tat_records(1, pdq).remove(0);
        r.id = 50;
        r.hash_digest = pdq(50);
        r.updated_on = 1_704_099_999.0;
        r.huge_tag = true;
        m.records.push(r);
    }
    let r = svc
        .ok(Method::POST, "/v1/exchanges/HOSTILE/fetch", None)
        .await;
    assert_eq!(r["report"]["malformed"], 1, "{r}");
    let st = svc.ok(Method::GET, "/v1/exchanges/HOSTILE", None).await;
    assert!(
        st["status"]["last_error"]
            .as_str()
            .unwrap()
            .contains("id 50"),
        "{st}"
    );
    // Nothing applied before the failures was lost.
    assert_eq!(st["status"]["applied"], 20, "{st}");
    for i in [1, 10, 20] {
        let hits = svc.lookup(json!({"pdq": pdq(i)})).await;
        assert_eq!(hits["matches"].as_array().unwrap().len(), 1, "{i}: {hits}");
    }
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    eprintln!(
        "{}: hostile upstreams: the test process's peak RSS grew {grown_mib} MiB (bound 300)",
        db.backend
    );
    assert!(
        grown_mib < 300,
        "memory stayed bounded: peak grew {grown_mib} MiB"
    );
    svc.stop().await;
}

async fn feeds_cursor_long_poll_snapshot_gone_and_scope(db: &TestDb) {
    let svc = start(db, 64 << 20).await;
    svc.ok(
        Method::POST,
        "/v1/banks",
        Some(json!({"name": "shared", "kind": "block"})),
    )
    .await;
    svc.ok(
        Method::POST,
        "/v1/banks",
        Some(json!({"name": "private", "kind": "block"})),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = svc
            .ok(
                Method::POST,
                "/v1/banks/shared/content",
                Some(json!({"signals": {"pdq": pdq(i)}, "labels": ["ideology:islamist"]})),
            )
            .await;
        ids.push(c["id"].as_i64().unwrap());
    }
    let partner = svc.key_named("partner", "ngo-b").await;
    let other = svc.key_named("partner", "ngo-c").await;
    let (s, v) = svc
        .call(
            Some(&svc.admin),
            Method::PUT,
            "/v1/feeds/shared",
            Some(json!({"partners": ["nobody"]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let info = svc
        .ok(
            Method::PUT,
            "/v1/feeds/shared",
            Some(json!({"partners": ["ngo-b"]})),
        )
        .await;
    assert_eq!(info["live"], 5, "{info}");
    // Partner scope.
    let (s, _) = svc
        .call(Some(&other), Method::GET, "/v1/feeds/shared", None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = svc
        .call(
            Some(&partner),
            Method::POST,
            "/v1/lookup",
            Some(json!({"signals": {"pdq": pdq(1)}})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = svc
        .call(Some(&partner), Method::GET, "/v1/banks", None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = svc
        .call(Some(&partner), Method::GET, "/v1/feeds/private", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let list = svc
        .call(Some(&partner), Method::GET, "/v1/feeds", None)
        .await
        .1;
    assert_eq!(list["feeds"].as_array().unwrap().len(), 1);
    // Pages.
    let (_, p1) = svc
        .call(
            Some(&partner),
            Method::GET,
            "/v1/feeds/shared?limit=3",
            None,
        )
        .await;
    assert_eq!(p1["records"].as_array().unwrap().len(), 3, "{p1}");
    let c1 = p1["next_cursor"].as_str().unwrap().to_string();
    let (_, p2) = svc
        .call(
            Some(&partner),
            Method::GET,
            &format!("/v1/feeds/shared?limit=3&after={c1}"),
            None,
        )
        .await;
    assert_eq!(p2["records"].as_array().unwrap().len(), 2);
    assert_eq!(p2["records"][0]["labels"], json!(["ideology:islamist"]));
    let head = p2["next_cursor"].as_str().unwrap().to_string();
    // The checksum: SHA-256 over the sorted `type\tvalue\n` lines.
    let mut keys: Vec<String> = (0..5).map(|i| format!("pdq\t{}\n", pdq(i))).collect();
    keys.sort();
    let expected = echotrace_signals::digest::sha256_hex(keys.concat().as_bytes());
    let (_, sum) = svc
        .call(
            Some(&partner),
            Method::GET,
            "/v1/feeds/shared/checksum",
            None,
        )
        .await;
    assert_eq!(sum["checksum"], expected, "{sum}");
    assert_eq!(sum["cursor"], head);
    // Long-poll: a new item wakes a waiting subscriber within a second.
    let poll = {
        let http = svc.http.clone();
        let url = format!("{}/v1/feeds/shared?after={head}&wait=30", svc.base);
        let key = partner.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let v: Value = http
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (t.elapsed(), v)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let added = Instant::now();
    svc.ok(
        Method::POST,
        "/v1/banks/shared/content",
        Some(json!({"signals": {"pdq": pdq(9)}})),
    )
    .await;
    let (_, v) = poll.await.unwrap();
    eprintln!(
        "{}: long-poll answered {:?} after the add was sent",
        db.backend,
        added.elapsed()
    );
    assert!(
        added.elapsed() < Duration::from_secs(1),
        "long-poll woke in {:?}",
        added.elapsed()
    );
    assert_eq!(v["records"][0]["value"], pdq(9), "{v}");
    // Disable and delete: tombstones.
    svc.ok(
        Method::PATCH,
        &format!("/v1/banks/shared/content/{}", ids[0]),
        Some(json!({"enabled": false})),
    )
    .await;
    svc.ok(
        Method::DELETE,
        &format!("/v1/banks/shared/content/{}", ids[1]),
        None,
    )
    .await;
    let next = v["next_cursor"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    let tombs = loop {
        let (_, v) = svc
            .call(
                Some(&partner),
                Method::GET,
                &format!("/v1/feeds/shared?after={next}&wait=2"),
                None,
            )
            .await;
        let t: Vec<Value> = v["records"].as_array().unwrap().clone();
        if t.len() >= 2 || Instant::now() > deadline {
            break t;
        }
    };
    assert_eq!(tombs.len(), 2, "{tombs:?}");
    assert!(tombs.iter().all(|r| r["deleted"] == true));
    // Snapshot: the live set as JSONL, with the cursor in a header.
    let resp = svc
        .http
        .get(format!("{}/v1/feeds/shared/snapshot", svc.base))
        .bearer_auth(&partner)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("x-echotrace-cursor").is_some());
    let body = resp.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{body}");
    // Opinions from the partner reach the publisher.
    let (s, v) = svc
        .call(
            Some(&partner),
            Method::POST,
            "/v1/feeds/shared/opinions",
            Some(json!({"opinions": [{"signal_type": "pdq", "value": pdq(2), "category": "negative"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = svc
        .call(
            Some(&partner),
            Method::POST,
            "/v1/feeds/shared/opinions",
            Some(json!({"opinions": [{"signal_type": "pdq", "value": pdq(77), "category": "negative"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let ops = svc.ok(Method::GET, "/v1/feeds/shared/opinions", None).await;
    assert_eq!(ops["opinions"][0]["partner"], "ngo-b", "{ops}");
    assert_eq!(ops["opinions"][0]["category"], "negative");
    // Bad cursors are 400s; a cursor older than the purged tombstones is 410.
    let (s, _) = svc
        .call(
            Some(&partner),
            Method::GET,
            "/v1/feeds/shared?after=x",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = svc
        .call(
            Some(&partner),
            Method::GET,
            "/v1/feeds/shared?wait=999",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let store = echotrace_store::Store::open(&db.url).await.unwrap();
    let bank_id = svc.ok(Method::GET, "/v1/banks/shared", None).await["id"]
        .as_i64()
        .unwrap();
    let mut tx = store.write().await.unwrap();
    let purged = tx
        .purge_feed_tombstones(bank_id, echotrace_store::now_ms() + 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(purged, 2);
    store.close().await;
    let (s, v) = svc
        .call(
            Some(&partner),
            Method::GET,
            &format!("/v1/feeds/shared?after={head}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::GONE, "{v}");
    assert_eq!(v["error"]["code"], "cursor_expired");
    let (s, v) = svc
        .call(Some(&partner), Method::GET, "/v1/feeds/shared", None)
        .await;
    assert_eq!(s, StatusCode::OK, "paging from no cursor always works: {v}");
    svc.stop().await;
}

async fn credentials_never_come_back(db: &TestDb) {
    let svc = start(db, 64 << 20).await;
    let secrets = [
        "s3cr3t-TAT-password-9931",
        "87654321|TE-secret-token-abcdefghijkl",
        "et_peerkey_that_must_stay_secret_0042",
    ];
    svc.ok(
        Method::POST,
        "/v1/exchanges",
        Some(json!({"name": "T1", "api": "tat",
                    "credentials": {"username": "u", "password": secrets[0]}})),
    )
    .await;
    svc.ok(
        Method::POST,
        "/v1/exchanges",
        Some(json!({"name": "E1", "api": "echotrace",
                    "config": {"url": "http://127.0.0.1:9", "bank": "x"},
                    "credentials": {"api_key": secrets[2]}})),
    )
    .await;
    svc.ok(
        Method::POST,
        "/c/exchanges",
        Some(json!({"bank": "TE1", "api": "fb_threatexchange", "api_json": {"privacy_group": 1}})),
    )
    .await;
    svc.ok(
        Method::POST,
        "/c/exchanges/api/fb_threatexchange",
        Some(json!({"credential_json": {"api_token": secrets[1]}})),
    )
    .await;
    svc.ok(
        Method::PUT,
        "/v1/exchanges/apis/tat/credentials",
        Some(json!({"credentials": {"username": "x", "password": secrets[0]}})),
    )
    .await;
    // Bad credentials are a 400 naming the field, not an echo.
    let (s, v) = svc
        .call(
            Some(&svc.admin),
            Method::PATCH,
            "/v1/exchanges/TE1",
            Some(json!({"credentials": {"api_token": "not-a-token-SECRETISH"}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(!v.to_string().contains("SECRETISH"));
    let mut seen = String::new();
    for path in [
        "/v1/exchanges",
        "/v1/exchanges/T1",
        "/v1/exchanges/E1",
        "/v1/exchanges/TE1/status",
        "/v1/exchanges/apis",
        "/v1/exchanges/apis/tat/credentials",
        "/c/exchanges",
        "/c/exchange/T1",
        "/c/exchange/TE1",
        "/c/exchange/E1/status",
        "/c/exchanges/api/fb_threatexchange",
        "/c/exchanges/api/tat/schema",
        "/v1/audit?limit=1000",
        "/metrics",
        "/openapi.json",
    ] {
        let (s, text) = svc.raw(Some(&svc.admin), Method::GET, path, None).await;
        assert!(s.is_success(), "{path}: {s} {text}");
        seen.push_str(&text);
    }
    // The console page too.
    let (_, text) = svc.raw(None, Method::GET, "/ui/exchanges", None).await;
    seen.push_str(&text);
    for s in secrets {
        assert!(!seen.contains(s), "a secret came back");
        assert!(!seen.contains(&s[4..20]), "part of a secret came back");
    }
    // Every documented exchange route is served (401 without a key).
    let doc = svc.ok(Method::GET, "/openapi.json", None).await;
    for (method, path, ..) in echotrace_server::openapi::EXCHANGE_ROUTES {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        let real = path
            .replace("{name}", "T1")
            .replace("{bank}", "x")
            .replace("{api}", "tat");
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let (s, _) = svc.raw(None, m, &real, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // At rest: sealed, never plaintext.
    let store = echotrace_store::Store::open(&db.url).await.unwrap();
    let rows = store.list_exchanges().await.unwrap();
    assert!(rows.iter().all(|r| r
        .credentials
        .as_deref()
        .is_none_or(|c| c.starts_with("v1."))));
    let dump = format!(
        "{rows:?}{:?}",
        store.exchange_api_credentials("tat").await.unwrap()
    );
    for s in secrets {
        assert!(!dump.contains(s));
    }
    store.close().await;
    svc.stop().await;
}

/// Fetching an exchange that has no credentials contacts nobody: a 409
/// saying what to set (was a 502 Bad Gateway, a server error, found by
/// schemathesis).
async fn fetch_without_credentials_is_a_conflict(db: &TestDb) {
    let svc = start(db, 1 << 20).await;
    let (s, v) = svc
        .admin_call(
            Method::POST,
            "/v1/exchanges",
            Some(json!({"name": "no-creds", "api": "tat"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = svc
        .admin_call(Method::POST, "/v1/exchanges/no-creds/fetch", None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "not_configured", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("credentials"), "{v}");
    svc.stop().await;
}

/// An exchange's config or credentials with a field of the wrong type is a
/// 400 whose reason names the field, on create and on update, as the
/// checks after parsing always did (`config: privacy_group: …`). (Before:
/// serde's message alone, `invalid type: string "abc", expected i64`.)
async fn config_and_credential_errors_name_the_field(db: &TestDb) {
    let svc = start(db, 1 << 20).await;
    let te = |config: Value| json!({"name": "TE", "api": "fb_threatexchange", "config": config});
    let cases = [
        (
            te(json!({"privacy_group": "abc"})),
            "config: privacy_group: invalid type",
        ),
        (
            te(json!({"privacy_group": 1, "page_size": 1.5})),
            "config: page_size: invalid type",
        ),
        (te(json!({})), "config: missing field `privacy_group`"),
        (te(json!([1])), "config: expected a JSON object"),
        (
            json!({"name": "T", "api": "tat", "credentials": {"username": 5, "password": "p"}}),
            "credentials: username: invalid type",
        ),
    ];
    for (body, reason) in &cases {
        let (st, v) = svc
            .admin_call(Method::POST, "/v1/exchanges", Some(body.clone()))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(reason), "{body}: {v}");
    }
    svc.ok(
        Method::POST,
        "/v1/exchanges",
        Some(te(json!({"privacy_group": 1}))),
    )
    .await;
    let (st, v) = svc
        .admin_call(
            Method::PATCH,
            "/v1/exchanges/TE",
            Some(json!({"config": {"privacy_group": [1]}})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("config: privacy_group: invalid type"),
        "{v}"
    );
    svc.stop().await;
}
