import Foundation
import HLTestSupport
import XCTest

@testable import JobQueue

/// Unique keys, dependencies, schedules' ticks, children and progress
/// (migration 0009) against a real PostgreSQL, concurrency included.
final class WorkflowTests: DatabaseTestCase {
    private let activeStates = "('pending', 'available', 'running', 'retryable')"

    private func state(_ id: Int64, on connection: PGConnection? = nil) throws -> String {
        let row = try (connection ?? self.connection).execute("SELECT state FROM hl.jobs WHERE id = $1", params: [String(id)]).singleRow()
        return try row.required("state", row.string)
    }

    private func insert(_ function: String, dependsOn: [Int64]? = nil, on connection: PGConnection? = nil) throws -> Int64 {
        let row = try (connection ?? self.connection).execute(
            "INSERT INTO hl.jobs (guest, function, depends_on) VALUES ('demo', $1, $2::bigint[]) RETURNING id",
            params: [function, dependsOn.map { "{" + $0.map(String.init).joined(separator: ",") + "}" }]).singleRow()
        return try row.required("id", row.int64)
    }

    /// Claims `id` (and only it) for worker "w" and finishes it.
    private func run(_ id: Int64, _ outcome: (Int64, Int) -> JobOutcome, store: JobStore? = nil) throws {
        let store = store ?? self.store!
        XCTAssertEqual(try store.finish([outcome(id, try claimOnly(id, store: store))]), [id])
    }

    /// Claims `id` (and only it) for worker "w": its attempt.
    private func claimOnly(_ id: Int64, store: JobStore? = nil) throws -> Int {
        let store = store ?? self.store!
        let claimed = try store.claim(workerID: "w", queues: nil, limit: 100)
        let mine = try XCTUnwrap(claimed.first { $0.id == id }, "job \(id) was not claimable")
        let others = claimed.filter { $0.id != id }
        if !others.isEmpty {
            try store.connection.execute(
                "UPDATE hl.jobs SET state = 'available', attempt = attempt - 1 WHERE id = ANY($1::bigint[])",
                params: ["{" + others.map { String($0.id) }.joined(separator: ",") + "}"])
        }
        return mine.attempt
    }

    private func complete(_ id: Int64, store: JobStore? = nil) throws {
        try run(id, { .completed(id: $0, attempt: $1, workerID: "w", resultJSON: "{}") }, store: store)
    }

    // MARK: Unique jobs

    func testAUniqueKeyIsANoOpWhileItsJobIsUnfinished() throws {
        let first = try XCTUnwrap(try store.enqueue(uniqueKey: "report:42", guest: "demo", function: "echo"))
        XCTAssertNil(try store.enqueue(uniqueKey: "report:42", guest: "demo", function: "echo"), "available")
        XCTAssertNotNil(try store.enqueue(uniqueKey: "report:43", guest: "demo", function: "echo"), "another key")
        // The documented plain-SQL form, straight into hl.jobs.
        let plain = try connection.execute("""
            INSERT INTO hl.jobs (guest, function, unique_key) VALUES ('demo', 'echo', 'report:42')
            ON CONFLICT (submitted_by, unique_key) WHERE unique_key IS NOT NULL AND state IN \(activeStates)
            DO NOTHING RETURNING id
            """)
        XCTAssertEqual(plain.rowCount, 0, "inserting again returns nothing")

        let claimed = try store.claim(workerID: "w", queues: nil, limit: 1)
        XCTAssertEqual(claimed.map(\.id), [first])
        XCTAssertNil(try store.enqueue(uniqueKey: "report:42", guest: "demo", function: "echo"), "running")
        try store.finish([.failed(id: first, attempt: 1, workerID: "w", kind: "timeout", message: "slow", retryable: true)])
        XCTAssertEqual(try state(first), "retryable")
        XCTAssertNil(try store.enqueue(uniqueKey: "report:42", guest: "demo", function: "echo"), "retryable")
        try connection.execute("UPDATE hl.jobs SET state = 'discarded', finished_at = now() WHERE id = $1", params: [String(first)])
        let again = try XCTUnwrap(try store.enqueue(uniqueKey: "report:42", guest: "demo", function: "echo"),
                                  "a finished job frees its key")
        XCTAssertNotEqual(again, first)
    }

