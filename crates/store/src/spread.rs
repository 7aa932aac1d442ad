//! Spread tracking (migration 0050): the liveness of every matched
//! sighting's URL, the check outcomes behind it, confirmed removals, and
//! takedown notices. The rules (schedule, verdicts, the two-check
//! confirmation) live in the `spread` crate; this module only stores what it
//! decides, with the guarantees it needs:
//!
//! * **Leases.** [`Store::lease_due_checks`] hands due sightings to one
//!   checker at a time (`lease_holder`, `lease_until`; `FOR UPDATE SKIP
//!   LOCKED` on PostgreSQL, the single writer on SQLite). A checker that dies
//!   leaves its leases to expire; the checks are then done again.
//! * **Exactly one outcome per check.** [`WriteTx::apply_check`] updates the
//!   liveness row only if its `checks` counter still equals what was leased
//!   (and the lease is still ours) and inserts the outcome with
//!   `seq = checks + 1` under a unique `(sighting_id, seq)`: a crash before
//!   the commit loses nothing (the check is redone), after it repeats
//!   nothing (the counter moved on).
//! * **Counts without reading every check.** Migration 0051 tallies checks
//!   per UTC hour and verdict (`liveness_check_hours`), kept by triggers in
//!   the same transaction as the check row, so [`Store::check_counts`] over
//!   ten million checks reads a few thousand tally rows plus the two partial
//!   hours at the window's edges. A writer recording many checks in one
//!   transaction applies them in (hour, verdict) order (the checker does),
//!   so concurrent writers lock tally rows in one order.

use std::collections::HashMap;

use sqlx::any::AnyRow;

use crate::rows::{get_opt_i64, get_opt_str, get_str};
use crate::{get_i64, now_ms, Backend, Result, Store, StoreError, WarcRef, WriteTx};

/// The liveness of one tracked sighting, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivenessRow {
    pub sighting_id: i64,
    /// The last check's verdict (`unchecked` before the first).
    pub state: String,
    /// `live`, `removal_pending` or `removed`.
    pub status: String,
    pub removed_streak: i64,
    /// Completed checks; the seq of the last one.
    pub checks: i64,
    pub last_checked_at: Option<i64>,
    pub last_live_at: i64,
    pub first_removed_at: Option<i64>,
    /// Confirmed removals so far (episodes).
    pub removals: i64,
    /// Times the copy came back after a confirmed removal.
    pub resurfaced: i64,
    pub anchor_at: i64,
    pub next_check_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const LIVENESS_COLUMNS: &str = "sighting_id, state, status, removed_streak, checks, \
    last_checked_at, last_live_at, first_removed_at, removals, resurfaced, anchor_at, \
    next_check_at, created_at, updated_at";

impl LivenessRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(LivenessRow {
            sighting_id: get_i64(r, "sighting_id")?,
            state: get_str(r, "state")?,
            status: get_str(r, "status")?,
            removed_streak: get_i64(r, "removed_streak")?,
            checks: get_i64(r, "checks")?,
            last_checked_at: get_opt_i64(r, "last_checked_at")?,
            last_live_at: get_i64(r, "last_live_at")?,
            first_removed_at: get_opt_i64(r, "first_removed_at")?,
            removals: get_i64(r, "removals")?,
            resurfaced: get_i64(r, "resurfaced")?,
            anchor_at: get_i64(r, "anchor_at")?,
            next_check_at: get_opt_i64(r, "next_check_at")?,
            created_at: get_i64(r, "created_at")?,
            updated_at: get_i64(r, "updated_at")?,
        })
    }
}

/// A leased, due check: the liveness row and what the checker needs of the
/// sighting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueCheck {
    pub liveness: LivenessRow,
    pub url: String,
    pub host: String,
    pub content_sha256: String,
    pub media_type: String,
    pub source_id: Option<i64>,
}

/// One check outcome as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRow {
    pub id: i64,
    pub sighting_id: i64,
    pub seq: i64,
    pub checked_at: i64,
    pub state: String,
    pub http_status: Option<i64>,
    pub final_url: String,
    pub served_sha256: String,
    pub detail: String,
    /// `clearnet` or `proxy` (Tor and other SOCKS proxies).
    pub via: String,
    pub warc: Option<WarcRef>,
}

const CHECK_COLUMNS: &str = "id, sighting_id, seq, checked_at, state, http_status, final_url, \
    served_sha256, detail, via, warc_file, warc_offset, warc_length, warc_record_id";

