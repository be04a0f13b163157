import Foundation

/// One bind parameter. Text is parsed by the server according to the type the
/// statement gives the parameter (`$1::bigint[]`); bytes travel in binary
/// format, so a bytea needs no escaping and no hex doubling.
enum PGParam: Sendable, Equatable {
    case null
    case text(String)
    case bytes([UInt8])

    init(_ value: String?) {
        self = value.map { .text($0) } ?? .null
    }

    init(_ value: Int?) {
        self = value.map { .text(String($0)) } ?? .null
    }

    init(_ value: Int64) {
        self = .text(String(value))
    }

    init(_ value: Double) {
        self = .text(String(value))
    }

    /// A timestamp, for a parameter written `to_timestamp($n::float8)`.
    init(_ value: Date?) {
        self = value.map { .text(String($0.timeIntervalSince1970)) } ?? .null
    }

    /// An array literal for a parameter typed `$n::T[]`. Every element is
    /// quoted so that commas, braces, quotes and the word NULL inside a
    /// string stay data; nil becomes an SQL NULL element.
    static func array(_ elements: [String?]) -> PGParam {
        let items = elements.map { element -> String in
            guard let element else { return "NULL" }
            var quoted = "\""
            for character in element {
                if character == "\"" || character == "\\" { quoted.append("\\") }
                quoted.append(character)
            }
            quoted.append("\"")
            return quoted
        }
        return .text("{" + items.joined(separator: ",") + "}")
    }

    static func array(_ elements: [Int64]) -> PGParam {
        array(elements.map { String($0) })
    }

    static func array(_ elements: [Int]) -> PGParam {
        array(elements.map { String($0) })
    }

    static func array(_ elements: [Bool]) -> PGParam {
        array(elements.map { $0 ? "t" : "f" })
    }
}
