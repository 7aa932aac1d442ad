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
//! * **Caption bar** (meme format), top and bottom only: the outermost
//!   line is uniform; then text lines — bar colour plus glyph pixels, the
//!   ink and its anti-aliased blends with the bar, all on the segment from
//!   the bar colour to the ink colour; then bar colour again, pure (the
//!   strict tolerance); the bar ends at the last of those lines, where the
//!   picture starts. Further text runs (a second caption line, at most
//!   twice as tall as the first) followed by bar colour extend it. A
//!   caption bar found comes first among the candidates, and its query
//!   crops leave its edge uncut.
//! * **Blurred fill** (a 16:9 clip shown in a 9:16 frame over a blurred,
//!   zoomed copy of itself): the sharpness profile — mean |Laplacian| per
//!   row and column — is low in the fill; a fill is centred, so both ends
//!   of an axis must start below `blur_ratio` × the content's sharpness,
//!   and both get one thickness, placed on the strongest step between
//!   lines (the pasted picture's edge). With one axis's fill found, the
//!   other is looked at again inside its cut, knowing a fill is there
//!   (a pad fills all four sides). Flat bands (no spread along a
//!   line) only vote for a uniform candidate, unless each is one colour.
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
    /// Caption detector: colour tolerance of the bar above the text and
    /// of the glyph pixels.
    pub caption_tolerance: u8,
    /// Caption detector: colour tolerance of the bar lines below the text
    /// (the bar is pure colour; a near-white sky at the top of the picture
    /// is not).
    pub caption_strict_tolerance: u8,
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
            caption_strict_tolerance: 12,
            blur_ratio: 0.5,
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
    /// Sides `[left, top, right, bottom]` that are a caption bar's edge:
    /// the picture's own edge, exactly — the query crops leave them uncut.
    pub caption_sides: [bool; 4],
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

/// Smallest share of bar-coloured pixels on a caption-text line (the
/// gaps between letters and the margins of a centred caption).
const TEXT_MIN_BAR_SHARE: f32 = 0.2;

/// A caption-text line: every pixel, up to `content_frac`, is either the
/// bar colour or a glyph pixel — the ink colour or an anti-aliased blend
/// of ink and bar, all of which lie on the segment from the bar colour to
/// the ink colour (within `tol` per channel). The ink is the pixel
/// farthest from the bar colour. A picture's line has colours off any one
/// segment; a line of black text on a white bar has greys only.
fn is_text_line(px: &[[u8; 3]], bar: [u8; 3], tol: u8, bar_share: f32, content_frac: f32) -> bool {
    if px.is_empty() || bar_share < TEXT_MIN_BAR_SHARE {
        return false;
    }
    let diff = |p: [u8; 3]| [0, 1, 2].map(|c| f32::from(p[c]) - f32::from(bar[c]));
    let far = |p: &[u8; 3]| diff(*p).iter().map(|v| v.abs()).sum::<f32>();
    let Some(ink) = px.iter().max_by(|a, b| far(a).total_cmp(&far(b))) else {
        return false;
    };
    let u = diff(*ink);
    let uu: f32 = u.iter().map(|v| v * v).sum();
    if uu <= 0.0 {
        return true;
    }
    let tol = f32::from(tol);
    let on = px
        .iter()
        .filter(|p| {
            let d = diff(**p);
            let t = (d.iter().zip(u).map(|(a, b)| a * b).sum::<f32>() / uu).clamp(0.0, 1.0);
            d.iter().zip(u).all(|(a, b)| (a - t * b).abs() <= tol)
        })
        .count();
    on as f32 / px.len() as f32 >= 1.0 - content_frac
}

#[derive(Clone, Copy)]
enum Mode {
    Uniform {
        tol: u8,
        content_frac: f32,
    },
    Caption {
        tol: u8,
        strict_tol: u8,
        content_frac: f32,
    },
}

/// Border thickness on `side` (lines) under `mode`, scanning only `span`.
fn scan(v: &View<'_>, side: Side, span: (usize, usize), mode: Mode, limit: usize) -> usize {
    let mut line = Vec::new();
    v.line(side, 0, span, &mut line);
    if line.is_empty() {
        return 0;
    }
    let (tol, content_frac) = match mode {
        Mode::Uniform { tol, content_frac } => (tol, content_frac),
        Mode::Caption {
            tol,
            strict_tol,
            content_frac,
        } => {
            // Caption text runs along the bar: a caption bar is on top or
            // at the bottom. On the left and right sides the scan read a
            // picture's own columns as text (bench/robust: 6 of the 8
            // false caption bars of the logo queries, one of them 42 bits
            // from an unrelated window).
            return match side {
                Side::Top | Side::Bottom => {
                    scan_caption(v, side, span, (tol, strict_tol), content_frac, limit)
                }
                Side::Left | Side::Right => 0,
            };
        }
    };
    let reference = median_colour(&line);
    if share_close(&line, reference, tol) < 1.0 - content_frac {
        return 0;
    }
    let mut k = 0usize;
    while k < limit {
        v.line(side, k, span, &mut line);
        if share_close(&line, reference, tol) < 1.0 - content_frac {
            break;
        }
        k += 1;
    }
    k
}

