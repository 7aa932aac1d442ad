//! Every scan kernel the CPU supports agrees with the brute-force reference,
//! for single and multi-needle search, at lengths that exercise the SIMD
//! tails.

mod common;
use common::*;
use echotrace_index::{hamming, Code256, FlatIndex, Hit, Kernel};

#[test]
fn portable_is_always_available_and_detect_is_supported() {
    assert!(Kernel::Portable.is_supported());
    assert!(Kernel::detect().is_supported());
    assert!(Kernel::available().contains(&Kernel::detect()));
}

#[test]
fn kernels_agree_with_brute_force() {
    for n in [0usize, 1, 3, 7, 8, 9, 15, 16, 17, 100, 1003] {
        let codes = dataset(n as u64 + 1, n, Shape::Clustered);
        let mut rng = Rng(99);
        let queries: Vec<Code256> = (0..12)
            .map(|i| {
                if i % 2 == 0 && n > 0 {
                    let base = codes[rng.below(n as u64) as usize];
                    let flips = rng.below(40) as u32;
                    rng.flip(&base, flips)
                } else {
                    rng.code()
                }
            })
            .collect();
        let ids: Vec<u64> = (0..n as u64).map(|i| i * 7 + 3).collect();
        for kernel in Kernel::available() {
            let mut idx = FlatIndex::with_capacity(n);
            idx.set_kernel(kernel).expect("supported");
            for (&id, &c) in ids.iter().zip(&codes) {
                idx.insert(id, c);
            }
            for radius in [0u32, 1, 10, 31, 63, 128, 256] {
                for q in &queries {
                    let mut out = Vec::new();
                    idx.search(q, radius, &mut out);
                    assert_eq!(
                        sorted(out),
                        brute(ids.iter().zip(&codes), q, radius),
                        "kernel {kernel:?} n={n} r={radius}"
                    );
                }
                // Multi-needle: min distance per id over the needles.
                let needles = &queries[..8];
                let mut out = Vec::new();
                idx.search_multi(needles, radius, &mut out);
                let want: Vec<Hit> = {
                    let mut v: Vec<Hit> = ids
                        .iter()
                        .zip(&codes)
                        .filter_map(|(&id, c)| {
                            let d = needles.iter().map(|q| hamming(c, q)).min()?;
                            (d <= radius).then_some(Hit { id, distance: d })
                        })
                        .collect();
                    v.sort_unstable();
                    v
                };
                assert_eq!(
                    sorted(out),
                    want,
                    "multi kernel {kernel:?} n={n} r={radius}"
                );
            }
        }
    }
}

#[test]
fn reinsert_replaces_and_remove_swaps() {
    let mut idx = FlatIndex::new();
    let a = [1u64, 2, 3, 4];
    let b = [!1u64, !2, !3, !4];
    assert!(!idx.insert(10, a));
    assert!(!idx.insert(11, b));
    assert!(idx.insert(10, b), "re-insert reports the id existed");
    assert_eq!(idx.len(), 2);
    assert_eq!(idx.get(10), Some(b));
    let mut out = Vec::new();
    idx.search(&b, 0, &mut out);
    assert_eq!(
        sorted(out),
        vec![
            Hit {
                id: 10,
                distance: 0
            },
            Hit {
                id: 11,
                distance: 0
            }
        ]
    );
    assert!(idx.remove(10));
    assert!(!idx.remove(10));
    assert_eq!(idx.get(11), Some(b));
    let mut out = Vec::new();
    idx.search(&a, 256, &mut out);
    assert_eq!(
        out,
        vec![Hit {
            id: 11,
            distance: 256
        }]
    );
    let mut batch = Vec::new();
    idx.search_batch(&[a, b], 0, &mut batch);
    assert_eq!(
        batch,
        vec![
            vec![],
            vec![Hit {
                id: 11,
                distance: 0
            }]
        ]
    );
}
