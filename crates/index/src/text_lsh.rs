//! Containment-capable LSH index over MinHash sketches of text.
//!
//! Stored items and queries are plain [`MinHashSketch`]es: K bin minima plus
//! the size of the shingle set (this crate does not know the signals crate;
//! `echotrace_signals::text::TextSignature` converts trivially).
//!
//! Design: **low-threshold banding, a size-aware low-r probe, and exact
//! verification**.
//! * **Bands.** The K minima are cut into bands of `r` rows (default r = 2,
//!   so 64 bands for K = 128). A band's rows are mixed into a 32-bit key; an
//!   item is a candidate when any band key equals the query's. With r = 2
//!   the candidate probability `1 − (1 − J²)^(K/r)` is ≥ 0.93 at Jaccard 0.2
//!   and ≥ 0.99 from J ≈ 0.26 (the *band floor*). That low floor is what
//!   makes most *containment* queries work: a 300-shingle article fully
//!   contained in a 900-shingle page has Jaccard only ≈ 0.33, which a
//!   Jaccard-0.5 LSH (datasketch's `MinHashLSH(threshold=0.5)`) usually
//!   misses. Unrelated texts share almost no shingles, so the low floor
//!   costs few false candidates.
//! * **Low-r probe, chosen by set size (LSH Ensemble's idea, cheaply).** When
//!   a page is much longer than a stored article contained in it, Jaccard
//!   falls below the band floor (a 100-word article in a 600-word page:
//!   J ≈ 0.17, band recall ≈ 0.84; at 11× J ≈ 0.09, ≈ 0.40). The index
//!   keeps a histogram of stored set sizes in quarter-octave *size classes*.
//!   For a query of size |Q| and the rule's containment bound C, the
//!   smallest Jaccard a matching item of a class can have is known in
//!   closed form (`C·x / (x + |Q| − C·x)` for an item of size ≥ x contained
//!   in the query, `C·|Q| / (|Q| + u − C·|Q|)` for the query contained in an
//!   item of size ≤ u, and the Jaccard bound). When that minimum, over the
//!   non-empty classes, is below the band floor, the query probes **r = 1
//!   tables** over the first 64 bins (one table per bin, key = the bin's
//!   value) *instead of* the bands, and takes every item that shares at
//!   least `m` of those bins, `m` from the exact binomial tail at that
//!   minimum Jaccard (the largest count reached with probability ≥ 0.99,
//!   at least 2). Items that need a higher Jaccard share more bins, so the
//!   bands add nothing. The bin count is exact, not a union of bands: a
//!   contained item with J = 0.09 shares ≈ 5.7 of 64 bins and is found with
//!   probability ≈ 0.98. Bins whose posting list is longer than 256 (the
//!   query's minimum there is a common shingle) are skipped and `m` is
//!   recomputed for the remaining bins: which bins those are depends on the
//!   query's values, not on whether an item shares them, so the count over
//!   the rest is still binomial. Counting uses a per-thread array of
//!   generation-stamped 8-bit counters (nothing to clear between queries).
//!   Queries whose size makes every class safe for bands (near-duplicates
//!   of stored-size texts) never pay for it. Cost: 64 more table entries
//!   per stored item, and on large queries posting-list counting.
//!   [`TextLshIndex::with_containment_probe`] turns it off.
//! * **Exact verification.** Every candidate is verified against its
//!   stored sketch: Jaccard is the fraction of equal bins and containment of
//!   x in y is `J·(|x|+|y|)/((1+J)·|x|)`, the same estimates as
//!   `compare_text`. Only candidates that satisfy the [`TextRule`] are
//!   returned, with their scores — identical to applying the rule to every
//!   stored sketch ([`TextLshIndex::query_exhaustive`]), except for the LSH
//!   miss probability. Verification compares 16 bins at a time (vectorised)
//!   and stops as soon as the remaining bins cannot reach the rule's
//!   minimum Jaccard for this pair of sizes.
//! * **Memory layout for speed.** A query is dominated by table lookups,
//!   each a likely DRAM miss. All tables live in *one* allocation
//!   (`tables × capacity` 8-byte entries `key << 32 | value`, linear
//!   probing, load ≤ ¾, backward-shift deletion; a value with the top bit
//!   set points at an overflow list when several items share a key) backed
//!   by transparent huge pages, so lookups do not also miss the TLB. A
//!   query first computes every band key and issues a software prefetch
//!   (`_mm_prefetch` on x86-64; elsewhere none) for every home slot, then
//!   probes: the misses overlap instead of serialising. Candidates collect
//!   in a stack buffer (no allocation for ≤ 128). Stored minima are one
//!   flat array (`slot × K`); beside it an 8-bit fingerprint per bin (the
//!   minimum's low byte, 128 B per item) lets most false candidates be
//!   rejected after reading 2 cache lines instead of 16: equal minima have
//!   equal bytes, so too few equal bytes proves a non-match. Survivors'
//!   rows are prefetched, then verified. Insert and
//!   remove are incremental; inserting an existing id replaces it.
//!
//! The short-text edit-distance rule of the signals crate needs token
//! sequences this index does not store: callers pass a lower Jaccard floor
//! for short queries and re-check candidates with `compare_text`.

use std::collections::HashMap;

/// A MinHash sketch: bin minima and distinct-shingle count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinHashSketch<'a> {
    pub mins: &'a [u64],
    pub set_size: u32,
}

/// Match thresholds applied at verification.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TextRule {
    /// Match when Jaccard ≥ this.
    pub jaccard: f64,
    /// Match when either containment ≥ this…
    pub containment: f64,
    /// …and the contained side has at least this many shingles.
    pub min_contained_shingles: u32,
}

impl Default for TextRule {
    /// The signals crate's default text match rule.
    fn default() -> Self {
        TextRule {
            jaccard: 0.5,
            containment: 0.7,
            min_contained_shingles: 10,
        }
    }
}

/// Verified similarity of one stored item to the query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TextScores {
    pub jaccard: f64,
    /// Containment of the query in the stored item.
    pub containment_query_in_item: f64,
    /// Containment of the stored item in the query.
    pub containment_item_in_query: f64,
}

/// Errors from [`TextLshIndex`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TextLshError {
    #[error("sketch has {got} minima, index expects {expected}")]
    WrongLength { got: usize, expected: usize },
    #[error("sketch of an empty text (set size 0)")]
    Empty,
    #[error("invalid index parameters: {0}")]
    Params(&'static str),
    #[error("index full (2^31 items)")]
    Full,
}

