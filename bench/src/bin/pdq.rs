//! PDQ benchmark: echotrace vs Meta's reference core (`pdqhash` on PyPI),
//! single thread, identical pixels, one run.
//!
//! 1. Hash only: decodes two fixture images once (1600×1004 PNG, 4032×3024
//!    JPEG), writes the raw RGB to `bench/data/`, times our hasher on them,
//!    then runs `bench/peers/pdq_peer.py hash` on the same files and checks
//!    that hash and quality are identical (exit code 1 if not).
//! 2. End to end: file bytes in memory → RGB → hash, for the fixture JPEGs:
//!    ours is `decode::decode_image` + `PdqHasher`; the peer is Pillow
//!    `convert('RGB')` + `pdqhash.compute`. Hashes may differ by a few bits
//!    (different JPEG decoders); the distance is reported.
//!
//! Usage: `cargo run --release -p echotrace-bench --bin pdq [-- --quick]`
//! (or `bench/run_pdq.sh`). Env: `ECHOTRACE_FIXTURES` (default
//! `../shared/fixtures`), `PYTHON` (default `python3`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use echotrace_signals::decode::{decode_image, DecodeLimits, DecodeOptions};
use echotrace_signals::pdq::{PdqHash, PdqHasher, PdqOutput, PdqPath};

struct PeerRow {
    t: Timing,
    hash: PdqHash,
    quality: u8,
}

