import Foundation
import JobQueue
import XCTest

final class JobLifecycleTests: DatabaseTestCase {
    func testJobGoesFromAvailableThroughRunningToCompleted() throws {
        try register("w1")
        let result = try connection.execute(
            "INSERT INTO hl.jobs (guest, function, args) VALUES ('demo', 'add', '{\"a\": 1}') RETURNING id")
        let row = try result.singleRow()
        let id = try row.required("id", row.int64)
        XCTAssertEqual(try job(id).state, .available)
        XCTAssertEqual(try job(id).queue, "default")
        XCTAssertEqual(try job(id).maxAttempts, 3)

        let claimed = try XCTUnwrap(try store.claim(workerID: "w1", queues: nil, limit: 10).first)
        XCTAssertEqual(claimed.id, id)
        XCTAssertEqual(claimed.attempt, 1)
        XCTAssertEqual(claimed.function, "add")
        XCTAssertEqual(try job(id).state, .running)
        XCTAssertEqual(try job(id).attemptedBy, "w1")
        XCTAssertEqual(try store.claim(workerID: "w1", queues: nil, limit: 10), [], "a running job is not claimed again")

        let finished = try store.finish([.completed(id: id, attempt: 1, workerID: "w1", resultJSON: "{\"sum\": 3}")])
        XCTAssertEqual(finished, [id])
        let done = try job(id)
        XCTAssertEqual(done.state, .completed)
        XCTAssertEqual(done.resultJSON, "{\"sum\": 3}")
        XCTAssertNotNil(done.finishedAt)
        XCTAssertEqual(done.errorsJSON, "[]")
    }

    func testClaimOrderIsPriorityThenRunAtThenID() throws {
        let late = try insertJobs(2, priority: 0)
        let urgent = try insertJobs(1, priority: -5)
        let lazy = try insertJobs(1, priority: 7)
        // Scheduled earlier than the others of its priority: it goes first among them.
        let early = try insertJobs(1, priority: 0)
        try connection.execute("UPDATE hl.jobs SET run_at = now() - interval '1 minute' WHERE id = $1", params: [String(early[0])])

        let claimed = try store.claim(workerID: "w", queues: nil, limit: 3).map(\.id)
            + store.claim(workerID: "w", queues: nil, limit: 10).map(\.id)
        XCTAssertEqual(claimed, urgent + early + late + lazy)
    }

    func testClaimTakesOnlyDueJobsOfTheRequestedQueues() throws {
        let mail = try insertJobs(1, queue: "mail")
        try insertJobs(1, queue: "video")
        let future = try insertJobs(1, queue: "mail")
        try connection.execute("UPDATE hl.jobs SET run_at = now() + interval '1 hour' WHERE id = $1", params: [String(future[0])])

        XCTAssertEqual(try store.claim(workerID: "w", queues: ["mail"], limit: 10).map(\.id), mail)
        XCTAssertEqual(try store.claim(workerID: "w", queues: ["mail"], limit: 10), [])
        XCTAssertEqual(try store.claim(workerID: "w", queues: nil, limit: 10).map(\.queue), ["video"])
    }

    func testClaimSkipsRowsLockedByAnotherSessionWithoutWaiting() throws {
        let ids = try insertJobs(3)
        let other = try database.connect()
        try other.execute("BEGIN")
        try other.execute("SELECT id FROM hl.jobs WHERE id = $1 FOR UPDATE", params: [String(ids[0])])
        // Would block until the other transaction ends if it did not skip.
        XCTAssertEqual(try store.claim(workerID: "w", queues: nil, limit: 10).map(\.id), Array(ids[1...]))
        try other.execute("ROLLBACK")
        XCTAssertEqual(try store.claim(workerID: "w", queues: nil, limit: 10).map(\.id), [ids[0]])
    }

