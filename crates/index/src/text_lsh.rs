//! Containment-capable LSH index over MinHash sketches of text.
//!
//! Stored items and queries are plain [`MinHashSketch`]es: K bin minima plus
//! the size of the shingle set (this crate does not know the signals crate;
//! `echotrace_signals::text::TextSignature` converts trivially).
//!
//! Design: **a query probes only as deep as its weakest admissible match
//! needs — bands for same-size near-duplicates, shared-bin counting for
//! texts inside longer pages — then every candidate is verified exactly.**
//! * **The weakest admissible match, exactly.** The index keeps the
//!   multiset of stored set sizes. For a query of size |Q| and the rule's
//!   bounds (Jaccard J₀, containment C, minimum contained size), the
//!   smallest Jaccard any stored item could have and still match is known
//!   in closed form: `C·x / (x + |Q| − C·x)` for an item of size x contained
//!   in the query (smallest eligible stored x decides), `C·|Q| / (|Q| + u −
//!   C·|Q|)` for the query contained in an item of size u (largest stored u
//!   decides), and J₀. Call it `j_min`; everything below is sized for it,
//!   with miss probability ≤ 1 % *at* `j_min` (items that need more share
//!   more, so they are found at least as often).
//! * **Bands when `j_min` is high.** The K minima are cut into bands of two
//!   rows (64 bands for K = 128), each mixed into a 32-bit key. A query
//!   looks up only the first `⌈ln 0.01 / ln(1 − j_min²)⌉` bands: 17 for a
//!   same-size near-duplicate (`j_min` ≈ 0.49), all 64 at the *band floor*
//!   (J ≈ 0.26, where 64 bands give 0.99).
//! * **Shared-bin counting when `j_min` is below the band floor** (LSH
//!   Ensemble's problem, a page much longer than an article contained in
//!   it: a 100-word article in an 11× page has J ≈ 0.09, which bands find
//!   ≈ 40 % of the time). r = 1 tables over the first 64 bins (key = the
//!   bin's value). The query looks up the fewest bins n over which an item
//!   at `j_min` shares ≥ 2 with probability ≥ 0.99 (all 64 below J ≈ 0.1),
//!   and takes every item sharing at least `m` of them, `m` from the exact
//!   binomial tail (largest count reached with probability ≥ 0.99, ≥ 2).
//!   Posting lists longer than 256 (the query's minimum there is a common
//!   shingle) are flagged in the table entry and skipped unread, replaced
//!   by further bins while any remain: which bins are skipped depends on
//!   the query's values, not on whether an item shares them, so the count
//!   over the kept bins stays binomial and `m` is computed for them.
//!   Counting uses a per-thread array of generation-stamped counters
//!   (cleared once per 255 queries). [`TextLshIndex::bins_only`] uses
//!   counting for every query (half the memory, faster inserts, slower
//!   near-duplicate queries); [`TextLshIndex::banded`] has bands only (the
//!   classic design, which misses small texts in long pages).
//! * **Exact verification.** Every candidate is verified against its
//!   stored sketch: Jaccard is the fraction of equal bins and containment of
//!   x in y is `J·(|x|+|y|)/((1+J)·|x|)`, the same estimates as
//!   `compare_text`. Only candidates that satisfy the [`TextRule`] are
//!   returned, with their scores — identical to applying the rule to every
//!   stored sketch ([`TextLshIndex::query_exhaustive`]), except for the LSH
//!   miss probability. Verification compares 16 bins at a time and stops as
//!   soon as the remaining bins cannot reach the rule's minimum Jaccard for
//!   this pair of sizes.
//! * **Memory layout for speed.** A query is dominated by memory latency
//!   (~170 ns per DRAM miss here), so the layout minimises *dependent*
//!   misses. All tables live in one allocation (8-byte entries
//!   `key << 32 | value`, linear probing, load ½–¾ with any capacity,
//!   backward-shift deletion) backed by transparent huge pages, as are the posting-list arena and the
//!   stored rows. A value is a slot, or (top bit) a posting list's offset in
//!   one `u32` arena holding `[len, cap, slots…]`, so a list is one access
//!   away, never a `Vec` header and then its buffer. A query computes every
//!   key it needs and prefetches every home slot before reading any, then
//!   prefetches the lists it will count, then the rows it will verify:
//!   three overlapped rounds. With ≤ 4 candidates (the usual case) their
//!   whole rows are prefetched and verified directly; with more, an 8-bit
//!   fingerprint per bin (128 B per item) rejects most false ones after 2
//!   cache lines instead of 16. Candidates collect in a stack buffer.
//!   Insert and remove are incremental; inserting an existing id replaces
//!   it. Software prefetch is x86-64 only (elsewhere a no-op).
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
/// Values with this bit set point at a posting list instead of a slot.
const OVERFLOW: u32 = 1 << 31;
/// On a posting-list value: the list is longer than [`PROBE_LIST_CAP`], so
/// shared-bin counting skips it without reading it.
const LONG: u32 = 1 << 30;
/// Bins with r = 1 tables for shared-bin counting (fewer if K is smaller).
const PROBE_BINS: usize = 64;
/// Miss probability shared-bin counting allows at the
/// query's minimum Jaccard.
const PROBE_MISS: f64 = 0.01;
/// Posting lists longer than this are skipped by shared-bin counting.
const PROBE_LIST_CAP: usize = 256;
/// …unless fewer than this many bins (or than needed) would remain.
const PROBE_MIN_KEPT: usize = 32;
/// Largest K for which queries pre-filter candidates by 8-bit fingerprints.
const MAX_FINGERPRINT_BINS: usize = 1024;
/// Band recall the band floor is defined by.
const BAND_FLOOR_RECALL: f64 = 0.99;
/// Tables whose home slots are prefetched together.
const PREFETCH_CHUNK: usize = 64;
/// Candidates held on the stack before spilling to the heap.
const INLINE_CANDIDATES: usize = 128;
/// Up to this many candidates skip the fingerprint pre-filter.
const DIRECT_VERIFY: usize = 4;
/// Bins compared per verification step (one early-exit check per step).
const VERIFY_STEP: usize = 16;

