-- echotrace schema v52 (postgres): one narrow summary row per copy (matched
-- sighting) with everything a transparency report reads per copy, so a
-- report page reads one table in id order instead of seeking into
-- sighting_matches, liveness, removals and notices for every copy.
-- Keep in step with ../sqlite (the column meanings are described there).
--
-- A row exists exactly for each sighting with matched = 1; triggers below
-- refresh the affected columns from the raw tables on every insert, update
-- and delete of those tables (cascades included); the row goes with its
-- sighting (ON DELETE CASCADE). Writers need not know.
CREATE TABLE spread_copies (
    sighting_id BIGINT PRIMARY KEY REFERENCES sightings(id) ON DELETE CASCADE,
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    url_prefix TEXT NOT NULL,
    host TEXT NOT NULL,
    platform TEXT NOT NULL,
    media_type TEXT NOT NULL,
    content_id BIGINT,
    status TEXT,
    live_last_live_at BIGINT,
    checks BIGINT,
    r_last_live_at BIGINT,
    first_removed_at BIGINT,
    confirmed_at BIGINT,
    removed_state TEXT,
    resurfaced_at BIGINT,
    later_episodes BIGINT NOT NULL DEFAULT 0,
    first_notice_at BIGINT,
    -- The columns above as one JSON array (in this order), so a report page
    -- is the concatenation of stored text instead of JSON built per read.
    -- Set by the BEFORE trigger below (json_build_array is not immutable,
    -- so it cannot be a generated column here).
    packed TEXT NOT NULL DEFAULT ''
);

CREATE FUNCTION spread_copies_pack() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.packed := json_build_array(NEW.sighting_id, NEW.url_prefix, NEW.content_id, NEW.host,
        NEW.platform, NEW.media_type, NEW.first_seen_at, NEW.last_seen_at, NEW.status,
        NEW.live_last_live_at, NEW.checks, NEW.r_last_live_at, NEW.first_removed_at,
        NEW.confirmed_at, NEW.removed_state, NEW.resurfaced_at, NEW.later_episodes,
        NEW.first_notice_at)::text;
    RETURN NEW;
END
$$;

CREATE TRIGGER spread_copies_pack BEFORE INSERT OR UPDATE ON spread_copies
FOR EACH ROW EXECUTE FUNCTION spread_copies_pack();

-- The whole row of each matched sighting, from the raw tables (used by the
-- back-fill and whenever a sighting becomes matched).
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

-- (packed, the last column, is left to the trigger.)
INSERT INTO spread_copies SELECT * FROM spread_copies_source ORDER BY sighting_id;

-- Replace copy `copy_id`'s row by the raw tables' (none when not matched).
CREATE FUNCTION spread_copies_reload(copy_id BIGINT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM spread_copies WHERE sighting_id = copy_id;
    INSERT INTO spread_copies SELECT * FROM spread_copies_source v WHERE v.sighting_id = copy_id;
END
$$;

-- Sightings: a sighting that is (or becomes) matched gets its whole row; one
-- that stops being matched loses it; the copied columns follow updates.
CREATE FUNCTION spread_copies_sighting() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.matched = 1 THEN
            PERFORM spread_copies_reload(NEW.id);
        END IF;
    ELSIF OLD.id <> NEW.id OR OLD.matched IS DISTINCT FROM NEW.matched THEN
        DELETE FROM spread_copies WHERE sighting_id = OLD.id;
        PERFORM spread_copies_reload(NEW.id);
    ELSIF NEW.matched = 1 THEN
        UPDATE spread_copies SET first_seen_at = NEW.first_seen_at,
            last_seen_at = NEW.last_seen_at, url_prefix = substr(NEW.url_sha256, 1, 16),
            host = NEW.host, platform = NEW.platform, media_type = NEW.media_type
        WHERE sighting_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER spread_copies_sighting
AFTER INSERT OR UPDATE OF id, matched, first_seen_at, last_seen_at, url_sha256, host, platform,
    media_type ON sightings
FOR EACH ROW EXECUTE FUNCTION spread_copies_sighting();

-- Matches: the variant cluster is the lowest matched item.
CREATE FUNCTION spread_copies_match() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE spread_copies c SET content_id = (SELECT MIN(m.content_id) FROM sighting_matches m
        WHERE m.sighting_id = c.sighting_id)
    WHERE c.sighting_id IN (
        CASE WHEN TG_OP <> 'INSERT' THEN OLD.sighting_id END,
        CASE WHEN TG_OP <> 'DELETE' THEN NEW.sighting_id END);
    RETURN NULL;
END
$$;

CREATE TRIGGER spread_copies_match
AFTER INSERT OR DELETE OR UPDATE OF sighting_id, content_id ON sighting_matches
FOR EACH ROW EXECUTE FUNCTION spread_copies_match();

-- Liveness: status, last live and check count (lease columns do not fire).
CREATE FUNCTION spread_copies_liveness() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.sighting_id <> NEW.sighting_id) THEN
        UPDATE spread_copies SET status = NULL, live_last_live_at = NULL, checks = NULL
        WHERE sighting_id = OLD.sighting_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        UPDATE spread_copies SET status = NEW.status, live_last_live_at = NEW.last_live_at,
            checks = NEW.checks
        WHERE sighting_id = NEW.sighting_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER spread_copies_liveness
