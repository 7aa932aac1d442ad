//! Queries behind the review console (`/ui`): login sessions, per-user
//! settings, retained media, and the read-only aggregates the dashboard and
//! queue need (status counts, matches per day, top banks and labels, signal
//! counts per type, filtered audit log).
//!
//! Design decisions:
//!
//! * These run straight on the store's pool (schema v2, `0002_console.sql`)
//!   so the console adds no methods to the matching hot path.
//! * **Sessions**: the browser holds 32 random bytes (base64url); the table
//!   holds only their SHA-256, so reading the database does not let anyone
//!   take over a session. Each session carries its own CSRF token
//!   (synchroniser-token pattern), rotated with the session at login.
//! * **Retained media** is opt-in per deployment (hashing only by default).
//!   It is keyed by owner (`submission` or `content`) and id, and size-capped.
//! * Every function here takes already-authorised input; role checks live
//!   in the server's console layer.

use std::collections::BTreeMap;

use echotrace_store::{now_ms, Store};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::auth::{hex_lower, random_bytes, Role};
use crate::error::{EngineError, Result};

/// Largest retained media item, bytes (bigger uploads are not retained).
pub const MAX_RETAINED_BYTES: usize = 8 * 1024 * 1024;

fn db(e: sqlx::Error) -> EngineError {
    EngineError::Internal(format!("console query: {e}"))
}

fn col<'r, T>(row: &'r sqlx::any::AnyRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get::<T, _>(name)
        .map_err(|e| EngineError::Internal(format!("console column {name}: {e}")))
}

/// URL-safe base64 without padding (for session ids and CSRF tokens).
fn b64url(bytes: &[u8]) -> String {
    const ALPHA: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = ((n >> (18 - 6 * i)) & 63) as usize;
            out.push(char::from(ALPHA[idx]));
        }
    }
    out
}

/// A fresh random token: 32 bytes from the OS, base64url (43 chars).
pub fn random_token() -> Result<String> {
    let mut raw = [0u8; 32];
    random_bytes(&mut raw)?;
    Ok(b64url(&raw))
}

/// Stored form of a session id.
pub fn hash_session_id(id: &str) -> String {
    hex_lower(&Sha256::digest(id.as_bytes()))
}

/// Constant-time string equality (CSRF token check).
pub fn tokens_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A console user as the console sees it (no password hash).
#[derive(Clone, Debug, PartialEq)]
pub struct ConsoleUser {
    pub id: i64,
    pub username: String,
    pub role: Role,
}

/// A live session: its user and CSRF token.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub user: ConsoleUser,
    pub csrf_token: String,
    pub expires_at: i64,
}

/// Check a username/password against the users table (argon2). Disabled
/// users and unknown names fail the same way, after similar work.
pub async fn verify_login(
    store: &Store,
    username: &str,
    password: &str,
) -> Result<Option<ConsoleUser>> {
    let row = store.user_by_name(username).await?;
    match row {
        Some(u) if u.disabled_at.is_none() => {
            if crate::auth::verify_password(password, &u.password_hash) {
                let role = Role::parse(&u.role).ok_or_else(|| {
                    EngineError::Internal(format!("user {} has unknown role", u.id))
                })?;
                Ok(Some(ConsoleUser {
                    id: u.id,
                    username: u.username,
                    role,
                }))
            } else {
                Ok(None)
            }
        }
        _ => {
            // Spend comparable time so a timing probe can't list usernames.
            static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let dummy = DUMMY.get_or_init(|| {
                crate::auth::hash_password("not a real password").unwrap_or_default()
            });
            let _ = crate::auth::verify_password(password, dummy);
            Ok(None)
        }
    }
}

/// Rows in the tables that make a database "in use" (banks, users, API
/// keys, submissions), opening `url` (and applying migrations). `serve
/// --demo --db URL` seeds only a database where all are 0.
pub async fn data_counts(url: &str) -> Result<Vec<(&'static str, i64)>> {
    let store = Store::open(url).await?;
    let mut out = Vec::new();
    for table in ["banks", "users", "api_keys", "submissions"] {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM {table}"
        )))
        .fetch_one(store.pool())
        .await
        .map_err(db)?;
        out.push((table, col::<i64>(&row, "n")?));
    }
    store.close().await;
    Ok(out)
}

