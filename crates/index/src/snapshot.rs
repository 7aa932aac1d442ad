//! Snapshot format for [`crate::MihIndex`] (version 1).
//!
//! Little-endian throughout, every section 64-byte aligned so the file can be
//! memory-mapped section by section (this reader copies into `Vec`s, which
//! at 10M codes is a ~1 GB sequential read):
//!
//! ```text
//! header (128 B): magic "ETMIHIDX", version u32, header crc32 u32 (of bytes
//!   16..128), slots m u32, reserved u32, n_base u64, n_delta u64,
//!   dead_count u64, widths [u8; 32], indexed bits per slot [u8; 32],
//!   zero padding
//! sections, each = 64-byte section header (name [u8; 16], length u64,
//!   crc32 u32, zero padding) + data + zero padding to 64 bytes:
//!   "ids" n_base×u64 (strictly ascending) | "codes" n_base×4×u64 |
//!   "dead" ceil(n_base/64)×u64 | "offsets" Σ(2^t_i+1)×u32 (slot tables
//!   concatenated; read straight into the compact [`crate::dir`] form) | "postings" m×n_base×u32 | "delta_ids" n_delta×u64 |
//!   "delta_codes" n_delta×4×u64
//! ```
//!
//! The reader refuses anything inconsistent with an error naming the
//! problem: bad magic, unsupported version, header or section checksum
//! mismatch, truncated section, unexpected section name or length, and
//! structural violations (unsorted ids, non-monotone offsets, postings out
//! of range, tombstone count mismatch, duplicate ids). It never allocates
//! more than the data actually present plus one reservation it can refuse.

use std::io::{Read, Write};
use std::sync::Arc;

use crate::dir::{SlotDir, SlotDirBuilder};
use crate::flat::FlatIndex;
use crate::mih::{starts_of, Base, Bitset, State};
use crate::{ACode, IndexError};

const MAGIC: [u8; 8] = *b"ETMIHIDX";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 128;
const SECTION_HEADER_LEN: usize = 64;
const ALIGN: usize = 64;
const CHUNK: usize = 1 << 16;

fn pad_len(n: usize) -> usize {
    (ALIGN - n % ALIGN) % ALIGN
}

