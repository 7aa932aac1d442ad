//! The one decoded working buffer every derived hash of an image is cut
//! from: the image box-averaged down to at most `max_side` pixels a side,
//! kept as RGB (for the border detectors) and as PDQ luma (for hashing).
//! A *content buffer* is the same for one rectangle of the decoded image
//! (a padded upload's content, box-averaged from the decoded pixels at the
//! resolution it would have had uploaded alone; `robust` module doc).

use super::Rect;
use crate::pdq::{PdqDihedralOutput, PdqError, PdqHasher};

/// An image scaled down once; every window, crop and border candidate of
/// the image is hashed from this buffer (`robust` module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct WorkImage {
    /// Working size.
    pub width: u32,
    pub height: u32,
    /// Size of the region of the decoded image it was made from.
    pub source_width: u32,
    pub source_height: u32,
    /// Place of that region in the decoded image (`(0, 0)` for the whole
    /// image): rectangles are given and reported in the decoded image's
    /// pixels.
    pub origin_x: u32,
    pub origin_y: u32,
    /// Interleaved RGB at working size.
    pub rgb: Vec<u8>,
    /// PDQ luma at working size.
    pub luma: Vec<f32>,
}

fn luma_of(r: u8, g: u8, b: u8) -> f32 {
    (f64::from(r) * 0.299 + f64::from(g) * 0.587 + f64::from(b) * 0.114) as f32
}

impl WorkImage {
    /// Box-average `rgb` (`width × height × 3`) down so that the longer
    /// side is at most `max_side` (never up).
    pub fn from_rgb8(
        rgb: &[u8],
        width: u32,
        height: u32,
        max_side: u32,
    ) -> Result<WorkImage, PdqError> {
        WorkImage::of_region(rgb, width, height, Rect::full(width, height), max_side)
    }

    /// Box-average the rectangle `region` of `rgb` (`width × height × 3`)
    /// down so that its longer side is at most `max_side` (never up): a
    /// content buffer. Rectangles hashed from it are still given in the
    /// pixels of the whole image.
    pub fn of_region(
        rgb: &[u8],
        image_width: u32,
        image_height: u32,
        region: Rect,
        max_side: u32,
    ) -> Result<WorkImage, PdqError> {
        let expected = u64::from(image_width) * u64::from(image_height) * 3;
        if rgb.len() as u64 != expected {
            return Err(PdqError::BufferSize {
                expected,
                actual: rgb.len() as u64,
            });
        }
        let inside =
            |at: u32, len: u32, side: u32| u64::from(at) + u64::from(len) <= u64::from(side);
        if region.w == 0
            || region.h == 0
            || !inside(region.x, region.w, image_width)
            || !inside(region.y, region.h, image_height)
        {
            return Err(PdqError::BufferSize {
                expected: u64::from(region.w) * u64::from(region.h) * 3,
                actual: 0,
            });
        }
        let (width, height) = (region.w, region.h);
        let (ox, oy, stride) = (
            region.x as usize,
            region.y as usize,
            image_width as usize * 3,
        );
        let max_side = max_side.max(16);
        let long = width.max(height).max(1);
        let (w, h) = if long <= max_side {
            (width, height)
        } else {
            let s = f64::from(max_side) / f64::from(long);
            (
                ((f64::from(width) * s).round() as u32).max(1),
                ((f64::from(height) * s).round() as u32).max(1),
            )
        };
        let (sw, sh) = (width as usize, height as usize);
        let (tw, th) = (w as usize, h as usize);
        let mut out = vec![0u8; tw * th * 3];
        if tw == sw && th == sh {
            for (y, row) in out.chunks_exact_mut(tw * 3).enumerate() {
                let start = (oy + y) * stride + ox * 3;
                row.copy_from_slice(&rgb[start..start + tw * 3]);
            }
        } else {
            // Column ranges are the same for every row.
            let xr: Vec<(usize, usize)> = (0..tw)
                .map(|x| {
                    let a = x * sw / tw;
                    let b = ((x + 1) * sw / tw).max(a + 1).min(sw);
                    (a, b)
                })
                .collect();
            let mut acc = vec![0u32; tw * 3];
            for y in 0..th {
                let y0 = y * sh / th;
                let y1 = ((y + 1) * sh / th).max(y0 + 1).min(sh);
                acc.iter_mut().for_each(|v| *v = 0);
                for sy in y0..y1 {
                    let start = (oy + sy) * stride + ox * 3;
                    let row = &rgb[start..start + sw * 3];
                    for (x, &(a, b)) in xr.iter().enumerate() {
                        let (mut r, mut g, mut bl) = (0u32, 0u32, 0u32);
                        for px in row[a * 3..b * 3].chunks_exact(3) {
                            r += u32::from(px[0]);
                            g += u32::from(px[1]);
                            bl += u32::from(px[2]);
                        }
                        acc[x * 3] += r;
                        acc[x * 3 + 1] += g;
                        acc[x * 3 + 2] += bl;
                    }
                }
                let rows = (y1 - y0) as u32;
                for (x, &(a, b)) in xr.iter().enumerate() {
                    let n = rows * (b - a) as u32;
                    for c in 0..3 {
                        out[(y * tw + x) * 3 + c] = ((acc[x * 3 + c] + n / 2) / n) as u8;
                    }
                }
            }
        }
        let luma = out
            .chunks_exact(3)
            .map(|p| luma_of(p[0], p[1], p[2]))
            .collect();
        Ok(WorkImage {
            width: w,
            height: h,
            source_width: width,
            source_height: height,
            origin_x: region.x,
            origin_y: region.y,
            rgb: out,
            luma,
        })
    }

