//! The vPDQ evidence of a video match, computed at render time from the two
//! recorded signal strings: the query and compared shares and the
//! timestamps of the query frames that matched, drawn as a compact strip.
//!
//! Design decisions:
//! * No frame rule is re-implemented here: the shares come from
//!   [`vpdq::compare`], and "does this query frame match" is `compare` of a
//!   one-frame hash against the banked video (100 % query share ⇔ the frame
//!   passes the quality filter and lies within the distance threshold of a
//!   banked frame). Results are cached per distinct frame hash.
//! * Work is bounded: signals are stored already validated, but a hostile
//!   upload may still carry huge vPDQ signals, so above
//!   [`MAX_PAIR_COMPARISONS`] frame pairs the strip is not computed and the
//!   card says so.
//! * The strip is an SVG with presentation attributes (the console's CSP
//!   forbids inline styles), at most [`STRIP_BUCKETS`] ticks, with a text
//!   alternative (`role=img` + `<title>`) and the timestamps listed as text,
//!   collapsed after [`LIST_SHOWN`].

use std::collections::HashMap;

use echotrace_signals::video::vpdq::{self, VpdqHash, VpdqMatchOptions};
use maud::{html, Markup};

/// Above this many query×banked frame pairs the strip is skipped.
pub const MAX_PAIR_COMPARISONS: usize = 4_000_000;
/// Horizontal resolution of the strip (ticks are merged per bucket).
pub const STRIP_BUCKETS: usize = 100;
/// Timestamps listed before the rest is collapsed.
pub const LIST_SHOWN: usize = 20;
/// Timestamps listed at most inside the collapsed part.
pub const LIST_MAX: usize = 500;

/// What the card shows of a vPDQ match.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoStrip {
    /// Share (0–100) of the query's matchable frames that matched.
    pub query_pct: f64,
    /// Share (0–100) of the banked video's matchable frames that matched;
    /// `None` when the signals were too large to compare at render time.
    pub compared_pct: Option<f64>,
    /// Per-frame distance threshold used.
    pub distance_threshold: u32,
    /// Duration of the query video in seconds (last frame's timestamp).
    pub duration: f64,
    /// Timestamps (s) of matched query frames, ascending; `None` when the
    /// signals were too large to compare at render time.
    pub matched: Option<Vec<f64>>,
    /// Query frames with quality ≥ the quality threshold.
    pub quality_frames: usize,
}

/// Parse both signals and compute the strip; `None` if either signal does
/// not parse (the card then falls back to the plain score). Above
/// [`MAX_PAIR_COMPARISONS`] nothing is compared: the query share is the
/// recorded one (`recorded_similarity` × 100) and the rest is left out.
pub fn compute(
    query_value: &str,
    matched_value: &str,
    distance_threshold: u32,
    recorded_similarity: Option<f64>,
) -> Option<VideoStrip> {
    let query = VpdqHash::from_signal_str(query_value).ok()?;
    let banked = VpdqHash::from_signal_str(matched_value).ok()?;
    let opts = VpdqMatchOptions {
        distance_threshold,
        ..VpdqMatchOptions::default()
    };
    let duration = query
        .features
        .iter()
        .map(|f| f.timestamp)
        .fold(0.0_f64, f64::max);
    let quality: Vec<_> = query
        .features
        .iter()
        .filter(|f| f.quality >= opts.quality_threshold)
        .collect();
    let banked_matchable = banked.matchable(opts.quality_threshold).len();
    if quality.len().saturating_mul(banked_matchable) > MAX_PAIR_COMPARISONS {
        return Some(VideoStrip {
            query_pct: recorded_similarity.unwrap_or(0.0) * 100.0,
            compared_pct: None,
            distance_threshold,
            duration,
            matched: None,
            quality_frames: quality.len(),
        });
    }
    let cmp = vpdq::compare(&query, &banked, &opts);
    let matched = {
        let mut verdict: HashMap<[u64; 4], bool> = HashMap::new();
        let mut out = Vec::new();
        for f in &quality {
            let hit = *verdict.entry(f.hash.to_words()).or_insert_with(|| {
                let one = VpdqHash {
                    features: vec![(*f).clone()],
                };
                vpdq::compare(&one, &banked, &opts).query_match_pct >= 100.0
            });
            if hit {
                out.push(f.timestamp);
            }
        }
        out.sort_by(|a, b| a.total_cmp(b));
        Some(out)
    };
    Some(VideoStrip {
        query_pct: cmp.query_match_pct,
        compared_pct: Some(cmp.compared_match_pct),
        distance_threshold,
        duration,
        matched,
        quality_frames: quality.len(),
    })
}

