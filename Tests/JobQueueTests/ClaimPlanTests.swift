import Foundation
import XCTest

/// The claim walks a claim index in order and stops at its LIMIT, also on
/// a table PostgreSQL has no statistics for.
final class ClaimPlanTests: DatabaseTestCase {
    /// 10,000 waiting jobs in a table never analyzed (autovacuum is off for
    /// it, so no analyze can land mid-test): the plan that picks the jobs
    /// reads the claim index in order, with no bitmap scan and no sort of
    /// the backlog, and reads no more index entries than it claims.
    func testClaimWalksTheClaimIndexOnANeverAnalyzedTable() throws {
        try connection.execute("ALTER TABLE hl.jobs SET (autovacuum_enabled = off)")
        try insertJobs(10_000)
        try assertNeverAnalyzed()

        let plans = try StatementPlans.claim(database: database, queues: nil, limit: 8)
        let picking = try XCTUnwrap(plans.first { $0.contains("LockRows") }, "\(plans)")
        XCTAssertTrue(picking.contains("Index Scan using jobs_claim_any_queue on jobs"), picking)
        XCTAssertFalse(picking.contains("Bitmap"), picking)
        XCTAssertFalse(picking.contains("Sort"), picking)
        XCTAssertEqual(StatementPlans.actualRows(of: "Index Scan using jobs_claim_any_queue", in: picking), 8, picking)
        XCTAssertFalse(plans.contains { $0.contains("Seq Scan on jobs") || $0.contains("Bitmap Heap Scan on jobs") },
                       "\(plans)")
        try assertNeverAnalyzed()
    }

    /// The same for a worker serving named queues: each queue's walk stops
    /// at the LIMIT.
    func testClaimOfNamedQueuesWalksTheQueueIndexOnANeverAnalyzedTable() throws {
        try connection.execute("ALTER TABLE hl.jobs SET (autovacuum_enabled = off)")
        try insertJobs(5_000, queue: "a")
        try insertJobs(5_000, queue: "b")
        try assertNeverAnalyzed()

        let plans = try StatementPlans.claim(database: database, queues: ["a", "b"], limit: 8)
        let picking = try XCTUnwrap(plans.first { $0.contains("LockRows") }, "\(plans)")
        XCTAssertTrue(picking.contains("Index Scan using jobs_claim_by_queue on jobs"), picking)
        XCTAssertFalse(picking.contains("Bitmap"), picking)
        // Each queue's walk (two loops) stops at 8: at most 16 entries read.
        let perLoop = StatementPlans.actualRows(of: "Index Scan using jobs_claim_by_queue", in: picking)
        XCTAssertNotNil(perLoop, picking)
        XCTAssertLessThanOrEqual(perLoop ?? .max, 8, picking)
        XCTAssertFalse(plans.contains { $0.contains("Seq Scan on jobs") || $0.contains("Bitmap Heap Scan on jobs") },
                       "\(plans)")
        try assertNeverAnalyzed()
    }

    /// A table analyzed while empty (freshly migrated, or pruned to
    /// nothing), then given 10,000 waiting jobs before the next analyze:
    /// with every index estimated at one page, the lookup of the picked
    /// rows once chose jobs_submitted_by, whose second column is id, and
    /// read the whole index on every claim. The claimed rows are updated
    /// by their tuple ids instead, which no index offers.
    func testClaimUpdatesThePickedRowsByTupleIDAfterTheEmptyTableWasAnalyzed() throws {
        try connection.execute("ALTER TABLE hl.jobs SET (autovacuum_enabled = off)")
        try connection.execute("ANALYZE hl.jobs")
        try insertJobs(10_000)
        XCTAssertEqual(try connection.execute("SELECT reltuples::text AS n FROM pg_class WHERE oid = 'hl.jobs'::regclass")
            .singleRow().string("n"), "0", "hl.jobs was analyzed while empty")

        let plans = try StatementPlans.claim(database: database, queues: nil, limit: 8)
        let picking = try XCTUnwrap(plans.first { $0.contains("LockRows") }, "\(plans)")
        XCTAssertTrue(picking.contains("Index Scan using jobs_claim_any_queue on jobs"), picking)
        XCTAssertEqual(StatementPlans.actualRows(of: "Index Scan using jobs_claim_any_queue", in: picking), 8, picking)
        let updating = try XCTUnwrap(plans.first { $0.contains("Update on jobs") }, "\(plans)")
        XCTAssertTrue(updating.contains("Tid Scan on jobs"), updating)
        XCTAssertEqual(StatementPlans.actualRows(of: "Tid Scan on jobs", in: updating), 8, updating)
        XCTAssertFalse(plans.contains { $0.contains("Seq Scan on jobs") || $0.contains("Bitmap Heap Scan on jobs") },
                       "\(plans)")
    }

    private func assertNeverAnalyzed() throws {
        let row = try connection.execute(
            """
            SELECT coalesce(s.last_analyze, s.last_autoanalyze) IS NULL AS never, c.reltuples
            FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid
            WHERE s.schemaname = 'hl' AND s.relname = 'jobs'
            """).singleRow()
        XCTAssertEqual(try row.bool("never"), true, "hl.jobs has been analyzed")
        XCTAssertEqual(row.string("reltuples"), "-1", "hl.jobs has statistics")
    }
}
