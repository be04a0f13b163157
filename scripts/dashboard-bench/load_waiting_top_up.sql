-- Back to 100,000 waiting jobs after a claim+finish round.
INSERT INTO hl.jobs (queue, guest, function, args)
SELECT (ARRAY['default', 'email', 'reports', 'images'])[1 + (g % 4)], 'demo', 'add', jsonb_build_object('a', g, 'b', 1)
FROM generate_series(1, 100000 - (SELECT count(*) FROM hl.jobs WHERE state IN ('available', 'retryable'))) AS g;
