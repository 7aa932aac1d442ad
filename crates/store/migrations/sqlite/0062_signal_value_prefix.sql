-- echotrace schema v62 (sqlite). Keep in step with ../postgres.
-- Exact lookups of a signal by value (the feed's backing item, the
-- console's search) go through an index on the value's first 16
-- characters, not the whole value: a PDQ entry shrinks from ~78 to ~30
-- bytes, a text MinHash or vPDQ entry from kilobytes to the same ~30, and
-- the random-keyed index a bulk load rewrites page by page shrinks with it.
-- Queries state both `substr(value, 1, 16) = substr(?, 1, 16)` (for the
-- index) and `value = ?` (for the answer).
DROP INDEX signals_type_value;
CREATE INDEX signals_type_prefix ON signals(signal_type, substr(value, 1, 16));