    func testConcurrentClaimersNeverShareAJob() throws {
        let ids = try insertJobs(400)
        let stores = try (0..<4).map { _ in JobStore(connection: try database.connect()) }
        let lock = NSLock()
        var claimed: [Int64] = []
        var failures: [Error] = []
        DispatchQueue.concurrentPerform(iterations: stores.count) { index in
            do {
                while true {
                    let batch = try stores[index].claim(workerID: "w\(index)", queues: nil, limit: 7)
                    if batch.isEmpty { break }
                    lock.lock()
                    claimed += batch.map(\.id)
                    lock.unlock()
                }
            } catch {
                lock.lock()
                failures.append(error)
                lock.unlock()
            }
        }
        XCTAssertTrue(failures.isEmpty, "\(failures)")
        XCTAssertEqual(claimed.count, ids.count, "no job claimed twice, none missed")
        XCTAssertEqual(Set(claimed), Set(ids))
    }

    func testClaimReportsArgsTypeLimitsAndGuestDigest() throws {
        let digest = try store.putGuest(name: "demo", image: Array("an image".utf8))
        let object = try insertJobs(args: "{\"n\": 1}")
        // A row from before migration 0008, which now refuses it at INSERT:
        // the claim still reports it, for the worker to fail.
        try connection.execute("ALTER TABLE hl.jobs DISABLE TRIGGER jobs_validate")
        let list = try insertJobs(args: "[1, 2]")
        try connection.execute("ALTER TABLE hl.jobs ENABLE TRIGGER jobs_validate")
        let unknown = try insertJobs(guest: "nobody")
        try connection.execute(
            "UPDATE hl.jobs SET timeout_ms = 250, memory_mb = 16, vm = 'fresh' WHERE id = $1", params: [String(object[0])])

        let claimed = try store.claim(workerID: "w", queues: nil, limit: 10)
        let byID = Dictionary(uniqueKeysWithValues: claimed.map { ($0.id, $0) })
        let first = try XCTUnwrap(byID[object[0]])
        XCTAssertTrue(first.argsIsObject)
        XCTAssertEqual(first.argsJSON, "{\"n\": 1}")
        XCTAssertEqual(first.timeoutMs, 250)
        XCTAssertEqual(first.memoryMb, 16)
        XCTAssertEqual(first.vm, "fresh")
        XCTAssertEqual(first.guestSHA256, digest)
        XCTAssertEqual(byID[list[0]]?.argsIsObject, false)
        XCTAssertEqual(byID[list[0]]?.argsJSON, "[1, 2]")
        XCTAssertNil(byID[list[0]]?.timeoutMs)
        XCTAssertNil(try XCTUnwrap(byID[unknown[0]]).guestSHA256)
    }

    func testResultOfAStaleAttemptIsIgnored() throws {
        try register("w1")
        try register("w2")
        let id = try insertJobs()[0]
        let first = try XCTUnwrap(try store.claim(workerID: "w1", queues: nil, limit: 1).first)
        // w1 is presumed dead; its job is retried and taken by w2.
        try connection.execute("DELETE FROM hl.workers WHERE id = 'w1'")
        XCTAssertEqual(try store.rescue(staleAfter: 30), 1)
        let second = try claimWhenDue(workerID: "w2")
        XCTAssertEqual(second.id, id)
        XCTAssertEqual(second.attempt, 2)

        let late = try store.finish([
            .completed(id: id, attempt: first.attempt, workerID: "w1", resultJSON: "\"stale\""),
            .completed(id: id, attempt: second.attempt, workerID: "w1", resultJSON: "\"wrong worker\""),
        ])
        XCTAssertEqual(late, [])
        XCTAssertEqual(try job(id).state, .running)
        XCTAssertEqual(try store.finish([.completed(id: id, attempt: 2, workerID: "w2", resultJSON: "\"fresh\"")]), [id])
        XCTAssertEqual(try job(id).resultJSON, "\"fresh\"")
        XCTAssertEqual(try store.finish([.completed(id: id, attempt: 2, workerID: "w2", resultJSON: "\"again\"")]), [],
                       "a finished job is not finished twice")
    }

