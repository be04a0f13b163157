import Foundation
import HLTestSupport
import JobQueue
import XCTest

/// Each group role of migrations/0003_roles.sql can do its job, connected
/// as a login member of it, and is refused everything else.
final class RolesTests: DatabaseTestCase {
    private var adminURL: String!
    /// Login roles made by this test; roles outlive databases, so they are
    /// dropped in tearDown.
    private var logins: [String] = []

    override func setUpWithError() throws {
        try super.setUpWithError()
        adminURL = try TestDatabase.adminURL()
    }

    override func tearDownWithError() throws {
        // The database goes first, closing the logins' connections.
        try super.tearDownWithError()
        let admin = try PGConnection(conninfo: adminURL)
        for login in logins { try admin.execute("DROP ROLE IF EXISTS \(login)") }
    }

    /// A new login role that is a member of `group` (nil: of no group).
    private func makeLogin(_ group: String?, attributes: String = "") throws -> String {
        // Only [a-z0-9_]: safe to splice into SQL.
        let name = "hl_t_\(getpid())_\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        try connection.execute("CREATE ROLE \(name) LOGIN \(attributes) \(group.map { "IN ROLE \($0)" } ?? "")")
        logins.append(name)
        return name
    }

    private func connect(as login: String, url: String? = nil) throws -> PGConnection {
        try PGConnection(conninfo: PGConnection.conninfo(url ?? database.url, replacing: ["user": login]))
    }

    private func connect(asMemberOf group: String) throws -> PGConnection {
        try connect(as: makeLogin(group))
    }

