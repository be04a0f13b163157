import Foundation
import XCTest

/// SIGTERM drains a worker: no new claims, running jobs finish within the
/// grace period or go back to the queue, exit status 0, nothing left running.
final class ShutdownEndToEndTests: WorkerTestCase {
    func testSIGTERMLetsRunningJobsFinishAndLeavesWaitingJobsAvailable() throws {
        // Two slots, taken by the two spins (they sort first); the adds wait
        // in the table. Each spin ends by its 3 s timeout, well inside the
        // default 25 s grace.
        let running = try (0..<2).map { _ in try insertJob("spin", priority: -1, maxAttempts: 1, timeoutMs: 3_000) }
        let waiting = try (0..<3).map { i in try insertJob("add", args: #"{"a": \#(i), "b": 1}"#) }
        let worker = try startWorker(concurrency: 2)
        try waitUntilRunning(running, by: worker)

        worker.terminate()

        for id in running {
            try assertDiscarded(id, kind: "timeout", by: worker)
        }
        for id in waiting {
            try assertHandedBackUnstarted(id)
        }
        XCTAssertEqual(try stateCounts()["running"], nil)
        XCTAssertEqual(try sql("SELECT 1 FROM hl.workers WHERE id = $1", [worker.id]).rowCount, 0,
                       "a worker that stopped cleanly leaves no row behind")
    }

    /// With no grace, running jobs are stopped and handed back as if never
    /// attempted; the next worker runs them from the start.
    func testSIGTERMWithNoGraceHandsRunningJobsBack() throws {
        let spinning = try (0..<2).map { _ in try insertJob("spin", maxAttempts: 1, timeoutMs: 120_000) }
        let worker = try startWorker(concurrency: 2, ["--shutdown-grace", "0"])
        try waitUntilRunning(spinning, by: worker)

        worker.terminate()

        for id in spinning {
            let row = try job(id)
            XCTAssertEqual(row.state, "available", "\(row)")
            XCTAssertEqual(row.attempt, 0, "the unfinished attempt must not count: \(row)")
            XCTAssertNil(row.attemptedBy, "\(row)")
            XCTAssertTrue(row.errors.isEmpty, "\(row)")
        }

        // max_attempts 1, yet the next worker may still run them: the
        // handed-back attempt did not use it up.
        let next = try startWorker(concurrency: 2)
        try waitUntilRunning(spinning, by: next)
        try sql("UPDATE hl.jobs SET cancel_requested_at = now()")
        try waitUntilAllFinal()
        next.terminate()
    }
}
