//! Robust-matching benchmark (not part of the test suite): recall per edit
//! class and false matches over every edited-query × unrelated-original
//! pair, for echotrace's channel set and, from the same run's files, the
//! peers (plain PDQ through the `pdqhash` reference, and
//! python-threatexchange's `unletterbox` followed by PDQ).
//!
//! ```text
//! python3 bench/robust/generate.py /tmp/robust
//! python3 bench/robust/peers.py /tmp/robust          # writes peers.csv
//! cargo run --release -p echotrace-bench --bin robust -- /tmp/robust [--grid 0,3,6,9,12] [--crops 1,2] [--window-crops 3,3,3,3;2,0,0,0] [--every N] [--min-quality 50] [--content-buffers off]
//! python3 bench/robust/report.py /tmp/robust
//! ```
//!
//! Channels (the engine's, see docs/ROBUST.md): `plain` (whole-image hash ×
//! bank plain), `dihedral` (its 7 other variants × bank plain), `border`
//! (content rectangles × bank plain), `window` (query crops × bank plain,
//! and every query hash × the bank's crop-grid windows) and `region`
//! (every query hash × the bank original's own content rectangles), `part`
//! (fixed parts of the query and of its best border rectangle × the same
//! part of the original), `refined` (alignment refinement, session 16: for
//! a pair no other channel found, the closest needles moved toward the
//! windows of quality < 90 they came within `refine_reach` of, as the
//! engine's `refine_near`). For
//! each channel the harness records the smallest distance per (query,
//! original) pair up to 80 bits: the distance to the true original gives
//! recall, the rest the unrelated distribution the thresholds come from.

#[path = "../robust_common.rs"]
mod robust_common;
use robust_common::*;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use echotrace_engine::robust::{
    refine_reach, window_threshold, REFINE_BUDGET, REFINE_MAX_HASHES, REFINE_PAIRS_PER_ITEM,
};
use echotrace_index::{Code256, FlatIndex, Hit};
use echotrace_signals::pdq::PdqHash;
use echotrace_signals::robust::{
    window_variant_allowed, BankSource, QuerySource, RobustHasher, RobustOptions, WindowHasher,
};

/// `window_raw` is the bank-window channel with every dihedral variant of
/// every query hash (before `window_variant_allowed`; diagnostics only);
/// `window_qNN` is the bank-window channel restricted to windows whose PDQ
/// quality lies in the band starting at NN (10 wide; 90 takes 90–100), so
/// `report.py --thresholds` can set a threshold per quality band.
const CHANNELS: [&str; 14] = [
    "plain",
    "dihedral",
    "border",
    "qcrop",
    "window",
    "region",
    "window_raw",
    "window_q50",
    "window_q60",
    "window_q70",
    "window_q80",
    "window_q90",
    "part",
    "refined",
];
/// Index of `refined` in [`CHANNELS`]: alignment refinement (the engine's
/// `refine_near`): the closest needle moved toward a bank window of
/// quality < 90 it came within `refine_reach` of, for a pair no other
/// channel found; threshold 20 (`REFINE_THRESHOLD`, report.py).
const REFINED: usize = 13;
/// Index of `part` in [`CHANNELS`]: a fixed part of the query × the same
/// part of an original.
const PART: usize = 12;
/// A bank window a needle came near, for refinement: (distance −
/// threshold, distance, needle index — `None` the plain hash — window
/// code, threshold).
type NearWindow = (u32, u32, Option<usize>, Code256, u32);
/// Index of `window_q50` in [`CHANNELS`].
const BAND0: usize = 7;

/// Quality band of a window (0 for 50–59 … 4 for 90–100).
fn band(q: u8) -> usize {
    (usize::from(q.clamp(50, 100)) - 50).min(49) / 10
}
const MAX_D: u32 = 80;

struct Row {
    kind: String,
    class: String,
    path: String,
    original: usize,
    group: String,
}

fn manifest(dir: &Path) -> anyhow::Result<Vec<Row>> {
    let text = std::fs::read_to_string(dir.join("manifest.csv")).context("manifest.csv")?;
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 5 {
            bail!("bad manifest line {line}");
        }
        out.push(Row {
            kind: f[0].into(),
            class: f[1].into(),
            path: f[2].into(),
            original: f[3].parse()?,
            group: f[4].into(),
        });
    }
    Ok(out)
}

