//! The sighting model (migration 0006), shared by the collector, which
//! writes sightings, and spread tracking, which reads them as variant
//! clusters and re-checks their URLs.
//!
//! * A **source** is something the collector reads (its `config` is the
//!   collector's typed JSON; the store keeps it as text).
//! * A **sighting** is one item seen at one place: the bytes (or a bare URL)
//!   at a canonical URL. It is unique by `(url_sha256, content_sha256)`:
//!   the same bytes at the same URL seen again only move `last_seen_at`;
//!   other bytes at that URL are another sighting. The unique index holds
//!   the two digests decoded to bytes ([`key_sql`], migration 0064: half
//!   the size of their hex, and every new sighting writes a random leaf of
//!   it), so the digests must be 64 lowercase hex digits (`''` for no
//!   bytes), which every upsert checks; the same index serves a URL's
//!   sightings by range ([`Store::sightings_at_url`]). `parent_id` is the page
//!   or message that linked to it. Only hashes are stored: payloads live in
//!   WARC records (`warc_*`) under the operator's retention policy.
//! * **Sighting signals** are its hashes, kept so that a bank item added
//!   later finds where it was already seen (retro-hunt). They are indexed by
//!   sighting and by (type, id), the order the retro-hunt reads them in; not
//!   by value (migration 0061: nothing looked values up, and text MinHashes
//!   made that index half the database). The trailing `sha256`, `url` and
//!   `url_sha256` signals of a collected item repeat the sighting's own
//!   `content_sha256`, `url_canonical` and `url_sha256`: they are not stored
//!   as rows but flagged in `implied_signals` ([`split_implied_signals`],
//!   migration 0063) and rebuilt, in the order they were written, by every
//!   reader here ([`Store::sighting_signals`], [`Store::implied_signals_page`],
//!   [`Store::sightings_with_signal`], [`Store::signals_of_content_sha`]).
//! * **Sighting matches** tie a sighting to the bank items it matched; a bank
//!   item and its sightings form one variant cluster. They carry no foreign
//!   key to `bank_content`, so deleting a bank item keeps its history.
//! * An unmatched sighting has `expires_at` (kept hashes-only for the
//!   retro-hunt window); a matched one is kept (`expires_at` NULL).

use sqlx::any::AnyRow;

use crate::rows::{get_bool, get_opt_f64, get_opt_i64, get_opt_str, get_str};
use crate::{get_i64, now_ms, Backend, Result, Store, WriteTx};

/// A collector source as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    /// The collector's typed, versioned JSON for this kind.
    pub config: String,
    pub enabled: bool,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl SourceRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(SourceRow {
            id: get_i64(r, "id")?,
            name: get_str(r, "name")?,
            kind: get_str(r, "kind")?,
            config: get_str(r, "config")?,
            enabled: get_bool(r, "enabled")?,
            created_by: get_str(r, "created_by")?,
            created_at: get_i64(r, "created_at")?,
            updated_at: get_i64(r, "updated_at")?,
        })
    }
}

/// Input for [`WriteTx::insert_source`].
#[derive(Clone, Debug)]
pub struct NewSource<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub config: &'a str,
    pub enabled: bool,
    pub created_by: &'a str,
}

/// Where the evidence of a sighting lives: one record of a WARC file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WarcRef {
    /// File name relative to the operator's WARC directory.
    pub file: String,
    pub offset: i64,
    pub length: i64,
    /// The record's `WARC-Record-ID` (`<urn:uuid:…>`).
    pub record_id: String,
}

/// A sighting as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct SightingRow {
    pub id: i64,
    /// `None` when the source was deleted, or the sighting was reported
    /// without one.
    pub source_id: Option<i64>,
    /// The URL as fetched.
    pub url: String,
    /// `url-canon-v1` of `url`.
    pub url_canonical: String,
    pub url_sha256: String,
    pub host: String,
    /// From the operator's host → platform table ('' when unknown).
    pub platform: String,
    pub parent_id: Option<i64>,
    /// SHA-256 of the payload, '' for an item without bytes.
    pub content_sha256: String,
    /// `image`, `video`, `text`, `pdf`, `html`, `other`, or ''.
    pub media_type: String,
    /// True once any bank item matched it.
    pub matched: bool,
    /// The lookup record that put its matches in the review queue.
    pub submission_id: Option<i64>,
    pub warc: Option<WarcRef>,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    /// Unmatched sightings are deleted after this (retro-hunt window).
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

