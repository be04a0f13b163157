import Foundation
import Logging

/// Text logs for people, JSON lines for log shippers (--log-format json).
enum LogSetup {
    static func bootstrap(format: String) throws {
        switch format {
        case "text":
            LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        case "json":
            LoggingSystem.bootstrap { JSONLogHandler(label: $0) }
        default:
            throw CommandError(kind: "invalid_configuration", message: "--log-format must be text or json, not \(format)")
        }
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
