-- A bank video hashed at every frame has a vPDQ value of tens of KiB, over
-- PostgreSQL's B-tree row limit (8191 bytes), so the (signal_type, value)
-- B-tree made such inserts fail (issue 12). Exact lookups by value use a
-- hash index instead, which stores only a hash of the value.
-- Keep in step with ../sqlite (whose B-trees have no such limit).
DROP INDEX signals_type_value;
CREATE INDEX signals_value_hash ON signals USING hash (value);
