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
        var notice = StreamLogHandler.standardError(label: "hl.log")
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
        case "text": makeHandler = { StreamLogHandler.standardError(label: $0) }
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

/// One JSON object per line on stderr: time, level, label, message and the
/// metadata as string fields.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    /// Guards stderr and the formatter, which one line at a time uses.
    private static let lock = NSLock()
    nonisolated(unsafe) private static let timeFormatter = ISO8601DateFormatter()

    init(label: String) {
        self.label = label
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let level = event.level
        let message = event.message
        let explicit = event.metadata
        var fields: [String: String] = [:]
        for (key, value) in metadata.merging(explicit ?? [:], uniquingKeysWith: { $1 }) { fields[key] = "\(value)" }
        fields["level"] = level.rawValue
        fields["label"] = label
        fields["message"] = message.description
        Self.lock.lock()
        defer { Self.lock.unlock() }
        fields["time"] = Self.timeFormatter.string(from: Date())
        guard let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) else { return }
        FileHandle.standardError.write(data + Data("\n".utf8))
    }
}
