import Foundation
import XCTest

@testable import JobQueue

/// hl.pause_queue / hl.resume_queue, as every claimer sees them.
final class PauseTests: DatabaseTestCase {
    private func pause(_ queue: String) throws -> Bool {
        let row = try connection.execute("SELECT hl.pause_queue($1) AS changed", params: [queue]).singleRow()
        return try row.required("changed", row.bool)
    }

    private func resume(_ queue: String) throws -> Bool {
        let row = try connection.execute("SELECT hl.resume_queue($1) AS changed", params: [queue]).singleRow()
        return try row.required("changed", row.bool)
    }

    func testPausedQueuesAreNotClaimedUntilResumed() throws {
        let a = try insertJobs(3, queue: "a")
        let b = try insertJobs(3, queue: "b")
        XCTAssertTrue(try pause("a"))
        XCTAssertFalse(try pause("a"), "pausing twice changes nothing")

        // Two workers, each on its own connection, one serving every queue
        // and one naming the paused queue.
        let other = JobStore(connection: try database.connect(), backoff: fastBackoff)
        XCTAssertEqual(try store.claim(workerID: "w1", queues: nil, limit: 10).map(\.id), b)
        XCTAssertEqual(try other.claim(workerID: "w2", queues: ["a", "b"], limit: 10).map(\.id), [])
        XCTAssertEqual(try other.claim(workerID: "w2", queues: ["a"], limit: 10).map(\.id), [])

        XCTAssertTrue(try resume("a"))
        XCTAssertFalse(try resume("a"), "resuming a running queue changes nothing")
        XCTAssertEqual(try other.claim(workerID: "w2", queues: ["a"], limit: 10).map(\.id), a)
    }

    func testPauseKeepsItsTimeAndLeavesRunningJobsAlone() throws {
        let id = try insertJobs(1, queue: "a")[0]
        let claimed = try store.claim(workerID: "w", queues: nil, limit: 1)
        XCTAssertTrue(try pause("a"))
        let pausedAt = try connection.execute("SELECT paused_at::text FROM hl.queues WHERE name = 'a'")
            .singleRow().string("paused_at")
        XCTAssertFalse(try pause("a"))
        XCTAssertEqual(try connection.execute("SELECT paused_at::text FROM hl.queues WHERE name = 'a'")
            .singleRow().string("paused_at"), pausedAt, "a second pause keeps the first one's time")

        // A job already running finishes as usual.
        XCTAssertEqual(claimed.map(\.id), [id])
        XCTAssertEqual(try store.finish([.completed(id: id, attempt: 1, workerID: "w", resultJSON: "1")]), [id])
        XCTAssertEqual(try job(id).state, .completed)
    }

    /// Queues may be paused before they have jobs; the names follow the
    /// rules for hl.jobs.queue.
    func testQueueNames() throws {
        XCTAssertTrue(try pause("not-yet-used"))
        try insertJobs(1, queue: "not-yet-used")
        XCTAssertEqual(try store.claim(workerID: "w", queues: nil, limit: 1).map(\.id), [])
        XCTAssertThrowsError(try pause(" ")) { error in
            XCTAssertEqual((error as? PGError)?.sqlState, "23514", "\(error)")
        }
    }

    /// Resuming wakes sleeping workers, whichever way it is done.
    func testResumingNotifiesWorkers() throws {
        let listener = try NotificationListener(conninfo: database.url, channels: [Channel.jobs])
        XCTAssertTrue(try pause("a"))
        XCTAssertTrue(try pause("b"))
        XCTAssertTrue(try pause("c"))
        XCTAssertTrue(try resume("a"))
        try connection.execute("UPDATE hl.queues SET paused_at = NULL WHERE name = 'b'")
        try connection.execute("DELETE FROM hl.queues WHERE name = 'c'")
        // Deleting a row that is not paused says nothing.
        try connection.execute("DELETE FROM hl.queues WHERE name = 'a'")

        var payloads: [String] = []
        let deadline = Date(timeIntervalSinceNow: 10)
        while payloads.count < 3 && Date() < deadline {
            for case .notification(_, let payload) in listener.wait(timeout: 1) { payloads.append(payload) }
        }
        XCTAssertEqual(payloads, ["", "", ""], "one per resume, naming no queue")
        XCTAssertEqual(listener.wait(timeout: 0.2), [])
    }

    /// The paused-queue check must not cost the claim its index: with a
    /// large backlog the claim still reads through a claim index.
    func testClaimStillUsesTheClaimIndexes() throws {
        try connection.execute(
            """
            INSERT INTO hl.jobs (queue, guest, function)
            SELECT 'q' || (i % 20), 'demo', 'echo' FROM generate_series(1, 20000) AS i
            """)
        XCTAssertTrue(try pause("q3"))
        try connection.execute("ANALYZE hl.jobs")
        try connection.execute("ANALYZE hl.queues")
        for queues in [nil, ["q1", "q3"]] {
            let plan = try StatementPlans.claim(database: database, queues: queues, limit: 10).joined(separator: "\n")
            XCTAssertFalse(plan.contains("Seq Scan on jobs"), plan)
            XCTAssertTrue(plan.contains("using jobs_claim_"), plan)
        }
    }
}
