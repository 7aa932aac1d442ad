//! Straightforward whole-image downsample in the reference's structure:
//! full-resolution luma, four full box-filter passes (rows, columns, rows,
//! columns) between two buffers, then decimation. Slow and simple; the test
//! oracle for the streaming path.

use super::{luma, Pixels};

#[derive(Default)]
pub(crate) struct Scratch {
    buf1: Vec<f32>,
    buf2: Vec<f32>,
}

/// Jarosz box-filter window for downsampling `old` samples to `new`.
pub(crate) fn window_size(old: usize, new: usize) -> usize {
    old.div_ceil(2 * new)
}

/// Decimation source index for output `out` of `n_out` over `n_in` inputs:
/// `(int)(((out + 0.5) * n_in) / n_out)` in double, as the reference.
pub(crate) fn sample_index(out: usize, n_in: usize, n_out: usize) -> usize {
    (((out as f64 + 0.5) * n_in as f64) / n_out as f64) as usize
}

/// The reference's `box1DFloat`: `n` elements at `stride` apart.
fn box1d(input: &[f32], output: &mut [f32], n: usize, stride: usize, window: usize) {
    let half = (window + 2) / 2;
    let mut sum = 0f32;
    // Uniform form of the four phases: step k adds element k (k < n),
    // subtracts element k - window (k >= window), and from step half - 1 on
    // writes output k - (half - 1) = sum / count.
    for k in 0..n + half - 1 {
        if k < n {
            sum += input[k * stride];
        }
        if k >= window {
            sum -= input[(k - window) * stride];
        }
        if k + 1 >= half {
            let count = (k + 1).min(window) - (k + 1).saturating_sub(n);
            output[(k + 1 - half) * stride] = sum / count as f32;
        }
    }
}

impl Scratch {
    pub(crate) fn downsample(
        &mut self,
        px: Pixels<'_>,
        w: usize,
        h: usize,
        out: &mut [[f32; 64]; 64],
    ) {
        let n = w * h;
        self.buf1.clear();
        self.buf1.resize(n, 0.0);
        self.buf2.clear();
        self.buf2.resize(n, 0.0);
        match px {
            Pixels::Rgb8(rgb) => {
                for (src, dst) in rgb.chunks_exact(w * 3).zip(self.buf1.chunks_exact_mut(w)) {
                    luma::rgb_row_to_luma(src, dst);
                }
            }
            Pixels::Luma(l) => self.buf1.copy_from_slice(&l[..n]),
        }
        let wr = window_size(w, 64);
        let wc = window_size(h, 64);
        for _ in 0..2 {
            for i in 0..h {
                box1d(&self.buf1[i * w..], &mut self.buf2[i * w..], w, 1, wr);
            }
            for j in 0..w {
                box1d(&self.buf2[j..], &mut self.buf1[j..], h, w, wc);
            }
        }
        for (oi, orow) in out.iter_mut().enumerate() {
            let ii = sample_index(oi, h, 64);
            for (oj, o) in orow.iter_mut().enumerate() {
                *o = self.buf1[ii * w + sample_index(oj, w, 64)];
            }
        }
    }
}
