//! The collector's tables (migration 0040): the durable **frontier**, the
//! per-host **politeness** slots every collector process shares, source
//! status counters, named cursors of background jobs, the operator's
//! host → platform table, and a sighting's attributes.
//!
//! * **Frontier jobs** are unique by `(source_id, url_sha256)` (the
//!   `url-canon-v1` hash), so a URL is queued once per source however often
//!   it is linked. Enqueueing a URL whose job finished before `requeue_before`
//!   queues it again (the source's revisit interval).
//! * **Leasing** moves ready jobs (`queued` and due, or `leased` with an
//!   expired lease) to `leased` under a holder and a deadline in one
//!   statement. On PostgreSQL the candidate rows are picked with
//!   `FOR UPDATE SKIP LOCKED`, so N processes on N machines never lease the
//!   same job; SQLite serialises writers (one collector process per SQLite
//!   file). A job is finished only by its current holder
//!   ([`WriteTx::finish_job`] is fenced on `lease_holder`), in the same
//!   transaction as the sightings it produced, so a kill -9 at any moment
//!   loses no queued URL and no sighting: the dead worker's jobs are leased
//!   again when their lease expires.
//! * **Host slots** (`crawl_hosts`): a request may start only when the
//!   host's `next_at` has passed; [`Store::reserve_host`] takes the slot with
//!   one conditional upsert and holds it while the fetch runs,
//!   [`Store::release_host`] sets the next slot (the politeness delay after
//!   the fetch ended).

use sqlx::any::AnyRow;

use crate::bulk::{numbered, statement_sizes, values_list, values_sql, ValueSet};
use crate::rows::{get_opt_i64, get_opt_str, get_str};
use crate::{get_i64, now_ms, Backend, Result, Store, WriteTx};

/// Job states.
pub const JOB_QUEUED: &str = "queued";
pub const JOB_LEASED: &str = "leased";
pub const JOB_DONE: &str = "done";
pub const JOB_FAILED: &str = "failed";

/// A frontier job as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontierJob {
    pub id: i64,
    pub source_id: i64,
    pub url: String,
    pub url_sha256: String,
    pub host: String,
    /// How the response is read: `page`, `feed`, `file`, `locker`.
    pub kind: String,
    /// Hops from the seed (0 = the seed itself).
    pub depth: i64,
    /// Host of the seed this job descends from (the scope rule).
    pub seed_host: String,
    /// The sighting (page, message) that linked to this URL.
    pub parent_sighting_id: Option<i64>,
    pub state: String,
    pub attempts: i64,
    pub not_before: i64,
    pub lease_holder: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub http_status: Option<i64>,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    /// The sighting the fetch produced.
    pub sighting_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const JOB_COLUMNS: &str = "id, source_id, url, url_sha256, host, kind, depth, seed_host, \
    parent_sighting_id, state, attempts, not_before, lease_holder, lease_expires_at, http_status, \
    error_kind, error, sighting_id, created_at, updated_at";

impl FrontierJob {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(FrontierJob {
            id: get_i64(r, "id")?,
            source_id: get_i64(r, "source_id")?,
            url: get_str(r, "url")?,
            url_sha256: get_str(r, "url_sha256")?,
            host: get_str(r, "host")?,
            kind: get_str(r, "kind")?,
            depth: get_i64(r, "depth")?,
            seed_host: get_str(r, "seed_host")?,
            parent_sighting_id: get_opt_i64(r, "parent_sighting_id")?,
            state: get_str(r, "state")?,
            attempts: get_i64(r, "attempts")?,
            not_before: get_i64(r, "not_before")?,
            lease_holder: get_opt_str(r, "lease_holder")?,
            lease_expires_at: get_opt_i64(r, "lease_expires_at")?,
            http_status: get_opt_i64(r, "http_status")?,
            error_kind: get_opt_str(r, "error_kind")?,
            error: get_opt_str(r, "error")?,
            sighting_id: get_opt_i64(r, "sighting_id")?,
            created_at: get_i64(r, "created_at")?,
            updated_at: get_i64(r, "updated_at")?,
        })
    }
}

/// Input for [`WriteTx::enqueue_jobs`].
#[derive(Clone, Debug)]
pub struct NewJob<'a> {
    pub source_id: i64,
    pub url: &'a str,
    pub url_sha256: &'a str,
    pub host: &'a str,
    pub kind: &'a str,
    pub depth: i64,
    pub seed_host: &'a str,
    pub parent_sighting_id: Option<i64>,
    pub not_before: i64,
}

/// How a leased job ended, for [`WriteTx::finish_job`].
#[derive(Clone, Debug, Default)]
pub struct JobOutcome<'a> {
    /// [`JOB_DONE`], [`JOB_FAILED`], or [`JOB_QUEUED`] (retry at `not_before`).
    pub state: &'a str,
    pub not_before: i64,
    pub http_status: Option<i64>,
    pub error_kind: Option<&'a str>,
    pub error: Option<&'a str>,
    pub sighting_id: Option<i64>,
}