AFTER INSERT OR DELETE OR UPDATE OF sighting_id, status, last_live_at, checks ON liveness
FOR EACH ROW EXECUTE FUNCTION spread_copies_liveness();

-- Removals: episode 1 and the count of the others.
CREATE FUNCTION spread_copies_removal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE spread_copies c SET
        (r_last_live_at, first_removed_at, confirmed_at, removed_state, resurfaced_at) =
        (SELECT r.last_live_at, r.first_removed_at, r.confirmed_at, r.removed_state,
                r.resurfaced_at
         FROM removals r WHERE r.sighting_id = c.sighting_id AND r.episode = 1),
        later_episodes = (SELECT COUNT(*) FROM removals r
            WHERE r.sighting_id = c.sighting_id AND r.episode <> 1)
    WHERE c.sighting_id IN (
        CASE WHEN TG_OP <> 'INSERT' THEN OLD.sighting_id END,
        CASE WHEN TG_OP <> 'DELETE' THEN NEW.sighting_id END);
    RETURN NULL;
END
$$;

CREATE TRIGGER spread_copies_removal
AFTER INSERT OR DELETE OR UPDATE ON removals
FOR EACH ROW EXECUTE FUNCTION spread_copies_removal();

-- Notices: the first notice sent covering the copy.
CREATE FUNCTION spread_copies_notice_link() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE spread_copies c SET first_notice_at = (SELECT MIN(n.sent_at)
        FROM notice_sightings ns JOIN notices n ON n.id = ns.notice_id
        WHERE ns.sighting_id = c.sighting_id)
    WHERE c.sighting_id IN (
        CASE WHEN TG_OP <> 'INSERT' THEN OLD.sighting_id END,
        CASE WHEN TG_OP <> 'DELETE' THEN NEW.sighting_id END);
    RETURN NULL;
END
$$;

CREATE TRIGGER spread_copies_notice_link
AFTER INSERT OR DELETE OR UPDATE OF notice_id, sighting_id ON notice_sightings
FOR EACH ROW EXECUTE FUNCTION spread_copies_notice_link();

CREATE FUNCTION spread_copies_notice() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE spread_copies c SET first_notice_at = (SELECT MIN(n.sent_at)
        FROM notice_sightings ns JOIN notices n ON n.id = ns.notice_id
        WHERE ns.sighting_id = c.sighting_id)
    WHERE c.sighting_id IN (SELECT ns.sighting_id FROM notice_sightings ns
        WHERE ns.notice_id = OLD.id OR (TG_OP = 'UPDATE' AND ns.notice_id = NEW.id));
    RETURN NULL;
END
$$;

CREATE TRIGGER spread_copies_notice
AFTER DELETE OR UPDATE OF id, sent_at ON notices
FOR EACH ROW EXECUTE FUNCTION spread_copies_notice();