impl CheckRow {
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
        Ok(CheckRow {
            id: get_i64(r, "id")?,
            sighting_id: get_i64(r, "sighting_id")?,
            seq: get_i64(r, "seq")?,
            checked_at: get_i64(r, "checked_at")?,
            state: get_str(r, "state")?,
            http_status: get_opt_i64(r, "http_status")?,
            final_url: get_str(r, "final_url")?,
            served_sha256: get_str(r, "served_sha256")?,
            detail: get_str(r, "detail")?,
            via: get_str(r, "via")?,
            warc,
        })
    }
}

/// A confirmed removal of a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovalRow {
    pub sighting_id: i64,
    pub episode: i64,
    /// The copy went down in `(last_live_at, first_removed_at]`.
    pub last_live_at: i64,
    pub first_removed_at: i64,
    /// The second consecutive removed check.
    pub confirmed_at: i64,
    pub removed_state: String,
    pub resurfaced_at: Option<i64>,
}

impl RemovalRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(RemovalRow {
            sighting_id: get_i64(r, "sighting_id")?,
            episode: get_i64(r, "episode")?,
            last_live_at: get_i64(r, "last_live_at")?,
            first_removed_at: get_i64(r, "first_removed_at")?,
            confirmed_at: get_i64(r, "confirmed_at")?,
            removed_state: get_str(r, "removed_state")?,
            resurfaced_at: get_opt_i64(r, "resurfaced_at")?,
        })
    }
}

/// Everything one check changes, applied by [`WriteTx::apply_check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckWrite {
    pub sighting_id: i64,
    /// The lease holder that did the check.
    pub holder: String,
    /// `checks` as leased; the outcome gets seq `expected_checks + 1`.
    pub expected_checks: i64,
    pub checked_at: i64,
    pub state: String,
    pub http_status: Option<i64>,
    pub final_url: String,
    pub served_sha256: String,
    pub detail: String,
    pub via: String,
    pub warc: Option<WarcRef>,
    /// The liveness row after the check.
    pub status: String,
    pub removed_streak: i64,
    pub last_live_at: i64,
    pub first_removed_at: Option<i64>,
    pub removals: i64,
    pub resurfaced: i64,
    pub anchor_at: i64,
    pub next_check_at: Option<i64>,
    /// A removal confirmed by this check (episode = the new `removals`).
    pub confirmed_removal: Option<RemovalRow>,
    /// This check found the copy back after removal `episode`.
    pub resurfaced_episode: Option<i64>,
}

/// A takedown notice as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeRow {
    pub id: i64,
    pub platform: String,
    /// `email`, `api`, `dsa_art16` or `tco_order`.
    pub channel: String,
    pub reference: String,
    pub sent_at: i64,
    /// `no_response`, `removed` or `rejected`.
    pub response: String,
    pub responded_at: Option<i64>,
    pub note: String,
    /// The generated notice text, as recorded when it was created.
    pub body: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const NOTICE_COLUMNS: &str = "id, platform, channel, reference, sent_at, response, \
    responded_at, note, body, created_by, created_at, updated_at";

impl NoticeRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(NoticeRow {
            id: get_i64(r, "id")?,
            platform: get_str(r, "platform")?,
            channel: get_str(r, "channel")?,
            reference: get_str(r, "reference")?,
            sent_at: get_i64(r, "sent_at")?,
            response: get_str(r, "response")?,
            responded_at: get_opt_i64(r, "responded_at")?,
            note: get_str(r, "note")?,
            body: get_str(r, "body")?,
            created_by: get_str(r, "created_by")?,
            created_at: get_i64(r, "created_at")?,
            updated_at: get_i64(r, "updated_at")?,
        })
    }
}

/// Input for [`WriteTx::insert_notice`].
#[derive(Clone, Debug)]
pub struct NewNotice<'a> {
    pub platform: &'a str,
    pub channel: &'a str,
    pub reference: &'a str,
    pub sent_at: i64,
    pub note: &'a str,
    pub body: &'a str,
    pub created_by: &'a str,
}

/// Filters for [`Store::list_notices`]; newest first.
#[derive(Clone, Debug, Default)]
pub struct NoticeQuery {
    pub platform: Option<String>,
    /// Notices covering this sighting.
    pub sighting_id: Option<i64>,
    /// `sent_at >= sent_from`.
    pub sent_from: Option<i64>,
    /// `sent_at < sent_to`.
    pub sent_to: Option<i64>,
    /// Keyset pagination: `id < before_id`.
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// One matched sighting with what a report needs: its liveness, its first
/// confirmed removal and its first notice. See [`Store::copy_rows_page`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyRow {
    pub sighting_id: i64,
    /// The first 16 hex digits of the URL's SHA-256 (enough to tell the
    /// window's URLs apart).
    pub url_prefix: String,
    /// The lowest bank item it matched (its variant cluster).
    pub content_id: Option<i64>,
    pub host: String,
    pub platform: String,
    pub media_type: String,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    /// `None` when not (yet) tracked by the checker.
    pub status: Option<String>,
    pub live_last_live_at: Option<i64>,
    pub checks: i64,
    /// The first confirmed removal (episode 1).
    pub removal: Option<RemovalRow>,
    /// When the first notice covering it was sent.
    pub first_notice_at: Option<i64>,
    /// Set when the copy was removed as of the window's end: the
    /// confirmation time of the removal then in force (confirmed before
    /// `to` and not resurfaced before `to`).
    pub removed_at_end: Option<i64>,
}