fn main() -> Result<ExitCode> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("loop") {
        return hash_loop(&argv[2..]);
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = std::env::var_os("ECHOTRACE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../../shared/fixtures"));
    let pdq_dir = fixtures.join("pdq");
    if !pdq_dir.is_dir() {
        bail!("{} is missing (../shared/fixtures)", pdq_dir.display());
    }
    let data = root.join("data");
    std::fs::create_dir_all(&data)?;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let peer = root.join("peers/pdq_peer.py");
    let scale = if quick { 5 } else { 1 };

    println!("# PDQ benchmark (single thread)");
    println!("best path on this CPU: {:?}", PdqPath::best());
    let mut ok = true;

    // ---------------------------------------------------------------- hash only
    let cases = [
        (
            "lossless/dih/bridge-1-original.png",
            200 / scale,
            30 / scale,
        ),
        ("images/exif-rotn/exif-rotn-1.jpg", 40 / scale, 8 / scale),
    ];
    let mut peer_args: Vec<String> = Vec::new();
    let mut ours = Vec::new();
    println!("\n## Hash only (RGB8 in memory → hash)\n");
    println!("| image | path | median wall ms | median CPU ms | hash | q |");
    println!("|---|---|---:|---:|---|---:|");
    for (rel, iters, peer_iters) in cases {
        let bytes = std::fs::read(pdq_dir.join(rel)).with_context(|| rel.to_string())?;
        let img = decode_image(&bytes, &DecodeLimits::default(), &DecodeOptions::default())
            .with_context(|| format!("decoding {rel}"))?;
        let (w, h) = (img.width, img.height);
        let raw = data.join(format!("pdq-{w}x{h}.rgb"));
        std::fs::write(&raw, &img.rgb)?;
        let mut best = None;
        for path in [PdqPath::Portable, PdqPath::Avx2, PdqPath::Avx512] {
            let Ok(mut hasher) = PdqHasher::with_path(path) else {
                continue;
            };
            let (out, t) = time_ms(iters.max(3), || hasher.hash_rgb8(&img.rgb, w, h))?;
            println!(
                "| {w}×{h} | echotrace {path:?} | {:.3} | {:.3} | {} | {} |",
                t.wall_ms, t.cpu_ms, out.hash, out.quality
            );
            if path == PdqPath::best() {
                best = Some((out, t));
            }
        }
        let (out, t) = best.context("best path measured")?;
        ours.push((format!("{w}×{h}"), out, t));
        peer_args.extend([
            raw.display().to_string(),
            w.to_string(),
            h.to_string(),
            peer_iters.max(3).to_string(),
        ]);
    }
    let peer_rows = run_peer(&python, &peer, "hash", &peer_args)?;
    println!("\n| image | echotrace wall / CPU ms | pdqhash wall / CPU ms | speed-up wall / CPU | identical hash+quality |");
    println!("|---|---:|---:|---:|---|");
    for ((name, out, t), p) in ours.iter().zip(&peer_rows) {
        let same = out.hash == p.hash && out.quality == p.quality;
        ok &= same;
        println!(
            "| {name} | {:.2} / {:.2} | {:.2} / {:.2} | {:.1}× / {:.1}× | {} |",
            t.wall_ms,
            t.cpu_ms,
            p.t.wall_ms,
            p.t.cpu_ms,
            p.t.wall_ms / t.wall_ms,
            p.t.cpu_ms / t.cpu_ms,
            if same {
                "yes".to_string()
            } else {
                format!("NO: peer {} q{}", p.hash, p.quality)
            }
        );
    }

    // ---------------------------------------------------------------- end to end
    let mut files = Vec::new();
    for group in ["bridge-mods", "dih", "exif-rotn"] {
        let mut v: Vec<PathBuf> = std::fs::read_dir(pdq_dir.join("images").join(group))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
            .collect();
        v.sort();
        files.extend(v);
    }
    println!("\n## End to end (JPEG bytes in memory → decode → hash)\n");
    let mut peer_args = Vec::new();
    let mut ours = Vec::new();
    let mut hasher = PdqHasher::new();
    for f in &files {
        let bytes = std::fs::read(f)?;
        let big = bytes.len() > 1_000_000;
        let iters = if big { 10 } else { 40 } / scale;
        let (out, t) = time_ms(iters.max(3), || -> Result<PdqOutput> {
            let img = decode_image(&bytes, &DecodeLimits::default(), &DecodeOptions::default())?;
            Ok(hasher.hash_rgb8(&img.rgb, img.width, img.height)?)
        })?;
        ours.push((f.clone(), out, t));
        peer_args.extend([
            f.display().to_string(),
            (if big { 5 } else { 15 } / scale).max(3).to_string(),
        ]);
    }
    let peer_rows = run_peer(&python, &peer, "e2e", &peer_args)?;
    println!("| file | echotrace wall / CPU ms | Pillow+pdqhash wall / CPU ms | speed-up wall / CPU | hash distance |");
    println!("|---|---:|---:|---:|---:|");
    let (mut ours_w, mut ours_c, mut peer_w, mut peer_c) = (0.0, 0.0, 0.0, 0.0);
    let mut worst = 0;
    for ((f, out, t), p) in ours.iter().zip(&peer_rows) {
        let rel = f.strip_prefix(&pdq_dir).unwrap_or(f).display().to_string();
        let d = out.hash.distance(&p.hash);
        worst = worst.max(d);
        ours_w += t.wall_ms;
        ours_c += t.cpu_ms;
        peer_w += p.t.wall_ms;
        peer_c += p.t.cpu_ms;
        println!(
            "| {rel} | {:.2} / {:.2} | {:.2} / {:.2} | {:.1}× / {:.1}× | {d} |",
            t.wall_ms,
            t.cpu_ms,
            p.t.wall_ms,
            p.t.cpu_ms,
            p.t.wall_ms / t.wall_ms,
            p.t.cpu_ms / t.cpu_ms
        );
    }
    println!(
        "| **all {} files (sum of medians)** | {ours_w:.1} / {ours_c:.1} | {peer_w:.1} / {peer_c:.1} | {:.1}× / {:.1}× | max {worst} |",
        ours.len(),
        peer_w / ours_w,
        peer_c / ours_c
    );

    if !ok {
        eprintln!("FAIL: echotrace and pdqhash disagree on identical pixels");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `pdq loop FILE.rgb W H ITERS [PATH]`: hash one raw RGB file in a loop
/// (for `perf record`); prints the median.
fn hash_loop(args: &[String]) -> Result<ExitCode> {
    let [file, w, h, iters, rest @ ..] = args else {
        bail!("usage: pdq loop FILE.rgb W H ITERS [portable|avx2|avx512]");
    };
    let rgb = std::fs::read(file)?;
    let path = match rest.first().map(String::as_str) {
        Some("portable") => PdqPath::Portable,
        Some("avx2") => PdqPath::Avx2,
        Some("avx512") => PdqPath::Avx512,
        Some("naive") => PdqPath::Naive,
        _ => PdqPath::best(),
    };
    let mut hasher = PdqHasher::with_path(path)?;
    let (w, h): (u32, u32) = (w.parse()?, h.parse()?);
    let (out, t) = time_ms(iters.parse()?, || hasher.hash_rgb8(&rgb, w, h))?;
    println!(
        "{path:?} {} q{} median wall {:.3} ms, CPU {:.3} ms",
        out.hash, out.quality, t.wall_ms, t.cpu_ms
    );
    Ok(ExitCode::SUCCESS)
}

/// Median wall time and median on-CPU time of one run.
#[derive(Clone, Copy)]
struct Timing {
    wall_ms: f64,
    cpu_ms: f64,
}

/// This thread's on-CPU time in ns (Linux `schedstat`; 0 elsewhere). It is
/// tick-granular on some kernels, so it is only read around a whole timed
/// loop of at least [`MIN_LOOP_SECS`].
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Each timed loop runs at least this long (and at least `iters` times).
const MIN_LOOP_SECS: f64 = 0.5;

/// Times repeated runs after one warm-up: median wall time per run, and mean
/// on-CPU time per run (on a shared, loaded machine wall time includes time
/// spent descheduled; CPU time does not). Returns the last output.
fn time_ms<T, E>(iters: usize, mut f: impl FnMut() -> Result<T, E>) -> Result<(T, Timing)>
where
    E: Into<anyhow::Error>,
{
    let mut out = f().map_err(Into::into)?;
    let mut wall = Vec::with_capacity(iters);
    let start = Instant::now();
    let c0 = thread_cpu_ns();
    while wall.len() < iters
        || (start.elapsed().as_secs_f64() < MIN_LOOP_SECS && wall.len() < 20_000)
    {
        let t = Instant::now();
        out = f().map_err(Into::into)?;
        wall.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let cpu_ms = thread_cpu_ns().saturating_sub(c0) as f64 / 1e6 / wall.len() as f64;
    Ok((
        out,
        Timing {
            wall_ms: median(&mut wall),
            cpu_ms,
        },
    ))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn run_peer(python: &str, script: &Path, mode: &str, args: &[String]) -> Result<Vec<PeerRow>> {
    let out = Command::new(python)
        .arg(script)
        .arg(mode)
        .args(args)
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "peer failed ({}): {}\n(install with `pip install -r bench/peers/requirements.txt`)",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            Ok(PeerRow {
                t: Timing {
                    wall_ms: json_field(l, "wall_ms")?.parse()?,
                    cpu_ms: json_field(l, "cpu_ms")?.parse()?,
                },
                hash: json_field(l, "hash")?.parse()?,
                quality: json_field(l, "quality")?.parse()?,
            })
        })
        .collect()
}

/// Pulls one scalar field out of the peer's flat one-line JSON objects.
fn json_field<'a>(line: &'a str, key: &str) -> Result<&'a str> {
    let pat = format!("\"{key}\": ");
    let start = line.find(&pat).context("field missing")? + pat.len();
    let rest = &line[start..];
    let end = rest.find([',', '}']).context("unterminated field")?;
    Ok(rest[..end].trim().trim_matches('"'))
}
