//! [`MihIndex`]: exact multi-index hashing (Norouzi, Punjani & Fleet, "Fast
//! Exact Search in Hamming Space with Multi-Index Hashing", TPAMI 2014).
//!
//! # Layout
//! The 256 bits are cut into `m` contiguous substrings ("slots") of 8–32
//! bits. By default `m = ceil(256 / b)` clamped to `11..=32`, where
//! `b = ceil(log2 N)` (at most 24) is the number of bits a slot table
//! indexes, so slots are as wide as the tables can use and a bucket holds
//! about one code: 16-bit slots near 64K codes, ~20-bit at 1M, ~23-bit
//! (m = 11) at 10M. Each slot has a table: a bucket directory (key →
//! postings range, about one byte a bucket; [`crate::dir`]) and `postings`
//! (one `u32` internal position per code, sorted within a bucket). Internal
//! positions index `codes`/`ids`, which are kept sorted by id so that an id
//! is found by binary search with no extra map. Memory ≈
//! `N × (32 + 8 + 4m) + 1.07 Σ 2^t` bytes (≈ 1.0 GB at 10M, m = 11). With
//! plain `u32` offsets (4 bytes a bucket) 11 slots cost 448 MiB of offsets
//! at 10M, so the layout stopped at 12 slots of 21–22 bits with ~5 codes a
//! bucket; 11 wider slots verify ~3× fewer candidates and search ~1.6×
//! faster in the same memory (docs/BENCHMARKS.md).
//!
//! # Search
//! For radius `r = m·q + a` (`0 ≤ a < m`) the generalised pigeonhole bound
//! says any code within `r` has a slot `i ≤ a` within `q`, or a slot `i > a`
//! within `q − 1` (otherwise its distance is at least
//! `(a+1)(q+1) + (m−a−1)q = r + 1`). Wider slots come first so they take the
//! larger radius. The query probes every key within the slot radius
//! (enumerated with Gosper's hack), collects the candidate positions of the
//! buckets it hits and verifies them with the full 256-bit distance,
//! prefetching codes ahead. Candidates are not deduplicated before
//! verification: a code shares a bucket with the query in more than one slot
//! only when it is near the query, so repeats are a handful of hits, removed
//! at the end, while a visited set cost two random accesses per candidate
//! (dropping it made 10M-code searches 25 % faster; docs/BENCHMARKS.md).
//! When the planner predicts probing would touch more memory than a scan
//! (large radius, tiny index) it scans linearly instead; either way the
//! result is exact.
//!
//! # Updates
//! Inserts go to a small [`FlatIndex`] write buffer ("delta"); removals of
//! indexed codes set a tombstone bit. When the delta reaches
//! [`MihParams::merge_at`] (the threshold, growing with the CSR up to four
//! times it) a background thread freezes it, builds a
//! new CSR from the live base codes plus the frozen delta, and swaps it in
//! under a short write lock (an `Arc` pointer swap). While it builds,
//! searches read the old CSR + frozen delta + new delta, and removals that
//! hit the old data are both tombstoned there and queued to be re-applied to
//! the new CSR at swap time, so search stays exact throughout. Peak memory
//! during a merge is about twice the index.
//!
//! Re-inserting an id replaces its code: the old code is tombstoned (or
//! replaced in the delta) and the new one goes to the delta.

use std::sync::{Arc, Condvar, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::dir::SlotDir;
use crate::flat::FlatIndex;
use crate::kernel::{dist, has_popcnt, scan_multi, Kernel};
use crate::{ACode, Code256, Hit, IndexError};

/// Tuning knobs for [`MihIndex`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MihParams {
    /// Number of substrings `m` (8..=32). `None` chooses from the number of
    /// codes at every (re)build.
    pub substrings: Option<u32>,
    /// Merge the write buffer into the CSR once it holds this many codes,
    /// or an eighth of the CSR if that is more, up to
    /// [`MERGE_GROWTH_CAP`] times this (see [`MihParams::merge_at`]).
    pub merge_threshold: usize,
    /// Run merges on a background thread (`true`) or inline in the insert
    /// that crosses the threshold (`false`).
    pub background_merge: bool,
    /// Let the planner fall back to a linear scan when it predicts probing
    /// would be slower. Results are identical; disable only to exercise the
    /// probe path in tests.
    pub linear_fallback: bool,
}

impl Default for MihParams {
    fn default() -> Self {
        MihParams {
            substrings: None,
            merge_threshold: 16 * 1024,
            background_merge: true,
            linear_fallback: true,
        }
    }
}

/// The write buffer grows with the CSR up to this multiple of
/// [`MihParams::merge_threshold`]: searches scan the buffer linearly, so it
/// stays small enough to scan in a fraction of a millisecond.
pub const MERGE_GROWTH_CAP: usize = 4;

impl MihParams {
    /// The write-buffer size that starts a merge when the CSR holds `base`
    /// codes: a merge rebuilds the whole CSR, so with a fixed threshold the
    /// rebuild work per insert grows with the index (at 1M codes, 61
    /// rebuilds of ~0.5M codes on average). Growing the threshold with the
    /// CSR (an eighth of it) keeps that work per insert bounded, while the
    /// cap bounds the linear scan of the buffer that every search pays.
    pub fn merge_at(&self, base: usize) -> usize {
        let cap = self.merge_threshold.saturating_mul(MERGE_GROWTH_CAP);
        (base / 8).clamp(self.merge_threshold, cap.max(self.merge_threshold))
    }

