-- The claim updates the rows it picked by their tuple ids. 0012's claim
-- found them again by `id = ANY (picked)`, which left the choice of index
-- to the planner; on a table analyzed while empty (freshly migrated, or
-- pruned to nothing) and then given a backlog, every index is estimated
-- at one page, and it chose jobs_submitted_by (submitted_by, id), reading
-- that whole index for id on every claim: claims slowed from about 4 ms
-- to about 30 ms at 10,000 waiting jobs and grew with the backlog until
-- the next analyze (measured: a 10,000-job drain at 1,700-3,700 jobs/s
-- instead of 12,000). No index holds a tuple id, so with sequential scans
-- off a TID scan is the only way left to the claimed rows, whatever the
-- statistics say.
--
-- The tuple ids are those of the versions the picking query locked, in the
-- same transaction: a locked row cannot be updated or moved by anyone else
-- until the claim commits (pruning keeps a live tuple's line pointer), so
-- each tuple id still names the row picked. Otherwise the same function as
-- 0012's, with the reasons given in 0006.

CREATE OR REPLACE FUNCTION hl.claim_jobs(worker_id text, max_jobs integer, only_queues text[])
RETURNS TABLE (id bigint, queue text, guest text, function text, args text, args_is_object boolean,
               attempt integer, max_attempts integer, timeout_ms integer, memory_mb integer, vm text,
               guest_sha256 text, run_at float8)
LANGUAGE plpgsql
SET enable_sort = off
SET enable_bitmapscan = off
SET enable_seqscan = off
SET enable_tidscan = on
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    picked tid[];
BEGIN
    IF only_queues IS NULL THEN
        SELECT array_agg(w.ctid) INTO picked FROM (
            SELECT j.ctid FROM hl.jobs AS j
            WHERE j.state IN ('available', 'retryable') AND j.run_at <= now()
              AND j.cancel_requested_at IS NULL
              AND NOT EXISTS (
                  SELECT 1 FROM hl.queues AS p WHERE p.name = j.queue AND p.paused_at IS NOT NULL)
            ORDER BY j.priority, j.run_at, j.id
            LIMIT max_jobs
            FOR UPDATE SKIP LOCKED) AS w;
    ELSE
        SELECT array_agg(w.ctid) INTO picked FROM (
            SELECT c.ctid FROM unnest(only_queues) AS q(name)
            CROSS JOIN LATERAL (
                SELECT j.ctid, j.priority, j.run_at, j.id FROM hl.jobs AS j
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
        WHERE j.ctid = ANY (picked)
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
