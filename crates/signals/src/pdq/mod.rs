//! PDQ perceptual image hashing, bit-exact with Meta's reference.
//!
//! PDQ turns an image into a 256-bit hash plus a 0..=100 quality score:
//! luminance → two-pass Jarosz tent blur (box filter along rows, then columns,
//! twice) → decimation to 64×64 → 16×16 corner of the 2-D DCT → one bit per
//! coefficient, set when it is above the (Torben) median. Eight dihedral
//! variants (rotations/flips) come from sign changes and transposes of that
//! one 16×16 DCT block.
//!
//! # Bit-exactness
//!
//! Matches, hash *and* quality, the reference C++ core as the `pdqhash` PyPI
//! package drives it (the pipeline ThreatExchange/HMA tooling uses):
//!
//! * Luminance is computed the way that binding computes it: in `f64`,
//!   `(R·0.299 + G·0.587) + B·0.114`, then rounded to `f32` (see `luma.rs`;
//!   the C++ core's own `f32` luma differs in the last bit on ~31% of the
//!   pixels of the bridge fixture photo).
//! * Everything after that is `f32` in the reference's exact operation order:
//!   each box-filter output is a running sum (`sum += in[r]; sum -= in[l];
//!   out = sum / count`), the DCT sums run k = 0..63 left to right, and so on.
//!   Rust never contracts `a*b + c` into an FMA and we never call `mul_add`,
//!   so every element sees the same IEEE operations as the reference.
//! * Images narrower or shorter than 5 px get the all-zero hash, quality 0.
//! * A 64×64 input skips the blur in [`PdqHasher::hash_rgb8`] (the
//!   reference's video-frame shortcut) but not in the dihedral entry point,
//!   exactly like the reference.
//!
//! # Speed
//!
//! The fast path ([`PdqPath::Avx512`], [`PdqPath::Avx2`],
//! [`PdqPath::Portable`]; see `stream.rs`) never materialises the blurred
//! full-resolution image. It streams 32-row blocks: row passes run with the
//! 32 rows in SIMD lanes (a transposed block, so each lane keeps its own
//! sequential running sum), the column pass runs across columns in lanes with
//! a small ring buffer of rows, and the second row/column passes only divide
//! and store at the 64 positions that decimation samples. Lanes never mix, so
//! every element's arithmetic is identical to the scalar reference. The same
//! source is compiled three times (`target_feature` multiversioning), chosen
//! at run time. [`PdqPath::Naive`] is a straightforward whole-image
//! implementation kept as the oracle for tests.

mod dct;
mod luma;
mod naive;
mod stream;

use std::fmt;
use std::str::FromStr;

pub use dct::torben_median;

/// Hamming distance at or below which two PDQ hashes are considered a match
/// (Meta's recommended default).
pub const PDQ_MATCH_THRESHOLD: u32 = 31;

/// Images narrower or shorter than this hash to [`PdqHash::ZERO`], quality 0.
pub const PDQ_MIN_DIMENSION: u32 = 5;

/// Errors from PDQ hashing and hash parsing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PdqError {
    /// The text is not 64 hexadecimal characters.
    #[error("bad PDQ hex: {0}")]
    BadHex(String),
    /// The pixel buffer length does not match `width × height × channels`.
    #[error("pixel buffer has {actual} elements, expected {expected} for the given dimensions")]
    BufferSize { expected: u64, actual: u64 },
    /// `width × height` does not fit in memory arithmetic.
    #[error("image dimensions {width}x{height} are too large")]
    TooLarge { width: u32, height: u32 },
    /// A luminance value is NaN or infinite.
    #[error("luminance buffer contains a non-finite value at index {0}")]
    NonFiniteLuma(usize),
    /// The requested code path needs CPU features this machine lacks.
    #[error("PDQ code path {0:?} is not supported on this CPU")]
    UnsupportedPath(PdqPath),
}

