//! The border detectors measured one by one (not part of the test suite):
//! for every query of the robust-matching benchmark, each detector's own
//! rectangle (before merging) is hashed and compared with the original's
//! plain hash through the `border` channel's rule (best of the 8 dihedral
//! variants ≤ 36 bits). For the classes whose content rectangle the
//! generator's arithmetic gives (pads, letterboxes, meme captions), the
//! rectangle's overlap with the truth and the distance of the true
//! rectangle itself (what a perfect detector would reach) are printed too.
//! The "+ windows" column adds what the other channels make of a
//! rectangle: it, and its query crops, against the held original's bank
//! windows (as uploaded or mirrored), and its crops against the plain hash
//! at 40 — how a meme + crop is found.
//!
//! ```text
//! cargo run --release -p echotrace-bench --bin robust_detect -- /tmp/robust [--every 4] [--classes pad10_blur,pad20_blur]
//! ```

#[path = "../robust_common.rs"]
mod robust_common;
use robust_common::*;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{bail, Context};
use echotrace_engine::robust::{window_threshold, WINDOW_THRESHOLD};
use echotrace_signals::pdq::{PdqHash, PdqHasher};
use echotrace_signals::robust::{
    detect_borders, detector_rects, window_variant_allowed, BankHash, Detector, Rect, RobustHasher,
    RobustOptions, WindowHasher, WorkImage,
};

const BORDER_THRESHOLD: u32 = 36;

/// The content rectangle the generator pasted the original at, for the
/// classes whose arithmetic is fixed (bench/robust/generate.py).
fn truth(class: &str, w: u32, h: u32) -> Option<Rect> {
    let pad = |f: f64| {
        let (dx, dy) = ((w as f64 * f) as u32, (h as f64 * f) as u32);
        Rect { x: dx, y: dy, w, h }
    };
    let letterbox = |aspect: f64| {
        let (wf, hf) = (w as f64, h as f64);
        let (big_w, big_h) = if wf / hf > aspect {
            (w, (wf / aspect).round() as u32)
        } else {
            ((hf * aspect).round() as u32, h)
        };
        Rect {
            x: (big_w - w) / 2,
            y: (big_h - h) / 2,
            w,
            h,
        }
    };
    Some(match class {
        c if c.starts_with("pad10_") && !c.ends_with("_dot") => pad(0.10),
        c if c.starts_with("pad20_") => pad(0.20),
        "letterbox_1x1" => letterbox(1.0),
        "letterbox_16x9" => letterbox(16.0 / 9.0),
        "letterbox_9x16" | "fill_9x16_blur" => letterbox(9.0 / 16.0),
        // A caption bar of max(40, h/5) rows on top of the picture.
        "meme" => {
            let cap = 40.max(h / 5);
            Rect { x: 0, y: cap, w, h }
        }
        // …then 5 % cut off the left, right and bottom of the meme.
        "meme_crop5" => {
            let cap = 40.max(h / 5);
            let cut = |v: u32| (f64::from(v) * 0.05) as u32;
            let qh = h + cap - cut(h + cap);
            Rect {
                x: 0,
                y: cap,
                w: w - 2 * cut(w),
                h: qh - cap,
            }
        }
        _ => return None,
    })
}

/// The pixels of `r` (inside a `w`-wide RGB image).
fn crop_rgb(rgb: &[u8], w: u32, r: Rect) -> Vec<u8> {
    let mut out = Vec::with_capacity((r.w * r.h * 3) as usize);
    for y in r.y..r.y + r.h {
        let start = ((y * w + r.x) * 3) as usize;
        out.extend_from_slice(&rgb[start..start + (r.w * 3) as usize]);
    }
    out
}

fn iou(a: Rect, b: Rect) -> f64 {
    let x0 = a.x.max(b.x);
    let y0 = a.y.max(b.y);
    let x1 = (a.x + a.w).min(b.x + b.w);
    let y1 = (a.y + a.h).min(b.y + b.h);
    if x1 <= x0 || y1 <= y0 {
        return 0.0;
    }
    let i = f64::from(x1 - x0) * f64::from(y1 - y0);
    i / (f64::from(a.w) * f64::from(a.h) + f64::from(b.w) * f64::from(b.h) - i)
}