const SIGHTING_COLUMNS: &str = "id, source_id, url, url_canonical, url_sha256, host, platform, \
    parent_id, content_sha256, media_type, matched, submission_id, warc_file, warc_offset, \
    warc_length, warc_record_id, first_seen_at, last_seen_at, expires_at, created_at";

impl SightingRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        let warc = match get_opt_str(r, "warc_file")? {
            Some(file) => Some(WarcRef {
                file,
                offset: get_opt_i64(r, "warc_offset")?.unwrap_or(0),
                length: get_opt_i64(r, "warc_length")?.unwrap_or(0),
                record_id: get_opt_str(r, "warc_record_id")?.unwrap_or_default(),
            }),
            None => None,
        };
        Ok(SightingRow {
            id: get_i64(r, "id")?,
            source_id: get_opt_i64(r, "source_id")?,
            url: get_str(r, "url")?,
            url_canonical: get_str(r, "url_canonical")?,
            url_sha256: get_str(r, "url_sha256")?,
            host: get_str(r, "host")?,
            platform: get_str(r, "platform")?,
            parent_id: get_opt_i64(r, "parent_id")?,
            content_sha256: get_str(r, "content_sha256")?,
            media_type: get_str(r, "media_type")?,
            matched: get_bool(r, "matched")?,
            submission_id: get_opt_i64(r, "submission_id")?,
            warc,
            first_seen_at: get_i64(r, "first_seen_at")?,
            last_seen_at: get_i64(r, "last_seen_at")?,
            expires_at: get_opt_i64(r, "expires_at")?,
            created_at: get_i64(r, "created_at")?,
        })
    }
}

/// Input for [`WriteTx::upsert_sighting`].
#[derive(Clone, Debug)]
pub struct NewSighting<'a> {
    pub source_id: Option<i64>,
    pub url: &'a str,
    pub url_canonical: &'a str,
    pub url_sha256: &'a str,
    pub host: &'a str,
    pub platform: &'a str,
    pub parent_id: Option<i64>,
    /// '' for an item without bytes.
    pub content_sha256: &'a str,
    pub media_type: &'a str,
    pub seen_at: i64,
    /// For a new unmatched sighting: when its hashes may be dropped.
    pub expires_at: Option<i64>,
    pub warc: Option<&'a WarcRef>,
    /// Which signals are rebuilt from the columns above instead of stored
    /// as rows ([`split_implied_signals`]; 0: none).
    pub implied_signals: i64,
}

/// `implied_signals` bits: the signal is the sighting's `content_sha256`.
pub const IMPLIED_SHA256: i64 = 1;
/// `implied_signals` bits: the signal is the sighting's `url_canonical`.
pub const IMPLIED_URL: i64 = 2;
/// `implied_signals` bits: the signal is the sighting's `url_sha256`.
pub const IMPLIED_URL_SHA256: i64 = 4;

/// The derivable signals in the order they are rebuilt (appended after the
/// stored rows): bit, signal type, the sighting column it repeats.
const IMPLIED: [(i64, &str, &str); 3] = [
    (IMPLIED_SHA256, "sha256", "content_sha256"),
    (IMPLIED_URL, "url", "url_canonical"),
    (IMPLIED_URL_SHA256, "url_sha256", "url_sha256"),
];

/// Which trailing signals of a new sighting (types and values, in the order
/// they would be stored) equal its own columns and so need no row: returns
/// the `implied_signals` bits and how many leading signals to store. Only a
/// suffix in rebuild order (`sha256`, `url`, `url_sha256`) is taken, so
/// stored rows followed by the rebuilt ones are the signals as given.
pub fn split_implied_signals(s: &NewSighting<'_>, signals: &[(&str, &str)]) -> (i64, usize) {
    let mut keep = signals.len();
    let mut bits = 0;
    for (bit, signal_type, _) in IMPLIED.iter().rev() {
        let Some(column) = implied_column(s.content_sha256, s.url_canonical, s.url_sha256, *bit)
        else {
            continue;
        };
        if keep > 0 && signals[keep - 1] == (*signal_type, column) {
            keep -= 1;
            bits |= bit;
        }
    }
    (bits, keep)
}

