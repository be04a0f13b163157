/// The dashboard's statements. Each reads through an index whose size
/// follows the waiting, running or recent jobs, never the whole history:
/// the pages must stay fast with millions of finished rows retained.
/// Timestamps are formatted by the server, in UTC.
enum DashboardQueries {
    static let utc = "'YYYY-MM-DD HH24:MI:SS'"

    /// What the connecting role may do: the dashboard shows an action only
    /// to a role that holds it.
    static let permissions = """
        SELECT has_column_privilege('hl.jobs', 'cancel_requested_at', 'UPDATE') AS can_cancel,
               has_function_privilege('hl.retry_job(bigint)', 'EXECUTE') AS can_retry,
               has_function_privilege('hl.pause_queue(text)', 'EXECUTE')
                   AND has_function_privilege('hl.resume_queue(text)', 'EXECUTE') AS can_pause,
               current_user AS role
        """

    /// Counting stops here: below it the overview counts exactly, at or
    /// above it the counts come from the planner's statistics (marked ≈ on
    /// the page), so the page costs the same at a hundred thousand waiting
    /// jobs or ten million finished ones.
    static let exactCountLimit = 10_000

    /// Waiting jobs, and jobs finished in the last hour, each counted up to
    /// the limit ($1): index-only reads of the claim index and of
    /// jobs_finished.
    static let cappedCounts = """
        SELECT (SELECT count(*) FROM (SELECT 1 FROM hl.jobs WHERE state IN ('available', 'retryable')
                                      LIMIT $1::int) AS w) AS waiting,
               (SELECT count(*) FROM (SELECT 1 FROM hl.jobs WHERE state IN ('completed', 'discarded')
                                        AND finished_at > now() - interval '1 hour' LIMIT $1::int) AS f) AS finished
        """

    /// One row per queue that has waiting or running jobs, finished one in
    /// the last hour, or a pause record: exact counts, for when there are
    /// few (see `cappedCounts`).
    static let queues = """
        WITH waiting AS (
            SELECT queue,
                   count(*) FILTER (WHERE state = 'available' AND run_at <= now()) AS available,
                   count(*) FILTER (WHERE state = 'available' AND run_at > now()) AS scheduled,
                   count(*) FILTER (WHERE state = 'retryable') AS retryable,
                   min(run_at) FILTER (WHERE run_at <= now()) AS oldest
            FROM hl.jobs WHERE state IN ('available', 'retryable') GROUP BY queue),
        running AS (
            SELECT queue, count(*) AS running FROM hl.jobs WHERE state = 'running' GROUP BY queue),
        finished AS (
            SELECT queue, count(*) FILTER (WHERE state = 'completed') AS completed,
                   count(*) FILTER (WHERE state = 'discarded') AS discarded
            FROM hl.jobs
            WHERE state IN ('completed', 'discarded') AND finished_at > now() - interval '1 hour'
            GROUP BY queue),
        names AS (
            SELECT queue FROM waiting UNION SELECT queue FROM running
            UNION SELECT queue FROM finished UNION SELECT name FROM hl.queues)
        SELECT n.queue, coalesce(w.available, 0) AS available, coalesce(w.scheduled, 0) AS scheduled,
               coalesce(w.retryable, 0) AS retryable, coalesce(r.running, 0) AS running,
               coalesce(f.completed, 0) AS completed, coalesce(f.discarded, 0) AS discarded,
               extract(epoch FROM now() - w.oldest)::float8 AS oldest_age_s,
               q.paused_at IS NOT NULL AS paused
        FROM names AS n
        LEFT JOIN waiting AS w USING (queue)
        LEFT JOIN running AS r USING (queue)
        LEFT JOIN finished AS f USING (queue)
        LEFT JOIN hl.queues AS q ON q.name = n.queue
        ORDER BY n.queue
        """

    /// The same rows when there are many jobs: queue names by a skip scan
    /// of the claim index (one probe per queue) and from the 500 latest
    /// completed and discarded jobs (a queue with nothing waiting that
    /// finished jobs only earlier in the hour is left out), exact counts where an
    /// index holds only the few (running, retryable), and the wait of the
    /// job each queue will run next (its head, in claim order) instead of
    /// the minimum over all. The other counts are filled in by estimates.
    static let queuesAtScale = """
        WITH RECURSIVE waiting_names AS (
            (SELECT queue FROM hl.jobs WHERE state IN ('available', 'retryable') ORDER BY queue LIMIT 1)
            UNION ALL
            SELECT (SELECT j.queue FROM hl.jobs AS j
                    WHERE j.state IN ('available', 'retryable') AND j.queue > w.queue ORDER BY j.queue LIMIT 1)
            FROM waiting_names AS w WHERE w.queue IS NOT NULL),
        finished_names AS (
            SELECT DISTINCT queue FROM (
                (SELECT queue FROM hl.jobs WHERE state = 'completed' AND finished_at > now() - interval '1 hour'
                 ORDER BY finished_at DESC LIMIT 500)
                UNION ALL
                (SELECT queue FROM hl.jobs WHERE state = 'discarded' AND finished_at > now() - interval '1 hour'
                 ORDER BY finished_at DESC LIMIT 500)) AS recent),
        names AS (
            SELECT queue FROM waiting_names WHERE queue IS NOT NULL
            UNION SELECT queue FROM hl.jobs WHERE state = 'running'
            UNION SELECT queue FROM finished_names
            UNION SELECT name FROM hl.queues)
        SELECT n.queue,
               (SELECT count(*) FROM hl.jobs WHERE state = 'running' AND queue = n.queue) AS running,
               (SELECT count(*) FROM hl.jobs WHERE state = 'retryable' AND queue = n.queue) AS retryable,
               (SELECT extract(epoch FROM now() - j.run_at)::float8 FROM hl.jobs AS j
                WHERE j.queue = n.queue AND j.state IN ('available', 'retryable') AND j.run_at <= now()
                ORDER BY j.priority, j.run_at, j.id LIMIT 1) AS oldest_age_s,
               q.paused_at IS NOT NULL AS paused
        FROM names AS n LEFT JOIN hl.queues AS q ON q.name = n.queue
        ORDER BY n.queue
        """

