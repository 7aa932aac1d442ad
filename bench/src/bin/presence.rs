//! The text-presence gate alone, on image files: how often it fires on
//! images with text and on text-free ones, and its CPU time per image.
//!
//! `presence [--cards DIR]... [--free PATH]...`
//! * `--cards DIR`: a card directory written by `ocr` (`bench/run_ocr.sh`):
//!   its `*.jpg` cards, split into English and Arabic by the statement
//!   they show (`statements.tsv`); the gate should fire on every one.
//! * `--free PATH`: text-free images (a file, or a directory searched
//!   recursively for `.jpg`/`.jpeg`/`.png`): the gate should fire on none.
//!
//! Prints one JSON object: fired/total per group, the cards it missed and
//! the text-free images it fired on (by name), and the gate's CPU time
//! per image (decode excluded; the median of 20 calls per image).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn images_under(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                images_under(&e.path(), out);
            }
        }
    } else if p
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
    {
        out.push(p.to_path_buf());
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[derive(Default)]
struct Group {
    fired: usize,
    total: usize,
    /// Names of the images whose outcome was wrong.
    wrong: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut jobs: Vec<(String, PathBuf)> = Vec::new();
    let mut i = 0;
    while i + 1 < args.len() {
        let path = PathBuf::from(&args[i + 1]);
        match args[i].as_str() {
            "--cards" => {
                // Statement index → language, from the generator's truth.
                let truth = std::fs::read_to_string(path.join("statements.tsv"))?;
                let arabic: BTreeMap<String, bool> = truth
                    .lines()
                    .filter_map(|l| l.split_once('\t'))
                    .map(|(k, t)| {
                        (
                            k.to_string(),
                            t.chars().any(|c| ('\u{0600}'..='\u{06ff}').contains(&c)),
                        )
                    })
                    .collect();
                for e in std::fs::read_dir(&path)?.flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    let Some(stem) = name.strip_suffix(".jpg") else {
                        continue;
                    };
                    let statement = stem.split('-').next().unwrap_or_default();
                    let group = match arabic.get(statement) {
                        Some(true) => "cards_ar",
                        Some(false) => "cards_en",
                        None => continue,
                    };
                    jobs.push((group.to_string(), e.path()));
                }
            }
            "--free" => {
                let mut found = Vec::new();
                images_under(&path, &mut found);
                jobs.extend(found.into_iter().map(|p| ("text_free".to_string(), p)));
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
        i += 2;
    }
    jobs.sort();
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut cpu: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (group, path) in &jobs {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let Ok(img) = echotrace_signals::decode::decode_image(
            &bytes,
            &Default::default(),
            &Default::default(),
        ) else {
            eprintln!("not decoded: {}", path.display());
            continue;
        };
        let mut per_call = Vec::with_capacity(20);
        let mut p = Default::default();
        for _ in 0..20 {
            let t0 = thread_cpu_ms();
            p = echotrace_signals::ocr::text_presence(&img.rgb, img.width, img.height);
            per_call.push(thread_cpu_ms() - t0);
        }
        cpu.entry(group.clone()).or_default().push(median(per_call));
        let g = groups.entry(group.clone()).or_default();
        g.total += 1;
        g.fired += usize::from(p.likely);
        let text = group != "text_free";
        if p.likely != text {
            g.wrong.push(format!(
                "{} {}x{} {:?}",
                path.display(),
                img.width,
                img.height,
                p
            ));
        }
    }
    let report: BTreeMap<String, serde_json::Value> = groups
        .iter()
        .map(|(k, g)| {
            let c = cpu.get(k).cloned().unwrap_or_default();
            (
                k.clone(),
                serde_json::json!({
                    "fired": format!("{}/{}", g.fired, g.total),
                    "cpu_ms_median": median(c.clone()),
                    "cpu_ms_max": c.iter().cloned().fold(0.0, f64::max),
                    if k == "text_free" { "fired_on" } else { "missed" }: g.wrong,
                }),
            )
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