/// Per query: for each channel, (original → min distance) within MAX_D.
type Dists = Vec<HashMap<usize, u32>>;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(
        args.get(1)
            .context("usage: robust DIR [--grid a,b,..] [--crops a,b] [--threads N]")?,
    );
    let mut opts = RobustOptions::default();
    let mut threads = 2usize;
    let mut every = 1usize;
    let mut refine_min_near = 1usize;
    let mut bank_every = 1usize;
    let mut i = 2;
    while i < args.len() {
        match args[i].as_str() {
            "--grid" => opts.bank_grid = parse_list(&args[i + 1]),
            "--crops" => {
                opts.query_crops = parse_list(&args[i + 1])
                    .into_iter()
                    .map(|c| [c, c, c, c])
                    .collect()
            }
            // --window-crops l,t,r,b;… (per cent; "none": none).
            "--window-crops" => opts.window_crops = parse_crops(&args[i + 1]),
            "--crop-grid" => {
                opts.query_crops = echotrace_signals::robust::crop_grid(&parse_list(&args[i + 1]))
            }
            "--work-side" => opts.work_side = args[i + 1].parse()?,
            "--min-quality" => opts.min_quality = args[i + 1].parse()?,
            // --content-buffers off: every rectangle from the working buffer.
            "--content-buffers" => opts.content_buffers = args[i + 1] != "off",
            // --parts 33.3 (each side cut by that share in turn), 0: none.
            "--parts" => {
                opts.parts = parse_list(&args[i + 1])
                    .into_iter()
                    .filter(|c| *c > 0.0)
                    .flat_map(|c| {
                        [
                            [c, 0.0, 0.0, 0.0],
                            [0.0, c, 0.0, 0.0],
                            [0.0, 0.0, c, 0.0],
                            [0.0, 0.0, 0.0, c],
                        ]
                    })
                    .collect()
            }
            "--threads" => threads = args[i + 1].parse()?,
            "--every" => every = args[i + 1].parse::<usize>()?.max(1),
            // Refine only items with at least N near windows (measured
            // variant; the engine refines from 1).
            "--refine-min-near" => refine_min_near = args[i + 1].parse::<usize>()?.max(1),
            "--bank-every" => bank_every = args[i + 1].parse::<usize>()?.max(1),
            other => bail!("unknown option {other}"),
        }
        i += 2;
    }
    let rows = manifest(&dir)?;
    // --bank-every N: only every N-th original is held (quick runs).
    let originals: Vec<&Row> = rows
        .iter()
        .filter(|r| r.kind == "original" && r.original % bank_every == 0)
        .collect();
    // --every N: the queries of every N-th original (the bank holds all).
    let queries: Vec<&Row> = rows
        .iter()
        .filter(|r| r.kind == "query" && r.original % (every * bank_every) == 0)
        .collect();
    eprintln!(
        "{} originals, {} queries; grid {:?}, {} query crops",
        originals.len(),
        queries.len(),
        opts.bank_grid,
        opts.query_crops.len()
    );

    // Bank side.
    let t0 = Instant::now();
    let mut plain = FlatIndex::new();
    let mut window = FlatIndex::new();
    let mut region = FlatIndex::new();
    // Bank parts by the shares they removed: (original, code).
    let mut parts: HashMap<[u8; 4], Vec<(usize, Code256)>> = HashMap::new();
    let mut groups: HashMap<usize, String> = HashMap::new();
    // Every bank window with its original and quality (for the histogram).
    let mut window_q: HashMap<u64, u8> = HashMap::new();
    let mut all_windows: Vec<(usize, u8, Code256)> = Vec::new();
    let mut derived_count = 0usize;
    let mut bank_ms = Vec::new();
    {
        let mut h = RobustHasher::new();
        for o in &originals {
            let (rgb, w, ht) = decode(&dir.join(&o.path))?;
            let t = Instant::now();
            let set = h.query_set(
                &rgb,
                w,
                ht,
                &RobustOptions {
                    query_crops: vec![],
                    window_crops: vec![],
                    ..opts.clone()
                },
            )?;
            plain.insert(o.original as u64, set.plain.hash.to_words());
            let bank = h.bank_hashes(&rgb, w, ht, &opts)?;
            bank_ms.push(t.elapsed().as_secs_f64() * 1e3);
            derived_count += bank.len();
            for (k, b) in bank.iter().enumerate() {
                let id = ((o.original as u64) << 12) | k as u64;
                match b.source {
                    BankSource::Window => {
                        window_q.insert(id, b.quality);
                        all_windows.push((o.original, b.quality, b.hash.to_words()));
                        window.insert(id, b.hash.to_words());
                    }
                    BankSource::Region => {
                        region.insert(id, b.hash.to_words());
                    }
                    BankSource::Part => parts
                        .entry(b.removed)
                        .or_default()
                        .push((o.original, b.hash.to_words())),
                }
            }
            groups.insert(o.original, o.group.clone());
        }
    }
    bank_ms.sort_by(f64::total_cmp);
    eprintln!(
        "bank: {} derived hashes ({:.1} per original, {:.1} KB at 38 B), median {:.1} ms per original, {:.1}s",
        derived_count,
        derived_count as f64 / originals.len() as f64,
        derived_count as f64 / originals.len() as f64 * 38.0 / 1024.0,
        bank_ms[bank_ms.len() / 2],
        t0.elapsed().as_secs_f64()
    );

    // Query side, in parallel.
    let t1 = Instant::now();
    let chunk = queries.len().div_ceil(threads.max(1));
    let total = queries.len();
    // Originals scored by report.py (keep.txt, one id a line), if written:
    // the histogram counts only their pairs (no near-duplicates).
    let keep: Option<std::collections::HashSet<usize>> =
        std::fs::read_to_string(dir.join("keep.txt"))
            .ok()
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect());
    type Hist = Vec<[u64; 257]>;
    let results: Vec<(usize, Dists, f64, Hist)> = std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .chunks(chunk.max(1))
            .enumerate()
            .map(|(ci, qs)| {
                let (plain, window, region, opts, dir) = (&plain, &window, &region, &opts, &dir);
                let parts = &parts;
                let (window_q, all_windows, groups, keep) =
                    (&window_q, &all_windows, &groups, &keep);
                s.spawn(move || {
                    let mut h = RobustHasher::new();
                    let mut wh = WindowHasher::new();
                    // Refinements tried (true pair, unrelated pair), window
                    // hashes spent, queries that refined
                    // for an unrelated original, seconds spent refining.
                    let mut stats = (0u64, 0u64, 0u64, 0u64, 0.0f64);
                    let mut out = Vec::new();
                    let mut hits: Vec<Hit> = Vec::new();
                    for (qi, q) in qs.iter().enumerate() {
                        let Ok((rgb, w, ht)) = decode(&dir.join(&q.path)) else {
                            continue;
                        };
                        let t = Instant::now();
                        let Ok(set) = h.query_set(&rgb, w, ht, opts) else {
                            continue;
                        };
                        let ms = t.elapsed().as_secs_f64() * 1e3;
                        let pick = |f: &dyn Fn(QuerySource, u8) -> bool| -> Vec<Code256> {
                            set.hashes
                                .iter()
                                .filter(|x| f(x.source, x.variant))
                                .map(|x| x.hash.to_words())
                                .collect()
                        };
                        let groups_needles: [Vec<Code256>; 4] = [
                            vec![set.plain.hash.to_words()],
                            pick(&|s, _| s == QuerySource::Whole),
                            pick(&|s, _| s == QuerySource::Border),
                            pick(&|s, _| s == QuerySource::Crop),
                        ];
                        let mut all: Vec<Code256> = pick(&|s, _| s != QuerySource::Part);
                        if set.plain.quality >= opts.min_quality {
                            all.push(set.plain.hash.to_words());
                        }
                        let mut d: Dists = vec![HashMap::new(); CHANNELS.len()];
                        for (c, needles) in groups_needles.iter().enumerate() {
                            if needles.is_empty() {
                                continue;
                            }
                            hits.clear();
                            plain.search_multi(needles, MAX_D, &mut hits);
                            for hit in &hits {
                                let e = d[c].entry(hit.id as usize).or_insert(u32::MAX);
                                *e = (*e).min(hit.distance);
                            }
                        }
                        // Bank windows take only the upload as it is and
                        // its mirror (the engine's rule); regions all.
                        let mut upright_q: Vec<(Code256, u8)> = set
                            .hashes
                            .iter()
                            .filter(|x| {
                                window_variant_allowed(x.variant) && x.source != QuerySource::Part
                            })
                            .map(|x| (x.hash.to_words(), x.quality))
                            .collect();
                        if set.plain.quality >= opts.min_quality {
                            upright_q.push((set.plain.hash.to_words(), set.plain.quality));
                        }
                        let upright: Vec<Code256> = upright_q.iter().map(|(c, _)| *c).collect();
                        // Every unrelated needle × window distance, by
                        // window quality band × needle quality band.
                        let mut hist: Hist = vec![[0u64; 257]; 25];
                        let qg = groups.get(&q.original);
                        let kept = |o: &usize| keep.as_ref().is_none_or(|k| k.contains(o));
                        if kept(&q.original) {
                            for (o, wq, code) in all_windows {
                                if groups.get(o) == qg || !kept(o) {
                                    continue;
                                }
                                let wb = band(*wq) * 5;
                                for (n, nq) in &upright_q {
                                    hist[wb + band(*nq)]
                                        [echotrace_index::hamming(n, code) as usize] += 1;
                                }
                            }
                        }
                        for (c, ix, needles) in [
                            (4usize, window, &upright),
                            (5usize, region, &all),
                            (6usize, window, &all),
                        ] {
                            if needles.is_empty() {
                                continue;
                            }
                            for part in needles.chunks(8) {
                                hits.clear();
                                ix.search_multi(part, MAX_D, &mut hits);
                                for hit in &hits {
                                    let o = (hit.id >> 12) as usize;
                                    let e = d[c].entry(o).or_insert(u32::MAX);
                                    *e = (*e).min(hit.distance);
                                    if c == 4 {
                                        if let Some(wq) = window_q.get(&hit.id) {
                                            let e =
                                                d[BAND0 + band(*wq)].entry(o).or_insert(u32::MAX);
                                            *e = (*e).min(hit.distance);
                                        }
                                    }
                                }
                            }
                        }
                        // Parts: each only with the same part of originals.
                        for x in set.hashes.iter().filter(|x| x.source == QuerySource::Part) {
                            let Some(list) = x.part.and_then(|p| parts.get(&p)) else {
                                continue;
                            };
                            let n = x.hash.to_words();
                            for (o, code) in list {
                                let dist = echotrace_index::hamming(&n, code);
                                if dist <= MAX_D {
                                    let e = d[PART].entry(*o).or_insert(u32::MAX);
                                    *e = (*e).min(dist);
                                }
                            }
                        }
                        // Alignment refinement, as the engine's
                        // `refine_near` per held item: pairs no channel
                        // found, the windows a needle came near.
                        let found = |o: usize| {
                            let within = |c: usize, t: u32| d[c].get(&o).is_some_and(|v| *v <= t);
                            within(0, 31)
                                || within(1, 31)
                                || within(2, 36)
                                || within(3, 40)
                                || within(5, 36)
                                || (BAND0..BAND0 + 4).any(|c| within(c, 28))
                                || within(BAND0 + 4, 40)
                                || within(PART, 28)
                        };
                        let mut engine_needles: Vec<(Code256, Option<usize>)> = Vec::new();
                        if set.plain.quality >= opts.min_quality {
                            engine_needles.push((set.plain.hash.to_words(), None));
                        }
                        engine_needles.extend(
                            set.hashes
                                .iter()
                                .enumerate()
                                .filter(|(_, x)| {
                                    window_variant_allowed(x.variant)
                                        && x.source != QuerySource::Part
                                })
                                .map(|(i, x)| (x.hash.to_words(), Some(i))),
                        );
                        let mut near: HashMap<usize, Vec<NearWindow>> = HashMap::new();
                        for (o, wq, code) in all_windows {
                            let t = window_threshold(*wq);
                            let reach = refine_reach(t);
                            if reach <= t {
                                continue;
                            }
                            let mut best: Option<(u32, Option<usize>)> = None;
                            for (n, i) in &engine_needles {
                                let dist = echotrace_index::hamming(n, code);
                                if best.is_none_or(|b| dist < b.0) {
                                    best = Some((dist, *i));
                                }
                            }
                            if let Some((dist, i)) = best.filter(|b| b.0 > t && b.0 <= reach) {
                                near.entry(*o).or_default().push((dist - t, dist, i, *code, t));
                            }
                        }
                        let near: Vec<_> = near
                            .into_iter()
                            .filter(|(o, list)| !found(*o) && list.len() >= refine_min_near)
                            .collect();
                        let t_refine = Instant::now();
                        if near.iter().any(|(o, _)| groups.get(o) != qg) {
                            stats.3 += 1;
                        }
                        for (o, mut list) in near {
                            list.sort_by_key(|x| (x.0, x.1));
                            let mut spent = 0u32;
                            for (_, d0, i, code, _) in list.into_iter().take(REFINE_PAIRS_PER_ITEM) {
                                if spent + REFINE_MAX_HASHES > REFINE_BUDGET {
                                    break;
                                }
                                let target = PdqHash::from_words(code);
                                if o == q.original {
                                    stats.0 += 1;
                                } else {
                                    stats.1 += 1;
                                }
                                let Ok(out) = set.refine(&mut wh, i, &target, d0, opts.min_quality)
                                else {
                                    continue;
                                };
                                spent += out.hashes;
                                stats.2 += u64::from(out.hashes);
                                let Some(r) = out.best else { continue };
                                if r.distance <= MAX_D {
                                    let e = d[REFINED].entry(o).or_insert(u32::MAX);
                                    *e = (*e).min(r.distance);
                                }
                            }
                        }
                        stats.4 += t_refine.elapsed().as_secs_f64();
                        out.push((ci * chunk + qi, d, ms, hist));
                        if ci == 0 && qi % 500 == 0 {
                            eprintln!(
                                "  {} / {} queries ({:.0}s)",
                                qi * threads,
                                total,
                                t1.elapsed().as_secs_f64()
                            );
                        }
                    }
                    eprintln!(
                        "  thread {ci}: refinements {} for the true original, {} for unrelated ones ({} queries), {} window hashes spent, {:.1} s refining",
                        stats.0, stats.1, stats.3, stats.2, stats.4
                    );
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut qms: Vec<f64> = results.iter().map(|r| r.2).collect();
    qms.sort_by(f64::total_cmp);
    eprintln!(
        "queries: {:.1}s, median query set {:.2} ms",
        t1.elapsed().as_secs_f64(),
        qms.get(qms.len() / 2).copied().unwrap_or(0.0)
    );

    // Peers.
    let peers = read_peers(&dir.join("peers.csv")).unwrap_or_default();
    let peer_orig: Vec<(usize, PdqHash, PdqHash)> = originals
        .iter()
        .filter_map(|o| peers.get(&o.path).map(|p| (o.original, p.0, p.1)))
        .collect();

    // Write raw distances: one line per query: class, original, then per
    // channel the true distance and the sorted unrelated minima ≤ MAX_D.
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("distances.tsv"))?);
    writeln!(f, "class\toriginal\tchannel\ttrue\tunrelated")?;
    // The unrelated needle × window histogram: window band, needle band,
    // then the counts at distances 0..=256.
    let mut total: Hist = vec![[0u64; 257]; 25];
    for (_, _, _, h) in &results {
        for (t, r) in total.iter_mut().zip(h) {
            for (a, b) in t.iter_mut().zip(r) {
                *a += b;
            }
        }
    }
    let mut hf = std::io::BufWriter::new(std::fs::File::create(dir.join("window_hist.tsv"))?);
    writeln!(hf, "window_band\tneedle_band\tcounts_0_to_256")?;
    for (i, row) in total.iter().enumerate() {
        let counts: Vec<String> = row.iter().map(|c| c.to_string()).collect();
        writeln!(
            hf,
            "{}\t{}\t{}",
            50 + 10 * (i / 5),
            50 + 10 * (i % 5),
            counts.join(",")
        )?;
    }
    hf.flush()?;
    for (qi, d, _, _) in &results {
        let q = queries[*qi];
        let qg = &q.group;
        let mut chans: Vec<(String, &HashMap<usize, u32>)> = CHANNELS
            .iter()
            .map(|c| c.to_string())
            .zip(d.iter())
            .collect();
        // Peers: pdqhash plain and unletterbox+pdq, vs originals' pdqhash.
        let mut pd: [HashMap<usize, u32>; 2] = [HashMap::new(), HashMap::new()];
        if let Some((qp, qu)) = peers.get(&q.path) {
            for (o, op, _) in &peer_orig {
                let a = qp.distance(op);
                let b = qu.distance(op);
                if a <= MAX_D {
                    pd[0].insert(*o, a);
                }
                if b <= MAX_D {
                    pd[1].insert(*o, b);
                }
            }
        }
        chans.push(("peer_pdqhash".into(), &pd[0]));
        chans.push(("peer_unletterbox".into(), &pd[1]));
        for (name, m) in chans {
            let truth = m
                .get(&q.original)
                .copied()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into());
            let mut un: Vec<(u32, usize)> = m
                .iter()
                .filter(|(o, _)| groups.get(o).is_some_and(|g| g != qg))
                .map(|(o, v)| (*v, *o))
                .collect();
            un.sort_unstable();
            let un: Vec<String> = un.iter().map(|(v, o)| format!("{o}:{v}")).collect();
            writeln!(
                f,
                "{}\t{}\t{}\t{}\t{}",
                q.class,
                q.original,
                name,
                truth,
                un.join(",")
            )?;
        }
    }
    f.flush()?;
    eprintln!("wrote {}", dir.join("distances.tsv").display());
    Ok(())
}

fn read_peers(path: &Path) -> anyhow::Result<HashMap<String, (PdqHash, PdqHash)>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 3 {
            continue;
        }
        if let (Ok(a), Ok(b)) = (PdqHash::from_hex(f[1]), PdqHash::from_hex(f[2])) {
            out.insert(f[0].to_string(), (a, b));
        }
    }
    Ok(out)
}
