-- PostgreSQL replaces its (signal_type, value) B-tree with a hash index on
-- value here (vPDQ values of bank videos exceed its B-tree row limit).
-- SQLite's B-trees have no such limit: its index stays as it is.
SELECT 1;
