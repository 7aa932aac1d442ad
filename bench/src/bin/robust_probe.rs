//! Explains one `window` pair of the robust-matching benchmark (not part of
//! the test suite): which query hash came closest to which crop-grid
//! window of a bank original, and how that needle localises among the
//! original's windows (median distance: how far the match stands out).
//!
//! ```text
//! cargo run --release -p echotrace-bench --bin robust_probe -- ORIGINAL QUERY [--grid 0,3,6,9,12]
//! ```
//!
//! Prints, for the closest needles: the query hash's source, variant and
//! rectangle, its quality, the matched window (shares removed per side, in
//! per cent) and quality, the distance, the needle's median distance to
//! all windows and the margin — what a false match shares.

#[path = "../robust_common.rs"]
mod robust_common;
use robust_common::*;

use std::path::Path;

use anyhow::Context;
use echotrace_signals::robust::{BankSource, RobustHasher, RobustOptions, VARIANT_NAMES};

/// The closest window to `needle` (distance, index) and the median
/// distance to all of them.
fn localise(needle: &[u64; 4], windows: &[[u64; 4]]) -> Option<(u32, usize, u32)> {
    let mut d: Vec<u32> = windows
        .iter()
        .map(|w| {
            needle
                .iter()
                .zip(w)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum()
        })
        .collect();
    let (k, best) = d.iter().copied().enumerate().min_by_key(|(_, v)| *v)?;
    d.sort_unstable();
    Some((best, k, d[d.len() / 2]))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: robust_probe ORIGINAL QUERY [--grid a,b,..]";
    let original = args.get(1).context(usage)?;
    let query = args.get(2).context(usage)?;
    let mut opts = RobustOptions::default();
    if let Some(i) = args.iter().position(|a| a == "--grid") {
        opts.bank_grid = args
            .get(i + 1)
            .context(usage)?
            .split(',')
            .filter_map(|v| v.trim().parse::<f32>().ok())
            .map(|v| v / 100.0)
            .collect();
    }
    let mut h = RobustHasher::new();
    let (rgb, w, ht) = decode(Path::new(original))?;
    let bank = h.bank_hashes(&rgb, w, ht, &opts)?;
    let windows: Vec<_> = bank
        .iter()
        .filter(|b| b.source == BankSource::Window)
        .collect();
    let codes: Vec<[u64; 4]> = windows.iter().map(|b| b.hash.to_words()).collect();
    let qualities: Vec<u8> = windows.iter().map(|b| b.quality).collect();
    let mut qsorted = qualities.clone();
    qsorted.sort_unstable();
    println!(
        "original {original}: {w}x{ht}, {} windows (quality median {})",
        codes.len(),
        qsorted.get(qsorted.len() / 2).copied().unwrap_or(0)
    );
    let (qrgb, qw, qh) = decode(Path::new(query))?;
    let set = h.query_set(&qrgb, qw, qh, &opts)?;
    println!(
        "query {query}: {qw}x{qh}, plain quality {}, {} derived hashes, borders {:?}",
        set.plain.quality,
        set.hashes.len(),
        set.borders
            .iter()
            .map(|b| (b.rect, b.detectors.clone()))
            .collect::<Vec<_>>()
    );
    let mut needles: Vec<(String, [u64; 4])> = vec![(
        format!("whole orig {:?} q{}", [0, 0, qw, qh], set.plain.quality),
        set.plain.hash.to_words(),
    )];
    for q in &set.hashes {
        needles.push((
            format!(
                "{:?} {} {:?} q{}",
                q.source,
                VARIANT_NAMES[usize::from(q.variant)],
                [q.rect.x, q.rect.y, q.rect.w, q.rect.h],
                q.quality
            ),
            q.hash.to_words(),
        ));
    }
    let mut rows: Vec<(u32, u32, usize, String)> = needles
        .iter()
        .filter_map(|(name, n)| {
            let (best, k, median) = localise(n, &codes)?;
            Some((best, median, k, name.clone()))
        })
        .collect();
    rows.sort();
    for (best, median, k, name) in rows.iter().take(8) {
        let win = windows[*k];
        let removed = win.removed.map(|v| f32::from(v) / 2.0);
        println!(
            "  {name:60} -> window {removed:?} q{} d {best} median {median} margin {}",
            win.quality,
            median.saturating_sub(*best)
        );
    }
    Ok(())
}
