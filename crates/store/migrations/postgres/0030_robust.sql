-- echotrace schema v30 (postgres): robust matching (issue 14). Keep in step with ../sqlite.

-- Local DERIVED hashes of items whose original the operator added as a
-- file (crop-grid windows, content rectangles of the original's borders,
-- the border-cropped vPDQ of a video). They live in this table only, never
-- in `signals`: exports, feeds and API "signals" read `signals`, so a
-- derived hash can never be exported or shown as the item's hash. One row
-- per (content item, kind); `value` is the kind's serialisation
-- (pdq_windows: `dpdq1:` + base64 records; vpdq_cropped: a vPDQ signal).
CREATE TABLE derived_hashes (
    content_id BIGINT NOT NULL,
    bank_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (content_id, kind)
);
CREATE INDEX derived_hashes_bank ON derived_hashes(bank_id);

-- Per-bank robust-matching settings as JSON ({"dihedral":true,"window":true});
-- '{}' = the defaults (everything on).
ALTER TABLE banks ADD COLUMN matching TEXT NOT NULL DEFAULT '{}';

-- Which channel found a match (plain, dihedral, border, window, region)
-- and how (rectangles, variant, plain distance) as JSON.
ALTER TABLE matches ADD COLUMN channel TEXT NOT NULL DEFAULT 'plain';
ALTER TABLE matches ADD COLUMN channel_detail TEXT;
