//! Where the crop queries of the robust-matching benchmark fall relative to
//! the bank's crop grid, and what finds them (not part of the test suite).
//!
//! ```text
//! python3 bench/robust/crop_shares.py /tmp/robust          # crop_shares.tsv
//! cargo run --release -p echotrace-bench --bin robust_crops -- /tmp/robust \
//!     [--every 4] [--grid 0,4,8,12] [--crops 1,2] [--window-crops 3,3,3,3;2,0,0,0] [--misses]
//!     [--refine-k 12 [--refine-n 3] [--refine-cap 40]]
//! ```
//!
//! For every scored query of a crop class (`keep.txt`, every `--every`-th
//! original) it compares the query only with its *true* original, as the
//! engine would: the plain and dihedral hashes, border rectangles and
//! query crops against the stored hash, every upright or mirrored needle
//! against the crop-grid windows (threshold by window quality,
//! `window_threshold`), parts against the same part. It prints per class
//! how many are found, and with `--misses`, per missed query: the true
//! shares cut per side, the closest window (its shares, quality, distance,
//! threshold and the needle that came closest) and the **oracle** — the
//! query's whole-image hash against a window cut from the original at
//! exactly the true shares, which no grid can beat: what alignment costs
//! against what the edit itself (JPEG, resampling) costs. The summary's
//! *ceiling* is the share found plus the misses whose oracle window passes
//! both the quality gate and its threshold: the recall a window at every
//! query's exact crop would give. `--refine` adds
//! the local search docs/ROBUST.md measured and left out: from every
//! needle within 40 bits of a window, each side moved in 1 % steps while
//! the distance to that window falls. `--refine-k K` measures the
//! engine's alignment refinement (`refine_window`, session 16) for a missed
//! query: every (allowed needle, window) pair within the window's
//! threshold + K, the closest `--refine-n` first, those farther than
//! `--refine-cap` bits left out (the engine: K 12, n 3, cap 40, the
//! derived search radius). `--grid`, `--crops`,
//! `--query-crops` and `--window-crops` replace the defaults, as in the
//! `robust` harness.

#[path = "../robust_common.rs"]
mod robust_common;
use robust_common::*;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use anyhow::{bail, Context};
use echotrace_engine::robust::{window_threshold, REFINE_THRESHOLD};
use echotrace_signals::robust::{
    refine_window, window_variant_allowed, BankSource, QuerySource, Rect, RobustHasher,
    RobustOptions, WindowHasher, WorkImage, VARIANT_NAMES,
};

struct Best {
    /// distance − threshold (≤ 0: found).
    margin: i64,
    dist: u32,
    thr: u32,
    what: String,
}

fn consider(best: &mut Option<Best>, dist: u32, thr: u32, what: impl FnOnce() -> String) {
    let margin = i64::from(dist) - i64::from(thr);
    if best.as_ref().is_none_or(|b| margin < b.margin) {
        *best = Some(Best {
            margin,
            dist,
            thr,
            what: what(),
        });
    }
}

/// Coordinate descent: move each side of `rect` by ±1 % of the image
/// (query pixels), keep the best improving move, up to 6 rounds.
fn descend(
    wh: &mut WindowHasher,
    work: &WorkImage,
    rect: Rect,
    variant: u8,
    target: &echotrace_signals::pdq::PdqHash,
    d0: u32,
) -> anyhow::Result<(u32, Rect, u8)> {
    let (sw, sh) = (work.source_width, work.source_height);
    let sx = ((sw as f32) * 0.01).round().max(1.0) as i64;
    let sy = ((sh as f32) * 0.01).round().max(1.0) as i64;
    let mut cur = rect;
    let mut best = d0;
    let mut q = 100u8;
    for _ in 0..6 {
        let mut step: Option<(u32, Rect, u8)> = None;
        for (side, delta) in [
            (0, -1),
            (0, 1),
            (1, -1),
            (1, 1),
            (2, -1),
            (2, 1),
            (3, -1),
            (3, 1),
        ] {
            let (mut x0, mut y0) = (i64::from(cur.x), i64::from(cur.y));
            let (mut x1, mut y1) = (x0 + i64::from(cur.w), y0 + i64::from(cur.h));
            match side {
                0 => x0 += delta * sx,
                1 => y0 += delta * sy,
                2 => x1 += delta * sx,
                _ => y1 += delta * sy,
            }
            if x0 < 0
                || y0 < 0
                || x1 > i64::from(sw)
                || y1 > i64::from(sh)
                || x1 - x0 < 16
                || y1 - y0 < 16
            {
                continue;
            }
            let r = Rect {
                x: x0 as u32,
                y: y0 as u32,
                w: (x1 - x0) as u32,
                h: (y1 - y0) as u32,
            };
            let d = wh.hash(work, r)?;
            let h = d.hashes.named()[usize::from(variant)].1;
            let dist = h.distance(target);
            if step.as_ref().is_none_or(|s| dist < s.0) {
                step = Some((dist, r, d.quality));
            }
        }
        match step {
            Some((d, r, qq)) if d < best => {
                best = d;
                cur = r;
                q = qq;
            }
            _ => break,
        }
    }
    Ok((best, cur, q))
}

