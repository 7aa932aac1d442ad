-- echotrace schema v60 (PostgreSQL): replicas as one service (issue 17).
-- Keep in step with ../sqlite.

-- The database's identity, made once when the schema is created: an index
-- snapshot carries it, and a snapshot of another database is refused.
CREATE TABLE instance (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    identity TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
INSERT INTO instance (id, identity, created_at)
VALUES (1, md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text),
        (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT);

-- Counters shared by every process on the database, in time buckets: the
-- flood guard (lookups and hits per bank item) and the console login
-- throttle (failures per username and per client address). `bucket` is the
-- bucket's start (Unix ms); `replica` separates rows written by different
-- processes where no cross-process lock is wanted ('' where it is); a row
-- may be swept once `expires_at` has passed.
CREATE TABLE shared_counters (
    name TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    replica TEXT NOT NULL DEFAULT '',
    count BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (name, bucket, replica)
);
CREATE INDEX shared_counters_expiry ON shared_counters(expires_at);
