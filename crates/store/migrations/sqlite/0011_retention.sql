-- Retention of recorded lookups (issue 12, `--retain-submissions`): a sweep
-- deletes a submission's audit trail by target (`submission:ID`,
-- `match:ID`), which needs an index to stay cheap as the log grows.
CREATE INDEX audit_log_target ON audit_log(target);
