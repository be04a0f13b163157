import Foundation
import JobQueue
import XCTest

final class RescueTests: DatabaseTestCase {
    func testJobsOfASilentWorkerAreRetriedWithWorkerLost() throws {
        try register("dead")
        try register("alive")
        let ids = try insertJobs(2)
        _ = try store.claim(workerID: "dead", queues: nil, limit: 1)
        _ = try store.claim(workerID: "alive", queues: nil, limit: 1)
        try connection.execute("UPDATE hl.workers SET heartbeat_at = now() - interval '1 minute' WHERE id = 'dead'")

        XCTAssertEqual(try store.rescue(staleAfter: 30), 1)
        let rescued = try job(ids[0])
        XCTAssertEqual(rescued.state, .retryable)
        XCTAssertEqual(try errors(of: ids[0]).map { $0["kind"] as? String }, ["worker_lost"])
        XCTAssertEqual(try errors(of: ids[0]).map { $0["worker"] as? String }, ["dead"])
        XCTAssertEqual(try job(ids[1]).state, .running, "a live worker's job stays with it")
        XCTAssertEqual(try store.rescue(staleAfter: 30), 0)

        let retried = try claimWhenDue(workerID: "alive")
        XCTAssertEqual(retried.id, ids[0])
        XCTAssertEqual(retried.attempt, 2)
    }

    func testJobsOfAnUnregisteredWorkerAreRescued() throws {
        let id = try insertJobs()[0]
        _ = try store.claim(workerID: "ghost", queues: nil, limit: 1)
        XCTAssertEqual(try store.rescue(staleAfter: 30), 1)
        XCTAssertEqual(try job(id).state, .retryable)
    }

    func testLostLastAttemptIsDiscardedAndLostCancelledJobIsCancelled() throws {
        let last = try insertJobs()[0]
        let cancelled = try insertJobs()[0]
        try connection.execute("UPDATE hl.jobs SET max_attempts = 1 WHERE id = $1", params: [String(last)])
        _ = try store.claim(workerID: "ghost", queues: nil, limit: 2)
        try connection.execute("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = $1", params: [String(cancelled)])

        XCTAssertEqual(try store.rescue(staleAfter: 30), 2)
        XCTAssertEqual(try job(last).state, .discarded)
        XCTAssertNotNil(try job(last).finishedAt)
        XCTAssertEqual(try job(cancelled).state, .cancelled)
    }

    func testConcurrentRescuersRescueEachJobOnce() throws {
        let ids = try insertJobs(200)
        _ = try store.claim(workerID: "ghost", queues: nil, limit: 200)
        let stores = try (0..<4).map { _ in JobStore(connection: try database.connect()) }
        let lock = NSLock()
        var total = 0
        DispatchQueue.concurrentPerform(iterations: stores.count) { index in
            let count = (try? stores[index].rescue(staleAfter: 30)) ?? -1000
            lock.lock()
            total += count
            lock.unlock()
        }
        XCTAssertEqual(total, ids.count)
        for id in ids.prefix(5) { XCTAssertEqual(try errors(of: id).count, 1) }
    }

    func testLongSilentWorkersAreForgotten() throws {
        let old = try register("old")
        let recent = try register("recent")
        try connection.execute("UPDATE hl.workers SET heartbeat_at = now() - interval '2 hours' WHERE id = 'old'")
        try store.rescue(staleAfter: 30)
        let left = try connection.execute("SELECT id FROM hl.workers ORDER BY id")
        XCTAssertEqual(left.rows.map { $0.string("id") }, ["recent"])
        XCTAssertEqual(try store.heartbeat(old, liveWithin: 30), .registeredAgain, "a forgotten worker registers again")
        XCTAssertEqual(try store.heartbeat(recent, liveWithin: 30), .beating)
    }

    func testRestartUnderTheSameIDRescuesTheEarlierProcessJobs() throws {
        try register("fixed")
        let id = try insertJobs()[0]
        _ = try store.claim(workerID: "fixed", queues: nil, limit: 1)
        // The earlier process died: its heartbeat goes stale, and then a new
        // process may take the id.
        try connection.execute("UPDATE hl.workers SET heartbeat_at = now() - interval '31 seconds'")
        let restarted = try register("fixed")
        XCTAssertEqual(try store.rescue(staleAfter: 30), 0, "the new heartbeat hides the old process's jobs")
        XCTAssertEqual(try store.rescueJobs(ofEarlierWorker: restarted), 1)
        XCTAssertEqual(try job(id).state, .retryable)
        XCTAssertEqual(try errors(of: id).map { $0["kind"] as? String }, ["worker_lost"])
    }

    func testStatusShowsQueuesAndLiveWorkers() throws {
        _ = try store.registerWorker(
            WorkerInfo(id: "w1", host: "h", pid: 7, concurrency: 8, queues: ["mail", "a,b"], version: "1.0"), liveWithin: 30)
        try register("stale")
        try connection.execute("UPDATE hl.workers SET heartbeat_at = now() - interval '5 minutes' WHERE id = 'stale'")
        try insertJobs(3, queue: "mail")
        try insertJobs(1, queue: "video")
        _ = try store.claim(workerID: "w1", queues: ["mail"], limit: 1)

        let status = try store.status(liveWithin: 60)
        let counts = status.queues.map { "\($0.queue)/\($0.state)=\($0.count)" }
        XCTAssertEqual(counts, ["mail/available=2", "mail/running=1", "video/available=1"])
        XCTAssertEqual(status.workers.map(\.id), ["w1"])
        XCTAssertEqual(status.workers.first?.queues, ["mail", "a,b"])
        XCTAssertEqual(status.workers.first?.runningJobs, 1)
        XCTAssertEqual(status.workers.first?.pid, 7)
    }

    func testDeregisteredWorkerIsGone() throws {
        try store.deregisterWorker(try register("w"))
        XCTAssertEqual(try store.status().workers, [])
    }
}
