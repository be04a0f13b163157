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
                        // jsonb cannot hold U+0000, and takes a UTF-16
                        // surrogate only as the first half of a pair
                        // written as two escapes.
                        guard let unit = hexEscape(), unit != 0, !(0xDC00...0xDFFF).contains(unit) else { return false }
                        if (0xD800...0xDBFF).contains(unit) {
                            guard consume("\\u"), let low = hexEscape(), (0xDC00...0xDFFF).contains(low) else { return false }
                        }
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

        /// The four hex digits of a \u escape, as a UTF-16 code unit.
        mutating func hexEscape() -> UInt16? {
            var unit: UInt16 = 0
            for _ in 0..<4 {
                guard let byte = current, let digit = Self.hexValue(byte) else { return nil }
                unit = unit << 4 | UInt16(digit)
                index += 1
            }
            return unit
        }

        static func hexValue(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
            default: return nil
            }
        }

        mutating func digits() -> Int {
            let start = index
            while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
            return index - start
        }

        /// A number, which jsonb stores as PostgreSQL's numeric: the syntax of
        /// RFC 8259 within numeric's range, so the database accepts every
        /// number accepted here.
        mutating func number() -> Bool {
            _ = consume("-")
            let integerStart = index
            if current == UInt8(ascii: "0") {
                index += 1
            } else if digits() == 0 {
                return false
            }
            let integerDigits = index - integerStart
            var fractionDigits = 0
            if consume(".") {
                fractionDigits = digits()
                guard fractionDigits > 0 else { return false }
            }
            let digitsEnd = index
            var exponent = 0
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                var negative = false
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") {
                    negative = current == UInt8(ascii: "-")
                    index += 1
                }
                let exponentStart = index
                while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                    // Saturates far past numeric's limits, which end it anyway.
                    exponent = min(exponent * 10 + Int(byte - UInt8(ascii: "0")), Numeric.exponentLimit)
                    index += 1
                }
                guard index > exponentStart else { return false }
                if negative { exponent = -exponent }
            }
            // The power of ten of the first significant digit, if any.
            var leading: Int?
            var position = integerStart
            while position < digitsEnd {
                let byte = bytes[position]
                if byte != UInt8(ascii: "0"), byte != UInt8(ascii: ".") {
                    let place = position - integerStart
                    leading = place < integerDigits ? integerDigits - 1 - place : integerDigits - place
                    break
                }
                position += 1
            }
            return Numeric.holds(fractionDigits: fractionDigits, exponent: exponent, leadingPower: leading)
        }
    }

    /// The range of PostgreSQL's numeric (numeric.c, set_var_from_str and
    /// make_result): what jsonb refuses with "value overflows numeric format".
    enum Numeric {
        /// An exponent's magnitude must stay below INT_MAX / 2.
        static let exponentLimit = Int(Int32.max / 2)
        /// At most 16383 digits after the decimal point, counting the ones
        /// an exponent adds (NUMERIC_DSCALE_MAX).
        static let maximumScale = 16383
        /// The first significant digit may be worth at most 10^131071: the
        /// weight, in base-10000 digits, is an int16 (NUMERIC_WEIGHT_MAX).
        static let maximumLeadingPower = 4 * 32768 - 1

        static func holds(fractionDigits: Int, exponent: Int, leadingPower: Int?) -> Bool {
            guard exponent < exponentLimit, exponent > -exponentLimit,
                  max(0, fractionDigits - exponent) <= maximumScale else { return false }
            guard let leadingPower else { return true }
            return leadingPower + exponent <= maximumLeadingPower
        }
    }
}
