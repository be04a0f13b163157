/// A named statement, prepared once per connection on first use.
struct Query: Sendable {
    let name: String
    let sql: String
    /// Results in binary format: for bytea, which text format would send as
    /// hex at twice the size.
    var binaryResult = false
}

/// Every statement JobQueue sends, in one place (the schema itself lives in
/// migrations/). Every value is a bind parameter; the only SQL built from
/// strings is LISTEN, whose channel is an identifier and cannot be bound.
enum Queries {
    // MARK: Migrations

    /// pg_advisory_lock key serialising migration runs on one database
    /// ("hl-mig" in ASCII).
    static let migrationLockKey: Int64 = 0x686C_2D6D_6967

    /// Run while holding the lock, before reading what has been applied.
    static let migrationBootstrap = """
        CREATE SCHEMA IF NOT EXISTS hl;
        CREATE TABLE IF NOT EXISTS hl.schema_migrations (
            version    integer PRIMARY KEY,
            name       text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        );
        """

    static let lockMigrations = Query(name: "hl_lock_migrations", sql: "SELECT pg_advisory_lock($1::bigint)")

    static let unlockMigrations = Query(name: "hl_unlock_migrations", sql: "SELECT pg_advisory_unlock($1::bigint)")

    static let appliedMigrations = Query(
        name: "hl_applied_migrations", sql: "SELECT version FROM hl.schema_migrations")

    /// Fails with 3F000 (no schema hl) on a database never migrated, and
    /// with 42883 (no such function) on a schema older than migration 0008.
    static let schemaVersion = Query(name: "hl_schema_version", sql: "SELECT hl.schema_version() AS version")

    static let recordMigration = Query(
        name: "hl_record_migration",
        sql: "INSERT INTO hl.schema_migrations (version, name) VALUES ($1::integer, $2::text)")

    // MARK: Workers

    /// $1...$6 the worker's row, $7 this process's instance, $8 seconds
    /// after its last heartbeat a worker counts as gone. Takes the id only
    /// when it is free: no row, a row of this same instance (registering
    /// again after the row was forgotten), or a row whose heartbeat is older
    /// than $8 (a process that died; its jobs are rescued next). Returns no
    /// row when a live process holds the id.
    static let registerWorker = Query(
        name: "hl_register_worker",
        sql: """
            INSERT INTO hl.workers AS w (id, host, pid, concurrency, queues, version, instance)
            VALUES ($1::text, $2::text, $3::integer, $4::integer, $5::text[], $6::text, $7::text)
            ON CONFLICT (id) DO UPDATE SET
                host = EXCLUDED.host, pid = EXCLUDED.pid,
                started_at = now(), heartbeat_at = now(),
                concurrency = EXCLUDED.concurrency, queues = EXCLUDED.queues,
                version = EXCLUDED.version, instance = EXCLUDED.instance
            WHERE w.instance IS NOT DISTINCT FROM EXCLUDED.instance
               OR w.heartbeat_at <= now() - make_interval(secs => $8::float8)
            RETURNING w.id
            """)

    /// $1 worker id: who holds it, for the message that refuses a second
    /// process the same id.
    static let workerHolder = Query(
        name: "hl_worker_holder",
        sql: """
            SELECT host, pid, extract(epoch FROM now() - heartbeat_at)::float8 AS silent_s
            FROM hl.workers WHERE id = $1::text
            """)

    /// $1 worker id, $2 instance: only the process that owns the row beats it.
    static let heartbeat = Query(
        name: "hl_heartbeat",
        sql: "UPDATE hl.workers SET heartbeat_at = now() WHERE id = $1::text AND instance = $2::text")

    /// $1 worker id, $2 instance: a process deletes its own row, never that
    /// of another process that took the id over.
    static let deregisterWorker = Query(
        name: "hl_deregister_worker", sql: "DELETE FROM hl.workers WHERE id = $1::text AND instance = $2::text")

