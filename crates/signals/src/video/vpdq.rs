//! vPDQ: a video's signal is the list of PDQ hashes of sampled frames, each
//! with its PDQ quality and timestamp.
//!
//! Frame selection follows Meta's reference (`vpdq/cpp/hashing/filehasher.cpp`)
//! exactly: decoded frames are numbered from 0 in decoder output order; frame
//! `n` is hashed when `n % every_nth == 0`, where
//! `every_nth = max(1, int(seconds_per_hash × fps))` and `fps` is the stream's
//! `avg_frame_rate` (falling back to `r_frame_rate`). `seconds_per_hash = 0`
//! hashes every frame. Frames are converted to RGB24 with swscale's area
//! filter at native resolution, or first scaled to a square `N×N` like the
//! reference's `-s N`. A frame's timestamp is the reference's
//! `(float)frame_number / (float)fps`, computed in single precision so our
//! values agree with it.
//!
//! Serialisation (the `value` of a `vpdq` signal) is python-threatexchange's
//! `VPDQSignal` format: a JSON array of `"pdq_hex,quality,timestamp"`
//! strings. python-threatexchange formats the timestamp with
//! `f"{t:.3}"` — a *precision* of 3 significant digits, not 3 decimals — so
//! 12.345 s becomes `12.3`, 123.4 s becomes `1.23e+02` and every frame past
//! 1000 s collapses onto a multiple of 10 s (`1.23e+03`). That was meant to be
//! `:.3f` (its own `VPDQ_TIMESTAMP_PRECISION = 3` and the C++ writer's
//! `std::fixed << setprecision(3)`). We write fixed three decimals, which
//! their parser (`float(...)`) reads back exactly, and we parse both forms;
//! timestamps never take part in matching, so the two interoperate.
//!
//! The reference C++ tool's text format (`frame,quality,hex,timestamp` per
//! line) is read and written too ([`VpdqHash::from_reference_text`]).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::digest::{digests, Digests};
use crate::pdq::{PdqHash, PdqHasher};
use crate::video::ffmpeg::{Ffmpeg, FramePlan, VideoError, VideoInfo};

/// Frames below this PDQ quality are ignored when matching (reference: 50).
pub const VPDQ_QUALITY_THRESHOLD: u8 = 50;
/// Two frames match at Hamming distance ≤ this (reference: 31).
pub const VPDQ_DISTANCE_THRESHOLD: u32 = 31;
/// Share of query frames that must match (reference: 80 %).
pub const VPDQ_QUERY_MATCH_THRESHOLD_PERCENT: f64 = 80.0;
/// Share of compared frames that must match (reference: 0 %).
pub const VPDQ_COMPARED_MATCH_THRESHOLD_PERCENT: f64 = 0.0;
/// Largest number of features accepted when parsing a serialised signal
/// (24 hours of video hashed every frame at 60 fps is ~5.2 M; at the default
/// one frame a second, 1 M features is 11 days).
pub const MAX_SERIALISED_FEATURES: usize = 1_000_000;

/// One hashed frame.
#[derive(Clone, Debug, PartialEq)]
pub struct VpdqFeature {
    /// Decoded-frame number (0-based). Not part of the python-threatexchange
    /// serialisation: when parsing that form it is the feature's position.
    pub frame_number: u64,
    pub hash: PdqHash,
    /// PDQ quality, 0–100.
    pub quality: u8,
    /// Seconds from the start, the reference's `frame_number / fps`.
    pub timestamp: f64,
}

/// A video's vPDQ signal: features in frame order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VpdqHash {
    pub features: Vec<VpdqFeature>,
}

/// Errors parsing a serialised vPDQ signal.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VpdqParseError {
    #[error("vPDQ signal is not a JSON array of strings: {0}")]
    NotJson(String),
    #[error("vPDQ entry {index} is malformed ({reason}): {entry:?}")]
    BadEntry {
        index: usize,
        reason: &'static str,
        entry: String,
    },
    #[error("vPDQ signal has more than {MAX_SERIALISED_FEATURES} features")]
    TooManyFeatures,
}

