//! Load generator for the matching service (issue 5's benchmark).
//!
//! Sets up a bank of N random PDQ hashes with `echotrace bank import`,
//! starts a real `echotrace serve` on 127.0.0.1, waits for `/readyz`, then
//! drives it over loopback with C keep-alive HTTP/1.1 connections:
//!
//! * `signals` mode: `POST /v1/lookup` with `{"signals":{"pdq":"<hex>"}}`;
//!   a share of the queries (`--match-share`) are near-duplicates of banked
//!   hashes (up to 16 bits flipped, so matches are found and recorded), the
//!   rest random (no match);
//! * `images` mode: `POST /v1/lookup` with a ~100 KB procedurally generated
//!   JPEG (multipart), hashed by the server;
//! * `md5`, `url`, `text` modes: random md5 / URL signals and ~60-word raw
//!   texts (signed by the server), for the cost per lookup by signal type.
//!
//! Reports lookups/s, p50/p99/max latency, matches, the server's RSS and peak
//! RSS (`/proc/<pid>/status` VmRSS/VmHWM), its startup-to-ready time, and the
//! CPU time of client and server (they share the machine's cores). One JSON
//! object per run on stdout; progress on stderr.
//!
//! Issue 17 additions: `--replicas N` starts N servers on the same database
//! and spreads the connections over them (CPU and RSS summed / listed);
//! `--ready-only` measures startup only (time to `/readyz`, where the state
//! came from, RSS) and the SIGTERM stop (which writes a snapshot when
//! `--server-arg --snapshot-dir --server-arg DIR` is given); on PostgreSQL
//! the WAL bytes and rows inserted during the measured window are reported
//! (`psql` on the PATH), i.e. the write load the lookups put on the
//! database.
//!
//! ```text
//! load --echotrace target/release/echotrace --db sqlite:///tmp/load.db \
//!      --n 1000000 [--setup] [--concurrency 32] [--seconds 20] \
//!      [--mode signals|images] [--match-share 0.1] [--client-threads 1]
//! ```
//!
//! Benign data only: random hashes and generated gradient/noise images.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

struct Args {
    echotrace: String,
    db: String,
    n: u64,
    setup: bool,
    concurrency: usize,
    seconds: f64,
    warmup: f64,
    mode: String,
    match_share: f64,
    client_threads: usize,
    server_args: Vec<String>,
    images: usize,
    replicas: usize,
    ready_only: bool,
    /// PostgreSQL's postmaster pid: its CPU (all its processes) is reported.
    pg_pid: Option<u32>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        echotrace: "target/release/echotrace".into(),
        db: "sqlite:///tmp/echotrace-load.db".into(),
        n: 1_000_000,
        setup: false,
        concurrency: 32,
        seconds: 20.0,
        warmup: 3.0,
        mode: "signals".into(),
        match_share: 0.1,
        client_threads: 1,
        server_args: Vec::new(),
        images: 48,
        replicas: 1,
        ready_only: false,
        pg_pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--echotrace" => a.echotrace = val()?,
            "--db" => a.db = val()?,
            "--n" => a.n = val()?.parse()?,
            "--setup" => a.setup = true,
            "--concurrency" => a.concurrency = val()?.parse()?,
            "--seconds" => a.seconds = val()?.parse()?,
            "--warmup" => a.warmup = val()?.parse()?,
            "--mode" => a.mode = val()?,
            "--match-share" => a.match_share = val()?.parse()?,
            "--client-threads" => a.client_threads = val()?.parse()?,
            "--images" => a.images = val()?.parse()?,
            "--server-arg" => a.server_args.push(val()?),
            "--replicas" => a.replicas = val()?.parse::<usize>()?.max(1),
            "--ready-only" => a.ready_only = true,
            "--pg-pid" => a.pg_pid = Some(val()?.parse()?),
            other => bail!("unknown flag {other}"),
        }
    }
    if !matches!(
        a.mode.as_str(),
        "signals" | "images" | "md5" | "url" | "text"
    ) {
        bail!("--mode is signals, images, md5, url or text");
    }
    Ok(a)
}

