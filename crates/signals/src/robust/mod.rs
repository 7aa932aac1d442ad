//! Derived PDQ hashes for catching *adapted* re-uploads: borders and
//! letterboxes, crops, mirroring and rotation, captions.
//!
//! PDQ of a whole image stops matching after 1–2 % of geometric change. The
//! exchanged hash must stay the standard PDQ of the whole item, so
//! everything here is **local and derived**: extra hashes of parts of an
//! image, computed next to the plain hash, used only for matching, never
//! exported or shown as "the" hash.
//!
//! * **Query side** ([`QuerySet`]): the plain hash and its eight dihedral
//!   variants (one DCT), the hashes of up to three content rectangles found
//!   by the border detectors ([`detect_borders`]: uniform borders of any
//!   colour at two tolerances, meme caption bars, blurred fill), and a few
//!   small crops of the whole image and of its best border candidate — each
//!   with its eight variants — and the fixed parts of both (upright only).
//!   **Window crops** ([`WINDOW_CROPS`], session 14) cut the content (the
//!   best border candidate, else the whole image) a little more — 3 % all
//!   round, 2 % of one side alone — so that a crop falling between the
//!   bank's grid steps meets a window; they are hashed upright and
//!   mirrored only, the two variants bank windows take.
//! * **Bank side** ([`BankHash`]): for items whose original the operator
//!   holds, a crop grid of windows (each side cut by 0/4/8/12 % in every
//!   combination by default), the content rectangles of the original's
//!   own borders ("regions"), and fixed **parts** ([`THIRD_PARTS`]: each
//!   side cut by a third in turn). A part is compared only with the *same*
//!   part of a query (≤ 8 comparisons per pair, not every needle × every
//!   window): an overlay stamped inside the picture — caption, logo, emoji
//!   — changes every crop-grid window, but not the part without the third
//!   it sits in.
//!
//! Design decisions:
//!
//! * **One decoded buffer.** Every crop, window and rectangle of an image
//!   is cut from one [`WorkImage`]: the decoded image box-averaged once to
//!   at most [`RobustOptions::work_side`] pixels a side. PDQ downsamples to
//!   64×64 anyway and is robust to resizing, so hashing 625 windows of a
//!   512-px buffer costs milliseconds, not seconds. Only the plain hash and
//!   its dihedral variants come from the full-resolution pixels, through
//!   the unchanged, bit-exact PDQ core. A border candidate the working
//!   buffer shrank (a picture letterboxed into a tall frame) is cut, with
//!   its parts and crops, from a *content buffer* box-averaged from the same
//!   decoded pixels at the resolution it would have had uploaded alone
//!   ([`CONTENT_BUFFER_GAIN`]).
//! * **Quality gating.** A derived or dihedral hash of quality below
//!   [`RobustOptions::min_quality`] (50, the reference's advice) is never
//!   produced: near-misses between unrelated images come almost only from
//!   featureless windows and slivers.
//! * **Refusals.** A border candidate that would keep less than a quarter
//!   of either side is refused (a 16:9 clip in a 9:16 frame keeps 32 % of
//!   the height).
//! * **Rectangles are data.** Every derived hash carries the rectangle it
//!   was cut from (source pixels), so a match can say which part of which
//!   image matched, and the console can draw it.

mod detect;
mod video;
mod work;

use serde::{Deserialize, Serialize};

pub use detect::{detect_borders, detector_rects, BorderCandidate, BorderOptions};
pub use video::{CroppedFrame, CroppedVideo, RectVote};
pub use work::{WindowHasher, WorkImage};

use crate::pdq::{PdqDihedralOutput, PdqError, PdqHash, PdqHasher, PdqOutput};

/// Quality below which no derived or dihedral hash is used (the
/// reference's advice for matching).
pub const MIN_DERIVED_QUALITY: u8 = 50;

/// Names of the dihedral variants, by index (the reference's order).
pub const VARIANT_NAMES: [&str; 8] = [
    "orig",
    "rot90",
    "rot180",
    "rot270",
    "flipx",
    "flipy", // the left–right mirror (`MIRROR_VARIANT`)
    "flipplus1",
    "flipminus1",
];

/// Index of the left–right mirror in [`VARIANT_NAMES`] (`flipy`: the
/// reference flips about the vertical axis).
pub const MIRROR_VARIANT: u8 = 5;

