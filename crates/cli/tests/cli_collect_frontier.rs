//! The collector's frontier with real processes, on SQLite and PostgreSQL:
//!
//! * kill -9 in a 5,000-URL run, then a restart: every URL ends up fetched
//!   and recorded exactly once (one finished job, one sighting), and no
//!   sighting is lost; the only repeated requests are those in flight or
//!   fetched-but-uncommitted at the kill (bounded, reported);
//! * two collector processes on one PostgreSQL frontier: zero double
//!   fetches; on SQLite a second process is refused with a clear error;
//! * politeness: with 2 s per host, no two requests to one host arrive
//!   closer than 2 s (measured by the site), with two workers (two
//!   processes on PostgreSQL).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::site::{Reply, Site};
use common::{ok, run, temp_dir};
use echotrace_store::both_backends;
use echotrace_store::testing::TestDb;
use serde_json::Value;

both_backends!(
    kill_9_mid_run_loses_nothing,
    politeness_spaces_requests_to_a_host
);

const CONTACT: &str = "https://collector-test.invalid/contact";
const T: Duration = Duration::from_secs(300);

async fn tiny_site(n: usize) -> (Site, Vec<String>) {
    let site = Site::start(&["127.0.0.2"], |_| {
        |_h: &str, path: &str| {
            path.strip_prefix("/p/")
                .map(|i| Reply::html(&format!("<p>page {i} of the crash test</p>")))
        }
    })
    .await;
    let urls = (0..n).map(|i| format!("{}/p/{i}", site.base(0))).collect();
    (site, urls)
}

fn collect_args<'a>(db: &'a str, warc: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "collect",
        "run",
        "--db",
        db,
        "--contact",
        CONTACT,
        "--warc-dir",
        warc,
        "--json",
    ];
    if !extra.contains(&"--allow-private-addresses") {
        a.extend_from_slice(&["--allow-private-addresses", "127.0.0.2/32"]);
    }
    a.extend_from_slice(extra);
    a
}