const EMPTY: u64 = u64::MAX;
/// Values with this bit set index an overflow list instead of a slot.
const OVERFLOW: u32 = 1 << 31;
/// Bins covered by the r = 1 containment probe (fewer if K is smaller).
const PROBE_BINS: usize = 64;
/// Miss probability the containment probe's count threshold allows at the
/// query's minimum Jaccard.
const PROBE_MISS: f64 = 0.01;
/// Posting lists longer than this are skipped by the containment probe.
const PROBE_LIST_CAP: usize = 256;
/// …unless fewer than this many probe bins would remain.
const PROBE_MIN_KEPT: usize = 32;
/// Largest K for which queries pre-filter candidates by 8-bit fingerprints.
const MAX_FINGERPRINT_BINS: usize = 1024;
/// Band recall the band floor is defined by.
const BAND_FLOOR_RECALL: f64 = 0.99;
/// Tables whose home slots are prefetched together.
const PREFETCH_CHUNK: usize = 64;
/// Candidates held on the stack before spilling to the heap.
const INLINE_CANDIDATES: usize = 128;
/// Bins compared per verification step (one early-exit check per step).
const VERIFY_STEP: usize = 16;

thread_local! {
    /// Scratch of the containment probe: one counter per slot, stored as
    /// `generation << 8 | count` so nothing is cleared between queries.
    static PROBE_COUNTS: std::cell::RefCell<(u32, Vec<u32>)> =
        const { std::cell::RefCell::new((0, Vec::new())) };
}

/// Hints the CPU to start loading the cache line holding `p`.
#[inline(always)]
fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is only a hint; it never faults and does not
        // dereference in the language sense. `p` is a valid reference anyway.
        #[allow(unused_unsafe)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>((p as *const T).cast::<i8>());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = p;
    }
}

/// `count` open-addressing hash tables of equal power-of-two capacity in one
/// allocation: table `t` owns `slots[t·cap .. (t+1)·cap]`. Entries are
/// `key << 32 | value`; linear probing with backward-shift deletion. All
/// tables grow together when one would exceed load ¾.
struct Tables {
    count: usize,
    cap: usize,
    slots: Vec<u64>,
    lens: Vec<usize>,
}

impl Tables {
    fn new(count: usize) -> Self {
        Tables {
            count,
            cap: 0,
            slots: Vec::new(),
            lens: vec![0; count],
        }
    }

    /// Position of `key`'s home slot inside its table (0..cap).
    #[inline]
    fn home_offset(&self, key: u32) -> usize {
        // Keys are already mixed; spread them over the table size.
        (u64::from(key).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize
            & self.cap.wrapping_sub(1)
    }

    /// Absolute index of `key`'s home slot in `table`.
    #[inline]
    fn home(&self, table: usize, key: u32) -> usize {
        table * self.cap + self.home_offset(key)
    }

    #[inline]
    fn prefetch_slot(&self, at: usize) {
        if let Some(e) = self.slots.get(at) {
            prefetch(e);
        }
    }

    #[inline]
    fn get(&self, table: usize, key: u32) -> Option<u32> {
        self.get_at(table, key, self.home(table, key))
    }

    /// Lookup of `key` in `table` whose home slot is `home` (from
    /// [`Tables::home`], possibly prefetched).
    #[inline]
    fn get_at(&self, table: usize, key: u32, home: usize) -> Option<u32> {
        if self.cap == 0 {
            return None;
        }
        let base = table * self.cap;
        let mask = self.cap - 1;
        let mut i = home.wrapping_sub(base) & mask;
        // Load ≤ ¾ guarantees an empty slot, so the probe terminates.
        loop {
            let e = *self.slots.get(base + i)?;
            if e == EMPTY {
                return None;
            }
            if (e >> 32) as u32 == key {
                return Some(e as u32);
            }
            i = (i + 1) & mask;
        }
    }

    /// Sets `key → value` in `table` (replacing an existing value).
    fn insert(&mut self, table: usize, key: u32, value: u32) {
        let len = self.lens.get(table).copied().unwrap_or(0);
        if (len + 1) * 4 > self.cap * 3 {
            self.grow();
        }
        if self.place(table, key, value) {
            if let Some(l) = self.lens.get_mut(table) {
                *l += 1;
            }
        }
    }

    /// Writes the entry; returns whether it took a new slot.
    fn place(&mut self, table: usize, key: u32, value: u32) -> bool {
        let base = table * self.cap;
        let mask = self.cap.wrapping_sub(1);
        let mut i = self.home_offset(key);
        let entry = u64::from(key) << 32 | u64::from(value);
        while let Some(e) = self.slots.get_mut(base + i) {
            if *e == EMPTY {
                *e = entry;
                return true;
            }
            if (*e >> 32) as u32 == key {
                *e = entry;
                return false;
            }
            i = (i + 1) & mask;
        }
        false
    }

    fn remove(&mut self, table: usize, key: u32) {
        if self.cap == 0 {
            return;
        }
        let base = table * self.cap;
        let mask = self.cap - 1;
        let mut i = self.home_offset(key);
        loop {
            let Some(&e) = self.slots.get(base + i) else {
                return;
            };
            if e == EMPTY {
                return;
            }
            if (e >> 32) as u32 == key {
                break;
            }
            i = (i + 1) & mask;
        }
        // Backward-shift deletion keeps probe sequences unbroken.
        let mut hole = i;
        let mut j = (i + 1) & mask;
        loop {
            let Some(&e) = self.slots.get(base + j) else {
                return;
            };
            if e == EMPTY {
                break;
            }
            let home = self.home_offset((e >> 32) as u32);
            // Move e into the hole if its home is not cyclically in (hole, j].
            let dist_home = j.wrapping_sub(home) & mask;
            let dist_hole = j.wrapping_sub(hole) & mask;
            if dist_home >= dist_hole {
                if let Some(h) = self.slots.get_mut(base + hole) {
                    *h = e;
                }
                hole = j;
            }
            j = (j + 1) & mask;
        }
        if let Some(h) = self.slots.get_mut(base + hole) {
            *h = EMPTY;
        }
        if let Some(l) = self.lens.get_mut(table) {
            *l = l.saturating_sub(1);
        }
    }

    fn grow(&mut self) {
        let new_cap = (self.cap * 2).max(16);
        let mut slots = crate::mem::huge_with_capacity(self.count * new_cap);
        slots.resize(self.count * new_cap, EMPTY);
        let old = std::mem::replace(&mut self.slots, slots);
        let old_cap = self.cap;
        self.cap = new_cap;
        if old_cap == 0 {
            return;
        }
        for (table, entries) in old.chunks_exact(old_cap).enumerate() {
            for &e in entries {
                if e != EMPTY {
                    self.place(table, (e >> 32) as u32, e as u32);
                }
            }
        }
    }

    #[cfg(test)]
    fn total_len(&self) -> usize {
        self.lens.iter().sum()
    }

    fn bytes(&self) -> usize {
        self.slots.capacity() * 8
    }
}

/// Candidate slots: on the stack up to [`INLINE_CANDIDATES`], then spilled.
struct Candidates {
    inline: [u32; INLINE_CANDIDATES],
    len: usize,
    spill: Vec<u32>,
}

impl Candidates {
    fn new() -> Self {
        Candidates {
            inline: [0; INLINE_CANDIDATES],
            len: 0,
            spill: Vec::new(),
        }
    }