/// Whether a query hash of dihedral `variant` may match the crop-grid
/// windows of bank items (the `window` channel's bank side): only the
/// upload as it is and its left–right mirror.
///
/// Each window comparison is multiplied by every needle of the query and
/// every window of every held item (≈ 4e4 comparisons per pair), so each
/// extra needle costs false-match budget. Rotations and vertical flips of
/// a *cropped* upload are what the bank-side windows matched falsely
/// (bench/robust: 4 of the 5 false matches of the 2026-12-04 run came
/// through `rot90`, `rot180` and `flipplus1` variants of query crops
/// against windows of a white siding and a sky); a rotation is still
/// found uncropped through `dihedral`, and a mirrored crop through this
/// channel. Dropping the other six variants divides the window channel's
/// comparisons by four.
pub fn window_variant_allowed(variant: u8) -> bool {
    variant == 0 || variant == MIRROR_VARIANT
}

/// A rectangle in pixels of the image it describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    /// The whole `w × h` image.
    pub fn full(w: u32, h: u32) -> Rect {
        Rect { x: 0, y: 0, w, h }
    }

    /// The rectangle left after removing `[left, top, right, bottom]`
    /// shares of a `w × h` image (at least 1×1).
    pub fn from_fractions(w: u32, h: u32, f: [f32; 4]) -> Rect {
        let x0 = (w as f32 * f[0]).round() as u32;
        let y0 = (h as f32 * f[1]).round() as u32;
        let x1 = ((w as f32 * (1.0 - f[2])).round() as u32)
            .clamp(x0.min(w.saturating_sub(1)) + 1, w.max(1));
        let y1 = ((h as f32 * (1.0 - f[3])).round() as u32)
            .clamp(y0.min(h.saturating_sub(1)) + 1, h.max(1));
        let x0 = x0.min(x1 - 1);
        let y0 = y0.min(y1 - 1);
        Rect {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        }
    }

    /// Shares removed `[left, top, right, bottom]` relative to `w × h`.
    pub fn fractions(&self, w: u32, h: u32) -> [f32; 4] {
        let (w, h) = (w.max(1) as f32, h.max(1) as f32);
        [
            self.x as f32 / w,
            self.y as f32 / h,
            (w - (self.x + self.w) as f32).max(0.0) / w,
            (h - (self.y + self.h) as f32).max(0.0) / h,
        ]
    }

    /// A sub-rectangle removing `f` shares of *this* rectangle's sides.
    pub fn crop(&self, f: [f32; 4]) -> Rect {
        let r = Rect::from_fractions(self.w, self.h, f);
        Rect {
            x: self.x + r.x,
            y: self.y + r.y,
            w: r.w,
            h: r.h,
        }
    }

    /// Whether this is the whole `w × h` image.
    pub fn is_full(&self, w: u32, h: u32) -> bool {
        self.x == 0 && self.y == 0 && self.w == w && self.h == h
    }
}

/// Which detector proposed a border candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// Uniform border, tight colour tolerance.
    Uniform,
    /// Uniform border, loose tolerance (JPEG noise, soft gradients).
    UniformLoose,
    /// Meme caption bar (uniform band with text).
    Caption,
    /// Blurred fill (low-sharpness bands).
    BlurFill,
}

/// Where a query-side hash comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuerySource {
    /// The whole image (variant 0 is the plain hash).
    Whole,
    /// A content rectangle from the border detectors.
    Border,
    /// A small crop of the whole image or of its best border candidate.
    Crop,
    /// A fixed part of the whole image or of its best border candidate
    /// ([`RobustOptions::parts`]: one side cut by a third), compared only
    /// with the same part of file-added originals (the `part` channel).
    Part,
}

/// One query-side hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryHash {
    pub hash: PdqHash,
    pub quality: u8,
    /// Dihedral variant index into [`VARIANT_NAMES`].
    pub variant: u8,
    pub source: QuerySource,
    /// Source-pixel rectangle it was cut from.
    pub rect: Rect,
    /// [`QuerySource::Part`] only: the shares its base lost, in 0.5 %
    /// steps as [`BankHash::removed`] (the bank part it pairs with).
    pub part: Option<[u8; 4]>,
}

/// Everything a lookup can match with: the plain hash first, then the
/// derived hashes (all of quality ≥ [`RobustOptions::min_quality`]).
#[derive(Clone, Debug, PartialEq)]
pub struct QuerySet {
    pub width: u32,
    pub height: u32,
    /// The standard PDQ of the whole image (bit-exact; what is recorded).
    pub plain: PdqOutput,
    /// Derived hashes: dihedral variants of the whole image (1..8), border
    /// rectangles and crops (0..8 each).
    pub hashes: Vec<QueryHash>,
    /// The accepted border candidates.
    pub borders: Vec<BorderCandidate>,
    /// The working buffer the derived hashes were cut from, kept for
    /// [`QuerySet::refine`] (alignment refinement at lookup time): its
    /// luma plane only (`rgb` is empty), which is all a window hash reads —
    /// not a buffer for the border detectors.
    pub work: Option<std::sync::Arc<WorkImage>>,
}

