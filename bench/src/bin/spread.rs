//! Spread-tracking benchmarks (issue 16). Not part of the test suite; run
//! through `bench/run_spread.sh`, which also runs the Python peer
//! (lifelines) on the same data in the same run.
//!
//! * `checks --n N [--workers W]`: liveness checks per second against a
//!   local HTTP site (in this process, keep-alive), politeness off, on a
//!   fresh SQLite database (or `--db`): N matched sightings, one round.
//! * `seed --db URL --sightings N --checks-per K`: a synthetic history —
//!   N matched sightings over 90 days, K checks each, removals, notices —
//!   written with multi-row INSERTs.
//! * `report --db URL`: time `echotrace_spread::report::build` over it
//!   (plus the JSON and HTML rendering), median of `--repeat` runs.
//! * `km --n N --csv FILE`: N deterministic (time, event) rows written to
//!   FILE for the peer; times our Kaplan–Meier fit + median CI + log-rank.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use echotrace_collector::{FetchConfig, PolitenessConfig, PrivateAllow};
use echotrace_spread::checker::{Checker, CheckerConfig};
use echotrace_spread::fetch::CollectorFetcher;
use echotrace_spread::machine::Timing;
use echotrace_spread::report::{self, ReportOptions};
use echotrace_spread::schedule::Schedule;
use echotrace_spread::survival::{logrank, KaplanMeier, Observation};
use echotrace_store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: u64) -> anyhow::Result<u64> {
    match arg(args, name) {
        Some(v) => v.parse().with_context(|| format!("{name} {v:?}")),
        None => Ok(default),
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.get(1).map(String::as_str) {
        Some("checks") => rt.block_on(checks(&args)),
        Some("seed") => rt.block_on(seed(&args)),
        Some("report") => rt.block_on(report_bench(&args)),
        Some("km") => km(&args),
        _ => Err(anyhow!(
            "usage: spread checks|seed|report|km [options] (see the source header)"
        )),
    }
}

/// A keep-alive HTTP/1.1 responder: every GET gets the same small body.
async fn serve(listener: tokio::net::TcpListener, body: Arc<Vec<u8>>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let body = body.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut filled = 0;
            loop {
                let n = match sock.read(&mut buf[filled..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                filled += n;
                while let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: image/jpeg\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    if sock.write_all(head.as_bytes()).await.is_err()
                        || sock.write_all(&body).await.is_err()
                    {
                        return;
                    }
                    buf.copy_within(end + 4..filled, 0);
                    filled -= end + 4;
                }
                if filled == buf.len() {
                    return;
                }
            }
        });
    }
}

