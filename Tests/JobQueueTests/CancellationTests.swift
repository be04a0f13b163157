import Foundation
import JobQueue
import XCTest

final class CancellationTests: DatabaseTestCase {
    func testWaitingJobIsCancelledOnTheSpot() throws {
        let ids = try insertJobs(2)
        try connection.execute("UPDATE hl.jobs SET state = 'retryable' WHERE id = $1", params: [String(ids[1])])
        try connection.execute("UPDATE hl.jobs SET cancel_requested_at = now()")
        for id in ids {
            XCTAssertEqual(try job(id).state, .cancelled)
            XCTAssertNotNil(try job(id).finishedAt)
        }
        XCTAssertEqual(try store.claim(workerID: "w", queues: nil, limit: 10), [])
    }

    func testCancellingARunningJobNotifiesItsWorker() throws {
        let listener = try NotificationListener(conninfo: database.url, channels: [Channel.cancel])
        let id = try insertJobs()[0]
        let claimed = try XCTUnwrap(try store.claim(workerID: "w", queues: nil, limit: 1).first)
        try connection.execute("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = $1", params: [String(id)])

        XCTAssertEqual(try job(id).state, .running, "the worker ends it, not the trigger")
        let events = try waitForEvents(listener, count: 1)
        XCTAssertEqual(events, [.notification(channel: Channel.cancel, payload: "")], "no job id for listeners")
        XCTAssertEqual(try store.cancelRequests(workerID: "w"), [claimed.attemptRef])
        XCTAssertEqual(try store.cancelRequests(workerID: "other"), [])

        try store.finish([.cancelled(id: id, attempt: 1, workerID: "w", message: "cancelled while running")])
        XCTAssertEqual(try job(id).state, .cancelled)
        XCTAssertEqual(try errors(of: id).map { $0["kind"] as? String }, ["cancelled"])
    }

    func testFailureOrRequeueOfACancelRequestedJobEndsItCancelled() throws {
        let ids = try insertJobs(2)
        let worker = try register("w")
        let claimed = try store.claim(workerID: "w", queues: nil, limit: 2)
        try connection.execute("UPDATE hl.jobs SET cancel_requested_at = now()")
        try store.finish([.failed(id: ids[0], attempt: 1, workerID: "w", kind: "timeout", message: "slow", retryable: true)])
        try store.requeue([claimed[1].attemptRef], worker: worker)
        XCTAssertEqual(try job(ids[0]).state, .cancelled)
        XCTAssertEqual(try job(ids[1]).state, .cancelled)
        XCTAssertNotNil(try job(ids[1]).finishedAt)
    }

    func testCompletedJobStaysCompletedWhenCancelledLate() throws {
        let id = try insertJobs()[0]
        _ = try store.claim(workerID: "w", queues: nil, limit: 1)
        try store.finish([.completed(id: id, attempt: 1, workerID: "w", resultJSON: "true")])
        try connection.execute("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = $1", params: [String(id)])
        XCTAssertEqual(try job(id).state, .completed)
    }
}

/// Waits for at least `count` events, failing after `timeout` seconds.
func waitForEvents(_ listener: NotificationListener, count: Int, timeout: TimeInterval = 10) throws -> [ListenerEvent] {
    let deadline = Date().addingTimeInterval(timeout)
    var events: [ListenerEvent] = []
    while events.count < count {
        let left = deadline.timeIntervalSinceNow
        guard left > 0 else { throw TimedOut(what: "\(count) listener events, got \(events)") }
        events += listener.wait(timeout: left)
    }
    return events
}