    /// The statement must fail for lack of privilege (SQLSTATE 42501).
    private func assertDenied(
        _ sql: String, params: [String?] = [], on connection: PGConnection,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try connection.execute(sql, params: params), sql, file: file, line: line) { error in
            XCTAssertEqual((error as? PGError)?.sqlState, "42501", "\(sql): \(error)", file: file, line: line)
        }
    }

    // MARK: hl_worker

    func testWorkerRunsTheWholeJobLifecycle() throws {
        try store.putGuest(name: "demo", image: [0x7F, 0x45, 0x4C, 0x46])
        let ids = try insertJobs(4)
        let worker = JobStore(connection: try connect(asMemberOf: "hl_worker"), backoff: fastBackoff)

        let w1 = WorkerInfo(id: "w1", host: "h", pid: 1, concurrency: 4, queues: nil, version: "test")
        XCTAssertEqual(try worker.registerWorker(w1, liveWithin: 30), .registered)
        XCTAssertEqual(try worker.heartbeat(w1, liveWithin: 30), .beating)
        XCTAssertEqual(try worker.guestImage(name: "demo")?.image, [0x7F, 0x45, 0x4C, 0x46])
        XCTAssertEqual(try worker.listGuests().map(\.name), ["demo"])

        let claimed = try worker.claim(workerID: "w1", queues: ["default"], limit: 4)
        XCTAssertEqual(claimed.map(\.id), ids)
        XCTAssertNotNil(claimed[0].guestSHA256)
        XCTAssertEqual(try worker.runningJobs(workerID: "w1").count, 4)
        try connection.execute("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = $1", params: [String(ids[3])])
        XCTAssertEqual(try worker.cancelRequests(workerID: "w1").map(\.id), [ids[3]])
        XCTAssertEqual(Set(try worker.finish([
            .completed(id: ids[0], attempt: 1, workerID: "w1", resultJSON: #"{"ok":true}"#),
            .failed(id: ids[1], attempt: 1, workerID: "w1", kind: "timeout", message: "slow", retryable: true),
            .cancelled(id: ids[3], attempt: 1, workerID: "w1", message: "cancelled"),
        ])), [ids[0], ids[1], ids[3]])
        XCTAssertEqual(try worker.requeue([JobAttempt(id: ids[2], attempt: 1)], worker: w1), [ids[2]])
        XCTAssertEqual(try job(ids[0]).state, .completed)
        XCTAssertEqual(try job(ids[1]).state, .retryable)
        XCTAssertEqual(try job(ids[2]).state, .available)
        XCTAssertEqual(try job(ids[3]).state, .cancelled)

        // Rescue, of another worker's jobs and of an earlier self's.
        _ = try store.claim(workerID: "gone", queues: nil, limit: 1)
        XCTAssertEqual(try worker.rescue(staleAfter: 30), 1)
        _ = try claimWhenDue(workerID: "w1")
        XCTAssertEqual(try worker.rescueJobs(ofEarlierWorker: w1), 1)

        let status = try worker.status()
        XCTAssertFalse(status.queues.isEmpty)
        XCTAssertEqual(status.workers.map(\.id), ["w1"])
        XCTAssertEqual(try worker.connection.execute("SELECT hl.prune_finished('1 day', '7 days', 10) AS n")
            .singleRow().int("n"), 0)
        try worker.connection.execute("LISTEN hl_jobs")
        try worker.deregisterWorker(w1)
    }

    func testWorkerCannotChangeRequestsGuestsOrSchema() throws {
        let id = try insertJobs(1)[0]
        try store.putGuest(name: "demo", image: [1])
        let worker = try connect(asMemberOf: "hl_worker")
        let job = [String(id)]
        for column in ["guest = 'x'", "function = 'x'", "args = '{}'", "queue = 'x'", "max_attempts = 9",
                       "timeout_ms = 1", "memory_mb = 1", "submitted_by = 'x'", "cancel_requested_at = now()"] {
            assertDenied("UPDATE hl.jobs SET \(column) WHERE id = $1", params: job, on: worker)
        }
        assertDenied("INSERT INTO hl.jobs (guest, function) VALUES ('g', 'f')", on: worker)
        assertDenied("DELETE FROM hl.jobs WHERE id = $1", params: job, on: worker)
        assertDenied("TRUNCATE hl.jobs", on: worker)
        assertDenied("INSERT INTO hl.guests (name, image) VALUES ('evil', '\\x00')", on: worker)
        assertDenied("UPDATE hl.guests SET image = '\\x00'", on: worker)
        assertDenied("DELETE FROM hl.guests", on: worker)
        assertDenied("INSERT INTO hl.queues (name, paused_at) VALUES ('q', now())", on: worker)
        assertDenied("SELECT * FROM hl.schema_migrations", on: worker)
        assertDenied("DROP TABLE hl.jobs", on: worker)
        assertDenied("ALTER TABLE hl.jobs DROP CONSTRAINT jobs_state_known", on: worker)
        assertDenied("CREATE TABLE hl.mine (x int)", on: worker)
        assertDenied("DROP FUNCTION hl.prune_finished(interval, interval, integer)", on: worker)
    }

    // MARK: hl_enqueue

    func testEnqueuerInsertsAndReadsOnlyItsOwnJobs() throws {
        let others = try insertJobs(2)
        let producer = try connect(asMemberOf: "hl_enqueue")
        let rival = try connect(asMemberOf: "hl_enqueue")

        // The plain-SQL way, and through the view for RETURNING.
        try producer.execute("INSERT INTO hl.jobs (guest, function, args, queue) VALUES ('demo', 'echo', '{}', 'q')")
        let id = try XCTUnwrap(try producer.execute(
            "INSERT INTO hl.my_jobs (guest, function, priority) VALUES ('demo', 'echo', 5) RETURNING id"
        ).singleRow().int64("id"))
        try rival.execute("INSERT INTO hl.my_jobs (guest, function) VALUES ('demo', 'echo')")

        let mine = try producer.execute("SELECT id, priority FROM hl.my_jobs ORDER BY id").rows
        XCTAssertEqual(mine.count, 2)
        XCTAssertEqual(try mine.last?.int64("id"), id)
        XCTAssertEqual(try mine.last?.int("priority"), 5)
        XCTAssertEqual(try rival.execute("SELECT count(*) AS n FROM hl.my_jobs").singleRow().int("n"), 1)
        XCTAssertEqual(try producer.execute("SELECT count(*) AS n FROM hl.my_jobs WHERE id = ANY($1::bigint[])",
                                            params: ["{\(others.map(String.init).joined(separator: ","))}"])
            .singleRow().int("n"), 0)
        assertDenied("SELECT * FROM hl.jobs", on: producer)
        assertDenied("SELECT id FROM hl.jobs", on: producer)
        // RETURNING on the table itself needs SELECT on it.
        assertDenied("INSERT INTO hl.jobs (guest, function) VALUES ('demo', 'echo') RETURNING id", on: producer)
        assertDenied("SELECT * FROM hl.queue_stats", on: producer)
        assertDenied("SELECT * FROM hl.guests", on: producer)
        assertDenied("SELECT * FROM hl.workers", on: producer)
    }

    func testEnqueuerCannotForgeStateOrIdentity() throws {
        let producer = try connect(asMemberOf: "hl_enqueue")
        for table in ["hl.jobs", "hl.my_jobs"] {
            for (column, value) in [("state", "'completed'"), ("result", "'1'"), ("errors", "'[]'"),
                                    ("attempt", "1"), ("attempted_by", "'w'"), ("submitted_by", "'someone'"),
                                    ("finished_at", "now()")] {
                assertDenied("INSERT INTO \(table) (guest, function, \(column)) VALUES ('demo', 'echo', \(value))",
                             on: producer)
            }
        }
        try producer.execute("INSERT INTO hl.my_jobs (guest, function) VALUES ('demo', 'echo')")
        assertDenied("UPDATE hl.my_jobs SET state = 'completed'", on: producer)
        assertDenied("UPDATE hl.my_jobs SET args = '{\"x\":1}'", on: producer)
        assertDenied("DELETE FROM hl.my_jobs", on: producer)
        assertDenied("UPDATE hl.jobs SET cancel_requested_at = now()", on: producer)
        assertDenied("SELECT hl.pause_queue('default')", on: producer)
        assertDenied("SELECT hl.prune_finished('0', '0', 100)", on: producer)
        let row = try connection.execute("SELECT submitted_by, state FROM hl.jobs").singleRow()
        XCTAssertEqual(row.string("submitted_by"), logins.last)
        XCTAssertEqual(row.string("state"), "available")
    }

    func testEnqueuerCancelsItsOwnJobsOnly() throws {
        let theirs = try insertJobs(1)[0]
        let producer = try connect(asMemberOf: "hl_enqueue")
        let mine = try producer.execute(
            "INSERT INTO hl.my_jobs (guest, function) VALUES ('demo', 'echo') RETURNING id"
        ).singleRow().int64("id")
        let cancelled = try producer.execute(
            "UPDATE hl.my_jobs SET cancel_requested_at = now() WHERE id = ANY($1::bigint[]) RETURNING id, state",
            params: ["{\(theirs),\(mine!)}"])
        XCTAssertEqual(try cancelled.rows.map { try $0.int64("id") }, [mine])
        XCTAssertEqual(cancelled.rows.map { $0.string("state") }, ["cancelled"])
        XCTAssertEqual(try job(theirs).state, .available)
    }

    /// hl.my_jobs is a security barrier: a cheap function in a caller's
    /// WHERE clause runs only on rows the view already allows.
    func testLeakyFunctionsSeeOnlyOwnRows() throws {
        try insertJobs(3)
        let producer = try connect(asMemberOf: "hl_enqueue")
        try producer.execute("INSERT INTO hl.my_jobs (guest, function) VALUES ('demo', 'echo')")
        try producer.execute("""
            CREATE FUNCTION pg_temp.peek(who text) RETURNS boolean
            LANGUAGE plpgsql COST 0.0001 AS $$
            BEGIN
                IF who IS DISTINCT FROM current_user THEN RAISE EXCEPTION 'saw a job of %', who; END IF;
                RETURN true;
            END
            $$
            """)
        XCTAssertEqual(try producer.execute("SELECT count(*) AS n FROM hl.my_jobs WHERE pg_temp.peek(submitted_by)")
            .singleRow().int("n"), 1)
    }

    // MARK: hl_dashboard

    func testDashboardReadsAndWritesNothing() throws {
        let ids = try insertJobs(2)
        _ = try store.claim(workerID: "w", queues: nil, limit: 1)
        try store.finish([.failed(id: ids[0], attempt: 1, workerID: "w", kind: "guest_crash", message: "boom",
                                  retryable: false)])
        let dashboard = try connect(asMemberOf: "hl_dashboard")

        XCTAssertEqual(try dashboard.execute("SELECT count(*) AS n FROM hl.queue_stats").singleRow().int("n"), 2)
        XCTAssertEqual(try dashboard.execute("SELECT kind FROM hl.recent_failures").singleRow().string("kind"),
                       "guest_crash")
        XCTAssertEqual(try dashboard.execute("SELECT sum(discarded) AS n FROM hl.throughput").singleRow().int("n"), 1)
        try connection.execute("SELECT hl.pause_queue('default')")
        XCTAssertEqual(try dashboard.execute("SELECT queue FROM hl.paused_queues").singleRow().string("queue"),
                       "default")

        // The web dashboard's reads (migration 0010): jobs, workers, queues,
        // guests without their images.
        XCTAssertEqual(try dashboard.execute("SELECT count(*) AS n FROM hl.jobs").singleRow().int("n"), 2)
        for table in ["hl.workers", "hl.queues", "hl.guest_versions"] {
            XCTAssertNoThrow(try dashboard.execute("SELECT * FROM \(table)"), table)
        }
        for table in ["hl.guests", "hl.my_jobs", "hl.schema_migrations"] {
            assertDenied("SELECT * FROM \(table)", on: dashboard)
        }
        assertDenied("SELECT hl.retry_job(\(ids[0]))", on: dashboard)
        assertDenied("SELECT hl.pause_queue('default')", on: dashboard)
        assertDenied("INSERT INTO hl.jobs (guest, function) VALUES ('g', 'f')", on: dashboard)
        assertDenied("UPDATE hl.jobs SET cancel_requested_at = now()", on: dashboard)
        assertDenied("DELETE FROM hl.workers", on: dashboard)
        assertDenied("SELECT hl.resume_queue('default')", on: dashboard)
        assertDenied("SELECT hl.prune_finished('0', '0', 100)", on: dashboard)
        assertDenied("CREATE VIEW hl.mine AS SELECT 1", on: dashboard)
    }

    // MARK: hl_operator

    /// The web dashboard's actions, and nothing that changes what a job
    /// asks for or what it produced.
    func testOperatorCancelsRetriesAndPausesButWritesNothingElse() throws {
        let ids = try insertJobs(2)
        _ = try store.claim(workerID: "w", queues: nil, limit: 1)
        try store.finish([.failed(id: ids[0], attempt: 1, workerID: "w", kind: "guest_crash", message: "boom",
                                  retryable: false)])
        let ops = try connect(asMemberOf: "hl_operator")

        XCTAssertEqual(try ops.execute("SELECT hl.retry_job(\(ids[0])) AS done").singleRow().bool("done"), true)
        let retried = try job(ids[0])
        XCTAssertEqual(retried.state, .available)
        XCTAssertEqual(retried.attempt, 0)
        XCTAssertEqual(try errors(of: ids[0]).first?["message"] as? String, "boom", "errors are kept")
        XCTAssertEqual(try ops.execute("SELECT hl.retry_job(\(ids[0])) AS done").singleRow().bool("done"), false,
                       "only a discarded or cancelled job is retried")
        try ops.execute("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = \(ids[1])")
        XCTAssertEqual(try job(ids[1]).state, .cancelled)
        XCTAssertEqual(try ops.execute("SELECT hl.pause_queue('default') AS done").singleRow().bool("done"), true)
        XCTAssertEqual(try ops.execute("SELECT hl.resume_queue('default') AS done").singleRow().bool("done"), true)

        assertDenied("UPDATE hl.jobs SET args = '{}'", on: ops)
        assertDenied("UPDATE hl.jobs SET state = 'completed'", on: ops)
        assertDenied("INSERT INTO hl.jobs (guest, function) VALUES ('g', 'f')", on: ops)
        assertDenied("DELETE FROM hl.jobs", on: ops)
        assertDenied("SELECT * FROM hl.guests", on: ops)
        assertDenied("SELECT hl.prune_finished('0', '0', 100)", on: ops)
    }

    /// A login in no group has no way into the schema at all.
    func testOutsidersGetNothing() throws {
        let outsider = try connect(as: makeLogin(nil))
        assertDenied("SELECT * FROM hl.queue_stats", on: outsider)
        assertDenied("INSERT INTO hl.jobs (guest, function) VALUES ('g', 'f')", on: outsider)
    }

    // MARK: Tenants against each other

    /// Any login may LISTEN (PostgreSQL has no privilege for it). One
    /// producer listening on every channel the schema uses learns neither
    /// the ids nor the queues of another producer's jobs, whatever happens
    /// to them: inserted, claimed, cancelled running or waiting, handed back,
    /// their queue paused and resumed.
    func testAListeningTenantLearnsNoJobIdOrQueueOfAnother() throws {
        let spy = try makeLogin("hl_enqueue")
        let listener = try NotificationListener(
            conninfo: try PGConnection.conninfo(database.url, replacing: ["user": spy]))
        let victim = try connect(asMemberOf: "hl_enqueue")
        let secretQueue = "payroll-\(UInt32.random(in: 0...UInt32.max))"
        var ids: [Int64] = []
        for _ in 0..<4 {
            ids.append(try XCTUnwrap(try victim.execute(
                "INSERT INTO hl.my_jobs (guest, function, queue) VALUES ('demo', 'echo', $1) RETURNING id",
                params: [secretQueue]).singleRow().int64("id")))
        }
        let worker = try register("w")
        let claimed = try store.claim(workerID: "w", queues: [secretQueue], limit: 2)
        XCTAssertEqual(claimed.count, 2)
        try victim.execute("UPDATE hl.my_jobs SET cancel_requested_at = now() WHERE id = $1", params: [String(ids[0])])
        try victim.execute("UPDATE hl.my_jobs SET cancel_requested_at = now() WHERE id = $1", params: [String(ids[2])])
        try store.requeue([claimed[1].attemptRef], worker: worker)
        XCTAssertTrue(try store.pauseQueue(secretQueue))
        XCTAssertTrue(try store.resumeQueue(secretQueue))
        // Notifications of one session arrive in commit order: after the
        // marker, everything above has been delivered.
        try connection.execute("SELECT pg_notify('hl_jobs', 'marker')")

        var events: [ListenerEvent] = []
        while !events.contains(.notification(channel: Channel.jobs, payload: "marker")) {
            events += try waitForEvents(listener, count: 1)
        }
        let payloads = events.compactMap { event -> String? in
            guard case .notification(_, let payload) = event else { return nil }
            return payload
        }.dropLast()
        XCTAssertEqual(Set(events.compactMap { event -> String? in
            guard case .notification(let channel, _) = event else { return nil }
            return channel
        }), [Channel.jobs, Channel.cancel], "the spy did hear the hints: \(events)")
        XCTAssertEqual(Set(payloads), [""], "every payload is empty: \(payloads)")
        for payload in payloads {
            XCTAssertFalse(payload.contains(secretQueue), payload)
            for id in ids { XCTAssertFalse(payload.contains(String(id)), payload) }
        }
    }

    /// Whatever path a worker takes, it can only record `cancelled` for a
    /// job whose cancellation was requested: a forged hint that slipped
    /// through would still not end a job cancelled.
    func testCancelledIsRecordedOnlyWithARequest() throws {
        let ids = try insertJobs(2)
        let worker = JobStore(connection: try connect(asMemberOf: "hl_worker"), backoff: fastBackoff)
        let claimed = try worker.claim(workerID: "w", queues: nil, limit: 2)
        XCTAssertEqual(try worker.finish([.cancelled(id: ids[0], attempt: 1, workerID: "w", message: "forged")]), [])
        XCTAssertEqual(try job(ids[0]).state, .running, "left running, for the worker's stray check to hand back")
        XCTAssertEqual(try job(ids[0]).errorsJSON, "[]")

        try connection.execute("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = $1", params: [String(ids[1])])
        XCTAssertEqual(try worker.finish([.cancelled(id: ids[1], attempt: 1, workerID: "w", message: "requested")]),
                       [ids[1]])
        XCTAssertEqual(try job(ids[1]).state, .cancelled)
        XCTAssertEqual(claimed.count, 2)
    }

    // MARK: Migrating without a superuser

    /// A database owner that is no superuser and may not create roles can
    /// migrate once the roles exist (setUp's migration made them), and the
    /// grants it makes work.
    func testOwnerWithoutSuperuserRightsMigrates() throws {
        let owner = try makeLogin(nil, attributes: "NOSUPERUSER NOCREATEROLE")
        let other = try TestDatabase(adminURL: adminURL, migrate: false)
        defer { try? other.drop() }
        try PGConnection(conninfo: adminURL).execute("ALTER DATABASE \(other.name) OWNER TO \(owner)")

        let applied = try Migrator.migrate(
            connection: try connect(as: owner, url: other.url), directory: Migrator.locateMigrationsDirectory())
        XCTAssertTrue(applied.contains("0003_roles"), "\(applied)")
        XCTAssertTrue(applied.contains("0004_retention_and_pause"), "\(applied)")

        let producer = try connect(as: makeLogin("hl_enqueue"), url: other.url)
        try producer.execute("INSERT INTO hl.jobs (guest, function) VALUES ('demo', 'echo')")
        let worker = JobStore(connection: try connect(as: makeLogin("hl_worker"), url: other.url))
        XCTAssertEqual(try worker.claim(workerID: "w", queues: nil, limit: 5).count, 1)
    }
}