/// Plain little-endian element types the snapshot stores.
trait Le: Copy {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
}
impl Le for u32 {
    const SIZE: usize = 4;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl Le for u64 {
    const SIZE: usize = 8;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}
impl Le for ACode {
    const SIZE: usize = 32;
    fn put(self, out: &mut Vec<u8>) {
        for w in self.0 {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
}

/// Feeds the little-endian bytes of `data` to `f`, one chunk at a time.
fn for_each_chunk<T: Le, F: FnMut(&[u8]) -> std::io::Result<()>>(
    data: &[T],
    mut f: F,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(CHUNK * T::SIZE);
    for chunk in data.chunks(CHUNK) {
        buf.clear();
        for &x in chunk {
            x.put(&mut buf);
        }
        f(&buf)?;
    }
    Ok(())
}

fn write_section<T: Le, W: Write>(w: &mut W, name: &str, data: &[T]) -> Result<(), IndexError> {
    write_section_from(w, name, data.len() * T::SIZE, |f| for_each_chunk(data, f))
}

/// Writes a section whose `len` bytes `produce` feeds, chunk by chunk, to
/// the function it is given; it is called twice (checksum, then data).
fn write_section_from<W: Write>(
    w: &mut W,
    name: &str,
    len: usize,
    produce: impl Fn(&mut dyn FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<()>,
) -> Result<(), IndexError> {
    let mut hasher = crc32fast::Hasher::new();
    produce(&mut |b| {
        hasher.update(b);
        Ok(())
    })?;
    let crc = hasher.finalize();
    let mut h = [0u8; SECTION_HEADER_LEN];
    let nb = name.as_bytes();
    h[..nb.len().min(16)].copy_from_slice(&nb[..nb.len().min(16)]);
    h[16..24].copy_from_slice(&(len as u64).to_le_bytes());
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    w.write_all(&h)?;
    produce(&mut |b| w.write_all(b))?;
    w.write_all(&[0u8; ALIGN][..pad_len(len)])?;
    Ok(())
}

/// The slot directories as the plain CSR offsets the format stores.
fn write_offsets<W: Write>(w: &mut W, base: &Base) -> Result<(), IndexError> {
    let n = base.len() as u32;
    let count: usize = base.dirs.iter().map(|d| d.buckets() + 1).sum();
    write_section_from(w, "offsets", count * 4, |f| {
        let mut buf = Vec::with_capacity(CHUNK * 4);
        for d in &base.dirs {
            for x in d.offsets(n) {
                buf.extend_from_slice(&x.to_le_bytes());
                if buf.len() >= CHUNK * 4 {
                    f(&buf)?;
                    buf.clear();
                }
            }
        }
        if !buf.is_empty() {
            f(&buf)?;
        }
        Ok(())
    })
}

pub(crate) fn write<W: Write>(s: &State, w: W) -> Result<(), IndexError> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, w);
    let base = &s.base;
    // Frozen (minus tombstones) and delta are disjoint by construction; the
    // snapshot stores them as one write buffer.
    let mut delta_ids = Vec::new();
    let mut delta_codes = Vec::new();
    if let Some(f) = &s.frozen {
        for (pos, (id, code)) in f.iter().enumerate() {
            if !s.frozen_dead.get(pos) {
                delta_ids.push(id);
                delta_codes.push(ACode(code));
            }
        }
    }
    for (id, code) in s.delta.iter() {
        delta_ids.push(id);
        delta_codes.push(ACode(code));
    }
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..20].copy_from_slice(&(base.widths.len() as u32).to_le_bytes());
    h[24..32].copy_from_slice(&(base.len() as u64).to_le_bytes());
    h[32..40].copy_from_slice(&(delta_ids.len() as u64).to_le_bytes());
    h[40..48].copy_from_slice(&(s.dead_count as u64).to_le_bytes());
    for (dst, &wd) in h[48..80].iter_mut().zip(&base.widths) {
        *dst = wd;
    }
    for (dst, &t) in h[80..112].iter_mut().zip(&base.table_bits) {
        *dst = t;
    }
    let crc = crc32fast::hash(&h[16..]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    w.write_all(&h)?;
    write_section(&mut w, "ids", &base.ids)?;
    write_section(&mut w, "codes", &base.codes)?;
    let dead_words: Vec<u64> = base_dead_words(&s.dead, base.len());
    write_section(&mut w, "dead", &dead_words)?;
    write_offsets(&mut w, base)?;
    write_section(&mut w, "postings", &base.postings)?;
    write_section(&mut w, "delta_ids", &delta_ids)?;
    write_section(&mut w, "delta_codes", &delta_codes)?;
    w.flush()?;
    Ok(())
}

fn base_dead_words(dead: &Bitset, n: usize) -> Vec<u64> {
    let words = n.div_ceil(64);
    let mut v: Vec<u64> = dead.words().iter().copied().take(words).collect();
    v.resize(words, 0);
    if !n.is_multiple_of(64) {
        if let Some(last) = v.last_mut() {
            *last &= (1u64 << (n % 64)) - 1;
        }
    }
    v
}

/// Reads exactly `buf.len()` bytes or reports which section was truncated.
fn read_exact_in<R: Read>(
    r: &mut R,
    buf: &mut [u8],
    section: &'static str,
) -> Result<(), IndexError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => IndexError::Truncated { section },
        _ => IndexError::Io(e),
    })
}

fn reserve<T>(n: usize, section: &'static str) -> Result<Vec<T>, IndexError> {
    crate::mem::try_huge_with_capacity(n).ok_or_else(|| {
        IndexError::Corrupt(format!("section {section}: cannot allocate {n} elements"))
    })
}

/// Reads one section, checking name, length and checksum, decoding elements
/// with `decode` from `elem`-byte little-endian records.
fn read_section<R: Read, T>(
    r: &mut R,
    section: &'static str,
    count: usize,
    elem: usize,
    mut decode: impl FnMut(&[u8]) -> T,
) -> Result<Vec<T>, IndexError> {
    let mut out = reserve(count, section)?;
    read_section_with(r, section, count, elem, |b| {
        out.extend(b.chunks_exact(elem).map(&mut decode));
        Ok(())
    })?;
    Ok(out)
}