    fn validate(&self) -> Result<(), IndexError> {
        if let Some(m) = self.substrings {
            if !(8..=32).contains(&m) {
                return Err(IndexError::InvalidParams(format!(
                    "substrings must be in 8..=32, got {m}"
                )));
            }
        }
        if self.merge_threshold == 0 {
            return Err(IndexError::InvalidParams(
                "merge_threshold must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Number of substrings chosen automatically for `n` codes: slots as wide
/// as the tables index ([`table_bits_for`]), so buckets hold about one code.
pub fn auto_substrings(n: usize) -> u32 {
    256u32.div_ceil(u32::from(table_bits_for(n))).clamp(11, 32)
}

/// Slot widths: `m` contiguous slots, the wider ones first.
pub(crate) fn slot_widths(m: u32) -> Vec<u8> {
    let m = m.clamp(8, 32);
    let base = 256 / m;
    let extra = 256 % m;
    (0..m)
        .map(|i| (base + u32::from(i < extra)) as u8)
        .collect()
}

/// How many bits of a slot to index for `n` codes: about `log2 n`, so a
/// bucket holds O(1) codes and a table never exceeds `2^24` offsets. Indexing
/// only the low `t <= w` bits of a slot keeps the pigeonhole bound valid (the
/// distance on a subset of bits never exceeds the distance on the slot), so
/// small indexes get small tables and results stay exact.
pub(crate) fn table_bits_for(n: usize) -> u8 {
    let bits = usize::BITS - n.max(1).saturating_sub(1).leading_zeros();
    bits.clamp(4, 24) as u8
}

/// Bits `[start, start + width)` of a code (bit `j` is bit `j % 64` of word
/// `j / 64`). `width <= 32`, `start + width <= 256`.
#[inline(always)]
pub(crate) fn substring(code: &Code256, start: u32, width: u32) -> u32 {
    let word = (start / 64) as usize;
    let bit = start % 64;
    let lo = code[word & 3] >> bit;
    let v = if bit + width > 64 {
        lo | (code[(word + 1) & 3] << (64 - bit))
    } else {
        lo
    };
    (v & ((1u64 << width) - 1)) as u32
}

/// Number of keys within `r` of a `w`-bit key.
fn ball_size(w: u32, r: u32) -> u64 {
    let mut total = 0u64;
    let mut c = 1u64; // C(w, k)
    for k in 0..=r.min(w) {
        total += c;
        c = c * u64::from(w - k) / u64::from(k + 1);
    }
    total
}

/// Calls `f(mask)` for every `w`-bit mask with at most `r` bits set.
#[inline(always)]
fn for_each_mask<F: FnMut(u32)>(w: u32, r: u32, mut f: F) {
    let limit = 1u64 << w;
    for k in 0..=r.min(w) {
        if k == 0 {
            f(0);
            continue;
        }
        let mut v: u64 = (1u64 << k) - 1;
        while v < limit {
            f(v as u32);
            let t = v | (v - 1);
            v = (t + 1) | (((!t & (t + 1)) - 1) >> (v.trailing_zeros() + 1));
        }
    }
}

/// A growable bitset over positions.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    pub(crate) fn with_len(n: usize) -> Self {
        Bitset {
            words: vec![0; n.div_ceil(64)],
        }
    }
    pub(crate) fn from_words(words: Vec<u64>) -> Self {
        Bitset { words }
    }
    pub(crate) fn words(&self) -> &[u64] {
        &self.words
    }
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }
    #[inline(always)]
    pub(crate) fn set(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1u64 << (i % 64);
        }
    }
}

/// The immutable, merged part of the index.
#[derive(Debug)]
pub(crate) struct Base {
    pub(crate) widths: Vec<u8>,
    pub(crate) starts: Vec<u32>,
    /// Bits of each slot that are actually indexed (the low `table_bits[i]`
    /// of slot `i`); see [`table_bits_for`].
    pub(crate) table_bits: Vec<u8>,
    /// Strictly ascending; position = internal index.
    pub(crate) ids: Vec<u64>,
    pub(crate) codes: Vec<ACode>,
    /// Each slot's bucket directory (key → postings range relative to the
    /// slot's postings), about one byte a bucket ([`crate::dir`]).
    pub(crate) dirs: Vec<SlotDir>,
    /// All slots' postings, concatenated: slot `i` owns `postings[i*n ..
    /// (i+1)*n]`, each an internal position sorted within its bucket.
    pub(crate) postings: Vec<u32>,
}

pub(crate) fn starts_of(widths: &[u8]) -> Vec<u32> {
    let mut s = 0u32;
    widths
        .iter()
        .map(|&w| {
            let here = s;
            s += u32::from(w);
            here
        })
        .collect()
}

impl Base {
    fn empty(params: &MihParams) -> Base {
        let m = params.substrings.unwrap_or_else(|| auto_substrings(0));
        // Infallible: empty input, valid layout.
        Base::build(Vec::new(), Vec::new(), slot_widths(m))
    }

