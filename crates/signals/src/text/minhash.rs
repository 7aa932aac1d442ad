//! The `text_minhash` signature: one-permutation MinHash over word shingles,
//! plus the shingle-set size and, for short texts, the token sequence.
//!
//! Design (format version 1):
//! * **Token hash** `et-hash64-v1`: every normalised token is hashed once
//!   (8-byte little-endian words folded with multiply/rotate, length mixed
//!   in, murmur3 `fmix64` finaliser). Defined here, not borrowed from a
//!   crate, so signatures never change with a dependency upgrade.
//! * **Shingles**: k consecutive token hashes combined in order
//!   (rotate/xor/multiply, then `fmix64`). A text with fewer than k tokens
//!   has one shingle made of all its tokens. Duplicates are removed; the
//!   number of distinct shingles is the *set size*.
//! * **One-permutation hashing** (Li, Owen & Zhang 2012): the 64-bit shingle
//!   hash *is* the random permutation; its high bits pick one of K bins
//!   (`(x·K) >> 64`) and each bin keeps its smallest value. One pass over
//!   the shingles instead of K hash evaluations per shingle.
//! * **Optimal densification** (Shrivastava 2017): an empty bin i copies
//!   the value of bin j, where j comes from a fixed pseudo-random probe
//!   sequence of (i, attempt) that skips empty bins. Both sides of a
//!   comparison use the same sequence, so P(bin i equal) = Jaccard for every
//!   bin, and the fraction of equal bins estimates Jaccard.
//! * **Short texts** (at most [`SHORT_TEXT_MAX_TOKENS`] tokens) also carry
//!   the SHA-256 of the normalised text and the low 32 bits of every token
//!   hash, in order, so a word-level edit distance can be computed.
//!
//! Serialised form: `text_minhash:v1:<base64>` (standard alphabet, padded)
//! of this byte layout, all integers little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version, 1 |
//! | 1 | 1 | shingle size k (1–16) |
//! | 2 | 1 | flags: bit 0 = short-text section present; other bits 0 |
//! | 3 | 1 | reserved, 0 |
//! | 4 | 2 | K, number of bins (1–1024) |
//! | 6 | 4 | set size (distinct shingles) |
//! | 10 | 8·K | bin minima, u64 each |
//! | then, if flag 0: | 32 | SHA-256 of the normalised text |
//! | | 2 | n, token count (1–[`SHORT_TEXT_MAX_TOKENS`]) |
//! | | 4·n | token hashes, u32 each |
//!
//! The parser rejects every other shape: wrong prefix, bad base64, unknown
//! version or flags, out-of-range K/k/n, or length not exactly as declared.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Texts with at most this many tokens carry the short-text section.
pub const SHORT_TEXT_MAX_TOKENS: usize = 64;
/// Largest K the parser accepts.
pub const MAX_BINS: usize = 1024;
/// Largest shingle size the parser accepts.
pub const MAX_SHINGLE: usize = 16;
/// Serialisation prefix.
pub const PREFIX: &str = "text_minhash:v1:";

const FORMAT_VERSION: u8 = 1;
const FLAG_SHORT: u8 = 1;
const HEADER: usize = 10;

/// Parameters of a `text_minhash` signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinHashParams {
    /// K, the number of bins (signature length).
    pub num_bins: usize,
    /// Words per shingle.
    pub shingle_size: usize,
}

impl Default for MinHashParams {
    /// K = 128, word 3-shingles: chosen by measurement (ARCHITECTURE.md,
    /// "Text signals").
    fn default() -> Self {
        MinHashParams {
            num_bins: 128,
            shingle_size: 3,
        }
    }
}

/// The short-text section: exact digest and token sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShortText {
    /// SHA-256 of the normalised text (tokens joined by single spaces).
    pub digest: [u8; 32],
    /// Low 32 bits of each token's `et-hash64-v1`, in text order.
    pub tokens: Vec<u32>,
}

