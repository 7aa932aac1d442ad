//! Hamming-index benchmark (issue 3). Not a test.
//!
//! ```text
//! index gen  --n N --shape random|clustered [--queries Q] [--dir bench/data]
//! index run  --n N --shape random|clustered [--threads 1,2] [--verify 200]
//!            [--substrings M] [--dir bench/data]
//! ```
//! `gen` writes `index-<shape>-<n>.codes` (N codes, 32 bytes each: four
//! little-endian u64 words) and `index-<shape>-<n>.queries` (half stored codes
//! with 1–31 random bit flips, half fresh codes). Clustered: 20% of codes are
//! 1–20-bit variants of earlier ones. `bench/peers/faiss_pdq.py` reads the
//! same files. `run` streams the codes into a `MihIndex`, then reports build
//! time, queries/s at radius 31 on 1 and 2 threads, p50/p99 latency, recall
//! against a streaming brute-force scan on a sample, snapshot write/load
//! times and peak RSS (VmHWM).

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use echotrace_index::{Code256, FlatIndex, Hit, MihIndex, MihParams};

const RADIUS: u32 = 31;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn code(&mut self) -> Code256 {
        [self.next(), self.next(), self.next(), self.next()]
    }
    fn flip(&mut self, code: &Code256, flips: u32) -> Code256 {
        let mut out = *code;
        let mut done = 0;
        while done < flips {
            let b = self.below(256) as usize;
            let mask = 1u64 << (b % 64);
            if (out[b / 64] ^ code[b / 64]) & mask == 0 {
                out[b / 64] ^= mask;
                done += 1;
            }
        }
        out
    }
}

fn code_bytes(c: &Code256) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, w) in c.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    b
}

fn code_from(b: &[u8]) -> Code256 {
    let mut c = [0u64; 4];
    for (i, w) in c.iter_mut().enumerate() {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i * 8..i * 8 + 8]);
        *w = u64::from_le_bytes(a);
    }
    c
}

struct Args {
    cmd: String,
    n: usize,
    shape: String,
    queries: usize,
    dir: PathBuf,
    threads: Vec<usize>,
    verify: usize,
    substrings: Option<u32>,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let cmd = it
        .next()
        .context("usage: index gen|run --n N --shape random|clustered")?;
    let mut a = Args {
        cmd,
        n: 1_000_000,
        shape: "random".into(),
        queries: 10_000,
        dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data")),
        threads: vec![1, 2],
        verify: 200,
        substrings: None,
    };
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--n" => a.n = v.replace('_', "").parse()?,
            "--shape" => a.shape = v,
            "--queries" => a.queries = v.parse()?,
            "--dir" => a.dir = v.into(),
            "--threads" => a.threads = v.split(',').map(|t| t.parse()).collect::<Result<_, _>>()?,
            "--verify" => a.verify = v.parse()?,
            "--substrings" => a.substrings = Some(v.parse()?),
            _ => bail!("unknown flag {flag}"),
        }
    }
    if a.shape != "random" && a.shape != "clustered" {
        bail!("--shape must be random or clustered");
    }
    Ok(a)
}

fn paths(a: &Args) -> (PathBuf, PathBuf, PathBuf) {
    let stem = format!("index-{}-{}", a.shape, a.n);
    (
        a.dir.join(format!("{stem}.codes")),
        a.dir.join(format!("{stem}.queries")),
        a.dir.join(format!("{stem}.snap")),
    )
}