/// What a line of a caption bar is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CaptionLine {
    /// Bar colour (up to `content_frac` of other pixels).
    Bar,
    /// Bar colour and glyph pixels ([`is_text_line`]).
    Text,
}

/// A later run of text lines (a second line of the caption) is part of
/// the bar only if it is at most this many times as tall as the first and
/// bar colour follows it; a picture whose top lines look like text (a
/// grey photo, a bright sky with a few dark pixels) goes on for longer.
const CAPTION_MAX_LATER_TEXT: usize = 2;

/// Caption bar thickness on `side` (lines): bar-coloured lines (the
/// outermost uniform at `tol.0`), text lines, bar-coloured lines again —
/// below the text a line must be bar colour at the strict `tol.1`, the bar
/// being one pure colour — and the bar ends at the last of them, where a
/// line that is neither starts the picture (its edge). Further runs of
/// text, each followed by bar colour, extend it (a caption of several
/// lines). No text, or no bar colour below it: no caption bar.
fn scan_caption(
    v: &View<'_>,
    side: Side,
    span: (usize, usize),
    tol: (u8, u8),
    content_frac: f32,
    limit: usize,
) -> usize {
    let mut line = Vec::new();
    v.line(side, 0, span, &mut line);
    let reference = median_colour(&line);
    if line.is_empty() || share_close(&line, reference, tol.0) < 1.0 - content_frac {
        return 0;
    }
    // Runs of line classes: (class, first line, lines).
    let mut runs: Vec<(CaptionLine, usize, usize)> = Vec::new();
    let mut saw_text = false;
    for k in 0..limit {
        v.line(side, k, span, &mut line);
        let s = share_close(&line, reference, tol.0);
        let class = if s >= 1.0 - content_frac
            && (!saw_text || share_close(&line, reference, tol.1) >= 1.0 - content_frac)
        {
            CaptionLine::Bar
        } else if is_text_line(&line, reference, tol.0, s, content_frac) {
            saw_text = true;
            CaptionLine::Text
        } else {
            break;
        };
        match runs.last_mut() {
            Some((c, _, n)) if *c == class => *n += 1,
            _ => runs.push((class, k, 1)),
        }
    }
    let [(CaptionLine::Bar, ..), (CaptionLine::Text, _, first_text), (CaptionLine::Bar, below, n), rest @ ..] =
        runs.as_slice()
    else {
        return 0;
    };
    let mut end = below + n;
    for pair in rest.chunks_exact(2) {
        match pair {
            [(CaptionLine::Text, _, t), (CaptionLine::Bar, b, n)]
                if *t <= CAPTION_MAX_LATER_TEXT * first_text =>
            {
                end = b + n
            }
            _ => break,
        }
    }
    end
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
    /// adds its vote to a uniform one…
    flat: bool,
    /// …unless every cut band is also of one colour (line means within
    /// [`BLUR_FILL_ONE_COLOUR`] of its outermost line's): a bar, which a
    /// uniform scan ran past (a dark picture edge on a black bar) and
    /// the step placed.
    one_colour: bool,
}

/// Largest luma difference between the mean of a flat band's lines and
/// its outermost line for the band to count as one colour.
const BLUR_FILL_ONE_COLOUR: f32 = 12.0;

