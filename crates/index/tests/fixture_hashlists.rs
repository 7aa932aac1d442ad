//! The reference regression hash lists from ThreatExchange: every
//! needle/haystack pair within distance 31 is found by the MIH index,
//! identical to brute force.

mod common;
use common::*;
use echotrace_index::{Code256, FlatIndex, MihIndex, MihParams};

fn load(name: &str) -> Vec<Code256> {
    let path = fixtures_dir().join("pdq/hashlists").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_hex)
        .collect()
}

#[test]
fn haystack_needles_within_31_match_brute_force() {
    let haystack = load("haystack.txt");
    let needles = load("needles.txt");
    assert_eq!(haystack.len(), 1350);
    assert_eq!(needles.len(), 100);
    let model: std::collections::BTreeMap<u64, Code256> = haystack
        .iter()
        .enumerate()
        .map(|(i, &c)| (i as u64, c))
        .collect();
    let mut flat = FlatIndex::new();
    for (&id, &c) in &model {
        flat.insert(id, c);
    }
    for m in [None, Some(8), Some(16), Some(24)] {
        let params = MihParams {
            substrings: m,
            linear_fallback: false,
            ..MihParams::default()
        };
        let mih = MihIndex::build(model.iter().map(|(&i, &c)| (i, c)), params).expect("params");
        let mut total = 0;
        for n in &needles {
            let want = brute(&model, n, 31);
            let mut got = Vec::new();
            mih.search(n, 31, &mut got);
            assert_eq!(sorted(got), want, "m={m:?}");
            let mut got_flat = Vec::new();
            flat.search(n, 31, &mut got_flat);
            assert_eq!(sorted(got_flat), want);
            total += want.len();
        }
        // The lists are built so that needles have near matches.
        assert!(total > 0, "expected some pairs within 31");
    }
    // Haystack against itself (many near-duplicates among the edits).
    let mih =
        MihIndex::build(model.iter().map(|(&i, &c)| (i, c)), MihParams::default()).expect("params");
    let mut pairs = 0;
    for h in &haystack {
        let mut got = Vec::new();
        mih.search(h, 31, &mut got);
        assert_eq!(sorted(got.clone()), brute(&model, h, 31));
        pairs += got.len();
    }
    assert!(
        pairs > haystack.len(),
        "self-search finds more than the identities"
    );
}