/// Append one audit entry for a console event that is not an engine write
/// (failed or throttled logins). `after` is a JSON document.
pub async fn audit_event(
    store: &Store,
    actor: &str,
    action: &str,
    target: &str,
    after: serde_json::Value,
) -> Result<()> {
    let mut tx = store.write().await?;
    tx.audit(&echotrace_store::NewAudit {
        actor,
        action,
        target,
        before: None,
        after: Some(after.to_string()),
    })
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Create a session for `user_id`; returns (session id for the cookie, session).
pub async fn create_session(
    store: &Store,
    user: &ConsoleUser,
    ttl_ms: i64,
) -> Result<(String, Session)> {
    let sid = random_token()?;
    let csrf = random_token()?;
    let now = now_ms();
    let expires_at = now.saturating_add(ttl_ms);
    sqlx::query(
        "INSERT INTO console_sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, \
         expires_at) VALUES ($1, $2, $3, $4, $4, $5)",
    )
    .bind(hash_session_id(&sid))
    .bind(user.id)
    .bind(csrf.as_str())
    .bind(now)
    .bind(expires_at)
    .execute(store.pool())
    .await
    .map_err(db)?;
    Ok((
        sid,
        Session {
            user: user.clone(),
            csrf_token: csrf,
            expires_at,
        },
    ))
}

/// The live session for a cookie value, if any (expired sessions and
/// disabled users yield `None`).
pub async fn load_session(store: &Store, sid: &str) -> Result<Option<Session>> {
    if sid.is_empty() || sid.len() > 128 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT s.csrf_token, s.expires_at, u.id, u.username, u.role, u.disabled_at \
         FROM console_sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1",
    )
    .bind(hash_session_id(sid))
    .fetch_optional(store.pool())
    .await
    .map_err(db)?;
    let Some(row) = row else { return Ok(None) };
    let expires_at: i64 = col(&row, "expires_at")?;
    let disabled: Option<i64> = col(&row, "disabled_at")?;
    if expires_at <= now_ms() || disabled.is_some() {
        return Ok(None);
    }
    let role_s: String = col(&row, "role")?;
    let Some(role) = Role::parse(&role_s) else {
        return Ok(None);
    };
    Ok(Some(Session {
        user: ConsoleUser {
            id: col(&row, "id")?,
            username: col(&row, "username")?,
            role,
        },
        csrf_token: col(&row, "csrf_token")?,
        expires_at,
    }))
}

/// End a session (logout). Unknown ids are ignored.
pub async fn delete_session(store: &Store, sid: &str) -> Result<()> {
    sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1 OR expires_at < $2")
        .bind(hash_session_id(sid))
        .bind(now_ms())
        .execute(store.pool())
        .await
        .map_err(db)?;
    Ok(())
}

/// Number of console users (0 on a fresh database).
pub async fn user_count(store: &Store) -> Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
        .fetch_one(store.pool())
        .await
        .map_err(db)?;
    col(&row, "n")
}

/// A random human-typable password (for the first admin).
pub fn generate_password() -> Result<String> {
    let mut raw = [0u8; 18];
    random_bytes(&mut raw)?;
    Ok(b64url(&raw))
}

// ----- per-user settings ---------------------------------------------------

/// Console preferences of one user.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UserSettings {
    /// Blur retained media until revealed.
    #[serde(default = "yes")]
    pub blur_media: bool,
    /// Show retained media in greyscale until revealed.
    #[serde(default = "yes")]
    pub greyscale_media: bool,
    /// Queue order: `newest` or `priority`.
    #[serde(default = "newest")]
    pub queue_order: String,
}

fn yes() -> bool {
    true
}
fn newest() -> String {
    "newest".into()
}

impl Default for UserSettings {
    fn default() -> Self {
        UserSettings {
            blur_media: true,
            greyscale_media: true,
            queue_order: newest(),
        }
    }
}

pub async fn user_settings(store: &Store, user_id: i64) -> Result<UserSettings> {
    let row = sqlx::query("SELECT settings FROM console_user_settings WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(store.pool())
        .await
        .map_err(db)?;
    match row {
        Some(r) => {
            let s: String = col(&r, "settings")?;
            Ok(serde_json::from_str(&s).unwrap_or_default())
        }
        None => Ok(UserSettings::default()),
    }
}

pub async fn save_user_settings(
    store: &Store,
    user_id: i64,
    settings: &UserSettings,
) -> Result<()> {
    let json = serde_json::to_string(settings).map_err(|e| EngineError::Internal(e.to_string()))?;
    // ON CONFLICT upsert: same syntax on SQLite (>= 3.24) and PostgreSQL.
    sqlx::query(
        "INSERT INTO console_user_settings (user_id, settings, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET settings = excluded.settings, \
         updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(json)
    .bind(now_ms())
    .execute(store.pool())
    .await
    .map_err(db)?;
    Ok(())
}

// ----- retained media --------------------------------------------------------

/// Whose media: an uploaded submission or a bank content item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaOwner {
    Submission,
    Content,
}

impl MediaOwner {
    fn as_str(self) -> &'static str {
        match self {
            MediaOwner::Submission => "submission",
            MediaOwner::Content => "content",
        }
    }
}

