-- What one database login can learn about, or do to, another tenant's jobs.
--
-- Every role can LISTEN on any channel, and every role can pg_notify on
-- any channel: PostgreSQL has no privilege for either. So notifications are
-- public, forgeable hints:
--
--   * their payloads are empty. Until now hl_jobs carried the queue of new
--     or requeued jobs and hl_cancel the id of a job being cancelled, which
--     told any LISTENing login the queue names and job ids of every tenant;
--   * a worker treats either one only as "look again": on hl_jobs it
--     claims, on hl_cancel it asks the table which of its own running jobs
--     have cancel_requested_at set, and stops only those. A forged
--     notification costs a worker one query and changes nothing.
--
-- The functions keep their names, so the triggers that call them need no
-- change.

CREATE OR REPLACE FUNCTION hl.jobs_notify_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- One notification per statement that made anything runnable.
    IF EXISTS (SELECT 1 FROM inserted WHERE state IN ('available', 'retryable')) THEN
        PERFORM pg_notify('hl_jobs', '');
    END IF;
    RETURN NULL;
END
$$;

-- A job nobody runs yet is cancelled on the spot; the workers are told on
-- hl_cancel that some running job's cancellation was requested, and each
-- looks up its own.
CREATE OR REPLACE FUNCTION hl.jobs_cancel_requested() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IN ('available', 'retryable') THEN
        NEW.state := 'cancelled';
        NEW.finished_at := now();
    ELSIF NEW.state = 'running' THEN
        PERFORM pg_notify('hl_cancel', '');
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION hl.queues_notify_resumed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.paused_at IS NOT NULL THEN
            PERFORM pg_notify('hl_jobs', '');
        END IF;
    ELSIF OLD.paused_at IS NOT NULL AND NEW.paused_at IS NULL THEN
        PERFORM pg_notify('hl_jobs', '');
    END IF;
    RETURN NULL;
END
$$;

-- A worker id names a worker to people (logs, errors, attempted_by); the
-- instance tells apart the processes that ever used it. Each process draws
-- a random instance at start, registers only while no other live instance
-- holds the id, and heartbeats, hands back jobs and deregisters only while
-- the row is its own, so a second process started with the same
-- --worker-id can neither take over the first one's jobs nor delete its
-- row. NULL: a row written before this migration.
ALTER TABLE hl.workers ADD COLUMN instance text;

COMMENT ON COLUMN hl.workers.instance IS
    'Random per worker process: the process that owns this worker id now.';
