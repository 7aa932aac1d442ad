//! Video benchmark (issue 7). Not a test.
//!
//! ```text
//! video [--seconds 60] [--runs 3] [--videos 10000] [--frames 60]
//!       [--queries 200] [--dir bench/data] [--python python3]
//! ```
//! 1. Generates (once) a benign 720p30 clip from ffmpeg's `testsrc2`
//!    (H.264, faststart) of `--seconds` seconds.
//! 2. Hashes it end to end (probe + decode + PDQ) at 1 s sampling and at
//!    every frame; reports seconds per minute of video and frames hashed/s.
//!    Also PDQ alone on decoded 720p frames held in memory.
//! 3. Runs Meta's reference vPDQ (PyPI `vpdq`, same libav) on the same file
//!    in the same run via `bench/peers/vpdq_peer.py`, and compares hashes.
//! 4. Video lookups/s against `--videos` indexed videos of `--frames`
//!    frames (synthetic: each video a random walk of 6-bit steps in Hamming
//!    space, so consecutive frames are near like real footage); half the
//!    queries are stored videos with every frame 8 bits off, half fresh.
//!    The peer runs python-threatexchange's VPDQIndex logic on faiss.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use echotrace_index::vpdq_index::{VpdqFrame, VpdqIndex, VpdqIndexOptions};
use echotrace_index::Code256;
use echotrace_signals::pdq::PdqHasher;
use echotrace_signals::video::{Ffmpeg, FfmpegConfig, FramePlan, VideoHasher, VpdqOptions};

struct Args {
    seconds: u32,
    runs: usize,
    videos: usize,
    frames: usize,
    queries: usize,
    dir: PathBuf,
    python: String,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        seconds: 60,
        runs: 3,
        videos: 10_000,
        frames: 60,
        queries: 200,
        dir: PathBuf::from("bench/data"),
        python: "python3".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().context("missing value");
        match flag.as_str() {
            "--seconds" => a.seconds = val()?.parse()?,
            "--runs" => a.runs = val()?.parse()?,
            "--videos" => a.videos = val()?.parse()?,
            "--frames" => a.frames = val()?.parse()?,
            "--queries" => a.queries = val()?.parse()?,
            "--dir" => a.dir = PathBuf::from(val()?),
            "--python" => a.python = val()?,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn generate_clip(path: &Path, seconds: u32) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=1280x720:rate=30")
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(["-movflags", "+faststart"])
        .arg(path)
        .status()
        .context("running ffmpeg")?;
    if !status.success() {
        bail!("ffmpeg failed to generate the clip");
    }
    Ok(())
}

fn peer_script() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/peers/vpdq_peer.py"))
}

