//! Memory per signal type (issue 17): the resident memory a real
//! `echotrace serve` holds for N bank items of one signal type.
//!
//! For each type it creates a fresh SQLite database, imports N generated
//! items with `echotrace bank import` (benign, deterministic: random
//! hashes, random URLs, pseudo-random prose signed into `text_minhash`,
//! synthetic vPDQ videos of `--frames` frames), starts `echotrace serve`,
//! waits for `/readyz` and reads the server's VmRSS; the same for an empty
//! bank gives the baseline. Reported: RSS, RSS minus baseline, and that
//! difference per million items (linear scaling; hash tables grow in
//! powers of two, so the per-million figure at small N can be off by up to
//! the table's slack). One JSON line per type on stdout.
//!
//! ```text
//! memory --echotrace target/release/echotrace --dir /tmp --n 1000000 \
//!        --types pdq,md5,sha256,url,text_minhash,vpdq [--text-n 200000] [--vpdq-n 20000] [--frames 120]
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

struct Args {
    echotrace: String,
    dir: String,
    n: u64,
    text_n: u64,
    vpdq_n: u64,
    frames: usize,
    types: Vec<String>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        echotrace: "target/release/echotrace".into(),
        dir: "/tmp".into(),
        n: 1_000_000,
        text_n: 200_000,
        vpdq_n: 20_000,
        frames: 120,
        types: ["pdq", "md5", "sha256", "url", "text_minhash", "vpdq"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--echotrace" => a.echotrace = val()?,
            "--dir" => a.dir = val()?,
            "--n" => a.n = val()?.parse()?,
            "--text-n" => a.text_n = val()?.parse()?,
            "--vpdq-n" => a.vpdq_n = val()?.parse()?,
            "--frames" => a.frames = val()?.parse()?,
            "--types" => a.types = val()?.split(',').map(str::to_string).collect(),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn hex_words(rng: &mut Rng, words: usize) -> String {
    (0..words).map(|_| format!("{:016x}", rng.next())).collect()
}

/// One import line (tab-separated: vPDQ values contain commas).
fn line(t: &str, i: u64, frames: usize) -> String {
    let mut rng = Rng((i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let value = match t {
        "pdq" => hex_words(&mut rng, 4),
        "md5" => hex_words(&mut rng, 2),
        "sha256" => hex_words(&mut rng, 4),
        "url" => format!(
            "https://site{}.example/p/{:x}/{:x}",
            rng.next() % 100_000,
            rng.next(),
            rng.next()
        ),
        "text_minhash" => {
            let words: Vec<String> = (0..100)
                .map(|_| format!("w{}", rng.next() % 20_000))
                .collect();
            echotrace_signals::text::text_signature(&words.join(" ")).to_string()
        }
        "vpdq" => {
            let entries: Vec<String> = (0..frames)
                .map(|f| format!("{},100,{:.3}", hex_words(&mut rng, 4), f as f64 / 30.0))
                .collect();
            serde_json::to_string(&entries).unwrap_or_default()
        }
        _ => String::new(),
    };
    format!("{t}\t{value}\n")
}

fn proc_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
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

/// Import `n` items of type `t` (none for the baseline), serve, measure.
fn measure(a: &Args, t: &str, n: u64) -> Result<(u64, f64, f64)> {
    let path = format!("{}/echotrace-memory-{t}-{n}.db", a.dir);
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{s}"));
    }
    let db = format!("sqlite://{path}");
    let started = Instant::now();
    let mut child = Command::new(&a.echotrace)
        .args([
            "bank", "import", "--db", &db, "--bank", "mem", "--create", "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("starting bank import")?;
    {
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, stdin);
        for i in 0..n {
            w.write_all(line(t, i, a.frames).as_bytes())?;
        }
        w.flush()?;
    }
    if !child.wait()?.success() && n > 0 {
        bail!("bank import of {t} failed");
    }
    let import_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut server = Command::new(&a.echotrace)
        .args([
            "serve",
            "--db",
            &db,
            "--listen",
            "127.0.0.1:0",
            "--no-webhooks",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting serve")?;
    let stdout = server.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let l = lines
            .next()
            .ok_or_else(|| anyhow!("serve exited early"))??;
        if let Some(rest) = l.strip_prefix("echotrace: listening on http://") {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    loop {
        if blocking_get(&addr, "/readyz").is_ok_and(|b| b.starts_with("HTTP/1.1 200")) {
            break;
        }
        if let Ok(Some(s)) = server.try_wait() {
            bail!("serve exited: {s}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ready_s = started.elapsed().as_secs_f64();
    // Let the allocator settle (background merges, freed pages).
    std::thread::sleep(Duration::from_secs(2));
    let rss = proc_rss_kib(server.id()).unwrap_or(0);
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let _ = server.wait();
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{s}"));
    }
    Ok((rss, import_s, ready_s))
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let (base, _, _) = measure(&a, "pdq", 0)?;
    eprintln!("baseline (empty bank): {} MiB", base / 1024);
    for t in &a.types {
        let n = match t.as_str() {
            "text_minhash" => a.text_n,
            "vpdq" => a.vpdq_n,
            _ => a.n,
        };
        let (rss, import_s, ready_s) = measure(&a, t, n)?;
        let delta = rss.saturating_sub(base);
        let per_million = delta as f64 / 1024.0 * 1_000_000.0 / n.max(1) as f64;
        let out = serde_json::json!({
            "signal_type": t,
            "items": n,
            "frames_per_video": if t == "vpdq" { Some(a.frames) } else { None },
            "rss_mib": rss / 1024,
            "baseline_mib": base / 1024,
            "delta_mib": delta as f64 / 1024.0,
            "mib_per_million_items": per_million,
            "bytes_per_item": delta as f64 * 1024.0 / n.max(1) as f64,
            "import_s": import_s,
            "ready_s": ready_s,
        });
        println!("{out}");
    }
    Ok(())
}
