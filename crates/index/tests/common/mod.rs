//! Shared helpers for the index integration tests: a deterministic PRNG,
//! data generators and the brute-force reference.
#![allow(dead_code)]

use echotrace_index::{hamming, Code256, Hit};

/// SplitMix64: tiny, deterministic, good enough for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn code(&mut self) -> Code256 {
        [self.next(), self.next(), self.next(), self.next()]
    }
    /// `code` with exactly `flips` distinct bits flipped.
    pub fn flip(&mut self, code: &Code256, flips: u32) -> Code256 {
        let mut out = *code;
        let mut done = 0;
        while done < flips.min(256) {
            let b = self.below(256) as usize;
            let mask = 1u64 << (b % 64);
            if (out[b / 64] ^ code[b / 64]) & mask == 0 {
                out[b / 64] ^= mask;
                done += 1;
            }
        }
        out
    }
}

/// Kinds of generated data set.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// Independent uniform codes.
    Random,
    /// A few centres, everything else 0–40 bits from one of them.
    Clustered,
    /// Many exact duplicates (under different ids).
    Duplicates,
}

pub fn dataset(seed: u64, n: usize, shape: Shape) -> Vec<Code256> {
    let mut rng = Rng(seed);
    let mut out: Vec<Code256> = Vec::with_capacity(n);
    for i in 0..n {
        let c = match shape {
            Shape::Random => rng.code(),
            Shape::Clustered if i < 4 || out.is_empty() => rng.code(),
            Shape::Clustered => {
                let centre = out[rng.below(out.len().min(4) as u64) as usize];
                let flips = rng.below(41) as u32;
                rng.flip(&centre, flips)
            }
            Shape::Duplicates if i % 3 == 0 || out.is_empty() => rng.code(),
            Shape::Duplicates => out[rng.below(out.len() as u64) as usize],
        };
        out.push(c);
    }
    out
}

/// All `(id, code)` within `radius` of `q`, as a sorted list.
pub fn brute<'a, I>(items: I, q: &Code256, radius: u32) -> Vec<Hit>
where
    I: IntoIterator<Item = (&'a u64, &'a Code256)>,
{
    let mut v: Vec<Hit> = items
        .into_iter()
        .filter_map(|(&id, c)| {
            let d = hamming(c, q);
            (d <= radius).then_some(Hit { id, distance: d })
        })
        .collect();
    v.sort_unstable();
    v
}

pub fn sorted(mut v: Vec<Hit>) -> Vec<Hit> {
    v.sort_unstable();
    v
}

/// Parses 64 hex characters into a code (word 0 = first 16 characters).
pub fn parse_hex(s: &str) -> Code256 {
    let s = s.trim();
    assert_eq!(s.len(), 64, "bad hash line {s:?}");
    let mut c = [0u64; 4];
    for (i, w) in c.iter_mut().enumerate() {
        *w = u64::from_str_radix(&s[i * 16..i * 16 + 16], 16).expect("hex");
    }
    c
}

pub fn fixtures_dir() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ));
    assert!(
        dir.is_dir(),
        "../shared/fixtures is missing (looked for {}); the index tests need the shared fixtures",
        dir.display()
    );
    dir
}
