-- echotrace schema v64 (sqlite): compact sighting keys (issue 15). Keep in
-- step with ../postgres.
--
-- Both indexes below are keyed by SHA-256 digests, so every new sighting
-- lands on a random leaf page of each, and an import that outgrows the
-- page cache rewrites a page per row into the WAL. Their size is what that
-- costs: at 100,000 Telegram messages the two were 26 MB of hex text, more
-- than the writer's page cache.
--
-- * The unique key of a sighting (same URL, same bytes) is the two digests
--   decoded to bytes: 64 bytes (32 for an item without bytes) instead of 128
--   hex characters. Upserts name the same expression as their conflict
--   target, and lookups compare it with the decoded key.
-- * The content-dedup index holds the first 8 hex digits of the content
--   digest, and only of items with bytes (a third of a Telegram import's
--   sightings are bare outlinks, all keyed ''). Queries state both the
--   prefix (for the index) and the whole digest (for the answer).
DROP INDEX sightings_url_content;
CREATE UNIQUE INDEX sightings_key ON sightings(unhex(url_sha256 || content_sha256));
DROP INDEX sightings_content;
CREATE INDEX sightings_content_prefix ON sightings(substr(content_sha256, 1, 8))
    WHERE content_sha256 <> '';
