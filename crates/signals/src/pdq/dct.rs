//! Stages after the 64×64 downsample: quality metric, 16×16 DCT corner,
//! Torben median threshold, and the eight dihedral variants.
//!
//! Every sum keeps the reference's order (k = 0..63, left to right, starting
//! from `0.0f32`). The loops are arranged so that independent outputs sit in
//! the innermost loop — LLVM vectorises across them without touching any
//! single output's operation order.

use std::sync::OnceLock;

use super::PdqHash;

/// A 16×16 block of DCT coefficients, `[row][col]`.
pub(crate) type Block16 = [[f32; 16]; 16];

/// The reference's 16×64 DCT-II matrix (rows 1..=16 of the 64-point DCT),
/// plus its transpose.
struct DctMatrix {
    d: [[f32; 64]; 16],
    dt: [[f32; 16]; 64],
}

fn dct_matrix() -> &'static DctMatrix {
    static M: OnceLock<DctMatrix> = OnceLock::new();
    M.get_or_init(|| {
        // Reference: `const float scale = std::sqrt(2.0 / 64.0)` (double
        // sqrt rounded to float), then `scale * std::cos(double)` in double,
        // stored as float.
        let scale = (2.0f64 / 64.0).sqrt() as f32;
        let pi = std::f64::consts::PI;
        let mut d = [[0f32; 64]; 16];
        let mut dt = [[0f32; 16]; 64];
        for (i, row) in d.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                let arg = (pi / 2.0 / 64.0) * (i + 1) as f64 * (2 * j + 1) as f64;
                *v = (f64::from(scale) * arg.cos()) as f32;
            }
        }
        for (i, row) in d.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                dt[j][i] = *v;
            }
        }
        DctMatrix { d, dt }
    })
}

/// The reference's image-domain quality metric on the 64×64 downsample.
pub(crate) fn quality(a: &[[f32; 64]; 64]) -> u8 {
    let mut gradient_sum: i64 = 0;
    // Vertical neighbours.
    for (r0, r1) in a.iter().zip(a.iter().skip(1)) {
        for (u, v) in r0.iter().zip(r1.iter()) {
            gradient_sum += i64::from(grad(*u, *v));
        }
    }
    // Horizontal neighbours.
    for row in a.iter() {
        for (u, v) in row.iter().zip(row.iter().skip(1)) {
            gradient_sum += i64::from(grad(*u, *v));
        }
    }
    (gradient_sum / 90).min(100) as u8
}

/// `int d = ((u - v) * 100) / 255; abs(d)` in float, truncated toward zero.
#[inline(always)]
fn grad(u: f32, v: f32) -> i32 {
    ((((u - v) * 100.0) / 255.0) as i32).saturating_abs()
}

/// B = D·A·Dᵀ, keeping only rows/cols 1..=16 of the full 64-point DCT.
pub(crate) fn dct64_to_16(a: &[[f32; 64]; 64]) -> Block16 {
    let m = dct_matrix();
    // T = D·A: T[i][j] = Σ_k D[i][k]·A[k][j], k ascending.
    let mut t = [[0f32; 64]; 16];
    for (trow, drow) in t.iter_mut().zip(m.d.iter()) {
        for (dk, arow) in drow.iter().zip(a.iter()) {
            for (tv, av) in trow.iter_mut().zip(arow.iter()) {
                *tv += *dk * *av;
            }
        }
    }
    // B = T·Dᵀ: B[i][j] = Σ_k T[i][k]·D[j][k], k ascending.
    let mut b: Block16 = [[0f32; 16]; 16];
    for (brow, trow) in b.iter_mut().zip(t.iter()) {
        for (tk, dtrow) in trow.iter().zip(m.dt.iter()) {
            for (bv, dv) in brow.iter_mut().zip(dtrow.iter()) {
                *bv += *tk * *dv;
            }
        }
    }
    b
}

