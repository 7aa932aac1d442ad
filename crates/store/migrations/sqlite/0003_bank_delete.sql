-- echotrace schema v3 (SQLite): banks can be deleted. Keep in step with ../postgres.

-- Match history outlives its bank: matches keep the id of a deleted bank
-- (dangling, like content_id already is for deleted content), and the bank's
-- name and settings survive in the `bank.delete` audit entry.
-- SQLite cannot drop a constraint, so `matches` is rebuilt without the
-- foreign key on bank_id. Foreign keys stay on (the migration runs in a
-- transaction, where that pragma cannot change), so the rebuild never leaves
-- a child row without its parent: copy matches and decisions aside, drop the
-- child (decisions) before its parent (matches), recreate both, copy back
-- (ids preserved), drop the copies.
CREATE TABLE matches_v2_copy AS SELECT * FROM matches;
CREATE TABLE decisions_v2_copy AS SELECT * FROM decisions;
DROP TABLE decisions;
DROP TABLE matches;

CREATE TABLE matches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_id INTEGER NOT NULL REFERENCES submissions(id),
    bank_id INTEGER NOT NULL,
    content_id INTEGER NOT NULL,
    signal_id INTEGER,
    signal_type TEXT NOT NULL,
    matched_value TEXT NOT NULL,
    query_value TEXT NOT NULL,
    distance INTEGER,
    similarity REAL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'confirmed', 'rejected')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX matches_submission ON matches(submission_id);
CREATE INDEX matches_status ON matches(status, id);
CREATE INDEX matches_bank ON matches(bank_id, id);

CREATE TABLE decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    match_id INTEGER NOT NULL REFERENCES matches(id),
    verdict TEXT NOT NULL CHECK (verdict IN ('confirm', 'reject')),
    note TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    publish_after INTEGER NOT NULL
);
CREATE INDEX decisions_match ON decisions(match_id);

INSERT INTO matches (id, submission_id, bank_id, content_id, signal_id, signal_type,
    matched_value, query_value, distance, similarity, status, created_at, updated_at)
SELECT id, submission_id, bank_id, content_id, signal_id, signal_type,
    matched_value, query_value, distance, similarity, status, created_at, updated_at
FROM matches_v2_copy ORDER BY id;
INSERT INTO decisions (id, match_id, verdict, note, actor, created_at, publish_after)
SELECT id, match_id, verdict, note, actor, created_at, publish_after
FROM decisions_v2_copy ORDER BY id;
DROP TABLE matches_v2_copy;
DROP TABLE decisions_v2_copy;
