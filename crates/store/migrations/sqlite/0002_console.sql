-- echotrace schema v2 (SQLite): review console. Keep in step with ../postgres.

-- Console login sessions. Only the SHA-256 of the session id is stored, so a
-- database leak does not leak live sessions. The CSRF token is per session
-- (synchroniser-token pattern).
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions(user_id);

-- Per-user console settings (JSON), e.g. media blur/greyscale defaults.
CREATE TABLE console_user_settings (
    user_id INTEGER PRIMARY KEY REFERENCES users(id),
    settings TEXT NOT NULL DEFAULT '{}',
    updated_at INTEGER NOT NULL
);

-- Media or text kept for review, only when the operator turned retention on
-- (off by default: hashing only). owner is 'submission' or 'content'.
CREATE TABLE retained_media (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL CHECK (owner IN ('submission', 'content')),
    owner_id INTEGER NOT NULL,
    mime TEXT NOT NULL,
    bytes BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX retained_media_owner ON retained_media(owner, owner_id);
