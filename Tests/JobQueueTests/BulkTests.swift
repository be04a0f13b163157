import Foundation
import JobQueue
import XCTest

final class BulkTests: DatabaseTestCase {
    /// 10,000 jobs inserted in one transaction, drained in batches by four
    /// claimers at once: each is claimed and completed exactly once.
    func testTenThousandJobsAreEachClaimedExactlyOnce() throws {
        try connection.transaction {
            try connection.execute(
                "INSERT INTO hl.jobs (guest, function, args) SELECT 'g', 'f', jsonb_build_object('i', i) FROM generate_series(1, 10000) AS i")
        }
        let stores = try (0..<4).map { _ in JobStore(connection: try database.connect()) }
        let lock = NSLock()
        var seen: [Int64] = []
        var failures: [Error] = []
        DispatchQueue.concurrentPerform(iterations: stores.count) { index in
            let workerID = "w\(index)"
            do {
                while true {
                    let batch = try stores[index].claim(workerID: workerID, queues: nil, limit: 100)
                    if batch.isEmpty { break }
                    let finished = try stores[index].finish(batch.map {
                        .completed(id: $0.id, attempt: $0.attempt, workerID: workerID, resultJSON: $0.argsJSON)
                    })
                    lock.lock()
                    seen += finished
                    lock.unlock()
                }
            } catch {
                lock.lock()
                failures.append(error)
                lock.unlock()
            }
        }
        XCTAssertTrue(failures.isEmpty, "\(failures)")
        XCTAssertEqual(seen.count, 10_000)
        XCTAssertEqual(Set(seen).count, 10_000)
        let summary = try connection.execute(
            """
            SELECT count(*) FILTER (WHERE state = 'completed' AND attempt = 1 AND result = args) AS good,
                   count(*) AS total
            FROM hl.jobs
            """).singleRow()
        XCTAssertEqual(try summary.int("good"), 10_000)
        XCTAssertEqual(try summary.int("total"), 10_000)
    }
}
