/// A JSON value whose objects keep their keys in the order they were built,
/// so `--json` reads in the same order as the table. Foundation's encoders
/// either reorder keys or sort them.
enum JSONOutput {
    case number(Double?)
    case integer(Int)
    case string(String)
    case bool(Bool)
    case array([JSONOutput])
    case object([(String, JSONOutput)])

    /// One line, no insignificant whitespace.
    var text: String {
        switch self {
        case .number(let value?) where value.isFinite:
            // Two decimals: far below the run-to-run noise of every figure here.
            return String(Double((value * 100).rounded()) / 100)
        case .number:
            return "null"
        case .integer(let value):
            return String(value)
        case .string(let value):
            return Self.quote(value)
        case .bool(let value):
            return value ? "true" : "false"
        case .array(let values):
            return "[" + values.map(\.text).joined(separator: ",") + "]"
        case .object(let members):
            return "{" + members.map { Self.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        }
    }

    private static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                    + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
