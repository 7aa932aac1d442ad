//! Streaming, lane-parallel blur + decimate, bit-identical to the reference.
//!
//! The reference runs four full-image box-filter passes (rows, columns, rows,
//! columns). Each output is a running sum: `sum += in[k]; sum -= in[k - w];
//! out = sum / count` — a sequential dependency along the pass direction, so
//! the only legal parallelism is *across* independent rows or columns. This
//! module exploits exactly that and nothing else:
//!
//! * Rows are handled in blocks of [`L`] = 32. A block is transposed so each
//!   column holds the 32 rows' values side by side (`[f32; 32]`), and the row
//!   pass runs once over the columns with 32 independent sums in SIMD lanes
//!   (4 AVX2 vectors / 2 AVX-512 vectors: enough independent chains to hide
//!   add latency).
//! * The column pass keeps one running sum per column and runs down the rows
//!   (lanes = adjacent columns), reading input rows from a ring buffer of
//!   `window + 32` rows, so the blurred full-size image never exists.
//! * The second row pass only divides and stores at the 64 columns that the
//!   decimation samples (the running sum itself must still see every
//!   element), giving a compact `height × 64` buffer; the second column pass
//!   runs over that and keeps the 64 sampled rows.
//!
//! No lane ever mixes with another and every element sees the same sequence
//! of IEEE `f32` operations as the reference (no FMA, no reassociation), so
//! results are bit-identical. The body is written once as `#[inline(always)]`
//! code and instantiated three times: baseline, `avx2`, `avx512f`.

use super::{luma, naive::sample_index, naive::window_size, PdqPath, Pixels};

/// Rows per block (SIMD lanes in the row passes).
const L: usize = 32;
type Lanes = [f32; L];

/// Reusable buffers; grow to the largest image seen, then stay.
#[derive(Default)]
pub(crate) struct Scratch {
    /// Row-pass input, transposed: `[column][row-in-block]`.
    block_t: Vec<Lanes>,
    /// First row-pass output, transposed.
    x1_t: Vec<Lanes>,
    /// Ring of first-row-pass output rows, `(window_cols + L) × width`.
    ring: Vec<f32>,
    /// Column-pass running sums, one per column.
    vsum: Vec<f32>,
    /// First column-pass output rows for the current block, `L × width`.
    x2_rows: Vec<f32>,
    /// Luma rows for the current block, `8 × width`.
    luma_tmp: Vec<f32>,
    /// Second row-pass output at the 64 sampled columns, `height × 64`.
    x3c: Vec<f32>,
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2_available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn avx2_available() -> bool {
    false
}
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512_available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn avx512_available() -> bool {
    false
}

impl Scratch {
    pub(crate) fn downsample(
        &mut self,
        path: PdqPath,
        px: Pixels<'_>,
        w: usize,
        h: usize,
        out: &mut [[f32; 64]; 64],
    ) {
        self.prepare(w, h);
        match path {
            #[cfg(target_arch = "x86_64")]
            PdqPath::Avx512 if avx512_available() => {
                // SAFETY: the CPU supports AVX-512F (checked just above).
                unsafe { downsample_avx512(self, px, w, h, out) }
            }
            #[cfg(target_arch = "x86_64")]
            PdqPath::Avx2 if avx2_available() => {
                // SAFETY: the CPU supports AVX2 (checked just above).
                unsafe { downsample_avx2(self, px, w, h, out) }
            }
            _ => downsample_portable(self, px, w, h, out),
        }
    }

