//! Fuzz target: arbitrary bytes → the engine's state-snapshot reader.
//! Each input is read twice: as it is (almost always refused by a
//! checksum), and with every checksum and tag repaired so the structural
//! checks behind them (column lengths, slot references, signal chains,
//! index sizes, the MIH section's own format) see the fuzzed data. Either
//! way the reader must refuse or accept without panicking, hanging or
//! allocating beyond what the input holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

const HEADER: usize = 64;
const SECTION: usize = 72;

/// Make the header's checksum valid, then walk the sections, copying the
/// header's tag into each, clamping its length to what is left and fixing
/// both of its checksums.
fn repair(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    if v.len() < HEADER {
        return v;
    }
    v[..8].copy_from_slice(b"ETSNAP\0\x01");
    let crc = crc32fast::hash(&v[..60]);
    v[60..64].copy_from_slice(&crc.to_le_bytes());
    let (change, schema, identity) = (
        v[16..24].to_vec(),
        v[24..32].to_vec(),
        v[32..48].to_vec(),
    );
    let mut at = HEADER;
    while at + SECTION <= v.len() {
        v[at + 24..at + 32].copy_from_slice(&change);
        v[at + 32..at + 40].copy_from_slice(&schema);
        v[at + 40..at + 56].copy_from_slice(&identity);
        let left = (v.len() - at - SECTION) as u64;
        let mut len = [0u8; 8];
        len.copy_from_slice(&v[at + 56..at + 64]);
        let len = u64::from_le_bytes(len).min(left);
        v[at + 56..at + 64].copy_from_slice(&len.to_le_bytes());
        let start = at + SECTION;
        let end = start + len as usize;
        let crc = crc32fast::hash(&v[start..end]);
        v[at + 20..at + 24].copy_from_slice(&crc.to_le_bytes());
        v[at + 68..at + 72].fill(0);
        let hcrc = crc32fast::hash(&v[at..at + 64]);
        v[at + 64..at + 68].copy_from_slice(&hcrc.to_le_bytes());
        at = end;
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let _ = echotrace_engine::fuzz_read_snapshot(data);
    let _ = echotrace_engine::fuzz_read_snapshot(&repair(data));
});
