-- One claim and one finish, as the worker sends them (Queries.claim,
-- Queries.finish with one completed outcome), for pgbench.
SELECT id, attempt FROM hl.claim_jobs('bench-worker', 1, NULL) \gset
UPDATE hl.jobs AS j SET
    state = CASE WHEN o.outcome = 'completed' THEN 'completed' ELSE 'discarded' END,
    result = CASE WHEN o.outcome = 'completed' THEN o.result::jsonb ELSE j.result END,
    errors = j.errors,
    run_at = j.run_at,
    finished_at = now()
FROM unnest(ARRAY[:id]::bigint[], ARRAY[:attempt]::integer[], ARRAY['bench-worker']::text[], ARRAY['completed']::text[],
            ARRAY['{"ok":true}']::text[], ARRAY[NULL]::text[], ARRAY[NULL]::text[], ARRAY[false]::boolean[])
     AS o(id, attempt, worker, outcome, result, kind, message, retryable)
WHERE j.id = o.id AND j.state = 'running' AND j.attempt = o.attempt AND j.attempted_by = o.worker
RETURNING j.id;