/// A bank item's labels and bank, for grouping report rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemLabels {
    pub content_id: i64,
    pub bank_id: i64,
    /// JSON array text, as stored.
    pub labels: String,
}

/// A variant cluster's counts (a bank item and the sightings that matched it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSummary {
    pub content_id: i64,
    pub sightings: i64,
    pub hosts: i64,
    pub platforms: i64,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub removed: i64,
    pub resurfaced: i64,
}

/// One [`CopyRow`] as `spread_copies.packed` holds it: a JSON array in the
/// order of the table's columns (serde reads a struct from a sequence in
/// field order).
#[derive(serde::Deserialize)]
struct PackedCopy {
    sighting_id: i64,
    url_prefix: String,
    content_id: Option<i64>,
    host: String,
    platform: String,
    media_type: String,
    first_seen_at: i64,
    last_seen_at: i64,
    status: Option<String>,
    live_last_live_at: Option<i64>,
    checks: Option<i64>,
    last_live_at: Option<i64>,
    first_removed_at: Option<i64>,
    confirmed_at: Option<i64>,
    removed_state: Option<String>,
    resurfaced_at: Option<i64>,
    later_episodes: i64,
    first_notice_at: Option<i64>,
}

impl PackedCopy {
    /// The row as of a window ending at `to`; `removed_at_end` is decided
    /// by episode 1 here (the caller reads it for copies with later ones).
    fn into_row(self, to: i64) -> CopyRow {
        // Episode 1 has every NOT NULL column of its removal row; the
        // summary holds all or none of them.
        let removal = match (self.last_live_at, self.first_removed_at, self.confirmed_at) {
            (Some(last_live_at), Some(first_removed_at), Some(confirmed_at)) => Some(RemovalRow {
                sighting_id: self.sighting_id,
                episode: 1,
                last_live_at,
                first_removed_at,
                confirmed_at,
                removed_state: self.removed_state.unwrap_or_default(),
                resurfaced_at: self.resurfaced_at,
            }),
            _ => None,
        };
        let removed_at_end = removal
            .as_ref()
            .filter(|r| r.confirmed_at < to && r.resurfaced_at.is_none_or(|t| t >= to))
            .map(|r| r.confirmed_at);
        CopyRow {
            sighting_id: self.sighting_id,
            url_prefix: self.url_prefix,
            content_id: self.content_id,
            host: self.host,
            platform: self.platform,
            media_type: self.media_type,
            first_seen_at: self.first_seen_at,
            last_seen_at: self.last_seen_at,
            status: self.status,
            live_last_live_at: self.live_last_live_at,
            checks: self.checks.unwrap_or(0),
            removal,
            first_notice_at: self.first_notice_at,
            removed_at_end,
        }
    }
}