/// A 256-bit PDQ hash.
///
/// Bit `k` (0..256) is the reference's bit `k`: DCT coefficient
/// `(k / 16, k % 16)`. Internally four `u64` words, most significant first,
/// i.e. in the order of Meta's hex text, so the derived `Ord` is the
/// lexicographic order of the hex strings.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PdqHash([u64; 4]);

impl PdqHash {
    /// The all-zero hash (what the reference returns for images under 5 px).
    pub const ZERO: PdqHash = PdqHash([0; 4]);

    /// Parses Meta's 64-character hex serialisation (case-insensitive).
    pub fn from_hex(s: &str) -> Result<PdqHash, PdqError> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(PdqError::BadHex(format!(
                "expected 64 hex characters, got {}",
                bytes.len()
            )));
        }
        let mut words = [0u64; 4];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(16)) {
            for &c in chunk {
                let nibble = match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'f' => c - b'a' + 10,
                    b'A'..=b'F' => c - b'A' + 10,
                    _ => {
                        return Err(PdqError::BadHex(format!(
                            "invalid character {:?}",
                            char::from(c)
                        )))
                    }
                };
                *word = (*word << 4) | u64::from(nibble);
            }
        }
        Ok(PdqHash(words))
    }

    /// Meta's serialisation: 64 lowercase hex characters, bit 255 first.
    pub fn to_hex(&self) -> String {
        format!(
            "{:016x}{:016x}{:016x}{:016x}",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }

    /// Hamming distance (number of differing bits, 0..=256).
    pub fn distance(&self, other: &PdqHash) -> u32 {
        self.0
            .iter()
            .zip(other.0.iter())
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    }

    /// The hash as four words, most significant (first in hex) first.
    pub fn to_words(&self) -> [u64; 4] {
        self.0
    }

    /// Inverse of [`PdqHash::to_words`].
    pub fn from_words(w: [u64; 4]) -> PdqHash {
        PdqHash(w)
    }

    /// Reference bit `k` (0..256); out-of-range `k` reads as `false`.
    pub fn bit(&self, k: usize) -> bool {
        if k >= 256 {
            return false;
        }
        (self.0[3 - k / 64] >> (k % 64)) & 1 == 1
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    fn set_bit(&mut self, k: usize) {
        if k < 256 {
            self.0[3 - k / 64] |= 1u64 << (k % 64);
        }
    }
}

impl fmt::Display for PdqHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PdqHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PdqHash({})", self.to_hex())
    }
}

impl FromStr for PdqHash {
    type Err = PdqError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PdqHash::from_hex(s)
    }
}

/// A hash and its quality score (0..=100; the reference suggests ignoring
/// hashes below 50 for matching).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PdqOutput {
    pub hash: PdqHash,
    pub quality: u8,
}

/// The eight dihedral hashes, in the reference's definitions: each is the
/// hash the reference would compute for the correspondingly transformed
/// image (up to the blur not commuting exactly with the transform).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PdqDihedral {
    pub orig: PdqHash,
    pub rot90: PdqHash,
    pub rot180: PdqHash,
    pub rot270: PdqHash,
    pub flipx: PdqHash,
    pub flipy: PdqHash,
    pub flipplus1: PdqHash,
    pub flipminus1: PdqHash,
}

impl PdqDihedral {
    /// The variants with their reference names, in the reference's order.
    pub fn named(&self) -> [(&'static str, PdqHash); 8] {
        [
            ("orig", self.orig),
            ("rot90", self.rot90),
            ("rot180", self.rot180),
            ("rot270", self.rot270),
            ("flipx", self.flipx),
            ("flipy", self.flipy),
            ("flipplus1", self.flipplus1),
            ("flipminus1", self.flipminus1),
        ]
    }
}

/// Dihedral hashes and the (shared) quality score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PdqDihedralOutput {
    pub hashes: PdqDihedral,
    pub quality: u8,
}

/// Which implementation of the blur/decimate stage a [`PdqHasher`] runs.
/// All produce identical results; tests force each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PdqPath {
    /// Whole-image passes in the reference's structure (test oracle; slow).
    Naive,
    /// Streaming lane-parallel pipeline compiled for the baseline target.
    Portable,
    /// The same pipeline compiled with AVX2 enabled (x86-64 only).
    Avx2,
    /// The same pipeline compiled with AVX-512F enabled (x86-64 only).
    Avx512,
}

