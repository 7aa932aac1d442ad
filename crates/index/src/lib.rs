//! Exact Hamming-space indexes for 256-bit codes (PDQ, vPDQ frames).
//!
//! Two indexes share one vocabulary ([`Code256`], [`Hit`], [`IndexError`]):
//!
//! * [`FlatIndex`]: codes stored contiguously (32-byte aligned, one cache
//!   line half each) and scanned linearly with a kernel picked at runtime:
//!   AVX-512 `VPOPCNTDQ`, AVX2 nibble-LUT popcount, or portable
//!   `count_ones`. It is the ground truth the other index is tested against,
//!   it backs the small write buffer of [`MihIndex`], and it supports
//!   multi-needle search (e.g. the 8 dihedral variants of one image in one
//!   pass over memory).
//! * [`MihIndex`]: multi-index hashing (Norouzi, Punjani & Fleet, TPAMI 2014).
//!   The 256 bits are cut into `m` substrings whose width tracks `log2(N)`;
//!   each substring has a compact CSR bucket table (a directory of about
//!   one byte a bucket + `u32` postings). A query probes every substring's neighbourhood within the
//!   per-slot radius given by the generalised pigeonhole bound and
//!   verifies each bucket candidate with the full 256-bit distance (repeated
//!   hits of codes near the query are folded at the end), so results are
//!   exact. Inserts land in a small flat
//!   buffer that a background thread merges into a fresh CSR while searches
//!   continue on the old one; removals are tombstones compacted at merge.
//!
//! Both return *all* ids within the radius (inclusive: `distance <= radius`),
//! in no particular order. Ids are arbitrary `u64`s; inserting an id that is
//! already present replaces its code. This crate knows nothing about banks,
//! signals or I/O beyond snapshot readers/writers it is handed.

mod dir;
pub mod flat;
pub mod kernel;
mod mem;
pub mod mih;
mod snapshot;
pub mod text_lsh;
pub mod vpdq_index;

pub use flat::FlatIndex;
pub use kernel::Kernel;
pub use mih::{BuiltMerge, MihIndex, MihParams, PendingMerge};

/// A 256-bit binary code as four little-endian 64-bit words. How the bits of
/// a serialised hash map onto the words does not matter to this crate as long
/// as stored codes and queries use the same mapping.
pub type Code256 = [u64; 4];

/// One search result: the stored id and its Hamming distance to the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hit {
    pub id: u64,
    pub distance: u32,
}

/// Errors from index construction and snapshot I/O.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("snapshot I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an echotrace index snapshot (bad magic {found:02x?})")]
    BadMagic { found: [u8; 8] },
    #[error("unsupported snapshot version {found} (this build reads version {supported})")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("snapshot truncated in section {section}")]
    Truncated { section: &'static str },
    #[error("snapshot checksum mismatch in section {section}: stored {stored:08x}, computed {computed:08x}")]
    ChecksumMismatch {
        section: &'static str,
        stored: u32,
        computed: u32,
    },
    #[error("corrupt snapshot: {0}")]
    Corrupt(String),
    #[error("invalid index parameters: {0}")]
    InvalidParams(String),
    #[error("index full: at most {max} codes per index")]
    Capacity { max: usize },
    #[error("kernel {0:?} is not supported by this CPU")]
    UnsupportedKernel(Kernel),
}

/// Hamming distance between two codes (portable; the indexes use
/// CPU-specific kernels internally).
#[inline]
pub fn hamming(a: &Code256, b: &Code256) -> u32 {
    (a[0] ^ b[0]).count_ones()
        + (a[1] ^ b[1]).count_ones()
        + (a[2] ^ b[2]).count_ones()
        + (a[3] ^ b[3]).count_ones()
}

/// A code stored on a 32-byte boundary so that it never straddles a cache
/// line; the in-memory element type of both indexes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(32))]
pub(crate) struct ACode(pub(crate) Code256);
