-- echotrace schema v63 (sqlite): a sighting's signals that repeat its own
-- columns are no longer stored as rows (issue 15). Keep in step with
-- ../postgres.
--
-- Every collected item's signals end in `sha256` (= content_sha256, for an
-- item with bytes), `url` (= url_canonical) and `url_sha256` (= url_sha256):
-- three of a Telegram message's five rows, both rows of an outlink. They
-- are now rebuilt from the sighting when read (store::sighting), and
-- `implied_signals` says which: 1 = sha256, 2 = url, 4 = url_sha256,
-- appended after the stored rows in that order (the order they were
-- written in). A sighting written without them (0) has only its rows.
ALTER TABLE sightings ADD COLUMN implied_signals INTEGER NOT NULL DEFAULT 0;

UPDATE sightings SET implied_signals =
    (CASE WHEN content_sha256 <> '' AND EXISTS (SELECT 1 FROM sighting_signals g
        WHERE g.sighting_id = sightings.id AND g.signal_type = 'sha256'
        AND g.value = sightings.content_sha256) THEN 1 ELSE 0 END)
  + (CASE WHEN EXISTS (SELECT 1 FROM sighting_signals g
        WHERE g.sighting_id = sightings.id AND g.signal_type = 'url'
        AND g.value = sightings.url_canonical) THEN 2 ELSE 0 END)
  + (CASE WHEN EXISTS (SELECT 1 FROM sighting_signals g
        WHERE g.sighting_id = sightings.id AND g.signal_type = 'url_sha256'
        AND g.value = sightings.url_sha256) THEN 4 ELSE 0 END)
WHERE EXISTS (SELECT 1 FROM sighting_signals g WHERE g.sighting_id = sightings.id
    AND g.signal_type IN ('sha256', 'url', 'url_sha256'));

DELETE FROM sighting_signals WHERE signal_type IN ('sha256', 'url', 'url_sha256')
    AND EXISTS (SELECT 1 FROM sightings s WHERE s.id = sighting_signals.sighting_id
        AND ((sighting_signals.signal_type = 'sha256' AND s.content_sha256 <> ''
              AND sighting_signals.value = s.content_sha256)
          OR (sighting_signals.signal_type = 'url' AND sighting_signals.value = s.url_canonical)
          OR (sighting_signals.signal_type = 'url_sha256'
              AND sighting_signals.value = s.url_sha256)));