impl Store {
    /// Start tracking up to `limit` matched http(s) sightings that are not
    /// tracked yet: first check due at `first_seen_at + first_offset_ms`
    /// (at once for old sightings). Returns how many were enrolled.
    pub async fn enroll_liveness(&self, first_offset_ms: i64, limit: i64) -> Result<u64> {
        let now = now_ms();
        let done = sqlx::query(
            "INSERT INTO liveness (sighting_id, state, status, removed_streak, checks, \
             last_live_at, removals, resurfaced, anchor_at, next_check_at, lease_holder, \
             lease_until, created_at, updated_at) \
             SELECT s.id, 'unchecked', 'live', 0, 0, s.last_seen_at, 0, 0, s.first_seen_at, \
             s.first_seen_at + $1, '', 0, $2, $2 FROM sightings s \
             WHERE s.matched = 1 AND (s.url LIKE 'http://%' OR s.url LIKE 'https://%') \
             AND NOT EXISTS (SELECT 1 FROM liveness l WHERE l.sighting_id = s.id) \
             ORDER BY s.id LIMIT $3",
        )
        .bind(first_offset_ms)
        .bind(now)
        .bind(limit.max(0))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Lease up to `limit` checks due at `due_at` (not leased by a live
    /// holder at `lease_now`, wall-clock ms) to `holder` until `lease_now +
    /// lease_ms`, earliest first. `due_at` is `lease_now` except when a
    /// checker replays a given time.
    pub async fn lease_due_checks(
        &self,
        holder: &str,
        due_at: i64,
        lease_now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<DueCheck>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut tx = self.write().await?;
        let sql = format!(
            "UPDATE liveness SET lease_holder = $1, lease_until = $2 WHERE sighting_id IN \
             (SELECT sighting_id FROM liveness WHERE next_check_at IS NOT NULL \
              AND next_check_at <= $3 AND lease_until < $4 \
              ORDER BY next_check_at, sighting_id LIMIT $5{lock}) \
             RETURNING sighting_id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(holder)
            .bind(lease_now.saturating_add(lease_ms))
            .bind(due_at)
            .bind(lease_now)
            .bind(limit.max(0))
            .fetch_all(&mut *tx.tx)
            .await?;
        let ids: Vec<i64> = rows
            .iter()
            .map(|r| get_i64(r, "sighting_id"))
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let list = id_list(chunk);
            let cols = LIVENESS_COLUMNS
                .split(", ")
                .map(|c| format!("l.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {cols}, s.url, s.host, s.content_sha256, s.media_type, s.source_id \
                 FROM liveness l JOIN sightings s ON s.id = l.sighting_id \
                 WHERE l.sighting_id IN ({list}) ORDER BY l.next_check_at, l.sighting_id"
            )))
            .fetch_all(&mut *tx.tx)
            .await?;
            for r in &rows {
                out.push(DueCheck {
                    liveness: LivenessRow::from_row(r)?,
                    url: get_str(r, "url")?,
                    host: get_str(r, "host")?,
                    content_sha256: get_str(r, "content_sha256")?,
                    media_type: get_str(r, "media_type")?,
                    source_id: get_opt_i64(r, "source_id")?,
                });
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Give back leases not worked on (a checker stopping early).
    pub async fn release_check_leases(&self, holder: &str, sighting_ids: &[i64]) -> Result<()> {
        for chunk in sighting_ids.chunks(500) {
            let list = id_list(chunk);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE liveness SET lease_until = 0 WHERE lease_holder = $1 \
                 AND sighting_id IN ({list})"
            )))
            .bind(holder)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// The earliest pending check time (None: nothing scheduled).
    pub async fn next_due_at(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MIN(next_check_at) AS t FROM liveness")
            .fetch_one(&self.pool)
            .await?;
        get_opt_i64(&row, "t")
    }

    pub async fn get_liveness(&self, sighting_id: i64) -> Result<Option<LivenessRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LIVENESS_COLUMNS} FROM liveness WHERE sighting_id = $1"
        )))
        .bind(sighting_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(LivenessRow::from_row).transpose()
    }

    /// Liveness rows of the given sightings (any order; missing ones are
    /// not tracked).
    pub async fn liveness_of(&self, sighting_ids: &[i64]) -> Result<Vec<LivenessRow>> {
        let mut out = Vec::with_capacity(sighting_ids.len());
        for chunk in sighting_ids.chunks(500) {
            let list = id_list(chunk);
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {LIVENESS_COLUMNS} FROM liveness WHERE sighting_id IN ({list})"
            )))
            .fetch_all(&self.pool)
            .await?;
            for r in &rows {
                out.push(LivenessRow::from_row(r)?);
            }
        }
        Ok(out)
    }

    /// Check outcomes of one sighting, oldest first.
    pub async fn checks_of(&self, sighting_id: i64, limit: i64) -> Result<Vec<CheckRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHECK_COLUMNS} FROM liveness_checks WHERE sighting_id = $1 \
             ORDER BY seq LIMIT $2"
        )))
        .bind(sighting_id)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(CheckRow::from_row).collect()
    }

    /// Check outcomes with `checked_at` in `[from, to)`, by id after
    /// `after_id` (paging through every check).
    pub async fn checks_page(
        &self,
        from: i64,
        to: i64,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<CheckRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHECK_COLUMNS} FROM liveness_checks WHERE checked_at >= $1 \
             AND checked_at < $2 AND id > $3 ORDER BY id LIMIT $4"
        )))
        .bind(from)
        .bind(to)
        .bind(after_id)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(CheckRow::from_row).collect()
    }

    /// How many checks have `checked_at` in `[from, to)`, per state (states
    /// with none are left out). Whole UTC hours come from the hourly tally
    /// (`liveness_check_hours`, migration 0051, kept by triggers); the
    /// partial hours at either edge are counted from the checks themselves.
    pub async fn check_counts(&self, from: i64, to: i64) -> Result<Vec<(String, i64)>> {
        let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
        let mut add = |rows: Vec<AnyRow>| -> Result<()> {
            for r in &rows {
                *counts.entry(get_str(r, "state")?).or_default() += get_i64(r, "n")?;
            }
            Ok(())
        };
        match whole_hours(from, to) {
            Some((first, end)) => {
                add(self.check_counts_direct(from, first * HOUR_MS).await?)?;
                add(sqlx::query(
                    "SELECT state, CAST(SUM(n) AS BIGINT) AS n FROM liveness_check_hours \
                     WHERE hour >= $1 AND hour < $2 GROUP BY state",
                )
                .bind(first)
                .bind(end)
                .fetch_all(&self.pool)
                .await?)?;
                add(self.check_counts_direct(end * HOUR_MS, to).await?)?;
            }
            None => add(self.check_counts_direct(from, to).await?)?,
        }
        Ok(counts.into_iter().filter(|(_, n)| *n > 0).collect())
    }

    async fn check_counts_direct(&self, from: i64, to: i64) -> Result<Vec<AnyRow>> {
        if from >= to {
            return Ok(Vec::new());
        }
        Ok(sqlx::query(
            "SELECT state, COUNT(*) AS n FROM liveness_checks WHERE checked_at >= $1 \
             AND checked_at < $2 GROUP BY state",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Confirmed removals of one sighting, by episode.
    pub async fn removals_of(&self, sighting_id: i64) -> Result<Vec<RemovalRow>> {
        let rows = sqlx::query(
            "SELECT sighting_id, episode, last_live_at, first_removed_at, confirmed_at, \
             removed_state, resurfaced_at FROM removals WHERE sighting_id = $1 ORDER BY episode",
        )
        .bind(sighting_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(RemovalRow::from_row).collect()
    }

    /// Removals whose copy came back (`resurfaced_at` set), newest first.
    pub async fn resurfaced_removals(&self, limit: i64) -> Result<Vec<RemovalRow>> {
        let rows = sqlx::query(
            "SELECT sighting_id, episode, last_live_at, first_removed_at, confirmed_at, \
             removed_state, resurfaced_at FROM removals WHERE resurfaced_at IS NOT NULL \
             ORDER BY resurfaced_at DESC, sighting_id LIMIT $1",
        )
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(RemovalRow::from_row).collect()
    }

    /// The lowest and highest id of the sightings first seen in `[from, to)`
    /// (None when there are none; read from the `first_seen_at` index
    /// alone): the range [`Store::copy_rows_page`] pages through.
    pub async fn copy_id_range(&self, from: i64, to: i64) -> Result<Option<(i64, i64)>> {
        let row = sqlx::query(
            "SELECT MIN(id) AS lo, MAX(id) AS hi FROM sightings \
             WHERE first_seen_at >= $1 AND first_seen_at < $2",
        )
        .bind(from)
        .bind(to)
        .fetch_one(&self.pool)
        .await?;
        Ok(match (get_opt_i64(&row, "lo")?, get_opt_i64(&row, "hi")?) {
            (Some(lo), Some(hi)) => Some((lo, hi)),
            _ => None,
        })
    }

    /// One page (by sighting id, ids in `(after_id, last_id]`) of matched
    /// sightings first seen in `[from, to)`, with their liveness, first
    /// removal and first notice. The page walks the copies' summary rows
    /// (`spread_copies`, migration 0052: one narrow row per copy, kept
    /// equal to the raw tables by triggers) in id order, so pass the
    /// window's [`Store::copy_id_range`] as bounds.
    pub async fn copy_rows_page(
        &self,
        from: i64,
        to: i64,
        after_id: i64,
        last_id: i64,
        limit: i64,
    ) -> Result<Vec<CopyRow>> {
        // One row per page: the rows' stored JSON arrays (`packed`) joined
        // by spaces, read as a stream of JSON values. A million rows through the driver cost far more
        // (a row and its column metadata are allocated and handed between
        // threads one by one) than the database concatenating stored text
        // and Rust parsing it; building the JSON per read cost more than
        // the rest of the read.
        let agg = match self.backend {
            Backend::Sqlite => "group_concat(c.packed, ' ')",
            Backend::Postgres => "string_agg(c.packed, ' ' ORDER BY c.sighting_id)",
        };
        let sql = format!(
            "SELECT {agg} AS page FROM \
             (SELECT sighting_id, packed FROM spread_copies \
              WHERE sighting_id > $3 AND sighting_id <= $4 \
              AND first_seen_at >= $1 AND first_seen_at < $2 \
              ORDER BY sighting_id LIMIT $5) c"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .bind(after_id)
            .bind(last_id)
            .bind(limit.max(0))
            .fetch_one(&self.pool)
            .await?;
        let Some(page) = get_opt_str(&row, "page")? else {
            return Ok(Vec::new());
        };
        let packed: Vec<PackedCopy> = serde_json::Deserializer::from_str(&page)
            .into_iter::<PackedCopy>()
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| StoreError::Corrupt(format!("copy rows: {e}")))?;
        drop(page);
        // Removed as of `to`: with episode 1 alone, it decides; copies with
        // later episodes (resurfaced and removed again) read them all.
        let mut later = Vec::new();
        let mut out: Vec<CopyRow> = packed
            .into_iter()
            .map(|p| {
                if p.later_episodes > 0 {
                    later.push(p.sighting_id);
                }
                p.into_row(to)
            })
            .collect();
        out.sort_unstable_by_key(|c| c.sighting_id);
        if !later.is_empty() {
            later.sort_unstable();
            let mut at: HashMap<i64, i64> = HashMap::new();
            for chunk in later.chunks(500) {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT sighting_id, MAX(confirmed_at) AS at FROM removals \
                     WHERE sighting_id IN ({}) AND confirmed_at < $1 \
                     AND (resurfaced_at IS NULL OR resurfaced_at >= $1) GROUP BY sighting_id",
                    id_list(chunk)
                )))
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                for r in &rows {
                    at.insert(get_i64(r, "sighting_id")?, get_i64(r, "at")?);
                }
            }
            for c in &mut out {
                if later.binary_search(&c.sighting_id).is_ok() {
                    c.removed_at_end = at.get(&c.sighting_id).copied();
                }
            }
        }
        Ok(out)
    }

    /// Labels and bank of every bank item some sighting matched (items
    /// deleted since are missing).
    pub async fn matched_item_labels(&self) -> Result<Vec<ItemLabels>> {
        let rows = sqlx::query(
            "SELECT c.id, c.bank_id, c.labels FROM bank_content c WHERE c.id IN \
             (SELECT DISTINCT content_id FROM sighting_matches) ORDER BY c.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ItemLabels {
                    content_id: get_i64(r, "id")?,
                    bank_id: get_i64(r, "bank_id")?,
                    labels: get_str(r, "labels")?,
                })
            })
            .collect()
    }

    /// Variant clusters, largest first (most sightings), `limit` of them.
    pub async fn cluster_summaries(&self, limit: i64) -> Result<Vec<ClusterSummary>> {
        self.cluster_summary_query("", None, limit).await
    }

    /// One variant cluster's counts (None: no sighting matched the item).
    pub async fn cluster_summary(&self, content_id: i64) -> Result<Option<ClusterSummary>> {
        Ok(self
            .cluster_summary_query("WHERE m.content_id = $1", Some(content_id), 1)
            .await?
            .into_iter()
            .next())
    }

    async fn cluster_summary_query(
        &self,
        filter: &str,
        content_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ClusterSummary>> {
        let limit_param = if content_id.is_some() { "$2" } else { "$1" };
        let sql = format!(
            "SELECT m.content_id, COUNT(DISTINCT s.id) AS sightings, \
             COUNT(DISTINCT s.host) AS hosts, \
             COUNT(DISTINCT CASE WHEN s.platform = '' THEN s.host ELSE s.platform END) \
               AS platforms, \
             MIN(s.first_seen_at) AS first_seen_at, MAX(s.last_seen_at) AS last_seen_at, \
             COUNT(DISTINCT CASE WHEN l.status = 'removed' THEN s.id END) AS removed, \
             COUNT(DISTINCT CASE WHEN l.resurfaced > 0 THEN s.id END) AS resurfaced \
             FROM sighting_matches m JOIN sightings s ON s.id = m.sighting_id \
             LEFT JOIN liveness l ON l.sighting_id = s.id {filter} \
             GROUP BY m.content_id ORDER BY COUNT(DISTINCT s.id) DESC, m.content_id \
             LIMIT {limit_param}"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(id) = content_id {
            q = q.bind(id);
        }
        let rows = q.bind(limit.max(0)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(ClusterSummary {
                    content_id: get_i64(r, "content_id")?,
                    sightings: get_i64(r, "sightings")?,
                    hosts: get_i64(r, "hosts")?,
                    platforms: get_i64(r, "platforms")?,
                    first_seen_at: get_i64(r, "first_seen_at")?,
                    last_seen_at: get_i64(r, "last_seen_at")?,
                    removed: get_i64(r, "removed")?,
                    resurfaced: get_i64(r, "resurfaced")?,
                })
            })
            .collect()
    }

    /// Matched sightings first seen per UTC day since `since` (day start ms,
    /// count), oldest first.
    pub async fn sightings_per_day(&self, since: i64) -> Result<Vec<(i64, i64)>> {
        let rows = sqlx::query(
            "SELECT (first_seen_at / 86400000) * 86400000 AS day, COUNT(*) AS n \
             FROM sightings WHERE matched = 1 AND first_seen_at >= $1 \
             GROUP BY (first_seen_at / 86400000) ORDER BY day",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((get_i64(r, "day")?, get_i64(r, "n")?)))
            .collect()
    }

    /// Hosts with the most matched sightings: (host, sightings, removed).
    pub async fn top_hosts(&self, limit: i64) -> Result<Vec<(String, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT s.host, COUNT(*) AS n, \
             SUM(CASE WHEN l.status = 'removed' THEN 1 ELSE 0 END) AS removed \
             FROM sightings s LEFT JOIN liveness l ON l.sighting_id = s.id \
             WHERE s.matched = 1 GROUP BY s.host ORDER BY COUNT(*) DESC, s.host LIMIT $1",
        )
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    get_str(r, "host")?,
                    get_i64(r, "n")?,
                    get_opt_i64(r, "removed")?.unwrap_or(0),
                ))
            })
            .collect()
    }

    /// A stored spread setting (JSON text), e.g. `checker`.
    pub async fn get_spread_setting(&self, name: &str) -> Result<Option<(String, i64)>> {
        let row = sqlx::query("SELECT value, updated_at FROM spread_settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((get_str(&r, "value")?, get_i64(&r, "updated_at")?)))
            .transpose()
    }

    /// Store a spread setting (JSON text), replacing the previous value.
    pub async fn put_spread_setting(&self, name: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO spread_settings (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ----- notices -------------------------------------------------------

    pub async fn get_notice(&self, id: i64) -> Result<Option<NoticeRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {NOTICE_COLUMNS} FROM notices WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(NoticeRow::from_row).transpose()
    }

    /// Notices matching every filter set in `q`, newest (highest id) first.
    pub async fn list_notices(&self, q: &NoticeQuery) -> Result<Vec<NoticeRow>> {
        let mut sql = format!("SELECT {NOTICE_COLUMNS} FROM notices WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if q.platform.is_some() {
            sql.push_str(&format!(" AND platform = ${}", next()));
        }
        if q.sighting_id.is_some() {
            sql.push_str(&format!(
                " AND id IN (SELECT notice_id FROM notice_sightings WHERE sighting_id = ${})",
                next()
            ));
        }
        if q.sent_from.is_some() {
            sql.push_str(&format!(" AND sent_at >= ${}", next()));
        }
        if q.sent_to.is_some() {
            sql.push_str(&format!(" AND sent_at < ${}", next()));
        }
        if q.before_id.is_some() {
            sql.push_str(&format!(" AND id < ${}", next()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", next()));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(v) = &q.platform {
            query = query.bind(v.clone());
        }
        for v in [q.sighting_id, q.sent_from, q.sent_to, q.before_id]
            .into_iter()
            .flatten()
        {
            query = query.bind(v);
        }
        let rows = query.bind(q.limit.max(0)).fetch_all(&self.pool).await?;
        rows.iter().map(NoticeRow::from_row).collect()
    }

    /// The sightings a notice covers, by id.
    pub async fn notice_sightings(&self, notice_id: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT sighting_id FROM notice_sightings WHERE notice_id = $1 ORDER BY sighting_id",
        )
        .bind(notice_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| get_i64(r, "sighting_id")).collect()
    }

    /// Notices sent in `[from, to)`: how many, and to how many platforms.
    pub async fn notice_counts(&self, from: i64, to: i64) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COUNT(DISTINCT platform) AS p FROM notices \
             WHERE sent_at >= $1 AND sent_at < $2",
        )
        .bind(from)
        .bind(to)
        .fetch_one(&self.pool)
        .await?;
        Ok((get_i64(&row, "n")?, get_i64(&row, "p")?))
    }

    /// Notices sent in `[from, to)` per (platform, response).
    pub async fn notice_responses(&self, from: i64, to: i64) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT platform, response, COUNT(*) AS n FROM notices \
             WHERE sent_at >= $1 AND sent_at < $2 GROUP BY platform, response \
             ORDER BY platform, response",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    get_str(r, "platform")?,
                    get_str(r, "response")?,
                    get_i64(r, "n")?,
                ))
            })
            .collect()
    }
}

