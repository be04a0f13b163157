import Foundation
import JobQueue
import XCTest

/// One worker id, one live process: a second process under the id of a live
/// one is refused, and can neither hand back its jobs nor delete its row.
final class WorkerIdentityTests: DatabaseTestCase {
    private func process(_ id: String, pid: Int32) -> WorkerInfo {
        WorkerInfo(id: id, host: "host-\(pid)", pid: pid, concurrency: 2, queues: nil, version: "test")
    }

    func testASecondProcessCannotTakeALiveWorkersIDOrItsJobs() throws {
        let first = process("shared", pid: 100)
        let second = process("shared", pid: 200)
        XCTAssertNotEqual(first.instance, second.instance)
        XCTAssertEqual(try store.registerWorker(first, liveWithin: 30), .registered)
        let id = try insertJobs()[0]
        let running = try XCTUnwrap(try store.claim(workerID: "shared", queues: nil, limit: 1).first)

        guard case .heldByLiveWorker(let host, let pid, let silentFor) = try store.registerWorker(second, liveWithin: 30)
        else { return XCTFail("a live worker's id was handed to a second process") }
        XCTAssertEqual(host, "host-100")
        XCTAssertEqual(pid, 100)
        XCTAssertLessThan(silentFor, 30)

        // What the second process did before: rescue the first one's job as
        // its own stray, hand it back, delete the shared row on exit.
        XCTAssertEqual(try store.rescueJobs(ofEarlierWorker: second), 0)
        XCTAssertEqual(try store.requeue([running.attemptRef], worker: second), [])
        try store.deregisterWorker(second)
        XCTAssertEqual(try store.heartbeat(second, liveWithin: 30), .takenOver(host: "host-100", pid: 100))

        XCTAssertEqual(try job(id).state, .running)
        XCTAssertEqual(try job(id).attempt, 1)
        XCTAssertEqual(try store.heartbeat(first, liveWithin: 30), .beating)
        XCTAssertEqual(try store.status().workers.map(\.pid), [100])
    }

    /// A process that died leaves its heartbeat to go stale; then a new one
    /// may take the id, and the old one, should it come back, learns that it
    /// lost the id and touches nothing of the new one's.
    func testAStaleIDIsTakenOverAndTheOldProcessIsToldSo() throws {
        let old = process("fixed", pid: 1)
        let new = process("fixed", pid: 2)
        XCTAssertEqual(try store.registerWorker(old, liveWithin: 30), .registered)
        try connection.execute("UPDATE hl.workers SET heartbeat_at = now() - interval '31 seconds'")
        XCTAssertEqual(try store.registerWorker(new, liveWithin: 30), .registered)

        try insertJobs()
        let running = try XCTUnwrap(try store.claim(workerID: "fixed", queues: nil, limit: 1).first)
        XCTAssertEqual(try store.heartbeat(old, liveWithin: 30), .takenOver(host: "host-2", pid: 2))
        XCTAssertEqual(try store.requeue([running.attemptRef], worker: old), [])
        try store.deregisterWorker(old)
        XCTAssertEqual(try store.heartbeat(new, liveWithin: 30), .beating)
        XCTAssertEqual(try store.requeue([running.attemptRef], worker: new), [running.id])
        try store.deregisterWorker(new)
        XCTAssertEqual(try store.status().workers, [])
    }
}
