import Foundation
import XCTest

/// Every job inserted ends in exactly one final state, run exactly once,
/// however many workers share the queue and however many jobs arrive at once.
final class ExactlyOnceEndToEndTests: WorkerTestCase {
    func testTwoWorkerProcessesOnOneQueueNeverRunAJobTwice() throws {
        try recordStateChanges()
        let first = try startWorker(concurrency: 4)
        let second = try startWorker(concurrency: 4)
        try sql("""
            INSERT INTO hl.jobs (guest, function, args)
            SELECT 'demo', 'add', jsonb_build_object('a', i, 'b', i * 1000) FROM generate_series(1, 500) AS i
            """)
        try waitUntilAllFinal(timeout: 120)

        try assertAddJobsRanRightOnce(500, by: [first, second])

        first.terminate()
        second.terminate()
    }

    /// Recycled VMs keep this quick: a fresh VM per job would spend most of
    /// the time creating VMs on these two cores.
    func testTenThousandJobsInsertedInOneTransactionEachEndFinalOnce() throws {
        let worker = try startWorker(concurrency: 4)
        try sql("BEGIN")
        try sql("""
            INSERT INTO hl.jobs (guest, function, args, vm)
            SELECT 'demo', 'add', jsonb_build_object('a', i, 'b', -2 * i), 'recycled'
            FROM generate_series(1, 5000) AS i
            """)
        try sql("""
            INSERT INTO hl.jobs (guest, function, args, vm)
            SELECT 'demo', 'echo', jsonb_build_object('n', i, 'text', 'job ' || i), 'recycled'
            FROM generate_series(1, 5000) AS i
            """)
        try sql("COMMIT")
        try waitUntilAllFinal(timeout: 300)

        let summary = try sql("""
            SELECT count(*) AS jobs,
                   count(*) FILTER (WHERE state = 'completed' AND attempt = 1 AND errors = '[]'
                       AND result = CASE function
                           WHEN 'add' THEN jsonb_build_object('sum', (args->>'a')::bigint + (args->>'b')::bigint)
                           ELSE args END) AS right_once
            FROM hl.jobs
            """).singleRow()
        XCTAssertEqual(try summary.int("jobs"), 10_000)
        XCTAssertEqual(try summary.int("right_once"), 10_000, "jobs not completed right on their first attempt")
        worker.terminate()
    }
}