    /// Exact per-queue counts of one kind, for the at-scale overview when
    /// only the other kind is numerous.
    static let waitingCounts = """
        SELECT queue,
               count(*) FILTER (WHERE state = 'available' AND run_at <= now()) AS available,
               count(*) FILTER (WHERE state = 'available' AND run_at > now()) AS scheduled
        FROM hl.jobs WHERE state IN ('available', 'retryable') GROUP BY queue
        """
    static let finishedCounts = """
        SELECT queue, count(*) FILTER (WHERE state = 'completed') AS completed,
               count(*) FILTER (WHERE state = 'discarded') AS discarded
        FROM hl.jobs
        WHERE state IN ('completed', 'discarded') AND finished_at > now() - interval '1 hour'
        GROUP BY queue
        """

    /// Statements whose planned row count (EXPLAIN, never run) is the
    /// estimate of one queue's count; $1 is the queue.
    static let estimatedAvailable =
        "SELECT 1 FROM hl.jobs WHERE queue = $1 AND state = 'available' AND run_at <= now()"
    static let estimatedScheduled =
        "SELECT 1 FROM hl.jobs WHERE queue = $1 AND state = 'available' AND run_at > now()"
    static let estimatedCompleted =
        "SELECT 1 FROM hl.jobs WHERE queue = $1 AND state = 'completed' AND finished_at > now() - interval '1 hour'"
    static let estimatedDiscarded =
        "SELECT 1 FROM hl.jobs WHERE queue = $1 AND state = 'discarded' AND finished_at > now() - interval '1 hour'"

    /// Jobs finished per minute over the last hour (index-only on
    /// jobs_finished), minutes counted back from now: 0 is the current one.
    /// date_part (float) rather than extract (numeric): half the time per
    /// row, measured at 17,000 rows.
    static let throughput = """
        SELECT floor(date_part('epoch', now() - finished_at) / 60)::int AS minutes_ago,
               count(*) FILTER (WHERE state = 'completed') AS completed,
               count(*) FILTER (WHERE state = 'discarded') AS discarded
        FROM hl.jobs
        WHERE state IN ('completed', 'discarded') AND finished_at > now() - interval '1 hour'
        GROUP BY 1
        """

    /// Latest error kind of the jobs that failed in the last hour: those
    /// waiting to retry, and those discarded or cancelled; at most $1 of
    /// each (the page says so when a count reaches it).
    static let failuresByKind = """
        SELECT coalesce(errors -> -1 ->> 'kind', '(none)') AS kind, count(*) AS jobs
        FROM (
            (SELECT errors FROM hl.jobs WHERE state = 'retryable' LIMIT $1::int)
            UNION ALL
            (SELECT errors FROM hl.jobs
             WHERE state IN ('discarded', 'cancelled') AND finished_at > now() - interval '1 hour'
               AND errors <> '[]'
             LIMIT $1::int)
        ) AS failed
        GROUP BY 1 ORDER BY 2 DESC, 1
        """

    /// The planner's row count for hl.jobs (kept by VACUUM and ANALYZE):
    /// counting ten million rows exactly would read them all.
    static let estimatedTotal = """
        SELECT greatest(reltuples, 0)::bigint AS estimate FROM pg_class WHERE oid = 'hl.jobs'::regclass
        """

