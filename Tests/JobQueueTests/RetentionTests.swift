import Foundation
import JobQueue
import XCTest

/// hl.prune_finished deletes old finished jobs, a batch at a time, one
/// pruner at a time, and nothing else.
final class RetentionTests: DatabaseTestCase {
    /// Inserts one job in `state`, finished `finishedAgo` ago (nil: not
    /// finished), created long before; returns its id.
    @discardableResult
    private func insert(_ state: String, finishedAgo: String?, count: Int = 1) throws -> [Int64] {
        try connection.execute(
            """
            INSERT INTO hl.jobs (guest, function, state, attempt, created_at, attempted_at, finished_at)
            SELECT 'demo', 'echo', $1, 1, now() - interval '30 days', now() - interval '30 days',
                   now() - $2::interval
            FROM generate_series(1, $3::int)
            RETURNING id
            """, params: [state, finishedAgo, String(count)]
        ).rows.map { try $0.required("id", $0.int64) }
    }

    private func prune(
        completed: String? = "1 day", discarded: String? = "7 days", batch: Int = 100,
        on connection: PGConnection? = nil
    ) throws -> Int {
        let row = try (connection ?? self.connection).execute(
            "SELECT hl.prune_finished($1::interval, $2::interval, $3::int) AS deleted",
            params: [completed, discarded, String(batch)]
        ).singleRow()
        return try row.required("deleted", row.int)
    }

    private func remainingIDs() throws -> Set<Int64> {
        Set(try connection.execute("SELECT id FROM hl.jobs").rows.map { try $0.required("id", $0.int64) })
    }

    func testDeletesOnlyFinishedJobsPastTheirRetention() throws {
        let oldCompleted = try insert("completed", finishedAgo: "2 days")
        let oldCancelled = try insert("cancelled", finishedAgo: "2 days")
        let veryOldDiscarded = try insert("discarded", finishedAgo: "8 days")
        let kept = try [
            insert("completed", finishedAgo: "1 hour"),
            insert("cancelled", finishedAgo: "23 hours"),
            insert("discarded", finishedAgo: "2 days"),
            insert("available", finishedAgo: nil),
            insert("retryable", finishedAgo: nil),
            insert("running", finishedAgo: nil),
            insertJobs(1),
        ].flatMap { $0 }

        XCTAssertEqual(try prune(), 3)
        XCTAssertEqual(try remainingIDs(), Set(kept))
        XCTAssertTrue(Set(oldCompleted + oldCancelled + veryOldDiscarded).isDisjoint(with: try remainingIDs()))
        XCTAssertEqual(try prune(), 0)
    }

    func testDeletesAtMostOneBatchPerCall() throws {
        try insert("completed", finishedAgo: "2 days", count: 15)
        try insert("discarded", finishedAgo: "9 days", count: 10)
        XCTAssertEqual(try prune(batch: 10), 10)
        XCTAssertEqual(try prune(batch: 10), 10)
        XCTAssertEqual(try prune(batch: 10), 5)
        XCTAssertEqual(try prune(batch: 10), 0)
        XCTAssertEqual(try remainingIDs(), [])
    }

    func testOldestGoFirst() throws {
        try insert("completed", finishedAgo: "5 days")
        let newer = try insert("completed", finishedAgo: "3 days")
        XCTAssertEqual(try prune(batch: 1), 1)
        XCTAssertEqual(try remainingIDs(), Set(newer))
    }

    func testNullRetentionKeepsThatKind() throws {
        let completed = try insert("completed", finishedAgo: "400 days")
        try insert("discarded", finishedAgo: "400 days")
        XCTAssertEqual(try prune(completed: nil, discarded: "7 days"), 1)
        XCTAssertEqual(try remainingIDs(), Set(completed))
        XCTAssertEqual(try prune(completed: nil, discarded: nil), 0)
    }

    func testOnePrunerAtATime() throws {
        try insert("completed", finishedAgo: "2 days", count: 3)
        let other = try database.connect()
        try other.execute("BEGIN")
        // The other pruner's transaction holds the lock until it ends.
        XCTAssertEqual(try prune(batch: 1, on: other), 1)
        XCTAssertEqual(try prune(), 0, "a second pruner returns at once, deleting nothing")
        try other.execute("COMMIT")
        XCTAssertEqual(try prune(), 2)
    }

    func testSkipsRowsOthersHold() throws {
        let held = try insert("completed", finishedAgo: "2 days")
        try insert("completed", finishedAgo: "2 days", count: 2)
        let other = try database.connect()
        try other.execute("BEGIN")
        try other.execute("SELECT 1 FROM hl.jobs WHERE id = $1 FOR UPDATE", params: [String(held[0])])
        XCTAssertEqual(try prune(), 2, "the held row is skipped, not waited for")
        XCTAssertEqual(try remainingIDs(), Set(held))
        try other.execute("COMMIT")
        XCTAssertEqual(try prune(), 1)
    }

    /// A finished job a user brings back to life is no longer finished:
    /// neither the pruner running meanwhile (which skips the locked row
    /// rather than waiting) nor a later one deletes it.
    func testLeavesRevivedJobsAlone() throws {
        let revived = try insert("completed", finishedAgo: "2 days")
        let other = try database.connect()
        try other.execute("BEGIN")
        try other.execute("UPDATE hl.jobs SET state = 'available', finished_at = NULL WHERE id = $1",
                          params: [String(revived[0])])
        XCTAssertEqual(try prune(), 0)
        try other.execute("COMMIT")
        XCTAssertEqual(try prune(), 0)
        XCTAssertEqual(try job(revived[0]).state, .available)
    }

    func testRejectsNonsense() throws {
        for (completed, discarded, batch) in [("1 day", "1 day", 0), ("-1 day", "1 day", 10), ("1 day", "-1 day", 10)] {
            XCTAssertThrowsError(try prune(completed: completed, discarded: discarded, batch: batch)) { error in
                XCTAssertEqual((error as? PGError)?.sqlState, "22023", "\(error)")
            }
        }
    }
}
