/// Checks that bytes are one well-formed JSON value (RFC 8259), without
/// building it. Guest results are stored as jsonb, so a result that is not
/// JSON fails its job as `invalid_output` here, before it reaches the database.
public enum JSONValidator {
    /// Nesting deeper than this is refused rather than recursed into.
    public static let maximumDepth = 512

    public static func isValid(_ bytes: [UInt8]) -> Bool {
        // jsonb stores UTF-8 text only.
        guard String(validating: bytes, as: UTF8.self) != nil else { return false }
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        guard parser.value(depth: 0) else { return false }
        parser.skipWhitespace()
        return parser.index == bytes.count
    }

    /// Whether the bytes are a JSON object (leading whitespace allowed).
    public static func isObject(_ bytes: [UInt8]) -> Bool {
        guard isValid(bytes) else { return false }
        return bytes.first(where: { !Parser.isWhitespace($0) }) == UInt8(ascii: "{")
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        static func isWhitespace(_ byte: UInt8) -> Bool {
            byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
        }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while let byte = current, Self.isWhitespace(byte) { index += 1 }
        }

        mutating func consume(_ literal: String) -> Bool {
            for byte in literal.utf8 {
                guard current == byte else { return false }
                index += 1
            }
            return true
        }

        mutating func value(depth: Int) -> Bool {
            guard depth < JSONValidator.maximumDepth, let byte = current else { return false }
            switch byte {
            case UInt8(ascii: "{"): return object(depth: depth)
            case UInt8(ascii: "["): return array(depth: depth)
            case UInt8(ascii: "\""): return string()
            case UInt8(ascii: "t"): return consume("true")
            case UInt8(ascii: "f"): return consume("false")
            case UInt8(ascii: "n"): return consume("null")
            default: return number()
            }
        }

        mutating func object(depth: Int) -> Bool {
            index += 1
            skipWhitespace()
            if current == UInt8(ascii: "}") { index += 1; return true }
            while true {
                skipWhitespace()
                guard current == UInt8(ascii: "\""), string() else { return false }
                skipWhitespace()
                guard consume(":") else { return false }
                skipWhitespace()
                guard value(depth: depth + 1) else { return false }
                skipWhitespace()
                if consume("}") { return true }
                guard consume(",") else { return false }
            }
        }

        mutating func array(depth: Int) -> Bool {
            index += 1
            skipWhitespace()
            if current == UInt8(ascii: "]") { index += 1; return true }
            while true {
                skipWhitespace()
                guard value(depth: depth + 1) else { return false }
                skipWhitespace()
                if consume("]") { return true }
                guard consume(",") else { return false }
            }
        }

        mutating func string() -> Bool {
            index += 1
            while let byte = current {
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return true
                case UInt8(ascii: "\\"):
                    guard let escaped = current else { return false }
                    index += 1
                    if escaped == UInt8(ascii: "u") {
                        // jsonb cannot hold U+0000.
                        var allZero = true
                        for _ in 0..<4 {
                            guard let hex = current, isHexDigit(hex) else { return false }
                            allZero = allZero && hex == UInt8(ascii: "0")
                            index += 1
                        }
                        if allZero { return false }
                    } else if !"\"\\/bfnrt".utf8.contains(escaped) {
                        return false
                    }
                case 0x00..<0x20:
                    return false
                default:
                    continue
                }
            }
            return false
        }

        func isHexDigit(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
        }

        mutating func digits() -> Int {
            let start = index
            while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
            return index - start
        }

        mutating func number() -> Bool {
            _ = consume("-")
            if current == UInt8(ascii: "0") {
                index += 1
            } else if digits() == 0 {
                return false
            }
            if consume(".") { guard digits() > 0 else { return false } }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { return false }
            }
            return true
        }
    }
}
