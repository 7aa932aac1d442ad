-- echotrace schema v40 (postgres): the collector's own tables (issue 15).
-- Keep in step with ../sqlite.

-- Source status, shown on the console's sources page.
ALTER TABLE sources ADD COLUMN last_run_at BIGINT;
ALTER TABLE sources ADD COLUMN last_run_status TEXT NOT NULL DEFAULT '';
ALTER TABLE sources ADD COLUMN items_total BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sources ADD COLUMN errors_total BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sources ADD COLUMN politeness_waits BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sources ADD COLUMN politeness_wait_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sources ADD COLUMN last_error TEXT;

-- What a source said about an item besides its bytes (a Telegram message's
-- chat, author and forwarded_from; a WARC record's origin), as JSON.
ALTER TABLE sightings ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
-- Content dedup: the same bytes seen at another URL reuse their signals.
CREATE INDEX sightings_content ON sightings(content_sha256);

-- The durable frontier: one row per (source, canonical URL). Workers lease
-- jobs (state 'leased' until lease_expires_at); a job whose worker died is
-- leased again after its lease expires. Finished jobs stay (dedup) with
-- their outcome until the source's revisit interval lets them be queued
-- again.
CREATE TABLE frontier (
    id BIGSERIAL PRIMARY KEY,
    source_id BIGINT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    url_sha256 TEXT NOT NULL,
    host TEXT NOT NULL,
    kind TEXT NOT NULL,
    depth BIGINT NOT NULL,
    seed_host TEXT NOT NULL,
    parent_sighting_id BIGINT,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts BIGINT NOT NULL DEFAULT 0,
    not_before BIGINT NOT NULL DEFAULT 0,
    lease_holder TEXT,
    lease_expires_at BIGINT,
    http_status BIGINT,
    error_kind TEXT,
    error TEXT,
    sighting_id BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX frontier_source_url ON frontier(source_id, url_sha256);
CREATE INDEX frontier_ready ON frontier(state, not_before, id);
CREATE INDEX frontier_leases ON frontier(state, lease_expires_at);

-- Per-host politeness shared by every collector process: a request to a
-- host may start only once `next_at` has passed; the worker that reserves
-- the host holds it until its fetch ends and then sets the next slot.
CREATE TABLE crawl_hosts (
    host TEXT PRIMARY KEY,
    next_at BIGINT NOT NULL DEFAULT 0,
    holder TEXT,
    updated_at BIGINT NOT NULL
);

-- Named positions of background jobs (the retro-hunt's place in the change
-- sequence).
CREATE TABLE collector_cursors (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The operator's additions to the built-in host -> platform table.
CREATE TABLE host_platforms (
    host TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