/// A `text_minhash` signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextSignature {
    pub shingle_size: u8,
    /// Number of distinct shingles in the text.
    pub set_size: u32,
    /// One value per bin (K values).
    pub mins: Vec<u64>,
    pub short: Option<ShortText>,
}

/// Error parsing a serialised signature.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureParseError {
    #[error("expected prefix {PREFIX:?}")]
    Prefix,
    #[error("invalid base64")]
    Base64,
    #[error("unsupported format version {0}")]
    Version(u8),
    #[error("invalid field: {0}")]
    Field(&'static str),
    #[error("length {actual} bytes, expected {expected}")]
    Length { actual: usize, expected: usize },
}

/// `fmix64` from MurmurHash3: a bijective 64-bit finaliser.
#[inline]
pub(crate) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

const M1: u64 = 0x9e37_79b9_7f4a_7c15;

/// `et-hash64-v1` of a token's UTF-8 bytes.
#[inline]
pub fn token_hash(bytes: &[u8]) -> u64 {
    let mut h = (bytes.len() as u64).wrapping_mul(M1) ^ 0x5bd1_e995_7a3c_4f21;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(M1).rotate_left(29);
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        let mut w = [0u8; 8];
        if let Some(d) = w.get_mut(..rem.len()) {
            d.copy_from_slice(rem);
        }
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(M1).rotate_left(29);
    }
    fmix64(h)
}

#[inline]
fn shingle_hash(window: &[u64]) -> u64 {
    let mut s = 0x243f_6a88_85a3_08d3u64 ^ window.len() as u64;
    for &h in window {
        s = (s.rotate_left(23) ^ h).wrapping_mul(M1);
    }
    fmix64(s)
}

/// Builds signatures from token hashes. Stateless apart from parameters.
#[derive(Clone, Copy, Debug, Default)]
pub struct MinHasher {
    params: MinHashParams,
}

impl MinHasher {
    /// Clamps parameters to the serialisable range (K 1–1024, k 1–16).
    pub fn new(params: MinHashParams) -> Self {
        MinHasher {
            params: MinHashParams {
                num_bins: params.num_bins.clamp(1, MAX_BINS),
                shingle_size: params.shingle_size.clamp(1, MAX_SHINGLE),
            },
        }
    }

    pub fn params(&self) -> MinHashParams {
        self.params
    }

    /// Signs normalised text (tokens separated by single spaces).
    pub fn sign_normalized(&self, normalized: &str) -> TextSignature {
        // Tokens are separated by single ASCII spaces: split bytes, not chars.
        let hashes: Vec<u64> = normalized
            .as_bytes()
            .split(|&b| b == b' ')
            .filter(|t| !t.is_empty())
            .map(token_hash)
            .collect();
        let mut sig = self.sign_token_hashes(&hashes);
        if !hashes.is_empty() && hashes.len() <= SHORT_TEXT_MAX_TOKENS {
            sig.short = Some(ShortText {
                digest: Sha256::digest(normalized.as_bytes()).into(),
                tokens: hashes.iter().map(|&h| h as u32).collect(),
            });
        }
        sig
    }

    /// MinHash part only, from token hashes (no short-text section).
    pub fn sign_token_hashes(&self, hashes: &[u64]) -> TextSignature {
        let k = self.params.shingle_size;
        let bins = self.params.num_bins;
        let shingles: Vec<u64> = if hashes.is_empty() {
            Vec::new()
        } else if hashes.len() < k {
            vec![shingle_hash(hashes)]
        } else {
            hashes.windows(k).map(shingle_hash).collect()
        };
        let set_size = count_distinct(&shingles);
        let mut mins = vec![u64::MAX; bins];
        let mut filled = vec![false; bins];
        // Duplicates cannot change a bin minimum, so no dedup is needed here.
        for &x in &shingles {
            let bin = ((u128::from(x) * bins as u128) >> 64) as usize;
            if let (Some(m), Some(f)) = (mins.get_mut(bin), filled.get_mut(bin)) {
                // Branch-free: bins start at u64::MAX, so min() is exact even
                // for a shingle hash of u64::MAX (then `filled` tells).
                *m = (*m).min(x);
                *f = true;
            }
        }
        densify(&mut mins, &filled);
        TextSignature {
            shingle_size: k as u8,
            set_size: u32::try_from(set_size).unwrap_or(u32::MAX),
            mins,
            short: None,
        }
    }
}

