//! Process-level tests of issue 17 (scale and operations), through the real
//! `echotrace serve` binary on loopback ports:
//!
//! * **snapshots** (SQLite and PostgreSQL): a server stopped with SIGTERM
//!   exits 0 and leaves a snapshot; after changes made through another
//!   process, a restart with `--snapshot-dir` loads it (`/readyz` says so)
//!   and answers every lookup exactly as a server that loaded the database
//!   page by page; a damaged snapshot is refused with a log line and the
//!   server answers correctly from a paged load;
//! * **three replicas on one PostgreSQL**: a bank change made through one
//!   answers the same on the other two within 1 s; the flood guard
//!   quarantines at the same global count; five failed console logins
//!   spread over the replicas lock the account; a webhook is delivered once;
//!   `kill -9` of one replica loses no acknowledged write;
//! * **SIGTERM under load** (SQLite and PostgreSQL): every request sent
//!   before the signal gets a complete 2xx answer, every acknowledged
//!   lookup is in the database, and the process exits 0;
//! * **`--record matches`**: a lookup without hits writes nothing and
//!   answers as under `--record all` (with `submission_id: null`);
//! * **`/readyz` lag**: a replica whose tailer is behind by more than
//!   `--max-lag-secs` answers 503, an up-to-date one 200.
//!
//! PostgreSQL runs need `$ECHOTRACE_TEST_PG_URL` (they FAIL without it,
//! unless `ECHOTRACE_SKIP_PG=1`).

mod common;

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use echotrace_store::both_backends;
use echotrace_store::testing::TestDb;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

both_backends!(
    snapshot_restart_answers_like_a_paged_load,
    sigterm_under_load_cuts_off_nothing,
    record_matches_writes_only_lookups_with_hits,
    a_lagging_replica_reports_not_ready
);

/// A running `echotrace serve`, killed on drop.
struct Proc {
    child: Child,
    base: String,
    admin: Option<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    async fn spawn(db: &str, extra: &[&str]) -> Proc {
        let mut args = vec![
            "serve",
            "--db",
            db,
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "2",
        ];
        args.extend_from_slice(extra);
        let l = common::launch(&args, &[]).await;
        Proc {
            child: l.child,
            base: l.base,
            admin: l.admin,
            stderr: l.stderr,
        }
    }

    /// The `/readyz` answer.
    async fn readyz(&self, client: &Client) -> Value {
        client
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .expect("running kill");
        assert!(ok.success());
    }

    /// Wait for the process to exit; its exit code.
    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "serve did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill_9(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }

    fn logged(&self, needle: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }
}

async fn call(
    client: &Client,
    key: &str,
    method: Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client
        .request(method, url)
        .bearer_auth(key)
        .timeout(Duration::from_secs(30));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let s = resp.status();
    (s, resp.json::<Value>().await.unwrap_or(Value::Null))
}

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

/// `h` with its first `k` hex digits' low bits flipped (distance k).
fn near(h: &str, k: usize) -> String {
    h.char_indices()
        .map(|(i, c)| {
            if i < k {
                let v = c.to_digit(16).unwrap() ^ 1;
                std::char::from_digit(v, 16).unwrap()
            } else {
                c
            }
        })
        .collect()
}

/// POST `body`; the answer when it came back complete with `want`, `None`
/// on any failure (a replica that was killed).
async fn post_ok(
    client: &Client,
    key: &str,
    url: String,
    body: Value,
    want: StatusCode,
) -> Option<Value> {
    let r = client
        .post(url)
        .bearer_auth(key)
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    if r.status() != want {
        return None;
    }
    r.json::<Value>().await.ok()
}

/// What must be equal between two servers' answers to one lookup.
fn answer(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = ["matches", "allowed"]
        .iter()
        .flat_map(|k| v[*k].as_array().cloned().unwrap_or_default())
        .map(|m| {
            format!(
                "{}|{}|{}|{}|{}|{}",
                m["content_id"],
                m["signal_type"],
                m["matched_value"],
                m["distance"],
                m["similarity"],
                m["labels"]
            )
        })
        .collect();
    out.sort();
    out
}

