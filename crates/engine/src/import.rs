//! Bulk import of hash lists into a bank (GIFCT / ThreatExchange style dumps
//! of millions of PDQ hashes, or any other signal type).
//!
//! Key design decisions:
//!
//! * **Validate per item, write per batch.** Each item is normalised when
//!   it is built ([`ImportItem::new`]: hex shape, URL canonicalisation,
//!   label rules), so a bad line is reported by the caller with its line
//!   number and the import itself cannot fail on content. Valid items are
//!   written [`IMPORT_BATCH`] at a time: one transaction per batch with
//!   multi-row `INSERT`s (see `echotrace_store::BulkContent`).
//! * **One change and one audit entry per batch, not per row.** The batch
//!   records a `content_range` change (first..last content id), so every
//!   process tailing the change sequence re-reads the batch in pages and
//!   indexes it incrementally, exactly as if the items had been added one by
//!   one; the `content.import` audit entry names the bank, the id range and
//!   the counts. Ten million rows therefore cost a thousand change rows and
//!   a thousand audit entries instead of ten million of each.
//! * **Idempotent.** Before a batch is written, the bank's signals are read
//!   for the batch's values (one batched read per signal type and 500
//!   values, through the value index, in the batch's transaction); an item
//!   whose signal the bank already holds, or that repeats an earlier item,
//!   is skipped and counted in [`ImportReport::already_held`]. Re-running
//!   an import, or resuming a failed one, adds nothing twice, and neither
//!   do imports of one bank running at once: the read holds the bank's add
//!   lock until the batch commits (`WriteTx::lock_bank_adds`).
//! * **Committed batches stay.** A failure (database error) stops the
//!   import; the batches committed before it are durable, visible, audited,
//!   and listed in the returned [`ImportReport`] so a caller can resume.

use echotrace_store::{BulkContent, NewAudit, Store};
use serde_json::json;

use crate::error::{EngineError, Result};
use crate::signals::normalize_signals;
use echotrace_signals::signal::SignalType;

use crate::types::{Actor, BankId, ContentId, SignalValue};
use crate::{clean_labels, dedup_signals, to_json, Engine};

/// One line of a hash list (`echotrace bank import`: a bare PDQ, or
/// `type,value[,labels]`, comma- or tab-separated, labels split on `;`) →
/// a validated item. `Ok(None)`: nothing to import (blank, comment, or a
/// header word on the first content line); `Err`: why the line is refused.
pub fn parse_hash_list_line(
    text: &str,
    first_content_line: bool,
    extra_labels: &[String],
    note: &str,
) -> Result<Option<ImportItem>, String> {
    let text = text.trim_end_matches(['\r', '\n']);
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let sep = if text.contains('\t') { '\t' } else { ',' };
    let fields: Vec<&str> = text.split(sep).map(str::trim).collect();
    let first = fields.first().copied().unwrap_or_default();
    if first_content_line && is_hash_list_header(first) {
        return Ok(None);
    }
    let (signal_type, value, label_fields) = match first.parse::<SignalType>() {
        Ok(t) => {
            let value = fields
                .get(1)
                .copied()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("missing value after signal type {first:?}"))?;
            (t, value, fields.get(2..).unwrap_or_default())
        }
        Err(_) => (SignalType::Pdq, first, fields.get(1..).unwrap_or_default()),
    };
    let mut labels: Vec<String> = extra_labels.to_vec();
    for f in label_fields {
        labels.extend(
            f.split(';')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    let signal = SignalValue {
        signal_type,
        value: value.to_string(),
    };
    ImportItem::new(&[signal], labels, note)
        .map(Some)
        .map_err(|e| match e {
            EngineError::InvalidInput(m) => m,
            other => other.to_string(),
        })
}

/// Whether the first field of a hash list's first line is a header word
/// (`pdq_hex`, `signal_type`, …) rather than data: such a line is skipped
/// by `bank import` and by the `file` exchange alike.
pub fn is_hash_list_header(first_field: &str) -> bool {
    matches!(
        first_field.trim().to_ascii_lowercase().as_str(),
        "pdq_hex" | "pdq_hash" | "hash" | "signal_type" | "type" | "signal"
    )
}

/// Items per transaction (and per change / audit entry).
pub const IMPORT_BATCH: usize = 10_000;

/// One validated content item to import.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportItem {
    signals: Vec<SignalValue>,
    labels: Vec<String>,
    note: String,
}