    #[inline]
    fn push(&mut self, slot: u32) {
        match self.inline.get_mut(self.len) {
            Some(x) => {
                *x = slot;
                self.len += 1;
            }
            None => self.spill.push(slot),
        }
    }

    fn extend(&mut self, slots: &[u32]) {
        for &s in slots {
            self.push(s);
        }
    }

    /// Sorted, deduplicated candidates.
    fn finish(&mut self) -> &[u32] {
        if self.spill.is_empty() {
            let v = self.inline.get_mut(..self.len).unwrap_or_default();
            v.sort_unstable();
            let mut n = 0;
            for i in 0..v.len() {
                let x = v.get(i).copied().unwrap_or(0);
                if n == 0 || v.get(n - 1).copied() != Some(x) {
                    if let Some(d) = v.get_mut(n) {
                        *d = x;
                    }
                    n += 1;
                }
            }
            self.inline.get(..n).unwrap_or_default()
        } else {
            self.spill
                .extend_from_slice(self.inline.get(..self.len).unwrap_or_default());
            self.spill.sort_unstable();
            self.spill.dedup();
            &self.spill
        }
    }
}

/// Per-slot data of a stored item (`set_size` 0 = free slot).
#[derive(Clone, Copy, Default)]
struct Meta {
    id: u64,
    set_size: u32,
}

/// Size classes: quarter octaves (sizes `(4+s)·2^(p−2) ..= (5+s)·2^(p−2) − 1`
/// for s in 0..4), so a class spans at most 25 % and its Jaccard floor is
/// close to the floor of the sizes actually stored; 1–3 get one class each.
const SIZE_CLASSES: usize = 128;

#[inline]
fn size_class(set_size: u32) -> usize {
    let s = set_size.max(1);
    let p = 31 - s.leading_zeros();
    if p < 2 {
        s as usize
    } else {
        (4 * p + ((s >> (p - 2)) & 3)) as usize
    }
}

/// Smallest and largest set size of a class.
fn class_bounds(class: usize) -> (u64, u64) {
    if class < 8 {
        return (class as u64, class as u64);
    }
    let p = (class / 4) as u32;
    let sub = (class % 4) as u64;
    ((4 + sub) << (p - 2), ((5 + sub) << (p - 2)) - 1)
}

/// Incremental LSH index over MinHash sketches.
pub struct TextLshIndex {
    num_bins: usize,
    rows: usize,
    bands: usize,
    /// Bins with r = 1 tables (0 = containment probe off).
    probe_bins: usize,
    /// Band candidate probability ≥ [`BAND_FLOOR_RECALL`] above this Jaccard.
    band_floor: f64,
    /// Tables `0..bands` are bands, `bands..bands + probe_bins` the r = 1 bins.
    tables: Tables,
    overflow: Vec<Vec<u32>>,
    free_overflow: Vec<u32>,
    /// Stored minima, `num_bins` per slot.
    mins: Vec<u64>,
    /// Low byte of every stored minimum, `num_bins` per slot: a 1/8-size
    /// copy that rejects most false candidates before the full row is read.
    fingerprints: Vec<u8>,
    meta: Vec<Meta>,
    free_slots: Vec<u32>,
    by_id: HashMap<u64, u32>,
    class_counts: [u32; SIZE_CLASSES],
}

#[inline]
fn band_key(rows: &[u64]) -> u32 {
    let mut h = 0x243f_6a88_85a3_08d3u64;
    for &r in rows {
        h = (h ^ r).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
    }
    (h >> 32) as u32
}

/// Jaccard and both containments from two sketches of equal length.
pub fn sketch_scores(query: MinHashSketch<'_>, item: MinHashSketch<'_>) -> TextScores {
    let k = query.mins.len();
    if k == 0 || k != item.mins.len() || query.set_size == 0 || item.set_size == 0 {
        return scores_from_equal(0, 1, query.set_size, item.set_size);
    }
    let eq = equal_bins(query.mins, item.mins);
    scores_from_equal(eq, k, query.set_size, item.set_size)
}

#[inline]
fn equal_bins(a: &[u64], b: &[u64]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}

fn scores_from_equal(eq: usize, k: usize, query_size: u32, item_size: u32) -> TextScores {
    let j = if k == 0 || query_size == 0 || item_size == 0 {
        0.0
    } else {
        eq as f64 / k as f64
    };
    TextScores {
        jaccard: j,
        containment_query_in_item: containment(j, query_size, item_size),
        containment_item_in_query: containment(j, item_size, query_size),
    }
}

fn containment(j: f64, a: u32, b: u32) -> f64 {
    if a == 0 || j <= 0.0 {
        return 0.0;
    }
    (j * (f64::from(a) + f64::from(b)) / ((1.0 + j) * f64::from(a))).clamp(0.0, 1.0)
}

fn satisfies(s: &TextScores, rule: &TextRule, query_size: u32, item_size: u32) -> bool {
    (s.jaccard > 0.0 && s.jaccard >= rule.jaccard)
        || (s.containment_query_in_item >= rule.containment
            && query_size >= rule.min_contained_shingles)
        || (s.containment_item_in_query >= rule.containment
            && item_size >= rule.min_contained_shingles)
}

/// Smallest Jaccard at which a set of size `contained` has containment ≥ `c`
/// in a set of size `other` (inverse of [`containment`]).
fn containment_floor(c: f64, contained: f64, other: f64) -> f64 {
    if c > 1.0 || c.is_nan() {
        return f64::INFINITY;
    }
    if c <= 0.0 {
        return 0.0;
    }
    c * contained / (contained + other - c * contained)
}

/// Smallest Jaccard at which `rule` can hold for a query of size `q` and an
/// item whose size lies in `lo..=hi`. Used both per pair (`lo == hi`, the
/// verification early exit) and per size class (the low-r probe decision).
fn min_jaccard(rule: &TextRule, q: u32, lo: u64, hi: u64) -> f64 {
    let mut j = if rule.jaccard > 1.0 || rule.jaccard.is_nan() {
        f64::INFINITY
    } else {
        rule.jaccard.max(0.0)
    };
    let qf = f64::from(q);
    // Item contained in the query: the floor grows with the item's size,
    // so the smallest admissible item decides.
    let lo_item = lo.max(u64::from(rule.min_contained_shingles));
    if lo_item <= hi {
        j = j.min(containment_floor(rule.containment, lo_item as f64, qf));
    }
    // Query contained in the item: the floor shrinks as the item grows.
    if q >= rule.min_contained_shingles {
        j = j.min(containment_floor(rule.containment, qf, hi as f64));
    }
    j
}

/// Largest shared-bin count `m` (of `bins`) that an item at Jaccard `j`
/// reaches with probability ≥ 1 − [`PROBE_MISS`] (exact binomial tail), at
/// least 2 so that a single common shingle never makes a candidate.
fn probe_threshold(bins: usize, j: f64) -> usize {
    let j = if j.is_nan() { 0.0 } else { j.clamp(0.0, 1.0) };
    if j <= 0.0 {
        return 2;
    }
    if j >= 1.0 {
        return bins.max(2);
    }
    let q = 1.0 - j;
    let mut p = q.powi(i32::try_from(bins).unwrap_or(i32::MAX));
    let mut cdf = 0.0;
    for i in 0..bins {
        cdf += p;
        // cdf = P(X ≤ i): requiring i + 1 shared bins would miss more.
        if cdf > PROBE_MISS {
            return i.max(2);
        }
        p *= (bins - i) as f64 / (i + 1) as f64 * j / q;
    }
    bins.max(2)
}

impl TextLshIndex {
    /// Index for sketches of `num_bins` minima, bands of two rows, with the
    /// containment probe.
    pub fn new(num_bins: usize) -> Result<Self, TextLshError> {
        Self::with_rows(num_bins, 2)
    }

