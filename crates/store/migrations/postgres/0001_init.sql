-- echotrace schema v1 (PostgreSQL). Timestamps are Unix milliseconds (UTC).
-- Booleans are 0/1 integers; JSON is TEXT. Keep in step with ../sqlite.

CREATE TABLE banks (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('block', 'allow')),
    enabled BIGINT NOT NULL DEFAULT 1,
    description TEXT NOT NULL DEFAULT '',
    thresholds TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE bank_content (
    id BIGSERIAL PRIMARY KEY,
    bank_id BIGINT NOT NULL REFERENCES banks(id),
    enabled BIGINT NOT NULL DEFAULT 1,
    labels TEXT NOT NULL DEFAULT '[]',
    note TEXT NOT NULL DEFAULT '',
    quarantined BIGINT NOT NULL DEFAULT 0,
    quarantine_reason TEXT,
    quarantined_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX bank_content_bank ON bank_content(bank_id, id);

CREATE TABLE signals (
    id BIGSERIAL PRIMARY KEY,
    content_id BIGINT NOT NULL REFERENCES bank_content(id) ON DELETE CASCADE,
    bank_id BIGINT NOT NULL REFERENCES banks(id),
    signal_type TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX signals_content ON signals(content_id);
CREATE INDEX signals_type_value ON signals(signal_type, value);

CREATE TABLE submissions (
    id BIGSERIAL PRIMARY KEY,
    actor TEXT NOT NULL,
    content_ref TEXT,
    url TEXT,
    uploader_id TEXT,
    signals TEXT NOT NULL,
    match_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE matches (
    id BIGSERIAL PRIMARY KEY,
    submission_id BIGINT NOT NULL REFERENCES submissions(id),
    bank_id BIGINT NOT NULL REFERENCES banks(id),
    content_id BIGINT NOT NULL,
    signal_id BIGINT,
    signal_type TEXT NOT NULL,
    matched_value TEXT NOT NULL,
    query_value TEXT NOT NULL,
    distance BIGINT,
    similarity DOUBLE PRECISION,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'confirmed', 'rejected')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX matches_submission ON matches(submission_id);
CREATE INDEX matches_status ON matches(status, id);
CREATE INDEX matches_bank ON matches(bank_id, id);

CREATE TABLE decisions (
    id BIGSERIAL PRIMARY KEY,
    match_id BIGINT NOT NULL REFERENCES matches(id),
    verdict TEXT NOT NULL CHECK (verdict IN ('confirm', 'reject')),
    note TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    publish_after BIGINT NOT NULL
);
CREATE INDEX decisions_match ON decisions(match_id);

CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    failed_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox(delivered_at, failed_at, next_attempt_at);

CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT,
    at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    disabled_at BIGINT
);

CREATE TABLE webhooks (
    id BIGSERIAL PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events TEXT NOT NULL DEFAULT '[]',
    enabled BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);

-- Monotonic change sequence: one row per bank/content change, tailed by
-- every server process to update its in-memory indexes incrementally.
CREATE TABLE changes (
    id BIGSERIAL PRIMARY KEY,
    entity TEXT NOT NULL,
    entity_id BIGINT NOT NULL,
    op TEXT NOT NULL,
    at BIGINT NOT NULL
);