/// `m:ss`, or `h:mm:ss` from one hour on (whole seconds, rounded down).
pub fn fmt_timestamp(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 {
        secs as u64
    } else {
        0
    };
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The shares line, e.g. `query share 85% · compared share 60%`.
pub fn shares_label(v: &VideoStrip) -> String {
    match v.compared_pct {
        Some(c) => format!("query share {:.0}% · compared share {:.0}%", v.query_pct, c),
        None => format!(
            "query share {:.0}% · compared share not computed",
            v.query_pct
        ),
    }
}

/// Buckets (0..STRIP_BUCKETS) that contain at least one matched timestamp.
fn buckets(matched: &[f64], duration: f64) -> Vec<usize> {
    let mut on = [false; STRIP_BUCKETS];
    for t in matched {
        let b = if duration > 0.0 {
            ((t / duration) * STRIP_BUCKETS as f64) as usize
        } else {
            0
        };
        if let Some(slot) = on.get_mut(b.min(STRIP_BUCKETS - 1)) {
            *slot = true;
        }
    }
    on.iter()
        .enumerate()
        .filter_map(|(i, x)| x.then_some(i))
        .collect()
}

/// The strip: shares, an SVG timeline of matched frames and the list of
/// their timestamps. `id` must be unique on the page.
pub fn render(v: &VideoStrip, id: &str) -> Markup {
    let title_id = format!("{id}-title");
    html! {
        div class="video-strip" {
            p { strong { (shares_label(v)) } " (frame distance ≤ " (v.distance_threshold) ")" }
            @match &v.matched {
                None => {
                    p class="muted" { "Too many frames to compute the matched-frame strip here (" (v.quality_frames) " query frames)." }
                }
                Some(matched) => {
                    @let alt = format!(
                        "{} of {} query frames matched, between {} and {} of a {} video",
                        matched.len(),
                        v.quality_frames,
                        matched.first().map(|t| fmt_timestamp(*t)).unwrap_or_else(|| "—".into()),
                        matched.last().map(|t| fmt_timestamp(*t)).unwrap_or_else(|| "—".into()),
                        fmt_timestamp(v.duration),
                    );
                    svg class="strip" width="100%" height="24" viewBox="0 0 1000 24" preserveAspectRatio="none" role="img" aria-labelledby=(title_id) xmlns="http://www.w3.org/2000/svg" {
                        title id=(title_id) { (alt) }
                        rect x="0" y="4" width="1000" height="16" fill="#e3e8f0" stroke="#4a5361" stroke-width="1" {}
                        @for b in buckets(matched, v.duration) {
                            rect class="tick" x=(b * 10) y="2" width="8" height="20" fill="#0b4f9c" {}
                        }
                    }
                    div class="row muted" aria-hidden="true" { span { "0:00" } " — " span { (fmt_timestamp(v.duration)) } }
                    p {
                        "Matched frames at: "
                        @if matched.is_empty() { "none" }
                        @let shown: Vec<String> = matched.iter().take(LIST_SHOWN).map(|t| fmt_timestamp(*t)).collect();
                        span class="timestamps" { (shown.join(", ")) }
                    }
                    @if matched.len() > LIST_SHOWN {
                        details {
                            summary { (matched.len() - LIST_SHOWN) " more" }
                            @let rest: Vec<String> = matched.iter().skip(LIST_SHOWN).take(LIST_MAX).map(|t| fmt_timestamp(*t)).collect();
                            p { (rest.join(", ")) @if matched.len() > LIST_SHOWN + LIST_MAX { ", …" } }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use echotrace_signals::pdq::PdqHash;
    use echotrace_signals::video::vpdq::VpdqFeature;

    /// A hash with the given bits set.
    pub(crate) fn hash(bits: &[usize]) -> PdqHash {
        let mut w = [0u64; 4];
        for &b in bits {
            if let Some(word) = w.get_mut(b / 64) {
                *word |= 1u64 << (b % 64);
            }
        }
        PdqHash::from_words(w)
    }

    pub(crate) fn video(frames: &[(PdqHash, u8)]) -> VpdqHash {
        VpdqHash {
            features: frames
                .iter()
                .enumerate()
                .map(|(i, (h, q))| VpdqFeature {
                    frame_number: i as u64,
                    hash: *h,
                    quality: *q,
                    timestamp: i as f64,
                })
                .collect(),
        }
    }

    /// Query: 10 one-second frames; frames 3 and 4 are near banked frames
    /// (distance 2 and 31), frame 5 is at distance 32 (outside), frame 6
    /// matches but has quality 49 (ignored), the rest are far.
    pub(crate) fn query_and_bank() -> (VpdqHash, VpdqHash) {
        let a = hash(&(0..40).collect::<Vec<_>>());
        let b = hash(&(100..160).collect::<Vec<_>>());
        let far = |k: usize| hash(&((200 + k)..(200 + k + 50).min(256)).collect::<Vec<_>>());
        let near_a = hash(&(2..40).collect::<Vec<_>>()); // distance 2 from a
        let b31: Vec<usize> = (100..160).chain(0..31).collect();
        let b32: Vec<usize> = (100..160).chain(0..32).collect();
        let query = video(&[
            (far(0), 90),
            (far(1), 90),
            (far(2), 90),
            (near_a, 90),
            (hash(&b31), 90),
            (hash(&b32), 90),
            (a, 49),
            (far(3), 90),
            (far(4), 90),
            (far(5), 90),
        ]);
        let bank = video(&[(a, 100), (b, 100), (far(40), 100), (far(41), 100)]);
        (query, bank)
    }

    #[test]
    fn matched_frames_follow_the_reference_rule() {
        let (q, c) = query_and_bank();
        let v = compute(&q.to_signal_string(), &c.to_signal_string(), 31, None).expect("parses");
        assert_eq!(v.matched, Some(vec![3.0, 4.0]));
        assert_eq!(v.quality_frames, 9);
        // 2 of 9 distinct matchable query frames; 2 of 4 banked frames.
        let expected = vpdq::compare(&q, &c, &VpdqMatchOptions::default());
        assert!((v.query_pct - 200.0 / 9.0).abs() < 1e-9);
        assert_eq!(v.query_pct, expected.query_match_pct);
        assert_eq!(v.compared_pct, Some(50.0));
        assert_eq!(v.duration, 9.0);
        // A tighter per-frame threshold drops the distance-31 frame.
        let tight =
            compute(&q.to_signal_string(), &c.to_signal_string(), 30, None).expect("parses");
        assert_eq!(tight.matched, Some(vec![3.0]));
    }

    #[test]
    fn bad_signals_give_none_and_timestamps_format() {
        assert!(compute("not json", "[]", 31, None).is_none());
        assert_eq!(fmt_timestamp(3.9), "0:03");
        assert_eq!(fmt_timestamp(75.0), "1:15");
        assert_eq!(fmt_timestamp(3725.0), "1:02:05");
        assert_eq!(fmt_timestamp(f64::NAN), "0:00");
    }

    #[test]
    fn long_lists_collapse_and_ticks_are_bounded() {
        let v = VideoStrip {
            query_pct: 100.0,
            compared_pct: Some(90.0),
            distance_threshold: 31,
            duration: 999.0,
            matched: Some((0..1000).map(f64::from).collect()),
            quality_frames: 1000,
        };
        let html = render(&v, "s1").into_string();
        assert!(html.contains("0:19") && html.contains("980 more"), "{html}");
        assert_eq!(html.matches("class=\"tick\"").count(), STRIP_BUCKETS);
        assert!(html.contains("role=\"img\""));
        assert!(html.contains("1000 of 1000 query frames matched"));
        assert!(html.contains(", …"));
    }

    #[test]
    fn oversized_signals_are_not_compared() {
        // 2100 query frames × ~2070 distinct banked frames > MAX_PAIR_COMPARISONS.
        let frames: Vec<_> = (0..2100usize)
            .map(|i| (hash(&[i % 256, (i / 256) + 100, 255 - (i % 7)]), 90u8))
            .collect();
        let big = video(&frames);
        let n = big.matchable(50).len();
        assert!(
            frames.len() * n > MAX_PAIR_COMPARISONS,
            "{n} distinct frames"
        );
        let s = big.to_signal_string();
        let v = compute(&s, &s, 31, Some(0.95)).expect("parses");
        assert_eq!(v.matched, None);
        assert_eq!(v.compared_pct, None);
        assert!((v.query_pct - 95.0).abs() < 1e-9);
        let html = render(&v, "s2").into_string();
        assert!(html.contains("compared share not computed"));
        assert!(html.contains("Too many frames"));
    }
}