/// Sharpness (mean |Laplacian|) and step to the previous line (mean
/// |difference|) per row, across the columns `xs`, and per column, across
/// the rows `ys`: `(rows, row_step, cols, col_step)`.
fn profiles(
    l: &[f32],
    w: usize,
    h: usize,
    xs: (usize, usize),
    ys: (usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut rows = vec![0f32; h];
    let mut cols = vec![0f32; w];
    let mut row_step = vec![0f32; h];
    let mut col_step = vec![0f32; w];
    for y in 0..h {
        let in_ys = y >= ys.0 && y < ys.1;
        for x in 0..w {
            let in_xs = x >= xs.0 && x < xs.1;
            if !in_xs && !in_ys {
                continue;
            }
            let c = l[y * w + x];
            if y > 0 && in_xs {
                row_step[y] += (c - l[(y - 1) * w + x]).abs();
            }
            if x > 0 && in_ys {
                col_step[x] += (c - l[y * w + x - 1]).abs();
            }
            if y == 0 || x == 0 || y == h - 1 || x == w - 1 {
                continue;
            }
            let lap = (4.0 * c
                - l[y * w + x - 1]
                - l[y * w + x + 1]
                - l[(y - 1) * w + x]
                - l[(y + 1) * w + x])
                .abs();
            if in_xs {
                rows[y] += lap;
            }
            if in_ys {
                cols[x] += lap;
            }
        }
    }
    let nx = xs.1.min(w - 1).saturating_sub(xs.0.max(1)).max(1) as f32;
    let ny = ys.1.min(h - 1).saturating_sub(ys.0.max(1)).max(1) as f32;
    rows.iter_mut().for_each(|v| *v /= nx);
    cols.iter_mut().for_each(|v| *v /= ny);
    rows[0] = rows[1];
    rows[h - 1] = rows[h - 2];
    cols[0] = cols[1];
    cols[w - 1] = cols[w - 2];
    (rows, row_step, cols, col_step)
}

/// Lines past the end of the low-sharpness run in which the boundary edge
/// is looked for: the Laplacian of the last fill line already sees the
/// step to the content, and the profile is smoothed over 3 lines, so the
/// run stops 1–3 lines short of the boundary.
const BLUR_FILL_EDGE_SLACK: usize = 3;

/// The boundary step must be this many times the median step between the
/// fill's own lines.
const BLUR_FILL_EDGE_CONTRAST: f32 = 4.0;

/// A pair of paste edges must stand out this many times from the median
/// step between adjacent lines (no sharpness profile backs it).
const PASTE_EDGE_CONTRAST: f32 = 8.0;

/// The depth `k` (lines from each end, at most `limit / 2`) at which both
/// ends of an axis have a step between adjacent lines — the two edges of a
/// centred pasted picture — when the weaker of the two steps is at least
/// [`PASTE_EDGE_CONTRAST`] × the median step; else `(0, 0)`.
///
/// The fallback of the blurred-fill detector for soft pictures: on bench
/// seed 0, 8 of the 105 `fill_9x16_blur` queries (gradient and bokeh
/// wallpapers) got no fill candidate from the sharpness profile, and this
/// pair lies at the true depth in all 8 (6.6–81 × the median step); on
/// the uncut originals the strongest pair stands out ≥ 8× in 3 of 105 (a
/// framed picture, stripes, a flat page — the flat-band rule takes the
/// last).
///
/// `geometric` (the second look at an axis, a fill found on the other):
/// a pair is scored by the geometric mean of its two steps, not the weaker
/// one — a picture whose own ground is flat at one end leaves no step
/// there, while the other end's edge stands out 13–150×.
fn paste_edges(step: &[f32], limit: usize, geometric: bool) -> (usize, usize) {
    let n = step.len();
    if n < 8 {
        return (0, 0);
    }
    let mut steps: Vec<f32> = step[1..].to_vec();
    steps.sort_by(f32::total_cmp);
    let median = steps[steps.len() / 2];
    let pair = |k: usize| {
        if geometric {
            (step[k] * step[n - k]).sqrt()
        } else {
            step[k].min(step[n - k])
        }
    };
    let Some(k) = (2..=(limit / 2).min(n / 2 - 1)).max_by(|a, b| pair(*a).total_cmp(&pair(*b)))
    else {
        return (0, 0);
    };
    if pair(k) > 0.0 && pair(k) >= PASTE_EDGE_CONTRAST * median {
        (k, k)
    } else {
        (0, 0)
    }
}

/// On the second look at an axis (the other axis's fill found), the fill
/// found must be at most this many times as sharp (median line) as the
/// first axis's. Measured on bench seeds 0 and 2: a true fill on both axes
/// of a `pad10_blur` / `pad20_blur` query is at most 2.2× (the fill beside
/// a detailed edge of the picture is sharper), the picture's own detail cut
/// out of a `fill_9x16_blur` query (no fill at its sides) 1.8–10×, all but
/// one of 13 ≥ 3×.
const BLUR_FILL_RETRY_SHARPER: f32 = 2.5;

/// Median sharpness of the fill lines of a cut `k` lines deep at both ends
/// of profile `p`, leaving out the [`BLUR_FILL_EDGE_SLACK`] lines next to
/// the edge (their Laplacian sees it).
fn fill_level(p: &[f32], k: usize) -> f32 {
    let n = p.len();
    let inner = k.saturating_sub(BLUR_FILL_EDGE_SLACK).max(1).min(n / 2);
    let mut v: Vec<f32> = p[..inner].iter().chain(&p[n - inner..]).copied().collect();
    v.sort_by(f32::total_cmp);
    // A profile of one line has no ends to measure.
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Largest [`band_step`] of a blurred fill: the median line of a fill
/// band steps by at most this much luma between neighbouring pixels along
/// it (a blur leaves none; JPEG blocking a few levels). Measured on
/// bench/robust seed 0's blurred pads and 9:16 fills (2,059 candidate
/// axes): median 2.1, 90th percentile 4.4, 99th 12.8; the bands of
/// flat-block graphics step by 42–114.
const BLUR_FILL_MAX_STEP: f32 = 24.0;

/// `cut` (`[top, bottom, left, right]`) without an axis whose bands step
/// sharply along their lines. A blurred fill has no sharp step along its
/// lines; flat-block graphics (tiles, infographics, posters of colour
/// fields) have low sharpness across most lines too, but their bands hold
/// the blocks' straight edges: such an axis is no fill (on both sides of a
/// match, spurious fills of such graphics gave sub-rectangles of a few
/// blocks each, which came 26–36 bits from unrelated ones).
fn stepless(l: &[f32], w: usize, h: usize, cut: [usize; 4]) -> [usize; 4] {
    let [mut top, mut bottom, mut left, mut right] = cut;
    if (top > 0 || bottom > 0) && band_step(l, w, h, false, top, bottom) > BLUR_FILL_MAX_STEP {
        (top, bottom) = (0, 0);
    }
    if (left > 0 || right > 0) && band_step(l, w, h, true, left, right) > BLUR_FILL_MAX_STEP {
        (left, right) = (0, 0);
    }
    [top, bottom, left, right]
}

/// The median, over the lines of the bands cut from both ends of an axis
/// (`a` lines from the start, `b` from the end; rows when `columns` is
/// false), of each line's largest luma step between neighbouring pixels
/// along it, leaving out the two lines next to each band's inner edge.
fn band_step(l: &[f32], w: usize, h: usize, columns: bool, a: usize, b: usize) -> f32 {
    let (n, len) = if columns { (w, h) } else { (h, w) };
    let at = |line: usize, j: usize| {
        if columns {
            l[j * w + line]
        } else {
            l[line * w + j]
        }
    };
    let lines = (0..a.saturating_sub(2)).chain(n.saturating_sub(b.saturating_sub(2))..n);
    let mut steps: Vec<f32> = lines
        .map(|line| {
            (1..len)
                .map(|j| (at(line, j) - at(line, j - 1)).abs())
                .fold(0.0, f32::max)
        })
        .collect();
    if steps.is_empty() {
        return 0.0;
    }
    steps.sort_by(f32::total_cmp);
    steps[steps.len() / 2]
}

/// Sharpness profile detector, with the boundary placed on the step edge.
///
/// A blurred fill is the picture itself, zoomed and blurred, with the
/// picture pasted sharp on top, **centred** (phone apps and editors centre
/// it). So: (1) the reference sharpness is the median of the central
/// quarter of the lines, which the content always covers — a 16:9 clip in
/// a 9:16 frame leaves two thirds of the rows blurred, and a median over
/// every line would be a fill line; (2) when both ends of an axis start
/// blurred the fill is taken as centred, one thickness for both ends, so a
/// smooth sky at the top of the picture (no sharpness either) cannot
/// stretch the cut into the content while the other end is sharp; (3) the
/// boundary is the line, within the low-sharpness run and a few lines past
/// it, with the strongest step between adjacent lines (the pasted
/// picture's edge against the fill), not the first line over the
/// sharpness threshold, which smoothing puts 1–3 lines short.
fn blur_fill(work: &WorkImage, ratio: f32, max_remove: f32) -> BlurFill {
    let (w, h) = (work.width as usize, work.height as usize);
    if w < 8 || h < 8 {
        return BlurFill {
            cut: [0; 4],
            flat: false,
            one_colour: false,
        };
    }
    let l = &work.luma;
    let (mut rows, mut row_step, mut cols, mut col_step) = profiles(l, w, h, (0, w), (0, h));
    // Spread (standard deviation of luma) of row or column `i`: a blurred
    // fill is a blurred *picture*, not a flat area (a white sky or page has
    // no sharpness either, and is no border unless the uniform detectors
    // say so). Computed only for the lines a side cuts.
    let spread = |columns: bool, i: usize| -> (f32, f32) {
        let len = if columns { h } else { w };
        let (mut s, mut s2) = (0f64, 0f64);
        for j in 0..len {
            let v = f64::from(if columns { l[j * w + i] } else { l[i * w + j] });
            s += v;
            s2 += v * v;
        }
        let m = s / len as f64;
        (m as f32, ((s2 / len as f64 - m * m).max(0.0).sqrt()) as f32)
    };
    // One axis: lines cut from its start and its end.
    // `retry`: the other axis's fill is found, this axis is looked at
    // across its content span (see below).
    let axis = |p: &[f32], step: &[f32], retry: bool| -> (usize, usize) {
        let n = p.len();
        let mut central = p[n * 3 / 8..(n * 5 / 8).max(n * 3 / 8 + 1)].to_vec();
        central.sort_by(f32::total_cmp);
        let mut all = p.to_vec();
        all.sort_by(f32::total_cmp);
        let reference = central[central.len() / 2].max(all[n * 3 / 4]);
        if reference <= 0.0 {
            return (0, 0);
        }
        let thr = ratio * reference;
        let limit = (n as f32 * max_remove) as usize;
        let at = |k: usize, from_end: bool| if from_end { p[n - 1 - k] } else { p[k] };
        // Smoothed over 3 lines so one sharp line of JPEG noise does not stop it.
        let smooth = |k: usize, from_end: bool| {
            let a = at(k, from_end);
            let b = if k + 1 < n { at(k + 1, from_end) } else { a };
            let c = if k > 0 { at(k - 1, from_end) } else { a };
            (a + b + c) / 3.0
        };
        let run = |from_end: bool| {
            let mut k = 0;
            while k < limit && smooth(k, from_end) < thr {
                k += 1;
            }
            k
        };
        // The step at the boundary after cutting k lines from either end.
        let edge = |k: usize, from_end: bool| -> f32 {
            match from_end {
                false => step.get(k).copied().unwrap_or(0.0),
                true => n
                    .checked_sub(k)
                    .and_then(|i| step.get(i))
                    .copied()
                    .unwrap_or(0.0),
            }
        };
        let best = |hi: usize, score: &dyn Fn(usize) -> f32| -> usize {
            (1..=hi.max(1))
                .max_by(|a, b| score(*a).total_cmp(&score(*b)))
                .unwrap_or(0)
        };
        let (a, b) = (run(false), run(true));
        if a == 0 || b == 0 {
            // A blurred fill is centred: low sharpness at one end only is
            // the picture's own (a sky, a smooth wall), not a fill. A soft
            // picture (a gradient wallpaper, a bokeh photo) is no sharper
            // than its blurred copy, so neither end starts "blurred"; what
            // it does leave is the pasted picture's two straight edges, one
            // at each end at the same depth.
            return paste_edges(step, limit, retry);
        }
        // On a retry the fill is known to be there, and the two ends'
        // runs differ (the fill next to a detailed edge of the picture is
        // sharper): the edge is looked for down to the deeper run.
        let deep = if retry { a.max(b) } else { a.min(b) };
        let hi = (deep + BLUR_FILL_EDGE_SLACK).min(limit / 2);
        let score = |k: usize| edge(k, false) + edge(k, true);
        let k = best(hi, &score);
        // The pasted picture's edge stands out from the steps inside the
        // fill (blurred: small); a smooth picture running into its own
        // blurred copy has no such edge, and no fill is claimed.
        let mut inside: Vec<f32> = (1..k).map(score).collect();
        inside.sort_by(f32::total_cmp);
        let typical = inside.get(inside.len() / 2).copied().unwrap_or(0.0);
        if k < 2 || score(k) < BLUR_FILL_EDGE_CONTRAST * typical {
            if retry {
                return paste_edges(step, limit, true);
            }
            return (0, 0);
        }
        (k, k)
    };
    let (top, bottom) = axis(&rows, &row_step, false);
    let (left, right) = axis(&cols, &col_step, false);
    let [mut top, mut bottom, mut left, mut right] = stepless(l, w, h, [top, bottom, left, right]);
    // A pad fills all four sides: with one axis's fill found, the other
    // axis is looked at again across the content span only (its lines
    // then hold no fill of the first axis, which made every line look
    // alike). That second look knows a fill is there: it searches the
    // edge down to the deeper of the two runs, and falls back on the
    // paste edges scored by the geometric mean of the two ends' steps (a
    // picture whose edge at one end is its own flat ground leaves no step
    // there). Its fill must be as blurred as the first axis's, or it is
    // the picture's own detail: a 16:9 clip in a 9:16 frame has no fill
    // at its sides (bench/robust, docs/ROBUST.md).
    let second_look = |first: &[f32], k: usize, p: &[f32], step: &[f32]| {
        let (a, b) = axis(p, step, true);
        if a > 0 && fill_level(p, a) > BLUR_FILL_RETRY_SHARPER * fill_level(first, k).max(0.05) {
            (0, 0)
        } else {
            (a, b)
        }
    };
    if (top > 0) != (left > 0) {
        if top > 0 {
            (_, _, cols, col_step) = profiles(l, w, h, (0, w), (top, h - bottom));
            (left, right) = second_look(&rows, top, &cols, &col_step);
        } else {
            (rows, row_step, _, _) = profiles(l, w, h, (left, w - right), (0, h));
            (top, bottom) = second_look(&cols, left, &rows, &row_step);
        }
    }
    let [top, bottom, left, right] = stepless(l, w, h, [top, bottom, left, right]);
    let cut = [top, bottom, left, right];
    // Flat: no line of any band cut has any spread; one colour: and every
    // line's mean is the outermost line's.
    let flat_band = |columns: bool, k: usize, from_end: bool| -> (bool, bool) {
        let n = if columns { w } else { h };
        let line = |i: usize| spread(columns, if from_end { n - 1 - i } else { i });
        let outer = line(0).0;
        let mut one_colour = true;
        for i in 0..k {
            let (m, sd) = line(i);
            if sd >= BLUR_FILL_MIN_SPREAD {
                return (false, false);
            }
            one_colour &= (m - outer).abs() <= BLUR_FILL_ONE_COLOUR;
        }
        (true, one_colour)
    };
    let flats = [
        flat_band(false, top, false),
        flat_band(false, bottom, true),
        flat_band(true, left, false),
        flat_band(true, right, true),
    ];
    let any = cut.iter().any(|k| *k > 0);
    let flat = any && (0..4).all(|i| cut[i] == 0 || flats[i].0);
    BlurFill {
        cut,
        flat,
        one_colour: flat && (0..4).all(|i| cut[i] == 0 || flats[i].1),
    }
}

/// What every detector proposes on its own (thicknesses `[top, bottom,
/// left, right]` in working lines), before refusals and merging, and
/// the sides `[top, bottom, left, right]` where the caption detector found
/// a caption bar of its own.
fn raw_candidates(
    work: &WorkImage,
    opts: &BorderOptions,
) -> (Vec<([usize; 4], Detector)>, [bool; 4]) {
    let v = View {
        w: work.width as usize,
        h: work.height as usize,
        rgb: &work.rgb,
    };
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
            strict_tol: opts.caption_strict_tolerance,
            content_frac: opts.content_frac,
        },
        max_remove,
    );
    // The uniform candidates (one per tolerance, strictest first).
    let uniform: Vec<[usize; 4]> = found.iter().map(|(t, _)| *t).collect();
    // A caption bar on one side, uniform borders elsewhere: combine. With
    // a caption found, a side is taken from the uniform scans only where
    // both tolerances agree on it (within 1 % of the side): a pad is one
    // pure colour and both stop at its edge, while the picture's own flat
    // area (a dark ground, a sky) fades out and the loose scan runs on —
    // which cut 25–46 % off the bottom of meme queries (bench/robust).
    // With none, the loose uniform candidate, as before.
    let (strict, loose) = (
        uniform.first().copied().unwrap_or([0; 4]),
        uniform.last().copied().unwrap_or([0; 4]),
    );
    let captioned = t.iter().any(|c| *c > 0);
    let mut combined = t;
    for (i, c) in combined.iter_mut().enumerate() {
        let side = if i < 2 { v.h } else { v.w } as f32;
        if *c > 0 {
            continue;
        }
        if !captioned {
            *c = loose[i];
        } else if strict[i].abs_diff(loose[i]) as f32 <= side * 0.01 {
            *c = strict[i];
        }
    }
    found.push((combined, Detector::Caption));
    let fill = blur_fill(work, opts.blur_ratio, max_remove);
    let near_uniform = uniform.iter().any(|u| near(u, &fill.cut, v.w, v.h));
    if !fill.flat || fill.one_colour || near_uniform {
        found.push((fill.cut, Detector::BlurFill));
    }
    (found, t.map(|c| c > 0))
}

