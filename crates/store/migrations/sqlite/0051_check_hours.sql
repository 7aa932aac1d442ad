-- echotrace schema v51 (sqlite): liveness checks counted per UTC hour and
-- verdict, so a report counts ten million checks without reading them.
-- Keep in step with ../postgres.
--
-- hour = floor(checked_at / 3 600 000) (floor also for times before 1970).
-- Triggers keep n equal to the rows of liveness_checks in that hour with
-- that state on every insert, delete (including the cascade from a deleted
-- sighting) and update; a report adds whole hours from here and counts the
-- partial hours at the window's edges from liveness_checks itself, so its
-- figures are exactly a COUNT(*) over the window. Rows may reach n = 0.
CREATE TABLE liveness_check_hours (
    hour INTEGER NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, state)
) WITHOUT ROWID;

INSERT INTO liveness_check_hours (hour, state, n)
SELECT CASE WHEN checked_at >= 0 THEN checked_at / 3600000
            ELSE (checked_at + 1) / 3600000 - 1 END AS hour,
       state, COUNT(*)
FROM liveness_checks GROUP BY 1, 2;

CREATE TRIGGER liveness_checks_hours_insert AFTER INSERT ON liveness_checks
BEGIN
    INSERT INTO liveness_check_hours (hour, state, n)
    VALUES (CASE WHEN NEW.checked_at >= 0 THEN NEW.checked_at / 3600000
                 ELSE (NEW.checked_at + 1) / 3600000 - 1 END, NEW.state, 1)
    ON CONFLICT (hour, state) DO UPDATE SET n = liveness_check_hours.n + 1;
END;

CREATE TRIGGER liveness_checks_hours_delete AFTER DELETE ON liveness_checks
BEGIN
    UPDATE liveness_check_hours SET n = n - 1
    WHERE hour = CASE WHEN OLD.checked_at >= 0 THEN OLD.checked_at / 3600000
                      ELSE (OLD.checked_at + 1) / 3600000 - 1 END
      AND state = OLD.state;
END;

CREATE TRIGGER liveness_checks_hours_update AFTER UPDATE OF checked_at, state ON liveness_checks
BEGIN
    UPDATE liveness_check_hours SET n = n - 1
    WHERE hour = CASE WHEN OLD.checked_at >= 0 THEN OLD.checked_at / 3600000
                      ELSE (OLD.checked_at + 1) / 3600000 - 1 END
      AND state = OLD.state;
    INSERT INTO liveness_check_hours (hour, state, n)
    VALUES (CASE WHEN NEW.checked_at >= 0 THEN NEW.checked_at / 3600000
                 ELSE (NEW.checked_at + 1) / 3600000 - 1 END, NEW.state, 1)
    ON CONFLICT (hour, state) DO UPDATE SET n = liveness_check_hours.n + 1;
END;