/// Number of distinct values (well-mixed hashes) with a small
/// linear-probing set; faster than sort + dedup for document-sized inputs.
fn count_distinct(values: &[u64]) -> usize {
    if values.len() < 2 {
        return values.len();
    }
    let cap = (values.len() * 2).next_power_of_two();
    let mask = cap - 1;
    let mut table = vec![0u64; cap];
    let mut zero_seen = false;
    let mut count = 0;
    for &v in values {
        if v == 0 {
            count += usize::from(!zero_seen);
            zero_seen = true;
            continue;
        }
        let mut i = (v >> 40) as usize & mask;
        loop {
            match table.get_mut(i) {
                Some(slot) if *slot == 0 => {
                    *slot = v;
                    count += 1;
                    break;
                }
                Some(slot) if *slot == v => break,
                Some(_) => i = (i + 1) & mask,
                None => break,
            }
        }
    }
    count
}

/// Bin `attempt` of empty bin `i`'s densification probe sequence.
fn probe(i: usize, attempt: u64, bins: usize) -> usize {
    let r = fmix64(((i as u64) << 32 | attempt) ^ 0x6a09_e667_f3bc_c909);
    ((u128::from(r) * bins as u128) >> 64) as usize
}

/// Probe-sequence entries tabulated per bin.
const PROBE_TABLE_ATTEMPTS: usize = 32;

/// The first [`PROBE_TABLE_ATTEMPTS`] entries of every bin's probe
/// sequence, for the default bin count (computed once; other bin counts
/// compute every probe).
fn probe_table(bins: usize) -> Option<&'static [u16]> {
    static TABLE: std::sync::OnceLock<Vec<u16>> = std::sync::OnceLock::new();
    let default_bins = MinHashParams::default().num_bins;
    if bins != default_bins {
        return None;
    }
    let t = TABLE.get_or_init(|| {
        (0..default_bins)
            .flat_map(|i| {
                (0..PROBE_TABLE_ATTEMPTS as u64)
                    .map(move |a| u16::try_from(probe(i, a, default_bins)).unwrap_or(u16::MAX))
            })
            .collect()
    });
    Some(t.as_slice())
}

/// Optimal densification: fill empty bins from non-empty ones.
fn densify(mins: &mut [u64], filled: &[bool]) {
    let bins = mins.len();
    let nonempty = filled.iter().filter(|&&f| f).count();
    if nonempty == 0 || nonempty == bins {
        return;
    }
    let original: Vec<u64> = mins.to_vec();
    for i in 0..bins {
        if filled.get(i).copied().unwrap_or(true) {
            continue;
        }
        let mut source = None;
        // The sequence depends on (i, attempt) only: its start is read
        // from a table for the default bin count.
        let table = probe_table(bins).and_then(|t| t.get(i * PROBE_TABLE_ATTEMPTS..));
        for attempt in 0..(64 * bins as u64) {
            let j = match table.and_then(|t| t.get(attempt as usize)) {
                Some(&j) if (attempt as usize) < PROBE_TABLE_ATTEMPTS => usize::from(j),
                _ => probe(i, attempt, bins),
            };
            if filled.get(j).copied().unwrap_or(false) {
                source = Some(j);
                break;
            }
        }
        // Practically unreachable fallback: the next non-empty bin.
        let j = source.unwrap_or_else(|| {
            (1..bins)
                .map(|d| (i + d) % bins)
                .find(|&j| filled.get(j).copied().unwrap_or(false))
                .unwrap_or(i)
        });
        if let (Some(v), Some(slot)) = (original.get(j), mins.get_mut(i)) {
            *slot = *v;
        }
    }
}

