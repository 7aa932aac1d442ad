//! Border detectors: where is the content inside a padded, letterboxed,
//! captioned or blur-filled image? Each detector looks at the working RGB
//! of a [`WorkImage`] and proposes one content rectangle.
//!
//! * **Uniform** (two tolerances): the reference colour of each side is
//!   the median colour of its outermost line, which must itself be uniform;
//!   a line is border while at most `content_frac` of its pixels differ
//!   from it by more than the tolerance (so a bright pixel, a watermark or
//!   JPEG ringing does not stop the scan, unlike black-only unletterboxing).
//!   Sides are scanned twice, the second time only across the content span
//!   of the other axis, so bars of different colours on different sides
//!   (a white caption strip over a black pillarbox) are both found.
//! * **Caption bar** (meme format): like uniform, but a line whose pixels
//!   are almost all either the bar colour or one other colour (text) is
//!   still bar; the bar ends at its last uniform line before the first
//!   content line, so the text is removed with it.
//! * **Blurred fill** (a 16:9 clip shown in a 9:16 frame over a blurred,
//!   zoomed copy of itself): the sharpness profile — mean |Laplacian| per
//!   row and column — is low in the fill; a side's lines count as border
//!   while they are below `blur_ratio` × the median line.
//!
//! Every candidate must keep at least `min_keep` of each side, or it is
//! refused.

use super::{Detector, Rect, WorkImage};

/// Detector settings (defaults measured with `bench/robust`).
#[derive(Clone, Debug, PartialEq)]
pub struct BorderOptions {
    /// Colour tolerances of the uniform detector (max channel difference).
    pub tolerances: [u8; 2],
    /// A line is border while at most this share of its pixels is content.
    pub content_frac: f32,
    /// Caption detector: colour tolerance.
    pub caption_tolerance: u8,
    /// Blurred-fill detector: a line is border while its sharpness is
    /// below this share of the median line's.
    pub blur_ratio: f32,
    /// Smallest share of width and height a candidate must keep.
    pub min_keep: f32,
    /// Smallest removal (share of a side) that counts as a border.
    pub min_border: f32,
    /// Most candidates returned.
    pub max_candidates: usize,
}

impl Default for BorderOptions {
    fn default() -> Self {
        BorderOptions {
            tolerances: [12, 40],
            content_frac: 0.08,
            caption_tolerance: 40,
            blur_ratio: 0.3,
            min_keep: 0.25,
            min_border: 0.015,
            max_candidates: 3,
        }
    }
}

/// One proposed content rectangle (source coordinates) and the detectors
/// that proposed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BorderCandidate {
    pub rect: Rect,
    pub detectors: Vec<Detector>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Top,
    Bottom,
    Left,
    Right,
}

const SIDES: [Side; 4] = [Side::Top, Side::Bottom, Side::Left, Side::Right];

struct View<'a> {
    w: usize,
    h: usize,
    rgb: &'a [u8],
}

impl View<'_> {
    /// Pixels of line `k` from `side`, restricted to `span` along the line.
    fn line(&self, side: Side, k: usize, span: (usize, usize), out: &mut Vec<[u8; 3]>) {
        out.clear();
        let px = |x: usize, y: usize| {
            let i = (y * self.w + x) * 3;
            [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
        };
        match side {
            Side::Top | Side::Bottom => {
                let y = if side == Side::Top { k } else { self.h - 1 - k };
                out.extend((span.0..span.1).map(|x| px(x, y)));
            }
            Side::Left | Side::Right => {
                let x = if side == Side::Left {
                    k
                } else {
                    self.w - 1 - k
                };
                out.extend((span.0..span.1).map(|y| px(x, y)));
            }
        }
    }

    fn depth(&self, side: Side) -> usize {
        match side {
            Side::Top | Side::Bottom => self.h,
            Side::Left | Side::Right => self.w,
        }
    }
}

fn close(a: [u8; 3], b: [u8; 3], tol: u8) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tol)
}

fn median_colour(px: &[[u8; 3]]) -> [u8; 3] {
    let mut out = [0u8; 3];
    let mut ch: Vec<u8> = Vec::with_capacity(px.len());
    for (c, o) in out.iter_mut().enumerate() {
        ch.clear();
        ch.extend(px.iter().map(|p| p[c]));
        let mid = ch.len() / 2;
        if !ch.is_empty() {
            *o = *ch.select_nth_unstable(mid).1;
        }
    }
    out
}

