//! Snapshots round-trip exactly (CSR, tombstones and unmerged buffer), and a
//! damaged snapshot is refused with an error naming the problem.

mod common;
use std::collections::BTreeMap;

use common::*;
use echotrace_index::{Code256, IndexError, MihIndex, MihParams};

fn sample_index() -> (MihIndex, BTreeMap<u64, Code256>) {
    let codes = dataset(11, 900, Shape::Clustered);
    let entries: Vec<(u64, Code256)> = codes
        .iter()
        .enumerate()
        .map(|(i, &c)| (i as u64 * 3 + 1, c))
        .collect();
    let params = MihParams {
        substrings: None,
        merge_threshold: 1 << 20,
        background_merge: false,
        linear_fallback: false,
    };
    let idx = MihIndex::build(entries.clone(), params).expect("params");
    let mut model: BTreeMap<u64, Code256> = entries.into_iter().collect();
    // Tombstones in the CSR and codes in the write buffer.
    for id in [1u64, 4, 7, 100, 301] {
        assert!(idx.remove(id));
        model.remove(&id);
    }
    let mut rng = Rng(3);
    for id in 5000..5040u64 {
        let c = rng.code();
        idx.insert(id, c);
        model.insert(id, c);
    }
    // Replace an indexed id (tombstone + buffer).
    idx.insert(10, [9, 9, 9, 9]);
    model.insert(10, [9, 9, 9, 9]);
    (idx, model)
}

fn snapshot_bytes(idx: &MihIndex) -> Vec<u8> {
    let mut buf = Vec::new();
    idx.write_snapshot(&mut buf).expect("write");
    buf
}

#[test]
fn round_trip_preserves_every_answer() {
    let (idx, model) = sample_index();
    let bytes = snapshot_bytes(&idx);
    assert_eq!(&bytes[..8], b"ETMIHIDX");
    let loaded = MihIndex::from_snapshot_bytes(&bytes).expect("load");
    assert_eq!(loaded.len(), model.len());
    assert_eq!(loaded.substrings(), idx.substrings());
    assert_eq!(loaded.unmerged_len(), idx.unmerged_len());
    let mut rng = Rng(8);
    let keys: Vec<u64> = model.keys().copied().collect();
    for i in 0..60 {
        let q = if i % 2 == 0 {
            let c = model[&keys[rng.below(keys.len() as u64) as usize]];
            let flips = rng.below(40) as u32;
            rng.flip(&c, flips)
        } else {
            rng.code()
        };
        for radius in [0u32, 12, 31, 48] {
            let mut out = Vec::new();
            loaded.search(&q, radius, &mut out);
            assert_eq!(sorted(out), brute(&model, &q, radius));
        }
    }
    // The loaded index keeps working: merge, and snapshot again identically.
    loaded.merge_now();
    assert_eq!(loaded.unmerged_len(), 0);
    assert_eq!(loaded.len(), model.len());
    let again = MihIndex::from_snapshot_bytes(&snapshot_bytes(&loaded)).expect("reload");
    for (&id, c) in &model {
        assert_eq!(again.get(id), Some(*c));
    }
    // Through a file too.
    let dir = std::env::temp_dir().join(format!("echotrace-index-snap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("index.snap");
    std::fs::write(&path, &bytes).expect("write file");
    let from_file = MihIndex::load_snapshot(&path).expect("load file");
    assert_eq!(from_file.len(), model.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn empty_index_round_trips() {
    let idx = MihIndex::new();
    let loaded = MihIndex::from_snapshot_bytes(&snapshot_bytes(&idx)).expect("load");
    assert!(loaded.is_empty());
}

#[test]
fn wrong_magic_is_refused() {
    let (idx, _) = sample_index();
    let mut bytes = snapshot_bytes(&idx);
    bytes[0] ^= 0x20;
    let err = MihIndex::from_snapshot_bytes(&bytes).expect_err("must refuse");
    assert!(matches!(err, IndexError::BadMagic { .. }), "{err}");
    assert!(err.to_string().contains("bad magic"), "{err}");
    let err = MihIndex::from_snapshot_bytes(b"").expect_err("empty");
    assert!(matches!(err, IndexError::BadMagic { .. }), "{err}");
}

#[test]
fn wrong_version_is_refused() {
    let (idx, _) = sample_index();
    let mut bytes = snapshot_bytes(&idx);
    bytes[8] = 2;
    let err = MihIndex::from_snapshot_bytes(&bytes).expect_err("must refuse");
    assert!(
        matches!(
            err,
            IndexError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("version 2"), "{err}");
}

#[test]
fn flipped_bytes_are_refused_naming_the_problem() {
    let (idx, _) = sample_index();
    let bytes = snapshot_bytes(&idx);
    // Every 61st byte after the magic/version, plus both ends of every
    // region (padding and reserved bytes must be zero): each flip must be
    // refused, never panic, never load.
    let mut positions: Vec<usize> = (12..bytes.len()).step_by(61).collect();
    positions.extend([12, 16, 127, 128, 128 + 63, 128 + 64, bytes.len() - 1]);
    let mut checksum_sections = std::collections::BTreeSet::new();
    for pos in positions {
        let mut damaged = bytes.clone();
        damaged[pos] ^= 0x01;
        match MihIndex::from_snapshot_bytes(&damaged) {
            Ok(_) => panic!("flip at {pos} loaded silently"),
            Err(IndexError::ChecksumMismatch { section, .. }) => {
                checksum_sections.insert(section);
            }
            Err(IndexError::Corrupt(msg)) => assert!(!msg.is_empty()),
            Err(IndexError::Truncated { .. }) => {}
            Err(other) => panic!("flip at {pos}: unexpected error {other}"),
        }
    }
    for s in ["header", "ids", "codes", "postings", "offsets"] {
        assert!(
            checksum_sections.contains(s),
            "no checksum error named {s}: {checksum_sections:?}"
        );
    }
}

#[test]
fn truncation_is_refused() {
    let (idx, _) = sample_index();
    let bytes = snapshot_bytes(&idx);
    let mut cuts: Vec<usize> = (9..bytes.len()).step_by(997).collect();
    cuts.extend([100, 128, 150, 200, bytes.len() - 1]);
    for cut in cuts {
        let err = MihIndex::from_snapshot_bytes(&bytes[..cut]).expect_err("truncated");
        assert!(
            matches!(err, IndexError::Truncated { .. }),
            "cut at {cut}: expected truncation, got {err}"
        );
        assert!(err.to_string().contains("truncated"), "{err}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let err = MihIndex::from_snapshot_bytes(&longer).expect_err("trailing");
    assert!(err.to_string().contains("trailing"), "{err}");
}
