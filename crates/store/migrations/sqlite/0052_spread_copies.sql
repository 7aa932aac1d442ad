-- echotrace schema v52 (sqlite): one narrow summary row per copy (matched
-- sighting) with everything a transparency report reads per copy, so a
-- report page reads one table in id order instead of seeking into
-- sighting_matches, liveness, removals and notices for every copy.
-- Keep in step with ../postgres.
--
-- A row exists exactly for each sighting with matched = 1, and every
-- column equals what it summarises:
--   first_seen_at, last_seen_at, host, platform, media_type: the sighting's;
--   url_prefix: the first 16 hex digits of the sighting's url_sha256;
--   content_id: MIN(sighting_matches.content_id) of the sighting (its
--     variant cluster), NULL without a match row;
--   status, live_last_live_at, checks: its liveness row's status,
--     last_live_at and checks (NULL when not tracked);
--   r_last_live_at, first_removed_at, confirmed_at, removed_state,
--   resurfaced_at: its removal episode 1 (NULL without one);
--   later_episodes: how many of its removal rows have episode <> 1 (a
--     report reads the episodes themselves only for those copies);
--   first_notice_at: MIN(notices.sent_at) over the notices covering it;
--   packed: all of the above as one JSON array (a generated column).
-- Triggers below refresh the affected columns from the raw tables on every
-- insert, update and delete of those tables (cascades included); the row
-- goes with its sighting (ON DELETE CASCADE). Writers need not know.
CREATE TABLE spread_copies (
    sighting_id INTEGER PRIMARY KEY REFERENCES sightings(id) ON DELETE CASCADE,
    first_seen_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    url_prefix TEXT NOT NULL,
    host TEXT NOT NULL,
    platform TEXT NOT NULL,
    media_type TEXT NOT NULL,
    content_id INTEGER,
    status TEXT,
    live_last_live_at INTEGER,
    checks INTEGER,
    r_last_live_at INTEGER,
    first_removed_at INTEGER,
    confirmed_at INTEGER,
    removed_state TEXT,
    resurfaced_at INTEGER,
    later_episodes INTEGER NOT NULL DEFAULT 0,
    first_notice_at INTEGER,
    -- The columns above as one JSON array (in this order), so a report page
    -- is the concatenation of stored text instead of JSON built per read.
    packed TEXT GENERATED ALWAYS AS (json_array(sighting_id, url_prefix, content_id, host,
        platform, media_type, first_seen_at, last_seen_at, status, live_last_live_at, checks,
        r_last_live_at, first_removed_at, confirmed_at, removed_state, resurfaced_at,
        later_episodes, first_notice_at)) STORED
);

-- The whole row of each matched sighting in `ids`, from the raw tables
-- (used by the back-fill and whenever a sighting becomes matched).
CREATE VIEW spread_copies_source AS
SELECT s.id AS sighting_id, s.first_seen_at, s.last_seen_at,
       substr(s.url_sha256, 1, 16) AS url_prefix, s.host, s.platform, s.media_type,
       (SELECT MIN(m.content_id) FROM sighting_matches m WHERE m.sighting_id = s.id)
         AS content_id,
       l.status, l.last_live_at AS live_last_live_at, l.checks,
       r.last_live_at AS r_last_live_at, r.first_removed_at, r.confirmed_at,
       r.removed_state, r.resurfaced_at,
       (SELECT COUNT(*) FROM removals x WHERE x.sighting_id = s.id AND x.episode <> 1)
         AS later_episodes,
       (SELECT MIN(n.sent_at) FROM notice_sightings ns JOIN notices n ON n.id = ns.notice_id
         WHERE ns.sighting_id = s.id) AS first_notice_at
FROM sightings s
LEFT JOIN liveness l ON l.sighting_id = s.id
LEFT JOIN removals r ON r.sighting_id = s.id AND r.episode = 1
WHERE s.matched = 1;

INSERT INTO spread_copies SELECT * FROM spread_copies_source ORDER BY sighting_id;