    static let liveWorkers = Query(
        name: "hl_live_workers",
        sql: """
            SELECT w.id, w.host, w.pid,
                   extract(epoch FROM w.started_at)::float8 AS started_at,
                   extract(epoch FROM w.heartbeat_at)::float8 AS heartbeat_at,
                   w.concurrency, array_to_json(w.queues)::text AS queues, w.version,
                   (SELECT count(*) FROM hl.jobs AS j
                    WHERE j.state = 'running' AND j.attempted_by = w.id) AS running
            FROM hl.workers AS w
            WHERE w.heartbeat_at > now() - make_interval(secs => $1::float8)
            ORDER BY w.id
            """)

    // MARK: Claiming

    /// $1 worker id, $2 limit, $3 queues (NULL: every queue). The claim is
    /// hl.claim_jobs (migration 0006): a function, so that the planner
    /// settings that keep its cheap plan on a table without statistics
    /// apply to it and nothing else.
    static let claim = Query(
        name: "hl_claim",
        sql: "SELECT * FROM hl.claim_jobs($1::text, $2::integer, $3::text[])")

    // MARK: Finishing

    /// Seconds until a retry: base × 2^attempt, capped, × a jitter in
    /// [0.5, 1.5) so that jobs failing together do not retry together. The
    /// exponent is clamped so a large attempt cannot overflow. Uses the
    /// parameters named by `base` and `cap`.
    private static func backoff(base: String, cap: String) -> String {
        "now() + make_interval(secs => least(power(2, least(j.attempt, 30)) * \(base)::float8, \(cap)::float8)"
            + " * (0.5 + random()))"
    }

    /// An entry for the errors array; `kind` and `message` are SQL expressions.
    private static func errorEntry(kind: String, message: String, worker: String) -> String {
        "jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'at', now(), "
            + "'kind', \(kind), 'message', \(message), 'worker', \(worker)))"
    }

    /// Arrays, one element per outcome: $1 ids, $2 attempts, $4 outcomes
    /// ('completed' | 'failed' | 'cancelled'), $5 results (JSON text), $6
    /// error kinds, $7 messages, $8 retryable; $3 the worker whose attempts
    /// they are; $9 backoff base and $10 backoff cap in seconds.
    ///
    /// The worker is one value, not one per outcome, so that every plan is
    /// bounded by that worker's running rows: ANALYZE almost never sees a
    /// running row, so the planner expects one and hash-joins the outcomes
    /// with a scan of jobs_running_by_worker. Matched per outcome, that scan
    /// had no index condition and read every worker's running rows (and
    /// their dead entries) on every finish; with four processes, each
    /// finish read the other three's prefetched jobs too.
    ///
    /// Fenced: a row changes only while it is still running the attempt the
    /// outcome belongs to, and a `cancelled` outcome only where
    /// cancel_requested_at is set: whatever stopped a job, only a recorded
    /// request can end it cancelled. Such an outcome without a request
    /// leaves the row running; the worker's stray check hands it back to
    /// the queue (see Maintenance). Every decision reads the row as the
    /// UPDATE sees it, after any concurrent change (a cancel request) has
    /// committed. A failure of a job whose cancellation was requested ends
    /// it cancelled, never retryable: the claim query skips cancel-requested
    /// rows, so a retryable one would wait forever.
    static let finish: Query = {
        let retry = "o.outcome = 'failed' AND o.retryable AND j.cancel_requested_at IS NULL"
            + " AND j.attempt < j.max_attempts"
        return Query(
            name: "hl_finish",
            sql: """
                UPDATE hl.jobs AS j SET
                    state = CASE
                        WHEN o.outcome = 'completed' THEN 'completed'
                        WHEN o.outcome = 'cancelled' OR j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                        WHEN \(retry) THEN 'retryable'
                        ELSE 'discarded' END,
                    result = CASE WHEN o.outcome = 'completed' THEN o.result::jsonb ELSE j.result END,
                    errors = CASE WHEN o.outcome = 'completed' THEN j.errors
                        ELSE j.errors || \(errorEntry(kind: "o.kind", message: "o.message", worker: "$3::text"))
                        END,
                    run_at = CASE WHEN \(retry) THEN \(backoff(base: "$9", cap: "$10")) ELSE j.run_at END,
                    finished_at = CASE WHEN \(retry) THEN NULL ELSE now() END
                FROM unnest($1::bigint[], $2::integer[], $4::text[],
                            $5::text[], $6::text[], $7::text[], $8::boolean[])
                     AS o(id, attempt, outcome, result, kind, message, retryable)
                WHERE j.id = o.id
                  AND j.state = 'running' AND j.attempt = o.attempt AND j.attempted_by = $3::text
                  AND (o.outcome <> 'cancelled' OR j.cancel_requested_at IS NOT NULL)
                RETURNING j.id
                """)
    }()