impl VpdqHash {
    /// python-threatexchange `VPDQSignal` string: JSON array of
    /// `"hex,quality,timestamp"`, timestamp with three decimals.
    pub fn to_signal_string(&self) -> String {
        let mut out = String::with_capacity(self.features.len() * 80 + 2);
        out.push('[');
        for (i, f) in self.features.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(
                out,
                "\"{},{},{:.3}\"",
                f.hash.to_hex(),
                f.quality,
                f.timestamp
            );
        }
        out.push(']');
        out
    }

    /// Parses the python-threatexchange form (either timestamp style).
    pub fn from_signal_str(s: &str) -> Result<Self, VpdqParseError> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Ok(VpdqHash::default());
        }
        let entries: Vec<String> =
            serde_json::from_str(trimmed).map_err(|e| VpdqParseError::NotJson(e.to_string()))?;
        if entries.len() > MAX_SERIALISED_FEATURES {
            return Err(VpdqParseError::TooManyFeatures);
        }
        let mut features = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let bad = |reason| VpdqParseError::BadEntry {
                index,
                reason,
                entry: truncate(entry),
            };
            let mut parts = entry.split(',');
            let (Some(hex), Some(q), Some(t), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("expected hex,quality,timestamp"));
            };
            features.push(VpdqFeature {
                frame_number: index as u64,
                hash: parse_hash(hex).ok_or_else(|| bad("bad PDQ hex"))?,
                quality: parse_quality(q).ok_or_else(|| bad("quality must be 0-100"))?,
                timestamp: parse_timestamp(t).ok_or_else(|| bad("bad timestamp"))?,
            });
        }
        Ok(VpdqHash { features })
    }

    /// The reference C++ tool's output: one `frame,quality,hex,timestamp`
    /// line per frame.
    pub fn to_reference_text(&self) -> String {
        let mut out = String::with_capacity(self.features.len() * 80);
        for f in &self.features {
            let _ = writeln!(
                out,
                "{},{},{},{:.3}",
                f.frame_number,
                f.quality,
                f.hash.to_hex(),
                f.timestamp
            );
        }
        out
    }

    /// Parses the reference C++ tool's output (blank lines ignored).
    pub fn from_reference_text(s: &str) -> Result<Self, VpdqParseError> {
        let mut features = Vec::new();
        for (index, line) in s
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            if features.len() >= MAX_SERIALISED_FEATURES {
                return Err(VpdqParseError::TooManyFeatures);
            }
            let bad = |reason| VpdqParseError::BadEntry {
                index,
                reason,
                entry: truncate(line),
            };
            let mut parts = line.split(',');
            let (Some(n), Some(q), Some(hex), Some(t)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("expected frame,quality,hex,timestamp"));
            };
            features.push(VpdqFeature {
                frame_number: n.trim().parse().map_err(|_| bad("bad frame number"))?,
                quality: parse_quality(q).ok_or_else(|| bad("quality must be 0-100"))?,
                hash: parse_hash(hex).ok_or_else(|| bad("bad PDQ hex"))?,
                timestamp: parse_timestamp(t).ok_or_else(|| bad("bad timestamp"))?,
            });
        }
        Ok(VpdqHash { features })
    }

    /// Features with quality ≥ `min_quality`, first occurrence of each
    /// distinct hash only — the set the matching rule counts over.
    pub fn matchable(&self, min_quality: u8) -> Vec<&VpdqFeature> {
        let mut seen = HashSet::with_capacity(self.features.len());
        self.features
            .iter()
            .filter(|f| f.quality >= min_quality)
            .filter(|f| seen.insert(f.hash.to_words()))
            .collect()
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(100).collect()
}

fn parse_hash(hex: &str) -> Option<PdqHash> {
    PdqHash::from_hex(hex.trim()).ok()
}

fn parse_quality(q: &str) -> Option<u8> {
    q.trim().parse::<u8>().ok().filter(|q| *q <= 100)
}

fn parse_timestamp(t: &str) -> Option<f64> {
    t.trim()
        .parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && *t >= 0.0)
}

