//! Robust matching (migration 0030): local **derived** hashes and per-bank
//! matching settings.
//!
//! The rule that keeps derived hashes local lives here, once: derived
//! hashes are stored in `derived_hashes` and nowhere else. Everything that
//! exports or shows an item's hashes (bank exports, exchange feeds,
//! `Content.signals`) reads the `signals` table, which never holds a
//! derived hash — so nothing needs a predicate to leave them out. Code that
//! must say it explicitly can use [`is_exportable_table`].

use crate::rows::get_str;
use crate::{get_i64, now_ms, Result, Store, WriteTx};

/// `derived_hashes.kind` of an image's crop-grid windows and border
/// regions (`dpdq1:` records, see `echotrace_signals::robust`).
pub const DERIVED_PDQ_WINDOWS: &str = "pdq_windows";
/// `derived_hashes.kind` of a video's border-cropped vPDQ.
pub const DERIVED_VPDQ_CROPPED: &str = "vpdq_cropped";

/// Whether rows of `table` may leave this instance as an item's hashes:
/// only `signals` (the exchanged, standard hashes); never
/// `derived_hashes`.
pub fn is_exportable_table(table: &str) -> bool {
    table == "signals"
}

/// One stored set of derived hashes of a content item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DerivedRow {
    pub content_id: i64,
    pub bank_id: i64,
    pub kind: String,
    pub value: String,
}

impl DerivedRow {
    fn from_row(r: &sqlx::any::AnyRow) -> Result<Self> {
        Ok(DerivedRow {
            content_id: get_i64(r, "content_id")?,
            bank_id: get_i64(r, "bank_id")?,
            kind: get_str(r, "kind")?,
            value: get_str(r, "value")?,
        })
    }
}

impl Store {
    /// Derived hashes of one content item.
    pub async fn derived_of_content(&self, content_id: i64) -> Result<Vec<DerivedRow>> {
        let rows = sqlx::query(
            "SELECT content_id, bank_id, kind, value FROM derived_hashes \
             WHERE content_id = $1 ORDER BY kind",
        )
        .bind(content_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(DerivedRow::from_row).collect()
    }

    /// Derived hashes of up to `limit` content items with ids above
    /// `after_content_id`, in content-id order (startup load). The limit
    /// counts content items, so all kinds of one item are in one page.
    pub async fn derived_page(&self, after_content_id: i64, limit: i64) -> Result<Vec<DerivedRow>> {
        let rows = sqlx::query(
            "SELECT content_id, bank_id, kind, value FROM derived_hashes \
             WHERE content_id IN (SELECT DISTINCT content_id FROM derived_hashes \
             WHERE content_id > $1 ORDER BY content_id LIMIT $2) ORDER BY content_id, kind",
        )
        .bind(after_content_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(DerivedRow::from_row).collect()
    }

    /// [`Store::derived_page`] within one bank.
    pub async fn derived_page_of_bank(
        &self,
        bank_id: i64,
        after_content_id: i64,
        limit: i64,
    ) -> Result<Vec<DerivedRow>> {
        let rows = sqlx::query(
            "SELECT content_id, bank_id, kind, value FROM derived_hashes \
             WHERE content_id IN (SELECT DISTINCT content_id FROM derived_hashes \
             WHERE bank_id = $1 AND content_id > $2 ORDER BY content_id LIMIT $3) \
             ORDER BY content_id, kind",
        )
        .bind(bank_id)
        .bind(after_content_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(DerivedRow::from_row).collect()
    }

    /// A bank's matching settings JSON (`{}` = defaults); `None` when the
    /// bank does not exist.
    pub async fn bank_matching(&self, bank_id: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT matching FROM banks WHERE id = $1")
            .bind(bank_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| get_str(r, "matching")).transpose()
    }

    /// How many of a bank's items have derived PDQ hashes stored (its
    /// file-added image originals).
    pub async fn derived_pdq_items_of_bank(&self, bank_id: i64) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM derived_hashes WHERE bank_id = $1 AND kind = $2",
        )
        .bind(bank_id)
        .bind(DERIVED_PDQ_WINDOWS)
        .fetch_one(&self.pool)
        .await?;
        get_i64(&row, "n")
    }

    /// Every bank's matching settings JSON (startup load).
    pub async fn all_bank_matching(&self) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query("SELECT id, matching FROM banks ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((get_i64(r, "id")?, get_str(r, "matching")?)))
            .collect()
    }
}

impl WriteTx {
    /// Store (or replace) one kind of derived hashes of a content item.
    pub async fn put_derived(
        &mut self,
        content_id: i64,
        bank_id: i64,
        kind: &str,
        value: &str,
    ) -> Result<()> {
        sqlx::query("DELETE FROM derived_hashes WHERE content_id = $1 AND kind = $2")
            .bind(content_id)
            .bind(kind)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(
            "INSERT INTO derived_hashes (content_id, bank_id, kind, value, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(content_id)
        .bind(bank_id)
        .bind(kind)
        .bind(value)
        .bind(now_ms())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Remove every derived hash of a content item.
    pub async fn delete_derived(&mut self, content_id: i64) -> Result<()> {
        sqlx::query("DELETE FROM derived_hashes WHERE content_id = $1")
            .bind(content_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Set a bank's matching settings JSON.
    pub async fn set_bank_matching(&mut self, bank_id: i64, json: &str) -> Result<()> {
        sqlx::query("UPDATE banks SET matching = $1 WHERE id = $2")
            .bind(json)
            .bind(bank_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// A bank's matching settings JSON inside this transaction.
    pub async fn bank_matching(&mut self, bank_id: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT matching FROM banks WHERE id = $1")
            .bind(bank_id)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.as_ref().map(|r| get_str(r, "matching")).transpose()
    }
}