    /// $1 worker, $2 ids, $3 attempts, $4 instance: a shutting-down worker
    /// hands back jobs it has not run to the end. The attempt did not count,
    /// so it is taken back; a job whose cancellation was requested ends
    /// cancelled. Only while the worker's row is this instance's: a process
    /// whose id another process has taken over hands back nothing (its
    /// jobs were rescued when it went silent). Other workers are woken for
    /// the jobs made available, with no payload (see migration 0005); the
    /// CASE is there only for pg_notify's side effect, and PostgreSQL folds
    /// the identical notifications of one transaction into one.
    static let requeue = Query(
        name: "hl_requeue",
        sql: """
            WITH returned AS (
                UPDATE hl.jobs AS j SET
                    state = CASE WHEN j.cancel_requested_at IS NULL THEN 'available' ELSE 'cancelled' END,
                    finished_at = CASE WHEN j.cancel_requested_at IS NULL THEN NULL ELSE now() END,
                    attempt = j.attempt - 1,
                    attempted_by = NULL
                FROM unnest($2::bigint[], $3::integer[]) AS r(id, attempt)
                WHERE j.id = r.id
                  AND j.state = 'running' AND j.attempt = r.attempt AND j.attempted_by = $1::text
                  AND EXISTS (SELECT 1 FROM hl.workers AS w WHERE w.id = $1::text AND w.instance = $4::text)
                RETURNING j.id, j.state
            )
            SELECT id, CASE WHEN state = 'available' THEN pg_notify('hl_jobs', '') END AS notified
            FROM returned
            """)

    /// What a lost attempt becomes: cancelled if that was requested, else
    /// retried with backoff while attempts remain, else discarded; with a
    /// worker_lost error. $1 is the message, $2/$3 the backoff base/cap.
    private static let loseAttempt: String = {
        let retry = "j.cancel_requested_at IS NULL AND j.attempt < j.max_attempts"
        return """
            state = CASE
                WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                WHEN j.attempt < j.max_attempts THEN 'retryable'
                ELSE 'discarded' END,
            errors = j.errors || \(errorEntry(
                kind: "'\(JobErrorKind.workerLost.rawValue)'", message: "$1::text", worker: "j.attempted_by")),
            run_at = CASE WHEN \(retry) THEN \(backoff(base: "$2", cap: "$3")) ELSE j.run_at END,
            finished_at = CASE WHEN \(retry) THEN NULL ELSE now() END
            """
    }()

    /// $1 message, $2/$3 backoff, $4 heartbeat staleness and $5 worker-row
    /// retention in seconds. Rescues the running jobs of workers that have
    /// no row or a stale heartbeat, and forgets long-dead workers. Rows are
    /// locked with SKIP LOCKED, so rescuers running at once split the work,
    /// and a job its worker is finishing right now is left to that worker.
    static let rescue = Query(
        name: "hl_rescue",
        sql: """
            WITH lost AS (
                SELECT j.id FROM hl.jobs AS j
                WHERE j.state = 'running'
                  AND NOT EXISTS (
                      SELECT 1 FROM hl.workers AS w
                      WHERE w.id = j.attempted_by
                        AND w.heartbeat_at > now() - make_interval(secs => $4::float8))
                FOR UPDATE OF j SKIP LOCKED
            ), rescued AS (
                UPDATE hl.jobs AS j SET \(loseAttempt)
                FROM lost
                WHERE j.id = lost.id AND j.state = 'running'
                RETURNING j.id
            ), forgotten AS (
                DELETE FROM hl.workers
                WHERE heartbeat_at < now() - make_interval(secs => $5::float8)
            )
            SELECT count(*) AS rescued FROM rescued
            """)

