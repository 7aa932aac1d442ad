//! The bucket directory of one MIH slot table, in about one byte a bucket.
//!
//! A slot table maps each `t`-bit key to its bucket, a range of the slot's
//! postings. The plain CSR form keeps `2^t + 1` `u32` offsets: at 10M codes
//! and 11 slots of 23–24 indexed bits that is 448 MiB, more than the codes
//! themselves, for buckets that hold about one posting each. So the
//! directory stores a bucket's range as a small count instead:
//!
//! * keys are grouped into **lines** of [`PER_LINE`] buckets, one 64-byte
//!   cache line each: the postings offset of the line's first bucket (`u32`)
//!   and, per bucket, the postings counted from the line's start through
//!   that bucket (`u8`). A lookup reads one line, as the plain form reads
//!   one (two adjacent offsets), so search touches no more memory;
//! * a line whose buckets hold more than 255 postings in all (duplicate-
//!   heavy data: many equal substrings) is **escaped**: its `cum[0] = 255,
//!   cum[1] = 0` — impossible for a counted line, whose counts never fall —
//!   and `base` points at 61 plain `u32` offsets in a side table.
//!
//! 64 bytes per 60 buckets is 1.07 bytes a bucket against 4, and the
//! escaped lines cost what the plain form did. The snapshot keeps the plain
//! offsets on disk (format unchanged); [`SlotDir::offsets`] expands them and
//! [`SlotDirBuilder`] reads them back.

/// Buckets per line: the 64-byte line minus its `u32` base.
pub(crate) const PER_LINE: usize = 60;

/// One cache line of the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Line {
    /// Postings offset of the line's first bucket; for an escaped line, the
    /// index of its first entry in [`SlotDir::wide`].
    base: u32,
    /// Postings from the line's start through bucket `j` (inclusive).
    cum: [u8; PER_LINE],
}

impl Default for Line {
    fn default() -> Line {
        Line {
            base: 0,
            cum: [0; PER_LINE],
        }
    }
}

impl Line {
    #[inline(always)]
    fn escaped(&self) -> bool {
        self.cum[0] > self.cum[1]
    }
}

/// The directory of one slot table: `buckets` keys → postings ranges.
#[derive(Debug, Default)]
pub(crate) struct SlotDir {
    lines: Vec<Line>,
    /// Plain offsets of escaped lines, [`PER_LINE`] + 1 per line.
    wide: Vec<u32>,
    buckets: usize,
}

impl SlotDir {
    /// The directory of bucket sizes `counts` (their sum fits a `u32`).
    pub(crate) fn from_counts(counts: &[u32]) -> SlotDir {
        let mut b = SlotDirBuilder::new(counts.len());
        for &c in counts {
            b.push(c);
        }
        b.finish()
    }

    /// Number of buckets (keys).
    pub(crate) fn buckets(&self) -> usize {
        self.buckets
    }

    /// Address of the line holding `key`, for prefetching (never read
    /// through; may point past the end for a bad key).
    #[inline(always)]
    pub(crate) fn line_ptr(&self, key: usize) -> *const Line {
        self.lines.as_ptr().wrapping_add(key / PER_LINE)
    }

    /// The postings range `[lo, hi)` of bucket `key`, relative to the slot's
    /// postings; `None` for a key outside the table.
    #[inline(always)]
    pub(crate) fn range(&self, key: usize) -> Option<(u32, u32)> {
        if key >= self.buckets {
            return None;
        }
        let line = self.lines.get(key / PER_LINE)?;
        let j = key % PER_LINE;
        if line.escaped() {
            let w = line.base as usize + j;
            return Some((*self.wide.get(w)?, *self.wide.get(w + 1)?));
        }
        let lo = if j == 0 { 0 } else { line.cum[j - 1] };
        Some((
            line.base + u32::from(lo),
            line.base + u32::from(line.cum[j]),
        ))
    }