-- Sightings: a sighting that is (or becomes) matched gets its whole row; one
-- that stops being matched loses it; the copied columns follow updates.
CREATE TRIGGER spread_copies_sighting_insert AFTER INSERT ON sightings
WHEN NEW.matched = 1
BEGIN
    INSERT OR REPLACE INTO spread_copies
    SELECT * FROM spread_copies_source WHERE sighting_id = NEW.id;
END;

CREATE TRIGGER spread_copies_sighting_matched AFTER UPDATE OF matched, id ON sightings
BEGIN
    DELETE FROM spread_copies WHERE sighting_id = OLD.id AND (OLD.id <> NEW.id OR NEW.matched <> 1);
    INSERT OR REPLACE INTO spread_copies
    SELECT * FROM spread_copies_source WHERE sighting_id = NEW.id;
END;

CREATE TRIGGER spread_copies_sighting_update
AFTER UPDATE OF first_seen_at, last_seen_at, url_sha256, host, platform, media_type ON sightings
WHEN NEW.matched = 1
BEGIN
    UPDATE spread_copies SET first_seen_at = NEW.first_seen_at,
        last_seen_at = NEW.last_seen_at, url_prefix = substr(NEW.url_sha256, 1, 16),
        host = NEW.host, platform = NEW.platform, media_type = NEW.media_type
    WHERE sighting_id = NEW.id;
END;

-- Matches: the variant cluster is the lowest matched item.
CREATE TRIGGER spread_copies_match_insert AFTER INSERT ON sighting_matches
BEGIN
    UPDATE spread_copies SET content_id = (SELECT MIN(m.content_id) FROM sighting_matches m
        WHERE m.sighting_id = spread_copies.sighting_id)
    WHERE sighting_id = NEW.sighting_id;
END;

CREATE TRIGGER spread_copies_match_delete AFTER DELETE ON sighting_matches
BEGIN
    UPDATE spread_copies SET content_id = (SELECT MIN(m.content_id) FROM sighting_matches m
        WHERE m.sighting_id = spread_copies.sighting_id)
    WHERE sighting_id = OLD.sighting_id;
END;

CREATE TRIGGER spread_copies_match_update AFTER UPDATE OF sighting_id, content_id ON sighting_matches
BEGIN
    UPDATE spread_copies SET content_id = (SELECT MIN(m.content_id) FROM sighting_matches m
        WHERE m.sighting_id = spread_copies.sighting_id)
    WHERE sighting_id IN (OLD.sighting_id, NEW.sighting_id);
END;

-- Liveness: status, last live and check count (lease columns do not fire).
CREATE TRIGGER spread_copies_liveness_insert AFTER INSERT ON liveness
BEGIN
    UPDATE spread_copies SET status = NEW.status, live_last_live_at = NEW.last_live_at,
        checks = NEW.checks
    WHERE sighting_id = NEW.sighting_id;
END;

CREATE TRIGGER spread_copies_liveness_update
AFTER UPDATE OF sighting_id, status, last_live_at, checks ON liveness
BEGIN
    UPDATE spread_copies SET status = NULL, live_last_live_at = NULL, checks = NULL
    WHERE sighting_id = OLD.sighting_id AND OLD.sighting_id <> NEW.sighting_id;
    UPDATE spread_copies SET status = NEW.status, live_last_live_at = NEW.last_live_at,
        checks = NEW.checks
    WHERE sighting_id = NEW.sighting_id;
END;

CREATE TRIGGER spread_copies_liveness_delete AFTER DELETE ON liveness
BEGIN
    UPDATE spread_copies SET status = NULL, live_last_live_at = NULL, checks = NULL
    WHERE sighting_id = OLD.sighting_id;
END;

-- Removals: episode 1 and the count of the others.
CREATE TRIGGER spread_copies_removal_insert AFTER INSERT ON removals
BEGIN
    UPDATE spread_copies SET
        (r_last_live_at, first_removed_at, confirmed_at, removed_state, resurfaced_at) =
        (SELECT r.last_live_at, r.first_removed_at, r.confirmed_at, r.removed_state,
                r.resurfaced_at
         FROM removals r WHERE r.sighting_id = spread_copies.sighting_id AND r.episode = 1),
        later_episodes = (SELECT COUNT(*) FROM removals r
            WHERE r.sighting_id = spread_copies.sighting_id AND r.episode <> 1)
    WHERE sighting_id = NEW.sighting_id;