impl TextSignature {
    /// Whether the text had any words (a shingle to match on). A text with
    /// none — empty, blank, punctuation only — signs to an empty set that
    /// is similar to nothing, so comparing or looking it up means nothing.
    pub fn has_words(&self) -> bool {
        self.set_size > 0
    }

    pub fn num_bins(&self) -> usize {
        self.mins.len()
    }

    /// Serialised bytes (layout in the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + 8 * self.mins.len() + 40);
        out.push(FORMAT_VERSION);
        out.push(self.shingle_size);
        out.push(if self.short.is_some() { FLAG_SHORT } else { 0 });
        out.push(0);
        out.extend_from_slice(&(self.mins.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.set_size.to_le_bytes());
        for m in &self.mins {
            out.extend_from_slice(&m.to_le_bytes());
        }
        if let Some(s) = &self.short {
            out.extend_from_slice(&s.digest);
            out.extend_from_slice(&(s.tokens.len() as u16).to_le_bytes());
            for t in &s.tokens {
                out.extend_from_slice(&t.to_le_bytes());
            }
        }
        out
    }

    /// Parses the byte layout, rejecting anything malformed.
    pub fn from_bytes(b: &[u8]) -> Result<Self, SignatureParseError> {
        let too_short = |expected| SignatureParseError::Length {
            actual: b.len(),
            expected,
        };
        let header = b.get(..HEADER).ok_or(too_short(HEADER))?;
        let (version, k, flags, reserved) = match header {
            [v, k, f, r, ..] => (*v, *k, *f, *r),
            _ => return Err(too_short(HEADER)),
        };
        if version != FORMAT_VERSION {
            return Err(SignatureParseError::Version(version));
        }
        if k == 0 || usize::from(k) > MAX_SHINGLE {
            return Err(SignatureParseError::Field("shingle size"));
        }
        if flags & !FLAG_SHORT != 0 {
            return Err(SignatureParseError::Field("flags"));
        }
        if reserved != 0 {
            return Err(SignatureParseError::Field("reserved"));
        }
        let bins = usize::from(read_u16(b, 4)?);
        if bins == 0 || bins > MAX_BINS {
            return Err(SignatureParseError::Field("bin count"));
        }
        let set_size = read_u32(b, 6)?;
        let mins_end = HEADER + 8 * bins;
        let mins_bytes = b.get(HEADER..mins_end).ok_or(too_short(mins_end))?;
        let mins: Vec<u64> = mins_bytes
            .chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                u64::from_le_bytes(w)
            })
            .collect();
        let mut expected = mins_end;
        let short = if flags & FLAG_SHORT != 0 {
            let digest: [u8; 32] = b
                .get(mins_end..mins_end + 32)
                .and_then(|d| d.try_into().ok())
                .ok_or(too_short(mins_end + 34))?;
            let n = usize::from(read_u16(b, mins_end + 32)?);
            if n == 0 || n > SHORT_TEXT_MAX_TOKENS {
                return Err(SignatureParseError::Field("short-text token count"));
            }
            let start = mins_end + 34;
            expected = start + 4 * n;
            let toks = b.get(start..expected).ok_or(too_short(expected))?;
            let tokens = toks
                .chunks_exact(4)
                .map(|c| {
                    let mut w = [0u8; 4];
                    w.copy_from_slice(c);
                    u32::from_le_bytes(w)
                })
                .collect();
            Some(ShortText { digest, tokens })
        } else {
            None
        };
        if b.len() != expected {
            return Err(SignatureParseError::Length {
                actual: b.len(),
                expected,
            });
        }
        if set_size == 0 && (short.is_some() || mins.iter().any(|&m| m != u64::MAX)) {
            return Err(SignatureParseError::Field("set size"));
        }
        Ok(TextSignature {
            shingle_size: k,
            set_size,
            mins,
            short,
        })
    }
}