/// The tally's bucket width (`liveness_check_hours.hour`).
const HOUR_MS: i64 = 3_600_000;

/// The whole hours inside `[from, to)` as `[first, end)` bucket numbers
/// (None when there are none): `first * HOUR_MS >= from` and
/// `end * HOUR_MS <= to`.
fn whole_hours(from: i64, to: i64) -> Option<(i64, i64)> {
    let first = from.div_euclid(HOUR_MS) + i64::from(from.rem_euclid(HOUR_MS) != 0);
    let end = to.div_euclid(HOUR_MS);
    (first < end).then_some((first, end))
}

fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

impl WriteTx {
    /// Apply one check outcome (see the module doc). Returns false, writing
    /// nothing, when the row moved on since it was leased (another checker
    /// took over after the lease expired, and already recorded it).
    pub async fn apply_check(&mut self, w: &CheckWrite) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE liveness SET state = $3, status = $4, removed_streak = $5, checks = $6, \
             last_checked_at = $7, last_live_at = $8, first_removed_at = $9, removals = $10, \
             resurfaced = $11, anchor_at = $12, next_check_at = $13, lease_until = 0, \
             updated_at = $14 WHERE sighting_id = $1 AND checks = $2 AND lease_holder = $15",
        )
        .bind(w.sighting_id)
        .bind(w.expected_checks)
        .bind(&w.state)
        .bind(&w.status)
        .bind(w.removed_streak)
        .bind(w.expected_checks + 1)
        .bind(w.checked_at)
        .bind(w.last_live_at)
        .bind(w.first_removed_at)
        .bind(w.removals)
        .bind(w.resurfaced)
        .bind(w.anchor_at)
        .bind(w.next_check_at)
        .bind(now_ms())
        .bind(&w.holder)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO liveness_checks (sighting_id, seq, checked_at, state, http_status, \
             final_url, served_sha256, detail, via, warc_file, warc_offset, warc_length, \
             warc_record_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(w.sighting_id)
        .bind(w.expected_checks + 1)
        .bind(w.checked_at)
        .bind(&w.state)
        .bind(w.http_status)
        .bind(&w.final_url)
        .bind(&w.served_sha256)
        .bind(&w.detail)
        .bind(&w.via)
        .bind(w.warc.as_ref().map(|x| x.file.clone()))
        .bind(w.warc.as_ref().map(|x| x.offset))
        .bind(w.warc.as_ref().map(|x| x.length))
        .bind(w.warc.as_ref().map(|x| x.record_id.clone()))
        .execute(&mut *self.tx)
        .await?;
        if let Some(r) = &w.confirmed_removal {
            sqlx::query(
                "INSERT INTO removals (sighting_id, episode, last_live_at, first_removed_at, \
                 confirmed_at, removed_state, resurfaced_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(w.sighting_id)
            .bind(r.episode)
            .bind(r.last_live_at)
            .bind(r.first_removed_at)
            .bind(r.confirmed_at)
            .bind(&r.removed_state)
            .bind(r.resurfaced_at)
            .execute(&mut *self.tx)
            .await?;
        }
        if let Some(episode) = w.resurfaced_episode {
            sqlx::query(
                "UPDATE removals SET resurfaced_at = $3 WHERE sighting_id = $1 AND episode = $2 \
                 AND resurfaced_at IS NULL",
            )
            .bind(w.sighting_id)
            .bind(episode)
            .bind(w.checked_at)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(true)
    }

    /// Record a notice covering `sighting_ids` (which must exist).
    pub async fn insert_notice(
        &mut self,
        n: &NewNotice<'_>,
        sighting_ids: &[i64],
    ) -> Result<NoticeRow> {
        let now = now_ms();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO notices (platform, channel, reference, sent_at, response, note, body, \
             created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'no_response', $5, $6, $7, $8, $8) RETURNING {NOTICE_COLUMNS}"
        )))
        .bind(n.platform)
        .bind(n.channel)
        .bind(n.reference)
        .bind(n.sent_at)
        .bind(n.note)
        .bind(n.body)
        .bind(n.created_by)
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await?;
        let notice = NoticeRow::from_row(&row)?;
        let mut ids = sighting_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(500) {
            let found = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) AS n FROM sightings WHERE id IN ({})",
                id_list(chunk)
            )))
            .fetch_one(&mut *self.tx)
            .await?;
            if usize::try_from(get_i64(&found, "n")?).unwrap_or(0) != chunk.len() {
                return Err(StoreError::NotFound(
                    "a sighting named by the notice does not exist".into(),
                ));
            }
        }
        for id in ids {
            sqlx::query("INSERT INTO notice_sightings (notice_id, sighting_id) VALUES ($1, $2)")
                .bind(notice.id)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(notice)
    }

    /// Record the platform's response to a notice.
    pub async fn set_notice_response(
        &mut self,
        id: i64,
        response: &str,
        responded_at: Option<i64>,
    ) -> Result<NoticeRow> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE notices SET response = $2, responded_at = $3, updated_at = $4 WHERE id = $1 \
             RETURNING {NOTICE_COLUMNS}"
        )))
        .bind(id)
        .bind(response)
        .bind(responded_at)
        .bind(now_ms())
        .fetch_optional(&mut *self.tx)
        .await?;
        match row {
            Some(r) => NoticeRow::from_row(&r),
            None => Err(StoreError::NotFound(format!("notice {id}"))),
        }
    }
}
