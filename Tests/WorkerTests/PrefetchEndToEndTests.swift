import Foundation
import XCTest

/// Workers that claim ahead of their free slots (--prefetch) still run
/// every job exactly once, and hand prefetched jobs back unstarted when
/// they stop.
final class PrefetchEndToEndTests: WorkerTestCase {
    func testPrefetchingWorkersRunEveryJobExactlyOnce() throws {
        try recordStateChanges()
        let first = try startWorker(concurrency: 2, ["--prefetch", "8"])
        let second = try startWorker(concurrency: 2, ["--prefetch", "8"])
        try sql("""
            INSERT INTO hl.jobs (guest, function, args, vm)
            SELECT 'demo', 'add', jsonb_build_object('a', i, 'b', i * 1000), 'recycled'
            FROM generate_series(1, 500) AS i
            """)
        try waitUntilAllFinal(timeout: 120)

        try assertAddJobsRanRightOnce(500, by: [first, second])
        // Jobs of one claim share its transaction's attempted_at: a claim
        // took more jobs than the worker has slots, so it did prefetch.
        let largest = try sql("""
            SELECT max(n) AS n FROM (SELECT count(*) AS n FROM hl.jobs GROUP BY attempted_by, attempted_at) AS c
            """).singleRow()
        XCTAssertGreaterThan(try largest.int("n") ?? 0, 2, "no claim took more jobs than there are slots")

        first.terminate()
        second.terminate()
    }

    /// One slot, busy with a spin; four adds claimed ahead of it. SIGTERM:
    /// the spin ends within the grace, the prefetched adds go back to the
    /// queue as never attempted, and the next worker runs each once.
    func testSIGTERMHandsPrefetchedJobsBackUnstarted() throws {
        try recordStateChanges()
        let spin = try insertJob("spin", priority: -1, maxAttempts: 1, timeoutMs: 3_000)
        let adds = try (0..<4).map { i in try insertJob("add", args: #"{"a": \#(i), "b": 1}"#, maxAttempts: 1) }
        let worker = try startWorker(concurrency: 1, ["--prefetch", "4"])
        try waitUntilRunning([spin] + adds, by: worker)

        worker.terminate()

        try assertDiscarded(spin, kind: "timeout", by: worker)
        for id in adds {
            try assertHandedBackUnstarted(id, "a prefetched job handed back must not use up an attempt: ")
            XCTAssertTrue(try job(id).errors.isEmpty)
        }
        XCTAssertEqual(try stateCounts()["running"], nil)

        // max_attempts 1, yet they run: the handed-back claims did not count.
        let next = try startWorker(concurrency: 2)
        try waitUntilAllFinal()
        for (i, id) in adds.enumerated() {
            try assertCompleted(id, result: #"{"sum":\#(i + 1)}"#)
            let history = try stateHistory(id).map(\.state)
            XCTAssertEqual(history, ["available", "running", "available", "running", "completed"], "job \(id)")
        }
        next.terminate()
    }

    /// A prefetched job whose cancellation is requested while it waits for
    /// a slot ends cancelled without running; the others run as usual.
    func testAPrefetchedJobCancelledWhileWaitingNeverRuns() throws {
        let spin = try insertJob("spin", priority: -1, maxAttempts: 1, timeoutMs: 3_000)
        let adds = try (0..<2).map { i in try insertJob("add", args: #"{"a": \#(i), "b": 1}"#) }
        let worker = try startWorker(concurrency: 1, ["--prefetch", "4"])
        try waitUntilRunning([spin] + adds, by: worker)

        try sql("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = $1", [String(adds[0])])
        try waitUntilAllFinal()

        try assertDiscarded(spin, kind: "timeout", by: worker)
        let cancelled = try job(adds[0])
        XCTAssertEqual(cancelled.state, "cancelled", "\(cancelled)")
        XCTAssertNil(cancelled.resultJSON, "a cancelled job must not have run: \(cancelled)")
        try assertCompleted(adds[1], result: #"{"sum":2}"#)
        worker.terminate()
    }
}
