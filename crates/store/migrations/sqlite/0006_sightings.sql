-- echotrace schema v6 (sqlite): the sighting model shared by the collector and
-- spread tracking. Keep in step with ../postgres.

-- A source the collector reads: a URL list, a page, a feed, a Telegram
-- export, a WARC file or a locker page. `config` is the collector's typed,
-- versioned JSON for that kind.
CREATE TABLE sources (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    enabled INTEGER NOT NULL DEFAULT 1,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One item seen at one place: the bytes (or bare URL) a source produced at a
-- canonical URL. The same URL serving other bytes is another sighting; the
-- same bytes at the same URL seen again only moves last_seen_at.
-- content_sha256 is '' for an item without bytes (a bare outlink).
-- Only hashes are kept here; payloads live in WARC files under the
-- operator's retention policy (warc_* point at the record).
CREATE TABLE sightings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id INTEGER REFERENCES sources(id) ON DELETE SET NULL,
    url TEXT NOT NULL,
    url_canonical TEXT NOT NULL,
    url_sha256 TEXT NOT NULL,
    host TEXT NOT NULL,
    platform TEXT NOT NULL DEFAULT '',
    parent_id INTEGER REFERENCES sightings(id) ON DELETE SET NULL,
    content_sha256 TEXT NOT NULL DEFAULT '',
    media_type TEXT NOT NULL DEFAULT '',
    matched INTEGER NOT NULL DEFAULT 0,
    submission_id INTEGER,
    warc_file TEXT,
    warc_offset INTEGER,
    warc_length INTEGER,
    warc_record_id TEXT,
    first_seen_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at INTEGER,
    created_at INTEGER NOT NULL
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
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sighting_id INTEGER NOT NULL REFERENCES sightings(id) ON DELETE CASCADE,
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
    sighting_id INTEGER NOT NULL REFERENCES sightings(id) ON DELETE CASCADE,
    content_id INTEGER NOT NULL,
    bank_id INTEGER NOT NULL,
    signal_type TEXT NOT NULL,
    match_id INTEGER,
    distance INTEGER,
    similarity REAL,
    channel TEXT NOT NULL DEFAULT 'plain',
    found_by TEXT NOT NULL DEFAULT 'fetch',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (sighting_id, content_id, signal_type)
);
CREATE INDEX sighting_matches_content ON sighting_matches(content_id, sighting_id);