    /// $1 message, $2/$3 backoff, $4 worker id, $5 instance: the running
    /// jobs an earlier process left under the same worker id, rescued only
    /// by the instance that now owns the id (registration gave it the id
    /// because that earlier process had gone silent).
    static let rescueWorker = Query(
        name: "hl_rescue_worker",
        sql: """
            UPDATE hl.jobs AS j SET \(loseAttempt)
            WHERE j.state = 'running' AND j.attempted_by = $4::text
              AND EXISTS (SELECT 1 FROM hl.workers AS w WHERE w.id = $4::text AND w.instance = $5::text)
            RETURNING j.id
            """)

    static let runningJobs = Query(
        name: "hl_running_jobs",
        sql: """
            SELECT id, attempt FROM hl.jobs
            WHERE state = 'running' AND attempted_by = $1::text
            ORDER BY id
            """)

    static let cancelRequests = Query(
        name: "hl_cancel_requests",
        sql: """
            SELECT id, attempt FROM hl.jobs
            WHERE state = 'running' AND attempted_by = $1::text
              AND cancel_requested_at IS NOT NULL
            ORDER BY id
            """)

    // MARK: Enqueue and status

    /// A nil parameter takes the column's default (restated here, as SQL
    /// has no "DEFAULT unless NULL"). Through hl.my_jobs, so that a producer
    /// with only the hl_enqueue role can insert and read back the id.
    static let enqueue = Query(
        name: "hl_enqueue",
        sql: """
            INSERT INTO hl.my_jobs
                (guest, function, args, queue, priority, run_at,
                 max_attempts, timeout_ms, memory_mb, vm)
            VALUES ($1::text, $2::text, coalesce($3::jsonb, '{}'), coalesce($4::text, 'default'),
                    coalesce($5::smallint, 0), coalesce(to_timestamp($6::float8), now()),
                    coalesce($7::integer, 3), $8::integer, $9::integer, $10::text)
            RETURNING id
            """)

    /// `enqueue` with $11 a unique key: no row when a job of this submitter
    /// with that key is pending, available, running or retryable. The
    /// conflict target is the one documented for users (migration 0009).
    static let enqueueUnique = Query(
        name: "hl_enqueue_unique",
        sql: """
            INSERT INTO hl.my_jobs
                (guest, function, args, queue, priority, run_at,
                 max_attempts, timeout_ms, memory_mb, vm, unique_key)
            VALUES ($1::text, $2::text, coalesce($3::jsonb, '{}'), coalesce($4::text, 'default'),
                    coalesce($5::smallint, 0), coalesce(to_timestamp($6::float8), now()),
                    coalesce($7::integer, 3), $8::integer, $9::integer, $10::text, $11::text)
            ON CONFLICT (submitted_by, unique_key)
                WHERE unique_key IS NOT NULL AND state IN ('pending', 'available', 'running', 'retryable')
                DO NOTHING
            RETURNING id
            """)

    // MARK: Operations

    static let pauseQueue = Query(name: "hl_pause_queue", sql: "SELECT hl.pause_queue($1::text) AS changed")
    static let resumeQueue = Query(name: "hl_resume_queue", sql: "SELECT hl.resume_queue($1::text) AS changed")
    static let pausedQueues = Query(
        name: "hl_paused_queues",
        sql: "SELECT name FROM hl.queues WHERE paused_at IS NOT NULL ORDER BY name")