#[derive(Default)]
struct Tally {
    n: usize,
    proposed: usize,
    matched: usize,
    /// Matched through `border`, or through the windows and query crops of
    /// the rectangle.
    with_windows: usize,
    ious: Vec<f64>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(
        args.get(1)
            .context("usage: robust_detect DIR [--every N] [--classes a,b]")?,
    );
    let mut every = 4usize;
    let mut classes: Option<Vec<String>> = None;
    let mut i = 2;
    while i < args.len() {
        match args[i].as_str() {
            "--every" => every = args[i + 1].parse::<usize>()?.max(1),
            "--classes" => classes = Some(args[i + 1].split(',').map(|s| s.to_string()).collect()),
            other => bail!("unknown option {other}"),
        }
        i += 2;
    }
    let mut opts = RobustOptions::default();
    // Other query crops, to measure them: `QUERY_CROPS="1,0,1,1;2,0,2,2"` (percent).
    if let Ok(v) = std::env::var("QUERY_CROPS") {
        opts.query_crops = v
            .split(';')
            .map(|c| {
                let f: Vec<f32> = c.split(',').filter_map(|x| x.parse().ok()).collect();
                [0, 1, 2, 3].map(|i| f.get(i).copied().unwrap_or(0.0) / 100.0)
            })
            .collect();
    }
    let text = std::fs::read_to_string(dir.join("manifest.csv")).context("manifest.csv")?;
    let keep: Option<std::collections::HashSet<usize>> =
        std::fs::read_to_string(dir.join("keep.txt"))
            .ok()
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect());
    let mut originals: HashMap<usize, String> = HashMap::new();
    let mut queries: Vec<(String, String, usize)> = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 5 {
            bail!("bad manifest line {line}");
        }
        let o: usize = f[3].parse()?;
        if f[0] == "original" {
            originals.insert(o, f[2].into());
        } else if o.is_multiple_of(every)
            && keep.as_ref().is_none_or(|k| k.contains(&o))
            && classes.as_ref().is_none_or(|c| c.iter().any(|c| c == f[1]))
        {
            queries.push((f[1].into(), f[2].into(), o));
        }
    }
    let mut pdq = PdqHasher::new();
    let mut windows = WindowHasher::new();
    let mut robust = RobustHasher::new();
    let mut plain: HashMap<usize, (PdqHash, u32, u32)> = HashMap::new();
    // The original's bank windows (it is held as a file in the benchmark).
    let mut held: HashMap<usize, Vec<BankHash>> = HashMap::new();
    // class → detector name → tally
    let mut out: BTreeMap<String, BTreeMap<&'static str, Tally>> = BTreeMap::new();
    for (class, path, o) in &queries {
        let (oh, ow, ohh) = match plain.get(o) {
            Some(v) => *v,
            None => {
                let (rgb, w, h) = decode(&dir.join(&originals[o]))?;
                let v = (pdq.hash_rgb8(&rgb, w, h)?.hash, w, h);
                plain.insert(*o, v);
                held.insert(*o, robust.bank_hashes(&rgb, w, h, &opts)?);
                v
            }
        };
        let Ok((rgb, w, h)) = decode(&dir.join(path)) else {
            continue;
        };
        let work = WorkImage::from_rgb8(&rgb, w, h, opts.work_side)?;
        let bank = &held[o];
        // What the harness's other channels make of a rectangle: the
        // rectangle and its query crops against the held original's
        // windows (as uploaded or mirrored, the window rule), and its query
        // crops against the plain hash (≤ 40).
        let via_windows =
            |windows: &mut WindowHasher, r: Rect, exact: [bool; 4]| -> anyhow::Result<bool> {
                let mut rects = vec![r];
                rects.extend(
                    opts.query_crops
                        .iter()
                        .map(|c| r.crop([0, 1, 2, 3].map(|i| if exact[i] { 0.0 } else { c[i] }))),
                );
                for (i, rr) in rects.iter().enumerate() {
                    let d = windows.hash(&work, *rr)?;
                    if d.quality < opts.min_quality {
                        continue;
                    }
                    for (v, (_, x)) in d.hashes.named().iter().enumerate() {
                        if i > 0 && x.distance(&oh) <= WINDOW_THRESHOLD {
                            return Ok(true);
                        }
                        if window_variant_allowed(v as u8)
                            && bank
                                .iter()
                                .any(|b| x.distance(&b.hash) <= window_threshold(b.quality))
                        {
                            return Ok(true);
                        }
                    }
                }
                Ok(false)
            };
        let best = |windows: &mut WindowHasher, r: Rect| -> anyhow::Result<u32> {
            let d = windows.hash(&work, r)?;
            Ok(d.hashes
                .named()
                .iter()
                .map(|(_, x)| x.distance(&oh))
                .min()
                .unwrap_or(256))
        };
        let t = truth(class, ow, ohh).filter(|t| t.x + t.w <= w && t.y + t.h <= h);
        let per = out.entry(class.clone()).or_default();
        let mut record = |name: &'static str, r: Option<Rect>, d: Option<u32>, win: bool| {
            let e = per.entry(name).or_default();
            e.n += 1;
            if win || d.is_some_and(|d| d <= BORDER_THRESHOLD) {
                e.with_windows += 1;
            }
            if let Some(r) = r {
                e.proposed += 1;
                if let Some(t) = t {
                    e.ious.push(iou(r, t));
                }
            }
            if d.is_some_and(|d| d <= BORDER_THRESHOLD) {
                e.matched += 1;
            }
        };
        for (det, r) in detector_rects(&work, &opts.borders) {
            let name = match det {
                Detector::Uniform => "uniform",
                Detector::UniformLoose => "uniform_loose",
                Detector::Caption => "caption",
                Detector::BlurFill => "blur_fill",
            };
            let d = r.map(|r| best(&mut windows, r)).transpose()?;
            let win = match r {
                Some(r) => via_windows(&mut windows, r, [false; 4])?,
                None => false,
            };
            if std::env::var("DETECT_DEBUG").is_ok_and(|v| v == name) {
                let fr = |r: Rect| {
                    r.fractions(w, h)
                        .map(|v| format!("{:.1}", v * 100.0))
                        .join("/")
                };
                let td = t.map(|t| best(&mut windows, t)).transpose()?;
                eprintln!(
                    "{class} {path} truth {} (d {td:?}) {name} {} d {:?}",
                    t.map(fr).unwrap_or_default(),
                    r.map(fr).unwrap_or_default(),
                    d
                );
            }
            record(name, r, d, win);
        }
        let merged = detect_borders(&work, &opts.borders);
        let mut md: Option<u32> = None;
        let mut mwin = false;
        for (i, c) in merged.iter().enumerate() {
            let d = best(&mut windows, c.rect)?;
            md = Some(md.map_or(d, |m| m.min(d)));
            // Only the best candidate gets query crops (`query_set`).
            mwin |= if i == 0 {
                via_windows(&mut windows, c.rect, c.caption_sides)?
            } else {
                let d = windows.hash(&work, c.rect)?;
                d.quality >= opts.min_quality
                    && d.hashes.named().iter().enumerate().any(|(v, (_, x))| {
                        window_variant_allowed(v as u8)
                            && bank
                                .iter()
                                .any(|b| x.distance(&b.hash) <= window_threshold(b.quality))
                    })
            };
        }
        record("merged (all)", merged.first().map(|c| c.rect), md, mwin);
        // The queries where a caption bar of its own was found (it then
        // comes first).
        if let Some(c) = merged.first().filter(|c| c.caption_sides.contains(&true)) {
            if std::env::var("DETECT_DEBUG").is_ok_and(|v| v == "caption_bar") {
                eprintln!("{class} {path} {:?} {:?} d {md:?}", c.caption_sides, c.rect);
            }
            record("caption bar found (first)", Some(c.rect), md, mwin);
        }
        if let Some(t) = t {
            let d = best(&mut windows, t)?;
            let win = via_windows(&mut windows, t, [false; 4])?;
            record("true rectangle", Some(t), Some(d), win);
            // The same, quality-gated as the harness gates, cut from the
            // working buffer and from a buffer of the rectangle alone.
            let gated = |d: echotrace_signals::pdq::PdqDihedralOutput| {
                (d.quality >= opts.min_quality).then(|| {
                    d.hashes
                        .named()
                        .iter()
                        .map(|(_, x)| x.distance(&oh))
                        .min()
                        .unwrap_or(256)
                })
            };
            let d = gated(windows.hash(&work, t)?);
            record("true rectangle, gated", Some(t), d, false);
            let crop = crop_rgb(&rgb, w, t);
            let own = WorkImage::from_rgb8(&crop, t.w, t.h, opts.work_side)?;
            let d = gated(windows.hash(&own, Rect::full(t.w, t.h))?);
            record("true rectangle, gated, own buffer", Some(t), d, false);
        }
    }
    println!("| class | detector | queries | proposed | matched ≤ 36 | + windows, query crops | median IoU with truth |");
    println!("|---|---|---|---|---|---|---|");
    for (class, per) in &out {
        for (name, t) in per {
            let mut ious = t.ious.clone();
            ious.sort_by(f64::total_cmp);
            let med = ious
                .get(ious.len() / 2)
                .map(|v| format!("{v:.3}"))
                .unwrap_or_else(|| "—".into());
            println!(
                "| {class} | {name} | {} | {} | {} ({:.1} %) | {} ({:.1} %) | {med} |",
                t.n,
                t.proposed,
                t.matched,
                100.0 * t.matched as f64 / t.n.max(1) as f64,
                t.with_windows,
                100.0 * t.with_windows as f64 / t.n.max(1) as f64
            );
        }
    }
    Ok(())
}