thread_local! {
    /// Scratch of the shared-bin count: one counter per slot, stored as
    /// `generation << 8 | count` so the array (2 bytes per stored item) is
    /// cleared only once every 255 queries.
    static PROBE_COUNTS: std::cell::RefCell<(u8, Vec<u16>)> =
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

/// `count` open-addressing hash tables of equal capacity in one allocation:
/// table `t` owns `slots[t·cap .. (t+1)·cap]`. Entries are
/// `key << 32 | value`; linear probing with backward-shift deletion. All
/// tables grow together when one would exceed load ¾, to twice the fullest
/// table's length (load ½), so the load stays in ½–¾ at any size: the
/// capacity is not a power of two (homes by multiply-shift), which keeps
/// the tables about a third smaller on average than power-of-two growth.
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
        // Keys are already mixed: remix, then map the top 32 bits onto
        // 0..cap by multiply-shift (any capacity, no power of two needed).
        let mixed = u64::from(key).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        ((mixed * self.cap as u64) >> 32) as usize
    }

    /// The slot after `i` in a table, wrapping around.
    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 >= self.cap {
            0
        } else {
            i + 1
        }
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
        let mut i = home.wrapping_sub(base);
        // Load ≤ ¾ guarantees an empty slot, so the probe terminates.
        loop {
            let e = *self.slots.get(base + i)?;
            if e == EMPTY {
                return None;
            }
            if (e >> 32) as u32 == key {
                return Some(e as u32);
            }
            i = self.next(i);
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
            i = self.next(i);
        }
        false
    }

    fn remove(&mut self, table: usize, key: u32) {
        if self.cap == 0 {
            return;
        }
        let base = table * self.cap;
        let cap = self.cap;
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
            i = self.next(i);
        }
        // Backward-shift deletion keeps probe sequences unbroken.
        let mut hole = i;
        let mut j = self.next(i);
        loop {
            let Some(&e) = self.slots.get(base + j) else {
                return;
            };
            if e == EMPTY {
                break;
            }
            let home = self.home_offset((e >> 32) as u32);
            // Move e into the hole if its home is not cyclically in (hole, j].
            let dist_home = (j + cap - home) % cap;
            let dist_hole = (j + cap - hole) % cap;
            if dist_home >= dist_hole {
                if let Some(h) = self.slots.get_mut(base + hole) {
                    *h = e;
                }
                hole = j;
            }
            j = self.next(j);
        }
        if let Some(h) = self.slots.get_mut(base + hole) {
            *h = EMPTY;
        }
        if let Some(l) = self.lens.get_mut(table) {
            *l = l.saturating_sub(1);
        }
    }

    fn grow(&mut self) {
        // Twice the fullest table: load ½ right after growing, ¾ at most.
        let fullest = self.lens.iter().copied().max().unwrap_or(0);
        let new_cap = (fullest * 2).max(self.cap + 1).max(16);
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

/// Posting lists of buckets holding more than one slot, all in one `u32`
/// arena: a list at (even) word offset `off` is `[len, cap, slot…]` with
/// `cap` a power of two. A table value points straight at its list
/// (`OVERFLOW | LONG? | off / 2`), so reading a list is one memory access,
/// and the [`LONG`] flag lets shared-bin counting skip a common bin
/// without any. Freed blocks are reused per capacity.
#[derive(Default)]
struct Postings {
    words: Vec<u32>,
    /// Free blocks by `log2(cap)`.
    free: Vec<Vec<u32>>,
    live: usize,
}

/// Largest arena (words) a table value can address.
const MAX_POSTING_WORDS: usize = 1 << 31;

impl Postings {
    /// Table value of the list at `off` holding `len` slots.
    #[inline]
    fn value(off: usize, len: usize) -> u32 {
        let long = if len > PROBE_LIST_CAP { LONG } else { 0 };
        OVERFLOW | long | (off / 2) as u32
    }

    #[inline]
    fn offset(v: u32) -> usize {
        (v & !(OVERFLOW | LONG)) as usize * 2
    }

    /// The slots of the list a table value points at.
    #[inline]
    fn list(&self, v: u32) -> &[u32] {
        let off = Self::offset(v);
        let len = self.words.get(off).copied().unwrap_or(0) as usize;
        self.words.get(off + 2..off + 2 + len).unwrap_or_default()
    }

    /// Hints the cache to load the start of a list.
    #[inline]
    fn prefetch(&self, v: u32) {
        if let Some(w) = self.words.get(Self::offset(v)) {
            prefetch(w);
        }
    }

    fn alloc(&mut self, cap: usize) -> Option<usize> {
        let class = cap.trailing_zeros() as usize;
        if let Some(off) = self.free.get_mut(class).and_then(Vec::pop) {
            self.live += 1;
            return Some(off as usize);
        }
        let off = self.words.len();
        if off + cap + 2 > MAX_POSTING_WORDS {
            return None;
        }
        crate::mem::reserve_huge(&mut self.words, cap + 2);
        self.words.resize(off + cap + 2, 0);
        if let Some(h) = self.words.get_mut(off + 1) {
            *h = cap as u32;
        }
        self.live += 1;
        Some(off)
    }

    fn release(&mut self, off: usize) {
        let cap = self.words.get(off + 1).copied().unwrap_or(2) as usize;
        let class = cap.trailing_zeros() as usize;
        if self.free.len() <= class {
            self.free.resize_with(class + 1, Vec::new);
        }
        if let Some(f) = self.free.get_mut(class) {
            f.push(off as u32);
        }
        if let Some(len) = self.words.get_mut(off) {
            *len = 0;
        }
        self.live = self.live.saturating_sub(1);
    }

    /// A new list of two slots; its offset, or `None` when the arena is full.
    fn create(&mut self, a: u32, b: u32) -> Option<usize> {
        let off = self.alloc(2)?;
        if let Some(w) = self.words.get_mut(off..off + 4) {
            w.copy_from_slice(&[2, 2, a, b]);
        }
        Some(off)
    }

    /// Appends `slot` to the list at `off`; returns the list's (possibly
    /// moved) offset and new length, or `None` when the arena is full.
    fn push(&mut self, off: usize, slot: u32) -> Option<(usize, usize)> {
        let len = self.words.get(off).copied().unwrap_or(0) as usize;
        let cap = self.words.get(off + 1).copied().unwrap_or(0) as usize;
        let off = if len < cap {
            off
        } else {
            let grown = self.alloc((cap * 2).max(2))?;
            self.words.copy_within(off + 2..off + 2 + len, grown + 2);
            self.release(off);
            grown
        };
        if let Some(w) = self.words.get_mut(off + 2 + len) {
            *w = slot;
        }
        if let Some(w) = self.words.get_mut(off) {
            *w = (len + 1) as u32;
        }
        Some((off, len + 1))
    }

    /// Removes `slot` from the list at `off` (order not kept); returns the
    /// remaining length.
    fn remove(&mut self, off: usize, slot: u32) -> usize {
        let len = self.words.get(off).copied().unwrap_or(0) as usize;
        let Some(items) = self.words.get_mut(off + 2..off + 2 + len) else {
            return len;
        };
        let Some(p) = items.iter().position(|&s| s == slot) else {
            return len;
        };
        items.swap(p, len - 1);
        if let Some(w) = self.words.get_mut(off) {
            *w = (len - 1) as u32;
        }
        len - 1
    }

    fn bytes(&self) -> usize {
        self.words.capacity() * 4 + self.free.iter().map(|f| f.capacity() * 4).sum::<usize>()
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

/// Incremental LSH index over MinHash sketches.
pub struct TextLshIndex {
    num_bins: usize,
    rows: usize,
    bands: usize,
    /// Bins with r = 1 tables (0 = bands only).
    probe_bins: usize,
    /// Band candidate probability ≥ [`BAND_FLOOR_RECALL`] above this Jaccard.
    band_floor: f64,
    /// Tables `0..bands` are bands, `bands..bands + probe_bins` the r = 1 bins.
    tables: Tables,
    postings: Postings,
    /// Stored minima, `num_bins` per slot.
    mins: Vec<u64>,
    /// Low byte of every stored minimum, `num_bins` per slot: a 1/8-size
    /// copy that rejects most false candidates before the full row is read.
    fingerprints: Vec<u8>,
    meta: Vec<Meta>,
    free_slots: Vec<u32>,
    by_id: HashMap<u64, u32>,
    /// How many stored items have each set size (exact, so the probe
    /// decision uses the sizes actually stored).
    sizes: std::collections::BTreeMap<u32, u32>,
    /// Smallest and largest key of `sizes` (0 when empty), kept so a query
    /// does not walk the tree in the common case.
    smallest: u32,
    largest: u32,
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
/// verification early exit) and for the extreme stored sizes (how deep a
/// query probes).
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

/// Whether a table value is a posting list shared-bin counting skips.
#[inline]
fn is_long(v: Option<u32>) -> bool {
    v.is_some_and(|v| v & (OVERFLOW | LONG) == OVERFLOW | LONG)
}

/// Fewest of `max` r = 1 bins over which an item at Jaccard `j` shares at
/// least 2 bins with probability ≥ 1 − [`PROBE_MISS`] (so that
/// [`probe_threshold`] keeps its guarantee); `max` if none does.
fn probe_bins_needed(max: usize, j: f64) -> usize {
    let j = if j.is_nan() { 0.0 } else { j.clamp(0.0, 1.0) };
    if j <= 0.0 {
        return max;
    }
    let q = 1.0 - j;
    // q^(n−1): P(X = 0) = q^n, P(X = 1) = n·j·q^(n−1).
    let mut q_pow = q;
    for n in 2..=max {
        if q_pow * q + n as f64 * j * q_pow <= PROBE_MISS {
            return n;
        }
        q_pow *= q;
    }
    max
}

impl TextLshIndex {
    /// The default index: bands of two rows for queries whose weakest
    /// admissible match is above the band floor (near-duplicates of stored
    /// size), r = 1 tables on the first `min(64, num_bins)` bins with
    /// shared-bin counting for the rest (pages much longer or shorter than
    /// stored texts); both probed only as deep as the query needs (see the
    /// module documentation). `num_bins` must be even.
    pub fn new(num_bins: usize) -> Result<Self, TextLshError> {
        if !num_bins.is_multiple_of(2) {
            return Err(TextLshError::Params("the bin count must be even"));
        }
        Self::build(num_bins, 2, num_bins / 2, PROBE_BINS.min(num_bins))
    }

    /// Shared-bin counting only (no bands): half the memory and faster
    /// inserts than [`TextLshIndex::new`], every query through the r = 1
    /// tables.
    pub fn bins_only(num_bins: usize) -> Result<Self, TextLshError> {
        Self::build(num_bins, 1, 0, PROBE_BINS.min(num_bins))
    }

    /// Bands only (bands of `rows` minima, `rows` ≥ 2 dividing `num_bins`),
    /// the classic design, kept to compare against: its floor is where
    /// banding still finds an item with probability ≥ 0.99 (J ≈ 0.26 for
    /// r = 2, K = 128); weaker matches (small texts inside long pages) are
    /// mostly missed.
    pub fn banded(num_bins: usize, rows: usize) -> Result<Self, TextLshError> {
        if rows < 2 || num_bins.checked_rem(rows) != Some(0) {
            return Err(TextLshError::Params(
                "bands need 2 or more rows dividing the bin count",
            ));
        }
        Self::build(num_bins, rows, num_bins / rows, 0)
    }

    fn build(
        num_bins: usize,
        rows: usize,
        bands: usize,
        probe_bins: usize,
    ) -> Result<Self, TextLshError> {
        if num_bins == 0 || num_bins > (1 << 20) {
            return Err(TextLshError::Params("bin count must be 1 to 2^20"));
        }
        let band_floor = if bands > 0 {
            (1.0 - (1.0 - BAND_FLOOR_RECALL).powf(1.0 / bands as f64)).powf(1.0 / rows as f64)
        } else {
            0.0
        };
        Ok(TextLshIndex {
            num_bins,
            rows,
            bands,
            probe_bins,
            band_floor,
            tables: Tables::new(bands + probe_bins),
            postings: Postings::default(),
            mins: Vec::new(),
            fingerprints: Vec::new(),
            meta: Vec::new(),
            free_slots: Vec::new(),
            by_id: HashMap::new(),
            sizes: std::collections::BTreeMap::new(),
            smallest: 0,
            largest: 0,
        })
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
            + self.postings.bytes()
            + self.by_id.capacity() * 16
    }

    /// The Jaccard above which banding finds an item with probability
    /// ≥ 0.99 (0 without bands); below it queries count shared bins.
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
        mins.chunks_exact(self.rows.max(1))
            .take(self.bands)
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
                // Grow by doubling into huge-page-advised allocations.
                crate::mem::reserve_huge(&mut self.mins, self.num_bins * 64);
                self.mins.resize(self.mins.len() + self.num_bins, 0);
                crate::mem::reserve_huge(&mut self.fingerprints, self.num_bins * 64);
                self.fingerprints
                    .resize(self.fingerprints.len() + self.num_bins, 0);
                s
            }
        };
        let keys: Vec<u32> = self.table_keys(sketch.mins).collect();
        for (table, &key) in keys.iter().enumerate() {
            if !self.link(table, key, slot) {
                // Posting arena exhausted: undo this item's links.
                for (t, &k) in keys.iter().enumerate().take(table) {
                    self.unlink(t, k, slot);
                }
                self.free_slots.push(slot);
                return Err(TextLshError::Full);
            }
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
        *self.sizes.entry(sketch.set_size).or_insert(0) += 1;
        self.refresh_size_bounds();
        self.by_id.insert(id, slot);
        Ok(())
    }

    /// Adds `slot` under `key` in `table`; `false` when the posting arena
    /// is full (nothing changed).
    fn link(&mut self, table: usize, key: u32, slot: u32) -> bool {
        match self.tables.get(table, key) {
            None => self.tables.insert(table, key, slot),
            Some(v) if v & OVERFLOW == 0 => {
                let Some(off) = self.postings.create(v, slot) else {
                    return false;
                };
                self.tables.insert(table, key, Postings::value(off, 2));
            }
            Some(v) => {
                let Some((off, len)) = self.postings.push(Postings::offset(v), slot) else {
                    return false;
                };
                let next = Postings::value(off, len);
                if next != v {
                    self.tables.insert(table, key, next);
                }
            }
        }
        true
    }

    /// Removes `slot` from `key`'s bucket in `table`.
    fn unlink(&mut self, table: usize, key: u32, slot: u32) {
        match self.tables.get(table, key) {
            Some(v) if v == slot => self.tables.remove(table, key),
            Some(v) if v & OVERFLOW == 0 => {}
            Some(v) => {
                let off = Postings::offset(v);
                match self.postings.remove(off, slot) {
                    0 => {
                        self.postings.release(off);
                        self.tables.remove(table, key);
                    }
                    1 => {
                        let only = self.postings.list(v).first().copied();
                        self.postings.release(off);
                        if let Some(only) = only {
                            self.tables.insert(table, key, only);
                        }
                    }
                    len => {
                        let next = Postings::value(off, len);
                        if next != v {
                            self.tables.insert(table, key, next);
                        }
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
        let size = self
            .meta
            .get_mut(slot as usize)
            .map(|m| std::mem::take(m).set_size);
        if let Some(size) = size {
            if let Some(c) = self.sizes.get_mut(&size) {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    self.sizes.remove(&size);
                }
            }
            self.refresh_size_bounds();
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
        let j_min = self.query_min_jaccard(rule, query.set_size);
        if j_min.is_nan() || j_min > 1.0 {
            // No stored size can satisfy the rule (e.g. thresholds above 1).
            return Ok(());
        }
        if self.probe_bins > 0 && (self.bands == 0 || j_min < self.band_floor) {
            // The count threshold is set for the smallest Jaccard any item
            // may need; items that need more share more bins, so they are
            // found with at least the same probability, and bands are
            // skipped.
            self.count_shared_bins(query.mins, j_min, &mut cands);
        } else {
            let bands = self.bands_needed(j_min);
            self.probe(query.mins, 0, bands, |t| match t {
                Some(v) if v & OVERFLOW == 0 => cands.push(v),
                Some(v) => cands.extend(self.postings.list(v)),
                None => {}
            });
        }
        let slots = cands.finish();
        if slots.is_empty() {
            return Ok(());
        }
        if slots.len() <= DIRECT_VERIFY {
            // Few candidates (the usual case: the true match, if any): load
            // their whole rows at once and verify them directly. The
            // fingerprint pass would add a dependent memory round trip
            // for nothing to reject.
            for &slot in slots {
                if let Some(m) = self.meta.get(slot as usize) {
                    prefetch(m);
                }
                if let Some(row) = self.row(slot) {
                    for b in row.iter().step_by(8) {
                        prefetch(b);
                    }
                }
            }
            for &slot in slots {
                self.verify(query, slot, rule, out);
            }
            sort_hits(out);
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

    fn refresh_size_bounds(&mut self) {
        self.smallest = self.sizes.first_key_value().map_or(0, |(k, _)| *k);
        self.largest = self.sizes.last_key_value().map_or(0, |(k, _)| *k);
    }

    /// Smallest Jaccard any stored item could need to match `rule` against
    /// a query of `q` shingles.
    ///
    /// For one item of size x the floor is [`min_jaccard`]; its "item
    /// contained in the query" term grows with x and its "query contained
    /// in the item" term shrinks, so only two stored sizes decide: the
    /// smallest one that can count as contained (≥ `min_contained_shingles`)
    /// and the largest. Both are exact (a multiset of stored sizes), so a
    /// large page is probed for exactly the weakest match the stored items
    /// allow — no wider.
    fn query_min_jaccard(&self, rule: &TextRule, q: u32) -> f64 {
        if self.sizes.is_empty() {
            return f64::INFINITY;
        }
        let top = u64::from(self.largest);
        let mut j = min_jaccard(rule, q, top, top);
        let smallest = if self.smallest >= rule.min_contained_shingles {
            Some(self.smallest)
        } else {
            self.sizes
                .range(rule.min_contained_shingles..)
                .next()
                .map(|(k, _)| *k)
        };
        if let Some(x) = smallest {
            j = j.min(min_jaccard(rule, q, u64::from(x), u64::from(x)));
        }
        j
    }

    /// Bands a query probes so that an item at Jaccard `j` becomes a
    /// candidate with probability ≥ [`BAND_FLOOR_RECALL`]: the first
    /// `⌈ln(1 − R) / ln(1 − j^r)⌉` bands, all of them at or below the band
    /// floor. Queries whose weakest admissible match is a near-duplicate
    /// (every stored size close to the query's) need a quarter of the bands.
    fn bands_needed(&self, j: f64) -> usize {
        let p = j
            .clamp(0.0, 1.0)
            .powi(i32::try_from(self.rows).unwrap_or(i32::MAX));
        if p >= 1.0 {
            return 1;
        }
        if p <= 0.0 || p.is_nan() {
            return self.bands;
        }
        let n = ((1.0 - BAND_FLOOR_RECALL).ln() / (1.0 - p).ln()).ceil();
        if n.is_finite() && n >= 1.0 {
            (n as usize).min(self.bands)
        } else {
            self.bands
        }
    }

    /// Shared-bin counting: every item sharing at least
    /// [`probe_threshold`]`(probe_bins, j_min)` of the first `probe_bins`
    /// bins with the query becomes a candidate.
    fn count_shared_bins(&self, mins: &[u64], j_min: f64, cands: &mut Candidates) {
        // Only as many bins as the weakest admissible match needs: a page
        // 2× a stored article needs ~40 of the 64, one 10× its size all.
        let need = probe_bins_needed(self.probe_bins, j_min);
        let mut values = [None; PREFETCH_CHUNK];
        let mut n = 0usize;
        let mut kept = 0usize;
        // Skip bins whose posting list is long: the query's minimum there is
        // a common shingle shared by many stored texts. Which bins those are
        // depends on the query's values, not on whether a given item shares
        // the bin, so the count over the remaining bins is still binomial
        // and the threshold is computed for that many bins. A skipped bin is
        // replaced by the next one while bins remain.
        while kept < need && n < self.probe_bins {
            let first = n;
            let want = (need - kept).min(self.probe_bins - n);
            self.probe(mins, self.bands + first, want, |t| {
                if let Some(v) = values.get_mut(n) {
                    *v = t;
                }
                n += 1;
            });
            let fresh = values.get(first..n).unwrap_or_default();
            kept += fresh.iter().filter(|v| !is_long(**v)).count();
            // Start loading the lists to be counted right away.
            for &v in fresh.iter().flatten() {
                if v & OVERFLOW != 0 && !is_long(Some(v)) {
                    self.postings.prefetch(v);
                }
            }
        }
        let looked_up = values.get(..n).unwrap_or_default();
        let mut values_kept = [None; PREFETCH_CHUNK];
        let values = if kept >= need.min(PROBE_MIN_KEPT) {
            for (dst, v) in values_kept.iter_mut().zip(looked_up) {
                if !is_long(*v) {
                    *dst = *v;
                }
            }
            values_kept.get(..n).unwrap_or_default()
        } else {
            // Nearly every bin is common: count them all rather than none.
            kept = n;
            looked_up
        };
        // ≤ probe_bins ≤ 64, so it fits the 8-bit counts below.
        let m = probe_threshold(kept, j_min) as u16;
        PROBE_COUNTS.with(|cell| {
            let Ok(mut guard) = cell.try_borrow_mut() else {
                return;
            };
            let (generation, counts) = &mut *guard;
            if counts.len() < self.meta.len() {
                counts.resize(self.meta.len(), 0);
            }
            *generation = generation.wrapping_add(1);
            if *generation == 0 {
                counts.fill(0);
                *generation = 1;
            }
            let stamp = u16::from(*generation) << 8;
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
                } else {
                    for &slot in self.postings.list(v) {
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
    /// 0.17 / 0.09, where bands lose many. (400 elements keep the test
    /// sketch's naive densification from distorting the estimate.) The
    /// default bin-count index returns what the exhaustive scan returns; a
    /// banded index (r = 2), clearly fewer.
    #[test]
    fn bin_counting_recovers_small_items_in_large_pages() {
        let k = 128;
        let mut with = TextLshIndex::new(k).unwrap();
        let mut without = TextLshIndex::banded(k, 2).unwrap();
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
                "ratio {ratio}: bin counting {found_with} vs exhaustive {found_ex}"
            );
            assert!(
                found_without + 10 < found_with,
                "ratio {ratio}: bands {found_without} vs bin counting {found_with}"
            );
        }
    }

    /// The weakest admissible Jaccard decides how far a query probes: a
    /// same-size near-duplicate needs a few bins (bands), a page ten times
    /// a stored text all 64.
    #[test]
    fn probe_depth_follows_query_size() {
        let mut idx = TextLshIndex::new(128).unwrap();
        let mut banded = TextLshIndex::banded(128, 2).unwrap();
        let s = sketch(&doc(1, 100), 128);
        idx.insert(1, sk(&s)).unwrap();
        banded.insert(1, sk(&s)).unwrap();
        let rule = TextRule::default();
        let same = idx.query_min_jaccard(&rule, 100);
        let page = idx.query_min_jaccard(&rule, 1000);
        assert!(same > 0.45 && same < 0.55, "{same}");
        assert!(page < 0.08, "{page}");
        assert!(probe_bins_needed(64, same) <= 12);
        assert_eq!(probe_bins_needed(64, page), 64);
        assert!(banded.bands_needed(same) <= 20);
        assert_eq!(banded.bands_needed(page), 64);
        assert!(
            (banded.band_floor() - 0.263).abs() < 0.01,
            "{}",
            banded.band_floor()
        );
        assert_eq!(TextLshIndex::bins_only(128).unwrap().band_floor(), 0.0);
        // The default index answers the same-size query with bands and the
        // page by counting bins.
        assert!(same >= idx.band_floor() && page < idx.band_floor());
    }

    /// `query_min_jaccard` equals the minimum of `min_jaccard` over every
    /// stored item, for assorted size mixes (with removals), rules and
    /// query sizes.
    #[test]
    fn query_min_jaccard_matches_scan_over_items() {
        let rules = [
            TextRule::default(),
            TextRule {
                jaccard: 0.8,
                containment: 0.9,
                min_contained_shingles: 50,
            },
            TextRule {
                jaccard: 0.5,
                containment: 2.0,
                min_contained_shingles: u32::MAX,
            },
        ];
        let mut rng = 0x1234_5678_u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..200u64 {
            let mut idx = TextLshIndex::new(16).unwrap();
            for i in 0..(1 + round % 7) {
                let size = 1 + (next() % 5000) as u32;
                let mins: Vec<u64> = (0..16).map(|b| next() ^ b).collect();
                idx.insert(
                    i,
                    MinHashSketch {
                        mins: &mins,
                        set_size: size,
                    },
                )
                .unwrap();
            }
            if round % 3 == 0 {
                idx.remove(0);
            }
            for rule in &rules {
                for q in [1u32, 9, 10, 37, 100, 1000, 20_000] {
                    let mut scan = f64::INFINITY;
                    for m in idx.meta.iter().filter(|m| m.set_size > 0) {
                        let x = u64::from(m.set_size);
                        scan = scan.min(min_jaccard(rule, q, x, x));
                    }
                    let fast = idx.query_min_jaccard(rule, q);
                    assert!(
                        fast == scan || (fast - scan).abs() < 1e-12,
                        "round {round} q {q}: {fast} vs {scan}"
                    );
                }
            }
        }
    }

    /// The band and probe-bin counts are the smallest that keep the miss
    /// probability at the weakest admissible Jaccard within 1 %.
    #[test]
    fn probe_counts_are_minimal_for_the_recall_target() {
        let idx = TextLshIndex::banded(128, 2).unwrap();
        assert_eq!(idx.bands_needed(idx.band_floor()), 64);
        assert_eq!(idx.bands_needed(0.1), 64);
        assert_eq!(idx.bands_needed(1.0), 1);
        for j in [0.3, 0.4, 0.489, 0.5, 0.54, 0.7, 0.9] {
            let n = idx.bands_needed(j);
            let miss = |n: usize| (1.0 - j * j).powi(n as i32);
            assert!(miss(n) <= 0.01, "j {j}: {n} bands miss {}", miss(n));
            assert!(n == 1 || miss(n - 1) > 0.01, "j {j}: {n} not minimal");
        }
        // Same-size near-duplicates (weakest admissible J ≈ 0.49) need 17.
        assert_eq!(idx.bands_needed(0.489), 17);
        let below_two = |n: usize, j: f64| {
            (1.0 - j).powi(n as i32) + n as f64 * j * (1.0 - j).powi(n as i32 - 1)
        };
        for j in [0.12, 0.15, 0.2, 0.25, 0.3, 0.5] {
            let n = probe_bins_needed(64, j);
            assert!(below_two(n, j) <= PROBE_MISS, "j {j}: {n} bins");
            assert!(
                n == 2 || below_two(n - 1, j) > PROBE_MISS,
                "j {j}: {n} not minimal"
            );
            let m = probe_threshold(n, j);
            assert!(m >= 2);
        }
        // Too weak for 64 bins: all of them.
        assert_eq!(probe_bins_needed(64, 0.05), 64);
        assert_eq!(probe_bins_needed(64, 0.0), 64);
        assert_eq!(probe_bins_needed(64, f64::NAN), 64);
    }

    /// Near-duplicates at about the weakest Jaccard the rule admits are
    /// still found with the reduced band count (≥ 0.99 expected; ≥ 0.96
    /// asserted over 300 queries), and every answer is in the exhaustive
    /// one.
    #[test]
    fn shallow_probes_keep_recall_for_near_duplicates() {
        let k = 128;
        let mut idx = TextLshIndex::bins_only(k).unwrap();
        let mut banded = TextLshIndex::banded(k, 2).unwrap();
        for d in 0..3000u64 {
            let s = sketch(&doc(d, 200), k);
            idx.insert(d, sk(&s)).unwrap();
            banded.insert(d, sk(&s)).unwrap();
        }
        let rule = TextRule::default();
        let (mut found, mut found_banded, mut found_ex) = (0, 0, 0);
        for t in 0..300u64 {
            let target = (t * 7919) % 3000;
            // Replace 55 of 200 elements: Jaccard 145/255 ≈ 0.57.
            let mut q = doc(target, 145);
            q.extend((0..55).map(|i| 7_000_000_000 + t * 1000 + i));
            let qs = sketch(&q, k);
            let j_min = idx.query_min_jaccard(&rule, qs.1);
            assert!(probe_bins_needed(64, j_min) < 16);
            assert!(banded.bands_needed(j_min) < 32);
            let hits = idx.query(sk(&qs), &rule).unwrap();
            let hits_banded = banded.query(sk(&qs), &rule).unwrap();
            let ex = idx.query_exhaustive(sk(&qs), &rule).unwrap();
            for h in hits.iter().chain(&hits_banded) {
                assert!(ex.contains(h), "{h:?} not in {ex:?}");
            }
            found += usize::from(hits.iter().any(|h| h.0 == target));
            found_banded += usize::from(hits_banded.iter().any(|h| h.0 == target));
            found_ex += usize::from(ex.iter().any(|h| h.0 == target));
        }
        assert!(found_ex >= 200, "exhaustive {found_ex}");
        assert!(
            found * 100 >= found_ex * 96,
            "bins {found} vs exhaustive {found_ex}"
        );
        assert!(
            found_banded * 100 >= found_ex * 96,
            "bands {found_banded} vs exhaustive {found_ex}"
        );
    }

    /// Posting lists over [`PROBE_LIST_CAP`] carry the `LONG` flag in the
    /// table, lose it when they shrink, go back to a plain slot at one
    /// item, and their arena blocks are reused.
    #[test]
    fn posting_lists_track_length_and_reuse_blocks() {
        let k = 128;
        let mut idx = TextLshIndex::new(k).unwrap();
        let n = PROBE_LIST_CAP as u64 + 10;
        let mut sketches = Vec::new();
        for d in 0..n {
            sketches.push(sketch(&doc(d + 1, 300), k));
        }
        // Force a shared r = 1 key: give every item the same first minimum.
        for s in &mut sketches {
            s.0[0] = 42;
        }
        for (d, s) in sketches.iter().enumerate() {
            idx.insert(d as u64, sk(s)).unwrap();
        }
        let table = idx.bands; // the r = 1 table of bin 0
        let key = band_key(&[42]);
        let v = idx.tables.get(table, key).unwrap();
        assert_eq!(v & (OVERFLOW | LONG), OVERFLOW | LONG);
        assert_eq!(idx.postings.list(v).len(), n as usize);
        for d in 0..(n - PROBE_LIST_CAP as u64) {
            assert!(idx.remove(d));
        }
        let v = idx.tables.get(table, key).unwrap();
        assert_eq!(v & (OVERFLOW | LONG), OVERFLOW, "flag cleared at the cap");
        assert_eq!(idx.postings.list(v).len(), PROBE_LIST_CAP);
        for d in (n - PROBE_LIST_CAP as u64)..(n - 1) {
            assert!(idx.remove(d));
        }
        // One item left: a plain slot again, and no live list.
        let v = idx.tables.get(table, key).unwrap();
        assert_eq!(v & OVERFLOW, 0);
        assert_eq!(idx.meta[v as usize].id, n - 1);
        let words = idx.postings.words.len();
        // Re-inserting reuses freed blocks instead of growing the arena.
        for (d, s) in sketches.iter().enumerate().take(n as usize - 1) {
            idx.insert(d as u64, sk(s)).unwrap();
        }
        assert!(
            idx.postings.words.len() <= words,
            "arena grew: {words} → {}",
            idx.postings.words.len()
        );
        // And the index still answers like the exhaustive scan.
        for s in sketches.iter().step_by(37) {
            assert_eq!(
                idx.query(sk(s), &TextRule::default()).unwrap(),
                idx.query_exhaustive(sk(s), &TextRule::default()).unwrap()
            );
        }
    }

    #[test]
    fn min_jaccard_is_a_sound_floor() {
        let rule = TextRule::default();
        let k = 128usize;
        for q in [1u32, 5, 10, 50, 98, 300, 1000, 5000] {
            for x in [1u32, 9, 10, 40, 98, 300, 2000, 70_000] {
                let floor = min_jaccard(&rule, q, u64::from(x), u64::from(x));
                // A range of sizes has a floor no higher than any member's.
                let range_floor = min_jaccard(&rule, q, u64::from(x / 2), u64::from(x) * 2);
                assert!(range_floor <= floor + 1e-12, "q {q} x {x}");
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
        assert_eq!(idx.postings.live, 0);
        assert!(idx.sizes.is_empty());
        assert_eq!((idx.smallest, idx.largest), (0, 0));
    }

    #[test]
    fn churn_keeps_lsh_a_subset_of_exhaustive() {
        let k = 128;
        for mut idx in [
            TextLshIndex::new(k).unwrap(),
            TextLshIndex::bins_only(k).unwrap(),
            TextLshIndex::banded(k, 2).unwrap(),
        ] {
            churn(&mut idx, k);
        }
    }

    fn churn(idx: &mut TextLshIndex, k: usize) {
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
        assert_eq!(idx.postings.live, 0);
        assert!(idx.sizes.is_empty());
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
        assert!(TextLshIndex::banded(128, 3).is_err());
        assert!(TextLshIndex::banded(128, 1).is_err());
        assert!(TextLshIndex::banded(128, 2).is_ok());
        assert!(TextLshIndex::new(0).is_err());
        assert!(TextLshIndex::new(127).is_err());
        assert!(TextLshIndex::bins_only(127).is_ok());
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