impl QuerySet {
    /// The rectangle and dihedral variant of needle `i` (`None`: the plain
    /// hash, the whole image upright).
    pub fn needle_place(&self, i: Option<usize>) -> Option<(Rect, u8)> {
        match i {
            None => Some((Rect::full(self.width, self.height), 0)),
            Some(i) => self.hashes.get(i).map(|q| (q.rect, q.variant)),
        }
    }

    /// Alignment refinement of needle `i` toward the bank window `target`
    /// it came `start_distance` from ([`refine_window`], on the working
    /// buffer). Nothing is hashed when the set keeps no buffer or the
    /// needle is not one bank windows take ([`window_variant_allowed`], no
    /// part).
    pub fn refine(
        &self,
        wh: &mut WindowHasher,
        i: Option<usize>,
        target: &PdqHash,
        start_distance: u32,
        min_quality: u8,
    ) -> Result<Refinement, PdqError> {
        let none = Refinement {
            best: None,
            hashes: 0,
        };
        let Some(work) = self.work.as_deref() else {
            return Ok(none);
        };
        if i.and_then(|i| self.hashes.get(i))
            .is_some_and(|q| q.source == QuerySource::Part)
        {
            return Ok(none);
        }
        let Some((rect, variant)) = self.needle_place(i) else {
            return Ok(none);
        };
        if !window_variant_allowed(variant) {
            return Ok(none);
        }
        refine_window(wh, work, rect, variant, target, start_distance, min_quality)
    }
}

/// Where a bank-side derived hash comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BankSource {
    /// A window of the crop grid.
    Window,
    /// A content rectangle of the original's own borders.
    Region,
    /// A fixed part of the original ([`RobustOptions::parts`]), matched
    /// only by the same part of a query (`part` channel).
    Part,
}

/// One bank-side derived hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BankHash {
    pub hash: PdqHash,
    pub quality: u8,
    pub source: BankSource,
    /// Shares removed `[left, top, right, bottom]`, in 0.5 % steps.
    pub removed: [u8; 4],
}

impl BankHash {
    /// Shares removed per side as fractions.
    pub fn fractions(&self) -> [f32; 4] {
        self.removed.map(|v| f32::from(v) / 200.0)
    }
}

/// Settings of the derived hashes (defaults measured with `bench/robust`,
/// see docs/ROBUST.md).
#[derive(Clone, Debug, PartialEq)]
pub struct RobustOptions {
    /// Longest side of the working buffer.
    pub work_side: u32,
    pub borders: BorderOptions,
    /// Query-side crops, each `[left, top, right, bottom]` shares, applied
    /// to the whole image and to the best border candidate.
    pub query_crops: Vec<[f32; 4]>,
    /// Query-side crops for the bank-side windows only, each `[left, top,
    /// right, bottom]` shares, of the content: the best border candidate
    /// when there is one, else the whole image; hashed upright and
    /// left–right mirrored (the two variants [`window_variant_allowed`]),
    /// not in all eight. They move the query's
    /// edges onto the crop grid where the uniform [`Self::query_crops`]
    /// cannot: a crop of one side only, or of 5 % a side (between the
    /// grid's 4 and 8).
    pub window_crops: Vec<[f32; 4]>,
    /// Bank-side crop grid: shares cut from each side, every combination.
    pub bank_grid: Vec<f32>,
    /// Fixed parts, each `[left, top, right, bottom]` shares: hashed on
    /// both sides (bank: the original; query: the whole image and its best
    /// border candidate) and compared part with same part only. An
    /// overlay (caption, logo, emoji) covers a part of the picture; one of
    /// these avoids it when it lies within a third of one side.
    pub parts: Vec<[f32; 4]>,
    /// Smallest quality of any derived or dihedral hash.
    pub min_quality: u8,
    /// Hash a border candidate the working buffer shrank from a content
    /// buffer of its own ([`CONTENT_BUFFER_GAIN`]; on by default, off only
    /// to measure what it buys).
    pub content_buffers: bool,
}

/// The default [`RobustOptions::parts`]: each side cut by a third in turn.
pub const THIRD_PARTS: [[f32; 4]; 4] = [
    [1.0 / 3.0, 0.0, 0.0, 0.0],
    [0.0, 1.0 / 3.0, 0.0, 0.0],
    [0.0, 0.0, 1.0 / 3.0, 0.0],
    [0.0, 0.0, 0.0, 1.0 / 3.0],
];

