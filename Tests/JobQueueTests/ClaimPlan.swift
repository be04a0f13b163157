import Foundation
import HLTestSupport
import JobQueue
import Logging
import XCTest

/// The plans PostgreSQL actually runs for a claim, statements inside
/// functions included: auto_explain sends each plan to the client as a
/// notice, and PGConnection hands notices to its logger.
struct ClaimPlan {
    /// Runs `store.claim` once in a transaction that is rolled back, so
    /// the jobs stay waiting; returns every plan auto_explain reported.
    static func plans(database: TestDatabase, queues: [String]?, limit: Int) throws -> [String] {
        let notices = NoticeLog()
        let connection = try PGConnection(
            conninfo: database.url, logger: Logger(label: "claim-plan") { _ in NoticeCapture(log: notices) })
        for setting in [
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_nested_statements = on",
            "SET auto_explain.log_analyze = on",
            "SET auto_explain.log_timing = off",
            "SET auto_explain.log_level = notice",
            "SET client_min_messages = notice",
        ] {
            try connection.execute(setting)
        }
        try connection.execute("BEGIN")
        defer { _ = try? connection.execute("ROLLBACK") }
        _ = try JobStore(connection: connection).claim(workerID: "plan", queues: queues, limit: limit)
        return notices.messages.filter { $0.contains("plan:") && $0.contains("hl.jobs") }
    }
}

/// Guarded by `lock`: `messages`, appended to by the connection's notice
/// processor, read by the test.
final class NoticeLog: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []

    func append(_ message: String) {
        lock.lock()
        stored.append(message)
        lock.unlock()
    }

    var messages: [String] {
        lock.lock()
        defer { lock.unlock() }
        return stored
    }
}

struct NoticeCapture: LogHandler {
    let log: NoticeLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        log.append(event.message.description)
    }
}
