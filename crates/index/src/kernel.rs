//! Linear-scan distance kernels with runtime CPU dispatch.
//!
//! Every kernel answers the same question: for each stored code, what is the
//! minimum Hamming distance to any of a few needles, and is it within the
//! radius? One needle is ordinary search; eight needles are the dihedral
//! variants of an image, checked in one pass over memory.
//!
//! * [`Kernel::Avx512`]: `VPOPCNTDQ` on two codes per 512-bit register, eight
//!   codes per step; per-code sums are formed with two unpack and two lane
//!   shuffles, compared with one masked compare.
//! * [`Kernel::Avx2`]: nibble-LUT popcount (`vpshufb` + `vpsadbw`), four codes
//!   per step, same transpose-and-add reduction.
//! * [`Kernel::Portable`]: `u64::count_ones`, compiled with the `popcnt`
//!   instruction when the CPU has it.
//!
//! Results are identical across kernels (tested).

use crate::{ACode, Code256};

/// Which scan kernel to use. [`Kernel::detect`] picks the best available.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Avx512,
    Avx2,
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU supports.
    pub fn detect() -> Kernel {
        if Kernel::Avx512.is_supported() {
            Kernel::Avx512
        } else if Kernel::Avx2.is_supported() {
            Kernel::Avx2
        } else {
            Kernel::Portable
        }
    }

    /// Whether the running CPU can execute this kernel.
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// All kernels this CPU supports, best first.
    pub fn available() -> Vec<Kernel> {
        [Kernel::Avx512, Kernel::Avx2, Kernel::Portable]
            .into_iter()
            .filter(|k| k.is_supported())
            .collect()
    }
}

/// Whether the `popcnt` instruction is available (cached).
#[inline]
pub(crate) fn has_popcnt() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("popcnt")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[inline(always)]
pub(crate) fn dist(a: &Code256, b: &Code256) -> u32 {
    crate::hamming(a, b)
}

/// Calls `emit(position, min_distance)` for every code whose minimum distance
/// to any needle is `<= radius`, in increasing position order.
///
/// `kernel` must be supported (callers check via [`Kernel::is_supported`]);
/// an unsupported kernel falls back to the portable one.
pub(crate) fn scan_multi<F: FnMut(usize, u32)>(
    kernel: Kernel,
    codes: &[ACode],
    needles: &[Code256],
    radius: u32,
    emit: &mut F,
) {
    if needles.is_empty() || codes.is_empty() {
        return;
    }
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if Kernel::Avx512.is_supported() => {
            // SAFETY: the CPU supports avx512f + avx512vpopcntdq (checked).
            unsafe { x86::scan_avx512(codes, needles, radius, emit) }
        }
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 if Kernel::Avx2.is_supported() => {
            // SAFETY: the CPU supports avx2 (checked).
            unsafe { x86::scan_avx2(codes, needles, radius, emit) }
        }
        _ => {
            #[cfg(target_arch = "x86_64")]
            if has_popcnt() {
                // SAFETY: the CPU supports popcnt (checked).
                unsafe { x86::scan_popcnt(codes, needles, radius, emit) };
                return;
            }
            scan_portable(codes, needles, radius, emit, 0)
        }
    }
}