/// Torben Mogensen's median (the reference's `torben`): for an even count
/// this returns the lower-middle element, as the reference does. Returns 0
/// for an empty slice. Finite input always terminates quickly; an iteration
/// cap guards against pathological (non-finite) input.
pub fn torben_median(m: &[f32]) -> f32 {
    let Some(&first) = m.first() else {
        return 0.0;
    };
    let n = m.len();
    let half = n.div_ceil(2);
    let (mut min, mut max) = (first, first);
    for &v in &m[1..] {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    let (mut less, mut equal, mut guess, mut maxltguess, mut mingtguess);
    let mut iterations = 0usize;
    loop {
        guess = (min + max) / 2.0;
        less = 0usize;
        let mut greater = 0usize;
        equal = 0usize;
        maxltguess = min;
        mingtguess = max;
        for &v in m {
            if v < guess {
                less += 1;
                if v > maxltguess {
                    maxltguess = v;
                }
            } else if v > guess {
                greater += 1;
                if v < mingtguess {
                    mingtguess = v;
                }
            } else {
                equal += 1;
            }
        }
        iterations += 1;
        if (less <= half && greater <= half) || iterations > 4 * n + 64 {
            break;
        } else if less > greater {
            max = maxltguess;
        } else {
            min = mingtguess;
        }
    }
    if less >= half {
        maxltguess
    } else if less + equal >= half {
        guess
    } else {
        mingtguess
    }
}

/// The lower median of a 16×16 block's 256 values (the 128th smallest),
/// the value [`torben_median`] returns, found by selection: one pass of
/// introselect over a copy instead of Torben's ~30 counting passes
/// (~0.7 µs against ~10 µs per median on the benchmark machine). The hash
/// bits depend only on the value, so they stay the reference's; the
/// blocks are finite (a DCT of finite luma), and `total_cmp` keeps even
/// a non-finite one from panicking.
fn lower_median(mut flat: [f32; 256]) -> f32 {
    *flat.select_nth_unstable_by(127, f32::total_cmp).1
}

/// Hash bits: bit `i*16+j` is set when `B[i][j]` exceeds the Torben median.
pub(crate) fn bits(b: &Block16) -> PdqHash {
    bits_above(b, median_of(b, |_, _| false))
}

/// The median of the block's values, those at `(i, j)` where `negate(i, j)`
/// taken negated.
fn median_of(b: &Block16, negate: impl Fn(usize, usize) -> bool) -> f32 {
    let mut flat = [0f32; 256];
    for (i, row) in b.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            flat[i * 16 + j] = if negate(i, j) { -v } else { v };
        }
    }
    lower_median(flat)
}

/// One bit per value of the block, set where it exceeds `median`.
fn bits_above(b: &Block16, median: f32) -> PdqHash {
    let mut h = PdqHash::ZERO;
    for (k, v) in b.iter().flatten().enumerate() {
        if *v > median {
            h.set_bit(k);
        }
    }
    h
}