fn share_close(px: &[[u8; 3]], c: [u8; 3], tol: u8) -> f32 {
    if px.is_empty() {
        return 0.0;
    }
    px.iter().filter(|p| close(**p, c, tol)).count() as f32 / px.len() as f32
}

/// A caption-text line: mostly bar colour, and the rest mostly one other
/// colour (the text), not the many colours of a photo.
fn is_text_line(px: &[[u8; 3]], bar: [u8; 3], tol: u8, bar_share: f32) -> bool {
    if bar_share < 0.4 {
        return false;
    }
    let mut hist = [0u32; 512];
    let mut others = 0u32;
    for p in px {
        if !close(*p, bar, tol) {
            others += 1;
            let bin = (usize::from(p[0] >> 5) << 6)
                | (usize::from(p[1] >> 5) << 3)
                | usize::from(p[2] >> 5);
            hist[bin] += 1;
        }
    }
    if others == 0 {
        return true;
    }
    // The dominant bin with its neighbours along grey (anti-aliasing).
    let top = hist.iter().copied().max().unwrap_or(0);
    let text_share = top as f32 / px.len() as f32;
    bar_share + text_share >= 0.75
}

#[derive(Clone, Copy)]
enum Mode {
    Uniform { tol: u8, content_frac: f32 },
    Caption { tol: u8, content_frac: f32 },
}

/// Border thickness on `side` (lines) under `mode`, scanning only `span`.
fn scan(v: &View<'_>, side: Side, span: (usize, usize), mode: Mode, limit: usize) -> usize {
    let mut line = Vec::new();
    v.line(side, 0, span, &mut line);
    if line.is_empty() {
        return 0;
    }
    let (tol, content_frac, allow_text) = match mode {
        Mode::Uniform { tol, content_frac } => (tol, content_frac, false),
        Mode::Caption { tol, content_frac } => (tol, content_frac, true),
    };
    let reference = median_colour(&line);
    if share_close(&line, reference, tol) < 1.0 - content_frac {
        return 0;
    }
    let mut last_uniform = 0usize;
    let mut saw_text = false;
    let mut k = 0usize;
    while k < limit {
        v.line(side, k, span, &mut line);
        let s = share_close(&line, reference, tol);
        if s >= 1.0 - content_frac {
            last_uniform = k;
        } else if allow_text && is_text_line(&line, reference, tol, s) {
            saw_text = true;
        } else {
            break;
        }
        k += 1;
    }
    if allow_text {
        if !saw_text {
            return 0;
        }
        last_uniform + 1
    } else {
        k
    }
}

/// Thicknesses [top, bottom, left, right] of a scanning detector, two
/// passes (the second across the content span of the other axis).
fn scan_all(v: &View<'_>, mode: Mode, max_remove: f32) -> [usize; 4] {
    let mut t = [0usize; 4];
    for _pass in 0..2 {
        let mut next = [0usize; 4];
        for (i, side) in SIDES.iter().enumerate() {
            let span = match side {
                Side::Top | Side::Bottom => (t[2], v.w - t[3]),
                Side::Left | Side::Right => (t[0], v.h - t[1]),
            };
            if span.0 >= span.1 {
                return [0; 4];
            }
            let limit = (v.depth(*side) as f32 * max_remove) as usize;
            next[i] = scan(v, *side, span, mode, limit);
        }
        t = next;
    }
    t
}

/// Smallest luma standard deviation of a line of blurred fill: flatter
/// lines (a white page, a clear sky; JPEG noise on them stays below ~1)
/// are flat.
const BLUR_FILL_MIN_SPREAD: f32 = 2.0;

/// What the sharpness profile cut per side (`[top, bottom, left, right]`
/// lines), and whether every band it cut is flat.
struct BlurFill {
    cut: [usize; 4],
    /// A blurred fill is a blurred *picture*; bands with no spread at all
    /// (a white page, a clear sky) have no sharpness either but are no
    /// border unless a uniform detector says so: such a candidate only
    /// adds its vote to a uniform one.
    flat: bool,
}

