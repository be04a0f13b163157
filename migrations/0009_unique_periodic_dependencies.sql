-- What job-queue users expect next, all usable from plain SQL: unique jobs,
-- dependencies between jobs (with a new `pending` state), periodic jobs
-- (hl.schedules), children a guest enqueues with its result, and progress
-- a guest reports. docs/workflows.md shows each with SQL.

-- MARK: New columns

-- Nullable and without defaults, so adding them does not rewrite the table.
ALTER TABLE hl.jobs
    ADD COLUMN unique_key text,
    ADD COLUMN depends_on bigint[],
    ADD COLUMN parent_id  bigint,
    ADD COLUMN progress   jsonb,
    -- Set when a job is named in another's depends_on, so that finishing
    -- the (many) jobs nobody depends on never calls the release trigger.
    -- A constant default: no rewrite either.
    ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;

COMMENT ON COLUMN hl.jobs.unique_key IS
    'While a job of the same submitter with this key is pending, available, running or retryable, '
    'another is not inserted: INSERT ... ON CONFLICT (submitted_by, unique_key) WHERE unique_key IS NOT NULL '
    'AND state IN (''pending'', ''available'', ''running'', ''retryable'') DO NOTHING. See hl.unique_key().';
COMMENT ON COLUMN hl.jobs.depends_on IS
    'Ids of jobs (of the same submitter) that must complete first; the job waits as pending until then, '
    'and ends cancelled (dependency_failed) if one of them is discarded or cancelled.';
COMMENT ON COLUMN hl.jobs.parent_id IS 'The job whose guest enqueued this one (NULL: inserted by a client).';
COMMENT ON COLUMN hl.jobs.progress IS
    'The last progress the guest reported: {"attempt", "fraction" (0 to 1), "note", "at"}; written by the worker.';

ALTER TABLE hl.jobs
    DROP CONSTRAINT jobs_state_known,
    ADD CONSTRAINT jobs_state_known CHECK (
        state IN ('pending', 'available', 'running', 'retryable', 'completed', 'discarded', 'cancelled')),
    ADD CONSTRAINT jobs_unique_key_sane CHECK (char_length(unique_key) BETWEEN 1 AND 256),
    -- NULL elements are rejected here; duplicates are folded by the insert trigger.
    ADD CONSTRAINT jobs_depends_on_sane CHECK (
        cardinality(depends_on) BETWEEN 1 AND 1000 AND array_position(depends_on, NULL) IS NULL);

-- MARK: Unique jobs