END;

CREATE TRIGGER spread_copies_removal_update AFTER UPDATE ON removals
BEGIN
    UPDATE spread_copies SET
        (r_last_live_at, first_removed_at, confirmed_at, removed_state, resurfaced_at) =
        (SELECT r.last_live_at, r.first_removed_at, r.confirmed_at, r.removed_state,
                r.resurfaced_at
         FROM removals r WHERE r.sighting_id = spread_copies.sighting_id AND r.episode = 1),
        later_episodes = (SELECT COUNT(*) FROM removals r
            WHERE r.sighting_id = spread_copies.sighting_id AND r.episode <> 1)
    WHERE sighting_id IN (OLD.sighting_id, NEW.sighting_id);
END;

CREATE TRIGGER spread_copies_removal_delete AFTER DELETE ON removals
BEGIN
    UPDATE spread_copies SET
        (r_last_live_at, first_removed_at, confirmed_at, removed_state, resurfaced_at) =
        (SELECT r.last_live_at, r.first_removed_at, r.confirmed_at, r.removed_state,
                r.resurfaced_at
         FROM removals r WHERE r.sighting_id = spread_copies.sighting_id AND r.episode = 1),
        later_episodes = (SELECT COUNT(*) FROM removals r
            WHERE r.sighting_id = spread_copies.sighting_id AND r.episode <> 1)
    WHERE sighting_id = OLD.sighting_id;
END;

-- Notices: the first notice sent covering the copy.
CREATE TRIGGER spread_copies_notice_link_insert AFTER INSERT ON notice_sightings
BEGIN
    UPDATE spread_copies SET first_notice_at = (SELECT MIN(n.sent_at)
        FROM notice_sightings ns JOIN notices n ON n.id = ns.notice_id
        WHERE ns.sighting_id = spread_copies.sighting_id)
    WHERE sighting_id = NEW.sighting_id;
END;

CREATE TRIGGER spread_copies_notice_link_delete AFTER DELETE ON notice_sightings
BEGIN
    UPDATE spread_copies SET first_notice_at = (SELECT MIN(n.sent_at)
        FROM notice_sightings ns JOIN notices n ON n.id = ns.notice_id
        WHERE ns.sighting_id = spread_copies.sighting_id)
    WHERE sighting_id = OLD.sighting_id;
END;

CREATE TRIGGER spread_copies_notice_link_update
AFTER UPDATE OF notice_id, sighting_id ON notice_sightings
BEGIN
    UPDATE spread_copies SET first_notice_at = (SELECT MIN(n.sent_at)
        FROM notice_sightings ns JOIN notices n ON n.id = ns.notice_id
        WHERE ns.sighting_id = spread_copies.sighting_id)
    WHERE sighting_id IN (OLD.sighting_id, NEW.sighting_id);
END;

CREATE TRIGGER spread_copies_notice_update AFTER UPDATE OF id, sent_at ON notices
BEGIN
    UPDATE spread_copies SET first_notice_at = (SELECT MIN(n.sent_at)
        FROM notice_sightings ns JOIN notices n ON n.id = ns.notice_id
        WHERE ns.sighting_id = spread_copies.sighting_id)
    WHERE sighting_id IN (SELECT ns.sighting_id FROM notice_sightings ns
        WHERE ns.notice_id IN (OLD.id, NEW.id));
END;

CREATE TRIGGER spread_copies_notice_delete AFTER DELETE ON notices
BEGIN
    UPDATE spread_copies SET first_notice_at = (SELECT MIN(n.sent_at)
        FROM notice_sightings ns JOIN notices n ON n.id = ns.notice_id
        WHERE ns.sighting_id = spread_copies.sighting_id)
    WHERE sighting_id IN (SELECT ns.sighting_id FROM notice_sightings ns
        WHERE ns.notice_id = OLD.id);
END;