    /// Seconds, so that NULL (keep forever) passes through as NULL.
    static let pruneFinished = Query(
        name: "hl_prune_finished",
        sql: """
            SELECT hl.prune_finished($1::float8 * interval '1 second',
                                     $2::float8 * interval '1 second', $3::integer) AS deleted
            """)

    static let queueStats = Query(
        name: "hl_queue_stats",
        sql: """
            SELECT queue, state, count,
                   extract(epoch FROM oldest_run_at)::float8 AS oldest_run_at
            FROM hl.queue_stats
            ORDER BY queue, state
            """)

    static let job = Query(
        name: "hl_job",
        sql: """
            SELECT id, queue, guest, function, args::text AS args, priority, state,
                   attempt, max_attempts, result::text AS result, errors::text AS errors,
                   extract(epoch FROM run_at)::float8 AS run_at,
                   extract(epoch FROM finished_at)::float8 AS finished_at,
                   attempted_by
            FROM hl.jobs WHERE id = $1::bigint
            """)

    // MARK: Guests

    static let putGuest = Query(
        name: "hl_put_guest",
        sql: """
            INSERT INTO hl.guests (name, image, functions)
            VALUES ($1::text, $2::bytea, string_to_array($3::text, E'\\n'))
            ON CONFLICT (name) DO UPDATE SET image = EXCLUDED.image, functions = EXCLUDED.functions, updated_at = now()
            RETURNING sha256
            """)

    static let guestByName = Query(
        name: "hl_guest_by_name",
        sql: "SELECT name, sha256, image FROM hl.guests WHERE name = $1::text",
        binaryResult: true)

    static let guestBySHA256 = Query(
        name: "hl_guest_by_sha256",
        sql: "SELECT name, sha256, image FROM hl.guests WHERE sha256 = $1::text LIMIT 1",
        binaryResult: true)

    static let listGuests = Query(
        name: "hl_list_guests",
        sql: """
            SELECT name, sha256, octet_length(image) AS size,
                   array_to_string(functions, E'\\n') AS functions,
                   extract(epoch FROM created_at)::float8 AS created_at,
                   extract(epoch FROM updated_at)::float8 AS updated_at
            FROM hl.guests ORDER BY name
            """)

    // MARK: Schedules, children and progress (migration 0009)

    /// ("hl-sched" in ASCII): one scheduler round at a time per database.
    static let schedulerLockKey: Int64 = 0x686C_2D73_6368_6564

    static let tryLockScheduler = Query(
        name: "hl_try_lock_scheduler", sql: "SELECT pg_try_advisory_xact_lock($1::bigint) AS locked")

    /// The enabled schedules and the database's clock, which ticks are
    /// measured against (not the worker's).
    static let dueSchedules = Query(
        name: "hl_due_schedules",
        sql: """
            SELECT name, cron, time_zone, extract(epoch FROM last_tick)::float8 AS last_tick,
                   extract(epoch FROM now())::float8 AS now
            FROM hl.schedules WHERE enabled ORDER BY name
            """)

    /// $1 schedule, $2 tick (epoch seconds).
    static let enqueueTick = Query(
        name: "hl_enqueue_tick", sql: "SELECT hl.enqueue_tick($1::text, to_timestamp($2::float8)) AS id")

    static let scheduleFailed = Query(
        name: "hl_schedule_failed", sql: "SELECT hl.schedule_failed($1::text, $2::text)")

    /// $1...$8 the schedule; last_tick starts now, so nothing from before
    /// it was added runs.
    static let addSchedule = Query(
        name: "hl_add_schedule",
        sql: """
            INSERT INTO hl.schedules (name, cron, time_zone, guest, function, args, queue, priority)
            VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, coalesce($6::jsonb, '{}'),
                    coalesce($7::text, 'default'), coalesce($8::smallint, 0))
            """)

    static let removeSchedule = Query(
        name: "hl_remove_schedule", sql: "DELETE FROM hl.schedules WHERE name = $1::text")