/// The default [`RobustOptions::window_crops`]: 3 % of every side, and 2 %
/// of each side alone.
pub const WINDOW_CROPS: [[f32; 4]; 5] = [
    [0.03, 0.03, 0.03, 0.03],
    [0.02, 0.0, 0.0, 0.0],
    [0.0, 0.02, 0.0, 0.0],
    [0.0, 0.0, 0.02, 0.0],
    [0.0, 0.0, 0.0, 0.02],
];

/// Every combination of `levels` on the four sides, except no crop at all.
pub fn crop_grid(levels: &[f32]) -> Vec<[f32; 4]> {
    let mut out = Vec::new();
    for &l in levels {
        for &t in levels {
            for &r in levels {
                for &b in levels {
                    if l == 0.0 && t == 0.0 && r == 0.0 && b == 0.0 {
                        continue;
                    }
                    out.push([l, t, r, b]);
                }
            }
        }
    }
    out
}

impl Default for RobustOptions {
    fn default() -> Self {
        RobustOptions {
            work_side: 512,
            borders: BorderOptions::default(),
            query_crops: vec![[0.01, 0.01, 0.01, 0.01], [0.02, 0.02, 0.02, 0.02]],
            // Measured on bench/robust seed 0 (`robust_crops`, docs/ROBUST.md
            // "Where the crops fall"): 3 % all round meets the grid's 8 %
            // window from a 5 % crop, 2 % of one side its 12 % window from
            // a 10 % one.
            window_crops: WINDOW_CROPS.to_vec(),
            // {0, 4, 8, 12} %: 255 windows, ≈ 17 KB per held image in the
            // index; {0, 3, 6, 9, 12} (624 windows, ≈ 42 KB) bought 0–4
            // points of recall and flipped no class across its target
            // (docs/ROBUST.md, "Costs"). Stored items keep the windows they
            // were added with: every record carries its own shares.
            bank_grid: vec![0.0, 0.04, 0.08, 0.12],
            parts: THIRD_PARTS.to_vec(),
            min_quality: MIN_DERIVED_QUALITY,
            content_buffers: true,
        }
    }
}

/// Computes query sets and bank hashes; holds reusable scratch (one per
/// thread).
#[derive(Debug, Default)]
pub struct RobustHasher {
    pdq: PdqHasher,
    windows: WindowHasher,
}

fn push_variants(
    out: &mut Vec<QueryHash>,
    d: &PdqDihedralOutput,
    source: QuerySource,
    rect: Rect,
    skip_orig: bool,
    min_quality: u8,
) {
    if d.quality < min_quality {
        return;
    }
    for (i, (_, h)) in d.hashes.named().iter().enumerate() {
        if skip_orig && i == 0 {
            continue;
        }
        out.push(QueryHash {
            hash: *h,
            quality: d.quality,
            variant: i as u8,
            source,
            rect,
            part: None,
        });
    }
}

fn to_halfpercent(f: [f32; 4]) -> [u8; 4] {
    f.map(|v| (v * 200.0).round().clamp(0.0, 200.0) as u8)
}

/// A border candidate gets a content buffer of its own when that holds at
/// least this many times the pixels per side the working buffer gave it.
pub const CONTENT_BUFFER_GAIN: f64 = 1.25;

/// The content buffer of border candidate `rect`, or `None` when the
/// working buffer already holds it at (nearly) the resolution it would
/// have had uploaded alone.
///
/// The working buffer's longest side is `work_side` whatever the upload's
/// shape; a picture letterboxed into a 9:16 frame or padded by a fifth a
/// side keeps only 56–71 % of that on its own longer side, and the box
/// average then PDQ's own filter blur it twice. On low-detail pictures
/// (soft wallpapers, PDQ quality 50–60 uncut) that pushed the content's
/// hash under the quality gate: the true content rectangle cut from the
/// working buffer passed the gate and came within the `border` threshold
/// in 99 of 105 seed-0 `letterbox_9x16` queries (and as many
/// `fill_9x16_blur` ones), cut from a buffer of its own in 103 (docs/ROBUST.md, "Content buffers").
/// The content is box-averaged from the decoded pixels — the same one
/// decoded buffer — to at most `work_side` a side, as the same picture
/// uploaded without borders would be.
fn content_buffer(
    rgb: &[u8],
    width: u32,
    height: u32,
    work: &WorkImage,
    rect: Rect,
    work_side: u32,
) -> Result<Option<WorkImage>, PdqError> {
    let now = work.to_work(rect);
    let alone = rect.w.max(rect.h).min(work_side.max(16));
    if f64::from(alone) < CONTENT_BUFFER_GAIN * f64::from(now.w.max(now.h)) {
        return Ok(None);
    }
    WorkImage::of_region(rgb, width, height, rect, work_side).map(Some)
}