fn run_peer(python: &str, args: &[String]) -> Result<serde_json::Value> {
    let out = Command::new(python)
        .arg(peer_script())
        .args(args)
        .output()
        .context("running the python peer")?;
    if !out.status.success() {
        bail!("peer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn code(&mut self) -> Code256 {
        [self.next(), self.next(), self.next(), self.next()]
    }
    fn flip(&mut self, c: &Code256, n: u32) -> Code256 {
        let mut out = *c;
        for _ in 0..n {
            let b = (self.next() % 256) as usize;
            out[b / 64] ^= 1u64 << (b % 64);
        }
        out
    }
    fn walk(&mut self, frames: usize) -> Vec<Code256> {
        let mut c = self.code();
        (0..frames)
            .map(|_| {
                c = self.flip(&c, 6);
                c
            })
            .collect()
    }
}

fn write_codes(path: &Path, codes: &[Code256]) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for c in codes {
        for w in c {
            f.write_all(&w.to_le_bytes())?;
        }
    }
    f.flush()?;
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.dir)?;
    let clip = args.dir.join(format!("video-720p30-{}s.mp4", args.seconds));
    generate_clip(&clip, args.seconds)?;
    let bytes = std::fs::read(&clip)?;
    let minutes = f64::from(args.seconds) / 60.0;
    let ffmpeg = Ffmpeg::locate(FfmpegConfig::default())?;
    let hasher = VideoHasher::new(ffmpeg.clone());
    println!(
        "clip {} ({} bytes, {} s 1280x720 @30)",
        clip.display(),
        bytes.len(),
        args.seconds
    );

    // --- ours, end to end
    let mut ours = Vec::new();
    for (label, sph) in [("1s", 1.0), ("every-frame", 0.0)] {
        let opts = VpdqOptions {
            seconds_per_hash: sph,
            downsample: None,
        };
        let mut times = Vec::new();
        let mut frames = 0;
        let mut last = None;
        for _ in 0..args.runs {
            let t = Instant::now();
            let s = hasher.hash(&bytes, &opts)?;
            times.push(t.elapsed().as_secs_f64());
            frames = s.vpdq.features.len();
            last = Some(s.vpdq);
        }
        let m = median(times);
        println!(
            "echotrace {label:<12} {frames:>5} frames  {m:>7.3} s  = {:>6.2} s per minute  {:>7.1} frames hashed/s",
            m / minutes,
            frames as f64 / m
        );
        ours.push((label, sph, m, frames, last));
    }

    // --- PDQ alone on decoded 720p frames
    let (info, mut stream) = ffmpeg.decode(std::sync::Arc::from(bytes.as_slice()), |i| {
        Ok(FramePlan {
            every_nth: 30,
            width: i.width,
            height: i.height,
        })
    })?;
    let mut frames = Vec::new();
    let mut buf = Vec::new();
    while frames.len() < 30 && stream.next_frame(&mut buf)? {
        frames.push(buf.clone());
    }
    drop(stream);
    let mut pdq = PdqHasher::new();
    let mut times = Vec::new();
    for _ in 0..args.runs {
        let t = Instant::now();
        for f in &frames {
            pdq.hash_rgb8(f, info.width, info.height)?;
        }
        times.push(t.elapsed().as_secs_f64());
    }
    let m = median(times);
    println!(
        "echotrace PDQ only (720p frames in memory, 1 thread): {:.1} frames/s ({:.2} ms/frame, path {:?})",
        frames.len() as f64 / m,
        m * 1000.0 / frames.len() as f64,
        pdq.path()
    );

    // --- peer: reference vPDQ on the same file
    for (label, sph, our_m, our_frames, our_hash) in &ours {
        let peer = run_peer(
            &args.python,
            &[
                "hash".into(),
                clip.display().to_string(),
                sph.to_string(),
                args.runs.to_string(),
            ],
        );
        let peer = match peer {
            Ok(p) => p,
            Err(e) => {
                println!("peer vpdq unavailable: {e}");
                break;
            }
        };
        let times: Vec<f64> = peer["seconds"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default();
        let pm = median(times);
        let pframes = peer["frames"].as_u64().unwrap_or(0);
        println!(
            "peer vpdq  {label:<12} {pframes:>5} frames  {pm:>7.3} s  = {:>6.2} s per minute  {:>7.1} frames hashed/s   ratio (ours/peer throughput) {:.2}",
            pm / minutes,
            pframes as f64 / pm,
            pm / our_m
        );
        if let (Some(h), Some(list)) = (our_hash, peer["hashes"].as_array()) {
            let mut exact = 0;
            let mut dist = 0u64;
            let mut n = 0;
            for (f, p) in h.features.iter().zip(list) {
                let Some((hex, _q)) = p.as_str().and_then(|s| s.split_once(',')) else {
                    continue;
                };
                let Ok(ph) = echotrace_signals::pdq::PdqHash::from_hex(hex) else {
                    continue;
                };
                let d = f.hash.distance(&ph);
                dist += u64::from(d);
                exact += usize::from(d == 0);
                n += 1;
            }
            println!(
                "  agreement with peer: {exact}/{n} frames identical, mean distance {:.3} (ours {our_frames} frames)",
                dist as f64 / n.max(1) as f64
            );
        }
    }

    // --- video lookups against an index of synthetic videos
    let mut rng = Rng(0x5eed);
    let mut stored: Vec<Code256> = Vec::with_capacity(args.videos * args.frames);
    for _ in 0..args.videos {
        stored.extend(rng.walk(args.frames));
    }
    let mut queries: Vec<Code256> = Vec::with_capacity(args.queries * args.frames);
    let mut expected_hit = Vec::new();
    for q in 0..args.queries {
        if q % 2 == 0 {
            let v = (rng.next() % args.videos as u64) as usize;
            let src = stored
                .get(v * args.frames..(v + 1) * args.frames)
                .context("slice")?;
            let perturbed: Vec<Code256> = src.iter().map(|c| rng.flip(c, 8)).collect();
            queries.extend(perturbed);
            expected_hit.push(Some(v as u64));
        } else {
            queries.extend(rng.walk(args.frames));
            expected_hit.push(None);
        }
    }
    let t = Instant::now();
    let mut index = VpdqIndex::new(VpdqIndexOptions::default());
    for (v, chunk) in stored.chunks(args.frames).enumerate() {
        let frames: Vec<VpdqFrame> = chunk
            .iter()
            .map(|&code| VpdqFrame { code, quality: 100 })
            .collect();
        index.insert_video(v as u64, &frames)?;
    }
    let build = t.elapsed().as_secs_f64();
    let qframes: Vec<Vec<VpdqFrame>> = queries
        .chunks(args.frames)
        .map(|c| {
            c.iter()
                .map(|&code| VpdqFrame { code, quality: 100 })
                .collect()
        })
        .collect();
    let mut results = Vec::new();
    let mut times = Vec::new();
    for _ in 0..args.runs {
        results.clear();
        let t = Instant::now();
        for q in &qframes {
            let mut out = Vec::new();
            index.query(q, &mut out);
            results.push(out.iter().map(|c| c.video_id).collect::<Vec<u64>>());
        }
        times.push(t.elapsed().as_secs_f64());
    }
    let m = median(times);
    let correct = results
        .iter()
        .zip(&expected_hit)
        .filter(|(r, e)| match e {
            Some(v) => r.as_slice() == [*v],
            None => r.is_empty(),
        })
        .count();
    println!(
        "echotrace VpdqIndex: {} videos x {} frames ({} distinct), build {:.2} s, {:.1} lookups/s ({:.2} ms each), {}/{} queries answered as expected",
        args.videos,
        args.frames,
        index.distinct_frames(),
        build,
        qframes.len() as f64 / m,
        m * 1000.0 / qframes.len() as f64,
        correct,
        qframes.len()
    );
    let codes_path = args.dir.join("video-index.codes");
    let queries_path = args.dir.join("video-index.queries");
    write_codes(&codes_path, &stored)?;
    write_codes(&queries_path, &queries)?;
    match run_peer(
        &args.python,
        &[
            "index".into(),
            codes_path.display().to_string(),
            args.frames.to_string(),
            queries_path.display().to_string(),
        ],
    ) {
        Ok(p) => {
            let lps = p["lookups_per_s"].as_f64().unwrap_or(f64::NAN);
            let same = p["matches"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .zip(&results)
                        .filter(|(pm, ours)| {
                            let pv: Vec<u64> = pm
                                .as_array()
                                .map(|x| x.iter().filter_map(|v| v.as_u64()).collect())
                                .unwrap_or_default();
                            let mut o = (*ours).clone();
                            o.sort_unstable();
                            pv == o
                        })
                        .count()
                })
                .unwrap_or(0);
            println!(
                "peer faiss VPDQIndex: build {:.2} s, {:.1} lookups/s; ratio (ours/peer) {:.1}; identical answers {}/{}",
                p["build_s"].as_f64().unwrap_or(f64::NAN),
                lps,
                (qframes.len() as f64 / m) / lps,
                same,
                qframes.len()
            );
        }
        Err(e) => println!("peer faiss index unavailable: {e}"),
    }
    Ok(())
}