/// The column an implied signal repeats (`None` for no bytes' `sha256`).
fn implied_column<'c>(
    content_sha256: &'c str,
    url_canonical: &'c str,
    url_sha256: &'c str,
    bit: i64,
) -> Option<&'c str> {
    match bit {
        IMPLIED_SHA256 if !content_sha256.is_empty() => Some(content_sha256),
        IMPLIED_URL => Some(url_canonical),
        IMPLIED_URL_SHA256 => Some(url_sha256),
        _ => None,
    }
}

/// The bit and column of a derivable signal type.
fn implied_type(signal_type: &str) -> Option<(i64, &'static str)> {
    IMPLIED
        .iter()
        .find(|(_, t, _)| *t == signal_type)
        .map(|&(bit, _, column)| (bit, column))
}

/// A sighting's unique key in SQL (migration 0064): its URL and content
/// digests concatenated and decoded to bytes (64 bytes, 32 for an item
/// without bytes), the expression the unique index `sightings_key` holds.
/// Upserts name it as their conflict target; lookups compare it with
/// [`decoded`] of the same two digests.
pub(crate) fn key_sql(backend: Backend) -> String {
    decoded(backend, "url_sha256 || content_sha256")
}

/// SQL decoding the hex digits `text` evaluates to into bytes, as
/// [`key_sql`] decodes the columns (`unhex` on SQLite, `decode(…, 'hex')`
/// on PostgreSQL).
pub(crate) fn decoded(backend: Backend, text: &str) -> String {
    match backend {
        Backend::Sqlite => format!("unhex({text})"),
        Backend::Postgres => format!("decode({text}, 'hex')"),
    }
}

/// Whether `s` is a SHA-256 digest as sightings store it: 64 lowercase
/// hex digits.
fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl<'a> NewSighting<'a> {
    /// Refuse digests the unique key cannot hold. SQLite's `unhex` gives
    /// NULL for text that is not hex, and NULL keys are never equal, so
    /// such a sighting would be stored again at every sighting instead of
    /// once; upper-case digits would decode to another row's key.
    pub(crate) fn check_key(&self) -> Result<()> {
        if !is_digest(self.url_sha256) {
            return Err(crate::StoreError::Invalid(
                "url_sha256 must be 64 lowercase hex digits".into(),
            ));
        }
        if !self.content_sha256.is_empty() && !is_digest(self.content_sha256) {
            return Err(crate::StoreError::Invalid(
                "content_sha256 must be empty or 64 lowercase hex digits".into(),
            ));
        }
        Ok(())
    }

    /// Bind the columns every insert of a sighting starts with, in this
    /// order: `source_id, url, url_canonical, url_sha256, host, platform,
    /// parent_id, content_sha256, media_type, warc_file, warc_offset,
    /// warc_length, warc_record_id` (the single and the multi-row insert
    /// share it).
    pub(crate) fn bind_identity<'q>(
        &self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>
    where
        'a: 'q,
    {
        q.bind(self.source_id)
            .bind(self.url)
            .bind(self.url_canonical)
            .bind(self.url_sha256)
            .bind(self.host)
            .bind(self.platform)
            .bind(self.parent_id)
            .bind(self.content_sha256)
            .bind(self.media_type)
            .bind(self.warc.map(|w| w.file.clone()))
            .bind(self.warc.map(|w| w.offset))
            .bind(self.warc.map(|w| w.length))
            .bind(self.warc.map(|w| w.record_id.clone()))
    }
}

/// Which bank item a sighting matched, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct SightingMatchRow {
    pub sighting_id: i64,
    pub content_id: i64,
    pub bank_id: i64,
    pub signal_type: String,
    /// `matches.id` when the match went to the review queue.
    pub match_id: Option<i64>,
    pub distance: Option<i64>,
    pub similarity: Option<f64>,
    /// The matching channel (`plain`, `dihedral`, `border`, `window`, …).
    pub channel: String,
    /// `fetch`, `retro_hunt` or `recheck`.
    pub found_by: String,
    pub created_at: i64,
}

const SIGHTING_MATCH_COLUMNS: &str = "sighting_id, content_id, bank_id, signal_type, match_id, \
    distance, similarity, channel, found_by, created_at";

impl SightingMatchRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(SightingMatchRow {
            sighting_id: get_i64(r, "sighting_id")?,
            content_id: get_i64(r, "content_id")?,
            bank_id: get_i64(r, "bank_id")?,
            signal_type: get_str(r, "signal_type")?,
            match_id: get_opt_i64(r, "match_id")?,
            distance: get_opt_i64(r, "distance")?,
            similarity: get_opt_f64(r, "similarity")?,
            channel: get_str(r, "channel")?,
            found_by: get_str(r, "found_by")?,
            created_at: get_i64(r, "created_at")?,
        })
    }
}