/// Job counts of one source (or all).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrontierCounts {
    pub queued: i64,
    pub leased: i64,
    pub done: i64,
    pub failed: i64,
    /// Queued jobs due now, plus leased jobs whose lease expired.
    pub ready: i64,
    /// Earliest `not_before` of a queued job not yet due.
    pub next_due_at: Option<i64>,
    /// Earliest lease expiry of a leased job.
    pub next_lease_expiry: Option<i64>,
}

/// The collector's status columns of a source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceStatusRow {
    pub source_id: i64,
    pub last_run_at: Option<i64>,
    /// `''` (never run), `running`, `done`, `failed`.
    pub last_run_status: String,
    pub items_total: i64,
    pub errors_total: i64,
    pub politeness_waits: i64,
    pub politeness_wait_ms: i64,
    pub last_error: Option<String>,
}

impl SourceStatusRow {
    fn from_row(r: &AnyRow) -> Result<Self> {
        Ok(SourceStatusRow {
            source_id: get_i64(r, "id")?,
            last_run_at: get_opt_i64(r, "last_run_at")?,
            last_run_status: get_str(r, "last_run_status")?,
            items_total: get_i64(r, "items_total")?,
            errors_total: get_i64(r, "errors_total")?,
            politeness_waits: get_i64(r, "politeness_waits")?,
            politeness_wait_ms: get_i64(r, "politeness_wait_ms")?,
            last_error: get_opt_str(r, "last_error")?,
        })
    }
}

/// Increments of a source's counters ([`WriteTx::add_source_stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceStatsDelta {
    pub items: i64,
    pub errors: i64,
    pub politeness_waits: i64,
    pub politeness_wait_ms: i64,
    /// Replaces `last_error` when set.
    pub last_error: Option<String>,
}

impl SourceStatsDelta {
    pub fn is_empty(&self) -> bool {
        self.items == 0
            && self.errors == 0
            && self.politeness_waits == 0
            && self.politeness_wait_ms == 0
            && self.last_error.is_none()
    }
}

/// What [`WriteTx::upsert_sightings_bulk`] found or made for one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpsertedSighting {
    pub id: i64,
    /// False when the same bytes at the same URL were recorded before.
    pub is_new: bool,
    pub matched: bool,
    pub submission_id: Option<i64>,
}

/// Rows per multi-row `INSERT` of sightings (19 parameters each), and per
/// `SELECT` of sightings by key (whose `OR` chain SQLite parses as an
/// expression tree as deep as its terms: at most 1,000 deep).
const SIGHTING_ROWS_PER_STATEMENT: usize = 400;

