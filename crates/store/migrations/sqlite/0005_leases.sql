-- echotrace schema v5 (sqlite): named leases. Keep in step with ../postgres.

-- A lease names one piece of background work (an exchange's fetcher, the
-- outbox worker, a retention sweep, a collector job) that exactly one process
-- may run at a time. It is taken or renewed with one conditional upsert and
-- expires on its own when its holder dies. `epoch` grows on every change of
-- holder: work committed under a lease re-checks (holder, epoch) in the same
-- transaction, so a holder that lost its lease while paused cannot commit.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