fn pct(f: [f32; 4]) -> String {
    format!(
        "{:.1}/{:.1}/{:.1}/{:.1}",
        f[0] * 100.0,
        f[1] * 100.0,
        f[2] * 100.0,
        f[3] * 100.0
    )
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).context(
        "usage: robust_crops DIR [--every N] [--grid a,b,..] [--crops a,b] [--query-crops l,t,r,b;..] [--window-crops l,t,r,b;..] [--misses] [--refine]",
    )?);
    let mut opts = RobustOptions::default();
    let mut every = 4usize;
    let mut misses = false;
    let mut refine = false;
    let mut refine_k: Option<u32> = None;
    let mut refine_hashes = 0u64;
    let mut refine_runs = 0u64;
    let mut refine_n = usize::MAX;
    let mut refine_cap = u32::MAX;
    let mut i = 2;
    while i < args.len() {
        match args[i].as_str() {
            "--misses" => {
                misses = true;
                i += 1;
                continue;
            }
            "--refine" => {
                refine = true;
                i += 1;
                continue;
            }
            "--grid" => opts.bank_grid = parse_list(&args[i + 1]),
            "--crops" => {
                opts.query_crops = parse_list(&args[i + 1])
                    .into_iter()
                    .map(|c| [c, c, c, c])
                    .collect()
            }
            "--query-crops" => opts.query_crops = parse_crops(&args[i + 1]),
            "--window-crops" => opts.window_crops = parse_crops(&args[i + 1]),
            "--refine-n" => refine_n = args[i + 1].parse()?,
            "--refine-cap" => refine_cap = args[i + 1].parse()?,
            "--refine-k" => refine_k = Some(args[i + 1].parse()?),
            "--every" => every = args[i + 1].parse::<usize>()?.max(1),
            other => bail!("unknown option {other}"),
        }
        i += 2;
    }
    let keep: Option<HashSet<usize>> = std::fs::read_to_string(dir.join("keep.txt"))
        .ok()
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect());
    let shares = std::fs::read_to_string(dir.join("crop_shares.tsv"))
        .context("crop_shares.tsv (python3 bench/robust/crop_shares.py DIR)")?;
    let mut h = RobustHasher::new();
    let mut wh = WindowHasher::new();
    let mut found: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut bank_cache: Option<(usize, Vec<_>, Vec<u8>, u32, u32)> = None;
    for line in shares.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 6 {
            bail!("bad line {line}");
        }
        let class = f[0].to_string();
        let orig: usize = f[1].parse()?;
        if !orig.is_multiple_of(every) || keep.as_ref().is_some_and(|k| !k.contains(&orig)) {
            continue;
        }
        let truth = [f[2], f[3], f[4], f[5]].map(|v| v.parse::<f32>().unwrap_or(0.0));
        if bank_cache.as_ref().is_none_or(|b| b.0 != orig) {
            let (rgb, w, ht) = decode(&dir.join(format!("originals/{orig:04}.png")))?;
            let bank = h.bank_hashes(&rgb, w, ht, &opts)?;
            bank_cache = Some((orig, bank, rgb, w, ht));
        }
        let Some((_, bank, orgb, ow, oh)) = bank_cache.as_ref() else {
            continue;
        };
        let oset = h.query_set(
            orgb,
            *ow,
            *oh,
            &RobustOptions {
                query_crops: vec![],
                window_crops: vec![],
                ..opts.clone()
            },
        )?;
        let stored = oset.plain.hash;
        let (qrgb, qw, qh) = decode(&dir.join(format!("queries/{class}/{orig:04}.jpg")))?;
        let set = h.query_set(&qrgb, qw, qh, &opts)?;
        let mut best: Option<Best> = None;
        consider(&mut best, set.plain.hash.distance(&stored), 31, || {
            "plain".into()
        });
        let mut needles: Vec<(_, u8, QuerySource, Rect, u8)> = set
            .hashes
            .iter()
            .map(|x| (x.hash, x.quality, x.source, x.rect, x.variant))
            .collect();
        if set.plain.quality >= opts.min_quality {
            needles.push((
                set.plain.hash,
                set.plain.quality,
                QuerySource::Whole,
                Rect::full(qw, qh),
                0,
            ));
        }
        for x in &set.hashes {
            let thr = match x.source {
                QuerySource::Whole => 31,
                QuerySource::Border => 36,
                QuerySource::Crop => 40,
                QuerySource::Part => continue,
            };
            consider(&mut best, x.hash.distance(&stored), thr, || {
                format!("{:?} {:?} → stored", x.source, x.rect)
            });
        }
        for b in bank.iter() {
            match b.source {
                BankSource::Window => {
                    for (n, _, src, rect, v) in &needles {
                        if !window_variant_allowed(*v) || *src == QuerySource::Part {
                            continue;
                        }
                        consider(
                            &mut best,
                            n.distance(&b.hash),
                            window_threshold(b.quality),
                            || {
                                format!(
                                    "{src:?} {} {rect:?} → window {} q{}",
                                    VARIANT_NAMES[usize::from(*v)],
                                    pct(b.fractions()),
                                    b.quality
                                )
                            },
                        );
                    }
                }
                BankSource::Part => {
                    for x in set.hashes.iter().filter(|x| x.part == Some(b.removed)) {
                        consider(&mut best, x.hash.distance(&b.hash), 28, || {
                            format!("part {}", pct(b.fractions()))
                        });
                    }
                }
                BankSource::Region => {}
            }
        }
        if refine && best.as_ref().is_some_and(|b| b.margin > 0) {
            let qwork = WorkImage::from_rgb8(&qrgb, qw, qh, opts.work_side)?;
            for b in bank.iter().filter(|b| b.source == BankSource::Window) {
                for (n, _, src, rect, v) in &needles {
                    if !window_variant_allowed(*v) || *src == QuerySource::Part {
                        continue;
                    }
                    let d0 = n.distance(&b.hash);
                    if d0 > 40 {
                        continue;
                    }
                    let (d, r, q) = descend(&mut wh, &qwork, *rect, *v, &b.hash, d0)?;
                    if q < 50 {
                        continue;
                    }
                    consider(&mut best, d, window_threshold(b.quality), || {
                        format!(
                            "refined from {d0} {rect:?} to {r:?} → window {} q{}",
                            pct(b.fractions()),
                            b.quality
                        )
                    });
                }
            }
        }
        if let Some(k) = refine_k.filter(|_| best.as_ref().is_some_and(|b| b.margin > 0)) {
            let qwork = WorkImage::from_rgb8(&qrgb, qw, qh, opts.work_side)?;
            let mut cands = Vec::new();
            for b in bank.iter().filter(|b| b.source == BankSource::Window) {
                let thr = window_threshold(b.quality);
                for (n, _, src, rect, v) in &needles {
                    if !window_variant_allowed(*v) || *src == QuerySource::Part {
                        continue;
                    }
                    let d0 = n.distance(&b.hash);
                    if d0 <= thr || d0 > thr + k || d0 > refine_cap {
                        continue;
                    }
                    cands.push((d0 - thr, d0, *rect, *v, b));
                }
            }
            cands.sort_by_key(|c| (c.0, c.1));
            for (_, d0, rect, v, b) in cands.into_iter().take(refine_n) {
                refine_runs += 1;
                let out = refine_window(&mut wh, &qwork, rect, v, &b.hash, d0, opts.min_quality)?;
                refine_hashes += u64::from(out.hashes);
                let Some(r) = out.best else { continue };
                consider(&mut best, r.distance, REFINE_THRESHOLD, || {
                    format!(
                        "refined2 from {d0} {rect:?} to {:?} → window {} q{} ({} hashes)",
                        r.rect,
                        pct(b.fractions()),
                        b.quality,
                        out.hashes
                    )
                });
            }
        }
        let e = found.entry(class.clone()).or_default();
        e.0 += 1;
        let Some(best) = best else { continue };
        if best.margin <= 0 {
            e.1 += 1;
            continue;
        }
        // Oracle: the original cut at exactly the true shares.
        let owork = WorkImage::from_rgb8(orgb, *ow, *oh, opts.work_side)?;
        let qwork = WorkImage::from_rgb8(&qrgb, qw, qh, opts.work_side)?;
        let exact = wh.hash(&owork, owork.window(truth[0], truth[1], truth[2], truth[3]))?;
        let qwhole = wh.hash(&qwork, Rect::full(qw, qh))?;
        let od = qwhole.hashes.orig.distance(&exact.hashes.orig);
        // Reachable by alignment alone: the exact window passes the quality
        // gate (no derived hash of quality < 50 ever matches) and its
        // threshold.
        if exact.quality >= opts.min_quality && od <= window_threshold(exact.quality) {
            e.2 += 1;
        }
        if misses {
            println!(
                "{class}\t{orig}\ttrue {}\tbest {} (thr {}) {}\toracle {} q{} (thr {})",
                pct(truth),
                best.dist,
                best.thr,
                best.what,
                od,
                exact.quality,
                window_threshold(exact.quality)
            );
        }
    }
    println!("refinements {refine_runs}, window hashes {refine_hashes}");
    println!("class\tqueries\tfound\tmissed\tmissed but oracle within threshold and gate\tceiling");
    for (c, (n, ok, or)) in &found {
        let pc = |k: usize| 100.0 * k as f64 / *n as f64;
        println!(
            "{c}\t{n}\t{ok} ({:.1} %)\t{}\t{or}\t{:.1} %",
            pc(*ok),
            n - ok,
            pc(ok + or)
        );
    }
    Ok(())
}
