//! Snapshots of the in-memory matching state, so a restart reads one local
//! file instead of every row of the database.
//!
//! # Format (`state-<change id>.etsnap`, little-endian)
//!
//! ```text
//! file header (64 B): magic "ETSNAP\0\x01" 0..8 | format version u32 8..12
//!   | section count u32 12..16 | change id i64 16..24 | schema version i64
//!   24..32 | database identity [u8; 16] 32..48 | written at (Unix ms) i64
//!   48..56 | zero 56..60 | crc32 of 0..60 60..64
//! sections, in order, each:
//!   section header (72 B): name [u8; 16] 0..16 | section version u32 16..20
//!     | data crc32 20..24 | change id i64 24..32 | schema version i64 32..40
//!     | database identity [u8; 16] 40..56 | data length u64 56..64
//!     | crc32 of 0..64 64..68 | zero 68..72
//!   data (length bytes)
//! end of file right after the last section
//! ```
//!
//! Every section is versioned on its own, carries its own checksum and is
//! tagged with the change id, the database identity and the schema
//! version, so a section from another snapshot cannot be spliced in. A new
//! kind of index is a new section: a writer function here, a reader arm in
//! [`read_sections`], and [`REQUIRED`] updated; old snapshots then lack the
//! section and are refused (the process does a paged load once and writes
//! a new snapshot). Sections of this version: `meta` (banks, bank slots,
//! equivalence lists; JSON), `content` and `signals` (the columns of
//! [`crate::columns`]), `pdq` (the MIH index's own snapshot format, which
//! loads as one sequential read), `exact` (slot → fingerprint), `text`
//! (signatures with their list versions), `vpdq` (serialised videos) and
//! `derived` (the robust-matching [`crate::robust`] index: per-bank
//! settings, row stamps, each file-added item's derived PDQ records with
//! their quality and codes — version 4; version 1 had no quality, version
//! 2 no `part` setting, version 3 no `refine` setting, all are refused —
//! and cropped vPDQ; its MIH and frame index are rebuilt, each item's bank
//! read from the content columns).
//! The text LSH and vPDQ indexes and the per-bank text counts are rebuilt
//! from their sections on load ([`MatchState::rebuild_derived`]).
//!
//! # Safety
//!
//! * Written to a temporary file, `fsync`ed, renamed into place, and the
//!   directory `fsync`ed: a crash leaves the old snapshot or the new one,
//!   never half of one. The two newest are kept.
//! * A snapshot is refused — with a reason the caller logs — when it is
//!   unreadable, truncated, has a bad magic, version, length or checksum,
//!   belongs to another database or schema, reflects a change id the
//!   database does not have yet, or fails the structural checks of its
//!   columns (every slot reference in range, every signal reached exactly
//!   once from its item's chain, index sizes equal to the live signals of
//!   their type). Readers allocate only what the section's length allows.
//!   The caller then falls back to a paged load: a snapshot never makes a
//!   process serve answers the database would not give.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use echotrace_index::{MihIndex, MihParams};
use echotrace_signals::signal::SignalType;
use echotrace_signals::text::TextSignature;
use echotrace_signals::video::vpdq::VpdqHash;
use echotrace_store::BankRow;
use serde_json::{json, Value};

use crate::columns::{type_code, ContentColumns, SignalColumns, Slot, NO_SLOT};
use crate::robust::{DerivedIndex, DerivedParts, MatchingSettings};
use crate::state::{bank_meta, MatchState, TextEntry};

const MAGIC: [u8; 8] = *b"ETSNAP\0\x01";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 64;
/// Sections this build writes and needs, with their versions.
pub(crate) const REQUIRED: &[(&str, u32)] = &[
    ("meta", 1),
    ("content", 1),
    ("signals", 1),
    ("pdq", 1),
    ("exact", 1),
    ("text", 1),
    ("vpdq", 1),
    ("derived", 4),
];
/// Snapshots kept in the directory (newest first are tried on load).
const KEEP: usize = 2;
const EXTENSION: &str = "etsnap";

/// What a snapshot must match to be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tag {
    pub identity: [u8; 16],
    pub schema: i64,
    pub change_id: i64,
}

/// 16 bytes naming a database: its 32-hex-digit identity, else a digest.
pub(crate) fn identity_bytes(identity: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let hex = identity.trim();
    let ok = hex.len() == 32
        && hex
            .as_bytes()
            .chunks(2)
            .zip(out.iter_mut())
            .all(|(pair, o)| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .map(|b| *o = b)
                    .is_some()
            });
    if !ok {
        let d = echotrace_signals::digest::sha256_hex(identity.as_bytes());
        return identity_bytes(&d[..32]);
    }
    out
}

