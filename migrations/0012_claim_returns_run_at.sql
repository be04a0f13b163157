-- The claim also returns each job's run_at (epoch seconds), so that
-- hl_job_queue_wait_seconds can measure from when a job became due (its
-- insert, its run_at, or the end of its retry backoff) to its start, as
-- docs/operations.md says: measured from the claim it was near zero by
-- construction and could never show a backlog. Otherwise hl.claim_jobs is
-- 0006's, with the same planner settings and the reasons given there; a
-- function's result type cannot be changed in place, hence DROP and CREATE.

DROP FUNCTION hl.claim_jobs(text, integer, text[]);

CREATE FUNCTION hl.claim_jobs(worker_id text, max_jobs integer, only_queues text[])
RETURNS TABLE (id bigint, queue text, guest text, function text, args text, args_is_object boolean,
               attempt integer, max_attempts integer, timeout_ms integer, memory_mb integer, vm text,
               guest_sha256 text, run_at float8)
LANGUAGE plpgsql
SET enable_sort = off
SET enable_bitmapscan = off
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    picked bigint[];
BEGIN
    IF only_queues IS NULL THEN
        SELECT array_agg(w.id) INTO picked FROM (
            SELECT j.id FROM hl.jobs AS j
            WHERE j.state IN ('available', 'retryable') AND j.run_at <= now()
              AND j.cancel_requested_at IS NULL
              AND NOT EXISTS (
                  SELECT 1 FROM hl.queues AS p WHERE p.name = j.queue AND p.paused_at IS NOT NULL)
            ORDER BY j.priority, j.run_at, j.id
            LIMIT max_jobs
            FOR UPDATE SKIP LOCKED) AS w;
    ELSE
        SELECT array_agg(w.id) INTO picked FROM (
            SELECT c.id FROM unnest(only_queues) AS q(name)
            CROSS JOIN LATERAL (
                SELECT j.id, j.priority, j.run_at FROM hl.jobs AS j
                WHERE j.queue = q.name AND j.state IN ('available', 'retryable') AND j.run_at <= now()
                  AND j.cancel_requested_at IS NULL
                ORDER BY j.priority, j.run_at, j.id
                LIMIT max_jobs
                FOR UPDATE SKIP LOCKED) AS c
            WHERE NOT EXISTS (
                SELECT 1 FROM hl.queues AS p WHERE p.name = q.name AND p.paused_at IS NOT NULL)
            ORDER BY c.priority, c.run_at, c.id
            LIMIT max_jobs) AS w;
    END IF;
    RETURN QUERY
    WITH claimed AS (
        UPDATE hl.jobs AS j
        SET state = 'running', attempt = j.attempt + 1, attempted_at = now(), attempted_by = worker_id
        WHERE j.id = ANY (picked)
        RETURNING j.id, j.queue, j.guest, j.function, j.args, j.priority, j.run_at,
                  j.attempt, j.max_attempts, j.timeout_ms, j.memory_mb, j.vm)
    SELECT c.id, c.queue, c.guest, c.function, c.args::text, jsonb_typeof(c.args) = 'object',
           c.attempt, c.max_attempts, c.timeout_ms, c.memory_mb, c.vm, g.sha256,
           extract(epoch FROM c.run_at)::float8
    FROM claimed AS c
    LEFT JOIN hl.guests AS g ON g.name = c.guest
    ORDER BY c.priority, c.run_at, c.id;
END
$$;

-- It runs with the caller's rights (hl_worker may update the columns a
-- claim changes); only workers need to call it.
REVOKE EXECUTE ON FUNCTION hl.claim_jobs(text, integer, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hl.claim_jobs(text, integer, text[]) TO hl_worker;
