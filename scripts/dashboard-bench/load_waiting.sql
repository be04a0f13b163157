-- 100,000 waiting jobs over four queues.
INSERT INTO hl.jobs (queue, guest, function, args)
SELECT (ARRAY['default', 'email', 'reports', 'images'])[1 + (g % 4)], 'demo', 'add', jsonb_build_object('a', g, 'b', 1)
FROM generate_series(1, 100000) AS g;
