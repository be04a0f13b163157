-- Read-only views for dashboards. Each one reads finished jobs only through
-- jobs_finished (state, finished_at) over a bounded window, so its cost
-- follows the recent rate of work, not the size of the table's history.

CREATE VIEW hl.queue_stats AS
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
    WHERE state IN ('completed', 'discarded', 'cancelled')
      AND finished_at > now() - interval '1 hour'
    GROUP BY queue, state;

COMMENT ON VIEW hl.queue_stats IS
    'Jobs per queue and state: every waiting and running job, '
    'and the finished ones of the last hour.';

CREATE VIEW hl.recent_failures AS
    SELECT j.id, j.queue, j.guest, j.function, j.state, j.attempt, j.max_attempts,
           (last.e ->> 'at')::timestamptz AS failed_at,
           last.e ->> 'kind' AS kind,
           last.e ->> 'message' AS message,
           last.e ->> 'worker' AS worker,
           jsonb_array_length(j.errors) AS error_count,
           j.run_at, j.finished_at
    FROM (
        SELECT * FROM hl.jobs
        WHERE state IN ('available', 'retryable') AND errors <> '[]'
        UNION ALL
        SELECT * FROM hl.jobs
        WHERE state IN ('discarded', 'cancelled')
          AND finished_at > now() - interval '24 hours'
          AND errors <> '[]'
    ) AS j
    CROSS JOIN LATERAL (SELECT j.errors -> -1 AS e) AS last
    ORDER BY failed_at DESC;

COMMENT ON VIEW hl.recent_failures IS
    'Jobs waiting to retry, and jobs discarded or cancelled in the last 24 hours, '
    'with their latest error.';

CREATE VIEW hl.throughput AS
    SELECT date_trunc('minute', finished_at) AS minute,
           count(*) FILTER (WHERE state = 'completed') AS completed,
           count(*) FILTER (WHERE state = 'discarded') AS discarded,
           percentile_cont(0.5) WITHIN GROUP (
               ORDER BY extract(epoch FROM finished_at - attempted_at)) * 1000 AS p50_run_ms,
           percentile_cont(0.95) WITHIN GROUP (
               ORDER BY extract(epoch FROM finished_at - attempted_at)) * 1000 AS p95_run_ms
    FROM hl.jobs
    WHERE state IN ('completed', 'discarded')
      AND finished_at > now() - interval '1 hour'
    GROUP BY 1
    ORDER BY 1;

COMMENT ON VIEW hl.throughput IS
    'Jobs finished per minute over the last hour, with the run time '
    '(finished_at - attempted_at) of their last attempt.';