    func testRetryableFailureBacksOffThenDiscardsAfterMaxAttempts() throws {
        let id = try insertJobs()[0]
        for attempt in 1...3 {
            let claimed = try claimWhenDue(workerID: "w")
            XCTAssertEqual(claimed.attempt, attempt)
            try store.finish([.failed(id: id, attempt: attempt, workerID: "w", kind: "guest_error",
                                      message: "boom \(attempt)", retryable: true)])
            let row = try job(id)
            if attempt < 3 {
                XCTAssertEqual(row.state, .retryable)
                XCTAssertNil(row.finishedAt)
                // base × 2^attempt × at most 1.5, measured from before the call.
                XCTAssertLessThanOrEqual(row.runAt.timeIntervalSinceNow, fastBackoff.baseSeconds * 4 * 1.5)
            } else {
                XCTAssertEqual(row.state, .discarded)
                XCTAssertNotNil(row.finishedAt)
            }
        }
        let entries = try errors(of: id)
        XCTAssertEqual(entries.map { $0["attempt"] as? Int }, [1, 2, 3])
        XCTAssertEqual(entries.map { $0["message"] as? String }, ["boom 1", "boom 2", "boom 3"])
        XCTAssertEqual(Set(entries.compactMap { $0["kind"] as? String }), ["guest_error"])
        XCTAssertEqual(Set(entries.compactMap { $0["worker"] as? String }), ["w"])
        XCTAssertTrue(entries.allSatisfy { $0["at"] is String })
    }

    func testBackoffDelaysTheRetry() throws {
        store = JobStore(connection: connection, backoff: Backoff(baseSeconds: 60, maxSeconds: 3600))
        let id = try insertJobs()[0]
        _ = try store.claim(workerID: "w", queues: nil, limit: 1)
        try store.finish([.failed(id: id, attempt: 1, workerID: "w", kind: "timeout", message: "slow", retryable: true)])
        let wait = try job(id).runAt.timeIntervalSinceNow
        XCTAssertGreaterThan(wait, 60)  // 60 × 2 × at least 0.5
        XCTAssertLessThan(wait, 181)
        XCTAssertEqual(try store.claim(workerID: "w", queues: nil, limit: 1), [])
    }

    func testNonRetryableFailureDiscardsAtOnce() throws {
        let id = try insertJobs()[0]
        _ = try store.claim(workerID: "w", queues: nil, limit: 1)
        try store.finish([.failed(id: id, attempt: 1, workerID: "w", kind: "unknown_function",
                                  message: "no function echo", retryable: false)])
        XCTAssertEqual(try job(id).state, .discarded)
        XCTAssertEqual(try errors(of: id).map { $0["kind"] as? String }, ["unknown_function"])
    }

    func testMixedBatchFinishesInOneCall() throws {
        let ids = try insertJobs(3)
        _ = try store.claim(workerID: "w", queues: nil, limit: 3)
        try connection.execute("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = $1", params: [String(ids[2])])
        let finished = try store.finish([
            .completed(id: ids[0], attempt: 1, workerID: "w", resultJSON: "1"),
            .failed(id: ids[1], attempt: 1, workerID: "w", kind: "guest_crash", message: "triple fault", retryable: true),
            .cancelled(id: ids[2], attempt: 1, workerID: "w", message: "cancelled by request"),
        ])
        XCTAssertEqual(Set(finished), Set(ids))
        XCTAssertEqual(try ids.map { try job($0).state }, [.completed, .retryable, .cancelled])
        XCTAssertEqual(try errors(of: ids[2]).map { $0["kind"] as? String }, ["cancelled"])
    }

