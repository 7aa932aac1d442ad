//! RGB8 → luminance, exactly as the `pdqhash` binding computes it.
//!
//! The binding evaluates `R*0.299 + G*0.587 + B*0.114` with NumPy on the
//! `uint8` planes, which promotes to `f64` (left to right: the R and G terms
//! are added first), and only then casts to `f32`. The C++ core's own
//! `fillFloatLumaFromRGB` works in `f32` and differs in the last bit for some
//! pixels, so we follow the binding: that is what produced the hashes
//! ThreatExchange and HMA exchange.

/// Luma coefficients as `f64` (the binding's Python float literals).
const R: f64 = 0.299;
const G: f64 = 0.587;
const B: f64 = 0.114;

/// Luma of one pixel.
#[inline(always)]
pub(crate) fn luma(r: u8, g: u8, b: u8) -> f32 {
    (f64::from(r) * R + f64::from(g) * G + f64::from(b) * B) as f32
}

/// Converts one interleaved RGB row into luma. Processes
/// `min(src.len() / 3, dst.len())` pixels.
#[inline(always)]
pub(crate) fn rgb_row_to_luma(src: &[u8], dst: &mut [f32]) {
    for (px, d) in src.chunks_exact(3).zip(dst.iter_mut()) {
        if let [r, g, b] = *px {
            *d = luma(r, g, b);
        }
    }
}
