//! PDQ against Meta's reference outputs in `../shared/fixtures/pdq`:
//! every `exact-pixels` row of `expected.csv` (hash and quality) and every
//! row of `dihedral.csv`, on every code path this CPU supports.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use echotrace_signals::pdq::{PdqHash, PdqHasher, PdqPath};

fn fixtures() -> PathBuf {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ));
    assert!(
        dir.is_dir(),
        "../shared/fixtures is missing (looked at {}); PDQ fixture tests need it",
        dir.display()
    );
    dir.join("pdq")
}

fn read_csv(name: &str) -> Vec<Vec<String>> {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

fn load_rgb(rel: &str) -> (Vec<u8>, u32, u32) {
    let path = fixtures().join(rel);
    let img = image::open(&path).unwrap_or_else(|e| panic!("decoding {}: {e}", path.display()));
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    (rgb.into_raw(), w, h)
}

fn paths() -> Vec<PdqPath> {
    let all = [
        PdqPath::Naive,
        PdqPath::Portable,
        PdqPath::Avx2,
        PdqPath::Avx512,
    ];
    let supported: Vec<PdqPath> = all.into_iter().filter(|p| p.is_supported()).collect();
    eprintln!("PDQ paths under test: {supported:?}");
    supported
}

#[test]
fn exact_pixels_rows_match_reference_hash_and_quality() {
    let rows: Vec<_> = read_csv("expected.csv")
        .into_iter()
        .filter(|r| r.get(1).map(String::as_str) == Some("exact-pixels"))
        .collect();
    assert!(
        rows.len() >= 20,
        "expected.csv has only {} exact-pixels rows",
        rows.len()
    );
    let mut hashers: Vec<PdqHasher> = paths()
        .into_iter()
        .map(|p| PdqHasher::with_path(p).expect("supported path"))
        .collect();
    let mut failures = Vec::new();
    for row in &rows {
        let (file, want_hex, want_q) = (&row[0], &row[2], &row[3]);
        let want = PdqHash::from_hex(want_hex).expect("fixture hash parses");
        let want_q: u8 = want_q.parse().expect("fixture quality parses");
        let (rgb, w, h) = load_rgb(file);
        for hasher in hashers.iter_mut() {
            let got = hasher.hash_rgb8(&rgb, w, h).expect("hashes");
            if got.hash != want || got.quality != want_q {
                failures.push(format!(
                    "{file} ({w}x{h}) path {:?}: got {} q{} want {} q{} (distance {})",
                    hasher.path(),
                    got.hash,
                    got.quality,
                    want,
                    want_q,
                    got.hash.distance(&want)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn dihedral_rows_match_reference() {
    let rows = read_csv("dihedral.csv");
    assert!(
        rows.len() >= 8 * 20,
        "dihedral.csv has only {} rows",
        rows.len()
    );
    let mut by_file: HashMap<String, HashMap<String, PdqHash>> = HashMap::new();
    for row in &rows {
        let hash = PdqHash::from_hex(&row[2]).expect("fixture hash parses");
        by_file
            .entry(row[0].clone())
            .or_default()
            .insert(row[1].clone(), hash);
    }
    let mut hashers: Vec<PdqHasher> = paths()
        .into_iter()
        .map(|p| PdqHasher::with_path(p).expect("supported path"))
        .collect();
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut files: Vec<_> = by_file.keys().cloned().collect();
    files.sort();
    for file in files {
        let want = &by_file[&file];
        let (rgb, w, h) = load_rgb(&file);
        for hasher in hashers.iter_mut() {
            let got = hasher.hash_rgb8_dihedral(&rgb, w, h).expect("hashes");
            for (name, hash) in got.hashes.named() {
                let Some(expected) = want.get(name) else {
                    failures.push(format!("{file}: fixture lacks variant {name}"));
                    continue;
                };
                checked += 1;
                if hash != *expected {
                    failures.push(format!(
                        "{file} {name} path {:?}: got {hash} want {expected} (distance {})",
                        hasher.path(),
                        hash.distance(expected)
                    ));
                }
            }
        }
    }
    assert!(
        checked >= rows.len(),
        "checked {checked} of {} rows",
        rows.len()
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The `dih` group holds the same photo transformed eight ways (then
/// JPEG-compressed, so not pixel-exact): each variant of the original must be
/// within a few bits of the plain hash of the transformed file.
#[test]
fn dihedral_variants_match_transformed_photos() {
    let mut hasher = PdqHasher::new();
    let (rgb, w, h) = load_rgb("lossless/dih/bridge-1-original.png");
    let d = hasher
        .hash_rgb8_dihedral(&rgb, w, h)
        .expect("hashes")
        .hashes;
    let files = [
        ("orig", "bridge-1-original"),
        ("rot90", "bridge-2-rotate-90"),
        ("rot180", "bridge-3-rotate-180"),
        ("rot270", "bridge-4-rotate-270"),
        ("flipx", "bridge-5-flipx"),
        ("flipy", "bridge-6-flipy"),
        ("flipplus1", "bridge-7-flip-plus-1"),
        ("flipminus1", "bridge-8-flip-minus-1"),
    ];
    for ((name, variant), (fname, file)) in d.named().into_iter().zip(files) {
        assert_eq!(name, fname);
        let (rgb, w, h) = load_rgb(&format!("lossless/dih/{file}.png"));
        let direct = hasher.hash_rgb8(&rgb, w, h).expect("hashes").hash;
        let dist = direct.distance(&variant);
        // Reference tooling measures 0..=8 on these files.
        assert!(dist <= 10, "{name}: {file} is {dist} bits from the variant");
        for (other, hash) in d.named() {
            if other != name {
                assert!(direct.distance(&hash) > 60, "{file} also close to {other}");
            }
        }
    }
}