impl PdqPath {
    /// Whether this CPU can run the path.
    pub fn is_supported(self) -> bool {
        match self {
            PdqPath::Naive | PdqPath::Portable => true,
            PdqPath::Avx2 => stream::avx2_available(),
            PdqPath::Avx512 => stream::avx512_available(),
        }
    }

    /// The fastest path this CPU supports.
    pub fn best() -> PdqPath {
        if PdqPath::Avx512.is_supported() {
            PdqPath::Avx512
        } else if PdqPath::Avx2.is_supported() {
            PdqPath::Avx2
        } else {
            PdqPath::Portable
        }
    }
}

/// Where the hasher takes its pixels from.
#[derive(Clone, Copy)]
enum Pixels<'a> {
    Rgb8(&'a [u8]),
    Luma(&'a [f32]),
}

/// Reusable PDQ hasher. Holds scratch buffers so hashing many images does
/// not allocate per image once the buffers have grown to the largest
/// dimensions seen. Hashing takes `&mut self`: use one hasher per thread.
pub struct PdqHasher {
    path: PdqPath,
    stream: stream::Scratch,
    naive: naive::Scratch,
}

impl Default for PdqHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PdqHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PdqHasher")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl PdqHasher {
    /// A hasher using the fastest path this CPU supports.
    pub fn new() -> Self {
        PdqHasher {
            path: PdqPath::best(),
            stream: stream::Scratch::default(),
            naive: naive::Scratch::default(),
        }
    }

    /// A hasher forced onto one code path (for tests and benchmarks).
    pub fn with_path(path: PdqPath) -> Result<Self, PdqError> {
        if !path.is_supported() {
            return Err(PdqError::UnsupportedPath(path));
        }
        Ok(PdqHasher {
            path,
            ..PdqHasher::new()
        })
    }

    /// The code path this hasher runs.
    pub fn path(&self) -> PdqPath {
        self.path
    }

    /// Hashes interleaved 8-bit RGB (`rgb.len() == width * height * 3`).
    pub fn hash_rgb8(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
    ) -> Result<PdqOutput, PdqError> {
        check_len(rgb.len(), width, height, 3)?;
        let (dct, quality) = match self.dct16(Pixels::Rgb8(rgb), width, height, true) {
            Some(v) => v,
            None => return Ok(zero_output()),
        };
        Ok(PdqOutput {
            hash: dct::bits(&dct),
            quality,
        })
    }

    /// Hashes interleaved 8-bit RGB and returns all eight dihedral variants.
    pub fn hash_rgb8_dihedral(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
    ) -> Result<PdqDihedralOutput, PdqError> {
        check_len(rgb.len(), width, height, 3)?;
        match self.dct16(Pixels::Rgb8(rgb), width, height, false) {
            Some((dct, quality)) => Ok(PdqDihedralOutput {
                hashes: dct::dihedral(&dct),
                quality,
            }),
            None => Ok(zero_dihedral()),
        }
    }

    /// Hashes a row-major `f32` luminance plane (`luma.len() == width * height`),
    /// as the reference's `pdqHash256FromFloatLuma` does. Values must be finite.
    pub fn hash_luma(
        &mut self,
        luma: &[f32],
        width: u32,
        height: u32,
    ) -> Result<PdqOutput, PdqError> {
        check_len(luma.len(), width, height, 1)?;
        if let Some(i) = luma.iter().position(|v| !v.is_finite()) {
            return Err(PdqError::NonFiniteLuma(i));
        }
        let (dct, quality) = match self.dct16(Pixels::Luma(luma), width, height, true) {
            Some(v) => v,
            None => return Ok(zero_output()),
        };
        Ok(PdqOutput {
            hash: dct::bits(&dct),
            quality,
        })
    }

    /// Dihedral variant of [`PdqHasher::hash_luma`].
    pub fn hash_luma_dihedral(
        &mut self,
        luma: &[f32],
        width: u32,
        height: u32,
    ) -> Result<PdqDihedralOutput, PdqError> {
        check_len(luma.len(), width, height, 1)?;
        if let Some(i) = luma.iter().position(|v| !v.is_finite()) {
            return Err(PdqError::NonFiniteLuma(i));
        }
        match self.dct16(Pixels::Luma(luma), width, height, false) {
            Some((dct, quality)) => Ok(PdqDihedralOutput {
                hashes: dct::dihedral(&dct),
                quality,
            }),
            None => Ok(zero_dihedral()),
        }
    }

    /// Downsample to 64×64, compute quality and the 16×16 DCT block.
    /// `None` for images under the minimum size. `shortcut_64` enables the
    /// reference's no-blur shortcut for exactly 64×64 inputs.
    fn dct16(
        &mut self,
        px: Pixels<'_>,
        width: u32,
        height: u32,
        shortcut_64: bool,
    ) -> Option<(dct::Block16, u8)> {
        if width < PDQ_MIN_DIMENSION || height < PDQ_MIN_DIMENSION {
            return None;
        }
        let (w, h) = (width as usize, height as usize);
        let mut down = [[0f32; 64]; 64];
        if shortcut_64 && w == 64 && h == 64 {
            for (i, row) in down.iter_mut().enumerate() {
                match px {
                    Pixels::Rgb8(rgb) => {
                        let src = rgb.get(i * 64 * 3..(i + 1) * 64 * 3).unwrap_or(&[]);
                        luma::rgb_row_to_luma(src, row);
                    }
                    Pixels::Luma(l) => {
                        let src = l.get(i * 64..(i + 1) * 64).unwrap_or(&[]);
                        row.iter_mut().zip(src).for_each(|(d, s)| *d = *s);
                    }
                }
            }
        } else {
            match self.path {
                PdqPath::Naive => self.naive.downsample(px, w, h, &mut down),
                p => self.stream.downsample(p, px, w, h, &mut down),
            }
        }
        let quality = dct::quality(&down);
        Some((dct::dct64_to_16(&down), quality))
    }
}