/// Input for [`WriteTx::insert_sighting_match`].
#[derive(Clone, Debug)]
pub struct NewSightingMatch<'a> {
    pub sighting_id: i64,
    pub content_id: i64,
    pub bank_id: i64,
    pub signal_type: &'a str,
    pub match_id: Option<i64>,
    pub distance: Option<i64>,
    pub similarity: Option<f64>,
    pub channel: &'a str,
    pub found_by: &'a str,
}

/// One stored signal of a sighting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SightingSignalRow {
    pub id: i64,
    pub sighting_id: i64,
    pub signal_type: String,
    pub value: String,
}

impl SightingSignalRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(SightingSignalRow {
            id: get_i64(r, "id")?,
            sighting_id: get_i64(r, "sighting_id")?,
            signal_type: get_str(r, "signal_type")?,
            value: get_str(r, "value")?,
        })
    }
}

/// Filters for [`Store::list_sightings`]; newest first.
#[derive(Clone, Debug, Default)]
pub struct SightingQuery {
    /// Only sightings that matched this bank item (its variant cluster).
    pub content_id: Option<i64>,
    pub source_id: Option<i64>,
    pub host: Option<String>,
    pub platform: Option<String>,
    pub matched: Option<bool>,
    /// `first_seen_at >= seen_from`.
    pub seen_from: Option<i64>,
    /// `first_seen_at < seen_to`.
    pub seen_to: Option<i64>,
    /// Keyset pagination: `id < before_id`.
    pub before_id: Option<i64>,
    pub limit: i64,
}

impl Store {
    pub async fn list_sources(&self) -> Result<Vec<SourceRow>> {
        let rows = sqlx::query(
            "SELECT id, name, kind, config, enabled, created_by, created_at, updated_at \
             FROM sources ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SourceRow::from_row).collect()
    }

    pub async fn get_source(&self, id: i64) -> Result<Option<SourceRow>> {
        let row = sqlx::query(
            "SELECT id, name, kind, config, enabled, created_by, created_at, updated_at \
             FROM sources WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(SourceRow::from_row).transpose()
    }

    pub async fn get_source_by_name(&self, name: &str) -> Result<Option<SourceRow>> {
        let row = sqlx::query(
            "SELECT id, name, kind, config, enabled, created_by, created_at, updated_at \
             FROM sources WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(SourceRow::from_row).transpose()
    }

    pub async fn get_sighting(&self, id: i64) -> Result<Option<SightingRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SIGHTING_COLUMNS} FROM sightings WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(SightingRow::from_row).transpose()
    }

    /// Sightings matching every filter set in `q`, newest (highest id) first.
    pub async fn list_sightings(&self, q: &SightingQuery) -> Result<Vec<SightingRow>> {
        let mut sql = format!("SELECT {SIGHTING_COLUMNS} FROM sightings WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if q.content_id.is_some() {
            let p = next();
            sql.push_str(&format!(
                " AND id IN (SELECT sighting_id FROM sighting_matches WHERE content_id = ${p})"
            ));
        }
        for (present, clause) in [
            (q.source_id.is_some(), "source_id"),
            (q.host.is_some(), "host"),
            (q.platform.is_some(), "platform"),
            (q.matched.is_some(), "matched"),
        ] {
            if present {
                let p = next();
                sql.push_str(&format!(" AND {clause} = ${p}"));
            }
        }
        if q.seen_from.is_some() {
            let p = next();
            sql.push_str(&format!(" AND first_seen_at >= ${p}"));
        }
        if q.seen_to.is_some() {
            let p = next();
            sql.push_str(&format!(" AND first_seen_at < ${p}"));
        }
        if q.before_id.is_some() {
            let p = next();
            sql.push_str(&format!(" AND id < ${p}"));
        }
        let p = next();
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${p}"));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(v) = q.content_id {
            query = query.bind(v);
        }
        if let Some(v) = q.source_id {
            query = query.bind(v);
        }
        if let Some(v) = &q.host {
            query = query.bind(v.clone());
        }
        if let Some(v) = &q.platform {
            query = query.bind(v.clone());
        }
        if let Some(v) = q.matched {
            query = query.bind(i64::from(v));
        }
        if let Some(v) = q.seen_from {
            query = query.bind(v);
        }
        if let Some(v) = q.seen_to {
            query = query.bind(v);
        }
        if let Some(v) = q.before_id {
            query = query.bind(v);
        }
        let rows = query.bind(q.limit.max(0)).fetch_all(&self.pool).await?;
        rows.iter().map(SightingRow::from_row).collect()
    }