async fn checks(args: &[String]) -> anyhow::Result<()> {
    let n = num(args, "--n", 20_000)?;
    let workers = num(args, "--workers", 64)? as usize;
    let dir = std::env::temp_dir().join(format!("echotrace-bench-checks-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = arg(args, "--db")
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("checks.db").display()));
    let store = Store::open(&db).await?;
    let body = Arc::new(b"benign benchmark body: the same bytes every time".to_vec());
    let sha = echotrace_signals::digest::sha256_hex(&body);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(serve(listener, body.clone()));
    let now = echotrace_store::now_ms();
    insert_sightings(
        &store,
        n,
        now - 2 * 3_600_000,
        0,
        &format!("http://127.0.0.1:{port}"),
        &sha,
    )
    .await?;
    let mut cfg = CheckerConfig::new("bench");
    cfg.workers = workers;
    cfg.timing = Timing {
        schedule: Schedule::parse("1h,6h,24h")?,
        ..Timing::default()
    };
    let mut fetch =
        FetchConfig::new("https://example.invalid/echotrace-bench").map_err(|e| anyhow!(e))?;
    fetch.allow_private = PrivateAllow::All;
    fetch.timeout = Duration::from_secs(30);
    fetch.politeness = PolitenessConfig {
        enabled: false,
        ..PolitenessConfig::default()
    };
    let fetcher = echotrace_collector::Fetcher::new(fetch, Some(store.clone()), "bench")
        .map_err(|e| anyhow!("{e}"))?;
    let checker = Checker::new(
        store.clone(),
        Arc::new(CollectorFetcher(Arc::new(fetcher))),
        cfg,
    );
    let started = Instant::now();
    let cpu0 = cpu_seconds();
    let r = checker.run_round().await?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{}",
        serde_json::json!({"bench": "liveness_checks", "db": if db.starts_with("postgres") {"postgres"} else {"sqlite"},
            "n": n, "workers": workers, "recorded": r.recorded, "seconds": secs,
            "checks_per_s": r.recorded as f64 / secs, "cpu_seconds": cpu, "by_state": r.by_state})
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Process CPU time (user + system), seconds.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Multi-row INSERT of N matched sightings (+ one match each) with ids
/// from `first_id + 1`, first seen spread over `[since, since + 90 d)`
/// when `spread_ms` > 0 (else all at `since`).
async fn insert_sightings(
    store: &Store,
    n: u64,
    since: i64,
    spread_ms: i64,
    base: &str,
    sha: &str,
) -> anyhow::Result<()> {
    let pool = store.pool();
    let mut id = 0u64;
    while id < n {
        let chunk = (n - id).min(2000);
        let mut s = String::from(
            "INSERT INTO sightings (id, url, url_canonical, url_sha256, host, platform, content_sha256, \
             media_type, matched, first_seen_at, last_seen_at, created_at) VALUES ",
        );
        let mut m = String::from(
            "INSERT INTO sighting_matches (sighting_id, content_id, bank_id, signal_type, channel, found_by, created_at) VALUES ",
        );
        for k in 0..chunk {
            let i = id + k + 1;
            let seen = since
                + if spread_ms > 0 {
                    (i as i64 * 7919) % spread_ms
                } else {
                    0
                };
            let host = format!("h{}.example", i % 500);
            let platform = ["Files", "Paste", "Video", "Social", ""][(i % 5) as usize];
            let url = format!("{base}/c{i}");
            let url_sha = format!("{:064x}", i);
            if k > 0 {
                s.push(',');
                m.push(',');
            }
            s.push_str(&format!(
                "({i}, '{url}', '{url}', '{url_sha}', '{host}', '{platform}', '{sha}', 'image', 1, {seen}, {seen}, {seen})"
            ));
            m.push_str(&format!(
                "({i}, {}, 1, 'pdq', 'plain', 'fetch', {seen})",
                1 + i % 1000
            ));
        }
        sqlx::query(sqlx::AssertSqlSafe(s)).execute(pool).await?;
        sqlx::query(sqlx::AssertSqlSafe(m)).execute(pool).await?;
        id += chunk;
    }
    Ok(())
}

async fn seed(args: &[String]) -> anyhow::Result<()> {
    let db = arg(args, "--db").ok_or_else(|| anyhow!("--db URL"))?;
    let n = num(args, "--sightings", 1_000_000)?;
    let per = num(args, "--checks-per", 10)?;
    let store = Store::open(&db).await?;
    let pool = store.pool();
    let started = Instant::now();
    let now = echotrace_store::now_ms();
    let day = 86_400_000i64;
    let since = now - 90 * day;
    insert_sightings(
        &store,
        n,
        since,
        90 * day,
        "https://bench.example",
        &format!("{:064x}", 7),
    )
    .await?;
    eprintln!(
        "seed: {n} sightings in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Liveness rows, checks and removals: copy i is removed after
    // (i * 37 mod 200) hours when i % 3 != 0, else stays up.
    let mut id = 0u64;
    let mut check_rows = 0u64;
    while id < n {
        let chunk = (n - id).min(2000);
        let mut l = String::from(
            "INSERT INTO liveness (sighting_id, state, status, removed_streak, checks, last_checked_at, \
             last_live_at, first_removed_at, removals, resurfaced, anchor_at, next_check_at, lease_holder, \
             lease_until, created_at, updated_at) VALUES ",
        );
        let mut r = String::from(
            "INSERT INTO removals (sighting_id, episode, last_live_at, first_removed_at, confirmed_at, \
             removed_state, resurfaced_at) VALUES ",
        );
        let mut c = String::from(
            "INSERT INTO liveness_checks (sighting_id, seq, checked_at, state, http_status, detail) VALUES ",
        );
        let mut any_removal = false;
        for k in 0..chunk {
            let i = id + k + 1;
            let seen = since + (i as i64 * 7919) % (90 * day);
            let removed_after = if !i.is_multiple_of(3) {
                Some(((i * 37) % 200 + 1) as i64 * 3_600_000)
            } else {
                None
            };
            let mut last_live = seen;
            let mut first_removed = None;
            for s in 1..=per {
                let at = seen + (s as i64) * 6 * 3_600_000;
                let down = removed_after.is_some_and(|r| at - seen >= r);
                if down && first_removed.is_none() {
                    first_removed = Some(at);
                }
                if !down {
                    last_live = at;
                }
                if check_rows > 0 || s > 1 || k > 0 {
                    c.push(',');
                }
                c.push_str(&format!(
                    "({i}, {s}, {at}, '{}', {}, 'bench')",
                    if down { "removed_gone" } else { "live" },
                    if down { 404 } else { 200 }
                ));
                check_rows += 1;
            }
            let confirmed = first_removed
                .map(|f| f + 6 * 3_600_000)
                .filter(|_| per >= 2);
            let status = if confirmed.is_some() {
                "removed"
            } else {
                "live"
            };
            if k > 0 {
                l.push(',');
            }
            l.push_str(&format!(
                "({i}, '{}', '{status}', {}, {per}, {}, {last_live}, {}, {}, 0, {seen}, NULL, '', 0, {seen}, {seen})",
                if confirmed.is_some() { "removed_gone" } else { "live" },
                if confirmed.is_some() { 2 } else { 0 },
                seen + per as i64 * 6 * 3_600_000,
                first_removed.map_or("NULL".to_string(), |f| f.to_string()),
                u8::from(confirmed.is_some()),
            ));
            if let (Some(f), Some(conf)) = (first_removed, confirmed) {
                if any_removal {
                    r.push(',');
                }
                r.push_str(&format!(
                    "({i}, 1, {last_live}, {f}, {conf}, 'removed_gone', NULL)"
                ));
                any_removal = true;
            }
        }
        sqlx::query(sqlx::AssertSqlSafe(l)).execute(pool).await?;
        if any_removal {
            sqlx::query(sqlx::AssertSqlSafe(r)).execute(pool).await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(std::mem::take(&mut c)))
            .execute(pool)
            .await?;
        check_rows = 0;
        id += chunk;
        if id.is_multiple_of(100_000) {
            eprintln!(
                "seed: {id} of {n} copies with checks, {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    store
        .put_spread_setting(
            "checker",
            &serde_json::json!({"schedule": "6h steps (synthetic)", "confirm_checks": 2,
                "confirm_after_secs": 21600, "retry_after_secs": 3600,
                "removed_states": ["removed_gone"], "politeness_ms": 0, "proxy": false, "removal_rules": 4})
            .to_string(),
        )
        .await?;
    println!(
        "{}",
        serde_json::json!({"bench": "seed", "sightings": n, "checks": n * per, "seconds": started.elapsed().as_secs_f64()})
    );
    store.close().await;
    Ok(())
}

async fn report_bench(args: &[String]) -> anyhow::Result<()> {
    let db = arg(args, "--db").ok_or_else(|| anyhow!("--db URL"))?;
    let repeat = num(args, "--repeat", 3)?.max(1);
    let store = Store::open(&db).await?;
    let now = echotrace_store::now_ms();
    let opts = ReportOptions::new(now - 91 * 86_400_000, now + 1);
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut last = None;
    for _ in 0..repeat {
        let started = Instant::now();
        let cpu_started = cpu_seconds();
        let r = report::build(&store, &opts).await?;
        let json = serde_json::to_string(&r)?;
        let html = echotrace_spread::html::render(&r);
        let secs = started.elapsed().as_secs_f64();
        times.push(secs);
        cpu.push(cpu_seconds() - cpu_started);
        last = Some((r.totals.copies, r.totals.checks, json.len(), html.len()));
    }
    times.sort_by(f64::total_cmp);
    let (copies, checks, json_len, html_len) = last.unwrap_or_default();
    println!(
        "{}",
        serde_json::json!({"bench": "report", "db": if db.starts_with("postgres") {"postgres"} else {"sqlite"},
            "copies": copies, "checks": checks, "runs": times, "median_seconds": times[times.len() / 2],
            "cpu_seconds": cpu,
            "json_bytes": json_len, "html_bytes": html_len})
    );
    store.close().await;
    Ok(())
}

fn km(args: &[String]) -> anyhow::Result<()> {
    let n = num(args, "--n", 1_000_000)? as usize;
    let csv = arg(args, "--csv").ok_or_else(|| anyhow!("--csv FILE"))?;
    // Deterministic data: hours in 0.01 steps (ties, like check-time data),
    // about one third censored, two groups.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut rows = Vec::with_capacity(n);
    let mut text = String::with_capacity(n * 16);
    text.push_str("group,hours,removed\n");
    for i in 0..n {
        let g = i % 2;
        let u = (next() % 1_000_000) as f64 / 1_000_000.0;
        let scale = if g == 0 { 20.0 } else { 60.0 };
        let t = (-(1.0 - u).ln() * scale * 100.0).round() / 100.0;
        let t = t.min(2160.0);
        let e = next() % 3 != 0 && t < 2160.0;
        rows.push((g, Observation { time: t, event: e }));
        text.push_str(&format!("{g},{t},{}\n", u8::from(e)));
    }
    std::fs::write(&csv, text)?;
    let all: Vec<Observation> = rows.iter().map(|r| r.1).collect();
    let a: Vec<Observation> = rows.iter().filter(|r| r.0 == 0).map(|r| r.1).collect();
    let b: Vec<Observation> = rows.iter().filter(|r| r.0 == 1).map(|r| r.1).collect();
    let mut fit_times = Vec::new();
    let mut lr_times = Vec::new();
    let mut out = None;
    for _ in 0..5 {
        let t0 = Instant::now();
        let km = KaplanMeier::fit(&all).map_err(|e| anyhow!("{e}"))?;
        let m = km.median();
        fit_times.push(t0.elapsed().as_secs_f64());
        let t1 = Instant::now();
        let lr = logrank(&a, &b).map_err(|e| anyhow!("{e}"))?;
        lr_times.push(t1.elapsed().as_secs_f64());
        out = Some((m, lr.statistic, km.times.len()));
    }
    fit_times.sort_by(f64::total_cmp);
    lr_times.sort_by(f64::total_cmp);
    let (m, stat, timeline) = out.ok_or_else(|| anyhow!("no run"))?;
    println!(
        "{}",
        serde_json::json!({"bench": "km", "impl": "echotrace", "n": n, "timeline": timeline,
            "fit_median_seconds": fit_times[2], "logrank_median_seconds": lr_times[2],
            "median": m.median, "median_ci": [m.lower, m.upper], "logrank_statistic": stat})
    );
    Ok(())
}