/// Whether the last SQLite sighting upsert met keys already recorded: the
/// next one then selects its keys before inserting (see
/// [`WriteTx::upsert_sightings_bulk`]). A hint only, shared by the process:
/// either order records the same rows.
static SIGHTINGS_SEEN_AGAIN: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Rows per multi-row `INSERT` of sightings on SQLite (19 parameters each,
/// 19,000 of SQLite's 32,766). Within a transaction SQLite copies every
/// existing page a statement changes into a statement journal first, once
/// per statement: the hash-keyed indexes take a random leaf per row, so
/// fewer, larger statements copy each such leaf fewer times.
const SQLITE_SIGHTING_INSERT_ROWS: usize = 1000;

/// One multi-row `INSERT … ON CONFLICT DO NOTHING` of sightings (with
/// `RETURNING id, url_sha256, content_sha256` when `returning`).
fn sighting_insert<'q>(
    backend: Backend,
    rows: &[&'q (crate::NewSighting<'q>, Option<&'q str>)],
    now: i64,
    returning: bool,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    // Anonymous `?` parameters, bound in order (see `bulk`): the sighting
    // time is bound twice per row (first and last seen).
    let mut sql = values_list(
        "INSERT INTO sightings (source_id, url, url_canonical, url_sha256, host, platform, \
         parent_id, content_sha256, media_type, warc_file, warc_offset, warc_length, \
         warc_record_id, first_seen_at, last_seen_at, expires_at, attributes, matched, \
         created_at, implied_signals) VALUES ",
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
        rows.len(),
    );
    sql.push_str(&format!(
        " ON CONFLICT (({})) DO NOTHING",
        crate::sighting::key_sql(backend)
    ));
    if returning {
        sql.push_str(" RETURNING id, url_sha256, content_sha256");
    }
    let mut q = sqlx::query(sqlx::AssertSqlSafe(numbered(backend, &sql)));
    for (s, attrs) in rows {
        q = s
            .bind_identity(q)
            .bind(s.seen_at)
            .bind(s.seen_at)
            .bind(s.expires_at)
            .bind(attrs.unwrap_or("{}"))
            .bind(now)
            .bind(s.implied_signals);
    }
    q
}

/// Rows per multi-row `INSERT` of jobs (9 parameters each).
const JOB_ROWS_PER_STATEMENT: usize = 400;

impl Store {
    /// Lease up to `limit` ready jobs for `holder` until `now + lease_ms`:
    /// queued jobs due at `now`, and leased jobs whose lease expired (their
    /// worker died). With `hosts_ready`, only jobs whose host slot is free
    /// at `now` (politeness). Oldest first.
    pub async fn lease_jobs(
        &self,
        holder: &str,
        limit: i64,
        lease_ms: i64,
        hosts_ready: bool,
    ) -> Result<Vec<FrontierJob>> {
        let now = now_ms();
        let host_clause = if hosts_ready {
            " AND NOT EXISTS (SELECT 1 FROM crawl_hosts h WHERE h.host = f.host AND h.next_at > $3)"
        } else {
            ""
        };
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE frontier SET state = 'leased', lease_holder = $1, lease_expires_at = $2, \
             attempts = attempts + 1, updated_at = $3 WHERE id IN (SELECT f.id FROM frontier f \
             WHERE ((f.state = 'queued' AND f.not_before <= $3) \
             OR (f.state = 'leased' AND f.lease_expires_at < $3)){host_clause} \
             ORDER BY f.id LIMIT $4{lock}) RETURNING {JOB_COLUMNS}"
        );
        let mut tx = self.write().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(holder)
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .bind(limit.max(0))
            .fetch_all(&mut *tx.tx)
            .await?;
        tx.commit().await?;
        let mut jobs = rows
            .iter()
            .map(FrontierJob::from_row)
            .collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    /// Give a leased job back without counting the attempt (its host was
    /// not ready): queued again, due at `not_before`. False when `holder`
    /// no longer holds it.
    pub async fn defer_job(&self, id: i64, holder: &str, not_before: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE frontier SET state = 'queued', lease_holder = NULL, lease_expires_at = NULL, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, not_before = $3, \
             updated_at = $4 WHERE id = $1 AND state = 'leased' AND lease_holder = $2",
        )
        .bind(id)
        .bind(holder)
        .bind(not_before)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Extend the leases `holder` holds on `ids` to `now + lease_ms`.
    pub async fn renew_jobs(&self, ids: &[i64], holder: &str, lease_ms: i64) -> Result<u64> {
        let mut n = 0;
        let until = now_ms().saturating_add(lease_ms);
        for chunk in ids.chunks(1000) {
            let set = ValueSet::new(self.backend, "id", 3, chunk.len());
            let sql = numbered(
                self.backend,
                &format!(
                    "UPDATE frontier SET lease_expires_at = ?{} WHERE state = 'leased' \
                     AND lease_holder = ? AND {}",
                    set.update_from(),
                    set.cond
                ),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(until)
                .bind(holder);
            for id in chunk {
                q = q.bind(*id);
            }
            n += q.execute(&self.pool).await?.rows_affected();
        }
        Ok(n)
    }

    pub async fn get_job(&self, id: i64) -> Result<Option<FrontierJob>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM frontier WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(FrontierJob::from_row).transpose()
    }

    /// Jobs of a source (any source when `None`), optionally in one state,
    /// ascending id after `after_id`.
    pub async fn list_jobs(
        &self,
        source_id: Option<i64>,
        state: Option<&str>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<FrontierJob>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM frontier WHERE ($1 IS NULL OR source_id = $1) \
             AND ($2 IS NULL OR state = $2) AND id > $3 ORDER BY id LIMIT $4"
        )))
        .bind(source_id)
        .bind(state)
        .bind(after_id)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(FrontierJob::from_row).collect()
    }

    /// Job counts of a source (every source when `None`).
    pub async fn frontier_counts(&self, source_id: Option<i64>) -> Result<FrontierCounts> {
        let now = now_ms();
        let row = sqlx::query(
            "SELECT \
             COALESCE(SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END), 0) AS queued, \
             COALESCE(SUM(CASE WHEN state = 'leased' THEN 1 ELSE 0 END), 0) AS leased, \
             COALESCE(SUM(CASE WHEN state = 'done' THEN 1 ELSE 0 END), 0) AS done, \
             COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0) AS failed, \
             COALESCE(SUM(CASE WHEN (state = 'queued' AND not_before <= $2) \
               OR (state = 'leased' AND lease_expires_at < $2) THEN 1 ELSE 0 END), 0) AS ready, \
             MIN(CASE WHEN state = 'queued' AND not_before > $2 THEN not_before END) AS next_due, \
             MIN(CASE WHEN state = 'leased' THEN lease_expires_at END) AS next_expiry \
             FROM frontier WHERE ($1 IS NULL OR source_id = $1)",
        )
        .bind(source_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(FrontierCounts {
            queued: get_i64(&row, "queued")?,
            leased: get_i64(&row, "leased")?,
            done: get_i64(&row, "done")?,
            failed: get_i64(&row, "failed")?,
            ready: get_i64(&row, "ready")?,
            next_due_at: get_opt_i64(&row, "next_due")?,
            next_lease_expiry: get_opt_i64(&row, "next_expiry")?,
        })
    }

    // ----- politeness ----------------------------------------------------

    /// Take `host`'s request slot for `holder` if it is free at `now`,
    /// holding it until `now + hold_ms` (the fetch's deadline): `Ok(None)`.
    /// Otherwise `Ok(Some(next_at))`, when the slot frees up.
    pub async fn reserve_host(
        &self,
        host: &str,
        holder: &str,
        hold_ms: i64,
    ) -> Result<Option<i64>> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO crawl_hosts (host, next_at, holder, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (host) DO UPDATE SET next_at = excluded.next_at, \
             holder = excluded.holder, updated_at = excluded.updated_at \
             WHERE crawl_hosts.next_at <= excluded.updated_at RETURNING next_at",
        )
        .bind(host)
        .bind(now.saturating_add(hold_ms.max(0)))
        .bind(holder)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if row.is_some() {
            return Ok(None);
        }
        let row = sqlx::query("SELECT next_at FROM crawl_hosts WHERE host = $1")
            .bind(host)
            .fetch_optional(&self.pool)
            .await?;
        Ok(Some(match row {
            Some(r) => get_i64(&r, "next_at")?.max(now),
            None => now,
        }))
    }

    /// End `holder`'s hold on `host`: the next request may start at
    /// `next_at`. No-op when another holder took the slot meanwhile.
    pub async fn release_host(&self, host: &str, holder: &str, next_at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE crawl_hosts SET next_at = $3, updated_at = $4 WHERE host = $1 AND holder = $2",
        )
        .bind(host)
        .bind(holder)
        .bind(next_at)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ----- source status, cursors, platforms, attributes -------------------

    /// The status columns of every source, by source id.
    pub async fn source_statuses(&self) -> Result<Vec<SourceStatusRow>> {
        let rows = sqlx::query(
            "SELECT id, last_run_at, last_run_status, items_total, errors_total, \
             politeness_waits, politeness_wait_ms, last_error FROM sources ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SourceStatusRow::from_row).collect()
    }

    /// A named cursor's value (0 when never set).
    pub async fn cursor(&self, name: &str) -> Result<i64> {
        let row = sqlx::query("SELECT value FROM collector_cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| get_i64(&r, "value"))
            .transpose()
            .map(|v| v.unwrap_or(0))
    }

    /// The operator's host → platform entries, by host.
    pub async fn host_platforms(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT host, platform FROM host_platforms ORDER BY host")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((get_str(r, "host")?, get_str(r, "platform")?)))
            .collect()
    }

    /// Sightings of one canonical URL (by its `url_sha256`), newest first.
    ///
    /// The unique key index serves it: every key of the URL starts with its
    /// 32 digest bytes, so lies between those bytes alone (the key of the
    /// URL without bytes) and those bytes followed by 32 bytes of `ff`.
    pub async fn sightings_at_url(&self, url_sha256: &str, limit: i64) -> Result<Vec<i64>> {
        let sql = format!(
            "SELECT id FROM sightings WHERE {key} BETWEEN {low} AND {high} AND url_sha256 = $1 \
             ORDER BY id DESC LIMIT $2",
            key = crate::sighting::key_sql(self.backend),
            low = crate::sighting::decoded(self.backend, "$1"),
            high = crate::sighting::decoded(self.backend, "$1 || $3"),
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(url_sha256)
            .bind(limit.max(0))
            .bind("f".repeat(64))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| get_i64(r, "id")).collect()
    }

    /// A sighting's attributes (JSON text; `{}` when none).
    pub async fn sighting_attributes(&self, sighting_id: i64) -> Result<String> {
        let row = sqlx::query("SELECT attributes FROM sightings WHERE id = $1")
            .bind(sighting_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| get_str(&r, "attributes"))
            .transpose()
            .map(|v| v.unwrap_or_else(|| "{}".to_string()))
    }

    /// The signals of some sighting of exactly these bytes (content dedup),
    /// stored and rebuilt ([`Store::sighting_signals`]), or `None` when no
    /// sighting of them has signals.
    pub async fn signals_of_content_sha(
        &self,
        content_sha256: &str,
    ) -> Result<Option<Vec<(String, String)>>> {
        if content_sha256.is_empty() {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT s.id FROM sightings s WHERE substr(s.content_sha256, 1, 8) = substr($1, 1, 8) \
             AND s.content_sha256 <> '' AND s.content_sha256 = $1 AND (s.implied_signals <> 0 \
             OR EXISTS (SELECT 1 FROM sighting_signals g WHERE g.sighting_id = s.id)) LIMIT 1",
        )
        .bind(content_sha256)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id = get_i64(&row, "id")?;
        Ok(Some(
            self.sighting_signals(id)
                .await?
                .into_iter()
                .map(|s| (s.signal_type, s.value))
                .collect(),
        ))
    }
}

impl WriteTx {
    /// Queue jobs (deduplicated by source and canonical URL). A job that
    /// already exists is left alone, unless it finished (done or failed)
    /// before `requeue_before`: then it is queued again. Returns how many
    /// jobs were queued (new or re-queued).
    pub async fn enqueue_jobs(&mut self, jobs: &[NewJob<'_>], requeue_before: i64) -> Result<u64> {
        let now = now_ms();
        let mut queued = 0;
        // One statement may not touch a row twice (PostgreSQL refuses it):
        // keep the first job of each (source, URL).
        let mut seen = std::collections::HashSet::with_capacity(jobs.len());
        let jobs: Vec<&NewJob<'_>> = jobs
            .iter()
            .filter(|j| seen.insert((j.source_id, j.url_sha256)))
            .collect();
        for chunk in jobs.chunks(JOB_ROWS_PER_STATEMENT) {
            // Anonymous `?` parameters, bound in order (see `bulk`): the
            // creation time is bound twice per row.
            let mut sql = values_list(
                "INSERT INTO frontier (source_id, url, url_sha256, host, kind, depth, seed_host, \
                 parent_sighting_id, not_before, state, attempts, created_at, updated_at) VALUES ",
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?)",
                chunk.len(),
            );
            sql.push_str(
                " ON CONFLICT (source_id, url_sha256) DO UPDATE SET state = 'queued', \
                 attempts = 0, not_before = excluded.not_before, depth = excluded.depth, \
                 parent_sighting_id = COALESCE(excluded.parent_sighting_id, \
                 frontier.parent_sighting_id), lease_holder = NULL, lease_expires_at = NULL, \
                 error_kind = NULL, error = NULL, updated_at = excluded.updated_at \
                 WHERE frontier.state IN ('done', 'failed') AND frontier.updated_at < ?",
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(numbered(self.backend, &sql)));
            for j in chunk {
                q = q
                    .bind(j.source_id)
                    .bind(j.url)
                    .bind(j.url_sha256)
                    .bind(j.host)
                    .bind(j.kind)
                    .bind(j.depth)
                    .bind(j.seed_host)
                    .bind(j.parent_sighting_id)
                    .bind(j.not_before)
                    .bind(now)
                    .bind(now);
            }
            queued += q
                .bind(requeue_before)
                .execute(&mut *self.tx)
                .await?
                .rows_affected();
        }
        Ok(queued)
    }

    /// Finish a job `holder` leased: done, failed, or queued again for a
    /// retry at `outcome.not_before`. Returns false (and changes nothing)
    /// when `holder` no longer holds the lease — another worker took the job
    /// over after the lease expired, and its result counts instead.
    pub async fn finish_job(
        &mut self,
        id: i64,
        holder: &str,
        outcome: &JobOutcome<'_>,
    ) -> Result<bool> {
        Ok(self.finish_jobs(holder, &[(id, outcome.clone())]).await? == 1)
    }

    /// [`WriteTx::finish_job`] for many jobs at once (each id at most
    /// once): one `UPDATE … FROM` a `VALUES` list per 400 jobs. Returns how
    /// many `holder` still held (and finished).
    pub async fn finish_jobs(
        &mut self,
        holder: &str,
        jobs: &[(i64, JobOutcome<'_>)],
    ) -> Result<u64> {
        let now = now_ms();
        let mut finished = 0;
        for chunk in jobs.chunks(JOB_ROWS_PER_STATEMENT) {
            // Casts: a column of NULLs in a VALUES list still gets a type
            // on PostgreSQL.
            let mut sql = values_list(
                "WITH done(id, state, not_before, http_status, error_kind, error, sighting_id) \
                 AS (VALUES ",
                "(CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT), \
                 CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT))",
                chunk.len(),
            );
            sql.push_str(
                ") UPDATE frontier SET state = done.state, not_before = done.not_before, \
                 http_status = done.http_status, error_kind = done.error_kind, \
                 error = done.error, sighting_id = COALESCE(done.sighting_id, frontier.sighting_id), \
                 lease_holder = NULL, lease_expires_at = NULL, updated_at = ? FROM done \
                 WHERE frontier.id = done.id AND frontier.state = 'leased' \
                 AND frontier.lease_holder = ?",
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(numbered(self.backend, &sql)));
            for (id, o) in chunk {
                q = q
                    .bind(*id)
                    .bind(o.state)
                    .bind(o.not_before)
                    .bind(o.http_status)
                    .bind(o.error_kind)
                    .bind(o.error)
                    .bind(o.sighting_id);
            }
            finished += q
                .bind(now)
                .bind(holder)
                .execute(&mut *self.tx)
                .await?
                .rows_affected();
        }
        Ok(finished)
    }

    /// Does `holder` still hold job `id`? On PostgreSQL the row stays locked
    /// until this transaction ends (a fence for work committed with it).
    pub async fn holds_job(&mut self, id: i64, holder: &str) -> Result<bool> {
        let sql = match self.backend {
            Backend::Postgres => {
                "SELECT id FROM frontier WHERE id = $1 AND state = 'leased' AND lease_holder = $2 \
                 FOR UPDATE"
            }
            Backend::Sqlite => {
                "SELECT id FROM frontier WHERE id = $1 AND state = 'leased' AND lease_holder = $2"
            }
        };
        let row = sqlx::query(sql)
            .bind(id)
            .bind(holder)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.is_some())
    }

    /// Mark a source's run as started (`running`, now).
    pub async fn source_run_started(&mut self, source_id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE sources SET last_run_at = $2, last_run_status = 'running' WHERE id = $1",
        )
        .bind(source_id)
        .bind(now_ms())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Set a source's run status (`done`, `failed`).
    pub async fn source_run_finished(&mut self, source_id: i64, status: &str) -> Result<()> {
        sqlx::query("UPDATE sources SET last_run_status = $2 WHERE id = $1")
            .bind(source_id)
            .bind(status)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Add to a source's counters.
    pub async fn add_source_stats(&mut self, source_id: i64, d: &SourceStatsDelta) -> Result<()> {
        if d.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE sources SET items_total = items_total + $2, errors_total = errors_total + $3, \
             politeness_waits = politeness_waits + $4, \
             politeness_wait_ms = politeness_wait_ms + $5, \
             last_error = COALESCE($6, last_error) WHERE id = $1",
        )
        .bind(source_id)
        .bind(d.items)
        .bind(d.errors)
        .bind(d.politeness_waits)
        .bind(d.politeness_wait_ms)
        .bind(d.last_error.clone())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Set a named cursor.
    pub async fn set_cursor(&mut self, name: &str, value: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO collector_cursors (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(now_ms())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Add or replace a host → platform entry.
    pub async fn set_host_platform(&mut self, host: &str, platform: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO host_platforms (host, platform, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (host) DO UPDATE SET platform = excluded.platform",
        )
        .bind(host)
        .bind(platform)
        .bind(now_ms())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Remove a host → platform entry; false when there was none.
    pub async fn delete_host_platform(&mut self, host: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM host_platforms WHERE host = $1")
            .bind(host)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Record many sightings at once, with the semantics of
    /// [`WriteTx::upsert_sighting`] (unique by URL and bytes; an existing one
    /// only moves `last_seen_at` forward) and their attributes (JSON text,
    /// stored on new rows). Results are in input order; two inputs with the
    /// same key get the same row.
    ///
    /// PostgreSQL: one multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING`
    /// per 400 rows, then one `SELECT` for the rows that existed (another
    /// transaction may insert the same key meanwhile). SQLite: the write
    /// transaction is `BEGIN IMMEDIATE`, so no other writer can add a row
    /// while it runs. Every distinct key is inserted (`ON CONFLICT DO
    /// NOTHING`) without `RETURNING` (a returned row is one message from the
    /// database thread each) and, when every row of a statement was new, the
    /// ids are read back as the range ending at `last_insert_rowid()` — a
    /// multi-row `INSERT` numbers its rows in order — checked at both ends.
    /// Otherwise (some keys existed, or the check fails) the statement's keys
    /// are selected, and a row is new when its id is above the table's
    /// largest id before this call (`AUTOINCREMENT` never reuses one). A
    /// batch of new keys (an import) is not looked up before it is inserted:
    /// the unique index is probed once, by the insert. When the previous
    /// call met known keys (a crawl seeing its outlinks again), the keys are
    /// selected first and only the rest inserted, as a statement with known
    /// keys would otherwise be both inserted and selected.
    pub async fn upsert_sightings_bulk<'k>(
        &mut self,
        items: &[(crate::NewSighting<'k>, Option<&str>)],
    ) -> Result<Vec<UpsertedSighting>> {
        use std::collections::HashMap;
        for (s, _) in items {
            s.check_key()?;
        }
        let now = now_ms();
        // Keyed by the inputs' own (URL, content) hashes: no copy per item.
        let mut found: HashMap<(&'k str, &'k str), UpsertedSighting> =
            HashMap::with_capacity(items.len());
        if self.backend == Backend::Sqlite {
            let mut seen = std::collections::HashSet::new();
            let distinct: Vec<&(crate::NewSighting<'k>, Option<&str>)> = items
                .iter()
                .filter(|(s, _)| seen.insert((s.url_sha256, s.content_sha256)))
                .collect();
            // Ids above this one are rows this call inserts.
            let before: i64 = if distinct.is_empty() {
                0
            } else {
                sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM sightings")
                    .fetch_one(&mut *self.tx)
                    .await?
            };
            // Where the last call met known keys (a crawl seeing outlinks
            // again), they are selected first: inserted first, a statement
            // with known keys would be inserted and then selected both.
            let select_first = SIGHTINGS_SEEN_AGAIN.load(std::sync::atomic::Ordering::Relaxed);
            let mut met_known = false;
            let distinct = if select_first && !distinct.is_empty() {
                let keys: Vec<&crate::NewSighting<'k>> = distinct.iter().map(|(s, _)| s).collect();
                self.select_sightings_into(&keys, before, &mut found)
                    .await?;
                met_known = !found.is_empty();
                distinct
                    .into_iter()
                    .filter(|(s, _)| !found.contains_key(&(s.url_sha256, s.content_sha256)))
                    .collect()
            } else {
                distinct
            };
            for range in statement_sizes(distinct.len(), SQLITE_SIGHTING_INSERT_ROWS) {
                let rows = &distinct[range];
                let q = sighting_insert(self.backend, rows, now, false);
                q.execute(&mut *self.tx).await?;
                let n = rows.len() as i64;
                let ends = sqlx::query(
                    "SELECT id, url_sha256, content_sha256, changes() AS n FROM sightings \
                     WHERE id = last_insert_rowid() OR id = last_insert_rowid() - ?",
                )
                .bind(n - 1)
                .fetch_all(&mut *self.tx)
                .await?;
                let mut ok = ends.len() == if n == 1 { 1 } else { 2 };
                let mut last = None;
                for r in &ends {
                    ok &= get_i64(r, "n")? == n;
                    let id = get_i64(r, "id")?;
                    last = Some(last.map_or(id, |l: i64| l.max(id)));
                }
                if let (true, Some(last)) = (ok, last) {
                    let first = last - (n - 1);
                    for r in &ends {
                        let id = get_i64(r, "id")?;
                        let (s, _) = if id == last {
                            rows[rows.len() - 1]
                        } else {
                            rows[0]
                        };
                        ok &= first > before
                            && get_str(r, "url_sha256")? == s.url_sha256
                            && get_str(r, "content_sha256")? == s.content_sha256;
                    }
                    if ok {
                        for (i, (s, _)) in rows.iter().enumerate() {
                            found.insert(
                                (s.url_sha256, s.content_sha256),
                                UpsertedSighting {
                                    id: first + i as i64,
                                    is_new: true,
                                    matched: false,
                                    submission_id: None,
                                },
                            );
                        }
                        continue;
                    }
                }
                // Some keys existed (or the range did not check out): read
                // the statement's rows back by key.
                met_known = true;
                let keys: Vec<&crate::NewSighting<'k>> = rows.iter().map(|(s, _)| s).collect();
                self.select_sightings_into(&keys, before, &mut found)
                    .await?;
            }
            SIGHTINGS_SEEN_AGAIN.store(met_known, std::sync::atomic::Ordering::Relaxed);
        } else {
            for chunk in items.chunks(SIGHTING_ROWS_PER_STATEMENT) {
                let rows: Vec<&(crate::NewSighting<'k>, Option<&str>)> = chunk.iter().collect();
                let index: HashMap<(&str, &str), usize> = rows
                    .iter()
                    .enumerate()
                    .map(|(i, (s, _))| ((s.url_sha256, s.content_sha256), i))
                    .collect();
                let q = sighting_insert(self.backend, &rows, now, true);
                for r in &q.fetch_all(&mut *self.tx).await? {
                    let (u, c) = (get_str(r, "url_sha256")?, get_str(r, "content_sha256")?);
                    let Some(&i) = index.get(&(u.as_str(), c.as_str())) else {
                        continue;
                    };
                    found.insert(
                        (rows[i].0.url_sha256, rows[i].0.content_sha256),
                        UpsertedSighting {
                            id: get_i64(r, "id")?,
                            is_new: true,
                            matched: false,
                            submission_id: None,
                        },
                    );
                }
            }
            // The rows that already existed (or another transaction inserted).
            let missing: Vec<&crate::NewSighting<'k>> = {
                let mut seen = std::collections::HashSet::new();
                items
                    .iter()
                    .map(|(s, _)| s)
                    .filter(|s| {
                        !found.contains_key(&(s.url_sha256, s.content_sha256))
                            && seen.insert((s.url_sha256, s.content_sha256))
                    })
                    .collect()
            };
            self.select_sightings_into(&missing, i64::MAX, &mut found)
                .await?;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut first_use = std::collections::HashSet::new();
        // Sightings seen again: the latest time each was seen in this batch.
        let mut seen_again: HashMap<i64, i64> = HashMap::new();
        for (s, _) in items {
            let key = (s.url_sha256, s.content_sha256);
            let Some(mut u) = found.get(&key).cloned() else {
                return Err(crate::StoreError::NotFound(
                    "sighting vanished during upsert".into(),
                ));
            };
            if !first_use.insert(key) {
                u.is_new = false;
            }
            if !u.is_new {
                let at = seen_again.entry(u.id).or_insert(s.seen_at);
                *at = (*at).max(s.seen_at);
            }
            out.push(u);
        }
        let mut moved: Vec<(i64, i64)> = seen_again.into_iter().collect();
        moved.sort_unstable();
        self.move_last_seen(&moved).await?;
        Ok(out)
    }

    /// Read the sightings with these keys (URL and content SHA-256) into
    /// `found`; those with an id above `new_above` are new.
    async fn select_sightings_into<'k>(
        &mut self,
        keys: &[&crate::NewSighting<'k>],
        new_above: i64,
        found: &mut std::collections::HashMap<(&'k str, &'k str), UpsertedSighting>,
    ) -> Result<()> {
        for range in statement_sizes(keys.len(), SIGHTING_ROWS_PER_STATEMENT) {
            let chunk = &keys[range];
            let index: std::collections::HashMap<(&str, &str), usize> = chunk
                .iter()
                .enumerate()
                .map(|(i, s)| ((s.url_sha256, s.content_sha256), i))
                .collect();
            let mut sql = format!(
                "SELECT id, url_sha256, content_sha256, matched, submission_id, last_seen_at \
                 FROM sightings WHERE {} IN (",
                crate::sighting::key_sql(self.backend)
            );
            let value = crate::sighting::decoded(self.backend, "?");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&value);
            }
            sql.push(')');
            let mut q = sqlx::query(sqlx::AssertSqlSafe(numbered(self.backend, &sql)));
            for s in chunk {
                q = q.bind(format!("{}{}", s.url_sha256, s.content_sha256));
            }
            for r in &q.fetch_all(&mut *self.tx).await? {
                let id = get_i64(r, "id")?;
                let (u, c) = (get_str(r, "url_sha256")?, get_str(r, "content_sha256")?);
                let Some(&i) = index.get(&(u.as_str(), c.as_str())) else {
                    continue;
                };
                found.insert(
                    (chunk[i].url_sha256, chunk[i].content_sha256),
                    UpsertedSighting {
                        id,
                        is_new: id > new_above,
                        matched: crate::rows::get_bool(r, "matched")?,
                        submission_id: get_opt_i64(r, "submission_id")?,
                    },
                );
            }
        }
        Ok(())
    }

    /// Move `last_seen_at` of sightings forward, to `(id, seen_at)` (one id
    /// at most once): one `UPDATE … FROM` a `VALUES` list per 400 ids.
    async fn move_last_seen(&mut self, moved: &[(i64, i64)]) -> Result<()> {
        for range in statement_sizes(moved.len(), SIGHTING_ROWS_PER_STATEMENT) {
            let chunk = &moved[range];
            let mut sql = values_list("WITH seen(id, at) AS (VALUES ", "(?, ?)", chunk.len());
            sql.push_str(
                ") UPDATE sightings SET last_seen_at = seen.at FROM seen \
                 WHERE sightings.id = seen.id AND sightings.last_seen_at < seen.at",
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(numbered(self.backend, &sql)));
            for (id, at) in chunk {
                q = q.bind(*id).bind(*at);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Which of `ids` `holder` still holds (leased). On PostgreSQL those rows
    /// stay locked until this transaction ends.
    pub async fn held_jobs(&mut self, ids: &[i64], holder: &str) -> Result<Vec<i64>> {
        let mut held = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1000) {
            let set = ValueSet::new(self.backend, "id", 2, chunk.len());
            let mut sql = format!(
                "SELECT id FROM frontier{} WHERE state = 'leased' AND lease_holder = ? AND {}",
                set.select_from(),
                set.cond
            );
            if self.backend == Backend::Postgres {
                sql.push_str(" ORDER BY id FOR UPDATE OF frontier");
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(numbered(self.backend, &sql))).bind(holder);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in &q.fetch_all(&mut *self.tx).await? {
                held.push(get_i64(r, "id")?);
            }
        }
        Ok(held)
    }

    /// Store a sighting's attributes (JSON text).
    pub async fn set_sighting_attributes(&mut self, sighting_id: i64, json: &str) -> Result<()> {
        sqlx::query("UPDATE sightings SET attributes = $2 WHERE id = $1")
            .bind(sighting_id)
            .bind(json)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Store the signals of many sightings (hashes only) in multi-row
    /// `INSERT`s: `(sighting_id, signal_type, value)`.
    pub async fn insert_sighting_signals_bulk(&mut self, rows: &[(i64, &str, &str)]) -> Result<()> {
        for range in statement_sizes(rows.len(), 1000) {
            let chunk = &rows[range];
            let sql = values_sql(
                self.backend,
                "INSERT INTO sighting_signals (sighting_id, signal_type, value) VALUES ",
                "(?, ?, ?)",
                chunk.len(),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, t, v) in chunk {
                q = q.bind(*id).bind(*t).bind(*v);
            }
            q.execute(&mut *self.tx).await?;
        }
        Ok(())
    }
}