/// MIME type of media bytes from their magic numbers: PNG, JPEG, GIF,
/// WebP, a video container or raw H.264/H.265 stream (`video/...`, by the
/// signals crate's sniffer), else UTF-8 text, else
/// `application/octet-stream`.
pub fn sniff_mime(bytes: &[u8]) -> &'static str {
    if let Some(video) = echotrace_signals::video::video_mime(bytes) {
        return video;
    }
    match bytes {
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [0xff, 0xd8, 0xff, ..] => "image/jpeg",
        [b'G', b'I', b'F', b'8', ..] => "image/gif",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "image/webp",
        _ if std::str::from_utf8(bytes).is_ok() => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Keep media for review (call only when retention is configured on).
/// Oversized items are skipped (returns false). A generic or missing MIME
/// type is replaced by the sniffed one.
pub async fn retain_media(
    store: &Store,
    owner: MediaOwner,
    owner_id: i64,
    mime: &str,
    bytes: &[u8],
) -> Result<bool> {
    if bytes.len() > MAX_RETAINED_BYTES || bytes.is_empty() {
        return Ok(false);
    }
    let mime = if mime.is_empty() || mime == "application/octet-stream" {
        sniff_mime(bytes)
    } else {
        mime
    };
    sqlx::query(
        "INSERT INTO retained_media (owner, owner_id, mime, bytes, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(owner.as_str())
    .bind(owner_id)
    .bind(mime)
    .bind(bytes.to_vec())
    .bind(now_ms())
    .execute(store.pool())
    .await
    .map_err(db)?;
    Ok(true)
}

/// Retained media of a submission (after a lookup of raw bytes).
pub async fn retain_submission_media(
    store: &Store,
    submission_id: i64,
    mime: &str,
    bytes: &[u8],
) -> Result<bool> {
    retain_media(store, MediaOwner::Submission, submission_id, mime, bytes).await
}

/// The first retained item of an owner: (mime, bytes).
pub async fn retained_media(
    store: &Store,
    owner: MediaOwner,
    owner_id: i64,
) -> Result<Option<(String, Vec<u8>)>> {
    let row = sqlx::query(
        "SELECT mime, bytes FROM retained_media WHERE owner = $1 AND owner_id = $2 ORDER BY id LIMIT 1",
    )
    .bind(owner.as_str())
    .bind(owner_id)
    .fetch_optional(store.pool())
    .await
    .map_err(db)?;
    match row {
        Some(r) => Ok(Some((col(&r, "mime")?, col(&r, "bytes")?))),
        None => Ok(None),
    }
}

/// Which owners of a list have retained media.
pub async fn has_retained(
    store: &Store,
    owner: MediaOwner,
    owner_id: i64,
) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT mime FROM retained_media WHERE owner = $1 AND owner_id = $2 ORDER BY id LIMIT 1",
    )
    .bind(owner.as_str())
    .bind(owner_id)
    .fetch_optional(store.pool())
    .await
    .map_err(db)?;
    match row {
        Some(r) => Ok(Some(col(&r, "mime")?)),
        None => Ok(None),
    }
}

// ----- dashboard aggregates ---------------------------------------------------

/// Everything the dashboard shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DashboardStats {
    pub pending: i64,
    pub confirmed: i64,
    pub rejected: i64,
    /// (day start in Unix ms, match count), oldest first, exactly `days` entries.
    pub per_day: Vec<(i64, i64)>,
    /// (bank id, bank name, match count), most first.
    pub top_banks: Vec<(i64, String, i64)>,
    /// (label, match count), most first.
    pub top_labels: Vec<(String, i64)>,
    /// (signal type wire name, stored signals of enabled, unquarantined items).
    pub signals_per_type: Vec<(String, i64)>,
}

const DAY_MS: i64 = 86_400_000;

