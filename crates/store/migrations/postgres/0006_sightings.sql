-- echotrace schema v6 (postgres): the sighting model shared by the collector and
-- spread tracking. Keep in step with ../sqlite.

-- A source the collector reads: a URL list, a page, a feed, a Telegram
-- export, a WARC file or a locker page. `config` is the collector's typed,
-- versioned JSON for that kind.
CREATE TABLE sources (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    enabled BIGINT NOT NULL DEFAULT 1,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One item seen at one place: the bytes (or bare URL) a source produced at a
-- canonical URL. The same URL serving other bytes is another sighting; the
-- same bytes at the same URL seen again only moves last_seen_at.
-- content_sha256 is '' for an item without bytes (a bare outlink).
-- Only hashes are kept here; payloads live in WARC files under the
-- operator's retention policy (warc_* point at the record).
CREATE TABLE sightings (
    id BIGSERIAL PRIMARY KEY,
    source_id BIGINT REFERENCES sources(id) ON DELETE SET NULL,
    url TEXT NOT NULL,
    url_canonical TEXT NOT NULL,
    url_sha256 TEXT NOT NULL,
    host TEXT NOT NULL,
    platform TEXT NOT NULL DEFAULT '',
    parent_id BIGINT REFERENCES sightings(id) ON DELETE SET NULL,
    content_sha256 TEXT NOT NULL DEFAULT '',
    media_type TEXT NOT NULL DEFAULT '',
    matched BIGINT NOT NULL DEFAULT 0,
    submission_id BIGINT,
    warc_file TEXT,
    warc_offset BIGINT,
    warc_length BIGINT,
    warc_record_id TEXT,
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX sightings_url_content ON sightings(url_sha256, content_sha256);
CREATE INDEX sightings_host ON sightings(host, id);
CREATE INDEX sightings_platform ON sightings(platform, id);
CREATE INDEX sightings_source ON sightings(source_id, id);
CREATE INDEX sightings_parent ON sightings(parent_id);
CREATE INDEX sightings_first_seen ON sightings(first_seen_at, id);
CREATE INDEX sightings_expires ON sightings(expires_at);

-- The signals of a sighting (hashes only), indexed like bank signals so a
-- hash added to a bank later finds where it was already seen (retro-hunt):
-- exact types by (signal_type, value), PDQ and text by a scan of one type.
CREATE TABLE sighting_signals (
    id BIGSERIAL PRIMARY KEY,
    sighting_id BIGINT NOT NULL REFERENCES sightings(id) ON DELETE CASCADE,
    signal_type TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX sighting_signals_sighting ON sighting_signals(sighting_id);
CREATE INDEX sighting_signals_type_value ON sighting_signals(signal_type, value);
CREATE INDEX sighting_signals_type_id ON sighting_signals(signal_type, id);

-- Which bank items a sighting matched. A bank item and every sighting that
-- matched it form one variant cluster (spread tracking). No foreign key to
-- bank_content: deleting a bank item keeps the history of where it was seen.
-- found_by: 'fetch' (matched when collected), 'retro_hunt' (a later bank
-- item matched stored signals), 'recheck' (a liveness re-hash).
CREATE TABLE sighting_matches (
    sighting_id BIGINT NOT NULL REFERENCES sightings(id) ON DELETE CASCADE,
    content_id BIGINT NOT NULL,
    bank_id BIGINT NOT NULL,
    signal_type TEXT NOT NULL,
    match_id BIGINT,
    distance BIGINT,
    similarity DOUBLE PRECISION,
    channel TEXT NOT NULL DEFAULT 'plain',
    found_by TEXT NOT NULL DEFAULT 'fetch',
    created_at BIGINT NOT NULL,
    PRIMARY KEY (sighting_id, content_id, signal_type)
);
CREATE INDEX sighting_matches_content ON sighting_matches(content_id, sighting_id);
