-- echotrace schema v62 (postgres). Keep in step with ../sqlite.
-- SQLite replaces its (signal_type, value) index with one on the value's
-- first 16 characters here. PostgreSQL already looks values up through a
-- hash index (0012), which stores only a hash of the value: nothing to do.
SELECT 1;
