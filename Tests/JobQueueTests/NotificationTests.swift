import Foundation
import JobQueue
import XCTest

final class NotificationTests: DatabaseTestCase {
    func testInsertNotifiesOncePerStatementWithoutAPayload() throws {
        let listener = try NotificationListener(conninfo: database.url, channels: [Channel.jobs])
        try connection.execute(
            """
            INSERT INTO hl.jobs (queue, guest, function)
            SELECT CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END, 'g', 'f' FROM generate_series(1, 10000) AS i
            """)
        // Notifications from one session arrive in commit order: once the
        // marker is here, everything the INSERT sent is too.
        try connection.execute("SELECT pg_notify($1, 'marker')", params: [Channel.jobs])
        var events: [ListenerEvent] = []
        while !events.contains(.notification(channel: Channel.jobs, payload: "marker")) {
            events += try waitForEvents(listener, count: 1)
        }
        XCTAssertEqual(events.dropLast(), [.notification(channel: Channel.jobs, payload: "")])
        // PostgreSQL folds duplicate notifications within a transaction, so
        // what shows the trigger does not fire per row is its definition.
        let trigger = try connection.execute(
            "SELECT tgtype & 1 AS per_row FROM pg_trigger WHERE tgname = 'jobs_notify_inserted'").singleRow()
        XCTAssertEqual(try trigger.int("per_row"), 0)
    }

    func testRequeueWakesOtherWorkers() throws {
        let id = try insertJobs(queue: "mail")[0]
        let worker = try register("w")
        let claimed = try store.claim(workerID: "w", queues: nil, limit: 1)
        let listener = try NotificationListener(conninfo: database.url, channels: [Channel.jobs])
        try store.requeue(claimed.map(\.attemptRef), worker: worker)
        XCTAssertEqual(try waitForEvents(listener, count: 1), [.notification(channel: Channel.jobs, payload: "")])
        XCTAssertEqual(try job(id).state, .available)
    }

    func testListenerReconnectsAfterItsConnectionDies() throws {
        let listener = try NotificationListener(conninfo: database.url, reconnectDelay: 0.01...0.1)
        let pid = try XCTUnwrap(listener.backendPID)
        try connection.execute("SELECT pg_terminate_backend($1::int)", params: [String(pid)])

        let events = try waitForEvents(listener, count: 2)
        guard case .disconnected = events[0] else { return XCTFail("expected disconnected first, got \(events)") }
        XCTAssertEqual(events[1], .reconnected)
        XCTAssertNotEqual(listener.backendPID, pid)

        try insertJobs(queue: "after")
        XCTAssertEqual(try waitForEvents(listener, count: 1), [.notification(channel: Channel.jobs, payload: "")],
                       "LISTEN is in force again")
    }

    func testWakeUpEndsAWaitEarly() throws {
        let listener = try NotificationListener(conninfo: database.url)
        listener.wakeUp()
        // Without the wake-up this would return only after the full minute.
        let started = Date()
        XCTAssertEqual(listener.wait(timeout: 60), [])
        XCTAssertLessThan(Date().timeIntervalSince(started), 30)
    }
}
