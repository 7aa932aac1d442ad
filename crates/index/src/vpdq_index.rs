//! Video lookup for vPDQ: frame hashes → candidate videos.
//!
//! A vPDQ signal is a bag of per-frame 256-bit PDQ codes with a quality each.
//! This index stores every *distinct* frame code once in a [`MihIndex`]
//! (a "slot"), remembers which videos contain each slot, and answers a query
//! video by range-searching each of its frames and aggregating the hits per
//! video — never by scanning videos.
//!
//! The scoring is python-threatexchange's `VPDQIndex` (and its brute
//! matcher): frames below the quality threshold are dropped, identical codes
//! are deduped, then for each candidate video
//! `query_match_pct` = share of the query's distinct frames with some frame of
//! the video within the distance threshold (inclusive), and
//! `compared_match_pct` = share of the video's distinct frames hit by some
//! query frame. A candidate is returned when both shares meet their
//! thresholds (80 % / 0 % by default). Results are therefore exactly those of
//! comparing the query with every stored video by brute force.

use std::collections::{HashMap, HashSet};

use crate::{Code256, Hit, IndexError, MihIndex};

/// One frame of a vPDQ signal as the index sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VpdqFrame {
    pub code: Code256,
    /// PDQ quality, 0–100.
    pub quality: u8,
}

/// Thresholds; defaults are the reference's (50, 31, 80 %, 0 %).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VpdqIndexOptions {
    pub quality_threshold: u8,
    pub distance_threshold: u32,
    pub query_match_threshold_pct: f64,
    pub compared_match_threshold_pct: f64,
}

impl Default for VpdqIndexOptions {
    fn default() -> Self {
        VpdqIndexOptions {
            quality_threshold: 50,
            distance_threshold: 31,
            query_match_threshold_pct: 80.0,
            compared_match_threshold_pct: 0.0,
        }
    }
}

/// A stored video that matches a query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VpdqCandidate {
    pub video_id: u64,
    pub query_match_pct: f64,
    pub compared_match_pct: f64,
}

struct Slot {
    code: Code256,
    /// Videos containing this code (each once).
    videos: Vec<u64>,
}

/// Frame-level Hamming index aggregated to videos. See the module docs.
pub struct VpdqIndex {
    options: VpdqIndexOptions,
    frames: MihIndex,
    slot_of_code: HashMap<Code256, u64>,
    slots: HashMap<u64, Slot>,
    /// Video id → its distinct matchable slots.
    videos: HashMap<u64, Vec<u64>>,
    next_slot: u64,
}

impl std::fmt::Debug for VpdqIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VpdqIndex")
            .field("videos", &self.videos.len())
            .field("distinct_frames", &self.slots.len())
            .finish()
    }
}

impl Default for VpdqIndex {
    fn default() -> Self {
        Self::new(VpdqIndexOptions::default())
    }
}

impl VpdqIndex {
    pub fn new(options: VpdqIndexOptions) -> Self {
        VpdqIndex {
            options,
            frames: MihIndex::new(),
            slot_of_code: HashMap::new(),
            slots: HashMap::new(),
            videos: HashMap::new(),
            next_slot: 0,
        }
    }

    pub fn options(&self) -> &VpdqIndexOptions {
        &self.options
    }

    /// Number of stored videos.
    pub fn len(&self) -> usize {
        self.videos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.videos.is_empty()
    }

    /// Number of distinct frame codes stored.
    pub fn distinct_frames(&self) -> usize {
        self.slots.len()
    }

    /// Distinct codes of `frames` with quality ≥ the threshold, first
    /// occurrence order.
    fn matchable(&self, frames: &[VpdqFrame]) -> Vec<Code256> {
        let mut seen = HashSet::with_capacity(frames.len());
        frames
            .iter()
            .filter(|f| f.quality >= self.options.quality_threshold)
            .map(|f| f.code)
            .filter(|c| seen.insert(*c))
            .collect()
    }

    /// Stores (or replaces) a video. Returns how many distinct matchable
    /// frames it contributed; a video with none is not stored (it could never
    /// match) and `Ok(0)` is returned.
    pub fn insert_video(
        &mut self,
        video_id: u64,
        frames: &[VpdqFrame],
    ) -> Result<usize, IndexError> {
        self.remove_video(video_id);
        let codes = self.matchable(frames);
        if codes.is_empty() {
            return Ok(0);
        }
        let mut slots = Vec::with_capacity(codes.len());
        for code in codes {
            let slot = match self.slot_of_code.get(&code) {
                Some(&s) => s,
                None => {
                    let s = self.next_slot;
                    self.next_slot = self
                        .next_slot
                        .checked_add(1)
                        .ok_or(IndexError::Capacity { max: usize::MAX })?;
                    self.frames.insert(s, code);
                    self.slot_of_code.insert(code, s);
                    self.slots.insert(
                        s,
                        Slot {
                            code,
                            videos: Vec::new(),
                        },
                    );
                    s
                }
            };
            if let Some(entry) = self.slots.get_mut(&slot) {
                entry.videos.push(video_id);
            }
            slots.push(slot);
        }
        let n = slots.len();
        self.videos.insert(video_id, slots);
        Ok(n)
    }