    /// Outcomes of two workers in one call: each is recorded against its
    /// own worker's attempt (the statement names one worker at a time), an
    /// error names the worker that reported it, and an outcome naming the
    /// wrong worker for a job changes nothing.
    func testOneCallWithSeveralWorkersRecordsEachAgainstItsOwnWorker() throws {
        let ids = try insertJobs(3)
        let first = try XCTUnwrap(try store.claim(workerID: "w1", queues: nil, limit: 1).first)
        let others = try store.claim(workerID: "w2", queues: nil, limit: 2)
        XCTAssertEqual(Set(others.map(\.id) + [first.id]), Set(ids))
        let finished = try store.finish([
            .completed(id: first.id, attempt: 1, workerID: "w1", resultJSON: "1"),
            .failed(id: others[0].id, attempt: 1, workerID: "w2", kind: "guest_error", message: "no", retryable: false),
            .completed(id: others[1].id, attempt: 1, workerID: "w1", resultJSON: "\"not w1's\""),
        ])
        XCTAssertEqual(Set(finished), [first.id, others[0].id])
        XCTAssertEqual(try job(first.id).state, .completed)
        XCTAssertEqual(try job(others[0].id).state, .discarded)
        XCTAssertEqual(try errors(of: others[0].id).map { $0["worker"] as? String }, ["w2"])
        XCTAssertEqual(try job(others[1].id).state, .running)
    }

    func testResultPostgreSQLRejectsFailsOnlyItsJob() throws {
        let ids = try insertJobs(3)
        _ = try store.claim(workerID: "w", queues: nil, limit: 3)
        let finished = try store.finish([
            .completed(id: ids[0], attempt: 1, workerID: "w", resultJSON: "{\"ok\": true}"),
            .completed(id: ids[1], attempt: 1, workerID: "w", resultJSON: "{not json"),
            .completed(id: ids[2], attempt: 1, workerID: "w", resultJSON: "\"\\u0000\""),
        ])
        XCTAssertEqual(Set(finished), Set(ids))
        XCTAssertEqual(try job(ids[0]).state, .completed)
        for id in ids[1...] {
            XCTAssertEqual(try job(id).state, .discarded)
            XCTAssertEqual(try errors(of: id).map { $0["kind"] as? String }, ["invalid_output"])
        }
    }

    /// A completion that a trigger refuses (here one of the test's own; in
    /// 0009's release of dependents, a dependent's args grown too large)
    /// fails its job instead of failing the batch on every retry.
    func testACompletionTheSchemaRefusesFailsOnlyItsJob() throws {
        try connection.execute("""
            CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.result ? 'poison' THEN
                    RAISE EXCEPTION 'poisoned result' USING ERRCODE = 'check_violation';
                END IF;
                RETURN NEW;
            END $$
            """)
        try connection.execute("CREATE TRIGGER refuse_poison BEFORE UPDATE ON hl.jobs FOR EACH ROW EXECUTE FUNCTION refuse_poison()")
        let ids = try insertJobs(2)
        _ = try store.claim(workerID: "w", queues: nil, limit: 2)
        XCTAssertEqual(Set(try store.finish([
            .completed(id: ids[0], attempt: 1, workerID: "w", resultJSON: "{\"poison\": 1}"),
            .completed(id: ids[1], attempt: 1, workerID: "w", resultJSON: "{\"ok\": 1}"),
        ])), Set(ids))
        XCTAssertEqual(try job(ids[1]).state, .completed)
        XCTAssertEqual(try job(ids[0]).state, .discarded)
        let error = try XCTUnwrap(try errors(of: ids[0]).first)
        XCTAssertEqual(error["kind"] as? String, "invalid_output")
        XCTAssertEqual(error["message"] as? String, "PostgreSQL refused to record the result: poisoned result")
    }

    func testNULCharactersInMessagesAndResultsDoNotBreakTheBatch() throws {
        let ids = try insertJobs(3)
        _ = try store.claim(workerID: "w", queues: nil, limit: 3)
        let finished = try store.finish([
            .failed(id: ids[0], attempt: 1, workerID: "w", kind: "guest_error", message: "bad\0byte", retryable: false),
            .completed(id: ids[1], attempt: 1, workerID: "w", resultJSON: "{\"a\": 1}\0"),
            .completed(id: ids[2], attempt: 1, workerID: "w", resultJSON: "2"),
        ])
        XCTAssertEqual(Set(finished), Set(ids))
        XCTAssertEqual(try errors(of: ids[0]).map { $0["message"] as? String }, ["bad\u{FFFD}byte"])
        XCTAssertEqual(try job(ids[1]).state, .discarded)
        XCTAssertEqual(try errors(of: ids[1]).map { $0["kind"] as? String }, ["invalid_output"])
        XCTAssertEqual(try job(ids[2]).state, .completed)
    }