impl RobustHasher {
    pub fn new() -> Self {
        RobustHasher::default()
    }

    /// The plain hash of interleaved RGB8 plus every derived query hash.
    pub fn query_set(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        opts: &RobustOptions,
    ) -> Result<QuerySet, PdqError> {
        let full = self.pdq.hash_rgb8_dihedral(rgb, width, height)?;
        // The dihedral entry point skips the reference's 64×64 shortcut.
        let plain = if width == 64 && height == 64 {
            self.pdq.hash_rgb8(rgb, width, height)?
        } else {
            PdqOutput {
                hash: full.hashes.orig,
                quality: full.quality,
            }
        };
        let whole = Rect::full(width, height);
        let mut hashes = Vec::new();
        push_variants(
            &mut hashes,
            &full,
            QuerySource::Whole,
            whole,
            true,
            opts.min_quality,
        );
        let work = WorkImage::from_rgb8(rgb, width, height, opts.work_side)?;
        let borders = detect_borders(&work, &opts.borders);
        // A candidate the working buffer shrank is hashed from a content
        // buffer of its own (`content_buffer`), with everything cut from it.
        let own = borders
            .iter()
            .filter(|_| opts.content_buffers)
            .map(|b| content_buffer(rgb, width, height, &work, b.rect, opts.work_side))
            .collect::<Result<Vec<_>, _>>()?;
        let buffer = |i: usize| own.get(i).and_then(Option::as_ref).unwrap_or(&work);
        for (i, b) in borders.iter().enumerate() {
            let d = self.windows.hash(buffer(i), b.rect)?;
            push_variants(
                &mut hashes,
                &d,
                QuerySource::Border,
                b.rect,
                false,
                opts.min_quality,
            );
        }
        let mut bases = vec![(whole, [false; 4], &work)];
        if let Some(b) = borders.first() {
            bases.push((b.rect, b.caption_sides, buffer(0)));
        }
        for &(base, _, buf) in &bases {
            for p in &opts.parts {
                let r = base.crop(*p);
                let d = self.windows.hash(buf, r)?;
                if d.quality >= opts.min_quality {
                    hashes.push(QueryHash {
                        hash: d.hashes.orig,
                        quality: d.quality,
                        variant: 0,
                        source: QuerySource::Part,
                        rect: r,
                        part: Some(to_halfpercent(*p)),
                    });
                }
            }
        }
        // The window crops cut only the content: the best border
        // rectangle when there is one, else the whole image (each crop is a
        // window hash, the dearest step of a lookup: docs/ROBUST.md, "Where
        // the crops fall").
        let content = bases.len() - 1;
        for (k, (base, exact, buf)) in bases.into_iter().enumerate() {
            let crops = opts.query_crops.iter().map(|c| (c, true));
            let window_crops = opts.window_crops.iter().filter(|_| k == content);
            let crops = crops.chain(window_crops.map(|c| (c, false)));
            for (c, every_variant) in crops {
                // A caption bar's edge is the picture's own: not cut.
                let c = [0, 1, 2, 3].map(|i| if exact[i] { 0.0 } else { c[i] });
                if c == [0.0; 4] {
                    continue;
                }
                let r = base.crop(c);
                let d = self.windows.hash(buf, r)?;
                if every_variant {
                    push_variants(
                        &mut hashes,
                        &d,
                        QuerySource::Crop,
                        r,
                        false,
                        opts.min_quality,
                    );
                } else if d.quality >= opts.min_quality {
                    let named = d.hashes.named();
                    for v in [0, MIRROR_VARIANT] {
                        hashes.push(QueryHash {
                            hash: named[usize::from(v)].1,
                            quality: d.quality,
                            variant: v,
                            source: QuerySource::Crop,
                            rect: r,
                            part: None,
                        });
                    }
                }
            }
        }
        // Refinement hashes windows from the luma plane only: the RGB copy
        // (3 bytes a pixel, up to 768 KiB) is not kept for the lookup.
        let mut work = work;
        work.rgb = Vec::new();
        Ok(QuerySet {
            width,
            height,
            plain,
            hashes,
            borders,
            work: Some(std::sync::Arc::new(work)),
        })
    }