/// Two candidates' thicknesses (`[top, bottom, left, right]` lines of a
/// `w × h` working image) within 1 % of the side on every side: the same
/// rectangle, found twice.
fn near(a: &[usize; 4], b: &[usize; 4], w: usize, h: usize) -> bool {
    (0..4).all(|i| {
        let side = if i < 2 { h } else { w } as f32;
        (a[i].abs_diff(b[i]) as f32) <= side * 0.01
    })
}

/// A candidate's thicknesses after the refusals (`None`: refused, or no
/// border at all); sides under `min_border` are not removed.
fn accept(t: [usize; 4], w: usize, h: usize, opts: &BorderOptions) -> Option<[usize; 4]> {
    let (w, h) = (w as f32, h as f32);
    let fr = [
        t[0] as f32 / h,
        t[1] as f32 / h,
        t[2] as f32 / w,
        t[3] as f32 / w,
    ];
    if fr.iter().all(|f| *f < opts.min_border) {
        return None;
    }
    if 1.0 - fr[0] - fr[1] < opts.min_keep || 1.0 - fr[2] - fr[3] < opts.min_keep {
        return None;
    }
    Some([0, 1, 2, 3].map(|i| if fr[i] < opts.min_border { 0 } else { t[i] }))
}

fn to_rect(work: &WorkImage, t: [usize; 4]) -> Rect {
    let (w, h) = (work.width as usize, work.height as usize);
    work.to_source(Rect {
        x: t[2] as u32,
        y: t[0] as u32,
        w: (w - t[2] - t[3]) as u32,
        h: (h - t[0] - t[1]) as u32,
    })
}

