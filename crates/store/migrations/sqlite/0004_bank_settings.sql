-- echotrace schema v4 (SQLite): per-bank text equivalence lists. Keep in step with ../postgres.

-- Every version of every bank's equivalence list is kept: only hashes of
-- bank text are stored, so items already in a bank cannot be re-signed when
-- its list changes. Each text signal records the version it was signed with
-- (signals.equivalences_id) and raw-text lookups are signed once per version
-- present, so old items keep matching under the list they were hashed with.
CREATE TABLE bank_text_equivalences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bank_id INTEGER NOT NULL,
    digest TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX bank_text_equivalences_bank ON bank_text_equivalences(bank_id, id);

-- The bank's current list (NULL = none), denormalised for cheap reads.
ALTER TABLE banks ADD COLUMN text_equivalences_id INTEGER;
ALTER TABLE banks ADD COLUMN text_equivalences TEXT;

-- The list version a text_minhash signal was signed with (NULL = none, or
-- a signature supplied ready-made by the caller).
ALTER TABLE signals ADD COLUMN equivalences_id INTEGER;