    /// The job list: $1 queue, $2 state, $3 guest, $4 function, $5 created at
    /// or after, $6 created before (NULL: no filter), $7 keyset cursor, $8
    /// page size + 1 (the extra row says whether there is another page).
    /// Sent unprepared, so each run is planned with its values and the NULL
    /// filters fold away. `older` walks ids downwards from the cursor,
    /// `newer` upwards (the caller reverses those rows).
    static func jobList(newer: Bool) -> String {
        """
        SELECT id, queue, guest, function, state, attempt, max_attempts,
               to_char(created_at AT TIME ZONE 'UTC', \(utc)) AS created,
               to_char(finished_at AT TIME ZONE 'UTC', \(utc)) AS finished,
               errors -> -1 ->> 'kind' AS last_kind
        FROM hl.jobs
        WHERE ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR state = $2)
          AND ($3::text IS NULL OR guest = $3) AND ($4::text IS NULL OR function = $4)
          AND ($5::timestamptz IS NULL OR created_at >= $5) AND ($6::timestamptz IS NULL OR created_at < $6)
          AND ($7::bigint IS NULL OR id \(newer ? ">" : "<") $7)
        ORDER BY id \(newer ? "ASC" : "DESC")
        LIMIT $8
        """
    }

    static let job = """
        SELECT id, queue, guest, function, args::text AS args, result::text AS result, state, attempt,
               max_attempts, priority, timeout_ms, memory_mb, vm, errors::text AS errors, submitted_by,
               attempted_by, run_at > now() AS scheduled,
               unique_key, parent_id, array_to_string(depends_on, ', ') AS depends_on, progress::text AS progress,
               to_char(created_at AT TIME ZONE 'UTC', \(utc)) AS created,
               to_char(run_at AT TIME ZONE 'UTC', \(utc)) AS run_at,
               to_char(attempted_at AT TIME ZONE 'UTC', \(utc)) AS attempted,
               to_char(cancel_requested_at AT TIME ZONE 'UTC', \(utc)) AS cancel_requested,
               to_char(finished_at AT TIME ZONE 'UTC', \(utc)) AS finished
        FROM hl.jobs WHERE id = $1::bigint
        """

    /// Registered guests with their jobs finished in the last hour,
    /// counted (for when fewer than `exactCountLimit` finished; see
    /// `cappedCounts`).
    static let guests = """
        SELECT g.name, g.sha256, g.size_bytes, array_to_json(g.functions)::text AS functions,
               to_char(g.created_at AT TIME ZONE 'UTC', \(utc)) AS registered,
               to_char(g.updated_at AT TIME ZONE 'UTC', \(utc)) AS updated,
               coalesce(s.finished, 0) AS finished, coalesce(s.discarded, 0) AS discarded
        FROM hl.guest_versions AS g
        LEFT JOIN (
            SELECT guest, count(*) AS finished, count(*) FILTER (WHERE state = 'discarded') AS discarded
            FROM hl.jobs
            WHERE state IN ('completed', 'discarded') AND finished_at > now() - interval '1 hour'
            GROUP BY guest) AS s ON s.guest = g.name
        ORDER BY g.name
        """

    /// Registered guests alone, when their job counts are estimated.
    static let guestsOnly = """
        SELECT name, sha256, size_bytes, array_to_json(functions)::text AS functions,
               to_char(created_at AT TIME ZONE 'UTC', \(utc)) AS registered,
               to_char(updated_at AT TIME ZONE 'UTC', \(utc)) AS updated
        FROM hl.guest_versions ORDER BY name
        """
    static let estimatedGuestFinished =
        "SELECT 1 FROM hl.jobs WHERE guest = $1 AND state IN ('completed', 'discarded') AND finished_at > now() - interval '1 hour'"
    static let estimatedGuestDiscarded =
        "SELECT 1 FROM hl.jobs WHERE guest = $1 AND state = 'discarded' AND finished_at > now() - interval '1 hour'"

    /// Live workers with their running jobs by VM mode (a job's own `vm`,
    /// or the worker's default when it names none).
    static let workers = """
        SELECT w.id, w.host, w.pid, w.concurrency, array_to_string(w.queues, ', ') AS queues, w.version,
               to_char(w.started_at AT TIME ZONE 'UTC', \(utc)) AS started,
               extract(epoch FROM now() - w.heartbeat_at)::float8 AS heartbeat_age_s,
               coalesce(r.fresh, 0) AS fresh, coalesce(r.recycled, 0) AS recycled,
               coalesce(r.default_vm, 0) AS default_vm
        FROM hl.workers AS w
        LEFT JOIN (
            SELECT attempted_by, count(*) FILTER (WHERE vm = 'fresh') AS fresh,
                   count(*) FILTER (WHERE vm = 'recycled') AS recycled,
                   count(*) FILTER (WHERE vm IS NULL) AS default_vm
            FROM hl.jobs WHERE state = 'running' GROUP BY attempted_by) AS r ON r.attempted_by = w.id
        ORDER BY w.id
        """

    // MARK: Actions (the database checks the role's rights)

    /// Cancels a waiting or running job (the cancel trigger of migration
    /// 0001 ends a waiting one at once and tells a running one's worker).
    static let cancel = """
        UPDATE hl.jobs SET cancel_requested_at = now()
        WHERE id = $1::bigint AND state IN ('available', 'retryable', 'running') AND cancel_requested_at IS NULL
        """
    static let retry = "SELECT hl.retry_job($1::bigint) AS done"
    static let pause = "SELECT hl.pause_queue($1::text) AS done"
    static let resume = "SELECT hl.resume_queue($1::text) AS done"
}
