//! Process-level tests of `echotrace serve`: the real binary on a loopback
//! port, on SQLite and on PostgreSQL (`$ECHOTRACE_TEST_PG_URL`; FAILS if
//! unset, unless `ECHOTRACE_SKIP_PG=1`).
//!
//! * crash safety: `kill -9` while clients add content and run lookups;
//!   after a restart every acknowledged write and match is there and the
//!   index answers the same;
//! * two processes on one database: a bank change made through one is
//!   matched by the other within 2 s;
//! * an MP4 with its index after the media data is refused with a 400
//!   saying how to remux it, and hashed with `--video-temp-dir`.

mod common;

use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use echotrace_store::testing::TestDb;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use echotrace_store::both_backends;

both_backends!(
    kill_9_loses_no_acknowledged_write,
    two_processes_share_bank_changes,
    moov_last_videos_need_the_video_temp_dir
);

/// A running `echotrace serve` child, killed on drop.
struct Server {
    child: Child,
    base: String,
    admin: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Start the binary; if the database has no keys, it prints an admin key.
    async fn spawn(db_url: &str) -> Server {
        let l = common::launch(
            &[
                "serve",
                "--db",
                db_url,
                "--listen",
                "127.0.0.1:0",
                "--no-webhooks",
                "--tail-interval-ms",
                "100",
                "--threads",
                "2",
            ],
            &[],
        )
        .await;
        Server {
            child: l.child,
            base: l.base,
            admin: l.admin,
        }
    }

    fn kill_9(&mut self) {
        // std's Child::kill sends SIGKILL on Unix.
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }
}

async fn call(
    client: &Client,
    key: &str,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Option<(StatusCode, Value)> {
    let mut req = client
        .request(method, url)
        .bearer_auth(key)
        .timeout(Duration::from_secs(10));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.ok()?;
    let s = resp.status();
    let v = resp.json::<Value>().await.unwrap_or(Value::Null);
    Some((s, v))
}

/// (pdq looked up, content ids it matched, match ids recorded).
type AckedLookup = (String, Vec<i64>, Vec<i64>);

/// Deterministic, well-spread random PDQ hashes.
fn hashes(n: usize, seed: u64) -> Vec<String> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            (0..4)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("{x:016x}")
                })
                .collect()
        })
        .collect()
}

async fn kill_9_loses_no_acknowledged_write(db: &TestDb) {
    let mut server = Server::spawn(&db.url).await;
    let admin = server
        .admin
        .clone()
        .expect("first start prints an admin key");
    let client = Client::new();
    let base = server.base.clone();
    let (s, v) = call(
        &client,
        &admin,
        reqwest::Method::POST,
        format!("{base}/v1/banks"),
        Some(json!({"name": "crash"})),
    )
    .await
    .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{v}");

    let pool = hashes(5000, 0x9e3779b97f4a7c15);
    // (content id, pdq) acknowledged with 2xx.
    let acked_content: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
    // (pdq looked up, content ids matched, match ids) acknowledged with 2xx.
    let acked_lookups: Arc<Mutex<Vec<AckedLookup>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut tasks = Vec::new();
    for w in 0..2usize {
        let (client, base, admin, pool, acked, stop) = (
            client.clone(),
            base.clone(),
            admin.clone(),
            pool.clone(),
            acked_content.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < pool.len() {
                let h = &pool[i];
                if let Some((s, v)) = call(
                    &client,
                    &admin,
                    reqwest::Method::POST,
                    format!("{base}/v1/banks/crash/content"),
                    Some(json!({"signals": {"pdq": h}, "labels": ["crash"]})),
                )
                .await
                {
                    if s == StatusCode::CREATED {
                        acked
                            .lock()
                            .unwrap()
                            .push((v["id"].as_i64().unwrap(), h.clone()));
                    }
                }
                i += 2;
            }
        }));
    }
    {
        let (client, base, admin, acked_c, acked_l, stop) = (
            client.clone(),
            base.clone(),
            admin.clone(),
            acked_content.clone(),
            acked_lookups.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let pick = {
                    let g = acked_c.lock().unwrap();
                    if g.is_empty() {
                        None
                    } else {
                        Some(g[(n * 7919) % g.len()].1.clone())
                    }
                };
                n += 1;
                let Some(h) = pick else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                if let Some((s, v)) = call(
                    &client,
                    &admin,
                    reqwest::Method::POST,
                    format!("{base}/v1/lookup"),
                    Some(json!({"signals": {"pdq": h}})),
                )
                .await
                {
                    if s == StatusCode::OK {
                        let ms = v["matches"].as_array().cloned().unwrap_or_default();
                        let cids = ms.iter().filter_map(|m| m["content_id"].as_i64()).collect();
                        let mids = ms.iter().filter_map(|m| m["id"].as_i64()).collect();
                        acked_l.lock().unwrap().push((h, cids, mids));
                    }
                }
            }
        }));
    }
    // Let the clients run, then kill -9 mid-traffic.
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked_content.lock().unwrap().len() < 150 || acked_lookups.lock().unwrap().len() < 50 {
        assert!(
            Instant::now() < deadline,
            "clients made too little progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill_9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    drop(server);

    let content = acked_content.lock().unwrap().clone();
    let lookups = acked_lookups.lock().unwrap().clone();
    eprintln!(
        "acknowledged before kill -9: {} content items, {} lookups",
        content.len(),
        lookups.len()
    );

    let server = Server::spawn(&db.url).await;
    assert!(
        server.admin.is_none(),
        "keys survived: no new bootstrap key"
    );
    let base = server.base.clone();
    for (id, h) in &content {
        let (s, v) = call(
            &client,
            &admin,
            reqwest::Method::GET,
            format!("{base}/v1/banks/crash/content/{id}"),
            None,
        )
        .await
        .unwrap();
        assert_eq!(s, StatusCode::OK, "acknowledged content {id} lost: {v}");
        assert_eq!(v["signals"][0]["value"], h.as_str());
    }
    for (h, cids, mids) in &lookups {
        assert!(
            !cids.is_empty(),
            "every looked-up hash had been acknowledged as content"
        );
        for mid in mids {
            let (s, v) = call(
                &client,
                &admin,
                reqwest::Method::GET,
                format!("{base}/v1/matches/{mid}"),
                None,
            )
            .await
            .unwrap();
            assert_eq!(s, StatusCode::OK, "acknowledged match {mid} lost: {v}");
        }
        let (s, v) = call(
            &client,
            &admin,
            reqwest::Method::POST,
            format!("{base}/v1/lookup"),
            Some(json!({"signals": {"pdq": h}})),
        )
        .await
        .unwrap();
        assert_eq!(s, StatusCode::OK);
        let mut now: Vec<i64> = v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["content_id"].as_i64())
            .collect();
        let mut before = cids.clone();
        now.sort_unstable();
        before.sort_unstable();
        assert_eq!(now, before, "index answers the same for {h}");
    }
}

