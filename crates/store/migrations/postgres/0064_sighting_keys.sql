-- echotrace schema v64 (postgres): compact sighting keys (issue 15). Keep in
-- step with ../sqlite, which says why.
DROP INDEX sightings_url_content;
CREATE UNIQUE INDEX sightings_key ON sightings((decode(url_sha256 || content_sha256, 'hex')));
DROP INDEX sightings_content;
CREATE INDEX sightings_content_prefix ON sightings((substr(content_sha256, 1, 8)))
    WHERE content_sha256 <> '';