/// Deterministic PDQ hash number `i` of the bank (xorshift64).
fn bank_hash(i: u64) -> [u64; 4] {
    let mut x = (i ^ 0x5eed_1234).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut w = [0u64; 4];
    for v in &mut w {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *v = x;
    }
    w
}

fn hex(w: &[u64; 4]) -> String {
    format!("{:016x}{:016x}{:016x}{:016x}", w[0], w[1], w[2], w[3])
}

/// A small fast PRNG for the client.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn run_echotrace(bin: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .output()
        .with_context(|| format!("running {bin}"))?;
    if !out.status.success() {
        bail!(
            "{bin} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Create a matcher key and import N hashes through `echotrace bank import`.
fn setup(a: &Args) -> Result<String> {
    let key = run_echotrace(
        &a.echotrace,
        &[
            "keys", "create", "--role", "matcher", "--name", "load", "--db", &a.db,
        ],
    )?;
    let started = Instant::now();
    let mut child = Command::new(&a.echotrace)
        .args([
            "bank", "import", "--db", &a.db, "--bank", "load", "--create", "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting bank import")?;
    {
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, stdin);
        for i in 0..a.n {
            writeln!(w, "{}", hex(&bank_hash(i)))?;
        }
        w.flush()?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("bank import failed");
    }
    eprintln!(
        "setup: {} ({:.1} s)",
        String::from_utf8_lossy(&out.stdout).trim(),
        started.elapsed().as_secs_f64()
    );
    std::fs::write(key_file(&a.db), &key)?;
    Ok(key)
}

fn key_file(db: &str) -> String {
    let tag: String = db
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("/tmp/echotrace-load-key-{tag}")
}

fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// utime + stime of a process, seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = s.rsplit(')').next() else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the command: state is index 0, utime 11, stime 12.
    (ticks(11) + ticks(12)) / 100.0
}

struct Server {
    child: Child,
    addr: String,
    ready_secs: f64,
    /// `/readyz`'s `state.from`: snapshot or paged.
    state_from: String,
}

fn start_server(a: &Args) -> Result<Server> {
    let started = Instant::now();
    let mut child = Command::new(&a.echotrace)
        .args([
            "serve",
            "--db",
            &a.db,
            "--listen",
            "127.0.0.1:0",
            "--no-webhooks",
        ])
        .args(&a.server_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting echotrace serve")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .ok_or_else(|| anyhow!("serve exited before listening"))??;
        if let Some(rest) = line.strip_prefix("echotrace: listening on http://") {
            break rest.trim().to_string();
        }
    };
    // Keep draining stdout so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    let state_from = loop {
        if let Ok(body) = blocking_get(&addr, "/readyz") {
            if body.starts_with("HTTP/1.1 200") {
                let from = body
                    .split("\"from\":\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or("")
                    .to_string();
                break from;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("serve exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Server {
        child,
        addr,
        ready_secs: started.elapsed().as_secs_f64(),
        state_from,
    })
}

fn blocking_get(addr: &str, path: &str) -> Result<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// A ~100 KB JPEG: gradients, rings and noise, different per `seed`.
fn make_jpeg(seed: u64) -> Result<Vec<u8>> {
    let (w, h) = (640u32, 480u32);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let (cx, cy) = ((rng.next() % 640) as f32, (rng.next() % 480) as f32);
    let phase = (rng.next() % 1000) as f32 / 100.0;
    let mut img = image::RgbImage::new(w, h);
    for (x, y, p) in img.enumerate_pixels_mut() {
        let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
        let ring = ((d / 9.0 + phase).sin() * 60.0) as i32;
        let noise = (rng.next() % 48) as i32;
        let r = (x * 255 / w) as i32 + ring + noise - 24;
        let g = (y * 255 / h) as i32 - ring + noise - 24;
        let b = 128 + ring / 2 + noise - 24;
        *p = image::Rgb([
            r.clamp(0, 255) as u8,
            g.clamp(0, 255) as u8,
            b.clamp(0, 255) as u8,
        ]);
    }
    let mut out = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82);
    enc.encode_image(&img)?;
    Ok(out)
}

const BOUNDARY: &str = "echotrace-load-boundary-7d1c";

fn multipart(jpeg: &[u8]) -> Bytes {
    let mut body = Vec::with_capacity(jpeg.len() + 256);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(jpeg);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    Bytes::from(body)
}

struct Stats {
    latencies_us: Vec<u32>,
    matched: u64,
    errors: u64,
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    addr: String,
    key: String,
    mode: String,
    n: u64,
    match_share: f64,
    images: Arc<Vec<Bytes>>,
    seed: u64,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> Result<Stats> {
    let stream = tokio::net::TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    let mut stats = Stats {
        latencies_us: Vec::with_capacity(1 << 16),
        matched: 0,
        errors: 0,
    };
    let auth = format!("Bearer {key}");
    let threshold = (match_share * u32::MAX as f64) as u64;
    while !stop.load(Ordering::Relaxed) {
        let (content_type, body) = if mode == "images" {
            let i = (rng.next() as usize) % images.len().max(1);
            let body = images.get(i).cloned().unwrap_or_default();
            (format!("multipart/form-data; boundary={BOUNDARY}"), body)
        } else if mode == "md5" {
            let body = format!(
                "{{\"signals\":{{\"md5\":\"{:016x}{:016x}\"}}}}",
                rng.next(),
                rng.next()
            );
            ("application/json".to_string(), Bytes::from(body))
        } else if mode == "url" {
            let body = format!(
                "{{\"signals\":{{\"url\":\"https://site{}.example/p/{:x}?utm_source=x\"}}}}",
                rng.next() % 1000,
                rng.next()
            );
            ("application/json".to_string(), Bytes::from(body))
        } else if mode == "text" {
            // ~60 words of pseudo-random prose: signed by the server.
            let words: Vec<String> = (0..60)
                .map(|_| format!("w{}", rng.next() % 20_000))
                .collect();
            let body = format!("{{\"text\":\"{}\"}}", words.join(" "));
            ("application/json".to_string(), Bytes::from(body))
        } else {
            let mut code = if (rng.next() & 0xffff_ffff) < threshold && n > 0 {
                let mut c = bank_hash(rng.next() % n);
                // A near-duplicate: flip up to 16 bits.
                for _ in 0..(rng.next() % 17) {
                    let bit = rng.next() % 256;
                    c[(bit / 64) as usize] ^= 1 << (bit % 64);
                }
                c
            } else {
                [rng.next(), rng.next(), rng.next(), rng.next()]
            };
            if code == [0; 4] {
                code[0] = 1;
            }
            let body = format!("{{\"signals\":{{\"pdq\":\"{}\"}}}}", hex(&code));
            ("application/json".to_string(), Bytes::from(body))
        };
        let req = Request::post("/v1/lookup")
            .header("host", "127.0.0.1")
            .header("authorization", &auth)
            .header("content-type", content_type)
            .body(Full::new(body))?;
        let t0 = Instant::now();
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let dt = t0.elapsed();
        sent.fetch_add(1, Ordering::Relaxed);
        if !measuring.load(Ordering::Relaxed) {
            continue;
        }
        if !status.is_success() {
            stats.errors += 1;
            if stats.errors <= 3 {
                eprintln!("HTTP {status}: {}", String::from_utf8_lossy(&bytes));
            }
            continue;
        }
        // `"matches":[]` when nothing matched; anything else is a match.
        if !memchr_find(&bytes, b"\"matches\":[]") {
            stats.matched += 1;
        }
        stats
            .latencies_us
            .push(u32::try_from(dt.as_micros()).unwrap_or(u32::MAX));
    }
    Ok(stats)
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted.get(i).copied().unwrap_or(0)) / 1000.0
}

/// A number from the PostgreSQL server at `db`, through `psql`.
fn pg_number(db: &str, sql: &str) -> Option<f64> {
    let out = Command::new("psql").args([db, "-Atc", sql]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// (WAL bytes written so far, rows inserted so far) on PostgreSQL.
fn pg_counters(db: &str) -> Option<(f64, f64)> {
    if !db.starts_with("postgres") {
        return None;
    }
    let wal = pg_number(
        db,
        "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')",
    )?;
    let rows = pg_number(
        db,
        "SELECT COALESCE(SUM(n_tup_ins), 0) FROM pg_stat_user_tables",
    )?;
    Some((wal, rows))
}

/// CPU seconds of `root` and every process below it.
fn tree_cpu_seconds(root: u32) -> f64 {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut parent: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        parent.insert(pid, ppid);
    }
    parent
        .keys()
        .filter(|p| {
            let mut x = **p;
            for _ in 0..64 {
                if x == root {
                    return true;
                }
                match parent.get(&x) {
                    Some(pp) if *pp != 0 => x = *pp,
                    _ => return false,
                }
            }
            false
        })
        .map(|p| cpu_seconds(&p.to_string()))
        .sum()
}

/// SIGTERM a server; seconds until it exited.
fn stop(server: &mut Server) -> f64 {
    let t = Instant::now();
    let _ = Command::new("kill")
        .arg(server.child.id().to_string())
        .status();
    let _ = server.child.wait();
    t.elapsed().as_secs_f64()
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let key = if a.setup {
        setup(&a)?
    } else {
        std::fs::read_to_string(key_file(&a.db))
            .context("no key from an earlier --setup run for this --db")?
            .trim()
            .to_string()
    };
    let images: Arc<Vec<Bytes>> = Arc::new(if a.mode == "images" {
        let imgs = (0..a.images as u64)
            .map(|i| make_jpeg(i + 1).map(|j| multipart(&j)))
            .collect::<Result<Vec<_>>>()?;
        let avg = imgs.iter().map(Bytes::len).sum::<usize>() / imgs.len().max(1);
        eprintln!("generated {} JPEGs, {} bytes on average", imgs.len(), avg);
        imgs
    } else {
        Vec::new()
    });

    let mut servers = Vec::new();
    for _ in 0..a.replicas {
        servers.push(start_server(&a)?);
    }
    let pids: Vec<u32> = servers.iter().map(|s| s.child.id()).collect();
    let rss_ready: Vec<u64> = pids
        .iter()
        .map(|p| proc_status(*p, "VmRSS:").unwrap_or(0))
        .collect();
    for (s, rss) in servers.iter().zip(&rss_ready) {
        eprintln!(
            "server pid {} ready in {:.2} s at {} (state from {}), RSS {} MiB",
            s.child.id(),
            s.ready_secs,
            s.addr,
            s.state_from,
            rss / 1024
        );
    }
    if a.ready_only {
        let hwm = proc_status(pids[0], "VmHWM:").unwrap_or(0);
        let stop_s = stop(&mut servers[0]);
        let out = serde_json::json!({
            "mode": "ready",
            "db": if a.db.starts_with("postgres") { "postgres" } else { "sqlite" },
            "bank_size": a.n,
            "server_ready_s": servers[0].ready_secs,
            "state_from": servers[0].state_from,
            "server_rss_ready_mib": rss_ready[0] / 1024,
            "server_peak_rss_mib": hwm / 1024,
            "sigterm_to_exit_s": stop_s,
        });
        println!("{out}");
        return Ok(());
    }
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();
    let cpu_servers =
        |pids: &[u32]| -> f64 { pids.iter().map(|p| cpu_seconds(&p.to_string())).sum() };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.client_threads.max(1))
        .enable_all()
        .build()?;
    let measuring = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut pg = (None, None);
    let result = rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..a.concurrency {
            tasks.push(tokio::spawn(worker(
                addrs[c % addrs.len()].clone(),
                key.clone(),
                a.mode.clone(),
                a.n,
                a.match_share,
                images.clone(),
                c as u64 + 1,
                measuring.clone(),
                stop_flag.clone(),
                sent.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
        let (cpu_client0, cpu_server0) = (cpu_seconds("self"), cpu_servers(&pids));
        let cpu_pg0 = a.pg_pid.map(tree_cpu_seconds);
        pg.0 = pg_counters(&a.db);
        measuring.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(a.seconds)).await;
        measuring.store(false, Ordering::Relaxed);
        let wall = t0.elapsed().as_secs_f64();
        pg.1 = pg_counters(&a.db);
        let (cpu_client, cpu_server) = (
            cpu_seconds("self") - cpu_client0,
            cpu_servers(&pids) - cpu_server0,
        );
        let cpu_pg = a
            .pg_pid
            .map(tree_cpu_seconds)
            .zip(cpu_pg0)
            .map(|(b, a)| b - a);
        stop_flag.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        let (mut matched, mut errors) = (0, 0);
        for t in tasks {
            let s = t.await??;
            all.extend(s.latencies_us);
            matched += s.matched;
            errors += s.errors;
        }
        all.sort_unstable();
        anyhow::Ok((all, matched, errors, wall, cpu_client, cpu_server, cpu_pg))
    });
    let rss: Vec<u64> = pids
        .iter()
        .map(|p| proc_status(*p, "VmRSS:").unwrap_or(0) / 1024)
        .collect();
    let hwm: Vec<u64> = pids
        .iter()
        .map(|p| proc_status(*p, "VmHWM:").unwrap_or(0) / 1024)
        .collect();
    let stop_s: Vec<f64> = servers.iter_mut().map(stop).collect();
    let server = &servers[0];
    let (lat, matched, errors, wall, cpu_client, cpu_server, cpu_pg) = result?;
    let (wal_per_lookup, rows_per_lookup) = match pg {
        (Some((w0, r0)), Some((w1, r1))) if !lat.is_empty() => (
            Some((w1 - w0) / lat.len() as f64),
            Some((r1 - r0) / lat.len() as f64),
        ),
        _ => (None, None),
    };
    let out = serde_json::json!({
        "mode": a.mode,
        "db": if a.db.starts_with("postgres") { "postgres" } else { "sqlite" },
        "bank_size": a.n,
        "concurrency": a.concurrency,
        "seconds": wall,
        "lookups": lat.len(),
        "lookups_per_s": lat.len() as f64 / wall,
        "p50_ms": pct(&lat, 0.50),
        "p99_ms": pct(&lat, 0.99),
        "max_ms": pct(&lat, 1.0),
        "matched": matched,
        "errors": errors,
        "server_ready_s": server.ready_secs,
        "state_from": server.state_from,
        "replicas": a.replicas,
        "server_args": a.server_args,
        "server_rss_ready_mib": rss_ready.iter().map(|r| r / 1024).collect::<Vec<_>>(),
        "server_rss_mib": rss,
        "server_peak_rss_mib": hwm,
        "server_cpu_share": cpu_server / wall,
        "client_cpu_share": cpu_client / wall,
        "server_cpu_us_per_lookup": cpu_server * 1e6 / lat.len().max(1) as f64,
        "pg_cpu_share": cpu_pg.map(|c| c / wall),
        "pg_cpu_us_per_lookup": cpu_pg.map(|c| c * 1e6 / lat.len().max(1) as f64),
        "pg_wal_bytes_per_lookup": wal_per_lookup,
        "pg_rows_per_lookup": rows_per_lookup,
        "sigterm_to_exit_s": stop_s,
    });
    println!("{out}");
    Ok(())
}