/// Sharpness profile detector.
fn blur_fill(work: &WorkImage, ratio: f32, max_remove: f32) -> BlurFill {
    let (w, h) = (work.width as usize, work.height as usize);
    if w < 8 || h < 8 {
        return BlurFill {
            cut: [0; 4],
            flat: false,
        };
    }
    let l = &work.luma;
    let mut rows = vec![0f32; h];
    let mut cols = vec![0f32; w];
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let c = l[y * w + x];
            let lap = (4.0 * c
                - l[y * w + x - 1]
                - l[y * w + x + 1]
                - l[(y - 1) * w + x]
                - l[(y + 1) * w + x])
                .abs();
            rows[y] += lap;
            cols[x] += lap;
        }
    }
    rows.iter_mut().for_each(|v| *v /= (w - 2) as f32);
    cols.iter_mut().for_each(|v| *v /= (h - 2) as f32);
    // Spread (standard deviation of luma) of row or column `i`: a blurred
    // fill is a blurred *picture*, not a flat area (a white sky or page has
    // no sharpness either, and is no border unless the uniform detectors
    // say so). Computed only for the lines a side cuts.
    let spread = |columns: bool, i: usize| -> f32 {
        let len = if columns { h } else { w };
        let (mut s, mut s2) = (0f64, 0f64);
        for j in 0..len {
            let v = f64::from(if columns { l[j * w + i] } else { l[i * w + j] });
            s += v;
            s2 += v * v;
        }
        let m = s / len as f64;
        ((s2 / len as f64 - m * m).max(0.0).sqrt()) as f32
    };
    rows[0] = rows[1];
    rows[h - 1] = rows[h - 2];
    cols[0] = cols[1];
    cols[w - 1] = cols[w - 2];
    let side = |p: &[f32], columns: bool, from_end: bool| -> (usize, bool) {
        let n = p.len();
        let mut sorted = p.to_vec();
        sorted.sort_by(f32::total_cmp);
        let med = sorted[n / 2];
        if med <= 0.0 {
            return (0, false);
        }
        let thr = ratio * med;
        let limit = (n as f32 * max_remove) as usize;
        let at = |k: usize| if from_end { p[n - 1 - k] } else { p[k] };
        // Smoothed over 3 lines so one sharp line of JPEG noise does not stop it.
        let smooth = |k: usize| {
            let a = at(k);
            let b = if k + 1 < n { at(k + 1) } else { a };
            let c = if k > 0 { at(k - 1) } else { a };
            (a + b + c) / 3.0
        };
        let spread_at = |k: usize| spread(columns, if from_end { n - 1 - k } else { k });
        let mut k = 0;
        while k < limit && smooth(k) < thr {
            k += 1;
        }
        // Flat: no line of the band has any spread.
        (
            k,
            k > 0 && (0..k).all(|i| spread_at(i) < BLUR_FILL_MIN_SPREAD),
        )
    };
    let sides = [
        side(&rows, false, false),
        side(&rows, false, true),
        side(&cols, true, false),
        side(&cols, true, true),
    ];
    BlurFill {
        cut: sides.map(|(k, _)| k),
        flat: sides.iter().all(|(k, f)| *k == 0 || *f) && sides.iter().any(|(k, _)| *k > 0),
    }
}