/// [`read_section`] that hands each chunk of whole records to `sink`
/// instead of keeping them (an error from `sink` stops the read).
fn read_section_with<R: Read>(
    r: &mut R,
    section: &'static str,
    count: usize,
    elem: usize,
    mut sink: impl FnMut(&[u8]) -> Result<(), IndexError>,
) -> Result<(), IndexError> {
    let mut h = [0u8; SECTION_HEADER_LEN];
    read_exact_in(r, &mut h, section)?;
    let mut want = [0u8; 16];
    want[..section.len()].copy_from_slice(section.as_bytes());
    if h[..16] != want {
        let name_end = h[..16].iter().position(|&b| b == 0).unwrap_or(16);
        return Err(IndexError::Corrupt(format!(
            "expected section {section}, found {:?}",
            String::from_utf8_lossy(&h[..name_end])
        )));
    }
    if h[28..].iter().any(|&b| b != 0) {
        return Err(IndexError::Corrupt(format!(
            "section {section}: reserved header bytes are not zero"
        )));
    }
    let mut len_b = [0u8; 8];
    len_b.copy_from_slice(&h[16..24]);
    let len = u64::from_le_bytes(len_b);
    let expected = count as u64 * elem as u64;
    if len != expected {
        return Err(IndexError::Corrupt(format!(
            "section {section} has {len} bytes, expected {expected}"
        )));
    }
    let mut crc_b = [0u8; 4];
    crc_b.copy_from_slice(&h[24..28]);
    let stored = u32::from_le_bytes(crc_b);
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; CHUNK * elem];
    let mut left = count;
    while left > 0 {
        let n = left.min(CHUNK);
        let bytes = &mut buf[..n * elem];
        read_exact_in(r, bytes, section)?;
        hasher.update(bytes);
        sink(bytes)?;
        left -= n;
    }
    let computed = hasher.finalize();
    if computed != stored {
        return Err(IndexError::ChecksumMismatch {
            section,
            stored,
            computed,
        });
    }
    let mut pad = [0u8; ALIGN];
    let p = pad_len(len as usize);
    read_exact_in(r, &mut pad[..p], section)?;
    if pad.iter().any(|&b| b != 0) {
        return Err(IndexError::Corrupt(format!(
            "section {section}: padding is not zero"
        )));
    }
    Ok(())
}

fn u32_at(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}
fn u64_at(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}
fn code_at(b: &[u8]) -> ACode {
    ACode([
        u64_at(&b[0..]),
        u64_at(&b[8..]),
        u64_at(&b[16..]),
        u64_at(&b[24..]),
    ])
}