/// Each detector's own accepted rectangle (source pixels), unmerged — to
/// measure the detectors one by one (bench/robust). `None`: the detector
/// found no border, or its candidate was refused.
pub fn detector_rects(work: &WorkImage, opts: &BorderOptions) -> Vec<(Detector, Option<Rect>)> {
    let (w, h) = (work.width as usize, work.height as usize);
    if w < 8 || h < 8 {
        return Vec::new();
    }
    raw_candidates(work, opts)
        .0
        .into_iter()
        .map(|(t, d)| (d, accept(t, w, h, opts).map(|t| to_rect(work, t))))
        .collect()
}

/// Run every detector and return the distinct accepted candidates, the
/// best supported first.
pub fn detect_borders(work: &WorkImage, opts: &BorderOptions) -> Vec<BorderCandidate> {
    let (w, h) = (work.width as usize, work.height as usize);
    if w < 8 || h < 8 {
        return Vec::new();
    }
    let mut out: Vec<([usize; 4], Vec<Detector>)> = Vec::new();
    let (raw, caption_sides) = raw_candidates(work, opts);
    let captioned = caption_sides.iter().any(|c| *c);
    for (t, det) in raw {
        let Some(t) = accept(t, w, h, opts) else {
            continue;
        };
        match out.iter_mut().find(|(a, _)| near(a, &t, w, h)) {
            Some((a, dets)) => {
                // The fill detector puts each side on the strongest step
                // between lines; a uniform scan stops wherever JPEG
                // ringing or an edge-coloured picture takes it, a line
                // or two off: the step's place wins.
                if det == Detector::BlurFill {
                    *a = t;
                }
                dets.push(det)
            }
            None => out.push((t, vec![det])),
        }
    }
    out.sort_by_key(|(_, d)| std::cmp::Reverse(d.len()));
    // A caption bar found comes first (the best candidate is the one the
    // query crops are cut from): the uniform scans, which agree with each
    // other, stop at the caption's first line of text, so their rectangle
    // keeps the text; the caption's is the only one without it.
    if let Some(i) = out
        .iter()
        .position(|(_, d)| d.contains(&Detector::Caption))
        .filter(|_| captioned)
    {
        let c = out.remove(i);
        out.insert(0, c);
    }
    // The scanning detectors agree with each other on a blurred fill (its
    // outer lines look uniform at a loose tolerance) and would outvote the
    // one detector made for it: a blurred-fill candidate keeps a place.
    if let Some(i) = out
        .iter()
        .position(|(_, d)| d.contains(&Detector::BlurFill))
        .filter(|i| *i >= opts.max_candidates && opts.max_candidates > 0)
    {
        let c = out.remove(i);
        out.insert(opts.max_candidates - 1, c);
    }
    out.truncate(opts.max_candidates);
    out.into_iter()
        .map(|(t, detectors)| {
            let c = captioned && detectors.contains(&Detector::Caption);
            let [top, bottom, left, right] = caption_sides.map(|s| c && s);
            BorderCandidate {
                rect: to_rect(work, t),
                detectors,
                caption_sides: [left, top, right, bottom],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `w × h` RGB: the first `band` rows and the last `band` rows filled
    /// by `fill(x, y)` (a centred fill), the rest a sharp structured
    /// picture.
    fn image(w: u32, h: u32, band: u32, fill: impl Fn(u32, u32) -> u8) -> WorkImage {
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let v = if y < band || y >= h - band {
                    fill(x, y)
                } else {
                    // Sharp content: rings and pixel noise (no period a
                    // detector could line up with the frame's edge).
                    let r = ((x as f32 - 90.0).hypot(y as f32 - 150.0) / 3.0).sin();
                    let n = (x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663)) % 61;
                    (r * 80.0 + 100.0 + n as f32) as u8
                };
                rgb.extend_from_slice(&[v, v, v]);
            }
        }
        WorkImage::from_rgb8(&rgb, w, h, 512).unwrap()
    }

    /// Smooth, varied (a blurred picture): low sharpness, real spread.
    fn blurred(x: u32, y: u32) -> u8 {
        (120.0 + 60.0 * (x as f32 / 40.0).sin() + 20.0 * (y as f32 / 30.0).cos()) as u8
    }

    #[test]
    fn fill_level_of_a_profile_too_short_to_have_ends_is_zero() {
        // The second look can meet a one-line profile (an image one pixel
        // wide): no ends to measure, no panic.
        assert_eq!(fill_level(&[3.0], 0), 0.0);
        assert_eq!(fill_level(&[], 4), 0.0);
        assert_eq!(fill_level(&[1.0, 9.0, 9.0, 1.0], 1), 1.0);
    }

    #[test]
    fn a_blurred_band_is_fill_but_a_flat_one_is_not() {
        let (w, h, band) = (240, 300, 60);
        let t = blur_fill(&image(w, h, band, blurred), 0.5, 0.75);
        assert_eq!(t.cut, [band as usize, band as usize, 0, 0], "{:?}", t.cut);
        assert!(!t.flat);
        // Flat white (a page, a clear sky): no sharpness and no spread —
        // flat, so only a vote for a uniform candidate.
        let f = blur_fill(&image(w, h, band, |_, _| 255), 0.5, 0.75);
        assert!(f.flat && f.cut[0] > 0, "{:?}", f.cut);
    }

    #[test]
    fn a_fill_at_one_end_only_is_no_fill() {
        // A blurred fill is centred: low sharpness at the top only is the
        // picture's own (a sky), and cuts nothing.
        let (w, h) = (240, 300);
        let img = image(w, h + 60, 60, blurred);
        let one_end = WorkImage::from_rgb8(&img.rgb[..(w * h * 3) as usize], w, h, 512).unwrap();
        let t = blur_fill(&one_end, 0.5, 0.75);
        assert_eq!(t.cut, [0; 4], "{:?}", t.cut);
    }

    /// A soft picture (`100 ± 40`, one slow wave across and a gentle ramp
    /// down) between bands of a fill that is no smoother than it (`160 ±
    /// 40`, a fast wave): the sharpness profile sees no blurred end, the
    /// paste edges (a step of ≈ 60 levels across every column) place it.
    fn soft_in_fill(w: u32, h: u32, band: u32, bottom_edge: bool) -> WorkImage {
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let fill = y < band || (bottom_edge && y >= h - band);
                let v = if fill {
                    160.0 + 40.0 * (x as f32 / 4.0).cos()
                } else {
                    100.0 + 40.0 * (x as f32 / 90.0).sin() + 0.2 * (y - band) as f32
                };
                let v = v as u8;
                rgb.extend_from_slice(&[v, v, v]);
            }
        }
        WorkImage::from_rgb8(&rgb, w, h, 512).unwrap()
    }

    #[test]
    fn paste_edges_cut_a_soft_picture_out_of_its_fill() {
        let (w, h, band) = (240, 420, 130);
        let t = blur_fill(&soft_in_fill(w, h, band, true), 0.5, 0.75);
        assert_eq!(t.cut, [band as usize, band as usize, 0, 0], "{:?}", t.cut);
        assert!(!t.flat);
        // One edge only (the picture's own horizon, no centred paste):
        // nothing is cut.
        let t = blur_fill(&soft_in_fill(w, h, band, false), 0.5, 0.75);
        assert_eq!(t.cut, [0; 4], "{:?}", t.cut);
    }

    /// 5×7 bitmaps of a few capital letters, `#` ink.
    fn glyph(c: char) -> [&'static str; 7] {
        match c {
            'M' => [
                "#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#",
            ],
            'E' => [
                "#####", "#....", "#....", "####.", "#....", "#....", "#####",
            ],
            'T' => [
                "#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..",
            ],
            'O' => [
                ".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.",
            ],
            _ => ["....."; 7],
        }
    }

    /// A meme: a white caption bar `bar` rows high with `text` in black,
    /// anti-aliased (each pixel the ink share of a 4×4 supersampled cell,
    /// glyph edges on fractional pixels), centred across, `text_h` rows
    /// high from row `text_top`, over the structured picture of [`image`].
    fn meme(w: u32, h: u32, bar: u32, text: &str, text_top: f32, text_h: f32) -> WorkImage {
        let picture = image(w, h, 0, |_, _| 0);
        let cell = text_h / 7.0;
        let n = text.chars().count() as f32;
        let x0 = (w as f32 - n * 6.0 * cell) / 2.0;
        let y0 = text_top;
        let ink = |fx: f32, fy: f32| -> bool {
            let (gx, gy) = ((fx - x0) / cell, (fy - y0) / cell);
            if gx < 0.0 || !(0.0..7.0).contains(&gy) {
                return false;
            }
            let (i, col) = ((gx / 6.0) as usize, gx as usize % 6);
            let Some(c) = text.chars().nth(i) else {
                return false;
            };
            col < 5 && glyph(c)[gy as usize].as_bytes()[col] == b'#'
        };
        let mut rgb = Vec::with_capacity((w * (h + bar) * 3) as usize);
        for y in 0..h + bar {
            for x in 0..w {
                let v = if y < bar {
                    let inked = (0u8..16)
                        .filter(|s| {
                            let (sx, sy) = (f32::from(s % 4) + 0.5, f32::from(s / 4) + 0.5);
                            ink(x as f32 + sx / 4.0, y as f32 + sy / 4.0)
                        })
                        .count() as f32;
                    (255.0 * (1.0 - inked / 16.0)).round() as u8
                } else {
                    picture.rgb[(((y - bar) * w + x) * 3) as usize]
                };
                rgb.extend_from_slice(&[v, v, v]);
            }
        }
        WorkImage::from_rgb8(&rgb, w, h + bar, 512).unwrap()
    }

    #[test]
    fn a_caption_bar_with_anti_aliased_text_is_cut_at_the_picture() {
        let opts = BorderOptions::default();
        for (w, h, bar, text_h) in [(300, 240, 60, 33.3), (360, 300, 44, 21.7)] {
            let img = meme(
                w,
                h,
                bar,
                "MEME TO MOM",
                (bar as f32 - text_h) / 2.0,
                text_h,
            );
            let (_, rect) = detector_rects(&img, &opts)
                .into_iter()
                .find(|(d, _)| *d == Detector::Caption)
                .unwrap();
            let rect = rect.expect("a caption bar");
            assert_eq!(
                (rect.x, rect.y, rect.w, rect.h),
                (0, bar, w, h),
                "{w}×{h}, bar {bar}"
            );
            // Among the merged candidates too.
            let found = detect_borders(&img, &opts);
            assert!(
                found
                    .iter()
                    .any(|c| c.rect == rect && c.detectors.contains(&Detector::Caption)),
                "{found:?}"
            );
        }
        // No bar colour between the text and the picture: no caption bar
        // (a picture with a white top and something dark in it); the
        // caption candidate is the loose uniform one, which stops at the
        // text.
        let img = meme(300, 240, 40, "MEME TO MOM TEE", 19.0, 21.0);
        let rects = detector_rects(&img, &opts);
        let of = |d: Detector| rects.iter().find(|(x, _)| *x == d).and_then(|(_, r)| *r);
        assert_eq!(of(Detector::Caption), of(Detector::UniformLoose));
        assert_eq!(of(Detector::Caption).map(|r| r.y), Some(19));
    }

    #[test]
    fn a_flat_band_is_a_vote_for_a_uniform_border() {
        let (w, h, band) = (240, 300, 60);
        // A plain white pad is still found, by the uniform detectors with
        // the fill's vote.
        let padded = image(w, h, band, |_, _| 255);
        let found = detect_borders(&padded, &BorderOptions::default());
        let best = found.first().expect("a candidate");
        assert!(best.rect.y.abs_diff(band) <= 3, "{best:?}");
        assert!(best.detectors.contains(&Detector::BlurFill), "{best:?}");
    }
}