fn read_u16(b: &[u8], at: usize) -> Result<u16, SignatureParseError> {
    match b.get(at..at + 2) {
        Some(&[x, y]) => Ok(u16::from_le_bytes([x, y])),
        _ => Err(SignatureParseError::Length {
            actual: b.len(),
            expected: at + 2,
        }),
    }
}

fn read_u32(b: &[u8], at: usize) -> Result<u32, SignatureParseError> {
    match b.get(at..at + 4) {
        Some(&[w, x, y, z]) => Ok(u32::from_le_bytes([w, x, y, z])),
        _ => Err(SignatureParseError::Length {
            actual: b.len(),
            expected: at + 4,
        }),
    }
}

impl TextSignature {
    /// The serialised form (`text_minhash:v1:<base64>`, as [`Display`]
    /// writes it), built in one allocation of the exact size.
    ///
    /// [`Display`]: fmt::Display
    pub fn to_signal_string(&self) -> String {
        let bytes = self.to_bytes();
        let mut out = String::with_capacity(PREFIX.len() + bytes.len().div_ceil(3) * 4);
        out.push_str(PREFIX);
        base64::engine::general_purpose::STANDARD.encode_string(&bytes, &mut out);
        out
    }
}

impl fmt::Display for TextSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        f.write_str(&base64::engine::general_purpose::STANDARD.encode(self.to_bytes()))
    }
}

impl FromStr for TextSignature {
    type Err = SignatureParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(SignatureParseError::Prefix)?;
        // Bound the decode before allocating: the largest valid signature.
        if body.len() > 4 * (HEADER + 8 * MAX_BINS + 34 + 4 * SHORT_TEXT_MAX_TOKENS).div_ceil(3) {
            return Err(SignatureParseError::Field("too long"));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| SignatureParseError::Base64)?;
        TextSignature::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_stable() {
        // Pinned value: a change here changes every stored signature.
        assert_eq!(token_hash(b""), token_hash(b""));
        assert_ne!(token_hash(b"a"), token_hash(b"b"));
        assert_ne!(token_hash(b"abcdefgh"), token_hash(b"abcdefgh\0"));
        assert_eq!(format!("{:016x}", token_hash(b"weather")), PINNED_WEATHER);
    }
    const PINNED_WEATHER: &str = "dc76e8aa8fa3e220";

    /// A whole signature (normalisation, tokens, shingles, bins,
    /// densification, short-text section, serialisation) pinned: any change
    /// to the pipeline's output, e.g. by a speed-up, fails here. Made by the
    /// release of 2026-11-22 before the ASCII fast path and branch-free bins.
    #[test]
    fn whole_signature_is_stable() {
        let text = "Weather: Heavy rain expected across the northern hills on Tuesday, \
                    with 40 mm in places; the Harbour Rovers match may be postponed. \
                    Sympathisers of the team gathered early.";
        let sig = crate::text::TextHasher::default().hash(text);
        assert_eq!(sig.to_string(), PINNED_SIGNATURE);
        assert_eq!(sig.to_signal_string(), PINNED_SIGNATURE);
    }

