-- The job queue: jobs, the guest registry and the live workers.
--
-- Users touch these names directly (INSERT INTO hl.jobs ..., dashboards),
-- so they are a public interface: keep them stable.
--
-- CHECK constraints reject values no worker could ever run, but only values
-- a plain INSERT supplies. Anything the workers' own UPDATEs could violate
-- because of a user's later edit (say, lowering max_attempts below attempt)
-- is left unchecked: one such row would otherwise make every claim fail.
-- Rows that are insertable but unrunnable (args that are not an object, an
-- unknown guest, a limit above the worker's maximum) are the worker's to fail
-- with a clear error.

CREATE SCHEMA IF NOT EXISTS hl;

CREATE TABLE hl.jobs (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue               text        NOT NULL DEFAULT 'default',
    guest               text        NOT NULL,
    function            text        NOT NULL,
    args                jsonb       NOT NULL DEFAULT '{}',
    priority            smallint    NOT NULL DEFAULT 0,
    run_at              timestamptz NOT NULL DEFAULT now(),
    state               text        NOT NULL DEFAULT 'available',
    attempt             integer     NOT NULL DEFAULT 0,
    max_attempts        integer     NOT NULL DEFAULT 3,
    timeout_ms          integer,
    memory_mb           integer,
    vm                  text,
    result              jsonb,
    errors              jsonb       NOT NULL DEFAULT '[]',
    created_at          timestamptz NOT NULL DEFAULT now(),
    attempted_at        timestamptz,
    finished_at         timestamptz,
    attempted_by        text,
    cancel_requested_at timestamptz,

    CONSTRAINT jobs_state_known CHECK (
        state IN ('available', 'running', 'retryable', 'completed', 'discarded', 'cancelled')),
    CONSTRAINT jobs_queue_sane CHECK (btrim(queue) <> '' AND char_length(queue) <= 128),
    CONSTRAINT jobs_guest_sane CHECK (btrim(guest) <> '' AND char_length(guest) <= 128),
    CONSTRAINT jobs_function_sane CHECK (btrim(function) <> '' AND char_length(function) <= 128),
    CONSTRAINT jobs_priority_range CHECK (priority BETWEEN -100 AND 100),
    CONSTRAINT jobs_attempt_nonnegative CHECK (attempt >= 0),
    CONSTRAINT jobs_max_attempts_range CHECK (max_attempts BETWEEN 1 AND 1000),
    CONSTRAINT jobs_timeout_positive CHECK (timeout_ms > 0),
    CONSTRAINT jobs_memory_positive CHECK (memory_mb > 0),
    CONSTRAINT jobs_vm_known CHECK (vm IN ('fresh', 'recycled')),
    CONSTRAINT jobs_errors_array CHECK (jsonb_typeof(errors) = 'array')
);

COMMENT ON TABLE hl.jobs IS
    'One row per job. INSERT (guest, function, args) to enqueue; '
    'UPDATE SET cancel_requested_at = now() to cancel.';
COMMENT ON COLUMN hl.jobs.priority IS 'Lower runs first; -100 to 100.';
COMMENT ON COLUMN hl.jobs.errors IS
    'One object per failed attempt: attempt, at, kind, message, worker.';

-- The claim query walks this in order and stops at its LIMIT; the partial
-- predicate keeps finished rows (the vast majority) out of it.
CREATE INDEX jobs_claim_by_queue ON hl.jobs (queue, priority, run_at, id)
    WHERE state IN ('available', 'retryable');
-- The same for a worker that serves every queue.
CREATE INDEX jobs_claim_any_queue ON hl.jobs (priority, run_at, id)
    WHERE state IN ('available', 'retryable');
-- Dashboards and the views look at recently finished jobs by state.
CREATE INDEX jobs_finished ON hl.jobs (state, finished_at)
    WHERE finished_at IS NOT NULL;
-- Rescue, cancellation polling and shutdown look at one worker's running jobs.
CREATE INDEX jobs_running_by_worker ON hl.jobs (attempted_by)
    WHERE state = 'running';

CREATE TABLE hl.guests (
    name       text PRIMARY KEY,
    image      bytea NOT NULL,
    -- Generated so that a plain SQL insert cannot store a mismatched digest:
    -- workers cache images by it.
    sha256     text GENERATED ALWAYS AS (encode(sha256(image), 'hex')) STORED,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT guests_name_sane CHECK (name ~ '^[A-Za-z][A-Za-z0-9_.-]{0,63}$'),
    CONSTRAINT guests_image_nonempty CHECK (octet_length(image) > 0)
);

CREATE INDEX guests_sha256 ON hl.guests (sha256);

CREATE TABLE hl.workers (
    id           text PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    concurrency  integer     NOT NULL,
    -- NULL: every queue.
    queues       text[],
    version      text        NOT NULL,

    CONSTRAINT workers_id_sane CHECK (btrim(id) <> '' AND char_length(id) <= 128),
    CONSTRAINT workers_concurrency_positive CHECK (concurrency > 0)
);

CREATE INDEX workers_heartbeat ON hl.workers (heartbeat_at);

-- Wakes idle workers. Per statement, with the distinct queues of the new
-- rows: a 10,000-row INSERT sends one notification per queue, not 10,000.
CREATE FUNCTION hl.jobs_notify_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hl_jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM inserted
          WHERE state IN ('available', 'retryable')) AS q;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify_inserted
    AFTER INSERT ON hl.jobs
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION hl.jobs_notify_inserted();

-- A job nobody runs yet is cancelled on the spot; the worker running one is
-- told on hl_cancel (payload: the job id) and ends it as cancelled itself.
-- pg_notify in a BEFORE trigger is safe: notifications are sent at commit
-- and dropped on rollback.
CREATE FUNCTION hl.jobs_cancel_requested() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IN ('available', 'retryable') THEN
        NEW.state := 'cancelled';
        NEW.finished_at := now();
    ELSIF NEW.state = 'running' THEN
        PERFORM pg_notify('hl_cancel', NEW.id::text);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER jobs_cancel_requested
    BEFORE UPDATE OF cancel_requested_at ON hl.jobs
    FOR EACH ROW
    WHEN (OLD.cancel_requested_at IS NULL AND NEW.cancel_requested_at IS NOT NULL)
    EXECUTE FUNCTION hl.jobs_cancel_requested();