-- Per submitter: a tenant cannot block another tenant's jobs by taking its
-- keys first, nor learn which keys another tenant uses. Only rows with a
-- key are in it, so jobs without one pay nothing. A finished job's row
-- version leaves the index's predicate, so its key is free again at once.
CREATE UNIQUE INDEX jobs_unique_key ON hl.jobs (submitted_by, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('pending', 'available', 'running', 'retryable');

-- A key for "the same job": SHA-256 (hex) of queue, guest, function and
-- args (jsonb, so key order and spacing do not matter), and with a
-- `period`, the period's bucket of `at`: epoch seconds divided by the
-- period's seconds (a month counts 30 days), so "at most one per hour" is
-- hl.unique_key(..., period => interval '1 hour'). Immutable: `at` defaults
-- to now() at the call site.
CREATE FUNCTION hl.unique_key(queue text, guest text, function text, args jsonb DEFAULT '{}',
                              period interval DEFAULT NULL, at timestamptz DEFAULT now())
RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    bucket numeric;
BEGIN
    IF period IS NOT NULL THEN
        IF extract(epoch FROM period) <= 0 THEN
            RAISE EXCEPTION 'period must be positive, not %', period USING ERRCODE = 'invalid_parameter_value';
        END IF;
        bucket := floor(extract(epoch FROM at) / extract(epoch FROM period));
    END IF;
    RETURN encode(sha256(convert_to(
        jsonb_build_array(queue, guest, function, coalesce(args, '{}'::jsonb), bucket)::text, 'UTF8')), 'hex');
END
$$;

-- MARK: Dependencies

-- The release trigger finds a finished job's waiting dependents here; the
-- view counts pending jobs per queue with the second one.
CREATE INDEX jobs_pending_dependents ON hl.jobs USING gin (depends_on) WHERE state = 'pending';
CREATE INDEX jobs_pending_by_queue ON hl.jobs (queue, run_at) WHERE state = 'pending';

-- A job inserted with depends_on: every dependency must be a job of the
-- same submitter (so no tenant learns of, or waits on, another's jobs).
-- All completed: the job is runnable as inserted, with their results in
-- args.hl_dependency_results. One discarded or
-- cancelled: it can never run, and is inserted cancelled with a
-- dependency_failed error (the same end it would have met had it been
-- inserted a moment earlier). Otherwise it waits as pending.
--
-- The dependencies are locked (in id order, so that inserters do not
-- deadlock each other) and marked has_dependents: a dependency cannot
-- finish between this check and the insert's commit, because its
-- finishing UPDATE waits for the lock; once it proceeds, the release
-- trigger runs for it (has_dependents) and its queries see this row.
-- Definer's rights: producers have no SELECT (let alone a lock) on hl.jobs.
CREATE FUNCTION hl.jobs_check_dependencies() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    existing integer;
    unfinished integer;
    failed record;
BEGIN
    NEW.depends_on := ARRAY(SELECT DISTINCT d FROM unnest(NEW.depends_on) AS d ORDER BY d);
    SELECT count(*), count(*) FILTER (WHERE d.state <> 'completed')
    INTO existing, unfinished
    FROM (SELECT j.id, j.state FROM hl.jobs AS j
          WHERE j.id = ANY (NEW.depends_on) AND j.submitted_by IS NOT DISTINCT FROM NEW.submitted_by
          ORDER BY j.id FOR NO KEY UPDATE) AS d;
    IF existing < cardinality(NEW.depends_on) THEN
        RAISE EXCEPTION 'depends_on names a job that does not exist or was not submitted by %', NEW.submitted_by
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'A job may depend only on existing jobs of the same submitter.';
    END IF;
    UPDATE hl.jobs AS j SET has_dependents = true
    WHERE j.id = ANY (NEW.depends_on) AND NOT j.has_dependents;
    SELECT j.id, j.state INTO failed FROM hl.jobs AS j
    WHERE j.id = ANY (NEW.depends_on) AND j.state IN ('discarded', 'cancelled')
    ORDER BY j.id LIMIT 1;
    IF FOUND THEN
        NEW.state := 'cancelled';
        NEW.finished_at := now();
        NEW.errors := NEW.errors || jsonb_build_array(jsonb_build_object(
            'attempt', NEW.attempt, 'at', now(), 'kind', 'dependency_failed',
            'message', format('dependency %s ended %s', failed.id, failed.state), 'worker', NULL));
    ELSIF unfinished > 0 AND NEW.state = 'available' THEN
        NEW.state := 'pending';
    ELSIF unfinished = 0 AND jsonb_typeof(NEW.args) = 'object' THEN
        -- Runnable at once: it gets its dependencies' results now, as a
        -- released job does (see jobs_release_dependents).
        NEW.args := NEW.args || jsonb_build_object('hl_dependency_results',
            (SELECT coalesce(jsonb_agg(jsonb_build_object('id', d.id, 'result', d.result) ORDER BY d.id), '[]')
             FROM hl.jobs AS d WHERE d.id = ANY (NEW.depends_on)));
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER jobs_check_dependencies
    BEFORE INSERT ON hl.jobs
    FOR EACH ROW WHEN (NEW.depends_on IS NOT NULL)
    EXECUTE FUNCTION hl.jobs_check_dependencies();

-- A job that just finished releases its dependents in the same
-- transaction, through the index above: nothing polls. Completed: each
-- pending dependent whose dependencies have all completed becomes
-- available (and workers are woken), with its dependencies' results added
-- to its args as "hl_dependency_results": [{"id", "result"}, ...] in id
-- order (a fan-in job combines them; a dependency already pruned is
-- missing from the list). Discarded or cancelled: every pending
-- dependent ends cancelled with a dependency_failed error; that is itself
-- a job finishing, so this trigger cancels their dependents in turn.
--
-- The dependents are locked before their dependencies are read: when two
-- dependencies of one job finish at once, the second waits here until the
-- first commits, and its next statement (a new snapshot) sees both
-- completed. Jobs finished in one batch can lock shared dependents in
-- opposite orders; PostgreSQL then aborts one batch as a deadlock, and the
-- worker writes it again (every finish is fenced, so that is harmless).
--
-- No column list (UPDATE OF state): the cancel trigger changes state in a
-- BEFORE trigger, which a column list would not see. The WHEN condition is
-- checked without calling the function, so finishing a job nobody depends
-- on, and every other update, costs nothing here.
CREATE FUNCTION hl.jobs_release_dependents() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM 1 FROM hl.jobs AS j
    WHERE j.depends_on @> ARRAY[NEW.id] AND j.state = 'pending'
    ORDER BY j.id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF NEW.state = 'completed' THEN
        UPDATE hl.jobs AS j SET
            state = 'available',
            args = CASE WHEN jsonb_typeof(j.args) = 'object' THEN j.args || jsonb_build_object(
                'hl_dependency_results',
                (SELECT coalesce(jsonb_agg(jsonb_build_object('id', d.id, 'result', d.result) ORDER BY d.id), '[]')
                 FROM hl.jobs AS d WHERE d.id = ANY (j.depends_on)))
                ELSE j.args END
        WHERE j.depends_on @> ARRAY[NEW.id] AND j.state = 'pending'
          AND NOT EXISTS (SELECT 1 FROM hl.jobs AS d
                          WHERE d.id = ANY (j.depends_on) AND d.state <> 'completed');
        IF FOUND THEN
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

CREATE TRIGGER jobs_release_dependents
    AFTER UPDATE ON hl.jobs
    FOR EACH ROW
    WHEN (NEW.has_dependents AND NEW.state IN ('completed', 'discarded', 'cancelled')
          AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION hl.jobs_release_dependents();

-- A pending job is cancelled on the spot like an available one (and its
-- own dependents with it, through the trigger above). Otherwise as in
-- migration 0005.
CREATE OR REPLACE FUNCTION hl.jobs_cancel_requested() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IN ('pending', 'available', 'retryable') THEN
        NEW.state := 'cancelled';
        NEW.finished_at := now();
    ELSIF NEW.state = 'running' THEN
        PERFORM pg_notify('hl_cancel', '');
    END IF;
    RETURN NEW;
END
$$;

-- MARK: Children a guest enqueues

-- Records a job's completion together with the jobs its guest enqueued,
-- in one transaction: the children exist if and only if the parent
-- completed, and a parent whose attempt is no longer running (rescued,
-- retried, finished already) records nothing and inserts nothing, so a
-- retried parent never leaves duplicates. Fenced like the worker's finish
-- (id, attempt, worker, still running); like it, a completion wins over a
-- cancellation requested too late to stop the call. Returns whether it
-- completed the job.
--
-- `children` is a JSON array of objects: guest, function (required), args
-- (an object), queue (default: the parent's), priority, max_attempts,
-- unique_key, and after: indexes (0-based) of earlier children in the same
-- array that this one depends on (the fan-in of a fan-out). Each child
-- records parent_id and the parent's submitter, so it is the tenant's job
-- like its parent. A child whose unique key is taken is not inserted; one
-- depending on it then waits for nothing from it. The worker bounds how
-- many children and bytes a call may hand over; the limit here (1,000) is
-- the last line.
CREATE FUNCTION hl.complete_with_children(job_id bigint, job_attempt integer, worker text,
                                          job_result jsonb, children jsonb)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    parent hl.jobs;
    child jsonb;
    ids bigint[] := '{}';
    deps bigint[];
    new_id bigint;
    i integer := 0;
BEGIN
    IF jsonb_typeof(children) IS DISTINCT FROM 'array' OR jsonb_array_length(children) > 1000 THEN
        RAISE EXCEPTION 'children must be a JSON array of at most 1000 objects'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE hl.jobs AS j SET state = 'completed', result = job_result, finished_at = now()
    WHERE j.id = job_id AND j.state = 'running' AND j.attempt = job_attempt AND j.attempted_by = worker
    RETURNING j.* INTO parent;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    FOR child IN SELECT value FROM jsonb_array_elements(children) LOOP
        deps := ARRAY(SELECT ids[(a.value)::integer + 1]
                      FROM jsonb_array_elements_text(coalesce(child -> 'after', '[]')) AS a
                      WHERE (a.value)::integer BETWEEN 0 AND i - 1 AND ids[(a.value)::integer + 1] IS NOT NULL);
        INSERT INTO hl.jobs AS j (queue, guest, function, args, priority, max_attempts, unique_key,
                                  depends_on, parent_id, submitted_by)
        VALUES (coalesce(child ->> 'queue', parent.queue), child ->> 'guest', child ->> 'function',
                coalesce(child -> 'args', '{}'), coalesce((child ->> 'priority')::smallint, 0),
                coalesce((child ->> 'max_attempts')::integer, 3), child ->> 'unique_key',
                nullif(deps, '{}'), parent.id, parent.submitted_by)
        ON CONFLICT (submitted_by, unique_key)
            WHERE unique_key IS NOT NULL AND state IN ('pending', 'available', 'running', 'retryable')
            DO NOTHING
        RETURNING j.id INTO new_id;
        -- NULL when the key was taken: later children's `after` skip it.
        ids := ids || new_id;
        new_id := NULL;
        i := i + 1;
    END LOOP;
    RETURN true;
END
$$;

-- MARK: Periodic jobs

-- One row per schedule. The worker that holds the scheduler lock (one at a
-- time per database, taken per round, about every second) computes each
-- enabled schedule's ticks after last_tick up to now and enqueues them, in
-- order, through hl.enqueue_tick. Ticks missed while no worker ran (any
-- tick more than 10 seconds old when a round finds it) are not caught up
-- one by one: that round enqueues only the latest of them, once. Ticks
-- that fell while a schedule was paused never run (resuming starts from
-- now).
CREATE TABLE hl.schedules (
    name         text PRIMARY KEY,
    -- Five fields (minute hour day-of-month month day-of-week) or six
    -- (seconds first); parsed by the worker (docs/workflows.md).
    cron         text        NOT NULL,
    time_zone    text        NOT NULL DEFAULT 'UTC',
    guest        text        NOT NULL,
    function     text        NOT NULL,
    args         jsonb       NOT NULL DEFAULT '{}',
    queue        text        NOT NULL DEFAULT 'default',
    priority     smallint    NOT NULL DEFAULT 0,
    max_attempts integer     NOT NULL DEFAULT 3,
    enabled      boolean     NOT NULL DEFAULT true,
    -- The latest tick enqueued; a new schedule starts from its creation.
    last_tick    timestamptz NOT NULL DEFAULT now(),
    last_job_id  bigint,
    -- Why the scheduler could not use this row (a bad expression), or NULL.
    last_error   text,
    -- The jobs a schedule enqueues are this user's (submitted_by).
    created_by   text        NOT NULL DEFAULT current_user,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT schedules_name_sane CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
    CONSTRAINT schedules_cron_sane CHECK (btrim(cron) <> '' AND char_length(cron) <= 256),
    -- AT TIME ZONE rejects a name PostgreSQL does not know.
    CONSTRAINT schedules_time_zone_known CHECK (
        (timestamptz '2000-01-01 00:00:00+00' AT TIME ZONE time_zone) IS NOT NULL),
    CONSTRAINT schedules_queue_sane CHECK (btrim(queue) <> '' AND char_length(queue) <= 128),
    CONSTRAINT schedules_guest_sane CHECK (btrim(guest) <> '' AND char_length(guest) <= 128),
    CONSTRAINT schedules_function_sane CHECK (btrim(function) <> '' AND char_length(function) <= 128),
    CONSTRAINT schedules_priority_range CHECK (priority BETWEEN -100 AND 100),
    CONSTRAINT schedules_max_attempts_range CHECK (max_attempts BETWEEN 1 AND 1000)
);

COMMENT ON TABLE hl.schedules IS
    'Periodic jobs: INSERT (name, cron, guest, function) to add one; UPDATE SET enabled = false to pause.';

-- Enqueues `tick` of schedule `schedule_name`, at most once ever: the
-- schedule's last_tick moves forward in the same statement that decides,
-- so a second call for the same (or an earlier) tick, from any worker,
-- does nothing; the job's unique key (schedule:<name>:<tick>) guards the
-- insert as well. A tick later than the database's clock is refused, so a
-- worker whose clock runs ahead cannot enqueue early. Returns the job's id,
-- or NULL when nothing was enqueued.
CREATE FUNCTION hl.enqueue_tick(schedule_name text, tick timestamptz)
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
    INSERT INTO hl.jobs AS j (queue, guest, function, args, priority, max_attempts, unique_key, submitted_by)
    VALUES (s.queue, s.guest, s.function, s.args, s.priority, s.max_attempts,
            'schedule:' || s.name || ':' || to_char(tick AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
            s.created_by)
    ON CONFLICT (submitted_by, unique_key)
        WHERE unique_key IS NOT NULL AND state IN ('pending', 'available', 'running', 'retryable')
        DO NOTHING
    RETURNING j.id INTO job;
    UPDATE hl.schedules SET last_job_id = coalesce(job, last_job_id) WHERE name = schedule_name;
    RETURN job;
END
$$;

-- What the scheduler could not make of a schedule, for `schedule list`.
CREATE FUNCTION hl.schedule_failed(schedule_name text, message text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    UPDATE hl.schedules SET last_error = left(message, 500)
    WHERE name = schedule_name AND last_error IS DISTINCT FROM left(message, 500);
$$;

-- MARK: Views

-- As in migration 0002, with the pending jobs counted (through
-- jobs_pending_by_queue).
CREATE OR REPLACE VIEW hl.queue_stats AS
    SELECT queue, state, count(*) AS count, min(run_at) AS oldest_run_at
    FROM hl.jobs
    WHERE state IN ('available', 'retryable')
    GROUP BY queue, state
UNION ALL
    SELECT queue, state, count(*), min(run_at)
    FROM hl.jobs
    WHERE state = 'running'
    GROUP BY queue, state
UNION ALL
    SELECT queue, state, count(*), min(run_at)
    FROM hl.jobs
    WHERE state = 'pending'
    GROUP BY queue, state
UNION ALL
    SELECT queue, state, count(*), min(run_at)
    FROM hl.jobs
    WHERE state IN ('completed', 'discarded', 'cancelled')
      AND finished_at > now() - interval '1 hour'
    GROUP BY queue, state;

-- The new columns, appended (a view's existing columns cannot move).
CREATE OR REPLACE VIEW hl.my_jobs WITH (security_barrier) AS
    SELECT id, queue, guest, function, args, priority, run_at, state, attempt, max_attempts,
           timeout_ms, memory_mb, vm, result, errors, created_at, attempted_at, finished_at,
           attempted_by, cancel_requested_at, submitted_by,
           unique_key, depends_on, parent_id, progress
    FROM hl.jobs
    WHERE submitted_by = current_user
    WITH CHECK OPTION;

CREATE VIEW hl.schedule_status AS
    SELECT name, cron, time_zone, queue, guest, function, enabled, last_tick, last_job_id, last_error
    FROM hl.schedules;

COMMENT ON VIEW hl.schedule_status IS 'Every schedule, with its latest tick and job.';

-- Running jobs that reported progress (through jobs_running_by_worker's
-- predicate, so it stays cheap).
CREATE VIEW hl.job_progress AS
    SELECT id, queue, guest, function, attempted_by, attempted_at,
           (progress ->> 'fraction')::float8 AS fraction, progress ->> 'note' AS note,
           (progress ->> 'at')::timestamptz AS reported_at
    FROM hl.jobs
    WHERE state = 'running' AND progress IS NOT NULL
      AND (progress ->> 'attempt')::integer = attempt;

COMMENT ON VIEW hl.job_progress IS 'Running jobs with the progress their current attempt last reported.';

-- MARK: Grants

REVOKE EXECUTE ON FUNCTION hl.complete_with_children(bigint, integer, text, jsonb, jsonb),
    hl.enqueue_tick(text, timestamptz), hl.schedule_failed(text, text) FROM PUBLIC;

-- Producers may ask for a unique key and dependencies; parents and
-- progress are written by workers only.
GRANT INSERT (unique_key, depends_on) ON hl.jobs, hl.my_jobs TO hl_enqueue;

-- The worker: progress of the jobs it runs, children with a completion,
-- and the scheduler.
GRANT UPDATE (progress) ON hl.jobs TO hl_worker;
GRANT SELECT ON hl.schedules TO hl_worker;
GRANT EXECUTE ON FUNCTION hl.complete_with_children(bigint, integer, text, jsonb, jsonb),
    hl.enqueue_tick(text, timestamptz), hl.schedule_failed(text, text) TO hl_worker;
GRANT SELECT ON hl.schedule_status, hl.job_progress TO hl_worker, hl_dashboard;