    fn prepare(&mut self, w: usize, h: usize) {
        let wc = window_size(h, 64);
        grow(&mut self.block_t, w, [0.0; L]);
        grow(&mut self.x1_t, w, [0.0; L]);
        grow(&mut self.ring, (wc + L) * w, 0.0);
        grow(&mut self.x2_rows, L * w, 0.0);
        grow(&mut self.luma_tmp, 8 * w, 0.0);
        grow(&mut self.x3c, h * 64, 0.0);
        self.vsum.clear();
        self.vsum.resize(w, 0.0);
    }
}

/// Grows `v` to at least `n` elements (never shrinks: no per-image churn).
fn grow<T: Copy>(v: &mut Vec<T>, n: usize, fill: T) {
    if v.len() < n {
        v.resize(n, fill);
    }
}

fn downsample_portable(
    s: &mut Scratch,
    px: Pixels<'_>,
    w: usize,
    h: usize,
    o: &mut [[f32; 64]; 64],
) {
    #[cfg(target_arch = "x86_64")]
    downsample_impl::<Sse2Tile>(s, px, w, h, o);
    #[cfg(not(target_arch = "x86_64"))]
    downsample_impl::<ScalarTile>(s, px, w, h, o);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn downsample_avx2(s: &mut Scratch, px: Pixels<'_>, w: usize, h: usize, o: &mut [[f32; 64]; 64]) {
    downsample_impl::<AvxTile>(s, px, w, h, o)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn downsample_avx512(s: &mut Scratch, px: Pixels<'_>, w: usize, h: usize, o: &mut [[f32; 64]; 64]) {
    downsample_impl::<AvxTile>(s, px, w, h, o)
}

#[inline(always)]
fn add(s: &mut Lanes, a: &Lanes) {
    for (x, y) in s.iter_mut().zip(a) {
        *x += *y;
    }
}

#[inline(always)]
fn sub(s: &mut Lanes, a: &Lanes) {
    for (x, y) in s.iter_mut().zip(a) {
        *x -= *y;
    }
}

#[inline(always)]
fn div(s: &Lanes, c: f32) -> Lanes {
    let mut o = [0f32; L];
    for (x, y) in o.iter_mut().zip(s) {
        *x = *y / c;
    }
    o
}

/// The full pipeline; `#[inline(always)]` so each wrapper compiles it with
/// its own target features.
#[inline(always)]
fn downsample_impl<T: Tile>(
    s: &mut Scratch,
    px: Pixels<'_>,
    w: usize,
    h: usize,
    out: &mut [[f32; 64]; 64],
) {
    let wr = window_size(w, 64);
    let wc = window_size(h, 64);
    let half_c = (wc + 2) / 2;
    let ring_rows = wc + L;
    let mut col_samples = [usize::MAX; 65];
    let mut row_samples = [usize::MAX; 65];
    for k in 0..64 {
        col_samples[k] = sample_index(k, w, 64);
        row_samples[k] = sample_index(k, h, 64);
    }

    let Scratch {
        block_t,
        x1_t,
        ring,
        vsum,
        x2_rows,
        luma_tmp,
        x3c,
    } = s;
    let block_t = &mut block_t[..w];
    let x1_t = &mut x1_t[..w];
    let ring = &mut ring[..ring_rows * w];
    let vsum = &mut vsum[..w];
    let x2_rows = &mut x2_rows[..L * w];
    let luma_tmp = &mut luma_tmp[..8 * w];
    let x3c = &mut x3c[..h * 64];

    // Column-pass state: step counter (see `naive::box1d` for the uniform
    // step form of the reference's four phases).
    let mut vstep = 0usize;
    let vsteps = h + half_c - 1;

    let mut r0 = 0;
    while r0 < h {
        let nrows = L.min(h - r0);

        // 1. Luma for rows r0..r0+nrows, transposed into block_t.
        let mut kb = 0;
        while kb < nrows {
            let g = 8.min(nrows - kb);
            let mut offs = [0usize; 8];
            match px {
                Pixels::Rgb8(rgb) => {
                    for (k, off) in offs.iter_mut().enumerate().take(g) {
                        let r = r0 + kb + k;
                        let src = &rgb[r * w * 3..(r + 1) * w * 3];
                        luma::rgb_row_to_luma(src, &mut luma_tmp[k * w..(k + 1) * w]);
                        *off = k * w;
                    }
                    rows_to_lanes::<T>(luma_tmp, &offs[..g], w, kb, block_t);
                }
                Pixels::Luma(l) => {
                    for (k, off) in offs.iter_mut().enumerate().take(g) {
                        *off = (r0 + kb + k) * w;
                    }
                    rows_to_lanes::<T>(l, &offs[..g], w, kb, block_t);
                }
            }
            kb += g;
        }

        // 2. First row pass (all outputs).
        hbox_full(block_t, x1_t, wr);

        // 3. Transpose back into the ring.
        let mut offs = [0usize; L];
        for (k, off) in offs.iter_mut().enumerate().take(nrows) {
            *off = ((r0 + k) % ring_rows) * w;
        }
        lanes_to_rows::<T>(x1_t, ring, &offs[..nrows], w);

        // 4. Column pass as far as the available rows allow; every full
        //    block of outputs goes through the second row pass.
        let avail = r0 + nrows;
        while vstep < vsteps && (vstep >= h || vstep < avail) {
            let k = vstep;
            let add_row = (k < h).then(|| (k % ring_rows) * w);
            let sub_row = (k >= wc).then(|| ((k - wc) % ring_rows) * w);
            vstep_columns(vsum, ring, add_row, sub_row, w);
            if k + 1 >= half_c {
                let o = k + 1 - half_c;
                let count = ((k + 1).min(wc) - (k + 1).saturating_sub(h)) as f32;
                let dst = &mut x2_rows[(o % L) * w..(o % L + 1) * w];
                for (d, v) in dst.iter_mut().zip(vsum.iter()) {
                    *d = *v / count;
                }
                if o % L == L - 1 || o == h - 1 {
                    let base = o - o % L;
                    let n = o - base + 1;
                    let mut offs = [0usize; L];
                    for (k, off) in offs.iter_mut().enumerate().take(n) {
                        *off = k * w;
                    }
                    let mut kb = 0;
                    while kb < n {
                        let g = 8.min(n - kb);
                        rows_to_lanes::<T>(x2_rows, &offs[kb..kb + g], w, kb, block_t);
                        kb += g;
                    }
                    let mut sampled = [[0f32; L]; 64];
                    hbox_sampled(block_t, wr, &col_samples, &mut sampled);
                    for k in 0..n {
                        let row = &mut x3c[(base + k) * 64..(base + k + 1) * 64];
                        for (d, lanes) in row.iter_mut().zip(sampled.iter()) {
                            *d = lanes[k];
                        }
                    }
                }
            }
            vstep += 1;
        }
        r0 += nrows;
    }

    // 5. Second column pass over the compact buffer, keeping sampled rows.
    let mut sum = [0f32; 64];
    let mut next = 0;
    for k in 0..vsteps {
        if k < h {
            let row = &x3c[k * 64..(k + 1) * 64];
            for (s, v) in sum.iter_mut().zip(row) {
                *s += *v;
            }
        }
        if k >= wc {
            let row = &x3c[(k - wc) * 64..(k - wc + 1) * 64];
            for (s, v) in sum.iter_mut().zip(row) {
                *s -= *v;
            }
        }
        if k + 1 >= half_c {
            let o = k + 1 - half_c;
            if row_samples[next] == o {
                let count = ((k + 1).min(wc) - (k + 1).saturating_sub(h)) as f32;
                let mut v = [0f32; 64];
                for (d, s) in v.iter_mut().zip(sum.iter()) {
                    *d = *s / count;
                }
                while row_samples[next] == o {
                    out[next] = v;
                    next += 1;
                }
            }
        }
    }
}

/// One column-pass step over all columns: `sum += add_row; sum -= sub_row`.
#[inline(always)]
fn vstep_columns(
    vsum: &mut [f32],
    ring: &[f32],
    add_row: Option<usize>,
    sub_row: Option<usize>,
    w: usize,
) {
    match (add_row, sub_row) {
        (Some(a), Some(b)) => {
            let (ra, rb) = (&ring[a..a + w], &ring[b..b + w]);
            for ((s, x), y) in vsum.iter_mut().zip(ra).zip(rb) {
                *s += *x;
                *s -= *y;
            }
        }
        (Some(a), None) => {
            for (s, x) in vsum.iter_mut().zip(&ring[a..a + w]) {
                *s += *x;
            }
        }
        (None, Some(b)) => {
            for (s, y) in vsum.iter_mut().zip(&ring[b..b + w]) {
                *s -= *y;
            }
        }
        (None, None) => {}
    }
}

/// An 8×8 transpose: `dst[c][r] = src[r][c]`. Pure data movement (no
/// arithmetic), so implementations cannot affect results.
trait Tile {
    fn transpose8(src: [&[f32; 8]; 8], dst: [&mut [f32; 8]; 8]);
}

/// Plain scalar transpose (any target).
#[allow(dead_code)]
struct ScalarTile;

impl Tile for ScalarTile {
    #[inline(always)]
    fn transpose8(src: [&[f32; 8]; 8], dst: [&mut [f32; 8]; 8]) {
        for (c, d) in dst.into_iter().enumerate() {
            for (r, v) in d.iter_mut().enumerate() {
                *v = src[r][c];
            }
        }
    }
}

/// SSE2 (x86-64 baseline): four 4×4 register transposes.
#[cfg(target_arch = "x86_64")]
struct Sse2Tile;

#[cfg(target_arch = "x86_64")]
impl Tile for Sse2Tile {
    #[inline(always)]
    fn transpose8(src: [&[f32; 8]; 8], dst: [&mut [f32; 8]; 8]) {
        use std::arch::x86_64::*;
        for rb in [0usize, 4] {
            for cb in [0usize, 4] {
                // SAFETY: every pointer is to a `[f32; 8]` at offset cb or rb
                // (0 or 4), so each 4-float load/store is in bounds. SSE2 is
                // part of the x86-64 baseline.
                unsafe {
                    let r0 = _mm_loadu_ps(src[rb].as_ptr().add(cb));
                    let r1 = _mm_loadu_ps(src[rb + 1].as_ptr().add(cb));
                    let r2 = _mm_loadu_ps(src[rb + 2].as_ptr().add(cb));
                    let r3 = _mm_loadu_ps(src[rb + 3].as_ptr().add(cb));
                    let t0 = _mm_unpacklo_ps(r0, r1);
                    let t1 = _mm_unpacklo_ps(r2, r3);
                    let t2 = _mm_unpackhi_ps(r0, r1);
                    let t3 = _mm_unpackhi_ps(r2, r3);
                    _mm_storeu_ps(dst[cb].as_mut_ptr().add(rb), _mm_movelh_ps(t0, t1));
                    _mm_storeu_ps(dst[cb + 1].as_mut_ptr().add(rb), _mm_movehl_ps(t1, t0));
                    _mm_storeu_ps(dst[cb + 2].as_mut_ptr().add(rb), _mm_movelh_ps(t2, t3));
                    _mm_storeu_ps(dst[cb + 3].as_mut_ptr().add(rb), _mm_movehl_ps(t3, t2));
                }
            }
        }
    }
}

/// AVX: the classic unpack / shuffle / lane-permute 8×8 transpose. Only
/// instantiated inside the `avx2` / `avx512f` entry points, which run only
/// after run-time detection.
#[cfg(target_arch = "x86_64")]
struct AvxTile;

#[cfg(target_arch = "x86_64")]
impl Tile for AvxTile {
    #[inline(always)]
    fn transpose8(src: [&[f32; 8]; 8], dst: [&mut [f32; 8]; 8]) {
        // SAFETY: AvxTile is used only by `downsample_avx2` and
        // `downsample_avx512`, which are only called when AVX2 (which
        // implies AVX) was detected at run time.
        unsafe { transpose8_avx(src, dst) }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
fn transpose8_avx(src: [&[f32; 8]; 8], dst: [&mut [f32; 8]; 8]) {
    use std::arch::x86_64::*;
    // SAFETY: each pointer is to a whole `[f32; 8]` (32 bytes).
    let r: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src[i].as_ptr()) });
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    let out = [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ];
    for (d, v) in dst.into_iter().zip(out) {
        // SAFETY: `d` is a whole `[f32; 8]`.
        unsafe { _mm256_storeu_ps(d.as_mut_ptr(), v) }
    }
}

/// Splits eight consecutive lane groups into eight `&mut [f32; 8]` at
/// `lane0` (`lane0 + 8 <= L`).
#[inline(always)]
fn lane_slots(group: &mut [Lanes], lane0: usize) -> Option<[&mut [f32; 8]; 8]> {
    let [a, b, c, d, e, f, g, h] = group else {
        return None;
    };
    Some([
        a[lane0..].first_chunk_mut::<8>()?,
        b[lane0..].first_chunk_mut::<8>()?,
        c[lane0..].first_chunk_mut::<8>()?,
        d[lane0..].first_chunk_mut::<8>()?,
        e[lane0..].first_chunk_mut::<8>()?,
        f[lane0..].first_chunk_mut::<8>()?,
        g[lane0..].first_chunk_mut::<8>()?,
        h[lane0..].first_chunk_mut::<8>()?,
    ])
}

/// Transposes up to 8 rows (`src[off..off + w]` for each offset) into lanes
/// `lane0..lane0 + offs.len()` of `dst[0..w]`.
#[inline(always)]
fn rows_to_lanes<T: Tile>(src: &[f32], offs: &[usize], w: usize, lane0: usize, dst: &mut [Lanes]) {
    let dst = &mut dst[..w];
    if offs.len() == 8 && lane0 + 8 <= L {
        let rows: [&[f32]; 8] = std::array::from_fn(|k| &src[offs[k]..offs[k] + w]);
        let tiles = w / 8;
        for (t, dchunk) in dst[..tiles * 8].chunks_exact_mut(8).enumerate() {
            let tile_src: [Option<&[f32; 8]>; 8] =
                std::array::from_fn(|r| rows[r][t * 8..].first_chunk::<8>());
            let (
                Some(d),
                [Some(s0), Some(s1), Some(s2), Some(s3), Some(s4), Some(s5), Some(s6), Some(s7)],
            ) = (lane_slots(dchunk, lane0), tile_src)
            else {
                continue;
            };
            T::transpose8([s0, s1, s2, s3, s4, s5, s6, s7], d);
        }
        for (j, d) in dst.iter_mut().enumerate().skip(tiles * 8) {
            for (r, row) in rows.iter().enumerate() {
                d[lane0 + r] = row[j];
            }
        }
    } else {
        for (r, &off) in offs.iter().enumerate() {
            for (d, v) in dst.iter_mut().zip(&src[off..off + w]) {
                d[lane0 + r] = *v;
            }
        }
    }
}

/// Transposes lanes `0..offs.len()` of `src[0..w]` into rows
/// `dst[off..off + w]` (the offsets must not overlap).
#[inline(always)]
fn lanes_to_rows<T: Tile>(src: &[Lanes], dst: &mut [f32], offs: &[usize], w: usize) {
    let src = &src[..w];
    let tiles = w / 8;
    let mut g0 = 0;
    while g0 < offs.len() {
        let g = 8.min(offs.len() - g0);
        if g == 8 {
            for t in 0..tiles {
                let cols: [Option<&[f32; 8]>; 8] =
                    std::array::from_fn(|c| src[t * 8 + c][g0..].first_chunk::<8>());
                let [Some(c0), Some(c1), Some(c2), Some(c3), Some(c4), Some(c5), Some(c6), Some(c7)] =
                    cols
                else {
                    continue;
                };
                // Transpose into a local tile, then copy its rows out (the
                // ring rows are disjoint but not in one borrowable order).
                let mut tile = [[0f32; 8]; 8];
                {
                    let [d0, d1, d2, d3, d4, d5, d6, d7] = &mut tile;
                    T::transpose8(
                        [c0, c1, c2, c3, c4, c5, c6, c7],
                        [d0, d1, d2, d3, d4, d5, d6, d7],
                    );
                }
                for (r, row) in tile.iter().enumerate() {
                    let off = offs[g0 + r] + t * 8;
                    dst[off..off + 8].copy_from_slice(row);
                }
            }
            for j in tiles * 8..w {
                for r in 0..8 {
                    dst[offs[g0 + r] + j] = src[j][g0 + r];
                }
            }
        } else {
            for r in 0..g {
                let off = offs[g0 + r];
                for (d, s) in dst[off..off + w].iter_mut().zip(src) {
                    *d = s[g0 + r];
                }
            }
        }
        g0 += g;
    }
}

/// Reference box filter along the columns of a transposed block, all outputs.
#[inline(always)]
fn hbox_full(inp: &[Lanes], out: &mut [Lanes], win: usize) {
    let n = inp.len();
    let half = (win + 2) / 2;
    let mut sum = [0f32; L];
    // Phase 1: accumulate.
    for a in &inp[..half - 1] {
        add(&mut sum, a);
    }
    // Phase 2: growing window.
    for (k, (a, o)) in inp[half - 1..win].iter().zip(out.iter_mut()).enumerate() {
        add(&mut sum, a);
        *o = div(&sum, (half + k) as f32);
    }
    let o_base = win - half + 1;
    // Phase 3: full window.
    let wf = win as f32;
    for ((a, b), o) in inp[win..n]
        .iter()
        .zip(&inp[..n - win])
        .zip(out[o_base..].iter_mut())
    {
        add(&mut sum, a);
        sub(&mut sum, b);
        *o = div(&sum, wf);
    }
    // Phase 4: shrinking window.
    let o_base = o_base + (n - win);
    for (k, (b, o)) in inp[n - win..n - win + half - 1]
        .iter()
        .zip(out[o_base..].iter_mut())
        .enumerate()
    {
        sub(&mut sum, b);
        *o = div(&sum, (win - 1 - k) as f32);
    }
}

/// Same running sums as [`hbox_full`], but divides and stores only at the
/// sampled output positions (`samples`: non-decreasing, `usize::MAX`-ended).
#[inline(always)]
fn hbox_sampled(inp: &[Lanes], win: usize, samples: &[usize; 65], out: &mut [Lanes; 64]) {
    let n = inp.len();
    let half = (win + 2) / 2;
    let mut sum = [0f32; L];
    let mut next = 0usize;
    let mut emit = |o: usize, sum: &Lanes, count: usize, next: &mut usize| {
        if samples[*next] == o {
            let v = div(sum, count as f32);
            while samples[*next] == o {
                out[*next] = v;
                *next += 1;
            }
        }
    };
    for a in &inp[..half - 1] {
        add(&mut sum, a);
    }
    for (k, a) in inp[half - 1..win].iter().enumerate() {
        add(&mut sum, a);
        emit(k, &sum, half + k, &mut next);
    }
    let o_base = win - half + 1;
    for (k, (a, b)) in inp[win..n].iter().zip(&inp[..n - win]).enumerate() {
        add(&mut sum, a);
        sub(&mut sum, b);
        emit(o_base + k, &sum, win, &mut next);
    }
    let o_base = o_base + (n - win);
    for (k, b) in inp[n - win..n - win + half - 1].iter().enumerate() {
        sub(&mut sum, b);
        emit(o_base + k, &sum, win - 1 - k, &mut next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_transpose<T: Tile>() {
        let src: [[f32; 8]; 8] =
            std::array::from_fn(|r| std::array::from_fn(|c| (r * 8 + c) as f32));
        let mut dst = [[0f32; 8]; 8];
        {
            let [s0, s1, s2, s3, s4, s5, s6, s7] = &src;
            let [d0, d1, d2, d3, d4, d5, d6, d7] = &mut dst;
            T::transpose8(
                [s0, s1, s2, s3, s4, s5, s6, s7],
                [d0, d1, d2, d3, d4, d5, d6, d7],
            );
        }
        for (c, row) in dst.iter().enumerate() {
            for (r, v) in row.iter().enumerate() {
                assert_eq!(*v, src[r][c], "dst[{c}][{r}]");
            }
        }
    }

    #[test]
    fn every_tile_kernel_transposes() {
        check_transpose::<ScalarTile>();
        #[cfg(target_arch = "x86_64")]
        check_transpose::<Sse2Tile>();
        #[cfg(target_arch = "x86_64")]
        if avx2_available() {
            check_transpose::<AvxTile>();
        }
    }
}
