import Foundation
import HLTestSupport
import JobQueue
import XCTest

/// Migration 0008: jobs that can never run are refused at INSERT with a
/// named rule; retry, cancel and show act by the caller's role; the
/// summaries behind `status` and the queue gauges count what the table holds.
final class OperatorChecksTests: DatabaseTestCase {
    private var logins: [String] = []

    override func tearDownWithError() throws {
        let adminURL = try TestDatabase.adminURL()
        try super.tearDownWithError()
        if let adminURL {
            let admin = try PGConnection(conninfo: adminURL)
            for login in logins { try admin.execute("DROP ROLE IF EXISTS \(login)") }
        }
    }

    private func connect(asMemberOf group: String) throws -> JobStore {
        // Only [a-z0-9_]: safe to splice into SQL.
        let name = "hl_t_\(getpid())_\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        try connection.execute("CREATE ROLE \(name) LOGIN IN ROLE \(group)")
        logins.append(name)
        return JobStore(connection: try PGConnection(conninfo: PGConnection.conninfo(database.url, replacing: ["user": name])),
                        backoff: fastBackoff)
    }

    /// The INSERT fails as a check violation whose message names `rule`.
    private func assertRefused(_ columns: String, _ values: String, rule: String, file: StaticString = #filePath, line: UInt = #line) {
        assertRefused(sql: "INSERT INTO hl.jobs (\(columns)) VALUES (\(values))", rule: rule, file: file, line: line)
    }

