//! One content rectangle per video, chosen by majority over sampled frames,
//! and the vPDQ of the frames cropped to it.
//!
//! Letterbox and pillarbox bars are a property of the upload, not of a
//! scene: they stay put for the whole video. Per-frame detection is noisy
//! (a dark scene has no visible bars, a sky reads as a border), so each
//! detection is a vote; the rectangle with most votes wins. Frames are
//! hashed under their own rectangle and under the current leader, so when
//! the vote ends every frame detected since the leader first led has a
//! hash under it, in one pass and with bounded memory (hashes only, at most
//! [`TRACKED`] rectangles). Detection runs at most [`DETECTIONS_PER_SECOND`]
//! times per second of video; frames in between reuse the last result.

use std::collections::HashMap;

use super::{detect_borders, BorderOptions, Rect, WindowHasher, WorkImage};
use crate::pdq::PdqHash;

/// Most distinct rectangles followed at once.
pub const TRACKED: usize = 4;
/// Border detections per second of video (frames in between reuse one).
pub const DETECTIONS_PER_SECOND: f64 = 4.0;
/// Longest working-buffer side for video frames.
pub const VIDEO_WORK_SIDE: u32 = 640;

/// The working side of a `w × h` frame: at most [`VIDEO_WORK_SIDE`], reached
/// by a whole-number reduction (½, ⅓, …). A fractional box average (480 →
/// 320 averages one source pixel here and two there) aliases fine detail
/// enough to move a cropped frame's PDQ past the match distance: a
/// 480×180 pillarbox of a 320×180 clip, cropped exactly, was 34 bits from
/// the clip at 320 px and matches unscaled.
pub fn video_work_side(w: u32, h: u32) -> u32 {
    let long = w.max(h).max(1);
    let k = long.div_ceil(VIDEO_WORK_SIDE);
    long.div_ceil(k)
}

/// Rectangle key: shares removed per side in 1 % steps (`[0; 4]` = whole).
type Key = [u8; 4];

fn key_of(r: Rect, w: u32, h: u32) -> Key {
    r.fractions(w, h)
        .map(|f| (f * 100.0).round().clamp(0.0, 100.0) as u8)
}

fn rect_of(k: Key, w: u32, h: u32) -> Rect {
    Rect::from_fractions(w, h, k.map(|v| f32::from(v) / 100.0))
}

/// One frame hashed under the chosen rectangle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CroppedFrame {
    /// Index of the frame among the hashed (sampled) frames.
    pub index: usize,
    pub hash: PdqHash,
    pub quality: u8,
}

/// The result of a vote.
#[derive(Clone, Debug, PartialEq)]
pub struct CroppedVideo {
    /// The chosen rectangle (frame pixels) and the frame size.
    pub rect: Rect,
    pub width: u32,
    pub height: u32,
    /// Share of detections that voted for it.
    pub share: f32,
    pub frames: Vec<CroppedFrame>,
}

/// Accumulates per-frame votes and cropped hashes.
#[derive(Debug)]
pub struct RectVote {
    opts: BorderOptions,
    hasher: WindowHasher,
    counts: HashMap<Key, usize>,
    /// The exact rectangle each key was first detected as: votes group in
    /// 1 % steps, but frames are cut at the detected pixels (rounding a
    /// 480-pixel frame to 1 % moves an edge by up to 2.4 pixels, enough to
    /// push a cropped frame past the match distance).
    rects: HashMap<Key, Rect>,
    frames: HashMap<Key, Vec<CroppedFrame>>,
    detections: usize,
    last: Key,
    next_detect: f64,
}

impl Default for RectVote {
    fn default() -> Self {
        RectVote::new()
    }
}

impl RectVote {
    pub fn new() -> Self {
        RectVote {
            opts: BorderOptions::default(),
            hasher: WindowHasher::new(),
            counts: HashMap::new(),
            rects: HashMap::new(),
            frames: HashMap::new(),
            detections: 0,
            last: [0; 4],
            next_detect: 0.0,
        }
    }

