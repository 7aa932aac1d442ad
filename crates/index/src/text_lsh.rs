//! Containment-capable LSH index over MinHash sketches of text.
//!
//! Stored items and queries are plain [`MinHashSketch`]es: K bin minima plus
//! the size of the shingle set (this crate does not know the signals crate;
//! `echotrace_signals::text::TextSignature` converts trivially).
//!
//! Design: **low-threshold banding + exact verification**.
//! * The K minima are cut into bands of `r` rows (default r = 2, so 64
//!   bands for K = 128). A band's rows are mixed into a 32-bit key; an item
//!   is a candidate when any band key equals the query's. With r = 2 the
//!   candidate probability `1 − (1 − J²)^(K/r)` is ≥ 0.93 at Jaccard 0.2
//!   and ≥ 0.998 at 0.3. That low floor is what makes *containment*
//!   queries work: a 300-shingle article fully contained in a 900-shingle
//!   page has Jaccard only ≈ 0.33, which a Jaccard-0.5 LSH (datasketch's
//!   `MinHashLSH(threshold=0.5)`) usually misses. Unrelated texts share
//!   almost no shingles (J ≈ 0), so the low floor costs few false
//!   candidates.
//! * Every candidate is **verified** against its stored sketch: Jaccard is
//!   the fraction of equal bins and containment of x in y is
//!   `J·(|x|+|y|)/((1+J)·|x|)`, the same estimates as `compare_text`. Only
//!   candidates that satisfy the [`TextRule`] are returned, with their
//!   scores — identical to applying the rule to every stored sketch
//!   ([`TextLshIndex::query_exhaustive`]), except for the LSH miss
//!   probability above.
//! * Buckets are one flat open-addressing table per band (8-byte entries
//!   `key → slot`, or → an overflow list when several items share a key;
//!   load ≤ 1/2), so a lookup costs one cache miss and a stored item about
//!   K/r × 16 bytes of tables plus its K minima. Insert and remove are
//!   incremental; inserting an existing id replaces it.
//!
//! Size partitioning in the style of LSH Ensemble was considered; with
//! r = 2 it is not needed for the size ratios in our workloads (up to ~5×
//! at containment 0.7), and one banding keeps inserts cheap.
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

/// One band's buckets: a flat open-addressing table (linear probing,
/// backward-shift deletion) of `key << 32 | value` words, so a lookup
/// touches one cache line instead of hashbrown's control bytes + bucket.
#[derive(Default)]
struct BandTable {
    slots: Vec<u64>,
    len: usize,
}

const EMPTY: u64 = u64::MAX;