/// How to hash a video.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VpdqOptions {
    /// Hash one frame per this many seconds; 0 hashes every frame.
    pub seconds_per_hash: f64,
    /// Scale frames to `N×N` before hashing (the reference's `-s N`);
    /// `None` hashes at native resolution.
    pub downsample: Option<u32>,
}

impl Default for VpdqOptions {
    fn default() -> Self {
        VpdqOptions {
            seconds_per_hash: 1.0,
            downsample: None,
        }
    }
}

impl VpdqOptions {
    /// The reference's frame stride for a stream at `fps`.
    pub fn every_nth(&self, fps: f64) -> u64 {
        // C++: static_cast<int>(secondsPerHash * frameRate), then 0 → 1.
        // An overflowing product (inf) clamps like a huge stride; NaN → 1.
        let n = (self.seconds_per_hash * fps).trunc();
        if n >= 1.0 {
            n.min(i32::MAX as f64) as u64
        } else {
            1
        }
    }

    fn validate(&self) -> Result<(), VideoError> {
        if !(self.seconds_per_hash.is_finite() && self.seconds_per_hash >= 0.0) {
            return Err(VideoError::InvalidOption(
                "seconds_per_hash must be a finite number ≥ 0".into(),
            ));
        }
        if let Some(n) = self.downsample {
            if !(5..=4096).contains(&n) {
                return Err(VideoError::InvalidOption(
                    "downsample size must be between 5 and 4096".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Everything hashing one video yields.
#[derive(Clone, Debug)]
pub struct VideoSignals {
    pub vpdq: VpdqHash,
    /// MD5 and SHA-256 of the uploaded bytes.
    pub digests: Digests,
    pub info: VideoInfo,
    /// The frame stride used (`every_nth`).
    pub every_nth: u64,
    /// With [`VideoHasher::hash_robust`]: the vPDQ of the frames cropped to
    /// the content rectangle chosen by majority (`None`: no borders, or not
    /// asked for). Derived and local: never the video's signal.
    pub cropped: Option<CroppedVpdq>,
}

/// A video's border-cropped vPDQ (derived; see `crate::robust`).
#[derive(Clone, Debug, PartialEq)]
pub struct CroppedVpdq {
    pub vpdq: VpdqHash,
    /// The rectangle, in frame pixels, and the frame size.
    pub rect: crate::robust::Rect,
    pub width: u32,
    pub height: u32,
    /// Share of border detections that voted for the rectangle.
    pub share: f32,
}

/// A hashed frame shown to [`VideoHasher::hash_observed`]'s observer.
pub struct ObservedFrame<'a> {
    /// RGB24, `width × height × 3` bytes.
    pub rgb: &'a [u8],
    pub width: u32,
    pub height: u32,
    pub feature: &'a VpdqFeature,
}

/// Hashes videos with a located ffmpeg.
#[derive(Clone, Debug)]
pub struct VideoHasher {
    ffmpeg: Ffmpeg,
}

impl VideoHasher {
    pub fn new(ffmpeg: Ffmpeg) -> Self {
        VideoHasher { ffmpeg }
    }

    pub fn ffmpeg(&self) -> &Ffmpeg {
        &self.ffmpeg
    }

    /// Hashes `bytes` (copied once into shared memory for the feeder thread).
    pub fn hash(&self, bytes: &[u8], options: &VpdqOptions) -> Result<VideoSignals, VideoError> {
        self.hash_shared(Arc::from(bytes), options)
    }

    /// Hashes an upload already held in an `Arc`.
    pub fn hash_shared(
        &self,
        bytes: Arc<[u8]>,
        options: &VpdqOptions,
    ) -> Result<VideoSignals, VideoError> {
        self.hash_frames(bytes, options, false, &mut |_| {})
    }

    /// [`VideoHasher::hash_shared`], showing every hashed frame to
    /// `observe` (RGB24 pixels, size, its feature) — how OCR picks its key
    /// frames without a second decode.
    pub fn hash_observed(
        &self,
        bytes: Arc<[u8]>,
        options: &VpdqOptions,
        observe: &mut dyn FnMut(ObservedFrame<'_>),
    ) -> Result<VideoSignals, VideoError> {
        self.hash_frames(bytes, options, false, observe)
    }

    /// [`VideoHasher::hash`] that also computes the border-cropped vPDQ
    /// ([`VideoSignals::cropped`]) in the same decoding pass.
    pub fn hash_robust(
        &self,
        bytes: &[u8],
        options: &VpdqOptions,
    ) -> Result<VideoSignals, VideoError> {
        self.hash_frames(Arc::from(bytes), options, true, &mut |_| {})
    }

    /// [`VideoHasher::hash_robust`] and [`VideoHasher::hash_observed`] in
    /// one decoding pass: the rectangle vote and the observer (OCR key
    /// frames) see the same frames.
    pub fn hash_robust_observed(
        &self,
        bytes: Arc<[u8]>,
        options: &VpdqOptions,
        observe: &mut dyn FnMut(ObservedFrame<'_>),
    ) -> Result<VideoSignals, VideoError> {
        self.hash_frames(bytes, options, true, observe)
    }

    /// The one decoding pass: every sampled frame is hashed, voted on for
    /// the content rectangle when `robust`, and shown to `observe`.
    fn hash_frames(
        &self,
        bytes: Arc<[u8]>,
        options: &VpdqOptions,
        robust: bool,
        observe: &mut dyn FnMut(ObservedFrame<'_>),
    ) -> Result<VideoSignals, VideoError> {
        options.validate()?;
        let digests = digests(&bytes);
        let (info, mut frames) = self.ffmpeg.decode(bytes, |info| {
            let (width, height) = match options.downsample {
                Some(n) => (n, n),
                None => (info.width, info.height),
            };
            Ok(FramePlan {
                every_nth: options.every_nth(info.fps),
                width,
                height,
            })
        })?;
        let plan = frames.plan();
        let fps32 = info.fps as f32;
        let mut hasher = PdqHasher::new();
        let mut buf = Vec::new();
        let mut features = Vec::new();
        let mut vote = robust.then(crate::robust::RectVote::new);
        let mut k: u64 = 0;
        while frames.next_frame(&mut buf)? {
            let frame_number = k.saturating_mul(plan.every_nth);
            k += 1;
            let out = hasher
                .hash_rgb8(&buf, plan.width, plan.height)
                .map_err(|e| VideoError::InvalidOption(format!("PDQ failed on a frame: {e}")))?;
            // The reference: static_cast<float>(n) / (float)framerate.
            let timestamp = f64::from(frame_number as f32 / fps32);
            if let Some(v) = vote.as_mut() {
                v.add_frame(features.len(), &buf, plan.width, plan.height, timestamp);
            }
            let feature = VpdqFeature {
                frame_number,
                hash: out.hash,
                quality: out.quality,
                timestamp,
            };
            observe(ObservedFrame {
                rgb: &buf,
                width: plan.width,
                height: plan.height,
                feature: &feature,
            });
            features.push(feature);
        }
        let cropped = vote
            .and_then(|v| v.finish(plan.width, plan.height))
            .map(|c| {
                let cropped_features = c
                    .frames
                    .iter()
                    .filter_map(|f| {
                        features.get(f.index).map(|p| VpdqFeature {
                            frame_number: p.frame_number,
                            hash: f.hash,
                            quality: f.quality,
                            timestamp: p.timestamp,
                        })
                    })
                    .collect();
                CroppedVpdq {
                    vpdq: VpdqHash {
                        features: cropped_features,
                    },
                    rect: c.rect,
                    width: c.width,
                    height: c.height,
                    share: c.share,
                }
            });
        Ok(VideoSignals {
            vpdq: VpdqHash { features },
            digests,
            info,
            every_nth: plan.every_nth,
            cropped,
        })
    }
}

/// Thresholds of the matching rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VpdqMatchOptions {
    pub quality_threshold: u8,
    pub distance_threshold: u32,
    pub query_match_threshold_pct: f64,
    pub compared_match_threshold_pct: f64,
}

impl Default for VpdqMatchOptions {
    fn default() -> Self {
        VpdqMatchOptions {
            quality_threshold: VPDQ_QUALITY_THRESHOLD,
            distance_threshold: VPDQ_DISTANCE_THRESHOLD,
            query_match_threshold_pct: VPDQ_QUERY_MATCH_THRESHOLD_PERCENT,
            compared_match_threshold_pct: VPDQ_COMPARED_MATCH_THRESHOLD_PERCENT,
        }
    }
}

/// Result of comparing two vPDQ hashes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VpdqComparison {
    /// Share (0–100) of the query's matchable frames within the distance
    /// threshold of some compared frame.
    pub query_match_pct: f64,
    /// Share (0–100) of the compared video's matchable frames within the
    /// distance threshold of some query frame.
    pub compared_match_pct: f64,
    /// Both shares meet their thresholds (and neither side is empty).
    pub is_match: bool,
}

/// The reference matching rule (python-threatexchange
/// `match_VPDQ_hash_brute`, C++ `matchTwoHashBrute` with `<=`): drop frames
/// below the quality threshold, dedupe identical hashes, then count each
/// side's frames that have a partner on the other side within the distance
/// threshold. Either side empty after filtering → 0 %, no match (the Python
/// version divides by zero there).
///
/// We filter before deduping (python-threatexchange's index does this; its
/// brute matcher dedupes first, which differs only when one hash occurs with
/// both low and high quality) so brute comparison and index lookups agree.
pub fn compare(query: &VpdqHash, compared: &VpdqHash, opts: &VpdqMatchOptions) -> VpdqComparison {
    let q = query.matchable(opts.quality_threshold);
    let c = compared.matchable(opts.quality_threshold);
    if q.is_empty() || c.is_empty() {
        return VpdqComparison {
            query_match_pct: 0.0,
            compared_match_pct: 0.0,
            is_match: false,
        };
    }
    let count = |a: &[&VpdqFeature], b: &[&VpdqFeature]| {
        a.iter()
            .filter(|fa| {
                b.iter()
                    .any(|fb| fa.hash.distance(&fb.hash) <= opts.distance_threshold)
            })
            .count()
    };
    let query_match_pct = count(&q, &c) as f64 * 100.0 / q.len() as f64;
    let compared_match_pct = count(&c, &q) as f64 * 100.0 / c.len() as f64;
    VpdqComparison {
        query_match_pct,
        compared_match_pct,
        is_match: query_match_pct >= opts.query_match_threshold_pct
            && compared_match_pct >= opts.compared_match_threshold_pct,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_with_bits(bits: &[usize]) -> PdqHash {
        let mut w = [0u64; 4];
        for &b in bits {
            if let Some(word) = w.get_mut(b / 64) {
                *word |= 1u64 << (b % 64);
            }
        }
        PdqHash::from_words(w)
    }

    fn feature(n: u64, hash: PdqHash, quality: u8) -> VpdqFeature {
        VpdqFeature {
            frame_number: n,
            hash,
            quality,
            timestamp: n as f64,
        }
    }

    #[test]
    fn threatexchange_serialisation_round_trips_and_reads_their_timestamps() {
        let h = hash_with_bits(&[0, 5, 255]);
        let v = VpdqHash {
            features: vec![feature(0, h, 100), feature(30, h, 49)],
        };
        let s = v.to_signal_string();
        assert_eq!(
            s,
            format!("[\"{0},100,0.000\", \"{0},49,30.000\"]", h.to_hex())
        );
        let back = VpdqHash::from_signal_str(&s).expect("parses");
        assert_eq!(back.features.len(), 2);
        assert_eq!(back.features[1].hash, h);
        assert_eq!(back.features[1].quality, 49);
        assert_eq!(back.features[1].timestamp, 30.0);
        // python-threatexchange writes f"{t:.3}": 3 significant digits,
        // exponent form past 999 s. We read it.
        let theirs = format!("[\"{0},100,1.23e+03\",\"{0},90,12.3\"]", h.to_hex());
        let parsed = VpdqHash::from_signal_str(&theirs).expect("parses theirs");
        assert_eq!(parsed.features[0].timestamp, 1230.0);
        assert_eq!(parsed.features[1].timestamp, 12.3);
        assert_eq!(
            VpdqHash::from_signal_str("").map(|v| v.features.len()),
            Ok(0)
        );
        assert_eq!(
            VpdqHash::from_signal_str("[]").map(|v| v.features.len()),
            Ok(0)
        );
    }

    #[test]
    fn malformed_signals_are_errors() {
        let hex = hash_with_bits(&[1]).to_hex();
        for bad in [
            "{}".to_string(),
            "[1,2]".to_string(),
            format!("[\"{hex},100\"]"),
            format!("[\"{hex},101,0.0\"]"),
            format!("[\"{hex},100,-1\"]"),
            format!("[\"{hex},100,nan\"]"),
            format!("[\"{hex},100,0.0,extra\"]"),
            "[\"zz,100,0.0\"]".to_string(),
        ] {
            assert!(VpdqHash::from_signal_str(&bad).is_err(), "{bad}");
        }
        assert!(VpdqHash::from_reference_text("0,100,abc,0.0").is_err());
        let ok = VpdqHash::from_reference_text(&format!("7,88,{hex},0.233\n\n")).expect("ok");
        assert_eq!(ok.features[0].frame_number, 7);
        assert_eq!(ok.to_reference_text(), format!("7,88,{hex},0.233\n"));
    }

    #[test]
    fn frame_stride_follows_the_reference() {
        let opts = |s| VpdqOptions {
            seconds_per_hash: s,
            downsample: None,
        };
        assert_eq!(opts(1.0).every_nth(30.0), 30);
        assert_eq!(opts(1.0).every_nth(29.97), 29);
        assert_eq!(opts(0.0).every_nth(30.0), 1);
        assert_eq!(opts(1.0).every_nth(0.5), 1);
        assert_eq!(opts(2.5).every_nth(24.0), 60);
        assert_eq!(opts(f64::MAX).every_nth(1e300), i32::MAX as u64);
    }

    #[test]
    fn matching_rule_thresholds() {
        let base = hash_with_bits(&[]);
        let d31 = hash_with_bits(&(0..31).collect::<Vec<_>>());
        let d32 = hash_with_bits(&(0..32).collect::<Vec<_>>());
        let far = hash_with_bits(&(100..200).collect::<Vec<_>>());
        let q = VpdqHash {
            features: vec![
                feature(0, base, 100),
                feature(1, base, 100),
                feature(2, far, 100),
            ],
        };
        // Distance 31 counts; duplicates count once: 1 of 2 distinct → 50 %.
        let c = compare(
            &q,
            &VpdqHash {
                features: vec![feature(0, d31, 100)],
            },
            &VpdqMatchOptions::default(),
        );
        assert_eq!(
            (c.query_match_pct, c.compared_match_pct, c.is_match),
            (50.0, 100.0, false)
        );
        let c = compare(
            &q,
            &VpdqHash {
                features: vec![feature(0, d32, 100)],
            },
            &VpdqMatchOptions::default(),
        );
        assert_eq!((c.query_match_pct, c.compared_match_pct), (0.0, 0.0));
        // Low-quality frames are ignored; all-low-quality → no match.
        let c = compare(
            &q,
            &VpdqHash {
                features: vec![feature(0, base, 49), feature(1, far, 50)],
            },
            &VpdqMatchOptions::default(),
        );
        assert_eq!(
            (c.query_match_pct, c.compared_match_pct, c.is_match),
            (50.0, 100.0, false)
        );
        let lenient = VpdqMatchOptions {
            query_match_threshold_pct: 50.0,
            ..VpdqMatchOptions::default()
        };
        assert!(compare(&q, &q, &lenient).is_match);
        let empty = VpdqHash {
            features: vec![feature(0, base, 10)],
        };
        let c = compare(&q, &empty, &VpdqMatchOptions::default());
        assert!(!c.is_match && c.query_match_pct == 0.0);
    }
}
