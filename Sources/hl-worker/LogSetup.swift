import Foundation
import Logging
import Sandbox

/// Text logs for people, JSON lines for log shippers (--log-format json),
/// at --log-level and above. Every line goes to stderr through one bounded
/// queue and writer thread, so no thread of the worker (an execution slot
/// least of all) waits on a stalled stderr: when the queue is full, lines
/// are dropped and counted, and one line says how many once stderr moves
/// again.
enum LogSetup {
    /// Lines waiting for stderr, all loggers of the process together.
    static let stderrQueue = LogQueue(name: "hl-stderr", capacity: 4096) { dropped in
        // On the queue's own thread, straight to stderr: it is moving again.
        var notice = TextLogHandler(label: "hl.log")
        notice.logLevel = .warning
        Logger(label: "hl.log") { _ in notice }
            .warning("log lines dropped: stderr did not keep up", metadata: ["dropped": "\(dropped)"])
    }

    static func bootstrap(format: String, level: String = "info") throws {
        guard let minimum = Logger.Level(rawValue: level) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw CommandError(kind: "invalid_configuration", message: "--log-level must be one of \(names), not \(level)")
        }
        let makeHandler: @Sendable (String) -> any LogHandler
        switch format {
        case "text": makeHandler = { TextLogHandler(label: $0) }
        case "json": makeHandler = { JSONLogHandler(label: $0) }
        default:
            throw CommandError(kind: "invalid_configuration", message: "--log-format must be text or json, not \(format)")
        }
        LoggingSystem.bootstrap { label in
            var handler = QueuedLogHandler(makeHandler(label), queue: stderrQueue)
            handler.logLevel = minimum
            return handler
        }
    }

    /// Gives queued lines, guests' lines first (they end up in the stderr
    /// queue), up to `timeout` seconds each to reach stderr: before the
    /// process exits or writes to stderr directly.
    static func flush(timeout: TimeInterval = 2) {
        LogQueue.guestLines.flush(timeout: timeout)
        stderrQueue.flush(timeout: timeout)
    }
}

/// Hands each line to `queue` for `inner` to write on the queue's thread.
/// Level and metadata live in `inner`, so the line is formatted as it would
/// have been when it was logged.
struct QueuedLogHandler: LogHandler {
    private var inner: any LogHandler
    private let queue: LogQueue

    init(_ inner: any LogHandler, queue: LogQueue) {
        self.inner = inner
        self.queue = queue
    }

    var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        let inner = inner
        queue.enqueue { inner.log(event: event) }
    }
}
