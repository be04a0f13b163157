import Foundation
import JobQueue
import XCTest

final class DashboardViewTests: DatabaseTestCase {
    func testViewsSummariseRecentWork() throws {
        let ids = try insertJobs(4, queue: "q")
        _ = try store.claim(workerID: "w", queues: nil, limit: 3)
        try store.finish([
            .completed(id: ids[0], attempt: 1, workerID: "w", resultJSON: "1"),
            .failed(id: ids[1], attempt: 1, workerID: "w", kind: "guest_crash", message: "crashed", retryable: false),
            .failed(id: ids[2], attempt: 1, workerID: "w", kind: "timeout", message: "too slow", retryable: true),
        ])
        // Finished long ago: outside every window.
        try connection.execute(
            "UPDATE hl.jobs SET state = 'completed', finished_at = now() - interval '2 days' WHERE id = $1",
            params: [String(ids[3])])

        let stats = try connection.execute("SELECT queue, state, count FROM hl.queue_stats ORDER BY state")
        XCTAssertEqual(stats.rows.map { "\($0.string("state")!)=\($0.string("count")!)" },
                       ["completed=1", "discarded=1", "retryable=1"])

        let failures = try connection.execute("SELECT id, kind, message FROM hl.recent_failures ORDER BY id")
        XCTAssertEqual(try failures.rows.map { try $0.int64("id") }, [ids[1], ids[2]])
        XCTAssertEqual(failures.rows.map { $0.string("kind") }, ["guest_crash", "timeout"])
        XCTAssertEqual(failures.rows.map { $0.string("message") }, ["crashed", "too slow"])

        let throughput = try connection.execute("SELECT completed, discarded, p50_run_ms, p95_run_ms FROM hl.throughput")
        XCTAssertEqual(throughput.rowCount, 1)
        let minute = try throughput.singleRow()
        XCTAssertEqual(try minute.int("completed"), 1)
        XCTAssertEqual(try minute.int("discarded"), 1)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(try minute.double("p95_run_ms")), 0)
    }

    /// The views must stay cheap however many finished jobs pile up: the
    /// planner has to reach finished rows through the (state, finished_at) index.
    func testViewsReachFinishedJobsThroughTheIndex() throws {
        try connection.execute(
            """
            INSERT INTO hl.jobs (guest, function, state, attempted_at, finished_at)
            SELECT 'g', 'f', 'completed', now() - interval '3 days', now() - interval '2 days'
            FROM generate_series(1, 20000)
            """)
        try connection.execute("ANALYZE hl.jobs")
        for view in ["hl.queue_stats", "hl.recent_failures", "hl.throughput"] {
            let plan = try connection.execute("EXPLAIN SELECT * FROM \(view)").rows
                .compactMap { $0.string("QUERY PLAN") }.joined(separator: "\n")
            XCTAssertFalse(plan.contains("Seq Scan on jobs"), "\(view):\n\(plan)")
        }
    }
}