    /// $1 name, $2 enabled. Resuming starts from now: ticks missed while
    /// paused do not run.
    static let enableSchedule = Query(
        name: "hl_enable_schedule",
        sql: """
            UPDATE hl.schedules SET enabled = $2::boolean, updated_at = now(),
                last_tick = CASE WHEN $2::boolean THEN greatest(last_tick, now()) ELSE last_tick END
            WHERE name = $1::text AND enabled <> $2::boolean
            """)

    static let listSchedules = Query(
        name: "hl_list_schedules",
        sql: """
            SELECT name, cron, time_zone, guest, function, queue, enabled,
                   extract(epoch FROM last_tick)::float8 AS last_tick, last_job_id, last_error
            FROM hl.schedule_status ORDER BY name
            """)

    /// $1 id, $2 attempt, $3 worker, $4 result, $5 children (JSON array):
    /// hl.complete_with_children, true when it completed the job.
    static let completeWithChildren = Query(
        name: "hl_complete_with_children",
        sql: """
            SELECT hl.complete_with_children($1::bigint, $2::integer, $3::text, $4::jsonb, $5::jsonb) AS completed
            """)

    /// $1 id, $2 attempt, $3 worker, $4 fraction, $5 note: fenced like a
    /// finish, so a late report from an old attempt changes nothing.
    static let reportProgress = Query(
        name: "hl_report_progress",
        sql: """
            UPDATE hl.jobs SET progress = jsonb_build_object(
                'attempt', $2::integer, 'fraction', $4::float8, 'note', $5::text, 'at', now())
            WHERE id = $1::bigint AND state = 'running' AND attempt = $2::integer AND attempted_by = $3::text
            """)

    // MARK: One job, by the caller's role (migration 0008)

    /// hl.job_for_caller refuses a job the caller may not see with the same
    /// error as a missing one (SQLSTATE P0002).
    static let jobForCaller = Query(
        name: "hl_job_for_caller",
        sql: """
            SELECT id, queue, guest, function, args::text AS args, priority, state,
                   attempt, max_attempts, result::text AS result, errors::text AS errors,
                   extract(epoch FROM run_at)::float8 AS run_at,
                   extract(epoch FROM finished_at)::float8 AS finished_at,
                   attempted_by, timeout_ms, memory_mb, vm, submitted_by,
                   extract(epoch FROM created_at)::float8 AS created_at,
                   unique_key, parent_id, array_to_json(depends_on)::text AS depends_on, progress::text AS progress
            FROM hl.job_for_caller($1::bigint)
            """)
    static let retryJob = Query(name: "hl_retry_job", sql: "SELECT hl.retry_job($1::bigint) AS changed")
    static let cancelJob = Query(name: "hl_cancel_job", sql: "SELECT hl.cancel_job($1::bigint) AS changed")

    /// Per-queue counts for `status` and the queue gauges: views an
    /// hl_dashboard login may read.
    static let queueSummary = Query(
        name: "hl_queue_summary",
        sql: """
            SELECT queue, available, scheduled, running, retryable,
                   extract(epoch FROM now() - oldest_available_at)::float8 AS oldest_available_age,
                   extract(epoch FROM paused_at)::float8 AS paused_at
            FROM hl.queue_summary ORDER BY queue
            """)
    /// A session lock: held by one worker's maintenance connection until
    /// that connection ends.
    static let queueMetricsLeaseKey: Int64 = 0x686C_2D71_6D65
    static let tryQueueMetricsLease = Query(
        name: "hl_try_queue_metrics_lease", sql: "SELECT pg_try_advisory_lock($1::bigint) AS leader")
    static let liveWorkerSummary = Query(
        name: "hl_live_worker_summary",
        sql: """
            SELECT id, host, pid, extract(epoch FROM started_at)::float8 AS started_at,
                   extract(epoch FROM heartbeat_at)::float8 AS heartbeat_at,
                   concurrency, array_to_json(queues)::text AS queues, version, running
            FROM hl.live_workers ORDER BY id
            """)

    // MARK: Notifications

    static func listen(quotedChannel: String) -> String {
        "LISTEN \(quotedChannel)"
    }
}