    /// Removes a video; frame codes no other video uses leave the index.
    pub fn remove_video(&mut self, video_id: u64) -> bool {
        let Some(slots) = self.videos.remove(&video_id) else {
            return false;
        };
        for slot in slots {
            let now_empty = match self.slots.get_mut(&slot) {
                Some(entry) => {
                    entry.videos.retain(|v| *v != video_id);
                    entry.videos.is_empty()
                }
                None => false,
            };
            if now_empty {
                if let Some(entry) = self.slots.remove(&slot) {
                    self.slot_of_code.remove(&entry.code);
                }
                self.frames.remove(slot);
            }
        }
        true
    }

    /// Videos matching `frames` under the index's thresholds, best query
    /// match first (ties by video id). Appends to `out`.
    pub fn query(&self, frames: &[VpdqFrame], out: &mut Vec<VpdqCandidate>) {
        let start = out.len();
        let query = self.matchable(frames);
        if query.is_empty() {
            return;
        }
        // video → (distinct query frames matched, distinct slots hit)
        let mut per_video: HashMap<u64, (usize, usize)> = HashMap::new();
        let mut last_query_frame: HashMap<u64, usize> = HashMap::new();
        let mut slot_hit: HashSet<u64> = HashSet::new();
        let mut hits: Vec<Hit> = Vec::new();
        for (qi, code) in query.iter().enumerate() {
            hits.clear();
            self.frames
                .search(code, self.options.distance_threshold, &mut hits);
            for hit in &hits {
                let Some(slot) = self.slots.get(&hit.id) else {
                    continue;
                };
                let first_hit_of_slot = slot_hit.insert(hit.id);
                for &video in &slot.videos {
                    let counts = per_video.entry(video).or_insert((0, 0));
                    if last_query_frame.insert(video, qi) != Some(qi) {
                        counts.0 += 1;
                    }
                    if first_hit_of_slot {
                        counts.1 += 1;
                    }
                }
            }
        }
        let query_len = query.len() as f64;
        for (video, (q_matched, slots_matched)) in per_video {
            let Some(video_slots) = self.videos.get(&video) else {
                continue;
            };
            let query_match_pct = q_matched as f64 * 100.0 / query_len;
            let compared_match_pct = slots_matched as f64 * 100.0 / video_slots.len() as f64;
            if query_match_pct >= self.options.query_match_threshold_pct
                && compared_match_pct >= self.options.compared_match_threshold_pct
            {
                out.push(VpdqCandidate {
                    video_id: video,
                    query_match_pct,
                    compared_match_pct,
                });
            }
        }
        if let Some(found) = out.get_mut(start..) {
            found.sort_by(|a, b| {
                b.query_match_pct
                    .total_cmp(&a.query_match_pct)
                    .then(a.video_id.cmp(&b.video_id))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(seed: u64) -> Code256 {
        // SplitMix64 stream: distinct seeds give codes ~128 bits apart.
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        [next(), next(), next(), next()]
    }

    fn flip(mut c: Code256, bits: u32) -> Code256 {
        for b in 0..bits {
            let i = (b * 37 % 256) as usize;
            if let Some(w) = c.get_mut(i / 64) {
                *w ^= 1u64 << (i % 64);
            }
        }
        c
    }

    fn video(seeds: std::ops::Range<u64>, quality: u8) -> Vec<VpdqFrame> {
        seeds
            .map(|s| VpdqFrame {
                code: code(s),
                quality,
            })
            .collect()
    }

    /// The reference rule by brute force, for cross-checking.
    fn brute(q: &[VpdqFrame], c: &[VpdqFrame], o: &VpdqIndexOptions) -> (f64, f64) {
        let idx = VpdqIndex::new(*o);
        let (q, c) = (idx.matchable(q), idx.matchable(c));
        let count = |a: &[Code256], b: &[Code256]| {
            a.iter()
                .filter(|x| {
                    b.iter()
                        .any(|y| crate::hamming(x, y) <= o.distance_threshold)
                })
                .count() as f64
        };
        (
            count(&q, &c) * 100.0 / q.len() as f64,
            count(&c, &q) * 100.0 / c.len() as f64,
        )
    }

    #[test]
    fn finds_near_duplicate_video_and_scores_like_brute_force() {
        let mut idx = VpdqIndex::default();
        let original = video(0..40, 100);
        assert_eq!(idx.insert_video(7, &original).ok(), Some(40));
        idx.insert_video(8, &video(1000..1040, 100)).ok();
        // Re-encode: every frame 20 bits off; a cut: only 30 of 40 frames.
        let reupload: Vec<VpdqFrame> = original
            .iter()
            .take(30)
            .map(|f| VpdqFrame {
                code: flip(f.code, 20),
                quality: 90,
            })
            .collect();
        let mut out = Vec::new();
        idx.query(&reupload, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].video_id, 7);
        assert_eq!(out[0].query_match_pct, 100.0);
        assert_eq!(out[0].compared_match_pct, 75.0);
        let (bq, bc) = brute(&reupload, &original, idx.options());
        assert_eq!(
            (bq, bc),
            (out[0].query_match_pct, out[0].compared_match_pct)
        );
    }

    #[test]
    fn distance_threshold_is_inclusive() {
        let mut idx = VpdqIndex::default();
        idx.insert_video(1, &video(0..1, 100)).ok();
        let mut out = Vec::new();
        idx.query(
            &[VpdqFrame {
                code: flip(code(0), 31),
                quality: 100,
            }],
            &mut out,
        );
        assert_eq!(out.len(), 1);
        out.clear();
        idx.query(
            &[VpdqFrame {
                code: flip(code(0), 32),
                quality: 100,
            }],
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn low_quality_and_duplicate_frames_do_not_count() {
        let mut idx = VpdqIndex::default();
        let mut frames = video(0..10, 100);
        frames.extend(video(0..10, 100)); // duplicates
        frames.extend(video(100..110, 10)); // low quality
        assert_eq!(idx.insert_video(1, &frames).ok(), Some(10));
        assert_eq!(idx.insert_video(2, &video(0..5, 49)).ok(), Some(0));
        assert_eq!(idx.len(), 1);
        let mut out = Vec::new();
        // Query: 8 of the stored frames plus 2 unrelated → 80 % → match.
        let mut q = video(0..8, 100);
        q.extend(video(500..502, 100));
        q.extend(video(600..620, 0)); // ignored: low quality
        idx.query(&q, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].query_match_pct, 80.0);
        assert_eq!(out[0].compared_match_pct, 80.0);
        // 7 of 10 → 70 % → no match at the default 80 %.
        out.clear();
        let mut q = video(0..7, 100);
        q.extend(video(500..503, 100));
        idx.query(&q, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn shared_frames_across_videos_and_removal() {
        let mut idx = VpdqIndex::default();
        idx.insert_video(1, &video(0..10, 100)).ok();
        idx.insert_video(2, &video(5..25, 100)).ok();
        assert_eq!(idx.distinct_frames(), 25);
        let mut out = Vec::new();
        idx.query(&video(5..10, 100), &mut out);
        let ids: Vec<u64> = out.iter().map(|c| c.video_id).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&1) && ids.contains(&2));
        let by_id = |id| {
            out.iter()
                .find(|c| c.video_id == id)
                .map(|c| c.compared_match_pct)
        };
        assert_eq!(by_id(1), Some(50.0));
        assert_eq!(by_id(2), Some(25.0));
        assert!(idx.remove_video(1));
        assert!(!idx.remove_video(1));
        assert_eq!(idx.distinct_frames(), 20);
        out.clear();
        idx.query(&video(0..5, 100), &mut out);
        assert!(out.is_empty());
        // Replacing a video replaces its frames.
        idx.insert_video(2, &video(0..5, 100)).ok();
        assert_eq!(idx.distinct_frames(), 5);
        out.clear();
        idx.query(&video(0..5, 100), &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn random_bags_agree_with_brute_force() {
        let opts = VpdqIndexOptions {
            query_match_threshold_pct: 0.0,
            ..VpdqIndexOptions::default()
        };
        let mut idx = VpdqIndex::new(opts);
        let mut stored = Vec::new();
        for v in 0..20u64 {
            // Videos overlap in seeds, and some frames are perturbed.
            let frames: Vec<VpdqFrame> = (v * 3..v * 3 + 12)
                .map(|s| VpdqFrame {
                    code: flip(code(s), ((s * 7 + v) % 40) as u32),
                    quality: ((s * 13) % 101) as u8,
                })
                .collect();
            idx.insert_video(v, &frames).ok();
            stored.push(frames);
        }
        let query: Vec<VpdqFrame> = (10..30)
            .map(|s| VpdqFrame {
                code: code(s),
                quality: 80,
            })
            .collect();
        let mut out = Vec::new();
        idx.query(&query, &mut out);
        for (v, frames) in stored.iter().enumerate() {
            if idx.matchable(frames).is_empty() {
                continue;
            }
            let (bq, bc) = brute(&query, frames, &opts);
            let got = out.iter().find(|c| c.video_id == v as u64);
            match got {
                Some(c) => assert_eq!(
                    (c.query_match_pct, c.compared_match_pct),
                    (bq, bc),
                    "video {v}"
                ),
                // Absent from results means no frame matched at all.
                None => assert_eq!((bq, bc), (0.0, 0.0), "video {v}"),
            }
        }
    }
}
