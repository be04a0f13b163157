-- The rules on what a submitter writes are checked once per statement, by
-- a trigger over the new rows, instead of by CHECK constraints and a
-- trigger's WHEN clause on every row. Below, under their own marks, two
-- places where a job those rules refuse used to stop a worker's writes for
-- ever: the release of dependents, and the scheduler's rounds.
--
-- Why: PostgreSQL stores a CHECK constraint and a WHEN clause as node text
-- (pg_constraint.conbin, pg_trigger.tgqual) and reads it back and plans it
-- again for every statement that writes the table: every INSERT, and every
-- claim and finish, which re-evaluate all CHECKs. hl.jobs carried 13 CHECKs
-- and a 5 KB WHEN clause, 17 KB of node text, parsed and planned per
-- statement. A plpgsql function's queries are planned once per session and
-- kept. Measured on a 2-core machine (backend CPU from /proc, medians of 9
-- interleaved runs of 10,000 single-row INSERTs and a 40,000-row INSERT ...
-- SELECT): 256 us per single-row INSERT before, 163 us with this; 26.5 and
-- 25.8 us per row of the large one.
--
-- What changes for users: nothing that an INSERT may hold. Every rule that
-- was a CHECK on a column hl_enqueue may write is now refused the way
-- 0008's rules are: SQLSTATE 23514, the rule's name as the constraint name
-- and as the start of the message. The CHECKs on the columns only workers
-- write (state, attempt, errors) stay CHECKs, so a worker's UPDATE is
-- still held to them. A later UPDATE that sets a submitter's column (the
-- table owner's edit; no role below the owner may) is checked per row, as
-- 0008's UPDATE OF trigger did; no worker statement sets those columns
-- (the release of dependents below sets args, to a value it has measured),
-- so rows from before a rule still claim and finish (0001's header).
--
-- An INSERT that breaks a rule is refused at the end of the statement
-- rather than before its row is written; the refusal rolls the whole
-- statement back all the same.

ALTER TABLE hl.jobs
    DROP CONSTRAINT jobs_queue_sane,
    DROP CONSTRAINT jobs_guest_sane,
    DROP CONSTRAINT jobs_function_sane,
    DROP CONSTRAINT jobs_priority_range,
    DROP CONSTRAINT jobs_max_attempts_range,
    DROP CONSTRAINT jobs_memory_positive,
    DROP CONSTRAINT jobs_timeout_positive,
    DROP CONSTRAINT jobs_vm_known,
    DROP CONSTRAINT jobs_unique_key_sane,
    DROP CONSTRAINT jobs_depends_on_sane;

DROP TRIGGER jobs_validate ON hl.jobs;

-- Refuses `job` with the first rule it breaks, in the order below; returns
-- if it breaks none. As with a CHECK, a rule on a null column passes
-- (memory_mb, timeout_ms, vm, unique_key and depends_on may be null: the
-- worker's defaults, no key, no dependencies). guest_name implies 0001's
-- jobs_guest_sane, and memory_range and timeout_range imply its
-- jobs_memory_positive and jobs_timeout_positive, so those names are gone.
-- The limits are 0008's (see its header for where each comes from) and
-- 0001's and 0009's.
CREATE FUNCTION hl.jobs_refuse_if_broken(job hl.jobs) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    input_bytes integer;
BEGIN
    IF jsonb_typeof(job.args) <> 'object' THEN
        RAISE EXCEPTION 'jobs_args_object: args must be a JSON object, not %', jsonb_typeof(job.args)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_args_object', TABLE = 'jobs', SCHEMA = 'hl',
                  HINT = 'Wrap the value in an object, e.g. {"value": ...}.';
    END IF;
    IF octet_length(job.function) > 256 THEN
        RAISE EXCEPTION 'jobs_function_bytes: function is % bytes; at most 256 bytes of UTF-8', octet_length(job.function)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_function_bytes', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
    input_bytes := octet_length(job.args::text);
    IF input_bytes + octet_length(job.function) + 16 > 1048576 THEN
        RAISE EXCEPTION 'jobs_args_size: args is % bytes as JSON text; at most % fit a guest''s 1 MiB input with this function name',
                input_bytes, 1048576 - 16 - octet_length(job.function)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_args_size', TABLE = 'jobs', SCHEMA = 'hl',
                  HINT = 'Pass large data by reference (a URL or a key) instead.';
    END IF;
    IF job.memory_mb NOT BETWEEN 8 AND 4096 THEN
        RAISE EXCEPTION 'jobs_memory_range: memory_mb % is outside 8 to 4096: a guest needs at least 8 MiB, and no worker gives more than 4096',
                job.memory_mb
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_memory_range', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
    IF job.timeout_ms NOT BETWEEN 1 AND 86400000 THEN
        RAISE EXCEPTION 'jobs_timeout_range: timeout_ms % is outside 1 to 86400000 (24 hours)', job.timeout_ms
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_timeout_range', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
    IF job.guest !~ '^[A-Za-z][A-Za-z0-9_.-]{0,63}$' THEN
        RAISE EXCEPTION 'jobs_guest_name: guest % is not a name a guest can be registered under', quote_literal(left(job.guest, 80))
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_guest_name', TABLE = 'jobs', SCHEMA = 'hl',
                  HINT = 'Guest names start with a letter, then up to 63 letters, digits, _ . or -.';
    END IF;
    IF job.run_at IN ('infinity', '-infinity') THEN
        RAISE EXCEPTION 'jobs_run_at_finite: run_at must be a finite time, not %', job.run_at
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_run_at_finite', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
    IF btrim(job.queue) = '' OR char_length(job.queue) > 128 THEN
        RAISE EXCEPTION 'jobs_queue_sane: queue must be 1 to 128 characters, not all blank (it has %)',
                char_length(job.queue)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_queue_sane', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
    IF btrim(job.function) = '' OR char_length(job.function) > 128 THEN
        RAISE EXCEPTION 'jobs_function_sane: function must be 1 to 128 characters, not all blank (it has %)',
                char_length(job.function)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_function_sane', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
    IF job.priority NOT BETWEEN -100 AND 100 THEN
        RAISE EXCEPTION 'jobs_priority_range: priority % is outside -100 to 100', job.priority
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_priority_range', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
    IF job.max_attempts NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'jobs_max_attempts_range: max_attempts % is outside 1 to 1000', job.max_attempts
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_max_attempts_range', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
    IF job.vm NOT IN ('fresh', 'recycled') THEN
        RAISE EXCEPTION 'jobs_vm_known: vm must be ''fresh'', ''recycled'' or null, not %', quote_literal(left(job.vm, 80))
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_vm_known', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
    IF char_length(job.unique_key) NOT BETWEEN 1 AND 256 THEN
        RAISE EXCEPTION 'jobs_unique_key_sane: unique_key must be 1 to 256 characters or null, not % characters',
                char_length(job.unique_key)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_unique_key_sane', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
    IF cardinality(job.depends_on) NOT BETWEEN 1 AND 1000 OR array_position(job.depends_on, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'jobs_depends_on_sane: depends_on must list 1 to 1000 job ids and no null, or be null; it lists %',
                cardinality(job.depends_on)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_depends_on_sane', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
END
$$;

-- One query over the statement's new rows, whatever their number. The
-- WHERE clause restates the rules above as one expression, evaluated inline
-- for each row: the function above (a call per row) runs only for the
-- first row it will refuse. A rule that is null for a row passes, as in
-- the function. The run_at rule is the only one not also checked on
-- UPDATE: workers set run_at (retries, hand-backs).
CREATE FUNCTION hl.jobs_validate_inserted() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    broken hl.jobs;
BEGIN
    SELECT * INTO broken FROM inserted AS job
    WHERE NOT (jsonb_typeof(job.args) = 'object'
               AND octet_length(job.function) <= 256
               AND octet_length(job.args::text) + octet_length(job.function) + 16 <= 1048576
               AND job.memory_mb BETWEEN 8 AND 4096 IS NOT FALSE
               AND job.timeout_ms BETWEEN 1 AND 86400000 IS NOT FALSE
               AND job.guest ~ '^[A-Za-z][A-Za-z0-9_.-]{0,63}$'
               AND job.run_at NOT IN ('infinity', '-infinity')
               AND btrim(job.queue) <> '' AND char_length(job.queue) <= 128
               AND btrim(job.function) <> '' AND char_length(job.function) <= 128
               AND job.priority BETWEEN -100 AND 100
               AND job.max_attempts BETWEEN 1 AND 1000
               AND job.vm IN ('fresh', 'recycled') IS NOT FALSE
               AND char_length(job.unique_key) BETWEEN 1 AND 256 IS NOT FALSE
               AND (cardinality(job.depends_on) BETWEEN 1 AND 1000
                    AND array_position(job.depends_on, NULL) IS NULL) IS NOT FALSE)
    LIMIT 1;
    IF FOUND THEN
        PERFORM hl.jobs_refuse_if_broken(broken);
        -- Only if the expression above and the function disagree.
        RAISE EXCEPTION 'jobs_validate: job % breaks a rule that hl.jobs_refuse_if_broken does not name', broken.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_validate', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
    RETURN NULL;
END
$$;

-- The name is 0008's, so `ALTER TABLE hl.jobs DISABLE TRIGGER
-- jobs_validate` still lets the owner insert a row from before the rules.
CREATE TRIGGER jobs_validate
    AFTER INSERT ON hl.jobs
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION hl.jobs_validate_inserted();

CREATE OR REPLACE FUNCTION hl.jobs_validate() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM hl.jobs_refuse_if_broken(NEW);
    RETURN NEW;
END
$$;

CREATE TRIGGER jobs_validate_update
    BEFORE UPDATE OF queue, guest, function, args, priority, max_attempts, timeout_ms, memory_mb, vm,
                     unique_key, depends_on ON hl.jobs
    FOR EACH ROW EXECUTE FUNCTION hl.jobs_validate();

-- MARK: Releasing a dependent whose inputs no longer fit

-- 0009's release gave a dependent its dependencies' results in its args
-- without asking whether they fit the guest's 1 MiB input. When they did
-- not (one result near the limit is enough), the UPDATE that released the
-- dependent was refused (jobs_args_size), and with it the statement that
-- finished the dependency: the worker retried that finish, and every other
-- outcome of its batch, for ever. Any tenant could stall a worker so, with
-- two INSERTs. Now a dependent whose args with the results would not fit
-- is discarded as invalid_job, saying how large they would be (its own
-- dependents are then cancelled by this trigger, as for any discarded
-- job), and the finish goes through. The results' sizes are summed before
-- they are combined, and only until they pass the limit, so a fan-in over
-- many large results is never built (jsonb's own limit, 256 MiB, would
-- fail the finish too) and costs the finish no more than about 2 MiB of
-- text. Otherwise as in 0009, with its reasons.
CREATE OR REPLACE FUNCTION hl.jobs_release_dependents() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    any_available boolean;
BEGIN
    PERFORM 1 FROM hl.jobs AS j
    WHERE j.depends_on @> ARRAY[NEW.id] AND j.state = 'pending'
    ORDER BY j.id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF NEW.state = 'completed' THEN
        WITH ready AS (
            SELECT j.id, j.args, j.depends_on, 1048576 - 16 - octet_length(j.function) AS room
            FROM hl.jobs AS j
            WHERE j.depends_on @> ARRAY[NEW.id] AND j.state = 'pending'
              AND NOT EXISTS (SELECT 1 FROM hl.jobs AS d
                              WHERE d.id = ANY (j.depends_on) AND d.state <> 'completed')
        ), measured AS (
            -- The results' running size, read until it passes the room:
            -- at most one result beyond it is ever turned into text.
            SELECT r.*, (SELECT s.running FROM (
                    SELECT sum(octet_length(d.result::text)) OVER (ORDER BY d.id ROWS UNBOUNDED PRECEDING) AS running
                    FROM hl.jobs AS d WHERE d.id = ANY (r.depends_on)) AS s
                WHERE s.running > r.room LIMIT 1) AS results_overflow
            FROM ready AS r
        ), combined AS (
            SELECT r.id, r.room, r.results_overflow, merged.args, octet_length(merged.args::text) AS bytes
            FROM measured AS r
            CROSS JOIN LATERAL (SELECT CASE
                WHEN jsonb_typeof(r.args) <> 'object' THEN r.args
                WHEN r.results_overflow IS NOT NULL THEN NULL
                ELSE r.args || jsonb_build_object('hl_dependency_results',
                    (SELECT coalesce(jsonb_agg(jsonb_build_object('id', d.id, 'result', d.result) ORDER BY d.id), '[]')
                     FROM hl.jobs AS d WHERE d.id = ANY (r.depends_on)))
                END AS args) AS merged
        ), released AS (
            UPDATE hl.jobs AS j SET
                state = CASE WHEN c.bytes <= c.room THEN 'available' ELSE 'discarded' END,
                args = CASE WHEN c.bytes <= c.room THEN c.args ELSE j.args END,
                finished_at = CASE WHEN c.bytes <= c.room THEN NULL ELSE now() END,
                errors = CASE WHEN c.bytes <= c.room THEN j.errors ELSE j.errors || jsonb_build_array(jsonb_build_object(
                    'attempt', j.attempt, 'at', now(), 'kind', 'invalid_job',
                    'message', format('jobs_args_size: its args with its dependencies'' results would be %s bytes as JSON text; at most %s fit a guest''s 1 MiB input with its function name',
                                      coalesce(c.bytes::text, 'over ' || c.results_overflow), c.room),
                    'worker', NULL)) END
            FROM combined AS c
            WHERE j.id = c.id
            RETURNING j.state
        )
        SELECT coalesce(bool_or(released.state = 'available'), false) INTO any_available FROM released;
        IF any_available THEN
            PERFORM pg_notify('hl_jobs', '');
        END IF;
    ELSE
        UPDATE hl.jobs AS j SET
            state = 'cancelled',
            finished_at = now(),
            errors = j.errors || jsonb_build_array(jsonb_build_object(
                'attempt', j.attempt, 'at', now(), 'kind', 'dependency_failed',
                'message', format('dependency %s ended %s', NEW.id, NEW.state), 'worker', NULL))
        WHERE j.depends_on @> ARRAY[NEW.id] AND j.state = 'pending';
    END IF;
    RETURN NULL;
END
$$;

-- MARK: Schedules that can never enqueue

-- A schedule is a template of a job, so the job rules apply to it when it
-- is added or its template changed (an UPDATE that only pauses or resumes
-- it is not checked, so a schedule from before a rule can still be paused).
CREATE FUNCTION hl.schedules_validate() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    job hl.jobs;
BEGIN
    job.queue := NEW.queue;
    job.guest := NEW.guest;
    job.function := NEW.function;
    job.args := NEW.args;
    job.priority := NEW.priority;
    job.max_attempts := NEW.max_attempts;
    job.run_at := now();
    PERFORM hl.jobs_refuse_if_broken(job);
    RETURN NEW;
END
$$;

CREATE TRIGGER schedules_validate
    BEFORE INSERT OR UPDATE OF queue, guest, function, args, priority, max_attempts ON hl.schedules
    FOR EACH ROW EXECUTE FUNCTION hl.schedules_validate();

-- A scheduler round enqueues every due tick in one transaction. Before,
-- one schedule whose job the rules refused (added before 0008, whose rules
-- 0009's schedule CHECKs do not all repeat) failed every round, and with
-- it every other schedule's ticks, for ever. Now its tick is used up and
-- the refusal is recorded in its last_error (`schedule list` shows it);
-- the other schedules go on. Otherwise as in 0009, with its reasons.
CREATE OR REPLACE FUNCTION hl.enqueue_tick(schedule_name text, tick timestamptz)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s hl.schedules;
    job bigint;
BEGIN
    IF tick > now() THEN
        RETURN NULL;
    END IF;
    UPDATE hl.schedules SET last_tick = tick, last_error = NULL
    WHERE name = schedule_name AND enabled AND last_tick < tick
    RETURNING * INTO s;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    BEGIN
        INSERT INTO hl.jobs AS j (queue, guest, function, args, priority, max_attempts, unique_key, submitted_by)
        VALUES (s.queue, s.guest, s.function, s.args, s.priority, s.max_attempts,
                'schedule:' || s.name || ':' || to_char(tick AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                s.created_by)
        ON CONFLICT (submitted_by, unique_key)
            WHERE unique_key IS NOT NULL AND state IN ('pending', 'available', 'running', 'retryable')
            DO NOTHING
        RETURNING j.id INTO job;
    EXCEPTION WHEN integrity_constraint_violation OR data_exception THEN
        UPDATE hl.schedules SET last_error = left('its job was refused: ' || SQLERRM, 500)
        WHERE name = schedule_name;
        RETURN NULL;
    END;
    UPDATE hl.schedules SET last_job_id = coalesce(job, last_job_id) WHERE name = schedule_name;
    RETURN job;
END
$$;