/// Why a snapshot was not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Refused(String),
}

fn refused<T>(msg: impl Into<String>) -> Result<T, SnapshotError> {
    Err(SnapshotError::Refused(msg.into()))
}

// ----- writing -----------------------------------------------------------

/// A CRC-computing, counting sink for one section's data.
struct Sink<'a, W: Write> {
    w: &'a mut W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for Sink<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.w.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

fn put_u8s<W: Write>(w: &mut W, v: &[u8]) -> std::io::Result<()> {
    w.write_all(&(v.len() as u64).to_le_bytes())?;
    w.write_all(v)
}

/// A count, then each element's little-endian bytes (written in chunks).
fn put_le<W: Write, T: Copy, const N: usize>(
    w: &mut W,
    v: &[T],
    le: fn(T) -> [u8; N],
) -> std::io::Result<()> {
    w.write_all(&(v.len() as u64).to_le_bytes())?;
    let mut buf = Vec::with_capacity(N * 65_536);
    for chunk in v.chunks(65_536) {
        buf.clear();
        for x in chunk {
            buf.extend_from_slice(&le(*x));
        }
        w.write_all(&buf)?;
    }
    Ok(())
}

fn put_u32s<W: Write>(w: &mut W, v: &[u32]) -> std::io::Result<()> {
    put_le(w, v, u32::to_le_bytes)
}

fn put_i64s<W: Write>(w: &mut W, v: &[i64]) -> std::io::Result<()> {
    put_le(w, v, i64::to_le_bytes)
}

fn put_u64<W: Write>(w: &mut W, v: u64) -> std::io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

fn put_bytes<W: Write>(w: &mut W, v: &[u8]) -> std::io::Result<()> {
    w.write_all(&(v.len() as u32).to_le_bytes())?;
    w.write_all(v)
}

const SECTION_HEADER_LEN: usize = 72;

fn section_header(name: &str, version: u32, tag: &Tag, len: u64, crc: u32) -> [u8; 72] {
    let mut h = [0u8; SECTION_HEADER_LEN];
    let nb = name.as_bytes();
    let n = nb.len().min(16);
    h[..n].copy_from_slice(&nb[..n]);
    h[16..20].copy_from_slice(&version.to_le_bytes());
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h[24..32].copy_from_slice(&tag.change_id.to_le_bytes());
    h[32..40].copy_from_slice(&tag.schema.to_le_bytes());
    h[40..56].copy_from_slice(&tag.identity);
    h[56..64].copy_from_slice(&len.to_le_bytes());
    let hcrc = crc32fast::hash(&h[..64]);
    h[64..68].copy_from_slice(&hcrc.to_le_bytes());
    h
}