    /// A rectangle of the decoded image in working coordinates (clamped
    /// to the region, at least 1×1).
    pub fn to_work(&self, r: Rect) -> Rect {
        let sx = f64::from(self.width) / f64::from(self.source_width.max(1));
        let sy = f64::from(self.height) / f64::from(self.source_height.max(1));
        let (rx, ry) = (
            r.x.saturating_sub(self.origin_x),
            r.y.saturating_sub(self.origin_y),
        );
        let (rx1, ry1) = (
            (r.x + r.w).saturating_sub(self.origin_x),
            (r.y + r.h).saturating_sub(self.origin_y),
        );
        let x0 = ((f64::from(rx) * sx).round() as u32).min(self.width.saturating_sub(1));
        let y0 = ((f64::from(ry) * sy).round() as u32).min(self.height.saturating_sub(1));
        let x1 = ((f64::from(rx1) * sx).round() as u32).clamp(x0 + 1, self.width);
        let y1 = ((f64::from(ry1) * sy).round() as u32).clamp(y0 + 1, self.height);
        Rect {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        }
    }

    /// A rectangle of the working image in the decoded image's pixels.
    pub fn to_source(&self, r: Rect) -> Rect {
        let sx = f64::from(self.source_width) / f64::from(self.width.max(1));
        let sy = f64::from(self.source_height) / f64::from(self.height.max(1));
        let x0 = (f64::from(r.x) * sx).round() as u32;
        let y0 = (f64::from(r.y) * sy).round() as u32;
        let x1 = ((f64::from(r.x + r.w) * sx).round() as u32).min(self.source_width);
        let y1 = ((f64::from(r.y + r.h) * sy).round() as u32).min(self.source_height);
        Rect {
            x: self.origin_x + x0,
            y: self.origin_y + y0,
            w: x1.saturating_sub(x0).max(1),
            h: y1.saturating_sub(y0).max(1),
        }
    }

    /// The window of the source image that keeps `1 - l - r` of the width
    /// and `1 - t - b` of the height (fractions removed per side).
    pub fn window(&self, l: f32, t: f32, r: f32, b: f32) -> Rect {
        let w = Rect::from_fractions(self.source_width, self.source_height, [l, t, r, b]);
        Rect {
            x: self.origin_x + w.x,
            y: self.origin_y + w.y,
            ..w
        }
    }
}

/// Hashes rectangles of a [`WorkImage`] with one reusable PDQ hasher and
/// one scratch buffer (no allocation per window once grown).
#[derive(Debug, Default)]
pub struct WindowHasher {
    pdq: PdqHasher,
    scratch: Vec<f32>,
}

impl WindowHasher {
    pub fn new() -> Self {
        WindowHasher::default()
    }

    /// The eight dihedral hashes (and quality) of the source rectangle
    /// `rect`, cut from the working luma.
    pub fn hash(&mut self, work: &WorkImage, rect: Rect) -> Result<PdqDihedralOutput, PdqError> {
        let r = work.to_work(rect);
        let (x, y, w, h) = (r.x as usize, r.y as usize, r.w as usize, r.h as usize);
        let ww = work.width as usize;
        self.scratch.clear();
        for row in y..y + h {
            let start = row * ww + x;
            self.scratch
                .extend_from_slice(work.luma.get(start..start + w).unwrap_or(&[]));
        }
        if self.scratch.len() != w * h {
            return Err(PdqError::BufferSize {
                expected: (w * h) as u64,
                actual: self.scratch.len() as u64,
            });
        }
        self.pdq.hash_luma_dihedral(&self.scratch, r.w, r.h)
    }
}