/// Run every detector and return the distinct accepted candidates, the
/// best supported first.
pub fn detect_borders(work: &WorkImage, opts: &BorderOptions) -> Vec<BorderCandidate> {
    let v = View {
        w: work.width as usize,
        h: work.height as usize,
        rgb: &work.rgb,
    };
    if v.w < 8 || v.h < 8 {
        return Vec::new();
    }
    let max_remove = 1.0 - opts.min_keep;
    let mut found: Vec<([usize; 4], Detector)> = Vec::new();
    for (i, tol) in opts.tolerances.iter().enumerate() {
        let t = scan_all(
            &v,
            Mode::Uniform {
                tol: *tol,
                content_frac: opts.content_frac,
            },
            max_remove,
        );
        found.push((
            t,
            if i == 0 {
                Detector::Uniform
            } else {
                Detector::UniformLoose
            },
        ));
    }
    let t = scan_all(
        &v,
        Mode::Caption {
            tol: opts.caption_tolerance,
            content_frac: opts.content_frac,
        },
        max_remove,
    );
    // The uniform candidates (one per tolerance, strictest first).
    let uniform: Vec<[usize; 4]> = found.iter().map(|(t, _)| *t).collect();
    // A caption bar on one side, uniform borders elsewhere: combine.
    let u = uniform.last().copied().unwrap_or([0; 4]);
    let mut combined = t;
    for (c, v) in combined.iter_mut().zip(u) {
        if *c == 0 {
            *c = v;
        }
    }
    found.push((combined, Detector::Caption));
    let fill = blur_fill(work, opts.blur_ratio, max_remove);
    let (w0, h0) = (v.w as f32, v.h as f32);
    let near_uniform = |a: &[usize; 4]| {
        uniform.iter().any(|u| {
            (0..4).all(|i| {
                let side = if i < 2 { h0 } else { w0 };
                (u[i].abs_diff(a[i]) as f32) <= side * 0.01
            })
        })
    };
    if !fill.flat || near_uniform(&fill.cut) {
        found.push((fill.cut, Detector::BlurFill));
    }

    let (w, h) = (v.w as f32, v.h as f32);
    let mut out: Vec<([usize; 4], Vec<Detector>)> = Vec::new();
    for (t, det) in found {
        let fr = [
            t[0] as f32 / h,
            t[1] as f32 / h,
            t[2] as f32 / w,
            t[3] as f32 / w,
        ];
        if fr.iter().all(|f| *f < opts.min_border) {
            continue;
        }
        if 1.0 - fr[0] - fr[1] < opts.min_keep || 1.0 - fr[2] - fr[3] < opts.min_keep {
            continue;
        }
        // Sides under the minimum are not removed.
        let t = [0, 1, 2, 3].map(|i| if fr[i] < opts.min_border { 0 } else { t[i] });
        let near = |a: &[usize; 4]| {
            (a[0].abs_diff(t[0]) as f32) <= h * 0.01
                && (a[1].abs_diff(t[1]) as f32) <= h * 0.01
                && (a[2].abs_diff(t[2]) as f32) <= w * 0.01
                && (a[3].abs_diff(t[3]) as f32) <= w * 0.01
        };
        match out.iter_mut().find(|(a, _)| near(a)) {
            Some((_, dets)) => dets.push(det),
            None => out.push((t, vec![det])),
        }
    }
    out.sort_by_key(|(_, d)| std::cmp::Reverse(d.len()));
    out.truncate(opts.max_candidates);
    out.into_iter()
        .map(|(t, detectors)| {
            let r = Rect {
                x: t[2] as u32,
                y: t[0] as u32,
                w: (v.w - t[2] - t[3]) as u32,
                h: (v.h - t[0] - t[1]) as u32,
            };
            BorderCandidate {
                rect: work.to_source(r),
                detectors,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `w × h` RGB: rows above `top` filled by `fill(x, y)`, the rest a
    /// sharp structured picture.
    fn image(w: u32, h: u32, top: u32, fill: impl Fn(u32, u32) -> u8) -> WorkImage {
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let v = if y < top {
                    fill(x, y)
                } else {
                    // Sharp checker-and-rings content.
                    let r = ((x as f32 - 90.0).hypot(y as f32 - 150.0) / 3.0).sin();
                    let c = if (x / 6 + y / 6) % 2 == 0 { 60.0 } else { 0.0 };
                    (r * 80.0 + 110.0 + c) as u8
                };
                rgb.extend_from_slice(&[v, v, v]);
            }
        }
        WorkImage::from_rgb8(&rgb, w, h, 512).unwrap()
    }

    #[test]
    fn a_blurred_band_is_fill_but_a_flat_one_is_not() {
        let (w, h, top) = (240, 200, 80);
        // Smooth, varied (a blurred picture): low sharpness, real spread.
        let blurred = image(w, h, top, |x, y| {
            (120.0 + 60.0 * (x as f32 / 40.0).sin() + 20.0 * (y as f32 / 30.0).cos()) as u8
        });
        let t = blur_fill(&blurred, 0.3, 0.75);
        assert!(t.cut[0].abs_diff(top as usize) <= 3, "{:?}", t.cut);
        assert!(!t.flat);
        // Flat white (a page, a clear sky): no sharpness and no spread —
        // flat, so only a vote for a uniform candidate.
        let flat = image(w, h, top, |_, _| 255);
        let f = blur_fill(&flat, 0.3, 0.75);
        assert!(f.flat && f.cut[0] > 0, "{:?}", f.cut);
    }

    #[test]
    fn a_flat_band_is_a_vote_for_a_uniform_border() {
        let (w, h, top) = (240, 200, 80);
        // A plain white pad is still found, by the uniform detectors with
        // the fill's vote.
        let padded = image(w, h, top, |_, _| 255);
        let found = detect_borders(&padded, &BorderOptions::default());
        let best = found.first().expect("a candidate");
        assert!(best.rect.y.abs_diff(top) <= 3, "{best:?}");
        assert!(best.detectors.contains(&Detector::BlurFill), "{best:?}");
    }
}