impl ImportItem {
    /// Validate and normalise an item (at least one signal; labels cleaned).
    pub fn new(signals: &[SignalValue], labels: Vec<String>, note: &str) -> Result<ImportItem> {
        if signals.is_empty() {
            return Err(EngineError::InvalidInput("no signals".into()));
        }
        crate::limits::check_len("note", note, crate::limits::MAX_NOTE_BYTES)?;
        let signals = dedup_signals(normalize_signals(signals)?);
        let labels = clean_labels(labels)?;
        Ok(ImportItem {
            signals,
            labels,
            note: note.to_string(),
        })
    }

    /// The normalised signals.
    pub fn signals(&self) -> &[SignalValue] {
        &self.signals
    }

    fn to_bulk(&self) -> BulkContent {
        BulkContent {
            labels_json: to_json(&self.labels),
            note: self.note.clone(),
            signals: self
                .signals
                .iter()
                .map(|s| (s.signal_type.as_str().to_string(), s.value.clone()))
                .collect(),
        }
    }
}

/// What an import wrote (so far, when handed to a progress callback).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub bank_id: BankId,
    /// Content items written.
    pub items: u64,
    /// Signal rows written.
    pub signals: u64,
    /// Items skipped because the bank already held their signal (an
    /// earlier import of the same list, or the same line twice).
    pub already_held: u64,
    /// Committed transactions.
    pub batches: u64,
    pub first_content_id: Option<ContentId>,
    pub last_content_id: Option<ContentId>,
}

/// Import items into a bank through the store alone (no in-memory state:
/// what the CLI uses). Processes tailing the change sequence pick the
/// batches up. `batch` = items per transaction (0 → [`IMPORT_BATCH`]);
/// `progress` runs after every committed batch.
pub async fn import_into_store<I, F>(
    store: &Store,
    actor: &Actor,
    bank_id: BankId,
    items: I,
    batch: usize,
    mut progress: F,
) -> Result<ImportReport>
where
    I: IntoIterator<Item = ImportItem>,
    F: FnMut(&ImportReport),
{
    let batch = if batch == 0 { IMPORT_BATCH } else { batch };
    if store.get_bank(bank_id).await?.is_none() {
        return Err(EngineError::NotFound(format!("bank {bank_id}")));
    }
    let mut report = ImportReport {
        bank_id,
        ..ImportReport::default()
    };
    let mut items = items.into_iter().peekable();
    let mut pending: Vec<BulkContent> = Vec::with_capacity(batch.min(IMPORT_BATCH));
    while items.peek().is_some() {
        pending.clear();
        pending.extend(items.by_ref().take(batch).map(|i| i.to_bulk()));
        let mut tx = store.write().await?;
        // Re-checked inside the transaction: the bank may have been deleted.
        if tx.get_bank(bank_id).await?.is_none() {
            return Err(EngineError::NotFound(format!("bank {bank_id}")));
        }
        report.already_held += drop_held(&mut tx, bank_id, &mut pending).await?;
        let signals: usize = pending.iter().map(|c| c.signals.len()).sum();
        let ids = tx.insert_content_bulk(bank_id, &pending).await?;
        let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
            // Every item of the batch was already held: nothing written.
            progress(&report);
            continue;
        };
        tx.record_change(
            echotrace_store::CONTENT_RANGE_ENTITY,
            first,
            &echotrace_store::content_range_op(last),
        )
        .await?;
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "content.import",
            target: &format!("bank:{bank_id}"),
            before: None,
            after: Some(
                json!({
                    "bank_id": bank_id,
                    "items": ids.len(),
                    "signals": signals,
                    "first_content_id": first,
                    "last_content_id": last,
                })
                .to_string(),
            ),
        })
        .await?;
        tx.commit().await?;
        report.items += ids.len() as u64;
        report.signals += signals as u64;
        report.batches += 1;
        report.first_content_id.get_or_insert(first);
        report.last_content_id = Some(last);
        progress(&report);
    }
    Ok(report)
}

/// Drop from `batch` the items the bank already holds, and the repeats of
/// an item earlier in the batch; returns how many were dropped. An item is
/// held when the bank holds any of its signals (type and value): importing
/// it again would show reviewers each match twice. One batched read per
/// batch ([`echotrace_store::WriteTx::bank_signals_held`]), in the batch's
/// transaction, so it also sees the batches committed before it.
async fn drop_held(
    tx: &mut echotrace_store::WriteTx,
    bank_id: BankId,
    batch: &mut Vec<BulkContent>,
) -> Result<u64> {
    let wanted: Vec<(&str, &str)> = batch
        .iter()
        .flat_map(|c| c.signals.iter().map(|(t, v)| (t.as_str(), v.as_str())))
        .collect();
    let mut held = tx.bank_signals_held(bank_id, &wanted).await?;
    let before = batch.len();
    batch.retain(|c| {
        if c.signals.iter().any(|s| held.contains(s)) {
            return false;
        }
        // Later repeats of this item in the batch are held from now on.
        held.extend(c.signals.iter().cloned());
        true
    });
    Ok((before - batch.len()) as u64)
}