fn generate(a: &Args) -> Result<()> {
    std::fs::create_dir_all(&a.dir)?;
    let (codes_path, queries_path, _) = paths(a);
    let seed = if a.shape == "random" { 1 } else { 2 } ^ (a.n as u64).rotate_left(17);
    let mut rng = Rng(seed);
    let mut w = BufWriter::new(std::fs::File::create(&codes_path)?);
    // Keep a reservoir of earlier codes to derive variants and queries from
    // without holding all N in memory.
    let mut reservoir: Vec<Code256> = Vec::with_capacity(1 << 16);
    let mut sample_stored: Vec<Code256> = Vec::with_capacity(a.queries);
    for i in 0..a.n {
        let c = if a.shape == "clustered" && !reservoir.is_empty() && rng.below(5) == 0 {
            let src = reservoir[rng.below(reservoir.len() as u64) as usize];
            let flips = 1 + rng.below(20) as u32;
            rng.flip(&src, flips)
        } else {
            rng.code()
        };
        if reservoir.len() < (1 << 16) {
            reservoir.push(c);
        } else {
            let k = rng.below(i as u64 + 1) as usize;
            if k < reservoir.len() {
                reservoir[k] = c;
            }
        }
        // Reservoir-sample the stored codes queries are derived from.
        let half = a.queries / 2;
        if sample_stored.len() < half {
            sample_stored.push(c);
        } else if half > 0 {
            let k = rng.below(i as u64 + 1) as usize;
            if k < half {
                sample_stored[k] = c;
            }
        }
        w.write_all(&code_bytes(&c))?;
    }
    w.flush()?;
    let mut q = BufWriter::new(std::fs::File::create(&queries_path)?);
    for i in 0..a.queries {
        let c = if i % 2 == 0 && !sample_stored.is_empty() {
            let src = sample_stored[(i / 2) % sample_stored.len()];
            let flips = 1 + rng.below(31) as u32;
            rng.flip(&src, flips)
        } else {
            rng.code()
        };
        q.write_all(&code_bytes(&c))?;
    }
    q.flush()?;
    println!(
        "wrote {} ({} codes) and {} ({} queries)",
        codes_path.display(),
        a.n,
        queries_path.display(),
        a.queries
    );
    Ok(())
}

/// Streams `(id, code)` from a codes file with an exact size hint, so the
/// index allocates its arrays once.
struct CodeStream {
    r: BufReader<std::fs::File>,
    next_id: u64,
    n: u64,
}
impl Iterator for CodeStream {
    type Item = (u64, Code256);
    fn next(&mut self) -> Option<Self::Item> {
        if self.next_id >= self.n {
            return None;
        }
        let mut b = [0u8; 32];
        self.r.read_exact(&mut b).ok()?;
        let id = self.next_id;
        self.next_id += 1;
        Some((id, code_from(&b)))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.n - self.next_id) as usize;
        (left, Some(left))
    }
}

fn open_codes(path: &Path) -> Result<CodeStream> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("{} (run `gen` first)", path.display()))?;
    let len = f.metadata()?.len();
    Ok(CodeStream {
        r: BufReader::with_capacity(1 << 20, f),
        next_id: 0,
        n: len / 32,
    })
}

fn read_queries(path: &Path) -> Result<Vec<Code256>> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    Ok(bytes.chunks_exact(32).map(code_from).collect())
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU time consumed by the calling thread, in ns (from schedstat), so that
/// throughput can be reported net of other processes on a shared machine.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Anonymous memory currently backed by transparent huge pages, in MiB.
fn anon_huge_mib() -> f64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("AnonHugePages:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<f64>().ok())
                })
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn percentile(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let k = ((sorted_ns.len() - 1) as f64 * p).round() as usize;
    sorted_ns[k.min(sorted_ns.len() - 1)] as f64 / 1000.0
}

struct QueryRun {
    qps: f64,
    /// Queries per second of on-CPU time per thread (immune to other load).
    qps_cpu_per_thread: f64,
    lat: Vec<u64>,
    hits: usize,
}