/// The reference's eight dihedral transforms of the DCT block
/// (`dct16OriginalToRotate90` etc.), each followed by [`bits`].
///
/// Each transform transposes the block or not and negates the values of one
/// parity class of `(i, j)`; a transposition keeps the multiset of values,
/// and the median depends on nothing else, so the eight blocks have four
/// medians (no negation; `i + j` odd; `j` even; `i` even), computed once
/// each. The bits are the reference's: same blocks, same medians.
pub(crate) fn dihedral(a: &Block16) -> super::PdqDihedral {
    // `f(i, j, v) -> (dest_i, dest_j, value)`.
    fn map(
        a: &Block16,
        median: f32,
        f: impl Fn(usize, usize, f32) -> (usize, usize, f32),
    ) -> PdqHash {
        let mut out: Block16 = [[0f32; 16]; 16];
        for (i, row) in a.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let (di, dj, dv) = f(i, j, v);
                out[di][dj] = dv;
            }
        }
        bits_above(&out, median)
    }
    let neg_if = |c: bool, v: f32| if c { -v } else { v };
    let plain = median_of(a, |_, _| false);
    let odd_sum = median_of(a, |i, j| (i + j) & 1 == 1);
    let even_j = median_of(a, |_, j| j & 1 == 0);
    let even_i = median_of(a, |i, _| i & 1 == 0);
    super::PdqDihedral {
        orig: bits_above(a, plain),
        rot90: map(a, even_j, |i, j, v| (j, i, neg_if(j & 1 == 0, v))),
        rot180: map(a, odd_sum, |i, j, v| (i, j, neg_if((i + j) & 1 == 1, v))),
        rot270: map(a, even_i, |i, j, v| (j, i, neg_if(i & 1 == 0, v))),
        flipx: map(a, even_i, |i, j, v| (i, j, neg_if(i & 1 == 0, v))),
        flipy: map(a, even_j, |i, j, v| (i, j, neg_if(j & 1 == 0, v))),
        flipplus1: map(a, plain, |i, j, v| (j, i, v)),
        flipminus1: map(a, odd_sum, |i, j, v| (j, i, neg_if((i + j) & 1 == 1, v))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torben_matches_sorted_lower_median() {
        let mut state = 12345u32;
        for n in [1usize, 2, 3, 4, 5, 16, 255, 256] {
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    ((state >> 8) % 1000) as f32 / 7.0
                })
                .collect();
            let mut s = v.clone();
            s.sort_by(f32::total_cmp);
            assert_eq!(torben_median(&v), s[(n - 1) / 2], "n={n}");
        }
    }

    /// The four shared medians give the bits eight medians would: random
    /// blocks, each variant built as the reference builds it and thresholded
    /// at its own median.
    #[test]
    fn dihedral_with_shared_medians_equals_one_median_per_variant() {
        let mut state = 7u32;
        for _ in 0..200 {
            let mut a: Block16 = [[0f32; 16]; 16];
            for v in a.iter_mut().flatten() {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *v = ((state >> 8) % 2001) as f32 / 10.0 - 100.0;
            }
            let own = |f: &dyn Fn(usize, usize, f32) -> (usize, usize, f32)| {
                let mut out: Block16 = [[0f32; 16]; 16];
                for (i, row) in a.iter().enumerate() {
                    for (j, &v) in row.iter().enumerate() {
                        let (di, dj, dv) = f(i, j, v);
                        out[di][dj] = dv;
                    }
                }
                bits(&out)
            };
            let n = |c: bool, v: f32| if c { -v } else { v };
            let d = dihedral(&a);
            assert_eq!(d.orig, bits(&a));
            assert_eq!(d.rot90, own(&|i, j, v| (j, i, n(j & 1 == 0, v))));
            assert_eq!(d.rot180, own(&|i, j, v| (i, j, n((i + j) & 1 == 1, v))));
            assert_eq!(d.rot270, own(&|i, j, v| (j, i, n(i & 1 == 0, v))));
            assert_eq!(d.flipx, own(&|i, j, v| (i, j, n(i & 1 == 0, v))));
            assert_eq!(d.flipy, own(&|i, j, v| (i, j, n(j & 1 == 0, v))));
            assert_eq!(d.flipplus1, own(&|i, j, v| (j, i, v)));
            assert_eq!(d.flipminus1, own(&|i, j, v| (j, i, n((i + j) & 1 == 1, v))));
        }
    }

    /// Selection gives Torben's value on blocks like a DCT's, and on
    /// blocks of many ties, zeros of both signs and a constant block.
    #[test]
    fn lower_median_equals_torben() {
        let mut state = 99u32;
        let mut next = |m: u32| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) % m
        };
        for round in 0..3000 {
            let mut flat = [0f32; 256];
            for v in flat.iter_mut() {
                *v = match round % 4 {
                    0 => (next(1 << 20) as f32 / 1024.0 - 512.0) * 7.3,
                    1 => next(5) as f32 - 2.0,
                    2 => [0.0, -0.0, 1.5, -1.5][next(4) as usize],
                    _ => 3.25,
                };
            }
            let t = torben_median(&flat);
            let s = lower_median(flat);
            assert!(t == s, "round {round}: torben {t}, selection {s}");
            assert_eq!(
                flat.iter().filter(|&&v| v > t).count(),
                flat.iter().filter(|&&v| v > s).count()
            );
        }
    }

    #[test]
    fn torben_terminates_on_non_finite() {
        let v = [f32::NAN, f32::INFINITY, 1.0, f32::NEG_INFINITY];
        let _ = torben_median(&v);
    }
}
