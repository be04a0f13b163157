import Foundation
import Logging

/// The two line formats of the log, both one line per event on stderr
/// (written from the stderr queue's thread). Timestamps are RFC 3339 in UTC
/// with milliseconds.
enum LogFormat {
    /// Guards the formatter, which is not safe for concurrent use.
    private static let lock = NSLock()
    nonisolated(unsafe) private static let formatter: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }()

    static func timestamp(_ date: Date = Date()) -> String {
        lock.lock()
        defer { lock.unlock() }
        return formatter.string(from: date)
    }

    /// A field's value as it appears in a line: integers and finite
    /// floating-point values given as numbers (`.stringConvertible(42)`)
    /// stay numbers; everything else is text.
    enum Value: Equatable {
        case number(String)
        case text(String)
    }

    static func value(_ metadata: Logger.MetadataValue) -> Value {
        switch metadata {
        case .stringConvertible(let value as any BinaryInteger):
            return .number("\(value)")
        case .stringConvertible(let value as Double) where value.isFinite:
            return .number("\(value)")
        case .string(let text):
            return .text(text)
        default:
            return .text("\(metadata)")
        }
    }

    /// A text-log value: bare when it is one word, else in double quotes
    /// with `"` and `\` escaped, so `key=value` pairs split unambiguously.
    static func textValue(_ text: String) -> String {
        let plain = !text.isEmpty && !text.contains { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" || $0.isNewline }
        if plain { return text }
        var out = "\""
        for character in text {
            switch character {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out + "\""
    }
}

/// `TIME LEVEL label: key=value ... message`, keys sorted; values with
/// spaces quoted.
struct TextLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(label: String) {
        self.label = label
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let fields = metadata.merging(event.metadata ?? [:]) { $1 }
        var line = "\(LogFormat.timestamp()) \(event.level) \(label):"
        for key in fields.keys.sorted() {
            let value: String
            switch LogFormat.value(fields[key]!) {
            case .number(let number): value = number
            case .text(let text): value = LogFormat.textValue(text)
            }
            line += " \(key)=\(value)"
        }
        line += " \(event.message)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}

/// One JSON object per line: time, level, label, message and the metadata,
/// numbers as JSON numbers, `/` unescaped.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(label: String) {
        self.label = label
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [String: Any] = [:]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            switch LogFormat.value(value) {
            case .number(let number): fields[key] = Int(number).map { $0 as Any } ?? Double(number) ?? number
            case .text(let text): fields[key] = text
            }
        }
        fields["level"] = event.level.rawValue
        fields["label"] = label
        fields["message"] = event.message.description
        fields["time"] = LogFormat.timestamp()
        guard let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return }
        FileHandle.standardError.write(data + Data("\n".utf8))
    }
}