    private func assertRefused(sql: String, rule: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try connection.execute(sql), sql, file: file, line: line) { error in
            guard case .queryFailed(_, let state, let message, _, _) = error as? PGError else {
                return XCTFail("\(error)", file: file, line: line)
            }
            XCTAssertEqual(state, "23514", message, file: file, line: line)
            XCTAssertTrue(message.hasPrefix("\(rule): "), message, file: file, line: line)
            XCTAssertFalse(message.contains("\n"), message, file: file, line: line)
        }
    }

    func testInsertRefusesJobsThatCanNeverRunAndNamesTheRule() throws {
        for args in ["'[]'", "'\"text\"'", "'null'", "'42'"] {
            assertRefused("guest, function, args", "'g', 'f', \(args)", rule: "jobs_args_object")
        }
        assertRefused("guest, function, memory_mb", "'g', 'f', 7", rule: "jobs_memory_range")
        assertRefused("guest, function, memory_mb", "'g', 'f', 4097", rule: "jobs_memory_range")
        assertRefused("guest, function, timeout_ms", "'g', 'f', 86400001", rule: "jobs_timeout_range")
        assertRefused("guest, function", "'no such guest', 'f'", rule: "jobs_guest_name")
        // 86 characters (under the 128 of jobs_function_sane), 258 bytes.
        assertRefused("guest, function", "'g', repeat('€', 86)", rule: "jobs_function_bytes")
        assertRefused("guest, function, run_at", "'g', 'f', 'infinity'", rule: "jobs_run_at_finite")
        // The input area is 1 MiB; the call header takes 16 bytes and the
        // function name its own: {"s": "xxx..."} is 9 bytes plus the x's.
        let fits = 1_048_576 - 16 - 1 - 9
        XCTAssertNoThrow(try connection.execute(
            "INSERT INTO hl.jobs (guest, function, args) VALUES ('g', 'f', jsonb_build_object('s', repeat('x', \(fits))))"))
        assertRefused("guest, function, args", "'g', 'f', jsonb_build_object('s', repeat('x', \(fits + 1)))",
                      rule: "jobs_args_size")
        // The edges that can run are accepted.
        XCTAssertNoThrow(try store.enqueue(guest: "g", function: "f", timeoutMs: 86_400_000, memoryMb: 8))
        XCTAssertNoThrow(try store.enqueue(guest: "g", function: "f", timeoutMs: 1, memoryMb: 4096))
        // A user's later edit is checked too.
        let id = try insertJobs()[0]
        XCTAssertThrowsError(try connection.execute("UPDATE hl.jobs SET args = '[1]' WHERE id = $1", params: [String(id)]))
    }

    /// Migration 0015: 0001's and 0009's CHECKs on what a submitter writes
    /// became rules of the same statement-level check, refused the same
    /// way; each is tried at its edge, so the trigger's one-expression
    /// filter and the function that names the rule must agree on it (a row
    /// the filter misses is accepted; one the function does not name gets
    /// the fallback message, which starts with another name).
    func testInsertRefusesWhatTheCheckConstraintsRefusedAndNamesTheRule() throws {
        assertRefused("queue, guest, function", "' ', 'g', 'f'", rule: "jobs_queue_sane")
        assertRefused("queue, guest, function", "repeat('q', 129), 'g', 'f'", rule: "jobs_queue_sane")
        assertRefused("guest, function", "'g', ' '", rule: "jobs_function_sane")
        assertRefused("guest, function", "'g', repeat('f', 129)", rule: "jobs_function_sane")
        assertRefused("guest, function, priority", "'g', 'f', -101", rule: "jobs_priority_range")
        assertRefused("guest, function, priority", "'g', 'f', 101", rule: "jobs_priority_range")
        assertRefused("guest, function, max_attempts", "'g', 'f', 0", rule: "jobs_max_attempts_range")
        assertRefused("guest, function, max_attempts", "'g', 'f', 1001", rule: "jobs_max_attempts_range")
        assertRefused("guest, function, vm", "'g', 'f', 'warm'", rule: "jobs_vm_known")
        assertRefused("guest, function, unique_key", "'g', 'f', ''", rule: "jobs_unique_key_sane")
        assertRefused("guest, function, unique_key", "'g', 'f', repeat('k', 257)", rule: "jobs_unique_key_sane")
        assertRefused("guest, function, depends_on", "'g', 'f', '{}'", rule: "jobs_depends_on_sane")
        // 0008's rules come first: a row breaking both is named by 0008's.
        assertRefused("guest, function, args, priority", "'g', 'f', '[]', 500", rule: "jobs_args_object")
        // The edges that can run, and nulls, are accepted.
        XCTAssertNoThrow(try connection.execute("""
            INSERT INTO hl.jobs (queue, guest, function, priority, max_attempts, vm, unique_key, memory_mb, timeout_ms)
            VALUES (repeat('q', 128), 'g', repeat('f', 128), -100, 1, 'fresh', repeat('k', 256), NULL, NULL),
                   ('q', 'g', 'f', 100, 1000, 'recycled', 'k', 8, 1), ('q', 'g', 'f', 0, 3, NULL, NULL, 4096, 86400000)
            """))
    }

    /// One bad row anywhere in a statement refuses the whole statement, by
    /// INSERT ... SELECT and by COPY alike.
    func testABadRowLateInAStatementRefusesAllOfIt() throws {
        let before = try number("SELECT count(*) AS n FROM hl.jobs")
        assertRefused(sql: """
            INSERT INTO hl.jobs (guest, function, priority)
            SELECT 'g', 'f', CASE WHEN i = 1000 THEN 101 ELSE 0 END FROM generate_series(1, 1000) AS i
            """, rule: "jobs_priority_range")
        XCTAssertThrowsError(try connection.execute("""
            COPY hl.jobs (guest, function, max_attempts) FROM PROGRAM 'printf "g\\tf\\t3\\ng\\tf\\t0\\n"'
            """)) { error in
            XCTAssertTrue("\(error)".contains("jobs_max_attempts_range: "), "\(error)")
        }
        XCTAssertEqual(try number("SELECT count(*) AS n FROM hl.jobs"), before)
    }

    /// A later UPDATE that sets a submitter's column is held to the rules
    /// per row; the workers' own columns keep their CHECKs.
    func testUpdatesOfSubmittedColumnsAreCheckedToo() throws {
        let id = String(try insertJobs()[0])
        for (set, rule) in [("priority = 101", "jobs_priority_range"), ("vm = 'warm'", "jobs_vm_known"),
                            ("queue = ''", "jobs_queue_sane"), ("depends_on = '{}'", "jobs_depends_on_sane")] {
            XCTAssertThrowsError(try connection.execute("UPDATE hl.jobs SET \(set) WHERE id = $1", params: [id]), set) { error in
                XCTAssertTrue("\(error)".contains("\(rule): "), "\(error)")
            }
        }
        XCTAssertThrowsError(try connection.execute("UPDATE hl.jobs SET state = 'paused' WHERE id = $1", params: [id])) { error in
            XCTAssertTrue("\(error)".contains("jobs_state_known"), "\(error)")
        }
    }

    /// Why 0015 moved the rules out of CHECK constraints: PostgreSQL reads a
    /// CHECK's and a WHEN clause's stored node text back, and plans it, on
    /// every statement that writes hl.jobs (every INSERT, claim and finish),
    /// where a plpgsql function's plans are kept for the session. This
    /// bounds that text, so that a rule added as a CHECK or a WHEN says here
    /// why it must be one. (0014's 13 CHECKs and WHEN held 17 KB.)
    func testStatementsReadBackLittleStoredNodeText() throws {
        let checks = try number("""
            SELECT coalesce(sum(octet_length(conbin::text)), 0) AS n FROM pg_constraint
            WHERE conrelid = 'hl.jobs'::regclass AND contype = 'c'
            """)
        let insertWhens = try number("""
            SELECT coalesce(sum(octet_length(tgqual::text)), 0) AS n FROM pg_trigger
            WHERE tgrelid = 'hl.jobs'::regclass AND tgqual IS NOT NULL AND tgtype & 4 <> 0
            """)
        XCTAssertLessThanOrEqual(checks, 3_000, "CHECK node text on hl.jobs, in bytes")
        XCTAssertLessThanOrEqual(insertWhens, 500, "WHEN node text of INSERT triggers on hl.jobs, in bytes")
    }

    /// The one number `sql` selects, as `n`.
    private func number(_ sql: String) throws -> Int {
        try XCTUnwrap(try connection.execute(sql).singleRow().int("n"))
    }

    /// The rationale of 0001's header: a row that breaks the new rules (it
    /// predates them) must not make any worker statement fail.
    func testWorkersStillClaimAndFinishRowsFromBeforeTheRules() throws {
        try connection.execute("ALTER TABLE hl.jobs DISABLE TRIGGER jobs_validate")
        try connection.execute("""
            INSERT INTO hl.jobs (guest, function, args, memory_mb, timeout_ms, max_attempts)
            VALUES ('bad guest', 'f', '[1]', 1, 999999999, 2), ('bad guest', 'f', '"x"', 2, 1, 1)
            """)
        try connection.execute("ALTER TABLE hl.jobs ENABLE TRIGGER jobs_validate")
        let worker = try register("w")
        let claimed = try store.claim(workerID: "w", queues: nil, limit: 10)
        XCTAssertEqual(claimed.count, 2)
        XCTAssertEqual(Set(try store.finish([
            .failed(id: claimed[0].id, attempt: 1, workerID: "w", kind: "invalid_job", message: "m", retryable: true),
            .failed(id: claimed[1].id, attempt: 1, workerID: "w", kind: "invalid_job", message: "m", retryable: false),
        ])), Set(claimed.map(\.id)))
        let again = try claimWhenDue(workerID: "w")
        XCTAssertEqual(try store.requeue([JobAttempt(id: again.id, attempt: again.attempt)], worker: worker), [again.id])
        XCTAssertTrue(try store.retryJob(id: claimed[1].id), "retry of an old row too")
    }

    func testRetryPutsADiscardedOrCancelledJobBackWithItsErrorsKept() throws {
        let ids = try insertJobs(3)
        _ = try register("w")
        let claimed = try store.claim(workerID: "w", queues: nil, limit: 1)[0]
        try store.finish([.failed(id: claimed.id, attempt: 1, workerID: "w", kind: "guest_error", message: "boom",
                                  retryable: false)])
        XCTAssertEqual(try job(claimed.id).state, .discarded)
        XCTAssertTrue(try store.cancelJob(id: ids[1]))
        XCTAssertEqual(try job(ids[1]).state, .cancelled)
        XCTAssertFalse(try store.cancelJob(id: ids[1]), "already cancelled")

        XCTAssertTrue(try store.retryJob(id: claimed.id))
        let retried = try job(claimed.id)
        XCTAssertEqual(retried.state, .available)
        XCTAssertEqual(retried.attempt, 0)
        XCTAssertNil(retried.finishedAt)
        XCTAssertEqual(try errors(of: claimed.id).map { $0["kind"] as? String }, ["guest_error"], "errors kept")
        XCTAssertTrue(try store.retryJob(id: ids[1]))
        XCTAssertEqual(try job(ids[1]).state, .available)
        // A retried cancelled job can be claimed and cancelled again.
        let next = try store.claim(workerID: "w", queues: nil, limit: 3).map(\.id)
        XCTAssertTrue(next.contains(ids[1]) && next.contains(claimed.id), "\(next)")
        XCTAssertTrue(try store.cancelJob(id: ids[1]))
        XCTAssertFalse(try store.retryJob(id: ids[2]), "a running job is not retried")
        XCTAssertNil(try store.jobDetail(id: 999_999))
    }

    func testTenantsActOnlyOnTheirOwnJobsAndDashboardsOnNone() throws {
        let alice = try connect(asMemberOf: "hl_enqueue")
        let bob = try connect(asMemberOf: "hl_enqueue")
        let mine = try alice.enqueue(guest: "demo", function: "echo")
        let theirs = try bob.enqueue(guest: "demo", function: "echo")

        XCTAssertEqual(try alice.jobDetail(id: mine)?.record.id, mine)
        XCTAssertNil(try alice.jobDetail(id: theirs), "another tenant's job looks like no job")
        XCTAssertThrowsError(try alice.cancelJob(id: theirs)) { error in
            XCTAssertEqual((error as? PGError)?.sqlState, "P0002", "\(error)")
        }
        XCTAssertEqual(try job(theirs).state, .available)
        XCTAssertTrue(try alice.cancelJob(id: mine))
        XCTAssertThrowsError(try bob.retryJob(id: mine))
        XCTAssertTrue(try alice.retryJob(id: mine))
        XCTAssertEqual(try job(mine).state, .available)

        let worker = try connect(asMemberOf: "hl_worker")
        XCTAssertTrue(try worker.cancelJob(id: theirs), "a worker login acts on any job")
        XCTAssertTrue(try worker.retryJob(id: theirs))

        let dashboard = try connect(asMemberOf: "hl_dashboard")
        for action in [{ _ = try dashboard.retryJob(id: mine) }, { _ = try dashboard.cancelJob(id: mine) }] {
            XCTAssertThrowsError(try action()) { error in
                XCTAssertEqual((error as? PGError)?.sqlState, "42501", "\(error)")
            }
        }
    }

    func testQueueSummaryCountsWhatTheTableHoldsAndDashboardsMayReadIt() throws {
        try insertJobs(3, queue: "a")
        try connection.execute(
            "INSERT INTO hl.jobs (queue, guest, function, run_at) VALUES ('a', 'g', 'f', now() + interval '1 hour')")
        try insertJobs(2, queue: "b")
        try connection.execute("UPDATE hl.jobs SET run_at = now() - interval '100 seconds' WHERE queue = 'b'")
        _ = try store.pauseQueue("c")
        let worker = try register("w")
        let claimed = try store.claim(workerID: "w", queues: ["b"], limit: 1)[0]
        try store.finish([.failed(id: claimed.id, attempt: 1, workerID: "w", kind: "timeout", message: "t", retryable: true)])
        try connection.execute("UPDATE hl.jobs SET run_at = now() - interval '1 second' WHERE id = $1",
                               params: [String(claimed.id)])
        _ = try store.claim(workerID: "w", queues: ["a"], limit: 1)
        _ = worker

        let dashboard = try connect(asMemberOf: "hl_dashboard")
        let summary = Dictionary(uniqueKeysWithValues: try dashboard.queueSummary().map { ($0.queue, $0) })
        XCTAssertEqual(summary["a"].map { [$0.available, $0.scheduled, $0.running, $0.retryable] }, [2, 1, 1, 0])
        XCTAssertEqual(summary["b"].map { [$0.available, $0.scheduled, $0.running, $0.retryable] }, [1, 0, 0, 1])
        XCTAssertEqual(try XCTUnwrap(summary["b"]?.oldestAvailableAge), 100, accuracy: 5)
        XCTAssertNil(summary["a"]?.pausedAt)
        XCTAssertNotNil(summary["c"]?.pausedAt, "a paused queue with no jobs is listed")
        XCTAssertEqual(try dashboard.liveWorkerSummary().map(\.id), ["w"])
        XCTAssertEqual(try dashboard.liveWorkerSummary().first?.runningJobs, 1)
    }

    /// What the binary carries is what migrations/ holds: a copied binary
    /// migrates to the same schema as the checkout.
    func testEmbeddedMigrationsAreTheFilesOfTheCheckout() throws {
        let files = try Migrator.migrations(in: Migrator.locateMigrationsDirectory())
        XCTAssertEqual(Migrator.embedded.map(\.name), files.map(\.name))
        for (embedded, file) in zip(Migrator.embedded, files) {
            XCTAssertEqual(embedded.embeddedSQL, try String(contentsOfFile: file.path, encoding: .utf8), file.name)
        }
        XCTAssertEqual(try store.schemaVersion(), Migrator.latestVersion)
        let worker = try connect(asMemberOf: "hl_worker")
        XCTAssertEqual(try worker.schemaVersion(), Migrator.latestVersion, "a worker login reads the version")
        XCTAssertEqual(try Migrator.chosenMigrations().map(\.name), files.map(\.name))
    }
}
