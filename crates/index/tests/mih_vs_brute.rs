//! MihIndex against the brute-force reference: bulk-built random, clustered
//! and duplicate-heavy data at every radius 0..=63 and several slot counts,
//! plus model-based sequences of inserts, removes, re-inserts, searches and
//! merges (started, built, finished, abandoned) interleaved arbitrarily.

mod common;
use std::collections::BTreeMap;

use common::*;
use echotrace_index::{Code256, FlatIndex, MihIndex, MihParams};
use proptest::prelude::*;

fn params(m: u32, threshold: usize, fallback: bool) -> MihParams {
    MihParams {
        substrings: Some(m),
        merge_threshold: threshold,
        background_merge: false,
        linear_fallback: fallback,
    }
}

fn shape_strategy() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Random),
        Just(Shape::Clustered),
        Just(Shape::Duplicates)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn bulk_build_matches_brute_force(
        seed in any::<u64>(),
        n in 0usize..400,
        shape in shape_strategy(),
        m in 8u32..=32,
        fallback in any::<bool>(),
    ) {
        let codes = dataset(seed, n, shape);
        // Sparse, unordered ids.
        let ids: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed).collect();
        let model: BTreeMap<u64, Code256> = ids.iter().copied().zip(codes.iter().copied()).collect();
        let idx = MihIndex::build(ids.iter().copied().zip(codes.iter().copied()), params(m, 64, fallback))
            .expect("valid params");
        prop_assert_eq!(idx.len(), model.len());
        let mut rng = Rng(seed ^ 1);
        let mut queries: Vec<Code256> = (0..4).map(|_| rng.code()).collect();
        for _ in 0..6 {
            if n > 0 {
                let c = codes[rng.below(n as u64) as usize];
                let flips = rng.below(40) as u32;
                queries.push(rng.flip(&c, flips));
            }
        }
        for q in &queries {
            for radius in 0..=63u32 {
                let mut out = Vec::new();
                idx.search(q, radius, &mut out);
                prop_assert_eq!(sorted(out), brute(&model, q, radius), "m={} r={}", m, radius);
            }
        }
        let mut batch = Vec::new();
        idx.search_batch(&queries, 31, &mut batch);
        for (q, got) in queries.iter().zip(batch) {
            prop_assert_eq!(sorted(got), brute(&model, q, 31));
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert {
        id: u64,
        near: Option<(usize, u32)>,
        seed: u64,
    },
    Remove {
        id: u64,
    },
    Search {
        near: Option<(usize, u32)>,
        seed: u64,
        radius: u32,
    },
    StartMerge,
    FinishMerge,
    AbandonMerge,
    MergeNow,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let near = prop::option::of((any::<usize>(), 0u32..24));
    prop_oneof![
        6 => (0u64..48, near.clone(), any::<u64>()).prop_map(|(id, near, seed)| Op::Insert { id, near, seed }),
        3 => (0u64..48).prop_map(|id| Op::Remove { id }),
        5 => (near, any::<u64>(), 0u32..=63).prop_map(|(near, seed, radius)| Op::Search { near, seed, radius }),
        1 => Just(Op::StartMerge),
        1 => Just(Op::FinishMerge),
        1 => Just(Op::AbandonMerge),
        1 => Just(Op::MergeNow),
    ]
}