    /// Builds the CSR tables. `ids` must be strictly ascending and the same
    /// length as `codes` (callers guarantee it); `ids.len() <= u32::MAX`.
    pub(crate) fn build(ids: Vec<u64>, codes: Vec<ACode>, widths: Vec<u8>) -> Base {
        let starts = starts_of(&widths);
        let cap = table_bits_for(codes.len());
        let table_bits: Vec<u8> = widths.iter().map(|&w| w.min(cap)).collect();
        let n = codes.len();
        let mut postings: Vec<u32> = crate::mem::huge_zeroed(n * widths.len());
        let mut dirs: Vec<SlotDir> = Vec::with_capacity(widths.len());
        if n == 0 {
            dirs.extend(
                table_bits
                    .iter()
                    .map(|&t| SlotDir::from_counts(&vec![0; 1usize << t])),
            );
        } else {
            // One work item per slot: (start bit, indexed bits, its postings),
            // spread over a few threads; each builds its slot's directory.
            let mut work: Vec<(usize, u32, u32, &mut [u32])> = Vec::with_capacity(widths.len());
            for (i, ((&start, &t), post)) in starts
                .iter()
                .zip(&table_bits)
                .zip(postings.chunks_mut(n))
                .enumerate()
            {
                work.push((i, start, u32::from(t), post));
            }
            let threads = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 4);
            let per = work.len().div_ceil(threads).max(1);
            let codes_ref = &codes;
            let mut built: Vec<(usize, SlotDir)> = std::thread::scope(|scope| {
                let mut handles = Vec::new();
                while !work.is_empty() {
                    let batch: Vec<_> = work.drain(..per.min(work.len())).collect();
                    handles.push(scope.spawn(move || {
                        batch
                            .into_iter()
                            .map(|(i, start, t, post)| (i, build_slot(codes_ref, start, t, post)))
                            .collect::<Vec<_>>()
                    }));
                }
                let mut all = Vec::new();
                for h in handles {
                    // A panic in a builder thread would be a bug; re-raise it.
                    match h.join() {
                        Ok(v) => all.extend(v),
                        Err(p) => std::panic::resume_unwind(p),
                    }
                }
                all
            });
            built.sort_by_key(|(i, _)| *i);
            dirs.extend(built.into_iter().map(|(_, d)| d));
        }
        Base {
            widths,
            starts,
            table_bits,
            ids,
            codes,
            dirs,
            postings,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    #[inline]
    fn find(&self, id: u64) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }
}

/// Counting sort of positions by their `width`-bit key into one slot's
/// `postings` (`codes.len()`); returns the slot's directory.
fn build_slot(codes: &[ACode], start: u32, width: u32, postings: &mut [u32]) -> SlotDir {
    let mut counts: Vec<u32> = crate::mem::huge_zeroed(1usize << width);
    for c in codes {
        let k = substring(&c.0, start, width) as usize;
        if let Some(n) = counts.get_mut(k) {
            *n += 1;
        }
    }
    let dir = SlotDir::from_counts(&counts);
    // The counts become each bucket's next free position.
    let mut at = 0u32;
    for n in counts.iter_mut() {
        let c = *n;
        *n = at;
        at += c;
    }
    for (i, c) in codes.iter().enumerate() {
        let k = substring(&c.0, start, width) as usize;
        if let Some(cur) = counts.get_mut(k) {
            if let Some(p) = postings.get_mut(*cur as usize) {
                *p = i as u32;
            }
            *cur += 1;
        }
    }
    dir
}

/// Mutable state behind the index lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) base: Arc<Base>,
    pub(crate) dead: Bitset,
    pub(crate) dead_count: usize,
    /// The write buffer being merged (searchable, immutable apart from
    /// tombstones).
    pub(crate) frozen: Option<Arc<FlatIndex>>,
    pub(crate) frozen_dead: Bitset,
    pub(crate) frozen_dead_count: usize,
    pub(crate) delta: FlatIndex,
    /// Ids removed from `base`/`frozen` since the running merge froze them.
    pending_removals: Vec<u64>,
    merge_epoch: u64,
}

enum Location {
    Delta,
    Frozen(usize),
    Base(usize),
    Absent,
}

impl State {
    fn new(base: Base) -> State {
        let n = base.len();
        State {
            base: Arc::new(base),
            dead: Bitset::with_len(n),
            dead_count: 0,
            frozen: None,
            frozen_dead: Bitset::default(),
            frozen_dead_count: 0,
            delta: FlatIndex::new(),
            pending_removals: Vec::new(),
            merge_epoch: 0,
        }
    }

    pub(crate) fn from_parts(base: Arc<Base>, dead: Bitset, dead_count: usize) -> State {
        State {
            base,
            dead,
            dead_count,
            frozen: None,
            frozen_dead: Bitset::default(),
            frozen_dead_count: 0,
            delta: FlatIndex::new(),
            pending_removals: Vec::new(),
            merge_epoch: 0,
        }
    }

    fn merging(&self) -> bool {
        self.frozen.is_some()
    }

    fn len(&self) -> usize {
        self.base.len() - self.dead_count
            + self
                .frozen
                .as_ref()
                .map_or(0, |f| f.len() - self.frozen_dead_count)
            + self.delta.len()
    }

    fn locate(&self, id: u64) -> Location {
        if self.delta.contains(id) {
            return Location::Delta;
        }
        if let Some(f) = &self.frozen {
            if let Some(pos) = f.position(id) {
                if !self.frozen_dead.get(pos) {
                    return Location::Frozen(pos);
                }
            }
        }
        if let Some(pos) = self.base.find(id) {
            if !self.dead.get(pos) {
                return Location::Base(pos);
            }
        }
        Location::Absent
    }