/// Wait until the server at `base` has applied every change committed so
/// far (`/readyz`: 0 changes behind). A fixed sleep of a few tail intervals
/// (250 ms each) was a guess that a loaded machine can miss.
async fn caught_up(client: &Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = match client.get(format!("{base}/readyz")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if v["lag"]["changes"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{base} did not catch up with the database: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn lookups(client: &Client, key: &str, base: &str, queries: &[Value]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for q in queries {
        let (s, v) = call(
            client,
            key,
            Method::POST,
            format!("{base}/v1/lookup"),
            Some(q.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        out.push(answer(&v));
    }
    out
}

fn snapshot_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "etsnap"))
                .collect()
        })
        .unwrap_or_default()
}

/// The unauthenticated `/readyz` body names neither the snapshot
/// directory (nor any file in it) nor this host, and its replica tag is
/// 12 hex digits.
fn shows_no_internals(ready: &Value, dir: &std::path::Path) {
    let body = ready.to_string();
    let dir_s = dir.display().to_string();
    assert!(!body.contains(&dir_s), "snapshot dir in /readyz: {body}");
    assert!(
        !body.contains(".etsnap"),
        "snapshot file in /readyz: {body}"
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    assert!(!host.is_empty(), "the test reads the host name");
    assert!(
        !body.contains(host),
        "host name {host:?} in /readyz: {body}"
    );
    let tag = ready["replica"].as_str().unwrap_or_default();
    assert!(
        tag.len() == 12 && tag.chars().all(|c| c.is_ascii_hexdigit()),
        "{body}"
    );
}

async fn snapshot_restart_answers_like_a_paged_load(db: &TestDb) {
    // Both backends run at once: the backend keeps their snapshot directories apart.
    let dir = std::env::temp_dir().join(format!(
        "echotrace-snap-proc-{}-{}-{}",
        std::process::id(),
        db.backend,
        echotrace_store::now_ms()
    ));
    let dir_s = dir.display().to_string();
    let snap_args = ["--snapshot-dir", dir_s.as_str(), "--no-webhooks"];
    let mut a = Proc::spawn(&db.url, &snap_args).await;
    let admin = a.admin.clone().expect("first start prints an admin key");
    let client = Client::new();
    let (s, v) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/banks", a.base),
        Some(json!({"name": "snap", "text_equivalences": "daesh = isis"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let pool = hashes(30, 0x5eed);
    let mut ids = Vec::new();
    for (i, h) in pool.iter().enumerate() {
        let (s, v) = call(&client, &admin, Method::POST, format!("{}/v1/banks/snap/content", a.base),
            Some(json!({"signals": {"pdq": h, "md5": format!("{:032x}", i + 1)}, "labels": [format!("l{i}")]}))).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        ids.push(v["id"].as_i64().unwrap());
    }
    let text = "the daesh statement was read out in the main square late on friday night";
    let (s, v) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/banks/snap/content", a.base),
        Some(json!({"text": text, "labels": ["text"]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // SIGTERM: graceful stop, exit 0, snapshot written.
    a.sigterm();
    assert_eq!(a.wait_exit(Duration::from_secs(60)), Some(0));
    assert_eq!(snapshot_files(&dir).len(), 1, "one snapshot after the stop");
    drop(a);

    // Changes after the snapshot, through a server without snapshots
    // (it also serves as the paged-load reference).
    let paged = Proc::spawn(&db.url, &["--no-webhooks"]).await;
    let b = &paged.base;
    for id in &ids[..3] {
        let (s, _) = call(
            &client,
            &admin,
            Method::DELETE,
            format!("{b}/v1/banks/snap/content/{id}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    let (s, v) = call(
        &client,
        &admin,
        Method::PATCH,
        format!("{b}/v1/banks/snap/content/{}", ids[3]),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(
        &client,
        &admin,
        Method::PATCH,
        format!("{b}/v1/banks/snap/content/{}", ids[4]),
        Some(json!({"labels": ["relabelled"]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(
        &client,
        &admin,
        Method::PATCH,
        format!("{b}/v1/banks/snap"),
        Some(json!({"text_equivalences": "daesh = isis = isil"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let late = hashes(5, 0x1a7e);
    for h in &late {
        let (s, v) = call(
            &client,
            &admin,
            Method::POST,
            format!("{b}/v1/banks/snap/content"),
            Some(json!({"signals": {"pdq": h}, "labels": ["late"]})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let mut queries: Vec<Value> = pool
        .iter()
        .chain(late.iter())
        .flat_map(|h| {
            [
                json!({"signals": {"pdq": h}}),
                json!({"signals": {"pdq": near(h, 9)}}),
            ]
        })
        .collect();
    for i in 0..30 {
        queries.push(json!({"signals": {"md5": format!("{:032x}", i + 1)}}));
    }
    queries.push(json!({"text": text.replace("daesh", "isil")}));
    let expected = lookups(&client, &admin, b, &queries).await;
    assert!(expected.iter().filter(|a| !a.is_empty()).count() > 50);
    assert!(expected.iter().flatten().any(|m| m.contains("relabelled")));
    assert!(expected
        .iter()
        .flatten()
        .any(|m| m.contains("text_minhash")));

    // Restart from the snapshot: it is used, and answers are identical.
    let c = Proc::spawn(&db.url, &snap_args).await;
    let ready = c.readyz(&client).await;
    assert_eq!(ready["state"]["from"], "snapshot", "{ready}");
    assert!(ready["state"]["change_id"].as_i64().is_some(), "{ready}");
    shows_no_internals(&ready, &dir);
    assert!(c.logged("indexes loaded from snapshot"));
    assert_eq!(lookups(&client, &admin, &c.base, &queries).await, expected);
    let mut c = c;
    c.kill_9(); // no snapshot at exit: the damaged file below stays the only one
    drop(c);

    // Damage the snapshot: refused with a log line, correct paged load.
    let files = snapshot_files(&dir);
    assert_eq!(files.len(), 1);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&files[0], &bytes).unwrap();
    let d = Proc::spawn(&db.url, &snap_args).await;
    let ready = d.readyz(&client).await;
    assert_eq!(ready["state"]["from"], "paged", "{ready}");
    assert_eq!(ready["state"]["refused"], 1, "{ready}");
    shows_no_internals(&ready, &dir);
    assert!(d.logged("snapshot refused:"), "the refusal is logged");
    assert_eq!(lookups(&client, &admin, &d.base, &queries).await, expected);
    drop(d);
    drop(paged);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn sigterm_under_load_cuts_off_nothing(db: &TestDb) {
    let mut server = Proc::spawn(&db.url, &["--no-webhooks", "--drain-grace-ms", "500"]).await;
    let admin = server.admin.clone().expect("admin key");
    let client = Client::new();
    let base = server.base.clone();
    let (s, _) = call(
        &client,
        &admin,
        Method::POST,
        format!("{base}/v1/banks"),
        Some(json!({"name": "load"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let pool = hashes(20, 0xfeed);
    for h in &pool {
        let (s, _) = call(
            &client,
            &admin,
            Method::POST,
            format!("{base}/v1/banks/load/content"),
            Some(json!({"signals": {"pdq": h}})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    // (sent at, outcome: Ok(submission id) or the error)
    type Outcome = (Instant, Result<Option<i64>, String>);
    let results: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..12usize {
        let (results, stop, base, admin, pool) = (
            results.clone(),
            stop.clone(),
            base.clone(),
            admin.clone(),
            pool.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // Keep-alive connections, as a load balancer keeps them.
            let client = Client::builder().pool_max_idle_per_host(4).build().unwrap();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let h = &pool[i % pool.len()];
                i += 7;
                let body = if i % 2 == 0 {
                    json!({"signals": {"pdq": h}})
                } else {
                    json!({"signals": {"pdq": near(h, 1).replace('0', "f")}})
                };
                let sent = Instant::now();
                let r = client
                    .post(format!("{base}/v1/lookup"))
                    .bearer_auth(&admin)
                    .json(&body)
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await;
                let outcome = match r {
                    Ok(resp) if resp.status() == StatusCode::OK => match resp.json::<Value>().await
                    {
                        Ok(v) => Ok(v["submission_id"].as_i64()),
                        Err(e) => Err(format!("body cut off: {e}")),
                    },
                    Ok(resp) => Err(format!("HTTP {}", resp.status())),
                    Err(e) => Err(format!("{e:?}")),
                };
                let failed = outcome.is_err();
                results.lock().unwrap().push((sent, outcome));
                if failed {
                    // The server is going away: stop this client.
                    break;
                }
            }
        }));
    }
    // Let the load build up, then SIGTERM in the middle of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = results.lock().unwrap().len();
    assert!(before > 20, "only {before} lookups before the signal");
    let signalled = Instant::now();
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let code = tokio::task::spawn_blocking(move || {
        let code = server.wait_exit(Duration::from_secs(60));
        (code, server)
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0), "exit code after SIGTERM");
    drop(code.1);
    let results = results.lock().unwrap().clone();
    let sent_before: Vec<&Outcome> = results.iter().filter(|(t, _)| *t < signalled).collect();
    let failures: Vec<&String> = sent_before
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    eprintln!(
        "{} lookups sent before SIGTERM, {} after ({} of those failed)",
        sent_before.len(),
        results.len() - sent_before.len(),
        results
            .iter()
            .filter(|(t, r)| *t >= signalled && r.is_err())
            .count()
    );
    assert!(
        failures.is_empty(),
        "requests sent before the signal failed: {failures:?}"
    );
    // Every acknowledged lookup was committed before its answer.
    let acked: Vec<i64> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().copied().flatten())
        .collect();
    let after = Proc::spawn(&db.url, &["--no-webhooks"]).await;
    let store = echotrace_store::Store::open(&db.url).await.unwrap();
    for id in &acked {
        assert!(
            store.get_submission(*id).await.unwrap().is_some(),
            "acknowledged submission {id} lost"
        );
    }
    store.close().await;
    drop(after);
}

async fn count_rows(db: &TestDb, table: &str) -> i64 {
    use sqlx::Row;
    let store = echotrace_store::Store::open(&db.url).await.unwrap();
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) AS n FROM {table}"
    )))
    .fetch_one(store.pool())
    .await
    .unwrap();
    let n: i64 = row.try_get("n").unwrap();
    store.close().await;
    n
}

async fn record_matches_writes_only_lookups_with_hits(db: &TestDb) {
    let all = Proc::spawn(&db.url, &["--no-webhooks"]).await;
    let admin = all.admin.clone().expect("admin key");
    let matches = Proc::spawn(&db.url, &["--no-webhooks", "--record", "matches"]).await;
    let client = Client::new();
    let (s, _) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/banks", all.base),
        Some(json!({"name": "rec"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let h = hashes(2, 0x2ec0);
    let (s, _) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/banks/rec/content", all.base),
        Some(json!({"signals": {"pdq": h[0]}, "labels": ["known"]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    caught_up(&client, &matches.base).await; // the other process has it
    let miss = json!({"signals": {"pdq": h[1]}});
    let hit = json!({"signals": {"pdq": near(&h[0], 4)}});
    let before = count_rows(db, "submissions").await;
    // A lookup without hits under --record matches: the same answer, no row.
    let (s, on_matches) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/lookup", matches.base),
        Some(miss.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{on_matches}");
    assert!(on_matches["submission_id"].is_null(), "{on_matches}");
    assert_eq!(
        count_rows(db, "submissions").await,
        before,
        "nothing written"
    );
    let (_, on_all) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/lookup", all.base),
        Some(miss.clone()),
    )
    .await;
    assert!(on_all["submission_id"].as_i64().is_some());
    assert_eq!(answer(&on_matches), answer(&on_all));
    assert_eq!(count_rows(db, "submissions").await, before + 1);
    // A lookup with a hit is recorded as always.
    let (s, v) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/lookup", matches.base),
        Some(hit.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let sub = v["submission_id"].as_i64().expect("a match is recorded");
    let (_, on_all) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/lookup", all.base),
        Some(hit),
    )
    .await;
    assert_eq!(answer(&v), answer(&on_all));
    assert_eq!(count_rows(db, "submissions").await, before + 3);
    let (s, m) = call(
        &client,
        &admin,
        Method::GET,
        format!("{}/v1/matches?limit=10", all.base),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        m["matches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["submission_id"] == sub),
        "{m}"
    );
    // Batches too: only the items with hits get submissions.
    let (s, v) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/lookup/batch", matches.base),
        Some(json!({"items": [miss.clone(), {"signals": {"pdq": h[0]}}, miss]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let results = v["results"].as_array().expect("results");
    assert!(results[0]["submission_id"].is_null() && results[2]["submission_id"].is_null());
    assert!(results[1]["submission_id"].as_i64().is_some());
    assert_eq!(count_rows(db, "submissions").await, before + 4);
    drop(matches);
    drop(all);
}

async fn a_lagging_replica_reports_not_ready(db: &TestDb) {
    let fast = Proc::spawn(&db.url, &["--no-webhooks"]).await;
    let admin = fast.admin.clone().expect("admin key");
    // This one applies changes only once a minute, and allows 1 s of lag.
    let slow = Proc::spawn(
        &db.url,
        &[
            "--no-webhooks",
            "--tail-interval-ms",
            "60000",
            "--max-lag-secs",
            "1",
        ],
    )
    .await;
    let client = Client::new();
    // The clock starts before the change is sent, so it is never later than
    // the change's own time: a replica that turns unready only once the
    // change is over 1 s old has always been polled for over 1 s here,
    // however long the POST's answer takes on a loaded machine.
    let started = Instant::now();
    let (s, _) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/banks", fast.base),
        Some(json!({"name": "lag"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    loop {
        let r = client
            .get(format!("{}/readyz", slow.base))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            let v: Value = r.json().await.unwrap();
            let msg = v["error"]["message"].as_str().unwrap_or("").to_string();
            assert!(msg.contains("behind"), "{v}");
            assert_eq!(v["error"]["code"], "unavailable", "{v}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the lagging replica stayed ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not ready only once over the limit"
    );
    let r = fast.readyz(&client).await;
    assert_eq!(r["status"], "ready", "{r}");
    assert_eq!(r["lag"]["changes"], 0, "{r}");
    drop(slow);
    drop(fast);
}

// ----- three replicas on one PostgreSQL ------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_postgres_behave_as_one_service() {
    let Some(db) = TestDb::postgres().await.unwrap() else {
        return;
    };
    three_replicas(&db).await;
    db.cleanup().await.unwrap();
}

/// A webhook receiver counting deliveries by delivery id.
async fn receiver() -> (String, Arc<Mutex<HashMap<String, usize>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counts = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let counts = counts.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let head = &text[..end];
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let id = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("x-echotrace-delivery:")
                                .map(|v| v.trim().to_string())
                        })
                        .unwrap_or_default();
                    *counts.lock().unwrap().entry(id).or_default() += 1;
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (url, seen)
}

/// Console login on `base`: GET the form (login cookie = CSRF token), POST
/// the credentials from `ip` (trusted `X-Forwarded-For`: the peer is
/// loopback). Returns the status.
async fn console_login(base: &str, user: &str, password: &str, ip: &str) -> StatusCode {
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = client.get(format!("{base}/ui/login")).send().await.unwrap();
    let token = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.strip_prefix("et_login=")
                .map(|r| r.split(';').next().unwrap_or("").to_string())
        })
        .expect("login cookie");
    client
        .post(format!("{base}/ui/login"))
        .header("cookie", format!("et_login={token}"))
        .header("x-forwarded-for", ip)
        .form(&[
            ("csrf", token.as_str()),
            ("username", user),
            ("password", password),
            ("next", "/ui/"),
        ])
        .send()
        .await
        .unwrap()
        .status()
}

async fn three_replicas(db: &TestDb) {
    let flood = [
        "--flood-min-sample",
        "10",
        "--flood-max-share",
        "0.5",
        "--flood-window-secs",
        "600",
    ];
    let r1 = Proc::spawn(&db.url, &flood).await;
    let admin = r1.admin.clone().expect("admin key");
    let r2 = Proc::spawn(&db.url, &flood).await;
    let mut r3 = Proc::spawn(&db.url, &flood).await;
    let replicas = [r1.base.clone(), r2.base.clone(), r3.base.clone()];
    let client = Client::new();
    let (hook_url, deliveries) = receiver().await;
    let (s, v) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/actions/webhooks", replicas[0]),
        Some(json!({"url": hook_url, "secret": "a-webhook-s3cret-key"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/banks", replicas[0]),
        Some(json!({"name": "shared"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    // 1. The flood guard quarantines at the same global count (first, so
    // the count starts at 0): min sample 10, share > 0.5, lookups spread
    // round-robin over the replicas.
    let blank = hashes(1, 0xb1a4)[0].clone();
    let rare = hashes(1, 0x4a4e)[0].clone();
    let (_, v) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/banks/shared/content", replicas[0]),
        Some(json!({"signals": {"pdq": blank}})),
    )
    .await;
    let noisy = v["id"].as_i64().unwrap();
    call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/banks/shared/content", replicas[0]),
        Some(json!({"signals": {"pdq": rare}})),
    )
    .await;
    for base in &replicas {
        caught_up(&client, base).await; // every replica has both
    }
    let quarantined = |base: String| {
        let client = client.clone();
        let admin = admin.clone();
        async move {
            let (_, v) = call(
                &client,
                &admin,
                Method::GET,
                format!("{base}/v1/banks/shared/content/{noisy}"),
                None,
            )
            .await;
            !v["quarantine"].is_null()
        }
    };
    // Nine lookups hit the noisy item (3 per replica): below the sample.
    for i in 0..9 {
        let (s, v) = call(
            &client,
            &admin,
            Method::POST,
            format!("{}/v1/lookup", replicas[i % 3]),
            Some(json!({"signals": {"pdq": near(&blank, i % 5)}})),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["matches"].as_array().unwrap().len(), 1, "{v}");
    }
    assert!(
        !quarantined(replicas[0].clone()).await,
        "quarantined before the global sample"
    );
    // The 10th lookup (global count 10) hits only the rare item.
    call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/lookup", replicas[0]),
        Some(json!({"signals": {"pdq": rare}})),
    )
    .await;
    assert!(!quarantined(replicas[0].clone()).await);
    // The 11th: 10 of 11 lookups hit the noisy item, globally. A
    // per-process guard would have seen only 4 here.
    let (_, v) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/lookup", replicas[1]),
        Some(json!({"signals": {"pdq": blank}})),
    )
    .await;
    assert_eq!(
        v["matches"].as_array().unwrap().len(),
        1,
        "the triggering lookup reports its match"
    );
    assert!(
        quarantined(replicas[2].clone()).await,
        "quarantined at the 11th global lookup"
    );
    let audit: Value = call(
        &client,
        &admin,
        Method::GET,
        format!("{}/v1/audit?limit=200", replicas[0]),
        None,
    )
    .await
    .1;
    let quarantines = audit["entries"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["action"] == "content.quarantine")
                .count()
        })
        .unwrap_or(0);
    assert_eq!(quarantines, 1, "one replica quarantined it, once: {audit}");

    // Unmatched lookups, so the polling below cannot push an item over the
    // flood guard's share.
    for (i, r) in hashes(60, 0x0ff).iter().enumerate() {
        call(
            &client,
            &admin,
            Method::POST,
            format!("{}/v1/lookup", replicas[i % 3]),
            Some(json!({"signals": {"pdq": r}})),
        )
        .await;
    }
    // 2. A bank change through replica 1 answers the same on 2 and 3 within 1 s.
    let h = hashes(1, 0xabc)[0].clone();
    let (s, v) = call(
        &client,
        &admin,
        Method::POST,
        format!("{}/v1/banks/shared/content", replicas[0]),
        Some(json!({"signals": {"pdq": h}, "labels": ["seen"]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let item = v["id"].as_i64().unwrap();
    let acked = Instant::now();
    let q = json!({"signals": {"pdq": near(&h, 3)}});
    let on_r1 = lookups(&client, &admin, &replicas[0], std::slice::from_ref(&q)).await;
    assert_eq!(on_r1[0].len(), 1);
    for base in &replicas[1..] {
        loop {
            let got = lookups(&client, &admin, base, std::slice::from_ref(&q)).await;
            if got == on_r1 {
                break;
            }
            assert!(
                acked.elapsed() < Duration::from_secs(1),
                "{base} did not see the new item within 1 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!(
        "new item answered the same on all replicas {} ms after it was acknowledged",
        acked.elapsed().as_millis()
    );
    let (s, _) = call(
        &client,
        &admin,
        Method::PATCH,
        format!("{}/v1/banks/shared/content/{item}", replicas[0]),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let acked = Instant::now();
    for base in &replicas[1..] {
        loop {
            if lookups(&client, &admin, base, std::slice::from_ref(&q)).await[0].is_empty() {
                break;
            }
            assert!(
                acked.elapsed() < Duration::from_secs(1),
                "{base} still matched a disabled item after 1 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // 3. Five failed console logins spread over the replicas lock the name.
    let out = common::users_create(&db.url, "reviewer", "rita", "correct-horse-battery");
    assert!(
        out.status.success(),
        "users create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..5 {
        let status = console_login(
            &replicas[i % 3],
            "rita",
            "wrong-password",
            &format!("198.51.100.{}", 10 + i),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "failure {i}");
    }
    // The right password, from a fresh address, on the third replica: locked.
    let status = console_login(
        &replicas[2],
        "rita",
        "correct-horse-battery",
        "198.51.100.99",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "5 failures over 3 replicas lock the account"
    );
    // Another user from that address is not affected.
    let status = console_login(&replicas[0], "admin-nobody", "x", "198.51.100.99").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // 4. Webhooks: every event delivered once, not three times.
    let deadline = Instant::now() + Duration::from_secs(20);
    // Every outbox event (matches, the quarantine) must reach the receiver.
    let store = echotrace_store::Store::open(&db.url).await.unwrap();
    let events_expected = store.list_outbox(false, 1000).await.unwrap().len();
    store.close().await;
    assert!(events_expected >= 12, "{events_expected} events");
    loop {
        let n = deliveries.lock().unwrap().len();
        if n >= events_expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {events_expected} events delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // duplicates would show up now
    {
        let d = deliveries.lock().unwrap();
        assert_eq!(d.len(), events_expected, "{d:?}");
        assert!(
            d.values().all(|n| *n == 1),
            "an event was delivered twice: {d:?}"
        );
    }

    // 5. kill -9 of one replica loses no acknowledged write.
    let acked_content: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
    let acked_matches: Arc<Mutex<Vec<i64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let pool = hashes(400, 0x7777);
    let mut tasks = Vec::new();
    for (w, base) in replicas.iter().enumerate() {
        let (client, base, admin, pool, acked_c, acked_m, stop) = (
            client.clone(),
            base.clone(),
            admin.clone(),
            pool.clone(),
            acked_content.clone(),
            acked_matches.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while !stop.load(Ordering::Relaxed) && i < pool.len() {
                let h = &pool[i];
                i += 3;
                let Some(v) = post_ok(
                    &client,
                    &admin,
                    format!("{base}/v1/banks/shared/content"),
                    json!({"signals": {"pdq": h}}),
                    StatusCode::CREATED,
                )
                .await
                else {
                    break;
                };
                acked_c
                    .lock()
                    .unwrap()
                    .push((v["id"].as_i64().unwrap(), h.clone()));
                let Some(v) = post_ok(
                    &client,
                    &admin,
                    format!("{base}/v1/lookup"),
                    json!({"signals": {"pdq": h}}),
                    StatusCode::OK,
                )
                .await
                else {
                    break;
                };
                for m in v["matches"].as_array().cloned().unwrap_or_default() {
                    acked_m.lock().unwrap().push(m["id"].as_i64().unwrap());
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked_content.lock().unwrap().len() < 60 {
        assert!(
            Instant::now() < deadline,
            "writers made too little progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r3.kill_9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let content = acked_content.lock().unwrap().clone();
    let matches = acked_matches.lock().unwrap().clone();
    eprintln!(
        "acknowledged around the kill -9: {} items, {} matches",
        content.len(),
        matches.len()
    );
    for (id, h) in &content {
        let (s, v) = call(
            &client,
            &admin,
            Method::GET,
            format!("{}/v1/banks/shared/content/{id}", replicas[1]),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "acknowledged item {id} lost: {v}");
        assert_eq!(v["signals"][0]["value"], h.as_str());
    }
    for id in &matches {
        let (s, v) = call(
            &client,
            &admin,
            Method::GET,
            format!("{}/v1/matches/{id}", replicas[0]),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "acknowledged match {id} lost: {v}");
    }
    // The survivors still answer alike.
    let probe: Vec<Value> = content
        .iter()
        .take(20)
        .map(|(_, h)| json!({"signals": {"pdq": h}}))
        .collect();
    for base in &replicas[..2] {
        caught_up(&client, base).await;
    }
    assert_eq!(
        lookups(&client, &admin, &replicas[0], &probe).await,
        lookups(&client, &admin, &replicas[1], &probe).await
    );
    drop(r1);
    drop(r2);
    drop(r3);
}