async fn two_processes_share_bank_changes(db: &TestDb) {
    let a = Server::spawn(&db.url).await;
    let admin = a.admin.clone().expect("first start prints an admin key");
    let b = Server::spawn(&db.url).await;
    let client = Client::new();
    let post = reqwest::Method::POST;
    let h = &hashes(1, 42)[0];

    call(
        &client,
        &admin,
        post.clone(),
        format!("{}/v1/banks", a.base),
        Some(json!({"name": "shared"})),
    )
    .await
    .unwrap();
    let (s, v) = call(
        &client,
        &admin,
        post.clone(),
        format!("{}/v1/banks/shared/content", a.base),
        Some(json!({"signals": {"pdq": h}})),
    )
    .await
    .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_i64().unwrap();
    let added = Instant::now();
    let matched_on_b = |v: &Value| {
        v["matches"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["content_id"] == id))
    };
    loop {
        let (_, v) = call(
            &client,
            &admin,
            post.clone(),
            format!("{}/v1/lookup", b.base),
            Some(json!({"signals": {"pdq": h}})),
        )
        .await
        .unwrap();
        if matched_on_b(&v) {
            break;
        }
        assert!(
            added.elapsed() < Duration::from_secs(2),
            "B did not see A's new content within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    eprintln!("B matched A's new content after {:?}", added.elapsed());
    // Disabling through A stops matches on B within 2 s too.
    let (s, _) = call(
        &client,
        &admin,
        reqwest::Method::PATCH,
        format!("{}/v1/banks/shared/content/{id}", a.base),
        Some(json!({"enabled": false})),
    )
    .await
    .unwrap();
    assert_eq!(s, StatusCode::OK);
    let changed = Instant::now();
    loop {
        let (_, v) = call(
            &client,
            &admin,
            post.clone(),
            format!("{}/v1/lookup", b.base),
            Some(json!({"signals": {"pdq": h}})),
        )
        .await
        .unwrap();
        if !matched_on_b(&v) {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(2),
            "B still matches content disabled through A after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    eprintln!("B stopped matching after {:?}", changed.elapsed());
}

async fn moov_last_videos_need_the_video_temp_dir(db: &TestDb) {
    let dir = std::env::temp_dir().join(format!(
        "et-moov-{}-{}",
        std::process::id(),
        db.url.starts_with("postgres")
    ));
    let tmp = dir.join("video-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    // ffmpeg's default MP4 layout: the index (moov) after the media data.
    let clip = dir.join("clip.mp4");
    let src = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/vpdq/videos/pattern-hd-no-bar.mp4");
    let st = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&src)
        .args(["-t", "3", "-an", "-vf", "scale=480:270,setsar=1"])
        .args(["-c:v", "libx264", "-preset", "ultrafast"])
        .arg(&clip)
        .status()
        .expect("ffmpeg (apt-get install ffmpeg) and ../shared/fixtures");
    assert!(st.success());
    let bytes = std::fs::read(&clip).unwrap();

    // Without --video-temp-dir: a 400 that says how to remux, no internals.
    let s = common::Server::spawn(&db.url, &[]).await;
    let (status, v) = s.send_file("/v1/lookup", "clip.mp4", &bytes).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("+faststart"), "{v}");
    assert!(msg.contains("--video-temp-dir"), "{v}");
    assert!(!msg.contains(&*tmp.to_string_lossy()), "{v}");
    let admin = s.admin.clone();
    drop(s);

    // With it: hashed and matched; the temporary copy is gone afterwards.
    // (The database has a key now, so the restart prints none.)
    let tmp_arg = tmp.to_string_lossy().to_string();
    let mut s = common::Server::spawn_with_key(&db.url, &["--video-temp-dir", &tmp_arg]).await;
    s.admin = admin;
    let (status, v) = s
        .send(reqwest::Method::POST, "/v1/banks", json!({"name": "clips"}))
        .await;
    assert!(status.is_success(), "{v}");
    let (status, v) = s
        .send_file("/v1/banks/clips/content", "clip.mp4", &bytes)
        .await;
    assert!(status.is_success(), "{v}");
    let (status, v) = s.send_file("/v1/lookup", "clip.mp4", &bytes).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let vpdq = v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["signal_type"] == "vpdq" && m["bank_name"] == "clips")
        .count();
    assert!(vpdq >= 1, "{v}");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "copies left");
    drop(s);

    // A --video-temp-dir that is not a directory is refused at start.
    let out = std::process::Command::new(common::bin())
        .args(["serve", "--db", &db.url, "--video-temp-dir"])
        .arg(dir.join("missing"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--video-temp-dir"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
