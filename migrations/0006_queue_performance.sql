-- Keeping the queue cheap per job: a claim whose plan does not depend on
-- table statistics, autovacuum set for the churn of a queue, and room on
-- each page for a job's later row versions.

-- MARK: The claim

-- The claim walks a claim index in (priority, run_at, id) order and stops
-- as soon as it has `max_jobs` rows it could lock. PostgreSQL only picks
-- that plan when its statistics say the waiting rows are many: on a table
-- not analyzed yet (freshly migrated, or just after a bulk insert, before
-- autovacuum's analyze) it estimates one waiting row and answers with a
-- bitmap scan of the whole backlog and a sort, milliseconds per claim at a
-- few thousand waiting jobs. The claim is therefore a function whose
-- planner settings come with it: with sorting, bitmap scans and sequential
-- scans off, the ordered index walk is the only plan left for picking, and
-- index lookups the only way to the claimed rows, whatever the statistics
-- say. With every choice fixed that way, one generic plan per session does
-- (PL/pgSQL keeps it), so claims are not planned again on every call
-- (0.5-1 ms a call on a table without statistics, measured). Nothing
-- outside the function is affected. JIT is off because the planner's
-- penalty for the one sort that remains (of the few claimed rows, for
-- claim order) would otherwise cross the JIT threshold and compile every
-- claim.
--
-- Picks the oldest runnable jobs (NULL `only_queues`: every queue), passing
-- over cancel-requested rows and paused queues, with SKIP LOCKED so
-- concurrent claimers never wait on or share a row; marks them running
-- under a new attempt for `worker_id`; returns them in claim order with the
-- guest's current digest (NULL when the guest is not registered).
--
-- For named queues each queue is walked through jobs_claim_by_queue on its
-- own (an index ordered by queue first cannot give the order across
-- several); up to `max_jobs` rows are locked per queue and the oldest
-- `max_jobs` of them claimed. The others are unlocked when the claim's
-- transaction ends.
CREATE FUNCTION hl.claim_jobs(worker_id text, max_jobs integer, only_queues text[])
RETURNS TABLE (id bigint, queue text, guest text, function text, args text, args_is_object boolean,
               attempt integer, max_attempts integer, timeout_ms integer, memory_mb integer, vm text,
               guest_sha256 text)
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
           c.attempt, c.max_attempts, c.timeout_ms, c.memory_mb, c.vm, g.sha256
    FROM claimed AS c
    LEFT JOIN hl.guests AS g ON g.name = c.guest
    ORDER BY c.priority, c.run_at, c.id;
END
$$;

-- It runs with the caller's rights (hl_worker may update the columns a
-- claim changes); only workers need to call it.
REVOKE EXECUTE ON FUNCTION hl.claim_jobs(text, integer, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hl.claim_jobs(text, integer, text[]) TO hl_worker;

-- MARK: Autovacuum for a queue's churn

-- Every job leaves two dead row versions behind (its claim and its finish
-- each replace the row), and the dead entries of claimed rows sit at the
-- head of the claim indexes, where every claim starts its walk, until a
-- vacuum removes them. The defaults (vacuum once a fifth of the table is
-- dead, analyze once a tenth has changed) wait far too long on a table that
-- also keeps a day of finished jobs, so hl.jobs gets its own: vacuum and
-- analyze after 1,000 rows plus 2 % of the table, inserts too (so the bulk
-- insert of a backlog is analyzed soon), and ten times the default cost
-- limit so that each vacuum is over quickly. How often autovacuum looks at
-- all is autovacuum_naptime, a server setting (docs/operations.md).
ALTER TABLE hl.jobs SET (
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_limit = 2000
);

-- MARK: Room for a job's row versions

-- A job's row is written three times: inserted, claimed, finished. None of
-- the updates can be HOT (state, which both change, is in every partial
-- index's predicate), but each can still put its new version on the page
-- of the old one when there is room. Without room the update also has to
-- lock the old version on its own WAL record while it finds another page,
-- and logs two pages instead of one. Filling pages only half on insert
-- leaves that room (older versions are pruned from the page as it
-- fills): about 0.5 WAL records and 70 bytes less per job, measured. It
-- applies to pages written from now on.
ALTER TABLE hl.jobs SET (fillfactor = 50);