/// Compute the dashboard figures for the last `days` days ending at `now`.
pub async fn dashboard(store: &Store, now: i64, days: i64) -> Result<DashboardStats> {
    let mut stats = DashboardStats::default();
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM matches GROUP BY status")
        .fetch_all(store.pool())
        .await
        .map_err(db)?;
    for r in &rows {
        let status: String = col(r, "status")?;
        let n: i64 = col(r, "n")?;
        match status.as_str() {
            "pending" => stats.pending = n,
            "confirmed" => stats.confirmed = n,
            "rejected" => stats.rejected = n,
            _ => {}
        }
    }

    let days = days.clamp(1, 366);
    let today = now.div_euclid(DAY_MS);
    let first_day = today - (days - 1);
    let rows = sqlx::query(
        "SELECT created_at / 86400000 AS day, COUNT(*) AS n FROM matches WHERE created_at >= $1 \
         GROUP BY created_at / 86400000",
    )
    .bind(first_day * DAY_MS)
    .fetch_all(store.pool())
    .await
    .map_err(db)?;
    let mut by_day: BTreeMap<i64, i64> = BTreeMap::new();
    for r in &rows {
        let d: i64 = col(r, "day")?;
        let n: i64 = col(r, "n")?;
        *by_day.entry(d).or_default() += n;
    }
    stats.per_day = (first_day..=today)
        .map(|d| (d * DAY_MS, by_day.get(&d).copied().unwrap_or(0)))
        .collect();

    let rows = sqlx::query(
        "SELECT m.bank_id AS bank_id, b.name AS name, COUNT(*) AS n FROM matches m \
         JOIN banks b ON b.id = m.bank_id GROUP BY m.bank_id, b.name ORDER BY n DESC, m.bank_id LIMIT 10",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db)?;
    for r in &rows {
        stats
            .top_banks
            .push((col(r, "bank_id")?, col(r, "name")?, col(r, "n")?));
    }

    let rows = sqlx::query(
        "SELECT c.labels AS labels, COUNT(*) AS n FROM matches m JOIN bank_content c \
         ON c.id = m.content_id GROUP BY c.labels",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db)?;
    let mut labels: BTreeMap<String, i64> = BTreeMap::new();
    for r in &rows {
        let json: String = col(r, "labels")?;
        let n: i64 = col(r, "n")?;
        let parsed: Vec<String> = serde_json::from_str(&json).unwrap_or_default();
        for l in parsed {
            *labels.entry(l).or_default() += n;
        }
    }
    let mut top: Vec<(String, i64)> = labels.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(10);
    stats.top_labels = top;

    let rows = sqlx::query(
        "SELECT s.signal_type AS t, COUNT(*) AS n FROM signals s JOIN bank_content c ON c.id = s.content_id \
         JOIN banks b ON b.id = s.bank_id WHERE c.enabled = 1 AND c.quarantined = 0 AND b.enabled = 1 \
         GROUP BY s.signal_type ORDER BY s.signal_type",
    )
    .fetch_all(store.pool())
    .await
    .map_err(db)?;
    for r in &rows {
        stats.signals_per_type.push((col(r, "t")?, col(r, "n")?));
    }
    Ok(stats)
}

/// Filter for [`audit_log`]: substring matches, all optional.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub limit: i64,
}

/// One audit row as the console shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditLine {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub at: i64,
}

fn like_pattern(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let esc = s
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{esc}%")
        })
}

/// Audit entries newest first, filtered by substrings of actor/action/target.
pub async fn audit_log(store: &Store, f: &AuditFilter) -> Result<Vec<AuditLine>> {
    let rows = sqlx::query(
        "SELECT id, actor, action, target, before_json, after_json, at FROM audit_log \
         WHERE ($1 IS NULL OR actor LIKE $1 ESCAPE '\\') AND ($2 IS NULL OR action LIKE $2 ESCAPE '\\') \
         AND ($3 IS NULL OR target LIKE $3 ESCAPE '\\') ORDER BY id DESC LIMIT $4",
    )
    .bind(like_pattern(&f.actor))
    .bind(like_pattern(&f.action))
    .bind(like_pattern(&f.target))
    .bind(f.limit.clamp(1, 1000))
    .fetch_all(store.pool())
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(AuditLine {
                id: col(r, "id")?,
                actor: col(r, "actor")?,
                action: col(r, "action")?,
                target: col(r, "target")?,
                before: col(r, "before_json")?,
                after: col(r, "after_json")?,
                at: col(r, "at")?,
            })
        })
        .collect()
}