    /// The bank items a sighting matched.
    pub async fn sighting_matches(&self, sighting_id: i64) -> Result<Vec<SightingMatchRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SIGHTING_MATCH_COLUMNS} FROM sighting_matches WHERE sighting_id = $1 \
             ORDER BY content_id, signal_type"
        )))
        .bind(sighting_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SightingMatchRow::from_row).collect()
    }

    /// The match rows of one bank item's variant cluster, oldest first.
    pub async fn cluster_matches(&self, content_id: i64) -> Result<Vec<SightingMatchRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SIGHTING_MATCH_COLUMNS} FROM sighting_matches WHERE content_id = $1 \
             ORDER BY sighting_id, signal_type"
        )))
        .bind(content_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SightingMatchRow::from_row).collect()
    }

    /// The signals of one sighting, in the order they were written: its
    /// stored rows, then those rebuilt from its columns (see the module doc;
    /// their `id` is 0).
    pub async fn sighting_signals(&self, sighting_id: i64) -> Result<Vec<SightingSignalRow>> {
        let rows = sqlx::query(
            "SELECT id, sighting_id, signal_type, value FROM sighting_signals \
             WHERE sighting_id = $1 ORDER BY id",
        )
        .bind(sighting_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .iter()
            .map(SightingSignalRow::from_row)
            .collect::<Result<Vec<_>>>()?;
        let own = sqlx::query(
            "SELECT implied_signals, content_sha256, url_canonical, url_sha256 FROM sightings \
             WHERE id = $1",
        )
        .bind(sighting_id)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(r) = own {
            let bits = get_i64(&r, "implied_signals")?;
            let (content, canonical, url_sha) = (
                get_str(&r, "content_sha256")?,
                get_str(&r, "url_canonical")?,
                get_str(&r, "url_sha256")?,
            );
            for (bit, signal_type, _) in IMPLIED {
                if bits & bit == 0 {
                    continue;
                }
                if let Some(value) = implied_column(&content, &canonical, &url_sha, bit) {
                    out.push(SightingSignalRow {
                        id: 0,
                        sighting_id,
                        signal_type: signal_type.to_string(),
                        value: value.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Sightings holding exactly this signal (stored or rebuilt). A scan of
    /// the type's rows (values are not indexed, see the module doc): for
    /// tests and diagnostics, not for a hot path.
    pub async fn sightings_with_signal(&self, signal_type: &str, value: &str) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT DISTINCT sighting_id FROM sighting_signals \
             WHERE signal_type = $1 AND value = $2 ORDER BY sighting_id",
        )
        .bind(signal_type)
        .bind(value)
        .fetch_all(&self.pool)
        .await?;
        let mut ids = rows
            .iter()
            .map(|r| get_i64(r, "sighting_id"))
            .collect::<Result<Vec<_>>>()?;
        if let Some((bit, column)) = implied_type(signal_type) {
            let extra = if bit == IMPLIED_SHA256 && value.is_empty() {
                Vec::new()
            } else {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT id FROM sightings WHERE {column} = $1 AND (implied_signals & {bit}) <> 0"
                )))
                .bind(value)
                .fetch_all(&self.pool)
                .await?
            };
            for r in &extra {
                ids.push(get_i64(r, "id")?);
            }
            ids.sort_unstable();
            ids.dedup();
        }
        Ok(ids)
    }

    /// One page of the signals of a type rebuilt from sightings' columns,
    /// by sighting id (the retro-hunt reads these after the stored rows of
    /// the type, [`Store::sighting_signals_page`]). Each row's `id` is its
    /// sighting's. Empty for a type that is never rebuilt.
    pub async fn implied_signals_page(
        &self,
        signal_type: &str,
        after_sighting_id: i64,
        limit: i64,
    ) -> Result<Vec<SightingSignalRow>> {
        let Some((bit, column)) = implied_type(signal_type) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, {column} AS value FROM sightings \
             WHERE id > $1 AND (implied_signals & {bit}) <> 0 ORDER BY id LIMIT $2"
        )))
        .bind(after_sighting_id)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id = get_i64(r, "id")?;
                Ok(SightingSignalRow {
                    id,
                    sighting_id: id,
                    signal_type: signal_type.to_string(),
                    value: get_str(r, "value")?,
                })
            })
            .collect()
    }

    /// Whether any sighting holds a `sha256` or `url_sha256` signal, stored
    /// or rebuilt (the retro-hunt has nothing to scan otherwise).
    pub async fn any_sighting_digests(&self) -> Result<bool> {
        let stored = sqlx::query(
            "SELECT 1 AS one FROM sighting_signals \
             WHERE signal_type IN ('sha256', 'url_sha256') LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        if stored.is_some() {
            return Ok(true);
        }
        let implied = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT 1 AS one FROM sightings WHERE (implied_signals & {}) <> 0 LIMIT 1",
            IMPLIED_SHA256 | IMPLIED_URL_SHA256
        )))
        .fetch_optional(&self.pool)
        .await?;
        Ok(implied.is_some())
    }

    /// One page of stored sighting signals of a type, by id (retro-hunt; the
    /// rebuilt ones are [`Store::implied_signals_page`]).
    pub async fn sighting_signals_page(
        &self,
        signal_type: &str,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<SightingSignalRow>> {
        let rows = sqlx::query(
            "SELECT id, sighting_id, signal_type, value FROM sighting_signals \
             WHERE signal_type = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(signal_type)
        .bind(after_id)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SightingSignalRow::from_row).collect()
    }
}