    /// The same for mixed Arabic, French, Japanese and emoji text.
    #[test]
    fn whole_signature_is_stable_for_unicode_text() {
        let text = "الطقس: أمطار غزيرة متوقعة على التلال الشمالية يوم الثلاثاء ٤٠ ملم — Météo: forte pluie prévue, 東京の天気 🌧️";
        let sig = crate::text::TextHasher::default().hash(text);
        assert_eq!(sig.to_string(), PINNED_UNICODE_SIGNATURE);
        assert_eq!(sig.to_signal_string(), PINNED_UNICODE_SIGNATURE);
    }
    const PINNED_UNICODE_SIGNATURE: &str = concat!(
        "text_minhash:v1:AQMBAIAAEQAAAMYGJaU9eWt/W4NztccB5orGBiWlPXlrf8AlQuPeNMT0W4NztccB5ookX+mH",
        "mFh5r3a8Ze56hXgNXpD27GJApm4kX+mHmFh5r3d3JPAUGNwTd3ck8BQY3BNuvm60OPZhSxxUgEBQVATWHFSAQFBU",
        "BNZuvm60OPZhS9U7Km67BhWSZsC8Q0sp/kAkX+mHmFh5r2bAvENLKf5Ad3ck8BQY3BNRVY/NOp5G8na8Ze56hXgN",
        "1TsqbrsGFZJmwLxDSyn+QFuDc7XHAeaKd3ck8BQY3BPVOypuuwYVktU7Km67BhWSlp+GknzYZ/B3dyTwFBjcE3d3",
        "JPAUGNwTlp+GknzYZ/BmwLxDSyn+QG6+brQ49mFLwCVC4940xPQkX+mHmFh5rwZpxEgNwjiZbr5utDj2YUscVIBA",
        "UFQE1uX6i4RRgcvA27s9YRc7t85uvm60OPZhS2bAvENLKf5AJF/ph5hYea/GBiWlPXlrf1FVj806nkbyXpD27GJA",
        "pm5bg3O1xwHmiluDc7XHAeaKUVWPzTqeRvJ2vGXueoV4DcYGJaU9eWt/xgYlpT15a3/ifMbL4Qfua9u7PWEXO7fO",
        "XpD27GJApm7GBiWlPXlrf26+brQ49mFLlp+GknzYZ/Bbg3O1xwHmiuJ8xsvhB+5rd3ck8BQY3BPl+ouEUYHLwMYG",
        "JaU9eWt/br5utDj2YUt2vGXueoV4DW6+brQ49mFLXpD27GJApm6Wn4aSfNhn8FuDc7XHAeaK27s9YRc7t84cVIBA",
        "UFQE1na8Ze56hXgN1TsqbrsGFZLAJULj3jTE9CRf6YeYWHmvBmnESA3COJkkX+mHmFh5r2bAvENLKf5AJF/ph5hY",
        "ea93dyTwFBjcE3a8Ze56hXgNUVWPzTqeRvLAJULj3jTE9GbAvENLKf5AW4NztccB5opbg3O1xwHmiiRf6YeYWHmv",
        "BmnESA3COJmWn4aSfNhn8G6+brQ49mFLZsC8Q0sp/kAkX+mHmFh5r16Q9uxiQKZuxgYlpT15a38kX+mHmFh5r+X6",
        "i4RRgcvAbr5utDj2YUvVOypuuwYVkpafhpJ82Gfw5fqLhFGBy8B2vGXueoV4DSRf6YeYWHmv27s9YRc7t852vGXu",
        "eoV4DW6+brQ49mFLxgYlpT15a38cVIBAUFQE1uX6i4RRgcvAZsC8Q0sp/kBRVY/NOp5G8tu7PWEXO7fO27s9YRc7",
        "t87VOypuuwYVklFVj806nkbyd3ck8BQY3BN2vGXueoV4DeX6i4RRgcvAlp+GknzYZ/AGacRIDcI4mZafhpJ82Gfw",
        "UVWPzTqeRvLAJULj3jTE9CRf6YeYWHmvBmnESA3COJnVOypuuwYVkhxUgEBQVATWUVWPzTqeRvKZJeC0+rtxwPio",
        "ImJUHeOQTvPq927yUcfPeKi5CwueBRMA9Oe5S2++Vv2x+cJ57wJEByqEz0KtRocknlzuFAEWBNE0ATuovYrAEieb",
        "e42djxPHMOkXgN6Zg0COHena59SzgoKCKoN/uNhqHmebQg==",
    );
    const PINNED_SIGNATURE: &str = concat!(
        "text_minhash:v1:AQMBAIAAGgAAALirOLenOlQeHwg0FXJ8Y+Qm9vKuWVBUf7irOLenOlQe9Mp+YFJU92cuDupg",
        "eVKwOTUO9XF63qaigtsW3Cgqew9rfjFvnmZml3+7HcXwgKcSd2aV/vE4SxWC2xbcKCp7D/h5qb04pQRXHwg0FXJ8",
        "Y+S4qzi3pzpUHrirOLenOlQewcTI40/nq19FXN5K5d3oIs0nsxrBamenPjeVkxlfsSargIko7Sg/SJ4+OQiGQcT6",
        "PjeVkxlfsSaC2xbcKCp7D80nsxrBamenf7sdxfCApxK4qzi3pzpUHvTKfmBSVPdnLg7qYHlSsDl/ux3F8ICnEhNJ",
        "+vz9bhB3Lg7qYHlSsDlE+4ym47KClTUO9XF63qaiRPuMpuOygpV3ZpX+8ThLFauAiSjtKD9Inj45CIZBxPr0yn5g",
        "UlT3Zz43lZMZX7EmgtsW3Cgqew/NJ7MawWpnp3dmlf7xOEsV+HmpvTilBFcm9vKuWVBUf6uAiSjtKD9Id2aV/vE4",
        "SxXBxMjjT+erX3TMW3hH9sCagtsW3Cgqew9rfjFvnmZml/TKfmBSVPdna34xb55mZpft4Ea9LLNva1ydmtxYqNVs",
        "d2aV/vE4SxVFXN5K5d3oIkVc3krl3egiq4CJKO0oP0gTSfr8/W4Qdy4O6mB5UrA5f7sdxfCApxIuDupgeVKwOSb2",
        "8q5ZUFR/Hwg0FXJ8Y+Tt4Ea9LLNva54+OQiGQcT6RVzeSuXd6CITSfr8/W4Qd2t+MW+eZmaXwcTI40/nq1+xTjc5",
        "6khk6Hdmlf7xOEsVnj45CIZBxPpE+4ym47KClWt+MW+eZmaXwcTI40/nq190zFt4R/bAmrFONznqSGToq4CJKO0o",
        "P0irgIko7Sg/SDUO9XF63qainj45CIZBxPrNJ7MawWpnp54+OQiGQcT6q4CJKO0oP0hcnZrcWKjVbJ4+OQiGQcT6",
        "+HmpvTilBFdE+4ym47KClSb28q5ZUFR/9Mp+YFJU92cm9vKuWVBUf0Vc3krl3egiE0n6/P1uEHcm9vKuWVBUf0Vc",
        "3krl3egiq4CJKO0oP0h0zFt4R/bAmh8INBVyfGPkXJ2a3Fio1Wzt4Ea9LLNvaxNJ+vz9bhB3dMxbeEf2wJp3ZpX+",
        "8ThLFbirOLenOlQeHwg0FXJ8Y+TNJ7MawWpnp4LbFtwoKnsPLg7qYHlSsDnNJ7MawWpnp80nsxrBamenJvbyrllQ",
        "VH+4qzi3pzpUHh8INBVyfGPkf7sdxfCApxKxTjc56khk6PTKfmBSVPdndMxbeEf2wJrBxMjjT+erX3TMW3hH9sCa",
        "d2aV/vE4SxVrfjFvnmZml/h5qb04pQRXwcTI40/nq1+ePjkIhkHE+j43lZMZX7EmLg7qYHlSsDlM2dH2qvnxe0zF",
        "uaCWwXx5Gf6uJ8Y7xIvIYcZPTPA7vRwAIOKjj2ocqLaCQRyN+2GPvsADmC+chGvGipfWaYqMn8f8JYowcnxmAK/8",
        "ws69isASQ1Kv42BzZW51Sn1lnIRrxuPw8d3ZGkcEhmpgdwWc6PTKYY32Ousb3Ah+BSS6OMG4nIRrxrSRRrpSXEr+",
        "8EBe/g==",
    );