pub(crate) fn read<R: Read>(r: R) -> Result<State, IndexError> {
    let mut r = r;
    let mut h = [0u8; HEADER_LEN];
    // A file shorter than the magic is "bad magic"; shorter than the header
    // is a truncated header.
    let mut got = 0;
    while got < HEADER_LEN {
        let n = r.read(&mut h[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    if got < 8 || h[..8] != MAGIC {
        let mut found = [0u8; 8];
        found[..got.min(8)].copy_from_slice(&h[..got.min(8)]);
        return Err(IndexError::BadMagic { found });
    }
    if got < HEADER_LEN {
        return Err(IndexError::Truncated { section: "header" });
    }
    if h[112..].iter().any(|&b| b != 0) {
        return Err(IndexError::Corrupt(
            "reserved header bytes are not zero".into(),
        ));
    }
    let version = u32_at(&h[8..]);
    if version != VERSION {
        return Err(IndexError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    let stored = u32_at(&h[12..]);
    let computed = crc32fast::hash(&h[16..]);
    if stored != computed {
        return Err(IndexError::ChecksumMismatch {
            section: "header",
            stored,
            computed,
        });
    }
    let m = u32_at(&h[16..]) as usize;
    let n_base = u64_at(&h[24..]);
    let n_delta = u64_at(&h[32..]);
    let dead_count = u64_at(&h[40..]);
    if !(8..=32).contains(&m) {
        return Err(IndexError::Corrupt(format!(
            "{m} substrings (expected 8..=32)"
        )));
    }
    let widths: Vec<u8> = h[48..48 + m].to_vec();
    if widths.iter().any(|&w| !(1..=32).contains(&w))
        || widths.iter().map(|&w| u32::from(w)).sum::<u32>() != 256
    {
        return Err(IndexError::Corrupt(format!(
            "slot widths {widths:?} do not cover 256 bits"
        )));
    }
    if n_base > u64::from(u32::MAX) || n_delta > u64::from(u32::MAX) || dead_count > n_base {
        return Err(IndexError::Corrupt(format!(
            "implausible counts: base {n_base}, delta {n_delta}, dead {dead_count}"
        )));
    }
    let n = n_base as usize;
    let ids = read_section(&mut r, "ids", n, 8, u64_at)?;
    if !ids.windows(2).all(|w| w[0] < w[1]) {
        return Err(IndexError::Corrupt("ids are not strictly ascending".into()));
    }
    let codes = read_section(&mut r, "codes", n, 32, code_at)?;
    let dead_words = read_section(&mut r, "dead", n.div_ceil(64), 8, u64_at)?;
    let dead = Bitset::from_words(dead_words);
    let counted = count_bits_below(&dead, n);
    if counted as u64 != dead_count {
        return Err(IndexError::Corrupt(format!(
            "tombstone count {counted} does not match header {dead_count}"
        )));
    }
    let table_bits: Vec<u8> = h[80..80 + m].to_vec();
    if table_bits
        .iter()
        .zip(&widths)
        .any(|(&t, &w)| t == 0 || t > w || t > 24)
    {
        return Err(IndexError::Corrupt(format!(
            "indexed bits {table_bits:?} do not fit slot widths {widths:?}"
        )));
    }
    let dirs = read_offsets(&mut r, &table_bits, n)?;
    let postings = read_section(&mut r, "postings", n * m, 4, u32_at)?;
    if postings.iter().any(|&p| p as usize >= n) {
        return Err(IndexError::Corrupt("posting out of range".into()));
    }
    let nd = n_delta as usize;
    let delta_ids = read_section(&mut r, "delta_ids", nd, 8, u64_at)?;
    let delta_codes = read_section(&mut r, "delta_codes", nd, 32, code_at)?;
    let mut extra = [0u8; 1];
    if r.read(&mut extra)? != 0 {
        return Err(IndexError::Corrupt(
            "trailing data after last section".into(),
        ));
    }
    let starts = starts_of(&widths);
    let base = Base {
        widths,
        starts,
        table_bits,
        ids,
        codes,
        dirs,
        postings,
    };
    let mut delta = FlatIndex::with_capacity(nd);
    for (&id, code) in delta_ids.iter().zip(&delta_codes) {
        if let Ok(pos) = base.ids.binary_search(&id) {
            if !dead.get(pos) {
                return Err(IndexError::Corrupt(format!(
                    "id {id} is both indexed and buffered"
                )));
            }
        }
        if delta.insert(id, code.0) {
            return Err(IndexError::Corrupt(format!("duplicate buffered id {id}")));
        }
    }
    let mut state = State::from_parts(Arc::new(base), dead, dead_count as usize);
    state.delta = delta;
    Ok(state)
}

/// Reads the plain offsets section straight into slot directories, checking
/// that each slot's offsets rise monotonically from 0 to `n`.
fn read_offsets<R: Read>(
    r: &mut R,
    table_bits: &[u8],
    n: usize,
) -> Result<Vec<SlotDir>, IndexError> {
    let bad = || IndexError::Corrupt("bucket offsets are not monotone from 0 to n".into());
    let total: usize = table_bits.iter().map(|&t| (1usize << t) + 1).sum();
    let mut dirs = Vec::with_capacity(table_bits.len());
    let mut slots = table_bits.iter().map(|&t| 1usize << t);
    // (builder, buckets left to read in this slot, previous offset)
    let mut cur: Option<(SlotDirBuilder, usize, Option<u32>)> = None;
    read_section_with(r, "offsets", total, 4, |chunk| {
        for b in chunk.chunks_exact(4) {
            let x = u32_at(b);
            let (builder, left, prev) = match &mut cur {
                Some(c) => c,
                None => {
                    let buckets = slots.next().ok_or_else(bad)?;
                    cur.insert((SlotDirBuilder::new(buckets), buckets, None))
                }
            };
            match *prev {
                None if x != 0 => return Err(bad()),
                None => {}
                Some(p) if x < p => return Err(bad()),
                Some(p) => {
                    builder.push(x - p);
                    *left -= 1;
                }
            }
            *prev = Some(x);
            if *left == 0 {
                if x as usize != n {
                    return Err(bad());
                }
                if let Some((builder, _, _)) = cur.take() {
                    dirs.push(builder.finish());
                }
            }
        }
        Ok(())
    })?;
    if dirs.len() != table_bits.len() {
        return Err(bad());
    }
    Ok(dirs)
}

fn count_bits_below(b: &Bitset, n: usize) -> usize {
    let full = n / 64;
    b.words()
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            let w = if i < full {
                w
            } else if i == full && !n.is_multiple_of(64) {
                w & ((1u64 << (n % 64)) - 1)
            } else {
                0
            };
            w.count_ones() as usize
        })
        .sum()
}