impl WriteTx {
    pub async fn insert_source(&mut self, s: &NewSource<'_>) -> Result<SourceRow> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO sources (name, kind, config, enabled, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id, name, kind, config, enabled, \
             created_by, created_at, updated_at",
        )
        .bind(s.name)
        .bind(s.kind)
        .bind(s.config)
        .bind(i64::from(s.enabled))
        .bind(s.created_by)
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await?;
        SourceRow::from_row(&row)
    }

    /// Store a source's config and enabled flag (name and kind are fixed).
    pub async fn update_source(&mut self, s: &SourceRow) -> Result<SourceRow> {
        let row = sqlx::query(
            "UPDATE sources SET config = $2, enabled = $3, updated_at = $4 WHERE id = $1 \
             RETURNING id, name, kind, config, enabled, created_by, created_at, updated_at",
        )
        .bind(s.id)
        .bind(&s.config)
        .bind(i64::from(s.enabled))
        .bind(now_ms())
        .fetch_one(&mut *self.tx)
        .await?;
        SourceRow::from_row(&row)
    }

    /// Delete a source; its sightings stay, with `source_id` NULL.
    pub async fn delete_source(&mut self, id: i64) -> Result<()> {
        sqlx::query("UPDATE sightings SET source_id = NULL WHERE source_id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM sources WHERE id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Record that an item was seen. Returns the sighting and whether it is
    /// new; an existing one (same URL, same bytes) only moves
    /// `last_seen_at` forward.
    pub async fn upsert_sighting(&mut self, s: &NewSighting<'_>) -> Result<(SightingRow, bool)> {
        s.check_key()?;
        if let Some(existing) = self.sighting_by_key(s.url_sha256, s.content_sha256).await? {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE sightings SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2 \
                 RETURNING {SIGHTING_COLUMNS}"
            )))
            .bind(existing.id)
            .bind(s.seen_at)
            .fetch_optional(&mut *self.tx)
            .await?;
            return Ok((
                row.as_ref()
                    .map(SightingRow::from_row)
                    .transpose()?
                    .unwrap_or(existing),
                false,
            ));
        }
        let insert = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO sightings (source_id, url, url_canonical, url_sha256, host, platform, \
             parent_id, content_sha256, media_type, matched, warc_file, warc_offset, warc_length, \
             warc_record_id, first_seen_at, last_seen_at, expires_at, created_at, implied_signals) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $12, $13, $14, $14, $15, $16, \
             $17) \
             ON CONFLICT (({key})) DO NOTHING RETURNING {SIGHTING_COLUMNS}",
            key = key_sql(self.backend)
        )));
        let row = s
            .bind_identity(insert)
            .bind(s.seen_at)
            .bind(s.expires_at)
            .bind(now_ms())
            .bind(s.implied_signals)
            .fetch_optional(&mut *self.tx)
            .await?;
        match row {
            Some(r) => Ok((SightingRow::from_row(&r)?, true)),
            // Another transaction inserted it first (PostgreSQL).
            None => match self.sighting_by_key(s.url_sha256, s.content_sha256).await? {
                Some(existing) => Ok((existing, false)),
                None => Err(crate::StoreError::NotFound(
                    "sighting vanished during upsert".into(),
                )),
            },
        }
    }

    async fn sighting_by_key(
        &mut self,
        url_sha256: &str,
        content_sha256: &str,
    ) -> Result<Option<SightingRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SIGHTING_COLUMNS} FROM sightings WHERE {key} = {value}",
            key = key_sql(self.backend),
            value = decoded(self.backend, "$1")
        )))
        .bind(format!("{url_sha256}{content_sha256}"))
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(SightingRow::from_row).transpose()
    }

    /// Point a sighting at its evidence record.
    pub async fn set_sighting_warc(&mut self, id: i64, warc: &WarcRef) -> Result<()> {
        sqlx::query(
            "UPDATE sightings SET warc_file = $2, warc_offset = $3, warc_length = $4, \
             warc_record_id = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(&warc.file)
        .bind(warc.offset)
        .bind(warc.length)
        .bind(&warc.record_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Mark a sighting matched (kept for good: `expires_at` cleared), with
    /// the lookup record that queued its matches for review, if any.
    pub async fn mark_sighting_matched(
        &mut self,
        id: i64,
        submission_id: Option<i64>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sightings SET matched = 1, expires_at = NULL, \
             submission_id = COALESCE($2, submission_id) WHERE id = $1",
        )
        .bind(id)
        .bind(submission_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Store a sighting's signals (hashes only).
    pub async fn insert_sighting_signals(
        &mut self,
        sighting_id: i64,
        signals: &[(&str, &str)],
    ) -> Result<()> {
        for (signal_type, value) in signals {
            sqlx::query(
                "INSERT INTO sighting_signals (sighting_id, signal_type, value) VALUES ($1, $2, $3)",
            )
            .bind(sighting_id)
            .bind(*signal_type)
            .bind(*value)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    /// Tie a sighting to a bank item it matched. Returns false when that
    /// (sighting, item, signal type) was already recorded.
    pub async fn insert_sighting_match(&mut self, m: &NewSightingMatch<'_>) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO sighting_matches (sighting_id, content_id, bank_id, signal_type, \
             match_id, distance, similarity, channel, found_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS DOUBLE PRECISION), $8, $9, $10) \
             ON CONFLICT (sighting_id, content_id, signal_type) DO NOTHING",
        )
        .bind(m.sighting_id)
        .bind(m.content_id)
        .bind(m.bank_id)
        .bind(m.signal_type)
        .bind(m.match_id)
        .bind(m.distance)
        // Bound as text and cast in SQL: see `resolve_url` on sqlx's NULL f64.
        .bind(m.similarity.map(|s| s.to_string()))
        .bind(m.channel)
        .bind(m.found_by)
        .bind(now_ms())
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Drop up to `limit` unmatched sightings whose retro-hunt window ended
    /// before `now` (their signals go with them). Returns how many. The
    /// parent of a matched sighting is evidence (where the copy was found)
    /// and is kept.
    pub async fn delete_expired_sightings(&mut self, now: i64, limit: i64) -> Result<u64> {
        let ids = sqlx::query(
            "SELECT s.id FROM sightings s WHERE s.matched = 0 AND s.expires_at IS NOT NULL \
             AND s.expires_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM sightings c WHERE c.parent_id = s.id AND c.matched = 1) \
             ORDER BY s.expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit.max(0))
        .fetch_all(&mut *self.tx)
        .await?;
        let mut deleted = 0;
        for r in &ids {
            let id = get_i64(r, "id")?;
            // Children first: SQLite enforces ON DELETE only with foreign
            // keys on, and children may name this sighting as their parent.
            sqlx::query("DELETE FROM sighting_signals WHERE sighting_id = $1")
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
            sqlx::query("UPDATE sightings SET parent_id = NULL WHERE parent_id = $1")
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
            deleted += sqlx::query("DELETE FROM sightings WHERE id = $1")
                .bind(id)
                .execute(&mut *self.tx)
                .await?
                .rows_affected();
        }
        Ok(deleted)
    }
}
