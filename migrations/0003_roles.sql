-- Group roles for the three kinds of client, each with what its job needs
-- and nothing more. They are NOLOGIN: give a login role membership,
--     CREATE ROLE worker_1 LOGIN PASSWORD '...' IN ROLE hl_worker;
-- and connect as that.
--
--   hl_worker     the worker service: claims, finishes, rescues and hands
--                 back jobs; keeps its row in hl.workers; reads guests.
--   hl_enqueue    producers: insert jobs, read and cancel their own,
--                 through hl.my_jobs.
--   hl_dashboard  dashboards: the read-only views, nothing else.
--
-- Roles belong to the cluster, grants to this database. Creating a role
-- needs CREATEROLE (or a superuser); an owner without it can still run this
-- migration once an administrator has created the three roles.
--
-- What none of them needs a grant for: LISTEN and NOTIFY (pg_notify is
-- executable by everyone, and the triggers that call it run as whoever
-- fired them); the identity sequence behind hl.jobs.id (an identity column
-- draws its values without checking privileges on its sequence); the
-- trigger functions (only their triggers call them).

DO $$
DECLARE
    role_name text;
    can_create boolean;
BEGIN
    SELECT rolsuper OR rolcreaterole INTO can_create FROM pg_roles WHERE rolname = current_user;
    FOREACH role_name IN ARRAY ARRAY['hl_worker', 'hl_enqueue', 'hl_dashboard'] LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name);
        IF NOT can_create THEN
            RAISE EXCEPTION 'role % does not exist, and % may not create roles', role_name, current_user
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Have an administrator run: CREATE ROLE hl_worker NOLOGIN; '
                          || 'CREATE ROLE hl_enqueue NOLOGIN; CREATE ROLE hl_dashboard NOLOGIN; '
                          || 'then migrate again.';
        END IF;
        -- Two databases of one cluster migrating at once can both find the
        -- role missing; the loser of that race finds it made.
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
END
$$;

-- Who submitted a job: the database user that inserted it. Rows from before
-- this migration keep NULL (their submitter is unknown); adding the column
-- without a default and setting the default afterwards leaves the existing
-- rows untouched, so the table is not rewritten.
ALTER TABLE hl.jobs ADD COLUMN submitted_by text;
ALTER TABLE hl.jobs ALTER COLUMN submitted_by SET DEFAULT current_user;

COMMENT ON COLUMN hl.jobs.submitted_by IS
    'The database user that inserted the job (current_user); NULL for jobs older than this column.';

-- hl.my_jobs reads one submitter's jobs; without this index every read
-- would scan the whole table, history included.
CREATE INDEX jobs_submitted_by ON hl.jobs (submitted_by, id);

-- A producer's window on the queue: its own jobs only. It is automatically
-- updatable, so INSERT ... RETURNING id and cancellation work through it.
-- security_barrier applies the submitter filter before any function a
-- caller puts in its WHERE clause, which could otherwise see other rows.
-- The check option rejects a row the inserter could not then see.
CREATE VIEW hl.my_jobs WITH (security_barrier) AS
    SELECT id, queue, guest, function, args, priority, run_at, state, attempt, max_attempts,
           timeout_ms, memory_mb, vm, result, errors, created_at, attempted_at, finished_at,
           attempted_by, cancel_requested_at, submitted_by
    FROM hl.jobs
    WHERE submitted_by = current_user
    WITH CHECK OPTION;

COMMENT ON VIEW hl.my_jobs IS
    'The jobs the current database user submitted. INSERT to enqueue (RETURNING id works); '
    'UPDATE SET cancel_requested_at = now() to cancel.';

GRANT USAGE ON SCHEMA hl TO hl_worker, hl_enqueue, hl_dashboard;

-- The worker. It reads whole jobs but writes only the columns a run
-- changes: never what was asked for (guest, function, args, limits) nor who
-- asked. It does not insert or delete jobs (pruning runs through a
-- function, see the retention migration).
GRANT SELECT ON hl.jobs TO hl_worker;
GRANT UPDATE (state, attempt, attempted_at, attempted_by, result, errors, run_at, finished_at)
    ON hl.jobs TO hl_worker;
-- Register, heartbeat, deregister, and forget long-dead workers.
GRANT SELECT, INSERT, UPDATE, DELETE ON hl.workers TO hl_worker;
-- Registering guests is an administrator's act; workers only load them.
GRANT SELECT ON hl.guests TO hl_worker;
-- `hl-worker status` run with the worker's credentials.
GRANT SELECT ON hl.queue_stats, hl.recent_failures, hl.throughput TO hl_worker;

-- Producers. Inserting straight into hl.jobs (the documented plain-SQL
-- way) is limited to the columns a request is made of: state, results,
-- errors and the submitter keep their defaults, so a producer cannot forge
-- a finished job or someone else's. With no SELECT on hl.jobs, RETURNING
-- needs hl.my_jobs.
GRANT INSERT (queue, guest, function, args, priority, run_at, max_attempts, timeout_ms, memory_mb, vm)
    ON hl.jobs TO hl_enqueue;
GRANT SELECT ON hl.my_jobs TO hl_enqueue;
GRANT INSERT (queue, guest, function, args, priority, run_at, max_attempts, timeout_ms, memory_mb, vm)
    ON hl.my_jobs TO hl_enqueue;
-- Cancelling their own jobs; the cancel trigger does the state change.
GRANT UPDATE (cancel_requested_at) ON hl.my_jobs TO hl_enqueue;

-- Dashboards: the summary views (they run with their owner's rights, so
-- no grant on the tables beneath is needed).
GRANT SELECT ON hl.queue_stats, hl.recent_failures, hl.throughput TO hl_dashboard;