// ----- undo window ------------------------------------------------------------

/// A decision still inside its undo window.
#[derive(Clone, Debug, PartialEq)]
pub struct UndoableDecision {
    pub decision_id: i64,
    pub match_id: i64,
    pub verdict: String,
    pub actor: String,
    pub publish_after: i64,
}

/// Decisions by `actor` whose event is not yet published (newest first).
pub async fn undoable_decisions(
    store: &Store,
    actor: &str,
    now: i64,
) -> Result<Vec<UndoableDecision>> {
    let rows = sqlx::query(
        "SELECT d.id AS id, d.match_id AS match_id, d.verdict AS verdict, d.actor AS actor, \
         d.publish_after AS publish_after FROM decisions d JOIN matches m ON m.id = d.match_id \
         WHERE d.actor = $1 AND d.publish_after > $2 AND m.status <> 'pending' ORDER BY d.id DESC LIMIT 50",
    )
    .bind(actor)
    .bind(now)
    .fetch_all(store.pool())
    .await
    .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(UndoableDecision {
                decision_id: col(r, "id")?,
                match_id: col(r, "match_id")?,
                verdict: col(r, "verdict")?,
                actor: col(r, "actor")?,
                publish_after: col(r, "publish_after")?,
            })
        })
        .collect()
}

