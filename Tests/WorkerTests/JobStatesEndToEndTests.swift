import Foundation
import JobQueue
import XCTest

/// Jobs inserted with plain SQL, run by a real worker process: each ends in
/// the state its outcome calls for, through the states in between.
final class JobStatesEndToEndTests: WorkerTestCase {
    func testJobRunsFromAvailableThroughRunningToCompleted() throws {
        try recordStateChanges()
        let id = try insertJob("add", args: #"{"a": 2, "b": 3}"#)
        XCTAssertEqual(try job(id).state, "available")

        let worker = try startWorker()
        try waitUntilFinal(id)

        try assertCompleted(id, result: #"{"sum": 5}"#)
        let row = try job(id)
        XCTAssertEqual(row.attemptedBy, worker.id)
        XCTAssertTrue(row.finished)
        XCTAssertEqual(try stateHistory(id).map(\.state), ["available", "running", "completed"])
        worker.terminate()
    }

    /// A guest error is worth retrying: retryable with a backoff on run_at
    /// after each failed attempt, discarded after the last, one error entry
    /// per attempt.
    func testFailingJobIsRetriedWithBackoffThenDiscarded() throws {
        try recordStateChanges()
        let id = try insertJob("fail", args: #"{"message": "boom"}"#, maxAttempts: 3)
        let worker = try startWorker()
        // Two backoffs of at most 3 s and 6 s (base 1 s, jitter up to 1.5×),
        // plus the worker's 1 s poll for jobs that came due.
        try waitUntilFinal(id, timeout: 90)

        try assertDiscarded(id, kind: "guest_error", attempts: 3, by: worker)
        XCTAssertEqual(try job(id).errors.map { $0["message"] as? String }, ["boom", "boom", "boom"])
        let history = try stateHistory(id)
        XCTAssertEqual(history.map(\.state),
                       ["available", "running", "retryable", "running", "retryable", "running", "discarded"])
        // Each retry waits base × 2^attempt × a jitter in [0.5, 1.5): never
        // at once, and never later than the formula allows (give or take
        // the microsecond PostgreSQL rounds intervals to).
        let base = Backoff.standard.baseSeconds
        for change in history where change.state == "retryable" {
            let nominal = base * pow(2, Double(change.attempt))
            XCTAssertGreaterThanOrEqual(change.delay, nominal * 0.5 - 0.001, "retry after attempt \(change.attempt)")
            XCTAssertLessThan(change.delay, nominal * 1.5 + 0.001, "retry after attempt \(change.attempt)")
        }
        worker.terminate()
    }

    /// What no retry can fix is discarded after one attempt, even with
    /// attempts left, and the worker carries on with the next job.
    func testJobsNoRetryCanFixAreDiscardedAfterOneAttempt() throws {
        let unknownGuest = try insertJob("echo", guest: "nosuch")
        // Migration 0008 refuses such args at INSERT; a row from before it
        // is still failed by the worker.
        try sql("ALTER TABLE hl.jobs DISABLE TRIGGER jobs_validate")
        let argsNotObject = try insertJob("echo", args: "[1, 2]")
        try sql("ALTER TABLE hl.jobs ENABLE TRIGGER jobs_validate")
        let unknownFunction = try insertJob("nosuch")
        let worker = try startWorker()
        try waitUntilAllFinal()

        try assertDiscarded(unknownGuest, kind: "unknown_guest", by: worker)
        try assertDiscarded(argsNotObject, kind: "invalid_job", by: worker)
        try assertDiscarded(unknownFunction, kind: "unknown_function", by: worker)

        let afterwards = try insertJob("add", args: #"{"a": 40, "b": 2}"#)
        try waitUntilFinal(afterwards)
        try assertCompleted(afterwards, result: #"{"sum": 42}"#)
        worker.terminate()
    }

    /// A guest that crashes, runs away or exhausts its memory fails its job
    /// with the matching kind; the worker and its other jobs are unharmed.
    func testMisbehavingGuestsFailWithTheirKinds() throws {
        let crash = try insertJob("crash", maxAttempts: 1)
        let timeout = try insertJob("spin", maxAttempts: 1, timeoutMs: 200)
        let outOfMemory = try insertJob("alloc", args: #"{"mb": 64}"#, maxAttempts: 1, memoryMb: 16)
        let fine = try insertJob("fib", args: #"{"n": 50}"#)
        let worker = try startWorker()
        try waitUntilAllFinal()

        try assertDiscarded(crash, kind: "guest_crash", by: worker)
        try assertDiscarded(timeout, kind: "timeout", by: worker)
        try assertDiscarded(outOfMemory, kind: "out_of_memory", by: worker)
        try assertCompleted(fine, result: #"{"fib": 12586269025}"#)
        worker.terminate()
    }

    /// A job that asked for more than the worker allows runs under the
    /// worker's maximum, and a failure that limit may have caused says so.
    func testAClampThatMattersIsInTheErrorMessage() throws {
        let clamped = try insertJob("spin", maxAttempts: 1, timeoutMs: 60_000)
        let worker = try startWorker(concurrency: 1, ["--max-timeout-ms", "300", "--default-timeout-ms", "300"])
        try waitUntilFinal(clamped)
        try assertDiscarded(clamped, kind: "timeout", by: worker)
        let message = try job(clamped).errors.first?["message"] as? String ?? ""
        XCTAssertTrue(message.contains("timeout_ms 60000 was clamped to this worker's --max-timeout-ms 300"), message)
        worker.terminate()
    }
}