impl BandTable {
    #[inline]
    fn home(&self, key: u32) -> usize {
        // Keys are already mixed; spread them over the table size.
        let mask = self.slots.len().wrapping_sub(1);
        (u64::from(key).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & mask
    }

    #[inline]
    fn get(&self, key: u32) -> Option<u32> {
        let home = self.home(key);
        self.get_from(key, home, self.slots.get(home).copied().unwrap_or(EMPTY))
    }

    /// Lookup whose first probe (`first` = slot `home`) was already loaded.
    /// Queries load the home slots of all bands first, with no branch on
    /// the values, so the cache misses overlap instead of serialising.
    #[inline]
    fn get_from(&self, key: u32, home: usize, first: u64) -> Option<u32> {
        if first == EMPTY || self.slots.is_empty() {
            return None;
        }
        if (first >> 32) as u32 == key {
            return Some(first as u32);
        }
        let mask = self.slots.len() - 1;
        let mut i = (home + 1) & mask;
        loop {
            let e = *self.slots.get(i)?;
            if e == EMPTY {
                return None;
            }
            if (e >> 32) as u32 == key {
                return Some(e as u32);
            }
            i = (i + 1) & mask;
        }
    }

    fn insert(&mut self, key: u32, value: u32) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        let entry = u64::from(key) << 32 | u64::from(value);
        while let Some(e) = self.slots.get_mut(i) {
            if *e == EMPTY {
                *e = entry;
                self.len += 1;
                return;
            }
            if (*e >> 32) as u32 == key {
                *e = entry;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn remove(&mut self, key: u32) {
        if self.slots.is_empty() {
            return;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let Some(&e) = self.slots.get(i) else { return };
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
            let Some(&e) = self.slots.get(j) else { return };
            if e == EMPTY {
                break;
            }
            let home = self.home((e >> 32) as u32);
            // Move e into the hole if its home is not cyclically in (hole, j].
            let dist_home = j.wrapping_sub(home) & mask;
            let dist_hole = j.wrapping_sub(hole) & mask;
            if dist_home >= dist_hole {
                if let Some(h) = self.slots.get_mut(hole) {
                    *h = e;
                }
                hole = j;
            }
            j = (j + 1) & mask;
        }
        if let Some(h) = self.slots.get_mut(hole) {
            *h = EMPTY;
        }
        self.len -= 1;
    }

    fn grow(&mut self) {
        let new_cap = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; new_cap]);
        self.len = 0;
        for e in old {
            if e != EMPTY {
                self.insert((e >> 32) as u32, e as u32);
            }
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

type BandMap = BandTable;

const OVERFLOW: u32 = 1 << 31;

struct Stored {
    id: u64,
    set_size: u32,
    mins: Box<[u64]>,
}

/// Incremental LSH index over MinHash sketches.
pub struct TextLshIndex {
    num_bins: usize,
    rows: usize,
    bands: Vec<BandMap>,
    overflow: Vec<Vec<u32>>,
    free_overflow: Vec<u32>,
    slots: Vec<Option<Stored>>,
    free_slots: Vec<u32>,
    by_id: HashMap<u64, u32>,
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
    let j = if k == 0 || k != item.mins.len() || query.set_size == 0 || item.set_size == 0 {
        0.0
    } else {
        let eq = query
            .mins
            .iter()
            .zip(item.mins)
            .filter(|(a, b)| a == b)
            .count();
        eq as f64 / k as f64
    };
    TextScores {
        jaccard: j,
        containment_query_in_item: containment(j, query.set_size, item.set_size),
        containment_item_in_query: containment(j, item.set_size, query.set_size),
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

impl TextLshIndex {
    /// Index for sketches of `num_bins` minima, bands of two rows.
    pub fn new(num_bins: usize) -> Result<Self, TextLshError> {
        Self::with_rows(num_bins, 2)
    }

    /// Index with `rows` minima per band (`rows` must divide `num_bins`).
    pub fn with_rows(num_bins: usize, rows: usize) -> Result<Self, TextLshError> {
        if num_bins == 0 || num_bins.checked_rem(rows) != Some(0) {
            return Err(TextLshError::Params(
                "rows must divide a non-zero bin count",
            ));
        }
        Ok(TextLshIndex {
            num_bins,
            rows,
            bands: (0..num_bins / rows).map(|_| BandMap::default()).collect(),
            overflow: Vec::new(),
            free_overflow: Vec::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_id: HashMap::new(),
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

    fn check(&self, s: &MinHashSketch<'_>) -> Result<(), TextLshError> {
        if s.mins.len() != self.num_bins {
            return Err(TextLshError::WrongLength {
                got: s.mins.len(),
                expected: self.num_bins,
            });
        }
        Ok(())
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
                let s = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|s| *s < OVERFLOW)
                    .ok_or(TextLshError::Full)?;
                self.slots.push(None);
                s
            }
        };
        for (band, rows) in self
            .bands
            .iter_mut()
            .zip(sketch.mins.chunks_exact(self.rows))
        {
            let key = band_key(rows);
            match band.get(key) {
                None => {
                    band.insert(key, slot);
                }
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
                    band.insert(key, idx | OVERFLOW);
                }
                Some(v) => {
                    if let Some(l) = self.overflow.get_mut((v & !OVERFLOW) as usize) {
                        l.push(slot);
                    }
                }
            }
        }
        if let Some(s) = self.slots.get_mut(slot as usize) {
            *s = Some(Stored {
                id,
                set_size: sketch.set_size,
                mins: sketch.mins.into(),
            });
        }
        self.by_id.insert(id, slot);
        Ok(())
    }

    /// Removes `id`; returns whether it was present.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(slot) = self.by_id.remove(&id) else {
            return false;
        };
        let Some(stored) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return false;
        };
        for (band, rows) in self
            .bands
            .iter_mut()
            .zip(stored.mins.chunks_exact(self.rows))
        {
            let key = band_key(rows);
            match band.get(key) {
                Some(v) if v == slot => band.remove(key),
                Some(v) if v & OVERFLOW == 0 => {}
                Some(v) => {
                    let idx = v & !OVERFLOW;
                    if let Some(list) = self.overflow.get_mut(idx as usize) {
                        list.retain(|&s| s != slot);
                        match list.as_slice() {
                            [] => {
                                band.remove(key);
                                self.free_overflow.push(idx);
                            }
                            [only] => {
                                band.insert(key, *only);
                                list.clear();
                                self.free_overflow.push(idx);
                            }
                            _ => {}
                        }
                    }
                }
                None => {}
            }
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
        self.check(&query)?;
        if query.set_size == 0 {
            return Ok(Vec::new());
        }
        let probes: Vec<(u32, usize, u64)> = self
            .bands
            .iter()
            .zip(query.mins.chunks_exact(self.rows))
            .map(|(band, rows)| {
                let key = band_key(rows);
                let home = band.home(key);
                (key, home, band.slots.get(home).copied().unwrap_or(EMPTY))
            })
            .collect();
        let mut candidates: Vec<u32> = Vec::new();
        for (band, &(key, home, first)) in self.bands.iter().zip(&probes) {
            match band.get_from(key, home, first) {
                None => {}
                Some(v) if v & OVERFLOW == 0 => candidates.push(v),
                Some(v) => {
                    if let Some(l) = self.overflow.get((v & !OVERFLOW) as usize) {
                        candidates.extend_from_slice(l);
                    }
                }
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        let mut out = Vec::new();
        for slot in candidates {
            if let Some(Some(item)) = self.slots.get(slot as usize) {
                self.verify(query, item, rule, &mut out);
            }
        }
        sort_hits(&mut out);
        Ok(out)
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
        for item in self.slots.iter().flatten() {
            self.verify(query, item, rule, &mut out);
        }
        sort_hits(&mut out);
        Ok(out)
    }

    fn verify(
        &self,
        query: MinHashSketch<'_>,
        item: &Stored,
        rule: &TextRule,
        out: &mut Vec<(u64, TextScores)>,
    ) {
        let sketch = MinHashSketch {
            mins: &item.mins,
            set_size: item.set_size,
        };
        let s = sketch_scores(query, sketch);
        if satisfies(&s, rule, query.set_size, item.set_size) {
            out.push((item.id, s));
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
            let x = e.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (e >> 17);
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

    #[test]
    fn finds_contained_item_and_matches_exhaustive() {
        let k = 128;
        let mut idx = TextLshIndex::new(k).unwrap();
        let mut stored = Vec::new();
        for doc in 0..500u64 {
            let elems: Vec<u64> = (0..300).map(|i| doc * 1_000_000 + i).collect();
            let s = sketch(&elems, k);
            idx.insert(doc, sk(&s)).unwrap();
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
        assert!(idx.bands.iter().all(|b| b.is_empty()));
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
    }
}

#[cfg(test)]
mod band_table_tests {
    use super::BandTable;
    use std::collections::HashMap;

    #[test]
    fn behaves_like_a_hashmap_under_churn() {
        let mut t = BandTable::default();
        let mut m: HashMap<u32, u32> = HashMap::new();
        let mut x = 0x1234_5678u64;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Small key space so inserts, overwrites and removes collide.
            let key = ((x % 3000) as u32).wrapping_mul(0x0101_0101);
            if x >> 60 < 6 {
                t.insert(key, step);
                m.insert(key, step);
            } else {
                t.remove(key);
                m.remove(&key);
            }
            if step % 997 == 0 {
                for k in 0..3000u32 {
                    let k = k.wrapping_mul(0x0101_0101);
                    assert_eq!(t.get(k), m.get(&k).copied());
                }
                assert_eq!(t.len, m.len());
            }
        }
    }
}
