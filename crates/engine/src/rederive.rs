//! Re-deriving the local derived hashes of a bank's items from their
//! retained originals (robust matching, docs/ROBUST.md "Upgrading"): an
//! item stored before a derived channel existed (the `part` channel,
//! session 13) or while its bank had the channel off gets that channel's
//! hashes without being added again — when the original is still held.
//!
//! The only copy of a bank item's original echotrace keeps is its
//! retained media (`retained_media`, owner `content`): a file added in the
//! console with media retention on. Files added through `/v1` or HMA are
//! hashed and dropped; such items must be added again. The work goes a
//! page at a time ([`Engine::rederive_page`]): the caller sees progress
//! after each page and no request runs long.

use serde::Serialize;

use crate::console::{retained_media, MediaOwner};
use crate::robust::{self, MatchingSettings};
use crate::{off_runtime, to_json, Actor, BankId, ContentId, Engine, EngineError, Result};
use echotrace_signals::content::RobustRole;
use echotrace_store::NewAudit;

/// Most items one page of [`Engine::rederive_page`] takes.
pub const REDERIVE_PAGE_MAX: u32 = 1000;

/// What one page of [`Engine::rederive_page`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RederivePage {
    /// Items of the page (content ids above `after`, in id order).
    pub items: u64,
    /// Items whose derived hashes were derived again from the retained
    /// original (each kind derived now replaced, as the bank's settings
    /// store them).
    pub rederived: u64,
    /// Items without a retained original: added through the API, or with
    /// media retention off. They must be added again.
    pub without_original: u64,
    /// Retained media that is no image or video, has no perceptual hash,
    /// gives no derived hash, or whose plain hash is not the item's stored
    /// one (never re-derived from another file).
    pub skipped: u64,
    /// Where the next page starts (`after`); `None` after the last page.
    pub next_after: Option<ContentId>,
}

impl Engine {
    /// Re-derive the derived hashes of `limit` (1 to [`REDERIVE_PAGE_MAX`],
    /// else invalid input) items of a bank with content ids above
    /// `after`, from their retained originals, in one
    /// transaction with one change per item and one audit entry
    /// (`bank.rederive`, the page's counts) when anything was written.
    pub async fn rederive_page(
        &self,
        actor: &Actor,
        bank_id: BankId,
        after: ContentId,
        limit: u32,
    ) -> Result<RederivePage> {
        if !(1..=REDERIVE_PAGE_MAX).contains(&limit) {
            return Err(EngineError::InvalidInput(format!(
                "\"limit\" must be 1 to {REDERIVE_PAGE_MAX}, got {limit}"
            )));
        }
        if self.inner.store.get_bank(bank_id).await?.is_none() {
            return Err(EngineError::NotFound(format!("bank {bank_id}")));
        }
        let items = self.list_content(bank_id, after, limit).await?;
        let mut page = RederivePage {
            items: items.len() as u64,
            next_after: items
                .last()
                .filter(|_| items.len() as u32 == limit)
                .map(|c| c.id),
            ..RederivePage::default()
        };
        let mut updates = Vec::new();
        for c in &items {
            let Some((_, bytes)) =
                retained_media(&self.inner.store, MediaOwner::Content, c.id).await?
            else {
                page.without_original += 1;
                continue;
            };
            let hashed = off_runtime(move || {
                robust::hash_robust(
                    &bytes,
                    crate::signals::VideoSampling::BankEntry,
                    RobustRole::BankEntry,
                    None,
                )
            })
            .await?;
            // The same item: it has perceptual hashes, and they are the
            // stored ones.
            let same = hashed.as_ref().is_some_and(|h| {
                crate::same_picture(&h.signals, |s| {
                    c.signals
                        .iter()
                        .any(|t| t.signal_type == s.signal_type && t.value == s.value)
                })
            });
            match hashed {
                Some(h) if same && !h.derived.is_empty() => updates.push((c.id, h.derived)),
                _ => page.skipped += 1,
            }
        }
        if updates.is_empty() {
            return Ok(page);
        }
        let mut tx = self.inner.store.write().await?;
        let settings = tx
            .bank_matching(bank_id)
            .await?
            .map(|m| MatchingSettings::from_stored(&m))
            .unwrap_or_default();
        for (id, derived) in updates {
            if tx.get_content(id).await?.is_none() {
                continue;
            }
            for (kind, value) in &robust::stored_values(derived, settings) {
                tx.put_derived(id, bank_id, kind, value).await?;
            }
            tx.record_change("content", id, "upsert").await?;
            page.rederived += 1;
        }
        if page.rederived == 0 {
            // Every item was deleted since it was read: nothing written,
            // nothing to audit (the transaction rolls back on drop).
            return Ok(page);
        }
        tx.audit(&NewAudit {
            actor: actor.as_str(),
            action: "bank.rederive",
            target: &format!("bank:{bank_id}"),
            before: None,
            after: Some(to_json(&page)),
        })
        .await?;
        self.commit_and_sync(tx).await?;
        Ok(page)
    }
}
