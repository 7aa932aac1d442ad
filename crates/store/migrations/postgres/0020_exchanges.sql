-- echotrace schema v20 (postgres): signal exchange — exchanges fetched into
-- banks, their upstream records, and banks published to partners as feeds.
-- Keep in step with ../sqlite.

-- An exchange: a named upstream (another echotrace instance, Tech Against
-- Terrorism, ThreatExchange, a file) fetched into its own bank. `config`
-- and `policy` are typed, versioned JSON; `credentials` is AEAD
-- ciphertext ("v1." + hex), never plaintext. `live` = 0 is a dry run:
-- records are fetched and kept, the bank is not touched. Status columns
-- are written by the fetch worker in the transaction of each batch.
CREATE TABLE exchanges (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    api TEXT NOT NULL,
    config TEXT NOT NULL,
    policy TEXT NOT NULL,
    credentials TEXT,
    write_back BIGINT NOT NULL DEFAULT 0,
    enabled BIGINT NOT NULL DEFAULT 1,
    live BIGINT NOT NULL DEFAULT 1,
    poll_interval_ms BIGINT NOT NULL,
    bank_id BIGINT NOT NULL,
    checkpoint TEXT,
    generation BIGINT NOT NULL DEFAULT 0,
    full_fetch BIGINT NOT NULL DEFAULT 0,
    fetch_started_at BIGINT,
    last_success_at BIGINT,
    last_error TEXT,
    last_error_at BIGINT,
    upstream_at BIGINT,
    fetched_total BIGINT NOT NULL DEFAULT 0,
    malformed_total BIGINT NOT NULL DEFAULT 0,
    opinions_unsent BIGINT NOT NULL DEFAULT 0,
    upstream_checksum TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX exchanges_bank ON exchanges(bank_id);

-- Credentials shared by every exchange of one API (HMA's
-- /c/exchanges/api/{api}); an exchange's own credentials win.
CREATE TABLE exchange_api_credentials (
    api TEXT PRIMARY KEY,
    credentials TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One upstream record per (exchange, signal type, value): labels and
-- opinions as typed JSON (`meta`), upstream times, and a tombstone flag.
-- `applied` = it backs the bank item `content_id` (not deleted, passes the
-- exchange's policy, not deleted locally). The same hash from two exchanges
-- sharing a bank backs ONE item (two provenances). `local_state` keeps
-- local overrides across upstream churn: 'disabled' (the item was disabled
-- here when upstream removed it) or 'deleted' (a curator deleted the item).
-- `seen_gen` marks records seen by the current full fetch (mark-and-sweep).
CREATE TABLE exchange_records (
    exchange_id BIGINT NOT NULL REFERENCES exchanges(id) ON DELETE CASCADE,
    signal_type TEXT NOT NULL,
    value TEXT NOT NULL,
    upstream_id TEXT NOT NULL DEFAULT '',
    meta TEXT NOT NULL,
    upstream_created_at BIGINT,
    upstream_updated_at BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0,
    applied BIGINT NOT NULL DEFAULT 0,
    content_id BIGINT,
    local_state TEXT NOT NULL DEFAULT '',
    my_opinion TEXT,
    seen_gen BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (exchange_id, signal_type, value)
);
CREATE INDEX exchange_records_content ON exchange_records(content_id);

-- A bank published as a feed. `head_seq` is the last sequence number given
-- to an entry; tombstones older than `horizon_ms` are purged and
-- `purged_seq` is the highest sequence purged (an older cursor gets 410).
CREATE TABLE feeds (
    bank_id BIGINT PRIMARY KEY,
    head_seq BIGINT NOT NULL DEFAULT 0,
    purged_seq BIGINT NOT NULL DEFAULT 0,
    horizon_ms BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Partner API keys granted a feed.
CREATE TABLE feed_partners (
    bank_id BIGINT NOT NULL,
    key_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (bank_id, key_id)
);

-- The feed of a bank: one entry per (signal type, value), live or a
-- tombstone, re-sequenced on every change. Built from the change sequence
-- by one process at a time (lease "feed-builder").
CREATE TABLE feed_entries (
    bank_id BIGINT NOT NULL,
    signal_type TEXT NOT NULL,
    value TEXT NOT NULL,
    seq BIGINT NOT NULL,
    live BIGINT NOT NULL,
    content_id BIGINT,
    labels TEXT NOT NULL DEFAULT '[]',
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (bank_id, signal_type, value)
);
CREATE INDEX feed_entries_seq ON feed_entries(bank_id, seq);
CREATE INDEX feed_entries_content ON feed_entries(content_id);

-- The feed builder's position in `changes` (one row).
CREATE TABLE feed_state (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    change_id BIGINT NOT NULL
);

-- Opinions partners posted back on a feed's records (latest per partner).
CREATE TABLE feed_opinions (
    bank_id BIGINT NOT NULL,
    key_id BIGINT NOT NULL,
    signal_type TEXT NOT NULL,
    value TEXT NOT NULL,
    category TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    received_at BIGINT NOT NULL,
    PRIMARY KEY (bank_id, key_id, signal_type, value)
);