    /// Bank-side derived hashes of an original: the crop grid's windows
    /// and the content rectangles of its own borders, quality-gated.
    pub fn bank_hashes(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        opts: &RobustOptions,
    ) -> Result<Vec<BankHash>, PdqError> {
        let work = WorkImage::from_rgb8(rgb, width, height, opts.work_side)?;
        // (rectangle, sides removed, channel) of every derived hash.
        let grid = crop_grid(&opts.bank_grid)
            .into_iter()
            .map(|f| (f, BankSource::Window));
        let parts = opts.parts.iter().map(|&p| (p, BankSource::Part));
        let mut cuts: Vec<(Rect, [f32; 4], BankSource)> = grid
            .chain(parts)
            .map(|(f, source)| (work.window(f[0], f[1], f[2], f[3]), f, source))
            .collect();
        cuts.extend(
            detect_borders(&work, &opts.borders)
                .into_iter()
                .map(|b| (b.rect, b.rect.fractions(width, height), BankSource::Region)),
        );
        let mut out = Vec::with_capacity(cuts.len());
        for (r, f, source) in cuts {
            let d = self.windows.hash(&work, r)?;
            if d.quality >= opts.min_quality {
                out.push(BankHash {
                    hash: d.hashes.orig,
                    quality: d.quality,
                    source,
                    removed: to_halfpercent(f),
                });
            }
        }
        Ok(out)
    }
}

/// Alignment refinement (session 16): the bank's crop grid and the query's
/// crops leave a crop that falls between them 1–2 % off on some side, and
/// on low-detail pictures that is enough to miss (docs/ROBUST.md, "Where
/// the crops fall"). When a needle comes *near* one bank window but not
/// within its threshold, the lookup moves the needle's sides toward that
/// window in steps of [`REFINE_STEPS`] of the upload's size and keeps the
/// best rectangle. It hashes nothing for an upload no window comes near.
pub const REFINE_STEPS: [f32; 2] = [0.01, 0.005];

/// At most this many window hashes per refinement (one needle against
/// one bank window).
pub const REFINE_MAX_HASHES: u32 = 48;

/// What a refinement found: the closest rectangle to the target window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refined {
    /// Distance of the refined rectangle's hash (the needle's variant) to
    /// the target.
    pub distance: u32,
    /// PDQ quality of the refined rectangle.
    pub quality: u8,
    /// The refined rectangle, in the upload's pixels.
    pub rect: Rect,
}

/// A refinement's outcome: the best rectangle that beat the needle, if
/// any, and the window hashes spent either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refinement {
    pub best: Option<Refined>,
    pub hashes: u32,
}

/// Coordinate descent of `start` (a rectangle of `work`'s source image,
/// hashed as dihedral `variant`) toward `target`: each round tries every
/// side moved in and out by the current step and takes the best move that
/// lowers the distance; when none does, the step halves
/// ([`REFINE_STEPS`]). Rectangles of quality below `min_quality` are never
/// taken (the quality gate). `start_distance` is the needle's own
/// distance; `best` is `None` when nothing beat it.
pub fn refine_window(
    wh: &mut WindowHasher,
    work: &WorkImage,
    start: Rect,
    variant: u8,
    target: &PdqHash,
    start_distance: u32,
    min_quality: u8,
) -> Result<Refinement, PdqError> {
    let (sw, sh) = (i64::from(work.source_width), i64::from(work.source_height));
    let (ox, oy) = (i64::from(work.origin_x), i64::from(work.origin_y));
    let mut best: Option<Refined> = None;
    let mut cur = start;
    let mut cur_d = start_distance;
    let mut hashes = 0u32;
    for step in REFINE_STEPS {
        let dx = ((sw as f32) * step).round().max(1.0) as i64;
        let dy = ((sh as f32) * step).round().max(1.0) as i64;
        loop {
            let mut round: Option<(u32, Rect, u8)> = None;
            for (side, delta) in [
                (0, -1),
                (0, 1),
                (1, -1),
                (1, 1),
                (2, -1),
                (2, 1),
                (3, -1),
                (3, 1),
            ] {
                if hashes >= REFINE_MAX_HASHES {
                    break;
                }
                let (mut x0, mut y0) = (i64::from(cur.x), i64::from(cur.y));
                let (mut x1, mut y1) = (x0 + i64::from(cur.w), y0 + i64::from(cur.h));
                match side {
                    0 => x0 += delta * dx,
                    1 => y0 += delta * dy,
                    2 => x1 += delta * dx,
                    _ => y1 += delta * dy,
                }
                if x0 < ox
                    || y0 < oy
                    || x1 > ox + sw
                    || y1 > oy + sh
                    || x1 - x0 < 16
                    || y1 - y0 < 16
                {
                    continue;
                }
                let r = Rect {
                    x: x0 as u32,
                    y: y0 as u32,
                    w: (x1 - x0) as u32,
                    h: (y1 - y0) as u32,
                };
                let d = wh.hash(work, r)?;
                hashes += 1;
                let Some((_, h)) = d.hashes.named().get(usize::from(variant)).copied() else {
                    continue;
                };
                let dist = h.distance(target);
                if round.as_ref().is_none_or(|s| dist < s.0) {
                    round = Some((dist, r, d.quality));
                }
                if d.quality >= min_quality
                    && best.as_ref().is_none_or(|b| dist < b.distance)
                    && dist < start_distance
                {
                    best = Some(Refined {
                        distance: dist,
                        quality: d.quality,
                        rect: r,
                    });
                }
            }
            match round {
                Some((d, r, _)) if d < cur_d && hashes < REFINE_MAX_HASHES => {
                    cur_d = d;
                    cur = r;
                }
                _ => break,
            }
        }
    }
    Ok(Refinement { best, hashes })
}
/// Serialisation of a list of [`BankHash`]es for storage: `dpdq1:` then
/// base64 (standard, padded) of 38-byte records — 32 bytes of hash (Meta's
/// byte order), quality, source (0 window, 1 region, 2 part), four sides removed
/// in 0.5 % steps.
pub const BANK_HASHES_PREFIX: &str = "dpdq1:";