impl Engine {
    /// Bulk-import items into a bank ([`import_into_store`]), then apply the
    /// new batches to this process's indexes before returning.
    pub async fn import_signals<I>(
        &self,
        actor: &Actor,
        bank_id: BankId,
        items: I,
    ) -> Result<ImportReport>
    where
        I: IntoIterator<Item = ImportItem>,
    {
        let report =
            import_into_store(self.store(), actor, bank_id, items, IMPORT_BATCH, |_| {}).await;
        // Apply whatever was committed, even when a later batch failed.
        self.sync_changes().await?;
        report
    }
}

/// Content items re-read per page when applying a `content_range` change.
const RANGE_PAGE: i64 = 10_000;

impl Engine {
    /// Apply a `content_range` change: re-read the content items with ids in
    /// `first..=last` (and their signals) page by page and replace what
    /// memory holds for each, exactly as a per-item `content` change does.
    pub(crate) async fn apply_content_range(
        &self,
        first: ContentId,
        last: ContentId,
    ) -> Result<()> {
        let store = self.store();
        let mut after = first.saturating_sub(1);
        loop {
            let rows = store
                .content_range_page(first, last, after, RANGE_PAGE)
                .await?;
            let (Some(lo), Some(hi)) = (rows.first(), rows.last()) else {
                return Ok(());
            };
            let (lo, hi) = (lo.id, hi.id);
            after = hi;
            let signals = store.signals_of_content_range(lo, hi).await?;
            let mut st = self.inner.state.write().map_err(crate::lock_err)?;
            let mut rest = signals.as_slice();
            for row in &rows {
                // Signals are ordered by content id: take this item's run.
                let skip = rest.iter().take_while(|s| s.content_id < row.id).count();
                rest = rest.get(skip..).unwrap_or_default();
                let n = rest.iter().take_while(|s| s.content_id == row.id).count();
                let (mine, tail) = rest.split_at(n.min(rest.len()));
                st.apply_content(row.id, Some(row), mine);
                rest = tail;
            }
        }
    }
}

impl Engine {
    /// Connect to the store (running migrations) **without loading the
    /// indexes**: for offline administration such as `echotrace bank
    /// import`, where loading millions of signals only to write more would
    /// waste minutes. Writes, audit and the change sequence behave as
    /// usual; lookups through this engine see only what was written
    /// through it since it was opened, so never serve from it.
    pub async fn open_without_indexes(config: crate::EngineConfig) -> Result<Engine> {
        let store = Store::open_with(&config.database_url, config.store.clone()).await?;
        let cursor = store.max_change_id().await?;
        let state = crate::state::MatchState::empty()?;
        Ok(Engine::assemble(store, config, cursor, state, crate::StateSource::Empty).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PDQ: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

    #[test]
    fn parses_bare_pdq_with_labels() {
        let item = parse_hash_list_line(&format!("{PDQ},a;b, c\n"), true, &[], "")
            .unwrap()
            .unwrap();
        assert_eq!(item.signals().len(), 1);
        assert_eq!(item.signals()[0].signal_type, SignalType::Pdq);
        assert_eq!(item.signals()[0].value, PDQ);
    }

    #[test]
    fn parses_typed_tsv_and_skips_header_and_comments() {
        assert_eq!(
            parse_hash_list_line("pdq_hex,labels", true, &[], "").unwrap(),
            None
        );
        assert_eq!(
            parse_hash_list_line("# comment", false, &[], "").unwrap(),
            None
        );
        assert_eq!(parse_hash_list_line("   ", false, &[], "").unwrap(), None);
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        let item = parse_hash_list_line(&format!("md5\t{md5}\tx"), false, &[], "")
            .unwrap()
            .unwrap();
        assert_eq!(item.signals()[0].signal_type, SignalType::Md5);
    }

    #[test]
    fn bad_lines_have_reasons() {
        let short = parse_hash_list_line("abc123", false, &[], "").unwrap_err();
        assert!(short.contains("pdq"), "{short}");
        let missing = parse_hash_list_line("md5,", false, &[], "").unwrap_err();
        assert!(missing.contains("missing value"), "{missing}");
        // A header word is only a header on the first content line.
        assert!(parse_hash_list_line("hash", false, &[], "").is_err());
    }
}