    fn leader(&self) -> Option<Key> {
        self.counts
            .iter()
            .max_by_key(|(k, n)| (**n, std::cmp::Reverse(**k)))
            .map(|(k, _)| *k)
    }

    /// Add the `index`-th hashed frame (RGB8 `w × h`, shown at `seconds`).
    pub fn add_frame(&mut self, index: usize, rgb: &[u8], w: u32, h: u32, seconds: f64) {
        let Ok(work) = WorkImage::from_rgb8(rgb, w, h, video_work_side(w, h)) else {
            return;
        };
        if seconds >= self.next_detect || self.detections == 0 {
            self.next_detect = seconds + 1.0 / DETECTIONS_PER_SECOND;
            let found = detect_borders(&work, &self.opts).first().map(|c| c.rect);
            self.last = found.map_or([0; 4], |r| key_of(r, w, h));
            if let Some(r) = found {
                if self.rects.len() < TRACKED * 4 {
                    self.rects.entry(self.last).or_insert(r);
                }
            }
            self.detections += 1;
            let tracked = self.counts.len();
            match self.counts.get_mut(&self.last) {
                Some(n) => *n += 1,
                None if tracked < TRACKED * 4 => {
                    self.counts.insert(self.last, 1);
                }
                None => {}
            }
        }
        let mut keys = vec![self.last];
        if let Some(l) = self.leader() {
            if l != self.last {
                keys.push(l);
            }
        }
        for k in keys {
            if k == [0; 4] {
                continue;
            }
            if !self.frames.contains_key(&k) && self.frames.len() >= TRACKED {
                // Drop the least-voted tracked rectangle to make room.
                let weakest = self
                    .frames
                    .keys()
                    .min_by_key(|x| self.counts.get(*x).copied().unwrap_or(0))
                    .copied();
                if let Some(wk) = weakest {
                    if self.counts.get(&wk).copied().unwrap_or(0)
                        >= self.counts.get(&k).copied().unwrap_or(0)
                    {
                        continue;
                    }
                    self.frames.remove(&wk);
                }
            }
            let rect = self.rect(k, w, h);
            let Ok(d) = self.hasher.hash(&work, rect) else {
                continue;
            };
            self.frames.entry(k).or_default().push(CroppedFrame {
                index,
                hash: d.hashes.orig,
                quality: d.quality,
            });
        }
    }

    fn rect(&self, k: Key, w: u32, h: u32) -> Rect {
        self.rects
            .get(&k)
            .copied()
            .unwrap_or_else(|| rect_of(k, w, h))
    }

    /// The majority rectangle and its frames; `None` when the majority saw
    /// no border.
    pub fn finish(mut self, w: u32, h: u32) -> Option<CroppedVideo> {
        let leader = self.leader()?;
        if leader == [0; 4] {
            return None;
        }
        let votes = self.counts.get(&leader).copied().unwrap_or(0);
        let frames = self.frames.remove(&leader)?;
        Some(CroppedVideo {
            rect: self.rect(leader, w, h),
            width: w,
            height: h,
            share: votes as f32 / self.detections.max(1) as f32,
            frames,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_side_is_a_whole_number_reduction() {
        // Small frames stay unscaled; larger ones are halved, thirded, …
        assert_eq!(video_work_side(480, 180), 480);
        assert_eq!(video_work_side(640, 360), 640);
        assert_eq!(video_work_side(480, 720), 360);
        assert_eq!(video_work_side(1280, 720), 640);
        assert_eq!(video_work_side(1920, 1080), 640);
        assert_eq!(video_work_side(3840, 2160), 640);
        assert_eq!(video_work_side(1000, 10), 500);
        assert_eq!(video_work_side(0, 0), 1);
        for long in 1..5000 {
            let side = video_work_side(long, 1);
            assert!(
                side <= VIDEO_WORK_SIDE.max(1) && side >= 1,
                "{long} → {side}"
            );
        }
    }
}