/// Undo the latest decision on a match while its undo window is open: the
/// unpublished `decision` outbox event is withdrawn, the decision row removed
/// and the match set back to pending, all in one transaction, and the undo is
/// audited (the audit log keeps the withdrawn decision). Only the deciding
/// actor may undo (admins may undo anyone's).
///
/// Fails with [`EngineError::Conflict`] once the event is due or delivered:
/// a published decision can only be reversed by a new decision.
pub async fn undo_decision(
    store: &Store,
    actor: &str,
    is_admin: bool,
    match_id: i64,
) -> Result<()> {
    let now = now_ms();
    let mut tx = match store.backend() {
        echotrace_store::Backend::Sqlite => store.pool().begin_with("BEGIN IMMEDIATE").await,
        echotrace_store::Backend::Postgres => store.pool().begin().await,
    }
    .map_err(db)?;
    let row = sqlx::query(
        "SELECT id, verdict, actor, publish_after FROM decisions WHERE match_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(match_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let Some(row) = row else {
        return Err(EngineError::NotFound(format!(
            "no decision on match {match_id}"
        )));
    };
    let decision_id: i64 = col(&row, "id")?;
    let verdict: String = col(&row, "verdict")?;
    let decided_by: String = col(&row, "actor")?;
    let publish_after: i64 = col(&row, "publish_after")?;
    if decided_by != actor && !is_admin {
        return Err(EngineError::Forbidden(
            "only the reviewer who decided may undo".into(),
        ));
    }
    if publish_after <= now {
        return Err(EngineError::Conflict(
            "the undo window has closed; the decision was published".into(),
        ));
    }
    // Find the decision's unpublished event (payload carries the decision id).
    let events = sqlx::query(
        "SELECT id, payload FROM outbox WHERE event = 'decision' AND delivered_at IS NULL \
         AND attempts = 0 AND next_attempt_at > $1 ORDER BY id DESC LIMIT 1000",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let mut event_id = None;
    for e in &events {
        let payload: String = col(e, "payload")?;
        let v: serde_json::Value = serde_json::from_str(&payload).unwrap_or_default();
        if v.pointer("/decision/id")
            .and_then(serde_json::Value::as_i64)
            == Some(decision_id)
        {
            event_id = Some(col::<i64>(e, "id")?);
            break;
        }
    }
    let Some(event_id) = event_id else {
        return Err(EngineError::Conflict(
            "the decision event is already being published".into(),
        ));
    };
    let gone = sqlx::query(
        "DELETE FROM outbox WHERE id = $1 AND delivered_at IS NULL AND next_attempt_at > $2",
    )
    .bind(event_id)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    if gone.rows_affected() != 1 {
        return Err(EngineError::Conflict(
            "the decision event is already being published".into(),
        ));
    }
    // Opinions queued for exchanges with the decision go with it.
    crate::exchange::drop_opinions(&mut tx, decision_id, now)
        .await
        .map_err(db)?;
    sqlx::query("DELETE FROM decisions WHERE id = $1")
        .bind(decision_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    sqlx::query("UPDATE matches SET status = 'pending', updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(match_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let before =
        serde_json::json!({"decision_id": decision_id, "verdict": verdict, "actor": decided_by});
    sqlx::query(
        "INSERT INTO audit_log (actor, action, target, before_json, after_json, at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(actor)
    .bind("match.undo")
    .bind(format!("match:{match_id}"))
    .bind(before.to_string())
    .bind(serde_json::json!({"status": "pending"}).to_string())
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(())
}

// ----- match debugger ----------------------------------------------------------

/// Search radius of the debugger for PDQ (max Hamming distance shown).
pub const DEBUG_PDQ_RADIUS: u32 = 64;
/// Lowest text similarity the debugger shows.
pub const DEBUG_TEXT_FLOOR: f64 = 0.05;

/// Outcome of one candidate in the debugger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Would be reported as a match.
    Match,
    /// Within threshold, but an allow-bank hit suppresses it.
    Suppressed,
    /// Would not be reported.
    NoMatch,
}

/// One bank item near the query, and why it would or would not match.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    pub bank_id: i64,
    pub bank_name: String,
    pub bank_kind: String,
    pub content_id: i64,
    pub labels: Vec<String>,
    pub signal_type: String,
    pub value: String,
    /// Hamming distance (pdq) or estimated similarity (text); exact types 0.
    pub distance: Option<i64>,
    pub similarity: Option<f64>,
    /// The threshold that decides: bank override or engine default.
    pub threshold: f64,
    pub threshold_is_default: bool,
    pub verdict: Verdict,
    pub why: String,
}

struct Near {
    signal_type: echotrace_signals::signal::SignalType,
    content_id: i64,
    bank_id: i64,
    value: String,
    distance: Option<i64>,
    similarity: Option<f64>,
}

/// Every bank item within a generous radius of the query signals (PDQ <=
/// [`DEBUG_PDQ_RADIUS`], text similarity >= [`DEBUG_TEXT_FLOOR`], exact
/// types equal), with the deciding threshold and the reason it would or
/// would not match: above/below threshold, item disabled, quarantined, bank
/// disabled, or suppressed by an allow-bank hit. Scans the signals table
/// (read-only; nothing is recorded), so it is meant for investigation, not
/// for traffic.
pub async fn explain(store: &Store, query: &[crate::SignalValue]) -> Result<Vec<Explanation>> {
    explain_with_text(store, query, None).await
}

/// [`explain`] for a query whose text signal was made from `raw_text`: each
/// stored text item is compared with the text signed under the bank
/// text-equivalence list version *it* was signed with, as lookups do.
pub async fn explain_with_text(
    store: &Store,
    query: &[crate::SignalValue],
    raw_text: Option<&str>,
) -> Result<Vec<Explanation>> {
    use echotrace_signals::pdq::PdqHash;
    use echotrace_signals::signal::SignalType;
    use echotrace_signals::text::{compare_text, TextSignature};

    let mut near: Vec<Near> = Vec::new();
    for q in query {
        let t = q.signal_type;
        match t {
            SignalType::Pdq => {
                let Ok(qh) = PdqHash::from_hex(&q.value) else {
                    continue;
                };
                let mut after = 0i64;
                loop {
                    let rows = sqlx::query(
                        "SELECT id, content_id, bank_id, value FROM signals WHERE signal_type = 'pdq' \
                         AND id > $1 ORDER BY id LIMIT 5000",
                    )
                    .bind(after)
                    .fetch_all(store.pool())
                    .await
                    .map_err(db)?;
                    if rows.is_empty() {
                        break;
                    }
                    for r in &rows {
                        after = col(r, "id")?;
                        let v: String = col(r, "value")?;
                        let Ok(h) = PdqHash::from_hex(&v) else {
                            continue;
                        };
                        let d = qh.distance(&h);
                        if d <= DEBUG_PDQ_RADIUS {
                            near.push(Near {
                                signal_type: t,
                                content_id: col(r, "content_id")?,
                                bank_id: col(r, "bank_id")?,
                                value: v,
                                distance: Some(i64::from(d)),
                                similarity: None,
                            });
                        }
                    }
                }
            }
            SignalType::TextMinhash | SignalType::OcrText => {
                let Ok(qs) = q.value.parse::<TextSignature>() else {
                    continue;
                };
                // Raw text behind this signal: re-signed per list version.
                let raw =
                    raw_text.filter(|t| crate::signals::sign_text(t, None).to_string() == q.value);
                let mut by_version: std::collections::HashMap<i64, TextSignature> =
                    std::collections::HashMap::new();
                let mut after = 0i64;
                loop {
                    let rows = sqlx::query(
                        "SELECT id, content_id, bank_id, value, equivalences_id, signal_type FROM signals \
                         WHERE signal_type IN ('text_minhash', 'ocr_text') AND id > $1 \
                         ORDER BY id LIMIT 2000",
                    )
                    .bind(after)
                    .fetch_all(store.pool())
                    .await
                    .map_err(db)?;
                    if rows.is_empty() {
                        break;
                    }
                    for r in &rows {
                        after = col(r, "id")?;
                        let v: String = col(r, "value")?;
                        let Ok(sig) = v.parse::<TextSignature>() else {
                            continue;
                        };
                        let version: Option<i64> = col(r, "equivalences_id")?;
                        if let (Some(text), Some(ver)) = (raw, version) {
                            if let std::collections::hash_map::Entry::Vacant(slot) =
                                by_version.entry(ver)
                            {
                                let list = match store.text_equivalences(ver).await? {
                                    Some(row) => {
                                        crate::signals::parse_equivalences(&row.body).ok().flatten()
                                    }
                                    None => None,
                                };
                                slot.insert(crate::signals::sign_text(text, list.as_ref()));
                            }
                        }
                        let signed = match (raw, version) {
                            (Some(_), Some(ver)) => by_version.get(&ver).unwrap_or(&qs),
                            _ => &qs,
                        };
                        let Ok(cmp) = compare_text(signed, &sig) else {
                            continue;
                        };
                        if cmp.jaccard >= DEBUG_TEXT_FLOOR {
                            // Either side read by OCR: held to ocr_text's threshold.
                            let stored: String = col(r, "signal_type")?;
                            let kind = if t == SignalType::OcrText || stored == "ocr_text" {
                                SignalType::OcrText
                            } else {
                                SignalType::TextMinhash
                            };
                            near.push(Near {
                                signal_type: kind,
                                content_id: col(r, "content_id")?,
                                bank_id: col(r, "bank_id")?,
                                value: v,
                                distance: None,
                                similarity: Some(cmp.jaccard),
                            });
                        }
                    }
                }
            }
            _ => {
                let sql = format!(
                    "SELECT content_id, bank_id, value FROM signals WHERE signal_type = $1 \
                     AND {} LIMIT 1000",
                    echotrace_store::signal_value_eq(store.backend(), "value", 2)
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(t.as_str())
                    .bind(q.value.as_str())
                    .fetch_all(store.pool())
                    .await
                    .map_err(db)?;
                for r in &rows {
                    near.push(Near {
                        signal_type: t,
                        content_id: col(r, "content_id")?,
                        bank_id: col(r, "bank_id")?,
                        value: col(r, "value")?,
                        // An identical vPDQ signal is a 100 % query share;
                        // vPDQ carries no single distance.
                        distance: (t != SignalType::Vpdq).then_some(0),
                        similarity: (t == SignalType::Vpdq).then_some(1.0),
                    });
                }
            }
        }
    }

    let banks: BTreeMap<i64, echotrace_store::BankRow> = store
        .list_banks()
        .await?
        .into_iter()
        .map(|b| (b.id, b))
        .collect();
    let mut out = Vec::with_capacity(near.len());
    for n in near {
        let Some(bank) = banks.get(&n.bank_id) else {
            continue;
        };
        let Some(content) = store.get_content(n.content_id).await? else {
            continue;
        };
        let overrides: crate::Thresholds =
            serde_json::from_str(&bank.thresholds).unwrap_or_default();
        let (threshold, is_default) = match overrides.0.get(n.signal_type.as_str()) {
            Some(v) => (*v, false),
            None => (crate::default_threshold(n.signal_type), true),
        };
        // vPDQ: the bank threshold is a per-frame distance; the match
        // decision is on the query share (similarity = share / 100).
        let vpdq_share = overrides
            .0
            .get(crate::VPDQ_QUERY_PCT)
            .copied()
            .unwrap_or(echotrace_signals::video::vpdq::VPDQ_QUERY_MATCH_THRESHOLD_PERCENT);
        let within = match (n.distance, n.similarity) {
            (_, Some(s)) if n.signal_type == SignalType::Vpdq => s * 100.0 >= vpdq_share,
            (_, Some(s)) => s >= threshold,
            (Some(d), None) => match n.signal_type {
                SignalType::Pdq | SignalType::Vpdq => (d as f64) <= threshold,
                _ => d == 0,
            },
            (None, None) => false,
        };
        let cmp_text = match (n.distance, n.similarity) {
            (_, Some(s)) if n.signal_type == SignalType::Vpdq => format!(
                "query share {:.0}% {} {:.0}% (frame distance {})",
                s * 100.0,
                if within { ">=" } else { "<" },
                vpdq_share,
                threshold
            ),
            (_, Some(s)) => format!(
                "similarity {:.3} {} threshold {:.3}",
                s,
                if within { ">=" } else { "<" },
                threshold
            ),
            (Some(d), None) if matches!(n.signal_type, SignalType::Pdq | SignalType::Vpdq) => {
                format!(
                    "distance {} {} threshold {}",
                    d,
                    if within { "<=" } else { ">" },
                    threshold
                )
            }
            _ => "exact value match".to_string(),
        };
        let mut blockers = Vec::new();
        if !bank.enabled {
            blockers.push("bank disabled".to_string());
        }
        if !content.enabled {
            blockers.push("item disabled".to_string());
        }
        if content.quarantined {
            blockers.push(format!(
                "item quarantined: {}",
                content.quarantine_reason.clone().unwrap_or_default()
            ));
        }
        let (verdict, why) = if !within {
            (
                Verdict::NoMatch,
                format!("{cmp_text}: outside the threshold"),
            )
        } else if !blockers.is_empty() {
            (
                Verdict::NoMatch,
                format!("{cmp_text}, but {}", blockers.join(", ")),
            )
        } else {
            (Verdict::Match, cmp_text)
        };
        out.push(Explanation {
            bank_id: bank.id,
            bank_name: bank.name.clone(),
            bank_kind: bank.kind.clone(),
            content_id: n.content_id,
            labels: serde_json::from_str(&content.labels).unwrap_or_default(),
            signal_type: n.signal_type.as_str().to_string(),
            value: n.value,
            distance: n.distance,
            similarity: n.similarity,
            threshold,
            threshold_is_default: is_default,
            verdict,
            why,
        });
    }
    // Allow-bank suppression: any live allow hit suppresses every block hit.
    let allow_hit = out
        .iter()
        .any(|e| e.bank_kind == "allow" && e.verdict == Verdict::Match);
    if allow_hit {
        for e in out.iter_mut() {
            if e.bank_kind == "block" && e.verdict == Verdict::Match {
                e.verdict = Verdict::Suppressed;
                e.why = format!("{}; suppressed by an allow-bank hit", e.why);
            }
        }
    }
    out.sort_by(|a, b| {
        let key = |e: &Explanation| match e.verdict {
            Verdict::Match => 0,
            Verdict::Suppressed => 1,
            Verdict::NoMatch => 2,
        };
        key(a)
            .cmp(&key(b))
            .then(a.distance.unwrap_or(0).cmp(&b.distance.unwrap_or(0)))
            .then(
                b.similarity
                    .unwrap_or(0.0)
                    .partial_cmp(&a.similarity.unwrap_or(0.0))
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64url_known_values() {
        assert_eq!(b64url(b""), "");
        assert_eq!(b64url(b"f"), "Zg");
        assert_eq!(b64url(b"fo"), "Zm8");
        assert_eq!(b64url(b"foo"), "Zm9v");
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(random_token().unwrap().len(), 43);
    }

    #[test]
    fn mime_sniffing() {
        assert_eq!(sniff_mime(&[0x89, b'P', b'N', b'G', 13, 10]), "image/png");
        assert_eq!(sniff_mime(&[0xff, 0xd8, 0xff, 0xe0]), "image/jpeg");
        assert_eq!(sniff_mime(b"hello"), "text/plain; charset=utf-8");
        assert_eq!(sniff_mime(b"\0\0\0\x18ftypisom\0\0\x02\0"), "video/mp4");
        assert_eq!(sniff_mime(&[0, 0, 0, 1, 0x67, 100, 0, 10]), "video/H264");
        assert_eq!(
            sniff_mime(&[0xff, 0xfe, 0x00, 0x81]),
            "application/octet-stream"
        );
    }

    #[test]
    fn token_compare() {
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "abcd"));
        assert!(!tokens_equal("", "a"));
    }

    #[test]
    fn like_escapes_wildcards() {
        assert_eq!(like_pattern(&Some("a%b_c".into())).unwrap(), "%a\\%b\\_c%");
        assert_eq!(like_pattern(&Some("  ".into())), None);
        assert_eq!(like_pattern(&None), None);
    }
}
