-- echotrace schema v50 (postgres): spread tracking (issue 16) — liveness of
-- every matched sighting's URL, the checks that decided it, confirmed
-- removals, and takedown notices. Keep in step with ../sqlite.

-- Current liveness of one sighting's URL (one row per tracked sighting).
-- state: the last check's verdict ('unchecked' before the first check).
-- status: live | removal_pending (one removed check) | removed (two
-- consecutive removed checks: confirmed). checks counts completed checks and
-- is the seq of the last one; a check is applied only if it still equals
-- what the checker leased, so an outcome is never recorded twice.
-- last_live_at: the last time the copy was known to be up (a live check, or
-- the collector's last_seen_at); first_removed_at: the first removed check of
-- the current removed run. anchor_at: the schedule's origin (first seen, or
-- the time the copy resurfaced). next_check_at NULL: schedule finished.
CREATE TABLE liveness (
    sighting_id BIGINT PRIMARY KEY REFERENCES sightings(id) ON DELETE CASCADE,
    state TEXT NOT NULL DEFAULT 'unchecked',
    status TEXT NOT NULL DEFAULT 'live',
    removed_streak BIGINT NOT NULL DEFAULT 0,
    checks BIGINT NOT NULL DEFAULT 0,
    last_checked_at BIGINT,
    last_live_at BIGINT NOT NULL,
    first_removed_at BIGINT,
    removals BIGINT NOT NULL DEFAULT 0,
    resurfaced BIGINT NOT NULL DEFAULT 0,
    anchor_at BIGINT NOT NULL,
    next_check_at BIGINT,
    lease_holder TEXT NOT NULL DEFAULT '',
    lease_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX liveness_due ON liveness(next_check_at);
CREATE INDEX liveness_status ON liveness(status);

-- Every check outcome, exactly once per (sighting, seq). The verdict comes
-- from re-hashing what was served; http_status and detail say why.
CREATE TABLE liveness_checks (
    id BIGSERIAL PRIMARY KEY,
    sighting_id BIGINT NOT NULL REFERENCES sightings(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    checked_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    http_status BIGINT,
    final_url TEXT NOT NULL DEFAULT '',
    served_sha256 TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    via TEXT NOT NULL DEFAULT 'clearnet',
    warc_file TEXT,
    warc_offset BIGINT,
    warc_length BIGINT,
    warc_record_id TEXT
);
CREATE UNIQUE INDEX liveness_checks_seq ON liveness_checks(sighting_id, seq);
CREATE INDEX liveness_checks_time ON liveness_checks(checked_at);

-- One confirmed removal of a copy (episode 1, 2, … if it resurfaced and
-- came down again). The copy went down in (last_live_at, first_removed_at];
-- confirmed_at is the second consecutive removed check. resurfaced_at: the
-- first live check after the confirmation.
CREATE TABLE removals (
    sighting_id BIGINT NOT NULL REFERENCES sightings(id) ON DELETE CASCADE,
    episode BIGINT NOT NULL,
    last_live_at BIGINT NOT NULL,
    first_removed_at BIGINT NOT NULL,
    confirmed_at BIGINT NOT NULL,
    removed_state TEXT NOT NULL,
    resurfaced_at BIGINT,
    PRIMARY KEY (sighting_id, episode)
);
CREATE INDEX removals_confirmed ON removals(confirmed_at);

-- A takedown alert to a platform. Delivery is the operator's (webhook
-- event notice.created); echotrace generates, exports and records it.
-- channel: email | api | dsa_art16 | tco_order.
-- response: no_response | removed | rejected.
CREATE TABLE notices (
    id BIGSERIAL PRIMARY KEY,
    platform TEXT NOT NULL,
    channel TEXT NOT NULL,
    reference TEXT NOT NULL DEFAULT '',
    sent_at BIGINT NOT NULL,
    response TEXT NOT NULL DEFAULT 'no_response',
    responded_at BIGINT,
    note TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX notices_sent ON notices(sent_at, id);
CREATE INDEX notices_platform ON notices(platform, id);

CREATE TABLE notice_sightings (
    notice_id BIGINT NOT NULL REFERENCES notices(id) ON DELETE CASCADE,
    sighting_id BIGINT NOT NULL REFERENCES sightings(id) ON DELETE CASCADE,
    PRIMARY KEY (notice_id, sighting_id)
);
CREATE INDEX notice_sightings_sighting ON notice_sightings(sighting_id, notice_id);

-- Settings of the process that decided liveness (the checker's schedule,
-- removal policy, politeness…), as JSON, so a report states the method
-- that produced its numbers. name: 'checker'.
CREATE TABLE spread_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