    /// Index with `rows` minima per band (`rows` must divide `num_bins`).
    pub fn with_rows(num_bins: usize, rows: usize) -> Result<Self, TextLshError> {
        if num_bins == 0 || num_bins > (1 << 20) || num_bins.checked_rem(rows) != Some(0) {
            return Err(TextLshError::Params(
                "rows must divide a non-zero bin count",
            ));
        }
        let bands = num_bins / rows;
        let probe_bins = if rows > 1 {
            PROBE_BINS.min(num_bins)
        } else {
            0
        };
        let band_floor =
            (1.0 - (1.0 - BAND_FLOOR_RECALL).powf(1.0 / bands as f64)).powf(1.0 / rows as f64);
        Ok(TextLshIndex {
            num_bins,
            rows,
            bands,
            probe_bins,
            band_floor,
            tables: Tables::new(bands + probe_bins),
            overflow: Vec::new(),
            free_overflow: Vec::new(),
            mins: Vec::new(),
            fingerprints: Vec::new(),
            meta: Vec::new(),
            free_slots: Vec::new(),
            by_id: HashMap::new(),
            class_counts: [0; SIZE_CLASSES],
        })
    }

    /// Turns the r = 1 containment probe on (default) or off. Only on an
    /// empty index, since it decides which tables inserts fill.
    pub fn with_containment_probe(mut self, enabled: bool) -> Result<Self, TextLshError> {
        if !self.is_empty() {
            return Err(TextLshError::Params(
                "containment probe can only change on an empty index",
            ));
        }
        self.probe_bins = if enabled && self.rows > 1 {
            PROBE_BINS.min(self.num_bins)
        } else {
            0
        };
        self.tables = Tables::new(self.bands + self.probe_bins);
        Ok(self)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.by_id.contains_key(&id)
    }

    /// Approximate heap bytes held (tables, stored minima, overflow lists).
    pub fn memory_bytes(&self) -> usize {
        self.tables.bytes()
            + self.mins.capacity() * 8
            + self.fingerprints.capacity()
            + self.meta.capacity() * std::mem::size_of::<Meta>()
            + self
                .overflow
                .iter()
                .map(|l| l.capacity() * 4 + 24)
                .sum::<usize>()
            + self.by_id.capacity() * 16
    }

    /// The Jaccard above which banding alone finds an item with probability
    /// ≥ 0.99; below it the containment probe runs.
    pub fn band_floor(&self) -> f64 {
        self.band_floor
    }

    fn check(&self, s: &MinHashSketch<'_>) -> Result<(), TextLshError> {
        if s.mins.len() != self.num_bins {
            return Err(TextLshError::WrongLength {
                got: s.mins.len(),
                expected: self.num_bins,
            });
        }
        Ok(())
    }