    func testUniqueKeysArePerSubmitter() throws {
        for submitter in ["tenant_a", "tenant_b", "tenant_a"] {
            try connection.execute("""
                INSERT INTO hl.jobs (guest, function, unique_key, submitted_by) VALUES ('demo', 'echo', 'k', $1)
                ON CONFLICT (submitted_by, unique_key) WHERE unique_key IS NOT NULL AND state IN \(activeStates)
                DO NOTHING
                """, params: [submitter])
        }
        let count = try connection.execute("SELECT count(*) AS n FROM hl.jobs WHERE unique_key = 'k'").singleRow()
        XCTAssertEqual(try count.int("n"), 2, "one per submitter: a tenant cannot take another's key")
    }

    func testTwoProducersRacingTheSameKeyMakeOneJob() throws {
        let producers = 8, rounds = 20
        let connections = try (0..<producers).map { _ in JobStore(connection: try database.connect()) }
        let inserted = Collected<Int64>(), failures = Collected<String>()
        for round in 0..<rounds {
            let start = DispatchSemaphore(value: 0)
            let group = DispatchGroup()
            for producer in connections {
                DispatchQueue.global().async(group: group) {
                    start.wait()
                    do {
                        if let id = try producer.enqueue(uniqueKey: "race:\(round)", guest: "demo", function: "echo") {
                            inserted.append(id)
                        }
                    } catch {
                        failures.append("\(error)")
                    }
                }
            }
            for _ in connections { start.signal() }
            group.wait()
        }
        XCTAssertEqual(failures.values, [], "a conflicting insert is a no-op, never an error")
        XCTAssertEqual(inserted.values.count, rounds, "exactly one producer per key got an id")
        let count = try connection.execute("SELECT count(*) AS n, count(DISTINCT unique_key) AS k FROM hl.jobs").singleRow()
        XCTAssertEqual(try count.int("n"), rounds)
        XCTAssertEqual(try count.int("k"), rounds)
    }