#[inline(always)]
fn scan_portable<F: FnMut(usize, u32)>(
    codes: &[ACode],
    needles: &[Code256],
    radius: u32,
    emit: &mut F,
    first: usize,
) {
    for (i, c) in codes.iter().enumerate() {
        let mut best = u32::MAX;
        for n in needles {
            best = best.min(dist(&c.0, n));
        }
        if best <= radius {
            emit(first + i, best);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::scan_portable;
    use crate::{ACode, Code256};
    use std::arch::x86_64::*;

    #[target_feature(enable = "popcnt")]
    pub(super) unsafe fn scan_popcnt<F: FnMut(usize, u32)>(
        codes: &[ACode],
        needles: &[Code256],
        radius: u32,
        emit: &mut F,
    ) {
        scan_portable(codes, needles, radius, emit, 0)
    }

    /// Position of each lane of the AVX-512 reduction in the block of 8.
    const AVX512_ORDER: [usize; 8] = [0, 2, 1, 3, 4, 6, 5, 7];

    #[target_feature(enable = "avx512f,avx512vpopcntdq,popcnt")]
    pub(super) unsafe fn scan_avx512<F: FnMut(usize, u32)>(
        codes: &[ACode],
        needles: &[Code256],
        radius: u32,
        emit: &mut F,
    ) {
        let n = codes.len();
        let blocks = n / 8;
        let base = codes.as_ptr() as *const __m512i;
        let rv = _mm512_set1_epi64(radius as i64);
        let mut lanes = [0u64; 8];
        for b in 0..blocks {
            // SAFETY: block b covers codes 8b..8b+8 < n; ACode is 32 bytes so
            // two codes form one (unaligned-loaded) 512-bit vector.
            let p = unsafe { base.add(b * 4) };
            let x0 = unsafe { _mm512_loadu_si512(p) };
            let x1 = unsafe { _mm512_loadu_si512(p.add(1)) };
            let x2 = unsafe { _mm512_loadu_si512(p.add(2)) };
            let x3 = unsafe { _mm512_loadu_si512(p.add(3)) };
            let mut best = _mm512_set1_epi64(i64::MAX);
            for nd in needles {
                // SAFETY: a Code256 is 32 readable bytes.
                let q = unsafe {
                    _mm512_broadcast_i64x4(_mm256_loadu_si256(nd.as_ptr() as *const __m256i))
                };
                let p0 = _mm512_popcnt_epi64(_mm512_xor_si512(x0, q));
                let p1 = _mm512_popcnt_epi64(_mm512_xor_si512(x1, q));
                let p2 = _mm512_popcnt_epi64(_mm512_xor_si512(x2, q));
                let p3 = _mm512_popcnt_epi64(_mm512_xor_si512(x3, q));
                // Per 128-bit lane: pairwise sums of p0/p1 (and p2/p3).
                let s01 =
                    _mm512_add_epi64(_mm512_unpacklo_epi64(p0, p1), _mm512_unpackhi_epi64(p0, p1));
                let s23 =
                    _mm512_add_epi64(_mm512_unpacklo_epi64(p2, p3), _mm512_unpackhi_epi64(p2, p3));
                // Gather the first and second halves of each code and add.
                let a = _mm512_shuffle_i64x2::<0x88>(s01, s23);
                let c = _mm512_shuffle_i64x2::<0xDD>(s01, s23);
                let sum = _mm512_add_epi64(a, c);
                best = _mm512_min_epu64(best, sum);
            }
            let mask = _mm512_cmple_epu64_mask(best, rv);
            if mask != 0 {
                // SAFETY: lanes is 64 writable bytes.
                unsafe { _mm512_storeu_si512(lanes.as_mut_ptr() as *mut __m512i, best) };
                let mut hits: [(usize, u32); 8] = [(0, 0); 8];
                let mut k = 0;
                for (lane, &pos) in AVX512_ORDER.iter().enumerate() {
                    if mask & (1 << lane) != 0 {
                        hits[k] = (b * 8 + pos, lanes[lane] as u32);
                        k += 1;
                    }
                }
                let hits = &mut hits[..k];
                hits.sort_unstable_by_key(|h| h.0);
                for &(pos, d) in hits.iter() {
                    emit(pos, d);
                }
            }
        }
        let tail = blocks * 8;
        scan_portable(&codes[tail..], needles, radius, emit, tail);
    }

    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn scan_avx2<F: FnMut(usize, u32)>(
        codes: &[ACode],
        needles: &[Code256],
        radius: u32,
        emit: &mut F,
    ) {
        let n = codes.len();
        let blocks = n / 4;
        let base = codes.as_ptr() as *const __m256i;
        let lut = _mm256_setr_epi8(
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
            3, 3, 4,
        );
        let low = _mm256_set1_epi8(0x0f);
        let zero = _mm256_setzero_si256();
        let rv = _mm256_set1_epi64x(radius as i64);
        let mut lanes = [0u64; 4];
        #[inline(always)]
        unsafe fn popcnt_bytes(v: __m256i, lut: __m256i, low: __m256i, zero: __m256i) -> __m256i {
            let lo = _mm256_and_si256(v, low);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
            let cnt = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
            _mm256_sad_epu8(cnt, zero)
        }
        for b in 0..blocks {
            // SAFETY: block b covers codes 4b..4b+4 < n; each code is one
            // 256-bit vector.
            let p = unsafe { base.add(b * 4) };
            let x0 = unsafe { _mm256_loadu_si256(p) };
            let x1 = unsafe { _mm256_loadu_si256(p.add(1)) };
            let x2 = unsafe { _mm256_loadu_si256(p.add(2)) };
            let x3 = unsafe { _mm256_loadu_si256(p.add(3)) };
            let mut best = _mm256_set1_epi64x(i64::MAX);
            for nd in needles {
                // SAFETY: a Code256 is 32 readable bytes.
                let q = unsafe { _mm256_loadu_si256(nd.as_ptr() as *const __m256i) };
                // SAFETY (all four): plain register arithmetic under avx2.
                let s0 = unsafe { popcnt_bytes(_mm256_xor_si256(x0, q), lut, low, zero) };
                let s1 = unsafe { popcnt_bytes(_mm256_xor_si256(x1, q), lut, low, zero) };
                let s2 = unsafe { popcnt_bytes(_mm256_xor_si256(x2, q), lut, low, zero) };
                let s3 = unsafe { popcnt_bytes(_mm256_xor_si256(x3, q), lut, low, zero) };
                let t01 =
                    _mm256_add_epi64(_mm256_unpacklo_epi64(s0, s1), _mm256_unpackhi_epi64(s0, s1));
                let t23 =
                    _mm256_add_epi64(_mm256_unpacklo_epi64(s2, s3), _mm256_unpackhi_epi64(s2, s3));
                let sum = _mm256_add_epi64(
                    _mm256_permute2x128_si256::<0x20>(t01, t23),
                    _mm256_permute2x128_si256::<0x31>(t01, t23),
                );
                let gt = _mm256_cmpgt_epi64(best, sum);
                best = _mm256_blendv_epi8(best, sum, gt);
            }
            let over = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(best, rv)));
            let within = !over & 0xF;
            if within != 0 {
                // SAFETY: lanes is 32 writable bytes.
                unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, best) };
                for (lane, &d) in lanes.iter().enumerate() {
                    if within & (1 << lane) != 0 {
                        emit(b * 4 + lane, d as u32);
                    }
                }
            }
        }
        let tail = blocks * 4;
        scan_portable(&codes[tail..], needles, radius, emit, tail);
    }
}
