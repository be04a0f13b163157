import Foundation
import JobQueue
import XCTest

/// The finishing statement reads only the finishing worker's running rows,
/// whatever the statistics say about running rows.
final class FinishPlanTests: DatabaseTestCase {
    /// Analyzed while every job waited, so the planner expects no running
    /// row. Another worker holds 500 running jobs; this one finishes its 8.
    /// Every plan of the finish (the first executions, planned for their
    /// values, and the generic plan a prepared statement settles on) reads
    /// at most this worker's 8 running rows; matching the worker per
    /// outcome once read all 508 on every finish.
    func testFinishReadsOnlyTheFinishingWorkersRunningRows() throws {
        try connection.execute("ALTER TABLE hl.jobs SET (autovacuum_enabled = off)")
        try insertJobs(2_000)
        try connection.execute("ANALYZE hl.jobs")
        _ = try store.claim(workerID: "other", queues: nil, limit: 500)
        let mine = try store.claim(workerID: "mine", queues: nil, limit: 8)
        XCTAssertEqual(mine.count, 8)
        let outcomes = mine.map { JobOutcome.completed(id: $0.id, attempt: $0.attempt, workerID: "mine", resultJSON: "{}") }

        // Seven executions: PostgreSQL plans the first five for their
        // values, then may settle on a generic plan.
        let plans = try StatementPlans.capture(database: database) { store in
            XCTAssertEqual(Set(try store.finish(outcomes)), Set(mine.map(\.id)))
            for _ in 1..<7 { XCTAssertEqual(try store.finish(outcomes), []) }
        }
        let updates = plans.filter { $0.contains("Update on jobs") }
        XCTAssertEqual(updates.count, 7, "\(plans)")
        for plan in updates {
            let reads = plan.split(separator: "\n").filter { $0.contains(" on jobs j") && $0.contains("actual rows=") }
            XCTAssertFalse(reads.isEmpty, plan)
            for read in reads {
                XCTAssertFalse(read.contains("Seq Scan") || read.contains("Bitmap"), plan)
                let rows = StatementPlans.actualRows(of: String(read), in: String(read)) ?? .max
                XCTAssertLessThanOrEqual(rows, 8, plan)
            }
        }
        XCTAssertEqual(StatementPlans.actualRows(of: "Update on jobs", in: updates[0]), 8, updates[0])
    }
}
