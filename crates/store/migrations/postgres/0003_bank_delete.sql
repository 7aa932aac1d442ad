-- echotrace schema v3 (PostgreSQL): banks can be deleted. Keep in step with ../sqlite.

-- Match history outlives its bank: matches keep the id of a deleted bank
-- (dangling, like content_id already is for deleted content), and the bank's
-- name and settings survive in the `bank.delete` audit entry.
ALTER TABLE matches DROP CONSTRAINT IF EXISTS matches_bank_id_fkey;