fn pick_code(model: &BTreeMap<u64, Code256>, near: Option<(usize, u32)>, seed: u64) -> Code256 {
    let mut rng = Rng(seed);
    match near {
        Some((k, flips)) if !model.is_empty() => {
            let c = *model.values().nth(k % model.len()).unwrap_or(&[0; 4]);
            rng.flip(&c, flips)
        }
        _ => rng.code(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn interleaved_updates_and_merges_match_model(
        ops in prop::collection::vec(op_strategy(), 1..120),
        m in 8u32..=32,
        threshold in 1usize..12,
        seed_codes in prop::collection::vec(any::<u64>(), 0..24),
    ) {
        // Start from a bulk-built base so removals hit the CSR too.
        let initial: Vec<(u64, Code256)> = seed_codes.iter().enumerate()
            .map(|(i, &s)| (i as u64 * 2, Rng(s).code())).collect();
        let mut model: BTreeMap<u64, Code256> = initial.iter().copied().collect();
        let idx = MihIndex::build(initial, params(m, threshold, false)).expect("params");
        let mut pending = None;
        let mut built = None;
        for op in ops {
            match op {
                Op::Insert { id, near, seed } => {
                    let code = pick_code(&model, near, seed);
                    let existed = idx.insert(id, code);
                    prop_assert_eq!(existed, model.insert(id, code).is_some());
                }
                Op::Remove { id } => {
                    prop_assert_eq!(idx.remove(id), model.remove(&id).is_some());
                }
                Op::Search { near, seed, radius } => {
                    let q = pick_code(&model, near, seed);
                    let mut out = Vec::new();
                    idx.search(&q, radius, &mut out);
                    prop_assert_eq!(sorted(out), brute(&model, &q, radius));
                }
                Op::StartMerge => {
                    if pending.is_none() && built.is_none() {
                        pending = idx.start_merge();
                    }
                }
                Op::FinishMerge => {
                    if let Some(p) = pending.take() {
                        built = Some(echotrace_index::mih::PendingMerge::build(p));
                    } else if let Some(b) = built.take() {
                        prop_assert!(idx.finish_merge(b));
                    }
                }
                Op::AbandonMerge => {
                    pending = None;
                    built = None;
                }
                Op::MergeNow => {
                    if pending.is_none() && built.is_none() {
                        idx.merge_now();
                        prop_assert_eq!(idx.unmerged_len(), 0);
                    }
                }
            }
            prop_assert_eq!(idx.len(), model.len());
            for (&id, c) in &model {
                prop_assert_eq!(idx.get(id), Some(*c));
            }
        }
        if let Some(b) = built.take() {
            prop_assert!(idx.finish_merge(b));
        }
        drop(pending);
        // Full check at the end at several radii.
        let mut rng = Rng(7);
        for radius in [0u32, 5, 31, 63] {
            for _ in 0..4 {
                let q = pick_code(&model, Some((rng.below(1000) as usize, rng.below(30) as u32)), rng.next());
                let mut out = Vec::new();
                idx.search(&q, radius, &mut out);
                prop_assert_eq!(sorted(out), brute(&model, &q, radius));
            }
        }
    }
}

#[test]
fn invalid_params_are_refused() {
    assert!(MihIndex::with_params(MihParams {
        substrings: Some(7),
        ..MihParams::default()
    })
    .is_err());
    assert!(MihIndex::with_params(MihParams {
        substrings: Some(33),
        ..MihParams::default()
    })
    .is_err());
    assert!(MihIndex::with_params(MihParams {
        merge_threshold: 0,
        ..MihParams::default()
    })
    .is_err());
}

#[test]
fn finish_merge_rejects_foreign_merge() {
    let a = MihIndex::with_params(params(16, 100, false)).expect("params");
    let b = MihIndex::with_params(params(16, 100, false)).expect("params");
    a.insert(1, [1, 2, 3, 4]);
    let built = a.start_merge().expect("something to merge").build();
    assert!(
        !b.finish_merge(built),
        "another index's merge must be refused"
    );
    // The abandoned merge un-froze the buffer: nothing lost.
    assert_eq!(a.get(1), Some([1, 2, 3, 4]));
    a.merge_now();
    assert_eq!(a.unmerged_len(), 0);
    assert_eq!(a.get(1), Some([1, 2, 3, 4]));
}

/// Searches stay exact while real background merges run: one thread keeps
/// inserting/removing (triggering merges every few hundred codes), and
/// after every batch of updates the searching side checks against a flat
/// reference it maintains in lockstep.
#[test]
fn exact_while_background_merges_run() {
    let params = MihParams {
        substrings: None,
        merge_threshold: 300,
        background_merge: true,
        linear_fallback: false,
    };
    // The buffer starts a merge at `merge_at(CSR size)`: 300 here, growing
    // with the CSR up to this cap.
    let cap = params.merge_at(usize::MAX);
    let idx = std::sync::Arc::new(MihIndex::with_params(params).expect("params"));
    let mut reference = FlatIndex::new();
    let mut rng = Rng(42);
    let mut live: Vec<u64> = Vec::new();
    let mut next_id = 0u64;
    let mut checked_during_merge = 0;
    let searcher = {
        let idx = std::sync::Arc::clone(&idx);
        std::thread::spawn(move || {
            // Concurrent reader: must never panic or deadlock while merges swap.
            let mut rng = Rng(5);
            let mut total = 0usize;
            for _ in 0..3000 {
                let mut out = Vec::new();
                idx.search(&rng.code(), 40, &mut out);
                total += out.len();
            }
            total
        })
    };
    for round in 0..60 {
        for _ in 0..120 {
            if !live.is_empty() && rng.below(4) == 0 {
                let k = rng.below(live.len() as u64) as usize;
                let id = live.swap_remove(k);
                assert!(idx.remove(id));
                assert!(reference.remove(id));
            } else {
                let code = if !live.is_empty() && rng.below(2) == 0 {
                    let src = live[rng.below(live.len() as u64) as usize];
                    let c = reference.get(src).expect("live");
                    let flips = rng.below(25) as u32;
                    rng.flip(&c, flips)
                } else {
                    rng.code()
                };
                idx.insert(next_id, code);
                reference.insert(next_id, code);
                live.push(next_id);
                next_id += 1;
            }
        }
        if idx.unmerged_len() > 0 {
            checked_during_merge += 1;
        }
        for _ in 0..10 {
            let q = if !live.is_empty() && rng.below(2) == 0 {
                let c = reference
                    .get(live[rng.below(live.len() as u64) as usize])
                    .expect("live");
                let flips = rng.below(30) as u32;
                rng.flip(&c, flips)
            } else {
                rng.code()
            };
            let mut got = Vec::new();
            idx.search(&q, 31, &mut got);
            let mut want = Vec::new();
            reference.search(&q, 31, &mut want);
            assert_eq!(sorted(got), sorted(want), "round {round}");
        }
        assert_eq!(idx.len(), reference.len());
    }
    idx.wait_for_merge();
    assert!(checked_during_merge > 0);
    // Background merges ran and kept up: once they are done the buffer is
    // under the threshold of the CSR's size, so under the cap. (It asserted
    // < 300, the threshold of an empty CSR; at this test's ~3,600 codes the
    // threshold is ~450, so whether the buffer ended under 300 depended on
    // when the merges happened to run: about 1 run in 100 it did not.)
    let unmerged = idx.unmerged_len();
    assert!(
        unmerged < cap && unmerged < idx.len(),
        "background merges ran: {unmerged} of {} codes unmerged (cap {cap})",
        idx.len()
    );
    searcher.join().expect("searcher thread");
}

/// Many equal codes put hundreds of postings in one bucket: the directory
/// line holding it escapes to plain offsets (more than 255 postings in its
/// 60 buckets). Search stays exact, before and after a snapshot round trip.
#[test]
fn crowded_buckets_stay_exact_through_a_snapshot() {
    let mut rng = Rng(7);
    let blank = rng.code();
    let mut codes: Vec<Code256> = (0..3000).map(|_| rng.code()).collect();
    for (i, c) in codes.iter_mut().enumerate().take(900) {
        // 600 identical codes, 300 within 3 bits of them.
        *c = if i < 600 { blank } else { rng.flip(&blank, 3) };
    }
    let model: BTreeMap<u64, Code256> =
        (0..codes.len() as u64).zip(codes.iter().copied()).collect();
    for m in [11u32, 16, 32] {
        let idx = MihIndex::build(model.iter().map(|(&i, &c)| (i, c)), params(m, 64, false))
            .expect("valid params");
        let mut bytes = Vec::new();
        idx.write_snapshot(&mut bytes).expect("snapshot");
        let loaded = MihIndex::from_snapshot_bytes(&bytes).expect("load");
        let queries = [blank, rng.flip(&blank, 10), rng.code(), codes[2000]];
        for q in &queries {
            for radius in [0u32, 8, 31, 40] {
                let want = brute(&model, q, radius);
                for index in [&idx, &loaded] {
                    let mut out = Vec::new();
                    index.search(q, radius, &mut out);
                    assert_eq!(sorted(out), want, "m={m} r={radius}");
                }
            }
        }
        let mut hits = Vec::new();
        idx.search(&blank, 0, &mut hits);
        assert_eq!(hits.len(), 600, "m={m}: every copy of the crowded code");
    }
}
