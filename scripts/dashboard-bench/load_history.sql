-- :start and :rows: one slice of finished history, spread over the 30 days
-- before now, newest ids last; 1 in 50 discarded with an error, the rest
-- completed. Run in slices so that each commits on its own.
INSERT INTO hl.jobs (queue, guest, function, args, state, attempt, max_attempts, result, errors,
                     created_at, run_at, attempted_at, finished_at, attempted_by)
SELECT (ARRAY['default', 'email', 'reports', 'images'])[1 + (g % 4)],
       (ARRAY['demo', 'thumbnailer', 'pdf'])[1 + (g % 3)],
       (ARRAY['add', 'render', 'resize'])[1 + (g % 3)],
       jsonb_build_object('n', g),
       CASE WHEN g % 50 = 0 THEN 'discarded' ELSE 'completed' END,
       1, 1,
       CASE WHEN g % 50 = 0 THEN NULL ELSE '{"ok":true}'::jsonb END,
       CASE WHEN g % 50 = 0
            THEN jsonb_build_array(jsonb_build_object('attempt', 1, 'at', t, 'kind',
                     (ARRAY['timeout', 'guest_trap', 'memory_violation'])[1 + (g / 50) % 3],
                     'message', 'bench failure ' || g, 'worker', 'bench-worker'))
            ELSE '[]'::jsonb END,
       t - interval '2 seconds', t - interval '2 seconds', t - interval '1 second', t, 'bench-worker'
FROM generate_series(:start::bigint, :start::bigint + :rows::bigint - 1) AS g,
     LATERAL (SELECT now() - interval '30 days' * (1 - g::float8 / :total::float8) AS t) AS at;
