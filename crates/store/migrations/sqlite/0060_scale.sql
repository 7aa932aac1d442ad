-- echotrace schema v60 (sqlite): replicas as one service (issue 17).
-- Keep in step with ../postgres.

-- The database's identity, made once when the schema is created: an index
-- snapshot carries it, and a snapshot of another database is refused.
CREATE TABLE instance (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    identity TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
INSERT INTO instance (id, identity, created_at)
VALUES (1, lower(hex(randomblob(16))), CAST(strftime('%s', 'now') AS INTEGER) * 1000);

-- Counters shared by every process on the database, in time buckets: the
-- flood guard (lookups and hits per bank item) and the console login
-- throttle (failures per username and per client address). `bucket` is the
-- bucket's start (Unix ms); `replica` separates rows written by different
-- processes where no cross-process lock is wanted ('' where it is); a row
-- may be swept once `expires_at` has passed.
CREATE TABLE shared_counters (
    name TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    replica TEXT NOT NULL DEFAULT '',
    count INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (name, bucket, replica)
);
CREATE INDEX shared_counters_expiry ON shared_counters(expires_at);