    /// Removes `id` wherever it lives; returns whether it was present.
    fn remove(&mut self, id: u64) -> bool {
        match self.locate(id) {
            Location::Delta => self.delta.remove(id),
            Location::Frozen(pos) => {
                self.frozen_dead.set(pos);
                self.frozen_dead_count += 1;
                self.pending_removals.push(id);
                true
            }
            Location::Base(pos) => {
                self.dead.set(pos);
                self.dead_count += 1;
                if self.merging() {
                    self.pending_removals.push(id);
                }
                true
            }
            Location::Absent => false,
        }
    }

    fn get(&self, id: u64) -> Option<Code256> {
        match self.locate(id) {
            Location::Delta => self.delta.get(id),
            Location::Frozen(pos) => self
                .frozen
                .as_ref()
                .and_then(|f| f.codes_raw().get(pos).map(|c| c.0)),
            Location::Base(pos) => self.base.codes.get(pos).map(|c| c.0),
            Location::Absent => None,
        }
    }
}

struct MergeCtl {
    running: bool,
}

struct Shared {
    params: MihParams,
    state: RwLock<State>,
    merge: Mutex<MergeCtl>,
    merge_done: Condvar,
}

/// Exact multi-index-hashing index for 256-bit codes. `Send + Sync`: all
/// methods take `&self`; share it with `Arc`. See the module docs.
pub struct MihIndex {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MihIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MihIndex")
            .field("len", &self.len())
            .field("substrings", &self.substrings())
            .finish()
    }
}

impl Default for MihIndex {
    fn default() -> Self {
        Self::new()
    }
}

/// A merge that has frozen the write buffer but not yet built the new CSR.
/// Obtained from [`MihIndex::start_merge`]; dropping it un-freezes.
pub struct PendingMerge {
    shared: Arc<Shared>,
    epoch: u64,
    base: Arc<Base>,
    dead: Bitset,
    frozen: Arc<FlatIndex>,
    done: bool,
}

/// A built CSR waiting to be swapped in with [`MihIndex::finish_merge`].
pub struct BuiltMerge {
    pending: PendingMerge,
    base: Option<Base>,
}

impl MihIndex {
    /// An empty index with default parameters.
    pub fn new() -> Self {
        // Default params are valid.
        Self::with_params(MihParams::default()).unwrap_or_else(|_| {
            MihIndex::from_state(
                MihParams::default(),
                State::new(Base::empty(&MihParams::default())),
            )
        })
    }

    /// An empty index; `capacity` is accepted for API symmetry with
    /// [`FlatIndex`] (the CSR is sized at merge time).
    pub fn with_capacity(capacity: usize) -> Self {
        let _ = capacity;
        Self::new()
    }

    /// An empty index with the given parameters.
    pub fn with_params(params: MihParams) -> Result<Self, IndexError> {
        params.validate()?;
        let state = State::new(Base::empty(&params));
        Ok(Self::from_state(params, state))
    }

    pub(crate) fn from_state(params: MihParams, state: State) -> Self {
        MihIndex {
            shared: Arc::new(Shared {
                params,
                state: RwLock::new(state),
                merge: Mutex::new(MergeCtl { running: false }),
                merge_done: Condvar::new(),
            }),
        }
    }

