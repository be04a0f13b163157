-- What an operator and a producer meet first: jobs that can never run are
-- refused at INSERT with a named reason; a finished job can be retried; the
-- queue and worker summaries that `hl-worker status` and the metrics read.

-- MARK: Validation at INSERT

-- Why a trigger and not CHECK constraints: a CHECK is re-evaluated on every
-- UPDATE of a row, the workers' claims and finishes included, so one old
-- row that breaks a new CHECK (inserted before this migration) would make
-- every claim that touches it fail (see the header of 0001_schema.sql).
-- This trigger fires on INSERT and on UPDATEs that set the columns it
-- checks; a worker never sets them (hl_worker has no UPDATE on them), so
-- no claim, finish or rescue can trip it.
--
-- Each refusal is a check_violation (SQLSTATE 23514) whose constraint name
-- is the rule's, with a message that says what to change. The limits are
-- fixed by the guest ABI and the sandbox, not by a worker's settings:
--   * args: the guest receives the JSON text of args (args::text) together
--     with a 16-byte call header and the function name in its 1 MiB input
--     area (SandboxConfiguration.inputAreaSize);
--   * function: at most 256 bytes of UTF-8 (the call header's limit);
--   * memory_mb: 8 (the least a guest runs in) to 4096 MiB (the most any
--     worker can give; a worker clamps to its own --max-memory-mb);
--   * timeout_ms: 1 ms to 24 hours (likewise clamped by --max-timeout-ms);
--   * guest: a name hl.guests could ever hold;
--   * run_at: a finite time.
CREATE FUNCTION hl.jobs_validate() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    input_bytes integer;
BEGIN
    IF jsonb_typeof(NEW.args) <> 'object' THEN
        RAISE EXCEPTION 'jobs_args_object: args must be a JSON object, not %', jsonb_typeof(NEW.args)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_args_object', TABLE = 'jobs', SCHEMA = 'hl',
                  HINT = 'Wrap the value in an object, e.g. {"value": ...}.';
    END IF;
    IF octet_length(NEW.function) > 256 THEN
        RAISE EXCEPTION 'jobs_function_bytes: function is % bytes; at most 256 bytes of UTF-8', octet_length(NEW.function)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_function_bytes', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
    input_bytes := octet_length(NEW.args::text);
    IF input_bytes + octet_length(NEW.function) + 16 > 1048576 THEN
        RAISE EXCEPTION 'jobs_args_size: args is % bytes as JSON text; at most % fit a guest''s 1 MiB input with this function name',
                input_bytes, 1048576 - 16 - octet_length(NEW.function)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_args_size', TABLE = 'jobs', SCHEMA = 'hl',
                  HINT = 'Pass large data by reference (a URL or a key) instead.';
    END IF;
    IF NEW.memory_mb NOT BETWEEN 8 AND 4096 THEN
        RAISE EXCEPTION 'jobs_memory_range: memory_mb % is outside 8 to 4096: a guest needs at least 8 MiB, and no worker gives more than 4096',
                NEW.memory_mb
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_memory_range', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
    IF NEW.timeout_ms NOT BETWEEN 1 AND 86400000 THEN
        RAISE EXCEPTION 'jobs_timeout_range: timeout_ms % is outside 1 to 86400000 (24 hours)', NEW.timeout_ms
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_timeout_range', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
    IF NEW.guest !~ '^[A-Za-z][A-Za-z0-9_.-]{0,63}$' THEN
        RAISE EXCEPTION 'jobs_guest_name: guest % is not a name a guest can be registered under', quote_literal(left(NEW.guest, 80))
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_guest_name', TABLE = 'jobs', SCHEMA = 'hl',
                  HINT = 'Guest names start with a letter, then up to 63 letters, digits, _ . or -.';
    END IF;
    IF NEW.run_at IN ('infinity', '-infinity') THEN
        RAISE EXCEPTION 'jobs_run_at_finite: run_at must be a finite time, not %', NEW.run_at
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_run_at_finite', TABLE = 'jobs', SCHEMA = 'hl';
    END IF;
    RETURN NEW;
END
$$;

-- The WHEN clause restates the rules as one expression, evaluated inline:
-- the function (and its per-row call cost) runs only for a row it will
-- refuse. Measured on 20,000-row INSERT ... SELECTs (9 interleaved runs,
-- p50): 297 ms with no check, 412 ms with this, 648 ms calling the
-- function for every row. run_at is not in the UPDATE OF list: workers
-- set it (retries, hand-backs).
CREATE TRIGGER jobs_validate
    BEFORE INSERT OR UPDATE OF args, function, memory_mb, timeout_ms, guest ON hl.jobs
    FOR EACH ROW
    WHEN (jsonb_typeof(NEW.args) IS DISTINCT FROM 'object'
          OR octet_length(NEW.function) > 256
          OR octet_length(NEW.args::text) + octet_length(NEW.function) + 16 > 1048576
          OR NEW.memory_mb NOT BETWEEN 8 AND 4096
          OR NEW.timeout_ms NOT BETWEEN 1 AND 86400000
          OR NEW.guest !~ '^[A-Za-z][A-Za-z0-9_.-]{0,63}$'
          OR NEW.run_at IN ('infinity', '-infinity'))
    EXECUTE FUNCTION hl.jobs_validate();

-- MARK: Retry, cancel and read one job, by role

-- Who may act on a job: the owner of hl.jobs (and superusers) and members
-- of hl_worker on any job (a worker's login can already fail any job);
-- members of hl_enqueue on the jobs their own login submitted. The login
-- is session_user: inside a SECURITY DEFINER function current_user is the
-- owner. hl_dashboard is read-only and may do neither.
-- A job that does not exist and one the caller may not touch give the same
-- error, so a tenant cannot probe for other tenants' job ids.
CREATE FUNCTION hl.job_for_caller(job_id bigint) RETURNS hl.jobs
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found_job hl.jobs;
    owner_oid oid;
BEGIN
    SELECT relowner INTO owner_oid FROM pg_class WHERE oid = 'hl.jobs'::regclass;
    SELECT * INTO found_job FROM hl.jobs WHERE id = job_id;
    IF found_job.id IS NOT NULL AND (
           pg_has_role(session_user, owner_oid, 'USAGE')
        OR pg_has_role(session_user, 'hl_worker', 'USAGE')
        OR (pg_has_role(session_user, 'hl_enqueue', 'USAGE') AND found_job.submitted_by = session_user::text)) THEN
        RETURN found_job;
    END IF;
    RAISE EXCEPTION 'no job % that % may change', job_id, session_user
        USING ERRCODE = 'no_data_found';
END
$$;

-- A discarded or cancelled job back to available: attempt 0 (it gets its
-- max_attempts again), run now, its errors kept as history, result,
-- finish and cancellation cleared. Returns false (and changes nothing)
-- when the job is in any other state.
CREATE FUNCTION hl.retry_job(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM hl.job_for_caller(job_id);
    UPDATE hl.jobs
    SET state = 'available', attempt = 0, run_at = now(), result = NULL, finished_at = NULL,
        attempted_at = NULL, attempted_by = NULL, cancel_requested_at = NULL
    WHERE id = job_id AND state IN ('discarded', 'cancelled');
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- Idle workers wake on hl_jobs, as after an insert.
    PERFORM pg_notify('hl_jobs', '');
    RETURN true;
END
$$;

-- Requests cancellation (the cancel trigger of 0001/0005 does the rest).
-- Returns false when the job has finished or was already asked to stop.
CREATE FUNCTION hl.cancel_job(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM hl.job_for_caller(job_id);
    UPDATE hl.jobs SET cancel_requested_at = now()
    WHERE id = job_id AND cancel_requested_at IS NULL
      AND state IN ('available', 'retryable', 'running');
    RETURN FOUND;
END
$$;

REVOKE EXECUTE ON FUNCTION hl.job_for_caller(bigint), hl.retry_job(bigint), hl.cancel_job(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hl.job_for_caller(bigint), hl.retry_job(bigint), hl.cancel_job(bigint)
    TO hl_worker, hl_enqueue;

COMMENT ON FUNCTION hl.retry_job(bigint) IS
    'A discarded or cancelled job back to available with attempt 0, errors kept. '
    'Owner and hl_worker: any job; hl_enqueue: its own. False if the job is in another state.';
COMMENT ON FUNCTION hl.cancel_job(bigint) IS
    'Requests cancellation of a waiting or running job. Owner and hl_worker: any job; hl_enqueue: its own.';

-- MARK: Summaries for status and metrics

-- One row per queue with waiting or running jobs, or paused: what an
-- operator alerts on. Reads only the claim indexes' rows (waiting and
-- running jobs), never the finished history. "scheduled" are available or
-- retryable jobs whose run_at is still ahead; "available" and "retryable"
-- count only those due now.
CREATE VIEW hl.queue_summary AS
    SELECT coalesce(j.queue, p.name) AS queue,
           coalesce(j.available, 0) AS available,
           coalesce(j.scheduled, 0) AS scheduled,
           coalesce(j.running, 0) AS running,
           coalesce(j.retryable, 0) AS retryable,
           j.oldest_available_at,
           p.paused_at
    FROM (
        SELECT queue,
               count(*) FILTER (WHERE state = 'available' AND run_at <= now()) AS available,
               count(*) FILTER (WHERE state IN ('available', 'retryable') AND run_at > now()) AS scheduled,
               count(*) FILTER (WHERE state = 'running') AS running,
               count(*) FILTER (WHERE state = 'retryable' AND run_at <= now()) AS retryable,
               min(run_at) FILTER (WHERE state IN ('available', 'retryable') AND run_at <= now()) AS oldest_available_at
        FROM hl.jobs
        WHERE state IN ('available', 'retryable', 'running')
        GROUP BY queue
    ) AS j
    FULL JOIN (SELECT name, paused_at FROM hl.queues WHERE paused_at IS NOT NULL) AS p ON p.name = j.queue;

COMMENT ON VIEW hl.queue_summary IS
    'Per queue: jobs due now (available, retryable), scheduled for later, running; '
    'the oldest due run_at; paused_at if paused.';

-- Workers with a recent heartbeat, their queues (NULL: all) and running jobs.
CREATE VIEW hl.live_workers AS
    SELECT w.id, w.host, w.pid, w.started_at, w.heartbeat_at, w.concurrency, w.queues, w.version,
           (SELECT count(*) FROM hl.jobs AS j WHERE j.state = 'running' AND j.attempted_by = w.id) AS running
    FROM hl.workers AS w
    WHERE w.heartbeat_at > now() - interval '60 seconds';

COMMENT ON VIEW hl.live_workers IS 'Workers that heartbeat within the last minute.';

GRANT SELECT ON hl.queue_summary, hl.live_workers TO hl_worker, hl_dashboard;

-- MARK: Schema version

-- A worker checks at start-up that the schema is as new as its binary,
-- without read access to hl.schema_migrations (the migrator's table).
-- Calling it on a schema older than this migration fails with
-- undefined_function, which says the same: migrate.
CREATE FUNCTION hl.schema_version() RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(max(version), 0) FROM hl.schema_migrations
$$;

REVOKE EXECUTE ON FUNCTION hl.schema_version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hl.schema_version() TO hl_worker;
