import Foundation
import HLTestSupport
import JobQueue
import Logging
import XCTest

/// The plans PostgreSQL actually runs for a statement of JobStore,
/// statements inside functions included: auto_explain sends each plan to
/// the client as a notice, and PGConnection hands notices to its logger.
enum StatementPlans {
    /// Runs `body` in a transaction that is rolled back, so the jobs are
    /// left as they were; returns every plan auto_explain reported that
    /// reads hl.jobs, with actual row counts.
    static func capture(database: TestDatabase, _ body: (JobStore) throws -> Void) throws -> [String] {
        let notices = NoticeLog()
        let connection = try PGConnection(
            conninfo: database.url, logger: Logger(label: "statement-plans") { _ in NoticeCapture(log: notices) })
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
        try body(JobStore(connection: connection))
        return notices.messages.filter { $0.contains("plan:") && $0.contains("hl.jobs") }
    }

    /// The plans of one claim.
    static func claim(database: TestDatabase, queues: [String]?, limit: Int) throws -> [String] {
        try capture(database: database) { _ = try $0.claim(workerID: "plan", queues: queues, limit: limit) }
    }

    /// The `actual rows=N` of the first plan node containing `node`.
    static func actualRows(of node: String, in plan: String) -> Int? {
        guard let line = plan.split(separator: "\n").first(where: { $0.contains(node) }),
            let range = line.range(of: "actual rows=")
        else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
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