/// Runs all queries on `threads` threads.
fn run_queries(idx: &MihIndex, queries: &[Code256], threads: usize) -> QueryRun {
    let chunk = queries.len().div_ceil(threads.max(1)).max(1);
    let start = Instant::now();
    let results: Vec<(Vec<u64>, usize, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .chunks(chunk)
            .map(|qs| {
                s.spawn(move || {
                    let mut lat = Vec::with_capacity(qs.len());
                    let mut out: Vec<Hit> = Vec::new();
                    let mut hits = 0;
                    let cpu0 = thread_cpu_ns();
                    for q in qs {
                        out.clear();
                        let t = Instant::now();
                        idx.search(q, RADIUS, &mut out);
                        lat.push(t.elapsed().as_nanos() as u64);
                        hits += out.len();
                    }
                    (lat, hits, thread_cpu_ns().saturating_sub(cpu0))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut lat = Vec::with_capacity(queries.len());
    let mut hits = 0;
    let mut cpu_ns = 0u64;
    for (l, h, c) in results {
        lat.extend(l);
        hits += h;
        cpu_ns += c;
    }
    lat.sort_unstable();
    QueryRun {
        qps: queries.len() as f64 / secs,
        qps_cpu_per_thread: queries.len() as f64 / (cpu_ns.max(1) as f64 / 1e9),
        lat,
        hits,
    }
}

/// Exact answers for `sample` by streaming the codes file through a small
/// flat index, chunk by chunk (keeps RSS low).
fn brute_force(codes_path: &Path, sample: &[Code256]) -> Result<Vec<Vec<Hit>>> {
    let mut stream = open_codes(codes_path)?;
    let mut answers = vec![Vec::new(); sample.len()];
    loop {
        let mut flat = FlatIndex::with_capacity(1 << 20);
        for (id, c) in stream.by_ref().take(1 << 20) {
            flat.insert(id, c);
        }
        if flat.is_empty() {
            break;
        }
        for (q, ans) in sample.iter().zip(answers.iter_mut()) {
            flat.search(q, RADIUS, ans);
        }
    }
    for a in &mut answers {
        a.sort_unstable();
    }
    Ok(answers)
}

fn run(a: &Args) -> Result<()> {
    let (codes_path, queries_path, snap_path) = paths(a);
    let queries = read_queries(&queries_path)?;
    let params = MihParams {
        substrings: a.substrings,
        ..MihParams::default()
    };
    let t = Instant::now();
    let idx = MihIndex::build(open_codes(&codes_path)?, params.clone())?;
    let build_s = t.elapsed().as_secs_f64();
    println!(
        "shape={} n={} substrings={} build_s={:.2} rss_after_build_mib={:.0} huge_pages_mib={:.0}",
        a.shape,
        idx.len(),
        idx.substrings(),
        build_s,
        vm_hwm_kb() as f64 / 1024.0,
        anon_huge_mib()
    );
    // Warm-up pass (page-in, thread-local scratch).
    let _ = run_queries(&idx, &queries[..queries.len().min(500)], 1);
    for &th in &a.threads {
        let r = run_queries(&idx, &queries, th);
        println!(
            "threads={th} queries={} qps_wall={:.0} qps_per_cpu_second={:.0} p50_us={:.1} p99_us={:.1} hits={}",
            queries.len(),
            r.qps,
            r.qps_cpu_per_thread,
            percentile(&r.lat, 0.50),
            percentile(&r.lat, 0.99),
            r.hits
        );
    }
    let hwm = vm_hwm_kb();
    println!(
        "peak_rss_mib={:.0} (VmHWM after build + queries)",
        hwm as f64 / 1024.0
    );
    // Snapshot write, drop, load.
    let t = Instant::now();
    idx.write_snapshot(std::fs::File::create(&snap_path)?)?;
    let write_s = t.elapsed().as_secs_f64();
    let snap_mib = std::fs::metadata(&snap_path)?.len() as f64 / (1 << 20) as f64;
    drop(idx);
    let t = Instant::now();
    let loaded = MihIndex::read_snapshot(
        BufReader::with_capacity(1 << 20, std::fs::File::open(&snap_path)?),
        params,
    )?;
    let load_s = t.elapsed().as_secs_f64();
    let r = run_queries(&loaded, &queries, 1);
    println!(
        "snapshot_mib={snap_mib:.0} write_s={write_s:.2} load_s={load_s:.2} (loaded index: qps_wall={:.0} hits={}) peak_rss_mib={:.0}",
        r.qps,
        r.hits,
        vm_hwm_kb() as f64 / 1024.0
    );
    // Recall against a streaming brute force on a sample (near and fresh),
    // checked on the loaded index (so the snapshot is verified too).
    let sample: Vec<Code256> = queries.iter().take(a.verify).copied().collect();
    let t = Instant::now();
    let truth = brute_force(&codes_path, &sample)?;
    let brute_s = t.elapsed().as_secs_f64();
    let (mut found, mut expected, mut exact_queries) = (0usize, 0usize, 0usize);
    for (q, want) in sample.iter().zip(&truth) {
        let mut got = Vec::new();
        loaded.search(q, RADIUS, &mut got);
        got.sort_unstable();
        expected += want.len();
        found += got.iter().filter(|h| want.binary_search(h).is_ok()).count();
        exact_queries += usize::from(&got == want);
    }
    println!(
        "recall={:.4} ({found}/{expected} pairs; {exact_queries}/{} queries identical to brute force; flat scan {:.1} ms/query)",
        if expected == 0 { 1.0 } else { found as f64 / expected as f64 },
        sample.len(),
        brute_s * 1000.0 / sample.len().max(1) as f64
    );
    let _ = std::fs::remove_file(&snap_path);
    Ok(())
}

fn main() -> Result<()> {
    let a = parse_args()?;
    match a.cmd.as_str() {
        "gen" => generate(&a),
        "run" => run(&a),
        other => bail!("unknown command {other} (gen|run)"),
    }
}