    #[test]
    fn densified_bins_are_all_filled() {
        let h = MinHasher::new(MinHashParams::default());
        let sig = h.sign_normalized("one two three four five");
        assert_eq!(sig.set_size, 3);
        assert!(sig.mins.iter().all(|&m| m != u64::MAX));
        let distinct: std::collections::HashSet<_> = sig.mins.iter().collect();
        assert_eq!(distinct.len(), 3);
    }

    /// The tabulated start of the probe sequences is the sequence itself,
    /// and densifying through it gives what probing every step gives.
    #[test]
    fn probe_table_matches_the_sequence() {
        let bins = MinHashParams::default().num_bins;
        let t = probe_table(bins).unwrap();
        for i in 0..bins {
            for a in 0..PROBE_TABLE_ATTEMPTS {
                assert_eq!(
                    usize::from(t[i * PROBE_TABLE_ATTEMPTS + a]),
                    probe(i, a as u64, bins)
                );
            }
        }
        assert!(probe_table(bins + 1).is_none());
        for filled_bins in [1usize, 2, 5, 40, 127] {
            let mut mins = vec![u64::MAX; bins];
            let mut filled = vec![false; bins];
            for b in 0..filled_bins {
                let at = (b * 37) % bins;
                mins[at] = fmix64(b as u64);
                filled[at] = true;
            }
            let mut expected = mins.clone();
            for i in (0..bins).filter(|&i| !filled[i]) {
                let j = (0..64 * bins as u64)
                    .map(|a| probe(i, a, bins))
                    .find(|&j| filled[j])
                    .unwrap();
                expected[i] = mins[j];
            }
            densify(&mut mins, &filled);
            assert_eq!(mins, expected, "{filled_bins} filled bins");
        }
    }