    func testUniqueKeyHelper() throws {
        func key(_ args: String, period: String? = nil, at: String = "2026-01-01 10:15:00+00") throws -> String {
            let row = try connection.execute(
                "SELECT hl.unique_key('default', 'demo', 'echo', $1::jsonb, $2::interval, $3::timestamptz) AS k",
                params: [args, period, at]).singleRow()
            return try row.required("k", row.string)
        }
        XCTAssertEqual(try key(#"{"a":1,"b":2}"#), try key(#"{ "b": 2, "a": 1 }"#), "args compare as jsonb")
        XCTAssertNotEqual(try key(#"{"a":1}"#), try key(#"{"a":2}"#))
        XCTAssertEqual(try key("{}", period: "1 hour"), try key("{}", period: "1 hour", at: "2026-01-01 10:59:59+00"))
        XCTAssertNotEqual(try key("{}", period: "1 hour"), try key("{}", period: "1 hour", at: "2026-01-01 11:00:00+00"))
        XCTAssertNotEqual(try key("{}", period: "1 hour"), try key("{}"), "a period is part of the key")
        XCTAssertThrowsError(try key("{}", period: "-1 hour")) { error in
            XCTAssertEqual((error as? PGError)?.sqlState, "22023", "\(error)")
        }
    }

    // MARK: Dependencies

    func testADependentWaitsAndIsReleasedByTheFinishingTransaction() throws {
        let a = try insert("a"), b = try insert("b")
        let d = try insert("d", dependsOn: [b, a, a])
        XCTAssertEqual(try state(d), "pending")
        XCTAssertEqual(try job(d).state, .pending)
        try complete(a)
        XCTAssertEqual(try state(d), "pending", "one dependency still runs")

        // The release is part of the finish's own transaction: rolled back
        // with it, committed with it.
        let claimed = try store.claim(workerID: "w", queues: nil, limit: 10)
        XCTAssertEqual(claimed.map(\.id), [b], "a pending job is never claimed")
        try connection.execute("BEGIN")
        try store.finish([.completed(id: b, attempt: 1, workerID: "w", resultJSON: "{}")])
        XCTAssertEqual(try state(d), "available")
        try connection.execute("ROLLBACK")
        XCTAssertEqual(try state(d), "pending")
        try store.finish([.completed(id: b, attempt: 1, workerID: "w", resultJSON: "{}")])
        XCTAssertEqual(try state(d), "available")
        let released = try store.claim(workerID: "w", queues: nil, limit: 10)
        XCTAssertEqual(released.map(\.id), [d])
        XCTAssertEqual(released.first?.argsJSON,
                       #"{"hl_dependency_results": [{"id": \#(a), "result": {}}, {"id": \#(b), "result": {}}]}"#,
                       "a released job gets its dependencies' results")
        // Inserted once every dependency completed: runnable at once, with the results too.
        let late = try insert("late", dependsOn: [a])
        XCTAssertEqual(try state(late), "available")
        let row = try connection.execute("SELECT args::text AS args FROM hl.jobs WHERE id = $1", params: [String(late)]).singleRow()
        XCTAssertEqual(row.string("args"), #"{"hl_dependency_results": [{"id": \#(a), "result": {}}]}"#)
    }

    func testAFailedDependencyCancelsItsDependentsRecursively() throws {
        let a = try insert("a"), other = try insert("other")
        let d = try insert("d", dependsOn: [a, other])
        let e = try insert("e", dependsOn: [d])
        let f = try insert("f", dependsOn: [other])
        try run(a, { .failed(id: $0, attempt: $1, workerID: "w", kind: "guest_error", message: "no", retryable: false) })
        XCTAssertEqual(try state(a), "discarded")
        for id in [d, e] {
            XCTAssertEqual(try state(id), "cancelled")
            let last = try XCTUnwrap(try errors(of: id).last)
            XCTAssertEqual(last["kind"] as? String, "dependency_failed")
        }
        XCTAssertEqual(try state(f), "pending", "a job that does not depend on the failure waits on")
        // Inserted after the failure: cancelled at once, never pending.
        let late = try insert("late", dependsOn: [e])
        XCTAssertEqual(try state(late), "cancelled")
        // Cancelling a pending job cancels its dependents too.
        let g = try insert("g", dependsOn: [f])
        try connection.execute("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = $1", params: [String(f)])
        XCTAssertEqual(try state(f), "cancelled")
        XCTAssertEqual(try state(g), "cancelled")
    }

    /// Migration 0015: a dependency whose result makes its dependent's args
    /// too large for a guest's input still finishes (0009's release was
    /// refused with the finish, which the worker then retried for ever,
    /// with the rest of its batch); the dependent is discarded, named, and
    /// its own dependents cancelled. A fan-in over results that each fit
    /// but together do not is discarded the same way, before any combined
    /// value is built, and without reading the results beyond the one
    /// that passes the limit. A dependent whose results fit is released
    /// in the same finish.
    func testADependentWhoseResultsCannotFitItsInputIsDiscardedAndTheFinishGoesThrough() throws {
        let big = try insert("big"), small = try insert("small")
        let tooLarge = try insert("d", dependsOn: [big])
        let afterIt = try insert("e", dependsOn: [tooLarge])
        let fits = try insert("f", dependsOn: [small])
        let parts = try (0..<4).map { try insert("part\($0)") }
        let fanIn = try insert("fan_in", dependsOn: parts)

        // As large as a guest may return; with the wrapping a dependent's
        // args get, 40-odd bytes over what its input holds.
        let nearlyAMiB = #"{"s": ""# + String(repeating: "x", count: 1_048_540) + #""}"#
        let smallAttempt = try claimOnly(small)
        let bigAttempt = try claimOnly(big)
        XCTAssertEqual(Set(try store.finish([
            .completed(id: big, attempt: bigAttempt, workerID: "w", resultJSON: nearlyAMiB),
            .completed(id: small, attempt: smallAttempt, workerID: "w", resultJSON: "{}"),
        ])), [big, small], "the whole batch is written")
        XCTAssertEqual(try state(tooLarge), "discarded")
        let last = try XCTUnwrap(try errors(of: tooLarge).last)
        XCTAssertEqual(last["kind"] as? String, "invalid_job")
        XCTAssertTrue((last["message"] as? String ?? "").hasPrefix("jobs_args_size: "), "\(last)")
        XCTAssertEqual(try state(afterIt), "cancelled")
        XCTAssertEqual(try state(fits), "available")

        let part = #"{"s": ""# + String(repeating: "y", count: 400_000) + #""}"#
        for id in parts {
            try run(id, { .completed(id: $0, attempt: $1, workerID: "w", resultJSON: part) })
        }
        XCTAssertEqual(try state(fanIn), "discarded")
        let fanInError = try XCTUnwrap(try errors(of: fanIn).last)
        // Three results of 400,009 bytes pass the room; the fourth is not read.
        XCTAssertTrue((fanInError["message"] as? String ?? "").contains("would be over 1200027 bytes"), "\(fanInError)")
    }

    func testDependenciesMustExistAndBeTheSubmittersOwn() throws {
        let row = try connection.execute(
            "INSERT INTO hl.jobs (guest, function, submitted_by) VALUES ('demo', 'echo', 'someone_else') RETURNING id")
            .singleRow()
        let foreign = try row.required("id", row.int64)
        for deps in [[Int64(999_999)], [foreign]] {
            XCTAssertThrowsError(try insert("x", dependsOn: deps)) { error in
                XCTAssertEqual((error as? PGError)?.sqlState, "23503", "\(error)")
            }
        }
        XCTAssertThrowsError(try insert("x", dependsOn: [])) { error in
            XCTAssertEqual((error as? PGError)?.sqlState, "23514", "an empty list is refused: \(error)")
        }
    }

    /// Two dependencies finishing in concurrent transactions: the second
    /// waits on the dependent's lock and then sees the first's outcome, so
    /// the dependent is released (not left pending by both).
    func testConcurrentFinishesOfTwoDependenciesReleaseTheDependent() throws {
        let a = try insert("a"), b = try insert("b")
        let d = try insert("d", dependsOn: [a, b])
        let claimed = try store.claim(workerID: "w", queues: nil, limit: 10)
        XCTAssertEqual(Set(claimed.map(\.id)), [a, b])
        let other = JobStore(connection: try database.connect())
        try connection.execute("BEGIN")
        try store.finish([.completed(id: a, attempt: 1, workerID: "w", resultJSON: "{}")])
        let finishedB = expectation(description: "b finished")
        DispatchQueue.global().async {
            XCTAssertEqual(try? other.finish([.completed(id: b, attempt: 1, workerID: "w", resultJSON: "{}")]), [b])
            finishedB.fulfill()
        }
        // b's finish is blocked on d until a's transaction ends.
        try waitUntilBlocked(on: d)
        XCTAssertEqual(try state(d), "pending")
        try connection.execute("COMMIT")
        wait(for: [finishedB], timeout: 30)
        XCTAssertEqual(try state(d), "available")
    }

    /// A dependent inserted while its dependency finishes: the finish waits
    /// for the insert's lock and then releases the new row.
    func testAnInsertRacingTheDependencysFinishIsReleased() throws {
        let a = try insert("a")
        _ = try store.claim(workerID: "w", queues: nil, limit: 10)
        let other = JobStore(connection: try database.connect())
        try connection.execute("BEGIN")
        let d = try insert("d", dependsOn: [a])
        XCTAssertEqual(try state(d), "pending")
        let finished = expectation(description: "a finished")
        DispatchQueue.global().async {
            XCTAssertEqual(try? other.finish([.completed(id: a, attempt: 1, workerID: "w", resultJSON: "{}")]), [a])
            finished.fulfill()
        }
        try waitUntilBlocked(on: a)
        try connection.execute("COMMIT")
        wait(for: [finished], timeout: 30)
        XCTAssertEqual(try state(d), "available")
    }

    /// Waits until some backend waits for a lock on the row of job `id`.
    private func waitUntilBlocked(on id: Int64) throws {
        let observer = try database.connect()
        let deadline = Date(timeIntervalSinceNow: 30)
        while Date() < deadline {
            let row = try observer.execute(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
                .singleRow()
            if try row.required("n", row.int) > 0 { return }
            usleep(10_000)
        }
        throw TimedOut(what: "a finish to wait on job \(id)'s lock")
    }

    // MARK: Schedules

    func testATickIsEnqueuedOnceHoweverManyWorkersTry() throws {
        try store.addSchedule(name: "nightly", cron: "0 3 * * *", timeZone: "UTC", guest: "demo", function: "echo",
                              argsJSON: #"{"n":1}"#, queue: nil, priority: nil)
        try connection.execute("UPDATE hl.schedules SET last_tick = now() - interval '2 days'")
        // One tick value for all: each connection's now() differs.
        let tickRow = try connection.execute("SELECT date_trunc('second', now() - interval '1 day')::text AS t").singleRow()
        let tick = try tickRow.required("t", tickRow.string)
        let stores = try (0..<6).map { _ in try database.connect() }
        let ids = Collected<Int64>()
        DispatchQueue.concurrentPerform(iterations: stores.count) { i in
            let row = try? stores[i].execute("SELECT hl.enqueue_tick('nightly', $1::timestamptz) AS id", params: [tick]).singleRow()
            if let id = try? row?.int64("id") { ids.append(id) }
        }
        XCTAssertEqual(ids.values.count, 1, "six workers, one tick, one job")
        let row = try connection.execute("SELECT unique_key, args::text AS args FROM hl.jobs").singleRow()
        XCTAssertTrue(row.string("unique_key")?.hasPrefix("schedule:nightly:") ?? false)
        XCTAssertEqual(row.string("args"), #"{"n": 1}"#)
        // An earlier tick, or one in the database's future, enqueues nothing.
        XCTAssertNil(try connection.execute("SELECT hl.enqueue_tick('nightly', now() - interval '36 hours') AS id").singleRow().int64("id"))
        XCTAssertNil(try connection.execute("SELECT hl.enqueue_tick('nightly', now() + interval '1 hour') AS id").singleRow().int64("id"))
        XCTAssertTrue(try store.setScheduleEnabled(name: "nightly", false))
        XCTAssertNil(try connection.execute("SELECT hl.enqueue_tick('nightly', now()) AS id").singleRow().int64("id"),
                     "a paused schedule enqueues nothing")
    }

    /// Migration 0015: a schedule whose job the rules would refuse is
    /// refused itself. One from before that (added with the check off) has
    /// its tick used up and the refusal recorded, and the same round still
    /// enqueues the other schedules' ticks; before, it failed every round,
    /// for every schedule. It can still be paused.
    func testASchedulesJobIsCheckedAndARefusedOneDoesNotStopTheOthers() throws {
        func add(_ name: String, guest: String) throws {
            try store.addSchedule(name: name, cron: "* * * * *", timeZone: "UTC", guest: guest, function: "echo",
                                  argsJSON: nil, queue: nil, priority: nil)
        }
        XCTAssertThrowsError(try add("bad", guest: "bad guest")) { error in
            XCTAssertTrue("\(error)".contains("jobs_guest_name: "), "\(error)")
        }
        try connection.execute("ALTER TABLE hl.schedules DISABLE TRIGGER schedules_validate")
        try add("bad", guest: "bad guest")
        try connection.execute("ALTER TABLE hl.schedules ENABLE TRIGGER schedules_validate")
        try add("good", guest: "demo")
        try connection.execute("UPDATE hl.schedules SET last_tick = now() - interval '1 hour'")

        let ids = try XCTUnwrap(try store.runSchedulerRound { schedules, now in
            (schedules.map { (name: $0.name, tick: now.addingTimeInterval(-60)) }, [])
        })
        XCTAssertEqual(ids.count, 1)
        let job = try connection.execute("SELECT unique_key FROM hl.jobs").singleRow()
        XCTAssertTrue(job.string("unique_key")?.hasPrefix("schedule:good:") ?? false)
        let bad = try connection.execute("SELECT last_error FROM hl.schedules WHERE name = 'bad'").singleRow()
        XCTAssertTrue(bad.string("last_error")?.hasPrefix("its job was refused: jobs_guest_name: ") ?? false,
                      "\(bad.string("last_error") ?? "nil")")
        XCTAssertTrue(try store.setScheduleEnabled(name: "bad", false))
    }

    func testOneSchedulerRoundAtATime() throws {
        try store.addSchedule(name: "s", cron: "* * * * * *", timeZone: "UTC", guest: "demo", function: "echo",
                              argsJSON: nil, queue: nil, priority: nil)
        let holder = try database.connect()
        try holder.execute("BEGIN")
        try holder.execute("SELECT pg_advisory_xact_lock($1)", params: [String(Queries.schedulerLockKey)])
        XCTAssertNil(try store.runSchedulerRound { _, _ in ([], []) }, "another worker's round holds the lock")
        try holder.execute("COMMIT")
        let seen = try XCTUnwrap(try store.runSchedulerRound { schedules, now in
            XCTAssertEqual(schedules.map(\.name), ["s"])
            return ([(name: "s", tick: now)], [(name: "s", message: "just checking")])
        })
        XCTAssertEqual(seen.count, 1)
        XCTAssertEqual(try store.listSchedules().first?.lastError, nil, "a successful tick clears the error")
    }

    // MARK: Roles

    /// What each role needs of this migration works with that role alone:
    /// producers insert unique and dependent jobs through hl.my_jobs, the
    /// worker runs the scheduler, completes with children and reports
    /// progress; neither can read or forge the rest.
    func testEachRoleCanDoItsPartAndNoMore() throws {
        let adminURL = try XCTUnwrap(try TestDatabase.adminURL())
        var logins: [String] = []
        addTeardownBlock {
            let admin = try? PGConnection(conninfo: adminURL)
            for login in logins { _ = try? admin?.execute("DROP ROLE IF EXISTS \(login)") }
        }
        func connect(asMemberOf group: String) throws -> PGConnection {
            // Only [a-z0-9_]: safe to splice into SQL.
            let name = "hl_t_\(getpid())_\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
            try connection.execute("CREATE ROLE \(name) LOGIN IN ROLE \(group)")
            logins.append(name)
            return try PGConnection(conninfo: PGConnection.conninfo(database.url, replacing: ["user": name]))
        }
        let producer = try connect(asMemberOf: "hl_enqueue")
        let unique = """
            INSERT INTO hl.my_jobs (guest, function, unique_key, depends_on) VALUES ('demo', 'echo', $1, $2::bigint[])
            ON CONFLICT (submitted_by, unique_key) WHERE unique_key IS NOT NULL AND state IN \(activeStates)
            DO NOTHING RETURNING id, state
            """
        let first = try producer.execute(unique, params: ["k", nil]).singleRow()
        let firstID = try first.required("id", first.int64)
        XCTAssertEqual(try producer.execute(unique, params: ["k", nil]).rowCount, 0)
        let dependent = try producer.execute(unique, params: ["k2", "{\(firstID)}"]).singleRow()
        XCTAssertEqual(dependent.string("state"), "pending")
        XCTAssertThrowsError(try producer.execute("UPDATE hl.my_jobs SET progress = '{}' WHERE id = $1", params: [String(firstID)]))
        XCTAssertThrowsError(try producer.execute("SELECT * FROM hl.schedules"))
        XCTAssertThrowsError(try producer.execute("SELECT hl.enqueue_tick('x', now())"))

        let workerConnection = try connect(asMemberOf: "hl_worker")
        let worker = JobStore(connection: workerConnection, backoff: fastBackoff)
        try store.addSchedule(name: "s", cron: "* * * * * *", timeZone: "UTC", guest: "demo", function: "echo",
                              argsJSON: nil, queue: nil, priority: nil)
        try connection.execute("UPDATE hl.schedules SET last_tick = now() - interval '5 seconds'")
        let ticked = try XCTUnwrap(try worker.runSchedulerRound { schedules, now in
            ([(name: schedules[0].name, tick: now.addingTimeInterval(-1))], [])
        })
        XCTAssertEqual(ticked.count, 1)
        let claimed = try worker.claim(workerID: "w", queues: nil, limit: 10)
        let parent = try XCTUnwrap(claimed.first { $0.id == firstID })
        try worker.reportProgress(parent.attemptRef, workerID: "w", fraction: 0.25, note: "quarter")
        XCTAssertTrue(try worker.complete(parent.attemptRef, workerID: "w", resultJSON: "{}",
                                          children: [ChildJob(guest: "demo", function: "child")]))
        let child = try producer.execute("SELECT parent_id, state FROM hl.my_jobs WHERE function = 'child'").singleRow()
        XCTAssertEqual(try child.int64("parent_id"), firstID, "the child is the producer's own job")
        XCTAssertEqual(try producer.execute("SELECT state FROM hl.my_jobs WHERE id = $1",
                                            params: [String(try dependent.required("id", dependent.int64))]).singleRow().string("state"),
                       "available", "released by the worker's completion")
        XCTAssertThrowsError(try workerConnection.execute("UPDATE hl.jobs SET args = '{}' WHERE id = $1", params: [String(firstID)]))
        XCTAssertThrowsError(try workerConnection.execute("UPDATE hl.schedules SET cron = '* * * * *'"))
    }

    // MARK: Children and progress

    func testChildrenExistIfAndOnlyIfTheParentCompleted() throws {
        let parent = try insertJobs(1)[0]
        let claimed = try store.claim(workerID: "w", queues: nil, limit: 1)
        let attempt = JobAttempt(id: parent, attempt: claimed[0].attempt)
        let children = (0..<3).map { ChildJob(guest: "demo", function: "part", args: #"{"part":\#($0),"big":12345678901234567890}"#) }
            + [ChildJob(guest: "demo", function: "combine", after: [0, 1, 2])]
        XCTAssertFalse(try store.complete(JobAttempt(id: parent, attempt: 7), workerID: "w", resultJSON: "{}", children: children),
                       "another attempt's completion records nothing")
        XCTAssertEqual(try connection.execute("SELECT count(*) AS n FROM hl.jobs WHERE parent_id IS NOT NULL").singleRow().int("n"), 0)
        XCTAssertTrue(try store.complete(attempt, workerID: "w", resultJSON: #"{"split":3}"#, children: children))
        XCTAssertFalse(try store.complete(attempt, workerID: "w", resultJSON: "{}", children: children), "only once")
        let rows = try connection.execute(
            "SELECT id, function, state, args::text AS args, depends_on::text AS deps, parent_id FROM hl.jobs WHERE parent_id = $1 ORDER BY id",
            params: [String(parent)]).rows
        XCTAssertEqual(rows.map { $0.string("function") }, ["part", "part", "part", "combine"])
        XCTAssertEqual(rows.map { $0.string("state") }, ["available", "available", "available", "pending"])
        XCTAssertEqual(rows[0].string("args"), #"{"big": 12345678901234567890, "part": 0}"#, "args kept exactly")
        let partIDs = try rows.prefix(3).map { try $0.required("id", $0.int64) }
        XCTAssertEqual(rows[3].string("deps"), "{" + partIDs.map(String.init).joined(separator: ",") + "}")
        XCTAssertEqual(try state(parent), "completed")
    }

    func testProgressIsFencedByAttempt() throws {
        let id = try insertJobs(1)[0]
        let claimed = try store.claim(workerID: "w", queues: nil, limit: 1)
        let attempt = JobAttempt(id: id, attempt: claimed[0].attempt)
        try store.reportProgress(attempt, workerID: "w", fraction: 0.5, note: "half")
        try store.reportProgress(JobAttempt(id: id, attempt: 9), workerID: "w", fraction: 0.9, note: "stale")
        let row = try connection.execute("SELECT fraction, note FROM hl.job_progress WHERE id = $1", params: [String(id)]).singleRow()
        XCTAssertEqual(try row.double("fraction"), 0.5)
        XCTAssertEqual(row.string("note"), "half")
    }
}

