import Foundation
import XCTest

/// `UPDATE hl.jobs SET cancel_requested_at = now()`, the one way users cancel.
final class CancellationEndToEndTests: WorkerTestCase {
    func testCancellingARunningJobStopsItsGuest() throws {
        let spinning = try insertJob("spin", timeoutMs: 120_000)
        let worker = try startWorker(concurrency: 2)
        try waitUntilRunning([spinning], by: worker)

        try sql("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = $1", [String(spinning)])
        // The guest would spin for two minutes: ending within seconds means
        // its vCPU was stopped.
        try waitUntilFinal(spinning, timeout: 10)

        let row = try job(spinning)
        XCTAssertEqual(row.state, "cancelled", "\(row)")
        XCTAssertTrue(row.finished, "\(row)")
        XCTAssertEqual(row.errors.count, 1, "\(row)")
        if let entry = row.errors.first {
            assertErrorEntry(entry, kind: "cancelled", attempt: 1, worker: worker.id)
        }
        // The worker goes on working.
        let next = try insertJob("add", args: #"{"a": 1, "b": 1}"#)
        try waitUntilFinal(next)
        try assertCompleted(next, result: #"{"sum": 2}"#)
        worker.terminate()
    }

    /// A job nobody runs yet is cancelled by the UPDATE itself: no worker is
    /// needed, and none runs it afterwards.
    func testCancellingAWaitingJobNeedsNoWorker() throws {
        let later = try insertJob("add", args: #"{"a": 1, "b": 2}"#, runAtSQL: "now() + interval '1 hour'")
        let now = try insertJob("add", args: #"{"a": 3, "b": 4}"#)
        try sql("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = ANY($1::bigint[])", ["{\(later),\(now)}"])
        for id in [later, now] {
            let row = try job(id)
            XCTAssertEqual(row.state, "cancelled", "\(row)")
            XCTAssertEqual(row.attempt, 0, "\(row)")
            XCTAssertTrue(row.finished, "\(row)")
        }

        let worker = try startWorker()
        let marker = try insertJob("add", args: #"{"a": 5, "b": 6}"#)
        try waitUntilFinal(marker)
        try assertCompleted(marker, result: #"{"sum": 11}"#)
        for id in [later, now] {
            let row = try job(id)
            XCTAssertEqual(row.state, "cancelled", "\(row)")
            XCTAssertEqual(row.attempt, 0, "a cancelled job was run: \(row)")
        }
        worker.terminate()
    }
}