    /// Key of every table for these minima: band keys, then r = 1 keys.
    fn table_keys<'a>(&self, mins: &'a [u64]) -> impl Iterator<Item = u32> + 'a {
        let probe_bins = self.probe_bins;
        mins.chunks_exact(self.rows)
            .map(band_key)
            .chain(mins.iter().take(probe_bins).map(|&v| band_key(&[v])))
    }

    fn row(&self, slot: u32) -> Option<&[u64]> {
        let start = (slot as usize).checked_mul(self.num_bins)?;
        self.mins.get(start..start + self.num_bins)
    }

    /// Adds (or replaces) `id`.
    pub fn insert(&mut self, id: u64, sketch: MinHashSketch<'_>) -> Result<(), TextLshError> {
        self.check(&sketch)?;
        if sketch.set_size == 0 {
            return Err(TextLshError::Empty);
        }
        self.remove(id);
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                let s = u32::try_from(self.meta.len())
                    .ok()
                    .filter(|s| *s < OVERFLOW)
                    .ok_or(TextLshError::Full)?;
                self.meta.push(Meta::default());
                if self.mins.capacity() < self.mins.len() + self.num_bins {
                    // Grow by doubling into a huge-page-advised allocation.
                    let cap = (self.mins.capacity() * 2).max(self.num_bins * 64);
                    let mut grown = crate::mem::huge_with_capacity(cap);
                    grown.extend_from_slice(&self.mins);
                    self.mins = grown;
                }
                self.mins.resize(self.mins.len() + self.num_bins, 0);
                self.fingerprints
                    .resize(self.fingerprints.len() + self.num_bins, 0);
                s
            }
        };
        let keys: Vec<u32> = self.table_keys(sketch.mins).collect();
        for (table, key) in keys.into_iter().enumerate() {
            self.link(table, key, slot);
        }
        let start = slot as usize * self.num_bins;
        if let Some(row) = self.mins.get_mut(start..start + self.num_bins) {
            row.copy_from_slice(sketch.mins);
        }
        if let Some(row) = self.fingerprints.get_mut(start..start + self.num_bins) {
            for (f, &m) in row.iter_mut().zip(sketch.mins) {
                *f = m as u8;
            }
        }
        if let Some(m) = self.meta.get_mut(slot as usize) {
            *m = Meta {
                id,
                set_size: sketch.set_size,
            };
        }
        if let Some(c) = self.class_counts.get_mut(size_class(sketch.set_size)) {
            *c += 1;
        }
        self.by_id.insert(id, slot);
        Ok(())
    }

    /// Adds `slot` under `key` in `table`.
    fn link(&mut self, table: usize, key: u32, slot: u32) {
        match self.tables.get(table, key) {
            None => self.tables.insert(table, key, slot),
            Some(v) if v & OVERFLOW == 0 => {
                let list = vec![v, slot];
                let idx = match self.free_overflow.pop() {
                    Some(i) => {
                        if let Some(l) = self.overflow.get_mut(i as usize) {
                            *l = list;
                        }
                        i
                    }
                    None => {
                        self.overflow.push(list);
                        (self.overflow.len() - 1) as u32
                    }
                };
                self.tables.insert(table, key, idx | OVERFLOW);
            }
            Some(v) => {
                if let Some(l) = self.overflow.get_mut((v & !OVERFLOW) as usize) {
                    l.push(slot);
                }
            }
        }
    }

    /// Removes `slot` from `key`'s bucket in `table`.
    fn unlink(&mut self, table: usize, key: u32, slot: u32) {
        match self.tables.get(table, key) {
            Some(v) if v == slot => self.tables.remove(table, key),
            Some(v) if v & OVERFLOW == 0 => {}
            Some(v) => {
                let idx = v & !OVERFLOW;
                if let Some(list) = self.overflow.get_mut(idx as usize) {
                    if let Some(p) = list.iter().position(|&s| s == slot) {
                        list.swap_remove(p);
                    }
                    match list.as_slice() {
                        [] => {
                            self.tables.remove(table, key);
                            *list = Vec::new();
                            self.free_overflow.push(idx);
                        }
                        [only] => {
                            let only = *only;
                            *list = Vec::new();
                            self.tables.insert(table, key, only);
                            self.free_overflow.push(idx);
                        }
                        _ => {}
                    }
                }
            }
            None => {}
        }
    }

    /// Removes `id`; returns whether it was present.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(slot) = self.by_id.remove(&id) else {
            return false;
        };
        let Some(row) = self.row(slot).map(<[u64]>::to_vec) else {
            return false;
        };
        let keys: Vec<u32> = self.table_keys(&row).collect();
        for (table, key) in keys.into_iter().enumerate() {
            self.unlink(table, key, slot);
        }
        if let Some(m) = self.meta.get_mut(slot as usize) {
            if let Some(c) = self.class_counts.get_mut(size_class(m.set_size)) {
                *c = c.saturating_sub(1);
            }
            *m = Meta::default();
        }
        self.free_slots.push(slot);
        true
    }

    /// Ids whose stored sketch satisfies `rule` against `query`, with
    /// scores, best Jaccard first.
    pub fn query(
        &self,
        query: MinHashSketch<'_>,
        rule: &TextRule,
    ) -> Result<Vec<(u64, TextScores)>, TextLshError> {
        let mut out = Vec::new();
        self.query_into(query, rule, &mut out)?;
        Ok(out)
    }

    /// [`TextLshIndex::query`] into a caller's vector (cleared first), so a
    /// caller issuing many queries reuses one allocation.
    pub fn query_into(
        &self,
        query: MinHashSketch<'_>,
        rule: &TextRule,
        out: &mut Vec<(u64, TextScores)>,
    ) -> Result<(), TextLshError> {
        self.check(&query)?;
        out.clear();
        if query.set_size == 0 || self.is_empty() {
            return Ok(());
        }
        let mut cands = Candidates::new();
        let j_min = if self.probe_bins > 0 {
            self.query_min_jaccard(rule, query.set_size)
        } else {
            f64::INFINITY
        };
        if j_min < self.band_floor {
            // The probe's threshold is set for the smallest Jaccard any item
            // may need; items that need more share more bins, so it finds
            // them with at least the same probability and bands are skipped.
            self.containment_probe(query.mins, j_min, &mut cands);
        } else {
            self.probe(query.mins, 0, self.bands, |t| match t {
                Some(v) if v & OVERFLOW == 0 => cands.push(v),
                Some(v) => {
                    if let Some(l) = self.overflow.get((v & !OVERFLOW) as usize) {
                        cands.extend(l);
                    }
                }
                None => {}
            });
        }
        let slots = cands.finish();
        if slots.is_empty() {
            return Ok(());
        }
        for &slot in slots {
            if let Some(m) = self.meta.get(slot as usize) {
                prefetch(m);
            }
            if let Some(f) = self.fingerprint_row(slot) {
                for b in f.iter().step_by(64) {
                    prefetch(b);
                }
            }
        }
        let mut qfp = [0u8; MAX_FINGERPRINT_BINS];
        let qfp = match qfp.get_mut(..self.num_bins) {
            Some(f) => {
                for (b, &m) in f.iter_mut().zip(query.mins) {
                    *b = m as u8;
                }
                Some(&*f)
            }
            None => None,
        };
        let mut survivors = Candidates::new();
        for &slot in slots {
            if self.prefilter(query.set_size, qfp, slot, rule) {
                survivors.push(slot);
                if let Some(row) = self.row(slot) {
                    // First two lines; the hardware prefetcher follows.
                    for b in row.iter().step_by(8).take(2) {
                        prefetch(b);
                    }
                }
            }
        }
        for &slot in survivors.finish() {
            self.verify(query, slot, rule, out);
        }
        sort_hits(out);
        Ok(())
    }

    /// Looks up `query`'s keys in tables `first..first + n`: computes every
    /// key and prefetches every home slot of a chunk before probing it, so
    /// the cache misses overlap. `found` gets each table's value.
    #[inline]
    fn probe<F: FnMut(Option<u32>)>(&self, mins: &[u64], first: usize, n: usize, mut found: F) {
        let mut keys = [0u32; PREFETCH_CHUNK];
        let mut homes = [0usize; PREFETCH_CHUNK];
        let mut start = 0;
        while start < n {
            let len = PREFETCH_CHUNK.min(n - start);
            for ((k, h), t) in keys
                .iter_mut()
                .zip(homes.iter_mut())
                .zip(first + start..first + start + len)
            {
                let key = if t < self.bands {
                    band_key(
                        mins.get(t * self.rows..(t + 1) * self.rows)
                            .unwrap_or_default(),
                    )
                } else {
                    band_key(
                        mins.get(t - self.bands..=t - self.bands)
                            .unwrap_or_default(),
                    )
                };
                *k = key;
                *h = self.tables.home(t, key);
                self.tables.prefetch_slot(*h);
            }
            for ((k, h), t) in keys
                .iter()
                .zip(homes.iter())
                .zip(first + start..first + start + len)
            {
                found(self.tables.get_at(t, *k, *h));
            }
            start += len;
        }
    }

    /// Smallest Jaccard any stored item could need to match `rule` against
    /// a query of `q` shingles, over the non-empty size classes.
    fn query_min_jaccard(&self, rule: &TextRule, q: u32) -> f64 {
        let mut j = f64::INFINITY;
        for (c, &count) in self.class_counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let (lo, hi) = class_bounds(c);
            j = j.min(min_jaccard(rule, q, lo, hi));
        }
        j
    }

    /// The r = 1 probe: every item sharing at least
    /// [`probe_threshold`]`(probe_bins, j_min)` of the first `probe_bins`
    /// bins with the query becomes a candidate.
    fn containment_probe(&self, mins: &[u64], j_min: f64, cands: &mut Candidates) {
        let mut values = [None; PREFETCH_CHUNK];
        let mut n = 0;
        self.probe(mins, self.bands, self.probe_bins, |t| {
            if let Some(v) = values.get_mut(n) {
                *v = t;
            }
            n += 1;
        });
        let values = values.get(..n).unwrap_or_default();
        // Overflow lists are a header and a heap block: prefetch both
        // levels for all bins before walking any of them.
        for v in values.iter().flatten().filter(|v| *v & OVERFLOW != 0) {
            if let Some(l) = self.overflow.get((v & !OVERFLOW) as usize) {
                prefetch(l);
            }
        }
        // Skip bins whose posting list is long: the query's minimum there is
        // a common shingle shared by many stored texts. Which bins those are
        // depends on the query's values, not on whether a given item shares
        // the bin, so the count over the remaining bins is still binomial
        // and the threshold is recomputed for that many bins.
        let mut values_kept = [None; PREFETCH_CHUNK];
        let mut kept = 0usize;
        for (dst, v) in values_kept.iter_mut().zip(values) {
            let long = v.is_some_and(|v| {
                v & OVERFLOW != 0
                    && self
                        .overflow
                        .get((v & !OVERFLOW) as usize)
                        .is_some_and(|l| l.len() > PROBE_LIST_CAP)
            });
            if !long {
                *dst = *v;
                kept += 1;
            }
        }
        let values = if kept >= PROBE_MIN_KEPT {
            values_kept.get(..values.len()).unwrap_or_default()
        } else {
            kept = values.len();
            values
        };
        // ≤ probe_bins ≤ 64, so it fits the 8-bit counters below.
        let m = probe_threshold(kept, j_min) as u32;
        for v in values.iter().flatten().filter(|v| *v & OVERFLOW != 0) {
            if let Some(first) = self
                .overflow
                .get((v & !OVERFLOW) as usize)
                .and_then(|l| l.first())
            {
                prefetch(first);
            }
        }
        PROBE_COUNTS.with(|cell| {
            let Ok(mut guard) = cell.try_borrow_mut() else {
                return;
            };
            let (generation, counts) = &mut *guard;
            if counts.len() < self.meta.len() {
                counts.resize(self.meta.len(), 0);
            }
            *generation = (*generation + 1) & 0x00ff_ffff;
            if *generation == 0 {
                counts.fill(0);
                *generation = 1;
            }
            let stamp = *generation << 8;
            let mut bump = |slot: u32| {
                if let Some(c) = counts.get_mut(slot as usize) {
                    let next = if *c & !0xff == stamp {
                        *c + 1
                    } else {
                        stamp | 1
                    };
                    *c = next;
                    if next & 0xff == m {
                        cands.push(slot);
                    }
                }
            };
            for &v in values.iter().flatten() {
                if v & OVERFLOW == 0 {
                    bump(v);
                } else if let Some(l) = self.overflow.get((v & !OVERFLOW) as usize) {
                    for &slot in l {
                        bump(slot);
                    }
                }
            }
        });
    }

    /// Brute force: applies `rule` to every stored sketch. Ground truth for
    /// tests and recall measurements.
    pub fn query_exhaustive(
        &self,
        query: MinHashSketch<'_>,
        rule: &TextRule,
    ) -> Result<Vec<(u64, TextScores)>, TextLshError> {
        self.check(&query)?;
        let mut out = Vec::new();
        if query.set_size == 0 {
            return Ok(out);
        }
        for (slot, m) in self.meta.iter().enumerate() {
            if m.set_size == 0 {
                continue;
            }
            if let Some(row) = self.row(slot as u32) {
                let item = MinHashSketch {
                    mins: row,
                    set_size: m.set_size,
                };
                let s = sketch_scores(query, item);
                if satisfies(&s, rule, query.set_size, m.set_size) {
                    out.push((m.id, s));
                }
            }
        }
        sort_hits(&mut out);
        Ok(out)
    }

    fn fingerprint_row(&self, slot: u32) -> Option<&[u8]> {
        let start = (slot as usize).checked_mul(self.num_bins)?;
        self.fingerprints.get(start..start + self.num_bins)
    }

    /// Equal bins a candidate needs, minus one bin of slack so that the
    /// cut stays conservative under floating-point rounding (the rule itself
    /// decides after the full comparison).
    fn needed_bins(&self, rule: &TextRule, query_size: u32, item_size: u32) -> usize {
        let x = u64::from(item_size);
        let j_min = min_jaccard(rule, query_size, x, x);
        if j_min.is_finite() {
            ((j_min * self.num_bins as f64).floor() as usize).saturating_sub(1)
        } else {
            self.num_bins + 1
        }
    }

    /// Cheap rejection: equal minima have equal low bytes, so fewer equal
    /// fingerprint bytes than [`Self::needed_bins`] proves a non-match.
    fn prefilter(&self, query_size: u32, qfp: Option<&[u8]>, slot: u32, rule: &TextRule) -> bool {
        let (Some(meta), Some(qfp), Some(fp)) = (
            self.meta.get(slot as usize),
            qfp,
            self.fingerprint_row(slot),
        ) else {
            return true;
        };
        if meta.set_size == 0 {
            return false;
        }
        let equal = qfp.iter().zip(fp).filter(|(a, b)| a == b).count();
        equal >= self.needed_bins(rule, query_size, meta.set_size)
    }

    /// Exact check of one candidate, stopping early once the remaining bins
    /// cannot lift the equal count to the rule's minimum for these sizes.
    fn verify(
        &self,
        query: MinHashSketch<'_>,
        slot: u32,
        rule: &TextRule,
        out: &mut Vec<(u64, TextScores)>,
    ) {
        let (Some(meta), Some(row)) = (self.meta.get(slot as usize), self.row(slot)) else {
            return;
        };
        if meta.set_size == 0 {
            return;
        }
        let k = self.num_bins;
        let need = self.needed_bins(rule, query.set_size, meta.set_size);
        let mut eq = 0usize;
        let mut left = k;
        for (a, b) in query.mins.chunks(VERIFY_STEP).zip(row.chunks(VERIFY_STEP)) {
            eq += equal_bins(a, b);
            left -= a.len();
            if eq + left < need {
                return;
            }
        }
        let s = scores_from_equal(eq, k, query.set_size, meta.set_size);
        if satisfies(&s, rule, query.set_size, meta.set_size) {
            out.push((meta.id, s));
        }
    }
}