    #[test]
    fn distinct_count() {
        assert_eq!(count_distinct(&[]), 0);
        assert_eq!(count_distinct(&[5]), 1);
        assert_eq!(count_distinct(&[0, 0, 7, 7, 1 << 63, 3]), 4);
        let v: Vec<u64> = (0..1000u64).map(|i| fmix64(i % 357)).collect();
        assert_eq!(count_distinct(&v), 357);
    }

    #[test]
    fn empty_text() {
        let h = MinHasher::default();
        let sig = h.sign_normalized("");
        assert_eq!(sig.set_size, 0);
        assert!(sig.short.is_none());
        let back: TextSignature = sig.to_string().parse().unwrap();
        assert_eq!(back, sig);
    }

    #[test]
    fn round_trip_and_rejects() {
        let h = MinHasher::default();
        let sig = h.sign_normalized("the river rose overnight and the bridge closed");
        assert!(sig.short.is_some());
        let s = sig.to_string();
        assert!(s.starts_with(PREFIX));
        assert_eq!(s.parse::<TextSignature>().unwrap(), sig);
        let bytes = sig.to_bytes();
        assert!(TextSignature::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(TextSignature::from_bytes(&longer).is_err());
        let mut bad = bytes.clone();
        bad[0] = 2;
        assert_eq!(
            TextSignature::from_bytes(&bad),
            Err(SignatureParseError::Version(2))
        );
        let mut bad = bytes.clone();
        bad[2] = 0x80;
        assert!(TextSignature::from_bytes(&bad).is_err());
        let mut bad = bytes;
        bad[4] = 0;
        bad[5] = 0;
        assert!(TextSignature::from_bytes(&bad).is_err());
        assert_eq!(
            "pdq:abc".parse::<TextSignature>(),
            Err(SignatureParseError::Prefix)
        );
        assert_eq!(
            "text_minhash:v1:!!!".parse::<TextSignature>(),
            Err(SignatureParseError::Base64)
        );
    }
}
