//! The border detectors measured one by one (not part of the test suite):
//! for every query of the robust-matching benchmark, each detector's own
//! rectangle (before merging) is hashed and compared with the original's
//! plain hash through the `border` channel's rule (best of the 8 dihedral
//! variants ≤ 36 bits). For the classes whose content rectangle the
//! generator's arithmetic gives (pads and letterboxes), the rectangle's
//! overlap with the truth and the distance of the true rectangle itself
//! (what a perfect detector would reach) are printed too.
//!
//! ```text
//! cargo run --release -p echotrace-bench --bin robust_detect -- /tmp/robust [--every 4] [--classes pad10_blur,pad20_blur]
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use echotrace_signals::decode::{decode_image, DecodeLimits, DecodeOptions};
use echotrace_signals::pdq::{PdqHash, PdqHasher};
use echotrace_signals::robust::{
    detect_borders, detector_rects, Detector, Rect, RobustOptions, WindowHasher, WorkImage,
};

const BORDER_THRESHOLD: u32 = 36;

fn decode(path: &Path) -> anyhow::Result<(Vec<u8>, u32, u32)> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    let img = decode_image(&bytes, &DecodeLimits::default(), &DecodeOptions::default())?;
    Ok((img.rgb, img.width, img.height))
}

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
        _ => return None,
    })
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
    let opts = RobustOptions::default();
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
    let mut plain: HashMap<usize, (PdqHash, u32, u32)> = HashMap::new();
    // class → detector name → tally
    let mut out: BTreeMap<String, BTreeMap<&'static str, Tally>> = BTreeMap::new();
    for (class, path, o) in &queries {
        let (oh, ow, ohh) = match plain.get(o) {
            Some(v) => *v,
            None => {
                let (rgb, w, h) = decode(&dir.join(&originals[o]))?;
                let v = (pdq.hash_rgb8(&rgb, w, h)?.hash, w, h);
                plain.insert(*o, v);
                v
            }
        };
        let Ok((rgb, w, h)) = decode(&dir.join(path)) else {
            continue;
        };
        let work = WorkImage::from_rgb8(&rgb, w, h, opts.work_side)?;
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
        let mut record = |name: &'static str, r: Option<Rect>, d: Option<u32>| {
            let e = per.entry(name).or_default();
            e.n += 1;
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
            if std::env::var_os("DETECT_DEBUG").is_some() && det == Detector::BlurFill {
                let fr = |r: Rect| {
                    r.fractions(w, h)
                        .map(|v| format!("{:.1}", v * 100.0))
                        .join("/")
                };
                eprintln!(
                    "{class} {path} truth {} blur {} d {:?}",
                    t.map(fr).unwrap_or_default(),
                    r.map(fr).unwrap_or_default(),
                    d
                );
            }
            record(name, r, d);
        }
        let merged = detect_borders(&work, &opts.borders);
        let mut md: Option<u32> = None;
        for c in &merged {
            let d = best(&mut windows, c.rect)?;
            md = Some(md.map_or(d, |m| m.min(d)));
        }
        record("merged (all)", merged.first().map(|c| c.rect), md);
        if let Some(t) = t {
            let d = best(&mut windows, t)?;
            record("true rectangle", Some(t), Some(d));
        }
    }
    println!("| class | detector | queries | proposed | matched ≤ 36 | median IoU with truth |");
    println!("|---|---|---|---|---|---|");
    for (class, per) in &out {
        for (name, t) in per {
            let mut ious = t.ious.clone();
            ious.sort_by(f64::total_cmp);
            let med = ious
                .get(ious.len() / 2)
                .map(|v| format!("{v:.3}"))
                .unwrap_or_else(|| "—".into());
            println!(
                "| {class} | {name} | {} | {} | {} ({:.1} %) | {med} |",
                t.n,
                t.proposed,
                t.matched,
                100.0 * t.matched as f64 / t.n.max(1) as f64
            );
        }
    }
    Ok(())
}