fn file_header(tag: &Tag, sections: u32, written_at: i64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&sections.to_le_bytes());
    h[16..24].copy_from_slice(&tag.change_id.to_le_bytes());
    h[24..32].copy_from_slice(&tag.schema.to_le_bytes());
    h[32..48].copy_from_slice(&tag.identity);
    h[48..56].copy_from_slice(&written_at.to_le_bytes());
    let crc = crc32fast::hash(&h[..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Write one section: a header placeholder, the data through `body`, then
/// the header with the data's length and checksum.
fn section<F>(
    f: &mut BufWriter<File>,
    tag: &Tag,
    name: &str,
    version: u32,
    body: F,
) -> std::io::Result<()>
where
    F: FnOnce(&mut Sink<'_, BufWriter<File>>) -> std::io::Result<()>,
{
    let start = f.stream_position()?;
    f.write_all(&[0u8; SECTION_HEADER_LEN])?;
    let (len, crc) = {
        let mut sink = Sink {
            w: f,
            crc: crc32fast::Hasher::new(),
            len: 0,
        };
        body(&mut sink)?;
        (sink.len, sink.crc.finalize())
    };
    let end = f.stream_position()?;
    f.seek(SeekFrom::Start(start))?;
    f.write_all(&section_header(name, version, tag, len, crc))?;
    f.seek(SeekFrom::Start(end))?;
    Ok(())
}

fn version_of(name: &str) -> u32 {
    REQUIRED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .unwrap_or(1)
}

fn bank_json(r: &BankRow) -> Value {
    json!({
        "id": r.id, "name": r.name, "kind": r.kind, "enabled": r.enabled,
        "description": r.description, "thresholds": r.thresholds,
        "created_at": r.created_at, "updated_at": r.updated_at,
        "text_equivalences_id": r.text_equivalences_id,
    })
}

fn bank_from_json(v: &Value) -> Option<BankRow> {
    Some(BankRow {
        id: v.get("id")?.as_i64()?,
        name: v.get("name")?.as_str()?.to_string(),
        kind: v.get("kind")?.as_str()?.to_string(),
        enabled: v.get("enabled")?.as_bool()?,
        description: v.get("description")?.as_str()?.to_string(),
        thresholds: v.get("thresholds")?.as_str()?.to_string(),
        created_at: v.get("created_at")?.as_i64()?,
        updated_at: v.get("updated_at")?.as_i64()?,
        text_equivalences_id: match v.get("text_equivalences_id")? {
            Value::Null => None,
            x => Some(x.as_i64()?),
        },
        text_equivalences: None,
    })
}

/// Write `st` (which reflects the store up to `tag.change_id`) to a
/// temporary file in `dir` and return its path: not yet durable (see
/// [`publish`]). The caller holds the state's lock, so nothing changes
/// meanwhile.
pub(crate) fn write_state(dir: &Path, st: &MatchState, tag: &Tag) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    // Unique per writer: a writer whose task was abandoned may still be
    // writing its own file.
    static WRITERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".state-{}-{}-{}.{EXTENSION}.tmp",
        tag.change_id,
        std::process::id(),
        WRITERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let file = File::create(&tmp)?;
    let mut f = BufWriter::with_capacity(1 << 20, file);
    let result = write_sections(&mut f, st, tag);
    let result = result.and_then(|()| {
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&file_header(
            tag,
            REQUIRED.len() as u32,
            echotrace_store::now_ms(),
        ))?;
        f.flush()
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

fn write_sections(f: &mut BufWriter<File>, st: &MatchState, tag: &Tag) -> std::io::Result<()> {
    f.write_all(&[0u8; HEADER_LEN])?;
    section(f, tag, "meta", version_of("meta"), |w| {
        let banks: Vec<Value> = st
            .banks
            .iter()
            .map(|b| b.as_ref().map_or(Value::Null, |m| bank_json(&m.row)))
            .collect();
        let slots: Vec<Value> = st.bank_slots.iter().map(|(id, s)| json!([id, s])).collect();
        let lists: Vec<Value> = st
            .lists
            .iter()
            .map(|(id, (_, body))| json!([id, body]))
            .collect();
        let meta = json!({"banks": banks, "bank_slots": slots, "lists": lists});
        w.write_all(meta.to_string().as_bytes())
    })?;
    section(f, tag, "content", version_of("content"), |w| {
        let c = &st.content;
        put_u64(w, c.live as u64)?;
        put_i64s(w, &c.ids)?;
        put_u32s(w, &c.bank)?;
        put_u8s(w, &c.flags)?;
        put_u32s(w, &c.first_signal)?;
        let mut over: Vec<(i64, Slot)> = c.overflow.iter().map(|(i, s)| (*i, *s)).collect();
        over.sort_unstable();
        put_i64s(w, &over.iter().map(|(i, _)| *i).collect::<Vec<_>>())?;
        put_u32s(w, &over.iter().map(|(_, s)| *s).collect::<Vec<_>>())
    })?;
    section(f, tag, "signals", version_of("signals"), |w| {
        let s = &st.signals;
        // The code → wire-name table, so codes may change between builds.
        let names: Vec<u8> = SignalType::ALL
            .iter()
            .flat_map(|t| {
                let mut v = vec![type_code(*t), t.as_str().len() as u8];
                v.extend_from_slice(t.as_str().as_bytes());
                v
            })
            .collect();
        put_u8s(w, &names)?;
        put_u64(w, s.live as u64)?;
        put_u64(w, u64::from(s.free))?;
        put_i64s(w, &s.ids)?;
        put_u32s(w, &s.content)?;
        put_u32s(w, &s.next)?;
        put_u8s(w, &s.kind)
    })?;
    section(f, tag, "pdq", version_of("pdq"), |w| {
        st.pdq
            .write_snapshot(&mut *w)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })?;
    section(f, tag, "exact", version_of("exact"), |w| {
        let mut entries: Vec<(Slot, u64)> = st.exact.entries().collect();
        entries.sort_unstable();
        put_u32s(w, &entries.iter().map(|(s, _)| *s).collect::<Vec<_>>())?;
        put_i64s(
            w,
            &entries.iter().map(|(_, f)| *f as i64).collect::<Vec<_>>(),
        )
    })?;
    section(f, tag, "text", version_of("text"), |w| {
        let mut slots: Vec<&Slot> = st.text.keys().collect();
        slots.sort_unstable();
        put_u64(w, slots.len() as u64)?;
        for s in slots {
            let e = &st.text[s];
            w.write_all(&s.to_le_bytes())?;
            w.write_all(&[u8::from(e.list_version.is_some())])?;
            w.write_all(&e.list_version.unwrap_or(0).to_le_bytes())?;
            put_bytes(w, &e.sig.to_bytes())?;
        }
        Ok(())
    })?;
    section(f, tag, "vpdq", version_of("vpdq"), |w| {
        let mut slots: Vec<&Slot> = st.vpdq.keys().collect();
        slots.sort_unstable();
        put_u64(w, slots.len() as u64)?;
        for s in slots {
            w.write_all(&s.to_le_bytes())?;
            put_bytes(w, st.vpdq[s].to_signal_string().as_bytes())?;
        }
        Ok(())
    })?;
    section(f, tag, "derived", version_of("derived"), |w| {
        write_derived(w, &st.derived.to_parts())
    })?;
    Ok(())
}

fn write_derived<W: Write>(w: &mut W, p: &DerivedParts) -> std::io::Result<()> {
    put_u64(w, p.settings.len() as u64)?;
    for (bank, s) in &p.settings {
        w.write_all(&bank.to_le_bytes())?;
        w.write_all(&[
            u8::from(s.dihedral),
            u8::from(s.window),
            u8::from(s.part),
            refine_code(s.refine),
        ])?;
    }
    put_u64(w, p.stamps.len() as u64)?;
    for (content, stamp) in &p.stamps {
        w.write_all(&content.to_le_bytes())?;
        w.write_all(&stamp.to_le_bytes())?;
    }
    put_u64(w, p.items.len() as u64)?;
    for (content, records) in &p.items {
        w.write_all(&content.to_le_bytes())?;
        w.write_all(&(records.len() as u32).to_le_bytes())?;
        for (source, removed, quality, code) in records {
            w.write_all(&[*source])?;
            w.write_all(removed)?;
            w.write_all(&[*quality])?;
            for word in code {
                w.write_all(&word.to_le_bytes())?;
            }
        }
    }
    put_u64(w, p.vpdq.len() as u64)?;
    for (content, h) in &p.vpdq {
        w.write_all(&content.to_le_bytes())?;
        put_bytes(w, h.to_signal_string().as_bytes())?;
    }
    Ok(())
}

/// Make a written snapshot durable and current: fsync, rename into place,
/// fsync the directory, then drop all but the newest [`KEEP`]. Returns the
/// final path.
pub(crate) fn publish(dir: &Path, tmp: &Path, change_id: i64) -> std::io::Result<PathBuf> {
    File::open(tmp)?.sync_all()?;
    let path = dir.join(format!("state-{change_id:020}.{EXTENSION}"));
    std::fs::rename(tmp, &path)?;
    File::open(dir)?.sync_all()?;
    let mut all = list(dir);
    for (_, old) in all.drain(KEEP.min(all.len())..) {
        let _ = std::fs::remove_file(old);
    }
    Ok(path)
}

/// Snapshot files in `dir`, newest (highest change id) first.
pub(crate) fn list(dir: &Path) -> Vec<(i64, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(i64, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name
                .strip_prefix("state-")?
                .strip_suffix(&format!(".{EXTENSION}"))?
                .parse::<i64>()
                .ok()?;
            Some((id, e.path()))
        })
        .collect();
    out.sort_unstable_by_key(|(id, _)| std::cmp::Reverse(*id));
    out
}

// ----- reading -----------------------------------------------------------

/// A section's data: reads at most its length, checksums what it reads.
struct Source<'a, R: Read> {
    r: std::io::Take<&'a mut R>,
    crc: crc32fast::Hasher,
}

impl<R: Read> Read for Source<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.r.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

impl<R: Read> Source<'_, R> {
    fn left(&self) -> u64 {
        self.r.limit()
    }

    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), SnapshotError> {
        match self.read_exact(buf) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                refused(format!("{what}: section data ends early"))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn u64(&mut self, what: &str) -> Result<u64, SnapshotError> {
        let mut b = [0u8; 8];
        self.exact(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    fn u32(&mut self, what: &str) -> Result<u32, SnapshotError> {
        let mut b = [0u8; 4];
        self.exact(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    /// A count of `elem`-byte items that must fit in what is left.
    fn count(&mut self, elem: u64, what: &str) -> Result<usize, SnapshotError> {
        let n = self.u64(what)?;
        if n.saturating_mul(elem) > self.left() {
            return refused(format!("{what}: {n} items do not fit the section"));
        }
        usize::try_from(n).or_else(|_| refused(format!("{what}: count {n}")))
    }

    fn vec<T>(
        &mut self,
        elem: usize,
        what: &str,
        decode: impl Fn(&[u8]) -> T,
    ) -> Result<Vec<T>, SnapshotError> {
        let n = self.count(elem as u64, what)?;
        let mut out = Vec::with_capacity(n);
        let mut buf = vec![0u8; elem * 65_536];
        let mut left = n;
        while left > 0 {
            let k = left.min(65_536);
            let bytes = &mut buf[..k * elem];
            self.exact(bytes, what)?;
            out.extend(bytes.chunks_exact(elem).map(&decode));
            left -= k;
        }
        Ok(out)
    }

    fn u8s(&mut self, what: &str) -> Result<Vec<u8>, SnapshotError> {
        self.vec(1, what, |b| b[0])
    }

    fn u32s(&mut self, what: &str) -> Result<Vec<u32>, SnapshotError> {
        self.vec(4, what, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64s(&mut self, what: &str) -> Result<Vec<i64>, SnapshotError> {
        self.vec(8, what, |b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[..8]);
            i64::from_le_bytes(a)
        })
    }

    fn bytes(&mut self, what: &str) -> Result<Vec<u8>, SnapshotError> {
        let n = u64::from(self.u32(what)?);
        if n > self.left() {
            return refused(format!("{what}: item longer than the section"));
        }
        let mut v = vec![0u8; n as usize];
        self.exact(&mut v, what)?;
        Ok(v)
    }
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_le_bytes(a)
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8], what: &str) -> Result<(), SnapshotError> {
    match r.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            refused(format!("truncated in {what}"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Read and validate the snapshot at `path` against `want` (identity and
/// schema must be equal; the change id must not be above the database's,
/// `head`). Returns the state (derived indexes rebuilt) and the change id
/// it reflects.
pub(crate) fn read_state(
    path: &Path,
    identity: [u8; 16],
    schema: i64,
    head: i64,
) -> Result<(MatchState, i64), SnapshotError> {
    let file = File::open(path)?;
    read_state_from(
        BufReader::with_capacity(1 << 20, file),
        identity,
        schema,
        head,
    )
}

/// Fuzzing entry point: read `bytes` as a snapshot of the database its own
/// header names (so the checks past the tag are reached). Never panics.
pub fn fuzz_read(bytes: &[u8]) -> Result<(), String> {
    let mut identity = [0u8; 16];
    let mut schema = 0;
    if bytes.len() >= HEADER_LEN {
        identity.copy_from_slice(&bytes[32..48]);
        schema = le_i64(&bytes[24..]);
    }
    read_state_from(bytes, identity, schema, i64::MAX)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn read_state_from<R: Read>(
    mut r: R,
    identity: [u8; 16],
    schema: i64,
    head: i64,
) -> Result<(MatchState, i64), SnapshotError> {
    let mut h = [0u8; HEADER_LEN];
    read_full(&mut r, &mut h, "the file header")?;
    if h[..8] != MAGIC {
        return refused("not an echotrace state snapshot (bad magic)");
    }
    if crc32fast::hash(&h[..60]) != le_u32(&h[60..]) {
        return refused("file header checksum mismatch");
    }
    if h[56..60] != [0; 4] {
        return refused("file header reserved bytes are not zero");
    }
    let version = le_u32(&h[8..]);
    if version != FORMAT_VERSION {
        return refused(format!(
            "snapshot format version {version} (this build reads {FORMAT_VERSION})"
        ));
    }
    let mut ident = [0u8; 16];
    ident.copy_from_slice(&h[32..48]);
    let tag = Tag {
        identity: ident,
        schema: le_i64(&h[24..]),
        change_id: le_i64(&h[16..]),
    };
    if tag.identity != identity {
        return refused("the snapshot was made from another database");
    }
    if tag.schema != schema {
        return refused(format!(
            "the snapshot is of schema version {}, the database's is {schema}",
            tag.schema
        ));
    }
    if tag.change_id > head {
        return refused(format!(
            "the snapshot reflects change {} but the database's last change is {head} \
             (a restored or replaced database)",
            tag.change_id
        ));
    }
    let sections = le_u32(&h[12..]) as usize;
    if sections != REQUIRED.len() {
        return refused(format!(
            "{sections} sections, this build needs {}",
            REQUIRED.len()
        ));
    }
    let mut st = MatchState::empty().map_err(|e| SnapshotError::Refused(e.to_string()))?;
    read_sections(&mut r, &tag, &mut st)?;
    let mut extra = [0u8; 1];
    if r.read(&mut extra)? != 0 {
        return refused("data after the last section");
    }
    validate(&st)?;
    st.rebuild_derived()
        .map_err(|e| SnapshotError::Refused(e.to_string()))?;
    Ok((st, tag.change_id))
}

fn read_sections<R: Read>(r: &mut R, tag: &Tag, st: &mut MatchState) -> Result<(), SnapshotError> {
    for &(want, want_version) in REQUIRED {
        let mut h = [0u8; SECTION_HEADER_LEN];
        read_full(r, &mut h, &format!("the header of section {want}"))?;
        if crc32fast::hash(&h[..64]) != le_u32(&h[64..]) || h[68..] != [0; 4] {
            return refused(format!("section {want}: header checksum mismatch"));
        }
        let end = h[..16].iter().position(|b| *b == 0).unwrap_or(16);
        let name = String::from_utf8_lossy(&h[..end]).to_string();
        if name != want {
            return refused(format!("expected section {want}, found {name:?}"));
        }
        let version = le_u32(&h[16..]);
        if version != want_version {
            return refused(format!(
                "section {want} is version {version}, this build reads {want_version}"
            ));
        }
        let mut ident = [0u8; 16];
        ident.copy_from_slice(&h[40..56]);
        if le_i64(&h[24..]) != tag.change_id
            || le_i64(&h[32..]) != tag.schema
            || ident != tag.identity
        {
            return refused(format!(
                "section {want} belongs to another snapshot (change id, schema or database)"
            ));
        }
        let len = {
            let mut a = [0u8; 8];
            a.copy_from_slice(&h[56..64]);
            u64::from_le_bytes(a)
        };
        let stored_crc = le_u32(&h[20..]);
        let mut src = Source {
            r: r.by_ref().take(len),
            crc: crc32fast::Hasher::new(),
        };
        read_section(want, &mut src, st)?;
        if src.left() != 0 {
            return refused(format!("section {want}: {} unread bytes", src.left()));
        }
        if src.crc.finalize() != stored_crc {
            return refused(format!("section {want}: data checksum mismatch"));
        }
    }
    Ok(())
}

fn read_section<R: Read>(
    name: &str,
    src: &mut Source<'_, R>,
    st: &mut MatchState,
) -> Result<(), SnapshotError> {
    match name {
        "meta" => read_meta(src, st),
        "content" => {
            let live = src.u64("content")?;
            let ids = src.i64s("content ids")?;
            let bank = src.u32s("content banks")?;
            let flags = src.u8s("content flags")?;
            let first_signal = src.u32s("content signals")?;
            let over_ids = src.i64s("content overflow")?;
            let over_slots = src.u32s("content overflow")?;
            if over_ids.len() != over_slots.len() {
                return refused("content overflow lists differ in length");
            }
            let overflow: HashMap<i64, Slot> = over_ids
                .iter()
                .copied()
                .zip(over_slots.iter().copied())
                .collect();
            let overflow_ids: HashMap<Slot, i64> = over_slots.into_iter().zip(over_ids).collect();
            st.content = ContentColumns {
                ids,
                bank,
                flags,
                first_signal,
                overflow,
                overflow_ids,
                live: usize::try_from(live).unwrap_or(usize::MAX),
            };
            Ok(())
        }
        "signals" => {
            let names = src.u8s("signal types")?;
            let map = type_table(&names)?;
            let live = src.u64("signals")?;
            let free = src.u64("signals")?;
            let ids = src.i64s("signal ids")?;
            let content = src.u32s("signal items")?;
            let next = src.u32s("signal chains")?;
            let mut kind = src.u8s("signal types")?;
            for k in kind.iter_mut() {
                if *k != u8::MAX {
                    *k = *map
                        .get(k)
                        .ok_or_else(|| SnapshotError::Refused(format!("unknown type code {k}")))?;
                }
            }
            st.signals = SignalColumns {
                ids,
                content,
                next,
                kind,
                free: Slot::try_from(free).unwrap_or(NO_SLOT),
                live: usize::try_from(live).unwrap_or(usize::MAX),
            };
            Ok(())
        }
        "pdq" => {
            st.pdq = MihIndex::read_snapshot(&mut *src, MihParams::default())
                .map_err(|e| SnapshotError::Refused(format!("section pdq: {e}")))?;
            Ok(())
        }
        "exact" => {
            let slots = src.u32s("exact slots")?;
            let fps = src.i64s("exact fingerprints")?;
            if slots.len() != fps.len() {
                return refused("exact lists differ in length");
            }
            for (s, f) in slots.into_iter().zip(fps) {
                st.exact.insert(f as u64, s);
            }
            Ok(())
        }
        "text" => {
            let n = src.count(17, "text")?;
            for _ in 0..n {
                let slot = src.u32("text")?;
                let mut flag = [0u8; 1];
                src.exact(&mut flag, "text")?;
                let version = src.u64("text")? as i64;
                let bytes = src.bytes("text signature")?;
                let sig = TextSignature::from_bytes(&bytes).map_err(|e| {
                    SnapshotError::Refused(format!("text signature of slot {slot}: {e}"))
                })?;
                let list_version = match flag[0] {
                    0 => None,
                    1 => Some(version),
                    f => return refused(format!("text slot {slot}: flag {f}")),
                };
                st.text.insert(slot, TextEntry { sig, list_version });
            }
            Ok(())
        }
        "vpdq" => {
            let n = src.count(8, "vpdq")?;
            for _ in 0..n {
                let slot = src.u32("vpdq")?;
                let bytes = src.bytes("vpdq signal")?;
                let text = String::from_utf8(bytes)
                    .or_else(|_| refused(format!("vpdq slot {slot}: not UTF-8")))?;
                let h = VpdqHash::from_signal_str(&text)
                    .map_err(|e| SnapshotError::Refused(format!("vpdq slot {slot}: {e}")))?;
                st.vpdq.insert(slot, h);
            }
            Ok(())
        }
        "derived" => {
            let parts = read_derived(src)?;
            st.derived = DerivedIndex::from_parts(parts)
                .map_err(|e| SnapshotError::Refused(format!("section derived: {e}")))?;
            Ok(())
        }
        other => refused(format!("unknown section {other}")),
    }
}

/// A bank's `refine` setting as one byte: 0 off, 1 on, 2 automatic.
fn refine_code(refine: Option<bool>) -> u8 {
    match refine {
        Some(false) => 0,
        Some(true) => 1,
        None => 2,
    }
}

fn read_derived<R: Read>(src: &mut Source<'_, R>) -> Result<DerivedParts, SnapshotError> {
    let mut p = DerivedParts::default();
    let n = src.count(12, "derived settings")?;
    for _ in 0..n {
        let bank = src.u64("derived settings")? as i64;
        let mut b = [0u8; 4];
        src.exact(&mut b, "derived settings")?;
        if b[..3].iter().any(|x| *x > 1) || b[3] > 2 {
            return refused("derived settings: flag out of range");
        }
        let s = MatchingSettings {
            dihedral: b[0] == 1,
            window: b[1] == 1,
            part: b[2] == 1,
            refine: (b[3] != 2).then_some(b[3] == 1),
        };
        p.settings.push((bank, s));
    }
    let n = src.count(16, "derived stamps")?;
    for _ in 0..n {
        let content = src.u64("derived stamps")? as i64;
        let stamp = src.u64("derived stamps")?;
        p.stamps.push((content, stamp));
    }
    let n = src.count(12, "derived items")?;
    for _ in 0..n {
        let content = src.u64("derived items")? as i64;
        let k = src.u32("derived items")? as u64;
        if k.saturating_mul(38) > src.left() {
            return refused("derived items: records do not fit the section");
        }
        let mut records = Vec::with_capacity(k as usize);
        // source, shares removed (4), quality, code (32).
        let mut buf = [0u8; 38];
        for _ in 0..k {
            src.exact(&mut buf, "derived records")?;
            let mut removed = [0u8; 4];
            removed.copy_from_slice(&buf[1..5]);
            let mut code = [0u64; 4];
            for (i, word) in code.iter_mut().enumerate() {
                let mut a = [0u8; 8];
                a.copy_from_slice(&buf[6 + 8 * i..14 + 8 * i]);
                *word = u64::from_le_bytes(a);
            }
            records.push((buf[0], removed, buf[5], code));
        }
        p.items.push((content, records));
    }
    let n = src.count(12, "derived videos")?;
    for _ in 0..n {
        let content = src.u64("derived videos")? as i64;
        let bytes = src.bytes("derived video")?;
        let text = String::from_utf8(bytes)
            .or_else(|_| refused(format!("derived video {content}: not UTF-8")))?;
        let h = VpdqHash::from_signal_str(&text)
            .map_err(|e| SnapshotError::Refused(format!("derived video {content}: {e}")))?;
        p.vpdq.push((content, h));
    }
    Ok(p)
}

fn read_meta<R: Read>(src: &mut Source<'_, R>, st: &mut MatchState) -> Result<(), SnapshotError> {
    let mut body = Vec::new();
    src.read_to_end(&mut body)?;
    let meta: Value =
        serde_json::from_slice(&body).or_else(|e| refused(format!("section meta: {e}")))?;
    let bad = || SnapshotError::Refused("section meta: unexpected shape".into());
    for (id, body) in meta
        .get("lists")
        .and_then(Value::as_array)
        .ok_or_else(bad)?
        .iter()
        .map(|l| Some((l.get(0)?.as_i64()?, l.get(1)?.as_str()?)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(bad)?
    {
        st.insert_list(id, body);
    }
    let banks = meta
        .get("banks")
        .and_then(Value::as_array)
        .ok_or_else(bad)?;
    st.banks = banks
        .iter()
        .map(|b| match b {
            Value::Null => Ok(None),
            v => bank_from_json(v)
                .map(|r| Some(bank_meta(&r)))
                .ok_or_else(bad),
        })
        .collect::<Result<_, _>>()?;
    for pair in meta
        .get("bank_slots")
        .and_then(Value::as_array)
        .ok_or_else(bad)?
    {
        let id = pair.get(0).and_then(Value::as_i64).ok_or_else(bad)?;
        let slot = pair
            .get(1)
            .and_then(Value::as_u64)
            .and_then(|s| Slot::try_from(s).ok())
            .filter(|s| (*s as usize) < st.banks.len())
            .ok_or_else(bad)?;
        if st.bank_slots.insert(id, slot).is_some() {
            return Err(bad());
        }
    }
    for (slot, b) in st.banks.iter().enumerate() {
        if let Some(b) = b {
            if st.bank_slots.get(&b.id).map(|s| *s as usize) != Some(slot) {
                return Err(bad());
            }
        }
    }
    Ok(())
}

/// File type code → this build's code, from the snapshot's table.
fn type_table(names: &[u8]) -> Result<HashMap<u8, u8>, SnapshotError> {
    let mut map = HashMap::new();
    let mut rest = names;
    while let [code, len, tail @ ..] = rest {
        let n = usize::from(*len);
        let Some(name) = tail.get(..n) else {
            return refused("signal type table is truncated");
        };
        let name = std::str::from_utf8(name).or_else(|_| refused("signal type name"))?;
        let t: SignalType = name
            .parse()
            .or_else(|_| refused(format!("unknown signal type {name:?}")))?;
        map.insert(*code, type_code(t));
        rest = &tail[n..];
    }
    if !rest.is_empty() {
        return refused("signal type table is truncated");
    }
    Ok(map)
}

/// Cross-section checks (module doc).
fn validate(st: &MatchState) -> Result<(), SnapshotError> {
    st.content
        .validate(st.banks.len(), st.signals.len())
        .or_else(refused)?;
    st.signals.validate(&st.content).or_else(refused)?;
    let mut per_type: HashMap<u8, usize> = HashMap::new();
    for (i, k) in st.signals.kind.iter().enumerate() {
        if st.signals.content[i] != NO_SLOT {
            *per_type.entry(*k).or_default() += 1;
        }
    }
    let count = |t: SignalType| per_type.get(&type_code(t)).copied().unwrap_or(0);
    let of_type = |slot: Slot, t: SignalType| {
        st.signals
            .content
            .get(slot as usize)
            .is_some_and(|c| *c != NO_SLOT)
            && st.signals.signal_type(slot) == Some(t)
    };
    // Stored values that never parse are not indexed, so an index may hold
    // fewer entries than its type has signals, never more.
    if st.pdq.len() > count(SignalType::Pdq) {
        return refused(format!(
            "PDQ index holds {} codes for {} PDQ signals",
            st.pdq.len(),
            count(SignalType::Pdq)
        ));
    }
    let exact_types = [
        SignalType::Url,
        SignalType::UrlSha256,
        SignalType::Md5,
        SignalType::Sha256,
    ];
    if st.exact.len() != exact_types.iter().map(|t| count(*t)).sum::<usize>()
        || !st
            .exact
            .entries()
            .all(|(s, _)| exact_types.iter().any(|t| of_type(s, *t)))
    {
        return refused("exact index does not match the exact signals");
    }
    // Text and vPDQ entries must be live signals of their type; some
    // stored values never parse, so the counts may be lower.
    // Typed text and OCR text share the text index.
    if st.text.len() > count(SignalType::TextMinhash) + count(SignalType::OcrText)
        || !st
            .text
            .keys()
            .all(|s| of_type(*s, SignalType::TextMinhash) || of_type(*s, SignalType::OcrText))
    {
        return refused("text signatures do not match the text signals");
    }
    if st.vpdq.len() > count(SignalType::Vpdq)
        || !st.vpdq.keys().all(|s| of_type(*s, SignalType::Vpdq))
    {
        return refused("vPDQ signals do not match the vPDQ signals");
    }
    Ok(())
}