const RECORD: usize = 38;

pub fn encode_bank_hashes(list: &[BankHash]) -> String {
    use base64::Engine;
    let mut bytes = Vec::with_capacity(list.len() * RECORD);
    for h in list {
        for w in h.hash.to_words() {
            bytes.extend_from_slice(&w.to_be_bytes());
        }
        bytes.push(h.quality);
        bytes.push(match h.source {
            BankSource::Window => 0,
            BankSource::Region => 1,
            BankSource::Part => 2,
        });
        bytes.extend_from_slice(&h.removed);
    }
    format!(
        "{BANK_HASHES_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Inverse of [`encode_bank_hashes`]; `None` for anything malformed.
pub fn decode_bank_hashes(s: &str) -> Option<Vec<BankHash>> {
    use base64::Engine;
    let body = s.strip_prefix(BANK_HASHES_PREFIX)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    if bytes.len() % RECORD != 0 {
        return None;
    }
    bytes
        .chunks_exact(RECORD)
        .map(|r| {
            let mut words = [0u64; 4];
            for (i, w) in words.iter_mut().enumerate() {
                *w = u64::from_be_bytes(r[i * 8..i * 8 + 8].try_into().ok()?);
            }
            let source = match r[33] {
                0 => BankSource::Window,
                1 => BankSource::Region,
                2 => BankSource::Part,
                _ => return None,
            };
            Some(BankHash {
                hash: PdqHash::from_words(words),
                quality: r[32],
                source,
                removed: [r[34], r[35], r[36], r[37]],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A structured test picture (rings and gradients), `w × h`.
    fn picture(w: u32, h: u32, seed: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let fx = x as f32 / w as f32;
                let fy = y as f32 / h as f32;
                let r =
                    (((fx - 0.4).powi(2) + (fy - 0.6).powi(2)).sqrt() * (20.0 + seed as f32)).sin();
                let g = (fx * 7.0 + fy * 3.0 + seed as f32).cos();
                out.push(((r * 0.5 + 0.5) * 220.0) as u8 + 10);
                out.push(((g * 0.5 + 0.5) * 200.0) as u8 + 20);
                out.push(((fx * fy) * 255.0) as u8);
            }
        }
        out
    }

    fn pad(rgb: &[u8], w: u32, h: u32, p: [u32; 4], colour: [u8; 3]) -> (Vec<u8>, u32, u32) {
        let (nw, nh) = (w + p[0] + p[2], h + p[1] + p[3]);
        let mut out = Vec::with_capacity((nw * nh * 3) as usize);
        for y in 0..nh {
            for x in 0..nw {
                if x >= p[0] && x < p[0] + w && y >= p[1] && y < p[1] + h {
                    let i = (((y - p[1]) * w + (x - p[0])) * 3) as usize;
                    out.extend_from_slice(&rgb[i..i + 3]);
                } else {
                    out.extend_from_slice(&colour);
                }
            }
        }
        (out, nw, nh)
    }

    #[test]
    fn uniform_borders_of_any_colour_are_found() {
        let (w, h) = (300, 200);
        let img = picture(w, h, 3);
        for colour in [[0, 0, 0], [255, 255, 255], [30, 140, 200]] {
            let (p, pw, ph) = pad(&img, w, h, [40, 20, 40, 20], colour);
            let work = WorkImage::from_rgb8(&p, pw, ph, 512).unwrap();
            let found = detect_borders(&work, &BorderOptions::default());
            let best = found.first().expect("a candidate");
            assert!(
                best.rect.x.abs_diff(40) <= 2 && best.rect.y.abs_diff(20) <= 2,
                "{best:?}"
            );
            assert!(
                best.rect.w.abs_diff(w) <= 3 && best.rect.h.abs_diff(h) <= 3,
                "{best:?}"
            );
        }
    }

    #[test]
    fn plain_hash_is_the_pdq_core_and_derived_are_gated() {
        let (w, h) = (320, 240);
        let img = picture(w, h, 5);
        let set = RobustHasher::new()
            .query_set(&img, w, h, &RobustOptions::default())
            .unwrap();
        let plain = crate::pdq::hash_rgb8(&img, w, h).unwrap();
        assert_eq!(set.plain, plain);
        assert!(set.hashes.iter().all(|q| q.quality >= MIN_DERIVED_QUALITY));
        assert!(set
            .hashes
            .iter()
            .any(|q| q.source == QuerySource::Whole && q.variant == 1));
    }

    /// Mirror a picture left to right.
    fn mirror(rgb: &[u8], w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(rgb.len());
        for y in 0..h {
            for x in (0..w).rev() {
                let i = ((y * w + x) * 3) as usize;
                out.extend_from_slice(&rgb[i..i + 3]);
            }
        }
        out
    }

    #[test]
    fn the_mirror_variant_is_the_left_right_mirror() {
        let (w, h) = (240, 160);
        let img = picture(w, h, 2);
        let mut hasher = RobustHasher::new();
        let opts = RobustOptions::default();
        let plain = hasher.query_set(&img, w, h, &opts).unwrap().plain.hash;
        let set = hasher.query_set(&mirror(&img, w, h), w, h, &opts).unwrap();
        let best = set
            .hashes
            .iter()
            .filter(|q| q.source == QuerySource::Whole)
            .min_by_key(|q| q.hash.distance(&plain))
            .unwrap();
        assert_eq!(best.variant, MIRROR_VARIANT, "{best:?}");
        assert!(best.hash.distance(&plain) <= 31);
        assert!(window_variant_allowed(0) && window_variant_allowed(MIRROR_VARIANT));
        assert!((1..8).filter(|v| window_variant_allowed(*v)).count() == 1);
    }

    #[test]
    fn bank_hashes_round_trip() {
        let (w, h) = (200, 160);
        let img = picture(w, h, 1);
        let list = RobustHasher::new()
            .bank_hashes(&img, w, h, &RobustOptions::default())
            .unwrap();
        assert!(!list.is_empty());
        let s = encode_bank_hashes(&list);
        assert_eq!(decode_bank_hashes(&s), Some(list));
        assert_eq!(decode_bank_hashes("dpdq1:AAA"), None);
        assert_eq!(decode_bank_hashes("nope"), None);
    }

    #[test]
    fn refinement_moves_a_needle_onto_its_window() {
        let (w, h) = (400, 300);
        let rgb = picture(w, h, 7);
        let work = WorkImage::from_rgb8(&rgb, w, h, 512).unwrap();
        let mut wh = WindowHasher::new();
        // The bank's window cuts 8 % of the left; the needle 6 %.
        let window = work.window(0.08, 0.0, 0.0, 0.0);
        let target = wh.hash(&work, window).unwrap().hashes.orig;
        let start = work.window(0.06, 0.0, 0.0, 0.0);
        let d0 = wh.hash(&work, start).unwrap().hashes.orig.distance(&target);
        assert!(d0 > 0);
        let out = refine_window(&mut wh, &work, start, 0, &target, d0, 0).unwrap();
        let r = out.best.unwrap();
        assert!(r.distance < d0, "{r:?} from {d0}");
        assert!(r.rect.x.abs_diff(window.x) <= 2, "{r:?} toward {window:?}");
        assert_eq!((r.rect.y, r.rect.w + r.rect.x), (0, w), "{r:?}");
        assert!(out.hashes > 0 && out.hashes <= REFINE_MAX_HASHES);
        // Nothing beats a needle already on the window; the hashes tried
        // are still counted.
        let on = refine_window(&mut wh, &work, window, 0, &target, 0, 0).unwrap();
        assert_eq!(on.best, None);
        assert!(on.hashes > 0 && on.hashes <= REFINE_MAX_HASHES);
        // The quality gate: no rectangle below it is taken.
        let gated = refine_window(&mut wh, &work, start, 0, &target, d0, 101).unwrap();
        assert_eq!(gated.best, None);
    }
}
