//! Cost of robust matching per image lookup (not part of the test suite):
//! decode + hash + search, plain vs. all query channels, on the fixture
//! JPEGs (`../shared/fixtures/pdq/images/**.jpg`), against a bank of
//! `--bank N` held images (random plain codes; derived windows and parts
//! for every held image at the default grid's size). Recording the lookup (one store
//! transaction) is the same for both and left out.
//!
//! ```text
//! cargo run --release -p echotrace-bench --bin robust_cost -- [--bank 10000] [--reps 5] [--window-crops 3,3,3,3;2,0,0,0] [--content-buffers off] [--refine]
//! ```
//!
//! `--refine` (session 16) adds to every lookup what alignment refinement
//! costs when a held item comes near: the upload's plain needle refined
//! toward two windows of its own (4 % off every side; 8 % off the left),
//! as the engine's `refine_near` would for an item that missed — the cost
//! of a lookup that refines, not of the common one (random bank codes
//! never come near).
//!
//! `--refine-share P` (session 17) refines in a share P of the lookups
//! only (every round(1/P)-th, the same files each rep): the mix a bank
//! whose `refine` is on sees when uploads come near one of its held items
//! at that rate (1 − e^(−rN) for N held originals; docs/ROBUST.md,
//! "`refine`: alignment refinement per bank"). Without either flag: a
//! bank with `refine` off, or one no upload comes near.

#[path = "../robust_common.rs"]
mod robust_common;

use std::path::PathBuf;
use std::time::Instant;

use echotrace_index::{Code256, Hit, MihIndex, MihParams};
use echotrace_signals::content::{ContentHasher, HashOptions, RobustRole};
use echotrace_signals::pdq::PdqHash;
use echotrace_signals::robust::{crop_grid, QuerySource, RobustOptions, WindowHasher};

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str, d: usize| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let bank = get("--bank", 10_000);
    let reps = get("--reps", 5);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/pdq/images");
    let mut files = Vec::new();
    for sub in std::fs::read_dir(&dir)? {
        let sub = sub?.path();
        if !sub.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&sub)? {
            let f = f?.path();
            if f.extension().is_some_and(|e| e == "jpg" || e == "jpeg") {
                files.push(std::fs::read(&f)?);
            }
        }
    }
    // The crop grid's windows, one for the uncut image's place, the parts.
    let windows = crop_grid(&RobustOptions::default().bank_grid).len()
        + 1
        + RobustOptions::default().parts.len();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut code = || -> Code256 {
        [
            xorshift(&mut seed),
            xorshift(&mut seed),
            xorshift(&mut seed),
            xorshift(&mut seed),
        ]
    };
    let plain = MihIndex::build(
        (0..bank as u64).map(|i| (i, code())).collect::<Vec<_>>(),
        MihParams::default(),
    )?;
    let derived = MihIndex::build(
        (0..(bank * windows) as u64)
            .map(|i| (i, code()))
            .collect::<Vec<_>>(),
        MihParams::default(),
    )?;
    eprintln!(
        "{} fixture JPEGs; bank {bank} images, {} derived codes",
        files.len(),
        derived.len()
    );
    let opts = HashOptions::default();
    let mut ropts = RobustOptions::default();
    // --window-crops l,t,r,b;… in per cent ("none": none).
    if let Some(v) = args
        .iter()
        .position(|a| a == "--window-crops")
        .and_then(|i| args.get(i + 1))
    {
        ropts.window_crops = robust_common::parse_crops(v);
    }
    // --content-buffers off: every rectangle from the working buffer.
    if let Some(v) = args
        .iter()
        .position(|a| a == "--content-buffers")
        .and_then(|i| args.get(i + 1))
    {
        ropts.content_buffers = v != "off";
    }
    let share: f64 = args
        .iter()
        .position(|a| a == "--refine-share")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if args.iter().any(|a| a == "--refine") {
            1.0
        } else {
            0.0
        });
    let refine = share > 0.0;
    // Every `every`-th lookup refines.
    let every = if refine {
        (1.0 / share).round().max(1.0) as usize
    } else {
        usize::MAX
    };
    let (mut lookup, mut refined_lookups) = (0usize, 0usize);
    let mut h = ContentHasher::new();
    let mut wh = WindowHasher::new();
    // The refinement targets of each file (not timed).
    let mut targets: Vec<Vec<PdqHash>> = Vec::new();
    if refine {
        for bytes in &files {
            let r = h.hash_robust(bytes, &opts, RobustRole::Query, &ropts)?;
            let mut t = Vec::new();
            if let Some(work) = r.query.as_ref().and_then(|s| s.work.clone()) {
                for f in [[0.04f32; 4], [0.08, 0.0, 0.0, 0.0]] {
                    let w = wh.hash(&work, work.window(f[0], f[1], f[2], f[3]))?;
                    t.push(w.hashes.orig);
                }
            }
            targets.push(t);
        }
    }
    let (mut refinements, mut refine_hashes) = (0u64, 0u64);
    let mut hits: Vec<Hit> = Vec::new();
    let (mut t_plain, mut t_robust) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        for (fi, bytes) in files.iter().enumerate() {
            let t = Instant::now();
            let s = h.hash(bytes, &opts)?;
            if let Ok(p) = PdqHash::from_hex(&s[0].value) {
                hits.clear();
                plain.search(&p.to_words(), 31, &mut hits);
            }
            t_plain.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let r = h.hash_robust(bytes, &opts, RobustRole::Query, &ropts)?;
            if let Some(set) = &r.query {
                // Query parts meet only the held originals' parts (the
                // derived index), as in the engine.
                let all: Vec<Code256> = std::iter::once(set.plain.hash.to_words())
                    .chain(set.hashes.iter().map(|q| q.hash.to_words()))
                    .collect();
                let whole: Vec<Code256> = std::iter::once(set.plain.hash.to_words())
                    .chain(
                        set.hashes
                            .iter()
                            .filter(|q| q.source != QuerySource::Part)
                            .map(|q| q.hash.to_words()),
                    )
                    .collect();
                hits.clear();
                plain.search_multi(&whole, 40, &mut hits);
                hits.clear();
                derived.search_multi(&all, 40, &mut hits);
                lookup += 1;
                let refines_now = refine && lookup % every == 0;
                refined_lookups +=
                    usize::from(refines_now && targets.get(fi).is_some_and(|t| !t.is_empty()));
                for target in targets
                    .get(fi)
                    .into_iter()
                    .flatten()
                    .filter(|_| refines_now)
                {
                    let d0 = set.plain.hash.distance(target);
                    refinements += 1;
                    let out = set.refine(&mut wh, None, target, d0, ropts.min_quality)?;
                    refine_hashes += u64::from(out.hashes);
                }
            }
            t_robust.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    let (sp, sr) = (sum(&t_plain), sum(&t_robust));
    let (mp, mr) = (med(&mut t_plain), med(&mut t_robust));
    if refine {
        println!(
            "refinements: {refinements} in {} of {} lookups, {:.1} window hashes each",
            refined_lookups,
            t_robust.len(),
            refine_hashes as f64 / refinements.max(1) as f64
        );
    }
    let p95 = |v: &[f64]| v[(v.len() * 95 / 100).min(v.len() - 1)];
    println!(
        "plain: median {mp:.2} ms, total {sp:.0} ms; all channels: median {mr:.2} ms, total {sr:.0} ms; ratio of medians {:.2}x, of totals {:.2}x, of 95th percentiles {:.2}x",
        mr / mp,
        sr / sp,
        p95(&t_robust) / p95(&t_plain)
    );
    Ok(())
}