async fn kill_9_mid_run_loses_nothing(db: &TestDb) {
    const N: usize = 5_000;
    let (site, urls) = tiny_site(N).await;
    let dir = temp_dir("crash");
    let list = dir.join("urls.txt");
    std::fs::write(&list, urls.join("\n")).unwrap();
    let warc = dir.join("warc");
    let warc = warc.to_str().unwrap();
    ok(
        &[
            "collect",
            "add-source",
            "crash",
            "--kind",
            "urls",
            "--path",
            list.to_str().unwrap(),
            "--depth",
            "0",
            "--db",
            &db.url,
        ],
        T,
    );
    let args = collect_args(
        &db.url,
        warc,
        &["--no-politeness", "--workers", "8", "--lease-secs", "2"],
    );
    let mut child = Command::new(common::bin())
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    while site.hits().len() < N / 3 {
        assert!(
            Instant::now() < deadline,
            "the first run never got a third through"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the first run ended before the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = site.hits().len();
    // Restart: the dead worker's leases expire (2 s) and its jobs are
    // fetched again; finished ones are not.
    let out = ok(&args, T);
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["jobs_failed"], 0, "{report}");
    let counts = site.counts();
    let mut repeated = 0;
    for i in 0..N {
        let c = counts.get(&format!("/p/{i}")).copied().unwrap_or(0);
        assert!(c >= 1, "URL {i} never fetched");
        if c > 1 {
            repeated += 1;
        }
    }
    eprintln!("crash test: killed after {at_kill} requests; {repeated} URLs fetched twice (in flight or uncommitted at the kill)");
    // Only what was in flight or uncommitted at the kill (workers + at most
    // one commit group) is fetched again.
    assert!(repeated <= 8 + 256, "{repeated} URLs fetched twice");
    // In the store: every URL finished exactly once, one sighting each.
    let listed = ok(&["collect", "list-sources", "--json", "--db", &db.url], T);
    let list: Value = serde_json::from_str(listed.trim()).unwrap();
    let s = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "crash")
        .unwrap();
    assert_eq!(s["done"], N as i64, "{s}");
    assert_eq!(s["queued"], 0, "{s}");
    assert_eq!(s["failed"], 0, "{s}");
    let store = echotrace_store::Store::open(&db.url).await.unwrap();
    let sightings = store
        .list_sightings(&echotrace_store::SightingQuery {
            limit: 100_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    for r in &sightings {
        assert!(seen.insert(r.url.clone()), "{} recorded twice", r.url);
    }
    assert_eq!(seen.len(), N, "one sighting per URL");
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_share_one_postgres_frontier() {
    let Some(db) = TestDb::postgres().await.unwrap() else {
        return;
    };
    const N: usize = 2_000;
    let (site, urls) = tiny_site(N).await;
    let dir = temp_dir("two");
    let list = dir.join("urls.txt");
    std::fs::write(&list, urls.join("\n")).unwrap();
    let warc = dir.join("warc");
    let warc = warc.to_str().unwrap();
    ok(
        &[
            "collect",
            "add-source",
            "shared",
            "--kind",
            "urls",
            "--path",
            list.to_str().unwrap(),
            "--depth",
            "0",
            "--db",
            &db.url,
        ],
        T,
    );
    // Seed once, then two processes work the queue at the same time.
    ok(
        &collect_args(&db.url, warc, &["--no-politeness", "--max-jobs", "1"]),
        T,
    );
    let args = collect_args(
        &db.url,
        warc,
        &["--no-politeness", "--no-seed", "--workers", "8"],
    );
    let a = Command::new(common::bin())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let b = Command::new(common::bin())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let ra: Value = serde_json::from_str(String::from_utf8_lossy(&a.stdout).trim()).unwrap();
    let rb: Value = serde_json::from_str(String::from_utf8_lossy(&b.stdout).trim()).unwrap();
    let (fa, fb) = (
        ra["fetched"].as_u64().unwrap(),
        rb["fetched"].as_u64().unwrap(),
    );
    assert!(fa > 0 && fb > 0, "both processes worked: {fa} + {fb}");
    assert_eq!(fa + fb + 1, N as u64);
    let counts = site.counts();
    let doubles: Vec<_> = counts
        .iter()
        .filter(|(p, c)| p.starts_with("/p/") && **c > 1)
        .collect();
    assert!(doubles.is_empty(), "double fetches: {doubles:?}");
    assert_eq!(counts.keys().filter(|p| p.starts_with("/p/")).count(), N);
    let _ = std::fs::remove_dir_all(dir);
    db.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_runs_one_collector_process() {
    let db = TestDb::sqlite();
    let site = Site::start(&["127.0.0.2"], |_| {
        |_h: &str, _p: &str| {
            Some(Reply::SlowDrip {
                every: Duration::from_millis(500),
            })
        }
    })
    .await;
    let dir = temp_dir("one");
    let warc = dir.join("warc");
    let warc = warc.to_str().unwrap();
    ok(
        &[
            "collect",
            "add-source",
            "slow",
            "--kind",
            "page",
            "--url",
            &format!("{}/x", site.base(0)),
            "--db",
            &db.url,
        ],
        T,
    );
    let args = collect_args(&db.url, warc, &["--no-politeness", "--timeout-secs", "20"]);
    let mut first = Command::new(common::bin())
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while site.hits().is_empty() {
        assert!(Instant::now() < deadline, "first collector never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = run(&args, T);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another collector process") && err.contains("PostgreSQL"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
    db.cleanup().await.unwrap();
}

async fn politeness_spaces_requests_to_a_host(db: &TestDb) {
    let site = Site::start(&["127.0.0.2", "127.0.0.3"], |a| {
        let other = a[1];
        move |_h: &str, path: &str| match path {
            "/seed.html" => Some(Reply::html(&format!(
                "<a href=\"/a.html\">a</a><a href=\"/b.html\">b</a><a href=\"http://{other}/c.html\">c</a>"
            ))),
            "/a.html" | "/b.html" | "/c.html" => Some(Reply::html("<p>polite</p>")),
            _ => None,
        }
    })
    .await;
    let dir = temp_dir("polite");
    let warc = dir.join("warc");
    let warc = warc.to_str().unwrap();
    let seed = format!("{}/seed.html", site.base(0));
    ok(
        &[
            "collect",
            "add-source",
            "polite",
            "--kind",
            "page",
            "--url",
            &seed,
            "--depth",
            "1",
            "--extra-host",
            &site.addrs[1].ip().to_string(),
            "--min-delay-ms",
            "2000",
            "--db",
            &db.url,
        ],
        T,
    );
    let args = collect_args(
        &db.url,
        warc,
        &[
            "--workers",
            "2",
            "--allow-private-addresses",
            "127.0.0.2/31",
        ],
    );
    let postgres = db.backend == "postgres";
    if postgres {
        // Seed, then two processes with two workers each.
        ok(
            &collect_args(
                &db.url,
                warc,
                &[
                    "--workers",
                    "2",
                    "--allow-private-addresses",
                    "127.0.0.2/31",
                    "--max-jobs",
                    "1",
                ],
            ),
            T,
        );
        let mut no_seed = args.clone();
        no_seed.push("--no-seed");
        let a = Command::new(common::bin())
            .args(&no_seed)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let b = Command::new(common::bin())
            .args(&no_seed)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        assert!(a.wait_with_output().unwrap().status.success());
        assert!(b.wait_with_output().unwrap().status.success());
    } else {
        ok(&args, T);
    }
    let hits = site.hits();
    let paths: Vec<&str> = hits.iter().map(|h| h.path.as_str()).collect();
    for p in ["/seed.html", "/a.html", "/b.html", "/c.html"] {
        assert!(paths.contains(&p), "{p} fetched: {paths:?}");
    }
    for host in [site.addrs[0].to_string(), site.addrs[1].to_string()] {
        let mut at: Vec<Instant> = hits
            .iter()
            .filter(|h| h.host == host)
            .map(|h| h.at)
            .collect();
        at.sort();
        let min_gap = at.windows(2).map(|w| w[1] - w[0]).min();
        eprintln!(
            "{}: {host}: closest two requests {min_gap:?} apart",
            db.backend
        );
        // The full 2 s: the site stamps a request before answering it, the
        // collector frees the host only after the answer and no sooner
        // than 2 s later (rounded up to whole milliseconds), and the next
        // request is stamped after it is sent; so jitter only adds.
        for w in at.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                gap >= Duration::from_millis(2000),
                "{host}: two requests {gap:?} apart"
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
