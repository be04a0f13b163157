-- The web dashboard (hl-worker dashboard): what it reads, what an operator
-- may do through it, and the indexes that keep its pages fast when the
-- table holds millions of finished jobs.

-- Guests without their images: a dashboard shows the digest and the size,
-- never needs the bytes (octet_length reads the stored length, not the
-- image).
CREATE VIEW hl.guest_versions AS
    SELECT name, sha256, octet_length(image) AS size_bytes, created_at, updated_at
    FROM hl.guests;

COMMENT ON VIEW hl.guest_versions IS 'Registered guests: digest and size, not the image.';

-- Read access for dashboards: jobs (the job list and job pages show args,
-- results and errors, so a dashboard login sees every tenant's jobs; give
-- it only to operators), workers, queues and guests' metadata.
GRANT SELECT ON hl.jobs, hl.workers, hl.queues, hl.guest_versions TO hl_dashboard;

-- Operators: everything a dashboard reads, and the dashboard's actions:
-- cancel (the cancel trigger does the state change), retry, pause and
-- resume. The dashboard shows an action only to a role that holds it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hl_operator') THEN
        BEGIN
            CREATE ROLE hl_operator NOLOGIN IN ROLE hl_dashboard;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$;

GRANT UPDATE (cancel_requested_at) ON hl.jobs TO hl_operator;
GRANT EXECUTE ON FUNCTION hl.retry_job(bigint), hl.cancel_job(bigint), hl.job_for_caller(bigint),
    hl.pause_queue(text), hl.resume_queue(text) TO hl_operator;

-- hl.retry_job and hl.cancel_job (0008) act on the jobs hl.job_for_caller
-- lets the session's login change: an operator, like the owner and
-- hl_worker, may change any job.
CREATE OR REPLACE FUNCTION hl.job_for_caller(job_id bigint) RETURNS hl.jobs
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
        OR pg_has_role(session_user, 'hl_operator', 'USAGE')
        OR (pg_has_role(session_user, 'hl_enqueue', 'USAGE') AND found_job.submitted_by = session_user::text)) THEN
        RETURN found_job;
    END IF;
    RAISE EXCEPTION 'no job % that % may change', job_id, session_user
        USING ERRCODE = 'no_data_found';
END
$$;

-- The job list filtered to failures walks this backwards by id; it holds
-- only discarded and cancelled jobs, so a job that completes never enters
-- it and the claim and finish paths do not pay for it.
CREATE INDEX jobs_failed_by_id ON hl.jobs (id) WHERE state IN ('discarded', 'cancelled');

-- The job list's time filter: created_at grows with id, so a block-range
-- index is a few pages for millions of rows and costs almost nothing to
-- keep up.
CREATE INDEX jobs_created_brin ON hl.jobs USING brin (created_at);

-- Jobs waiting to retry, by queue: the overview counts them and reads
-- their latest errors without walking every waiting job. Only a job that
-- failed and will run again enters it.
CREATE INDEX jobs_retryable_by_queue ON hl.jobs (queue) WHERE state = 'retryable';