    /// The plain CSR offsets: every bucket's start, then `total` (the
    /// slot's postings count).
    pub(crate) fn offsets(&self, total: u32) -> impl Iterator<Item = u32> + '_ {
        (0..self.buckets)
            .map(move |k| self.range(k).map_or(total, |(lo, _)| lo))
            .chain(std::iter::once(total))
    }
}

/// Builds a [`SlotDir`] from bucket sizes given in key order.
pub(crate) struct SlotDirBuilder {
    dir: SlotDir,
    /// Sizes of the current line's buckets so far.
    pending: Vec<u32>,
    /// Postings before the current line.
    start: u64,
}

impl SlotDirBuilder {
    pub(crate) fn new(buckets: usize) -> SlotDirBuilder {
        let mut lines = crate::mem::huge_with_capacity(buckets.div_ceil(PER_LINE));
        lines.clear();
        SlotDirBuilder {
            dir: SlotDir {
                lines,
                wide: Vec::new(),
                buckets,
            },
            pending: Vec::with_capacity(PER_LINE),
            start: 0,
        }
    }

    /// Adds the next bucket's size.
    pub(crate) fn push(&mut self, count: u32) {
        self.pending.push(count);
        if self.pending.len() == PER_LINE {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let total: u64 = self.pending.iter().map(|&c| u64::from(c)).sum();
        let base = self.start as u32;
        let mut line = Line::default();
        if total <= u64::from(u8::MAX) {
            line.base = base;
            let mut run = 0u8;
            for (dst, &c) in line.cum.iter_mut().zip(&self.pending) {
                run += c as u8; // total ≤ 255, so neither cast nor sum overflows
                *dst = run;
            }
            // Buckets past the table's end (last line only) stay empty.
            for dst in line.cum.iter_mut().skip(self.pending.len()) {
                *dst = run;
            }
        } else {
            line.base = self.dir.wide.len() as u32;
            line.cum[0] = u8::MAX;
            line.cum[1] = 0;
            let mut at = self.start;
            for &c in &self.pending {
                self.dir.wide.push(at as u32);
                at += u64::from(c);
            }
            for _ in self.pending.len()..PER_LINE {
                self.dir.wide.push(at as u32);
            }
            self.dir.wide.push(at as u32);
        }
        self.dir.lines.push(line);
        self.start += total;
        self.pending.clear();
    }

    pub(crate) fn finish(mut self) -> SlotDir {
        self.flush();
        self.dir.wide.shrink_to_fit();
        self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(counts: &[u32]) -> Vec<u32> {
        let mut out = vec![0u32];
        for &c in counts {
            out.push(out.last().copied().unwrap_or(0) + c);
        }
        out
    }

    fn check(counts: &[u32]) {
        let d = SlotDir::from_counts(counts);
        let off = plain(counts);
        for k in 0..counts.len() {
            assert_eq!(d.range(k), Some((off[k], off[k + 1])), "bucket {k}");
        }
        assert_eq!(d.range(counts.len()), None);
        let total = off.last().copied().unwrap_or(0);
        assert_eq!(d.offsets(total).collect::<Vec<_>>(), off);
    }

    #[test]
    fn ranges_match_plain_offsets() {
        // Sparse, exactly full (255 in a line), escaped (256), one huge
        // bucket, and a partial last line.
        let mut x = 12345u64;
        let mut rnd = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % m) as u32
        };
        let sparse: Vec<u32> = (0..1000).map(|_| rnd(3)).collect();
        check(&sparse);
        let mut full = vec![4u32; PER_LINE];
        full[0] = 255 - 4 * (PER_LINE as u32 - 1);
        check(&full);
        full[1] += 1;
        check(&full);
        let mut huge = vec![1u32; 3 * PER_LINE + 7];
        huge[PER_LINE + 5] = 1_000_000;
        check(&huge);
        check(&[]);
        check(&[0]);
        check(&[300]);
    }

    #[test]
    fn a_line_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Line>(), 64);
        assert_eq!(std::mem::align_of::<Line>(), 64);
    }
}
