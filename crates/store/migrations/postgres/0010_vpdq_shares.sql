-- vPDQ matches record both shares (issue 12): `similarity` holds the query
-- share (0..1) as before; `compared_similarity` the share of the bank
-- video's frames with a partner (0..1). NULL for other signal types.
-- Keep in step with ../sqlite.
ALTER TABLE matches ADD COLUMN compared_similarity DOUBLE PRECISION;