    func testRequeueHandsJobsBackWithTheAttemptUndone() throws {
        let ids = try insertJobs(2)
        let worker = try register("w")
        let other = try register("other")
        let claimed = try store.claim(workerID: "w", queues: nil, limit: 2)
        XCTAssertEqual(try store.requeue(claimed.map(\.attemptRef), worker: other), [], "fenced by worker")
        XCTAssertEqual(Set(try store.requeue(claimed.map(\.attemptRef), worker: worker)), Set(ids))
        for id in ids {
            let row = try job(id)
            XCTAssertEqual(row.state, .available)
            XCTAssertEqual(row.attempt, 0)
            XCTAssertNil(row.attemptedBy)
        }
        XCTAssertEqual(try store.claim(workerID: "w2", queues: nil, limit: 5).map(\.attempt), [1, 1])
    }

    func testRunningJobsListsWhatTheDatabaseThinksAWorkerRuns() throws {
        let ids = try insertJobs(3)
        _ = try store.claim(workerID: "w", queues: nil, limit: 2)
        XCTAssertEqual(try store.runningJobs(workerID: "w"), ids[..<2].map { JobAttempt(id: $0, attempt: 1) })
        XCTAssertEqual(try store.runningJobs(workerID: "nobody"), [])
    }

    func testEnqueueAppliesDefaultsAndOptions() throws {
        let plain = try store.enqueue(guest: "demo", function: "echo")
        let row = try job(plain)
        XCTAssertEqual(row.queue, "default")
        XCTAssertEqual(row.argsJSON, "{}")
        XCTAssertEqual(row.priority, 0)
        XCTAssertEqual(row.maxAttempts, 3)
        XCTAssertEqual(row.state, .available)

        let later = Date().addingTimeInterval(3600)
        let custom = try store.enqueue(
            guest: "demo", function: "echo", argsJSON: "{\"x\": [1]}", queue: "q", priority: -3, runAt: later,
            maxAttempts: 9, timeoutMs: 100, memoryMb: 8, vm: "recycled")
        let customRow = try job(custom)
        XCTAssertEqual(customRow.queue, "q")
        XCTAssertEqual(customRow.argsJSON, "{\"x\": [1]}")
        XCTAssertEqual(customRow.priority, -3)
        XCTAssertEqual(customRow.maxAttempts, 9)
        XCTAssertEqual(customRow.runAt.timeIntervalSince1970, later.timeIntervalSince1970, accuracy: 0.001)

        XCTAssertThrowsError(try store.enqueue(guest: "demo", function: "echo", argsJSON: "{oops")) { error in
            XCTAssertEqual((error as? PGError)?.sqlState, "22P02")
        }
        XCTAssertThrowsError(try store.enqueue(guest: "demo", function: "echo", vm: "warm")) { error in
            XCTAssertEqual((error as? PGError)?.sqlState, "23514", "check constraint")
        }
    }

    func testConstraintsRejectNonsense() throws {
        for bad in ["(queue, guest, function) VALUES ('', 'g', 'f')",
                    "(guest, function, max_attempts) VALUES ('g', 'f', 0)",
                    "(guest, function, priority) VALUES ('g', 'f', 1000)",
                    "(guest, function, timeout_ms) VALUES ('g', 'f', -1)",
                    "(guest, function, state) VALUES ('g', 'f', 'paused')"] {
            XCTAssertThrowsError(try connection.execute("INSERT INTO hl.jobs \(bad)"), bad)
        }
    }
}
