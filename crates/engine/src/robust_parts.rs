//! [`DerivedIndex`] as plain parts, for the state snapshot's `derived`
//! section (`crate::snapshot`): a child module of `robust` so it reads the
//! index's fields while the snapshot module keeps the byte format.

use std::collections::HashMap;

use echotrace_index::{Code256, MihIndex, MihParams};
use echotrace_signals::robust::BankSource;
use echotrace_signals::video::vpdq::VpdqHash;

use super::{vpdq_frames, DerivedIndex, ItemMeta, MatchingSettings, MAX_RECORDS, RECORD_BITS};
use crate::types::{BankId, ContentId};

/// One derived PDQ record: where it came from, the share removed, its PDQ
/// quality, its code.
pub(crate) type DerivedRecord = (u8, [u8; 4], u8, Code256);

/// Everything a [`DerivedIndex`] holds, sorted by id so equal indexes give
/// equal parts (the indexes themselves are rebuilt from these).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct DerivedParts {
    pub settings: Vec<(BankId, MatchingSettings)>,
    pub stamps: Vec<(ContentId, u64)>,
    pub items: Vec<(ContentId, Vec<DerivedRecord>)>,
    pub vpdq: Vec<(ContentId, VpdqHash)>,
}

fn source_code(s: BankSource) -> u8 {
    match s {
        BankSource::Window => 0,
        BankSource::Region => 1,
        BankSource::Part => 2,
    }
}

fn source_of(code: u8) -> Option<BankSource> {
    match code {
        0 => Some(BankSource::Window),
        1 => Some(BankSource::Region),
        2 => Some(BankSource::Part),
        _ => None,
    }
}

impl DerivedIndex {
    /// The parts of this index (see [`DerivedParts`]).
    pub(crate) fn to_parts(&self) -> DerivedParts {
        let mut settings: Vec<_> = self.settings.iter().map(|(b, s)| (*b, *s)).collect();
        settings.sort_unstable_by_key(|(b, _)| *b);
        let mut stamps: Vec<_> = self.stamps.iter().map(|(c, s)| (*c, *s)).collect();
        stamps.sort_unstable();
        let mut items: Vec<(ContentId, Vec<DerivedRecord>)> = self
            .items
            .iter()
            .map(|(content_id, meta)| {
                let records = meta
                    .records
                    .iter()
                    .enumerate()
                    .map(|(k, (source, removed, quality))| {
                        let id = ((*content_id as u64) << RECORD_BITS) | k as u64;
                        let code = self.pdq.get(id).unwrap_or([0; 4]);
                        (source_code(*source), *removed, *quality, code)
                    })
                    .collect();
                (*content_id, records)
            })
            .collect();
        items.sort_unstable_by_key(|(c, _)| *c);
        let mut vpdq: Vec<_> = self.vpdq.iter().map(|(c, h)| (*c, h.clone())).collect();
        vpdq.sort_unstable_by_key(|(c, _)| *c);
        DerivedParts {
            settings,
            stamps,
            items,
            vpdq,
        }
    }

    /// Rebuild an index from its parts; `Err` names what is inconsistent.
    pub(crate) fn from_parts(parts: DerivedParts) -> Result<DerivedIndex, String> {
        let mut ix = DerivedIndex::empty();
        ix.settings = parts.settings.into_iter().collect();
        ix.stamps = parts.stamps.into_iter().collect();
        let mut entries: Vec<(u64, Code256)> = Vec::new();
        for (content_id, records) in parts.items {
            if content_id < 0 || (content_id as u64) >> (64 - RECORD_BITS) != 0 {
                return Err(format!("derived item id {content_id} out of range"));
            }
            if records.len() > MAX_RECORDS {
                return Err(format!(
                    "derived item {content_id}: {} records",
                    records.len()
                ));
            }
            let mut meta = ItemMeta {
                records: Vec::with_capacity(records.len()),
                // The match state assigns it (`DerivedIndex::assign_banks`).
                bank: None,
            };
            for (k, (source, removed, quality, code)) in records.into_iter().enumerate() {
                let source = source_of(source)
                    .ok_or_else(|| format!("derived item {content_id}: source {source}"))?;
                entries.push((((content_id as u64) << RECORD_BITS) | k as u64, code));
                meta.records.push((source, removed, quality));
            }
            if ix.items.insert(content_id, meta).is_some() {
                return Err(format!("derived item {content_id} twice"));
            }
        }
        ix.pdq = MihIndex::build(entries, MihParams::default())
            .map_err(|e| format!("building the derived PDQ index: {e}"))?;
        let mut vpdq = HashMap::new();
        for (content_id, h) in parts.vpdq {
            let _ = ix
                .vpdq_index
                .insert_video(content_id as u64, &vpdq_frames(&h));
            if vpdq.insert(content_id, h).is_some() {
                return Err(format!("derived video {content_id} twice"));
            }
        }
        ix.vpdq = vpdq;
        if ix
            .items
            .keys()
            .chain(ix.vpdq.keys())
            .any(|c| !ix.stamps.contains_key(c))
        {
            return Err("a derived item has no stamp".into());
        }
        Ok(ix)
    }
}