/// Hashes interleaved RGB8 with a fresh [`PdqHasher`] (allocates scratch;
/// keep a hasher around when hashing many images).
pub fn hash_rgb8(rgb: &[u8], width: u32, height: u32) -> Result<PdqOutput, PdqError> {
    PdqHasher::new().hash_rgb8(rgb, width, height)
}

fn zero_output() -> PdqOutput {
    PdqOutput {
        hash: PdqHash::ZERO,
        quality: 0,
    }
}

fn zero_dihedral() -> PdqDihedralOutput {
    let z = PdqHash::ZERO;
    PdqDihedralOutput {
        hashes: PdqDihedral {
            orig: z,
            rot90: z,
            rot180: z,
            rot270: z,
            flipx: z,
            flipy: z,
            flipplus1: z,
            flipminus1: z,
        },
        quality: 0,
    }
}

fn check_len(len: usize, width: u32, height: u32, channels: u64) -> Result<(), PdqError> {
    let expected = u64::from(width)
        .checked_mul(u64::from(height))
        .and_then(|n| n.checked_mul(channels))
        .ok_or(PdqError::TooLarge { width, height })?;
    if usize::try_from(expected).is_err() {
        return Err(PdqError::TooLarge { width, height });
    }
    if len as u64 != expected {
        return Err(PdqError::BufferSize {
            expected,
            actual: len as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_layout_matches_meta_hex() {
        let mut h = PdqHash::ZERO;
        h.set_bit(0);
        assert_eq!(h.to_hex(), format!("{}1", "0".repeat(63)));
        let mut h = PdqHash::ZERO;
        h.set_bit(255);
        assert_eq!(h.to_hex(), format!("8{}", "0".repeat(63)));
        let mut h = PdqHash::ZERO;
        h.set_bit(16);
        assert_eq!(h.to_hex(), format!("{}10000", "0".repeat(59)));
        assert!(h.bit(16) && !h.bit(15));
    }
}
