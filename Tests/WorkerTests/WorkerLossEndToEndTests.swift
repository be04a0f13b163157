import Foundation
import XCTest

/// A worker process killed with SIGKILL mid-job: another worker notices its
/// silence and rescues its jobs, so none stays `running` forever.
final class WorkerLossEndToEndTests: WorkerTestCase {
    func testJobsOfAKilledWorkerAreRescuedByAnother() throws {
        // Both spin far longer than the test; only the kill ends them here.
        let lastChance = try insertJob("spin", maxAttempts: 1, timeoutMs: 120_000)
        let retried = try insertJob("spin", maxAttempts: 2, timeoutMs: 120_000)
        let doomed = try startWorker(concurrency: 2)
        try waitUntilRunning([lastChance, retried], by: doomed)
        doomed.kill()

        // --rescue-after 5 is the least that validates (more than twice the
        // 2 s heartbeat). --max-timeout-ms clamps the retried spin on this
        // worker, so its second attempt ends in a timeout instead of
        // spinning on (the default timeout must fit under the maximum).
        let rescuer = try startWorker(concurrency: 2, ["--rescue-after", "5", "--max-timeout-ms", "1000",
                                                       "--default-timeout-ms", "1000"])
        try waitUntilAllFinal(timeout: 90)

        let lost = try job(lastChance)
        XCTAssertEqual(lost.state, "discarded", "\(lost)")
        XCTAssertEqual(lost.errors.count, 1, "\(lost)")
        assertErrorEntry(lost.errors[0], kind: "worker_lost", attempt: 1, worker: doomed.id)

        let again = try job(retried)
        XCTAssertEqual(again.state, "discarded", "\(again)")
        XCTAssertEqual(again.attempt, 2, "\(again)")
        XCTAssertEqual(again.attemptedBy, rescuer.id, "\(again)")
        XCTAssertEqual(again.errors.count, 2, "\(again)")
        if again.errors.count == 2 {
            assertErrorEntry(again.errors[0], kind: "worker_lost", attempt: 1, worker: doomed.id)
            assertErrorEntry(again.errors[1], kind: "timeout", attempt: 2, worker: rescuer.id)
        }
        XCTAssertEqual(try stateCounts()["running"], nil)
        rescuer.terminate()
    }
}