    /// Bulk-builds an index straight into the CSR (no write buffer). Later
    /// duplicates of an id replace earlier ones.
    pub fn build<I>(entries: I, params: MihParams) -> Result<Self, IndexError>
    where
        I: IntoIterator<Item = (u64, Code256)>,
    {
        params.validate()?;
        let iter = entries.into_iter();
        let (lo, _) = iter.size_hint();
        let mut ids = crate::mem::huge_with_capacity(lo);
        let mut codes = crate::mem::huge_with_capacity(lo);
        for (id, code) in iter {
            ids.push(id);
            codes.push(ACode(code));
        }
        let (ids, codes) = sort_dedup(ids, codes);
        if ids.len() > u32::MAX as usize {
            return Err(IndexError::Capacity {
                max: u32::MAX as usize,
            });
        }
        let m = params
            .substrings
            .unwrap_or_else(|| auto_substrings(ids.len()));
        let base = Base::build(ids, codes, slot_widths(m));
        Ok(Self::from_state(params, State::new(base)))
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.shared
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.shared
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The parameters this index was created with.
    pub fn params(&self) -> &MihParams {
        &self.shared.params
    }

    /// Number of substrings of the current CSR.
    pub fn substrings(&self) -> usize {
        self.read().base.widths.len()
    }

    /// Number of live codes.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the index holds no live codes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of codes in the write buffer(s) not yet merged into the CSR.
    pub fn unmerged_len(&self) -> usize {
        let s = self.read();
        s.delta.len() + s.frozen.as_ref().map_or(0, |f| f.len())
    }

    /// The code stored under `id`.
    pub fn get(&self, id: u64) -> Option<Code256> {
        self.read().get(id)
    }

    /// Whether `id` is stored.
    pub fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    /// Inserts or replaces `id`. Returns whether the id was already present.
    /// May start a merge (see [`MihParams::merge_threshold`]).
    pub fn insert(&self, id: u64, code: Code256) -> bool {
        let (existed, need_merge) = {
            let mut s = self.write();
            let existed = match s.locate(id) {
                Location::Delta => true,
                Location::Absent => false,
                Location::Frozen(_) | Location::Base(_) => s.remove(id),
            };
            s.delta.insert(id, code);
            (
                existed,
                s.delta.len() >= self.shared.params.merge_at(s.base.len()) && !s.merging(),
            )
        };
        if need_merge {
            self.trigger_merge();
        }
        existed
    }

    /// Removes `id`; returns whether it was present.
    pub fn remove(&self, id: u64) -> bool {
        let (removed, need_merge) = {
            let mut s = self.write();
            let removed = s.remove(id);
            // Compact once a quarter of the CSR is tombstones.
            let heavy = s.dead_count > 1024 && s.dead_count * 4 > s.base.len();
            (removed, heavy && !s.merging())
        };
        if need_merge {
            self.trigger_merge();
        }
        removed
    }

    /// Appends every live code within `radius` (inclusive) of `query` to
    /// `out`, once per id, in no particular order.
    pub fn search(&self, query: &Code256, radius: u32, out: &mut Vec<Hit>) {
        let s = self.read();
        search_state(&s, &self.shared.params, query, radius, out);
    }

    /// Runs [`MihIndex::search`] for each query under one read lock; `out`
    /// is resized to `queries.len()` and `out[i]` holds the hits of
    /// `queries[i]`.
    pub fn search_batch(&self, queries: &[Code256], radius: u32, out: &mut Vec<Vec<Hit>>) {
        out.resize_with(queries.len(), Vec::new);
        let s = self.read();
        for (q, hits) in queries.iter().zip(out.iter_mut()) {
            hits.clear();
            search_state(&s, &self.shared.params, q, radius, hits);
        }
    }

    /// Appends every live code whose minimum distance to any of `needles` is
    /// within `radius`, once per id with that minimum distance.
    pub fn search_multi(&self, needles: &[Code256], radius: u32, out: &mut Vec<Hit>) {
        let start = out.len();
        {
            let s = self.read();
            for n in needles {
                search_state(&s, &self.shared.params, n, radius, out);
            }
        }
        if needles.len() > 1 {
            keep_nearest_per_id(out, start);
        }
    }

    /// Starts a merge on a background thread unless one is running.
    fn trigger_merge(&self) {
        if !self.shared.params.background_merge {
            self.merge_now();
            return;
        }
        {
            let mut ctl = self.shared.merge.lock().unwrap_or_else(|p| p.into_inner());
            if ctl.running {
                return;
            }
            ctl.running = true;
        }
        let index = MihIndex {
            shared: Arc::clone(&self.shared),
        };
        let spawned = std::thread::Builder::new()
            .name("mih-merge".into())
            .spawn(move || loop {
                index.merge_once();
                // Decide whether to go on under the merge lock: an insert
                // that fills the buffer before this check is seen here, and
                // one after it finds `running` false and starts a merge.
                // (Checked before taking the lock, an insert in between
                // found `running` still true and its merge was never run.)
                let mut ctl = index.shared.merge.lock().unwrap_or_else(|p| p.into_inner());
                let again = {
                    let s = index.read();
                    s.delta.len() >= index.shared.params.merge_at(s.base.len())
                };
                if !again {
                    ctl.running = false;
                    index.shared.merge_done.notify_all();
                    break;
                }
            });
        if spawned.is_err() {
            // No thread available: merge inline instead.
            let mut ctl = self.shared.merge.lock().unwrap_or_else(|p| p.into_inner());
            ctl.running = false;
            drop(ctl);
            self.merge_once();
        }
    }

    /// Blocks until no background merge is running.
    pub fn wait_for_merge(&self) {
        let mut ctl = self.shared.merge.lock().unwrap_or_else(|p| p.into_inner());
        while ctl.running {
            ctl = self
                .shared
                .merge_done
                .wait(ctl)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits for any background merge, then merges the write buffer and
    /// compacts tombstones synchronously.
    pub fn merge_now(&self) {
        self.wait_for_merge();
        self.merge_once();
    }

    fn merge_once(&self) {
        if let Some(p) = self.start_merge() {
            let built = p.build();
            self.finish_merge(built);
        }
    }

    /// Freezes the write buffer for a merge; `None` if a merge is already in
    /// progress or there is nothing to merge. Use with [`PendingMerge::build`]
    /// and [`MihIndex::finish_merge`] to run merges on your own thread.
    pub fn start_merge(&self) -> Option<PendingMerge> {
        let mut s = self.write();
        if s.merging() || (s.delta.is_empty() && s.dead_count == 0) {
            return None;
        }
        let kernel = s.delta.kernel();
        let mut fresh = FlatIndex::new();
        // Same kernel as before (it is supported: it was set through here).
        let _ = fresh.set_kernel(kernel);
        let frozen = Arc::new(std::mem::replace(&mut s.delta, fresh));
        s.frozen_dead = Bitset::with_len(frozen.len());
        s.frozen_dead_count = 0;
        s.frozen = Some(Arc::clone(&frozen));
        s.pending_removals.clear();
        s.merge_epoch += 1;
        Some(PendingMerge {
            shared: Arc::clone(&self.shared),
            epoch: s.merge_epoch,
            base: Arc::clone(&s.base),
            dead: s.dead.clone(),
            frozen,
            done: false,
        })
    }

    /// Swaps a built CSR in. Returns `false` (and changes nothing) if `built`
    /// belongs to another index or a stale merge.
    pub fn finish_merge(&self, mut built: BuiltMerge) -> bool {
        if !Arc::ptr_eq(&built.pending.shared, &self.shared) {
            return false;
        }
        let Some(base) = built.base.take() else {
            return false;
        };
        let mut s = self.write();
        if !s.merging() || s.merge_epoch != built.pending.epoch {
            return false;
        }
        let mut dead = Bitset::with_len(base.len());
        let mut dead_count = 0;
        for id in std::mem::take(&mut s.pending_removals) {
            if let Some(pos) = base.find(id) {
                if !dead.get(pos) {
                    dead.set(pos);
                    dead_count += 1;
                }
            }
        }
        s.base = Arc::new(base);
        s.dead = dead;
        s.dead_count = dead_count;
        s.frozen = None;
        s.frozen_dead = Bitset::default();
        s.frozen_dead_count = 0;
        built.pending.done = true;
        true
    }

    /// Writes a snapshot (see the `snapshot` module docs for the format).
    pub fn write_snapshot<W: std::io::Write>(&self, w: W) -> Result<(), IndexError> {
        let s = self.read();
        crate::snapshot::write(&s, w)
    }

    /// Loads a snapshot file with default parameters.
    pub fn load_snapshot<P: AsRef<std::path::Path>>(path: P) -> Result<Self, IndexError> {
        let f = std::fs::File::open(path)?;
        Self::read_snapshot(
            std::io::BufReader::with_capacity(1 << 20, f),
            MihParams::default(),
        )
    }

    /// Loads a snapshot from bytes with default parameters.
    pub fn from_snapshot_bytes(bytes: &[u8]) -> Result<Self, IndexError> {
        Self::read_snapshot(bytes, MihParams::default())
    }

    /// Reads a snapshot from any reader. `params.substrings` is ignored: the
    /// layout is the snapshot's until the next merge.
    pub fn read_snapshot<R: std::io::Read>(r: R, params: MihParams) -> Result<Self, IndexError> {
        params.validate()?;
        let state = crate::snapshot::read(r)?;
        Ok(Self::from_state(params, state))
    }
}

impl PendingMerge {
    /// Builds the new CSR from the live codes at freeze time. This is the
    /// slow part; it holds no lock.
    pub fn build(self) -> BuiltMerge {
        let base = &self.base;
        let mut frozen: Vec<(u64, ACode)> = self
            .frozen
            .ids_raw()
            .iter()
            .copied()
            .zip(self.frozen.codes_raw().iter().copied())
            .collect();
        frozen.sort_unstable_by_key(|e| e.0);
        let live = base.len() - base_dead_count(&self.dead, base.len());
        let total = live + frozen.len();
        let mut ids = crate::mem::huge_with_capacity(total);
        let mut codes = crate::mem::huge_with_capacity(total);
        let mut fi = frozen.into_iter().peekable();
        for (pos, (&id, code)) in base.ids.iter().zip(&base.codes).enumerate() {
            if self.dead.get(pos) {
                continue;
            }
            while let Some(&(fid, fcode)) = fi.peek() {
                if fid < id {
                    ids.push(fid);
                    codes.push(fcode);
                    fi.next();
                } else {
                    break;
                }
            }
            ids.push(id);
            codes.push(*code);
        }
        for (fid, fcode) in fi {
            ids.push(fid);
            codes.push(fcode);
        }
        let m = self
            .shared
            .params
            .substrings
            .unwrap_or_else(|| auto_substrings(ids.len()));
        let new_base = Base::build(ids, codes, slot_widths(m));
        BuiltMerge {
            pending: self,
            base: Some(new_base),
        }
    }
}

fn base_dead_count(dead: &Bitset, n: usize) -> usize {
    let full = n / 64;
    let mut c = 0usize;
    for (i, w) in dead.words().iter().enumerate() {
        let w = if i < full {
            *w
        } else if i == full {
            w & ((1u64 << (n % 64)) - 1)
        } else {
            0
        };
        c += w.count_ones() as usize;
    }
    c
}

impl Drop for PendingMerge {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Abandoned merge: move the frozen buffer's live codes back into the
        // delta so nothing is lost and future merges can run.
        let mut s = self.shared.state.write().unwrap_or_else(|p| p.into_inner());
        if !s.merging() || s.merge_epoch != self.epoch {
            return;
        }
        if let Some(frozen) = s.frozen.take() {
            let dead = std::mem::take(&mut s.frozen_dead);
            for (pos, (id, code)) in frozen.iter().enumerate() {
                if !dead.get(pos) {
                    s.delta.insert(id, code);
                }
            }
        }
        s.frozen_dead_count = 0;
        // Removals of base codes are already tombstoned in place.
        s.pending_removals.clear();
    }
}

/// Sorts parallel id/code vectors by id, keeping the last code of each id.
pub(crate) fn sort_dedup(ids: Vec<u64>, codes: Vec<ACode>) -> (Vec<u64>, Vec<ACode>) {
    if ids.windows(2).all(|w| w[0] < w[1]) {
        return (ids, codes);
    }
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    // Stable sort keeps insertion order among equal ids; keep the last.
    order.sort_by_key(|&i| ids[i as usize]);
    let mut out_ids = Vec::with_capacity(ids.len());
    let mut out_codes = Vec::with_capacity(ids.len());
    for (k, &i) in order.iter().enumerate() {
        let id = ids[i as usize];
        if let Some(&next) = order.get(k + 1) {
            if ids[next as usize] == id {
                continue;
            }
        }
        out_ids.push(id);
        out_codes.push(codes[i as usize]);
    }
    (out_ids, out_codes)
}

/// Per-thread search scratch: the candidate list and the probe stages.
#[derive(Default)]
struct Scratch {
    candidates: Vec<u32>,
    /// `(slot, key)` to look up.
    probes: Vec<(u32, u32)>,
    /// Non-empty buckets: `[start, end)` into the concatenated postings.
    ranges: Vec<(usize, usize)>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

fn search_state(s: &State, params: &MihParams, q: &Code256, radius: u32, out: &mut Vec<Hit>) {
    let dead = (s.dead_count > 0).then_some(&s.dead);
    search_base(&s.base, dead, params, q, radius, out, s.delta.kernel());
    if let Some(f) = &s.frozen {
        let ids = f.ids_raw();
        let dead = &s.frozen_dead;
        f.scan_positions(std::slice::from_ref(q), radius, &mut |pos, d| {
            if !dead.get(pos) {
                if let Some(&id) = ids.get(pos) {
                    out.push(Hit { id, distance: d });
                }
            }
        });
    }
    s.delta.search(q, radius, out);
}

/// Per-slot radii from the generalised pigeonhole bound; `None` = skip slot.
fn slot_radii(m: usize, radius: u32) -> impl Iterator<Item = Option<u32>> {
    let q = radius / m as u32;
    let a = (radius % m as u32) as usize;
    (0..m).map(move |i| if i <= a { Some(q) } else { q.checked_sub(1) })
}

/// Rough planner: should this query probe the tables or scan linearly?
fn probe_is_cheaper(base: &Base, radius: u32) -> bool {
    let n = base.len() as f64;
    let mut random_accesses = 0f64;
    for (&w, r) in base
        .table_bits
        .iter()
        .zip(slot_radii(base.widths.len(), radius))
    {
        if let Some(r) = r {
            let w = u32::from(w);
            let keys = ball_size(w, r) as f64;
            random_accesses += 2.0 * keys + keys * n / (1u64 << w) as f64;
        }
    }
    // A random access costs roughly as much as scanning a few dozen codes.
    random_accesses * 24.0 < n
}

#[allow(clippy::too_many_arguments)]
fn search_base(
    base: &Base,
    dead: Option<&Bitset>,
    params: &MihParams,
    q: &Code256,
    radius: u32,
    out: &mut Vec<Hit>,
    kernel: Kernel,
) {
    if base.len() == 0 {
        return;
    }
    if params.linear_fallback && !probe_is_cheaper(base, radius) {
        scan_multi(
            kernel,
            &base.codes,
            std::slice::from_ref(q),
            radius,
            &mut |pos, d| {
                if !dead.is_some_and(|d| d.get(pos)) {
                    if let Some(&id) = base.ids.get(pos) {
                        out.push(Hit { id, distance: d });
                    }
                }
            },
        );
        return;
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => probe_dispatch(base, dead, q, radius, out, &mut scratch),
        Err(_) => probe_dispatch(base, dead, q, radius, out, &mut Scratch::default()),
    });
}

fn probe_dispatch(
    base: &Base,
    dead: Option<&Bitset>,
    q: &Code256,
    radius: u32,
    out: &mut Vec<Hit>,
    scratch: &mut Scratch,
) {
    #[cfg(target_arch = "x86_64")]
    if has_popcnt() {
        // SAFETY: the CPU supports popcnt (checked).
        unsafe { probe_popcnt(base, dead, q, radius, out, scratch) };
        return;
    }
    probe(base, dead, q, radius, out, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn probe_popcnt(
    base: &Base,
    dead: Option<&Bitset>,
    q: &Code256,
    radius: u32,
    out: &mut Vec<Hit>,
    scratch: &mut Scratch,
) {
    probe(base, dead, q, radius, out, scratch)
}

#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// How far ahead candidate codes are prefetched.
const PREFETCH_DISTANCE: usize = 64;

#[inline(always)]
fn probe(
    base: &Base,
    dead: Option<&Bitset>,
    q: &Code256,
    radius: u32,
    out: &mut Vec<Hit>,
    scratch: &mut Scratch,
) {
    // Four stages, each prefetching the next stage's random accesses a few
    // iterations ahead so cache misses overlap instead of chaining:
    // keys → bucket ranges (directory lines) → candidates (postings) →
    // verify (codes).
    let Scratch {
        candidates,
        probes,
        ranges,
    } = scratch;
    candidates.clear();
    probes.clear();
    ranges.clear();
    let m = base.widths.len();
    for (slot, ((&w, &start), r)) in base
        .table_bits
        .iter()
        .zip(&base.starts)
        .zip(slot_radii(m, radius))
        .enumerate()
    {
        let Some(r) = r else { continue };
        let w = u32::from(w);
        let key = substring(q, start, w);
        for_each_mask(w, r, |mask| probes.push((slot as u32, key ^ mask)));
    }
    let dirs = &base.dirs;
    let n = base.len();
    for (i, &(slot, key)) in probes.iter().enumerate() {
        if let Some(&(s2, k2)) = probes.get(i + PREFETCH_DISTANCE) {
            if let Some(d) = dirs.get(s2 as usize) {
                prefetch(d.line_ptr(k2 as usize));
            }
        }
        if let Some((lo, hi)) = dirs.get(slot as usize).and_then(|d| d.range(key as usize)) {
            if lo < hi {
                let pbase = slot as usize * n;
                ranges.push((pbase + lo as usize, pbase + hi as usize));
            }
        }
    }
    let postings = &base.postings;
    for (i, &(lo, hi)) in ranges.iter().enumerate() {
        if let Some(&(lo2, _)) = ranges.get(i + PREFETCH_DISTANCE) {
            prefetch(postings.as_ptr().wrapping_add(lo2));
        }
        if let Some(bucket) = postings.get(lo..hi) {
            candidates.extend_from_slice(bucket);
        }
    }
    // A code is a candidate once per slot it shares with the query; only
    // codes near the query share more than one, so candidates are verified
    // as they come (no visited set: a random code is a candidate of at most
    // one slot in all but a handful of cases) and the few repeated hits are
    // removed at the end.
    let first_hit = out.len();
    let codes = &base.codes;
    for (j, &c) in candidates.iter().enumerate() {
        if let Some(&ahead) = candidates.get(j + PREFETCH_DISTANCE) {
            prefetch(codes.as_ptr().wrapping_add(ahead as usize));
        }
        let c = c as usize;
        if dead.is_some_and(|d| d.get(c)) {
            continue;
        }
        if let Some(code) = codes.get(c) {
            let d = dist(&code.0, q);
            if d <= radius {
                if let Some(&id) = base.ids.get(c) {
                    out.push(Hit { id, distance: d });
                }
            }
        }
    }
    keep_nearest_per_id(out, first_hit);
}

/// Keeps one hit per id among `out[start..]`, the nearest.
fn keep_nearest_per_id(out: &mut Vec<Hit>, start: usize) {
    let Some(tail) = out.get_mut(start..) else {
        return;
    };
    if tail.len() < 2 {
        return;
    }
    tail.sort_unstable_by_key(|h| (h.id, h.distance));
    let mut keep = start;
    for i in start..out.len() {
        if i == start || out[i].id != out[keep - 1].id {
            out[keep] = out[i];
            keep += 1;
        }
    }
    out.truncate(keep);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_cover_256_bits_wider_first() {
        for m in 8..=32 {
            let w = slot_widths(m);
            assert_eq!(w.len(), m as usize);
            assert_eq!(w.iter().map(|&x| u32::from(x)).sum::<u32>(), 256);
            assert!(w.windows(2).all(|p| p[0] >= p[1]));
        }
        assert_eq!(auto_substrings(10_000_000), 11);
        assert_eq!(auto_substrings(1_000_000), 13);
        assert_eq!(auto_substrings(100_000), 16);
        assert_eq!(auto_substrings(1 << 16), 16);
    }

    #[test]
    fn substring_matches_bit_by_bit() {
        let code: Code256 = [
            0x0123_4567_89ab_cdef,
            0xfedc_ba98_7654_3210,
            0xdead_beef_cafe_f00d,
            0x1357_9bdf_2468_ace0,
        ];
        let bit = |j: u32| (code[(j / 64) as usize] >> (j % 64)) & 1;
        for width in [8u32, 13, 16, 21, 22, 32] {
            for start in (0..=256 - width).step_by(3) {
                let want = (0..width).fold(0u64, |acc, b| acc | (bit(start + b) << b));
                assert_eq!(u64::from(substring(&code, start, width)), want);
            }
        }
    }

    #[test]
    fn mask_enumeration_counts_ball() {
        for (w, r) in [(8, 0), (8, 3), (16, 2), (21, 2), (22, 3), (10, 10)] {
            let mut seen = std::collections::HashSet::new();
            for_each_mask(w, r, |m| {
                assert!(m.count_ones() <= r && u64::from(m) < (1u64 << w));
                assert!(seen.insert(m));
            });
            assert_eq!(seen.len() as u64, ball_size(w, r));
        }
    }

    #[test]
    fn pigeonhole_radii_sum() {
        for m in 8..=32usize {
            for r in 0..=80u32 {
                // Sum of (r_i + 1) over slots must exceed r.
                let s: u32 = slot_radii(m, r).map(|x| x.map_or(0, |v| v + 1)).sum();
                assert_eq!(s, r + 1, "m={m} r={r}");
            }
        }
    }

    #[test]
    fn merge_point_grows_with_the_csr_up_to_the_cap() {
        let p = MihParams::default();
        let t = p.merge_threshold;
        assert_eq!(p.merge_at(0), t);
        assert_eq!(p.merge_at(8 * t), t);
        assert_eq!(p.merge_at(16 * t), 2 * t);
        assert_eq!(p.merge_at(400_000), 50_000);
        assert_eq!(p.merge_at(10_000_000), MERGE_GROWTH_CAP * t);
        let one = MihParams {
            merge_threshold: 1,
            ..MihParams::default()
        };
        assert_eq!(one.merge_at(100), MERGE_GROWTH_CAP);
        let huge = MihParams {
            merge_threshold: usize::MAX,
            ..MihParams::default()
        };
        assert_eq!(huge.merge_at(1 << 20), usize::MAX);
    }
}