fn sort_hits(v: &mut [(u64, TextScores)]) {
    v.sort_by(|a, b| {
        b.1.jaccard
            .total_cmp(&a.1.jaccard)
            .then_with(|| a.0.cmp(&b.0))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sketch of a synthetic set: OPH over the given element hashes.
    fn sketch(elems: &[u64], k: usize) -> (Vec<u64>, u32) {
        let mut mins = vec![u64::MAX; k];
        for &e in elems {
            // splitmix64 finaliser: a well-mixed stand-in for shingle hashes.
            let mut x = e.wrapping_add(0x9e37_79b9_7f4a_7c15);
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^= x >> 31;
            let bin = ((u128::from(x) * k as u128) >> 64) as usize;
            mins[bin] = mins[bin].min(x);
        }
        // Simple densification for the test: copy the next filled bin.
        let filled: Vec<u64> = mins.clone();
        for i in 0..k {
            if mins[i] == u64::MAX {
                if let Some(v) = (1..k).map(|d| filled[(i + d) % k]).find(|&v| v != u64::MAX) {
                    mins[i] = v;
                }
            }
        }
        (mins, elems.len() as u32)
    }

    fn sk(s: &(Vec<u64>, u32)) -> MinHashSketch<'_> {
        MinHashSketch {
            mins: &s.0,
            set_size: s.1,
        }
    }

    fn doc(id: u64, n: u64) -> Vec<u64> {
        (0..n).map(|i| id * 1_000_000 + i).collect()
    }

    #[test]
    fn finds_contained_item_and_matches_exhaustive() {
        let k = 128;
        let mut idx = TextLshIndex::new(k).unwrap();
        let mut stored = Vec::new();
        for d in 0..500u64 {
            let elems = doc(d, 300);
            let s = sketch(&elems, k);
            idx.insert(d, sk(&s)).unwrap();
            stored.push(elems);
        }
        // Page = doc 7 + 600 unrelated elements: Jaccard ≈ 1/3, containment 1.
        let mut page = stored[7].clone();
        page.extend((0..600).map(|i| 999_000_000 + i));
        let q = sketch(&page, k);
        let hits = idx.query(sk(&q), &TextRule::default()).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].0, 7);
        assert!(hits[0].1.containment_item_in_query > 0.8, "{:?}", hits[0].1);
        assert_eq!(
            hits,
            idx.query_exhaustive(sk(&q), &TextRule::default()).unwrap()
        );
    }

    /// Articles of 400 elements inside pages 5× and 10× longer: Jaccard
    /// 0.17 / 0.09, where bands alone lose many. (400 elements keep the
    /// test sketch's naive densification from distorting the estimate.) With the containment probe
    /// the index returns what the exhaustive scan returns; without it,
    /// clearly fewer.
    #[test]
    fn containment_probe_recovers_small_items_in_large_pages() {
        let k = 128;
        let mut with = TextLshIndex::new(k).unwrap();
        let mut without = TextLshIndex::new(k)
            .unwrap()
            .with_containment_probe(false)
            .unwrap();
        for d in 0..2000u64 {
            let s = sketch(&doc(d, 400), k);
            with.insert(d, sk(&s)).unwrap();
            without.insert(d, sk(&s)).unwrap();
        }
        let rule = TextRule::default();
        for ratio in [5u64, 10] {
            let (mut found_with, mut found_without, mut found_ex) = (0, 0, 0);
            for t in 0..200u64 {
                let target = (t * 7919) % 2000;
                let mut page = doc(target, 400);
                page.extend((0..400 * ratio).map(|i| 5_000_000_000 + t * 100_000 + i));
                let q = sketch(&page, k);
                let a = with.query(sk(&q), &rule).unwrap();
                let b = without.query(sk(&q), &rule).unwrap();
                let ex = with.query_exhaustive(sk(&q), &rule).unwrap();
                // Verified results are a subset of the exhaustive answer,
                // with identical scores.
                for h in a.iter().chain(&b) {
                    assert!(ex.contains(h), "{h:?} not in exhaustive {ex:?}");
                }
                found_with += usize::from(a.iter().any(|h| h.0 == target));
                found_without += usize::from(b.iter().any(|h| h.0 == target));
                found_ex += usize::from(ex.iter().any(|h| h.0 == target));
            }
            assert!(found_ex >= 150, "ratio {ratio}: exhaustive {found_ex}");
            assert!(
                found_with + 2 >= found_ex,
                "ratio {ratio}: probe {found_with} vs exhaustive {found_ex}"
            );
            assert!(
                found_without + 10 < found_with,
                "ratio {ratio}: bands alone {found_without} vs probe {found_with}"
            );
        }
    }

    /// Near-duplicate queries of stored size never need the probe.
    #[test]
    fn probe_skipped_for_same_size_queries() {
        let mut idx = TextLshIndex::new(128).unwrap();
        let s = sketch(&doc(1, 100), 128);
        idx.insert(1, sk(&s)).unwrap();
        let rule = TextRule::default();
        assert!(idx.query_min_jaccard(&rule, 100) > idx.band_floor());
        assert!(idx.query_min_jaccard(&rule, 1000) < idx.band_floor());
        assert!(
            (idx.band_floor() - 0.263).abs() < 0.01,
            "{}",
            idx.band_floor()
        );
    }

    #[test]
    fn min_jaccard_is_a_sound_floor() {
        let rule = TextRule::default();
        let k = 128usize;
        for q in [1u32, 5, 10, 50, 98, 300, 1000, 5000] {
            for x in [1u32, 9, 10, 40, 98, 300, 2000, 70_000] {
                let floor = min_jaccard(&rule, q, u64::from(x), u64::from(x));
                let (lo, hi) = class_bounds(size_class(x));
                assert!(lo <= u64::from(x) && u64::from(x) <= hi, "{x}: {lo}..={hi}");
                let class_floor = min_jaccard(&rule, q, lo, hi);
                assert!(class_floor <= floor + 1e-12, "q {q} x {x}");
                for eq in 0..=k {
                    let s = scores_from_equal(eq, k, q, x);
                    if satisfies(&s, &rule, q, x) {
                        assert!(
                            s.jaccard + 1.0 / k as f64 > floor,
                            "q {q} x {x} eq {eq}: J {} floor {floor}",
                            s.jaccard
                        );
                    }
                }
            }
        }
        assert_eq!(probe_threshold(64, 0.0), 2);
        assert_eq!(probe_threshold(64, 0.133), 3);
        assert_eq!(probe_threshold(64, 0.05), 2);
        assert_eq!(probe_threshold(64, 1.0), 64);
        // Classes tile the u32 range without gaps.
        let mut next = 1u64;
        for c in (1..4).chain(8..SIZE_CLASSES) {
            let (lo, hi) = class_bounds(c);
            assert_eq!(lo, next, "class {c}");
            assert!(hi >= lo);
            assert_eq!(size_class(lo as u32), c);
            assert_eq!(size_class(hi as u32), c);
            next = hi + 1;
        }
        assert_eq!(next, 1u64 << 32);
        assert!(probe_threshold(64, 0.5) >= 20);
    }

    #[test]
    fn early_exit_agrees_with_full_comparison() {
        // Random-ish pairs with every equal-bin count: verify() must keep
        // exactly the pairs the rule accepts.
        let k = 128;
        let mut idx = TextLshIndex::new(k).unwrap();
        let base: Vec<u64> = (0..k as u64).map(|i| i * 31 + 7).collect();
        for eq in 0..=k {
            let mut mins = base.clone();
            for (i, m) in mins.iter_mut().enumerate() {
                // Spread the unequal bins over the sketch.
                // Unequal bins differ in the fingerprint byte or only above it.
                if (i * 37) % k >= eq {
                    *m ^= if i % 2 == 0 { 1 << 40 } else { 1 };
                }
            }
            let size = 20 + (eq as u32 * 13) % 400;
            idx.insert(
                eq as u64,
                MinHashSketch {
                    mins: &mins,
                    set_size: size,
                },
            )
            .unwrap();
        }
        for q_size in [5u32, 30, 100, 400, 3000] {
            for rule in [
                TextRule::default(),
                TextRule {
                    jaccard: 0.3,
                    containment: 2.0,
                    min_contained_shingles: u32::MAX,
                },
                TextRule {
                    jaccard: 0.9,
                    containment: 0.5,
                    min_contained_shingles: 0,
                },
            ] {
                let q = MinHashSketch {
                    mins: &base,
                    set_size: q_size,
                };
                let qfp: Vec<u8> = base.iter().map(|&m| m as u8).collect();
                let mut got = Vec::new();
                for slot in 0..=k as u32 {
                    if idx.prefilter(q_size, Some(&qfp), slot, &rule) {
                        idx.verify(q, slot, &rule, &mut got);
                    }
                }
                sort_hits(&mut got);
                assert_eq!(got, idx.query_exhaustive(q, &rule).unwrap());
            }
        }
    }

    #[test]
    fn insert_replace_remove() {
        let k = 64;
        let mut idx = TextLshIndex::new(k).unwrap();
        let a = sketch(&(0..50).collect::<Vec<_>>(), k);
        let b = sketch(&(1000..1050).collect::<Vec<_>>(), k);
        idx.insert(1, sk(&a)).unwrap();
        idx.insert(2, sk(&a)).unwrap();
        idx.insert(3, sk(&a)).unwrap();
        assert_eq!(idx.query(sk(&a), &TextRule::default()).unwrap().len(), 3);
        assert!(idx.remove(2));
        assert!(!idx.remove(2));
        let ids: Vec<u64> = idx
            .query(sk(&a), &TextRule::default())
            .unwrap()
            .iter()
            .map(|h| h.0)
            .collect();
        assert_eq!(ids, vec![1, 3]);
        idx.insert(1, sk(&b)).unwrap();
        let ids: Vec<u64> = idx
            .query(sk(&a), &TextRule::default())
            .unwrap()
            .iter()
            .map(|h| h.0)
            .collect();
        assert_eq!(ids, vec![3]);
        assert_eq!(idx.len(), 2);
        idx.remove(3);
        idx.remove(1);
        assert!(idx.is_empty());
        assert_eq!(idx.tables.total_len(), 0);
        assert!(idx.overflow.iter().all(Vec::is_empty));
        assert_eq!(idx.class_counts.iter().sum::<u32>(), 0);
    }

    #[test]
    fn churn_keeps_lsh_a_subset_of_exhaustive() {
        let k = 128;
        let mut idx = TextLshIndex::new(k).unwrap();
        let mut x = 0x9e37_79b9u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for step in 0..3000u64 {
            let id = next() % 400;
            if next() % 4 == 0 {
                idx.remove(id);
            } else {
                // Overlapping element ranges so items share bins.
                let start = next() % 2000;
                let len = 10 + next() % 300;
                let s = sketch(&(start..start + len).collect::<Vec<_>>(), k);
                idx.insert(id, sk(&s)).unwrap();
            }
            if step % 100 == 0 {
                let start = next() % 2000;
                let q = sketch(&(start..start + 20 + next() % 900).collect::<Vec<_>>(), k);
                let rule = TextRule::default();
                let lsh = idx.query(sk(&q), &rule).unwrap();
                let ex = idx.query_exhaustive(sk(&q), &rule).unwrap();
                for h in &lsh {
                    assert!(ex.contains(h));
                }
            }
        }
        let ids: Vec<u64> = idx.by_id.keys().copied().collect();
        for id in ids {
            assert!(idx.remove(id));
        }
        assert_eq!(idx.tables.total_len(), 0);
        assert_eq!(idx.len(), 0);
    }

    #[test]
    fn rejects_bad_input() {
        let mut idx = TextLshIndex::new(128).unwrap();
        let short = [1u64; 10];
        assert!(matches!(
            idx.insert(
                1,
                MinHashSketch {
                    mins: &short,
                    set_size: 3
                }
            ),
            Err(TextLshError::WrongLength { .. })
        ));
        let empty = [u64::MAX; 128];
        assert_eq!(
            idx.insert(
                1,
                MinHashSketch {
                    mins: &empty,
                    set_size: 0
                }
            ),
            Err(TextLshError::Empty)
        );
        assert!(TextLshIndex::with_rows(128, 3).is_err());
        let s = sketch(&doc(3, 50), 128);
        idx.insert(3, sk(&s)).unwrap();
        assert!(TextLshIndex::new(128)
            .unwrap()
            .with_containment_probe(false)
            .is_ok());
    }
}

#[cfg(test)]
mod table_tests {
    use super::Tables;
    use std::collections::HashMap;

    #[test]
    fn behaves_like_hashmaps_under_churn() {
        let mut t = Tables::new(3);
        let mut m: Vec<HashMap<u32, u32>> = vec![HashMap::new(); 3];
        let mut x = 0x1234_5678u64;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let table = (x % 3) as usize;
            // Small key space so inserts, overwrites and removes collide.
            let key = (((x >> 8) % 3000) as u32).wrapping_mul(0x0101_0101);
            if x >> 60 < 6 {
                t.insert(table, key, step);
                m[table].insert(key, step);
            } else {
                t.remove(table, key);
                m[table].remove(&key);
            }
            if step % 997 == 0 {
                for (tab, map) in m.iter().enumerate() {
                    for k in 0..3000u32 {
                        let k = k.wrapping_mul(0x0101_0101);
                        assert_eq!(t.get(tab, k), map.get(&k).copied());
                    }
                    assert_eq!(t.lens[tab], map.len());
                }
            }
        }
    }
}
