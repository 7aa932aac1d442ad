-- echotrace schema v51 (postgres): liveness checks counted per UTC hour and
-- verdict, so a report counts ten million checks without reading them.
-- Keep in step with ../sqlite.
--
-- hour = floor(checked_at / 3 600 000) (floor also for times before 1970).
-- A trigger keeps n equal to the rows of liveness_checks in that hour with
-- that state on every insert, delete (including the cascade from a deleted
-- sighting) and update; a report adds whole hours from here and counts the
-- partial hours at the window's edges from liveness_checks itself, so its
-- figures are exactly a COUNT(*) over the window. Rows may reach n = 0.
-- Writers that record many checks in one transaction apply them in
-- (hour, state) order, so concurrent writers take these rows' locks in the
-- same order.
CREATE TABLE liveness_check_hours (
    hour BIGINT NOT NULL,
    state TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (hour, state)
);

CREATE FUNCTION liveness_check_hour(t BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN t >= 0 THEN t / 3600000 ELSE (t + 1) / 3600000 - 1 END
$$;

INSERT INTO liveness_check_hours (hour, state, n)
SELECT liveness_check_hour(checked_at), state, COUNT(*)
FROM liveness_checks GROUP BY 1, 2;

CREATE FUNCTION liveness_checks_hours_tally() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR TG_OP = 'UPDATE' THEN
        UPDATE liveness_check_hours SET n = n - 1
        WHERE hour = liveness_check_hour(OLD.checked_at) AND state = OLD.state;
    END IF;
    IF TG_OP = 'INSERT' OR TG_OP = 'UPDATE' THEN
        INSERT INTO liveness_check_hours (hour, state, n)
        VALUES (liveness_check_hour(NEW.checked_at), NEW.state, 1)
        ON CONFLICT (hour, state) DO UPDATE SET n = liveness_check_hours.n + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER liveness_checks_hours
AFTER INSERT OR DELETE OR UPDATE OF checked_at, state ON liveness_checks
FOR EACH ROW EXECUTE FUNCTION liveness_checks_hours_tally();
