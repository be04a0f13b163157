/// A recursive-descent parser for RFC 8259 JSON. Every malformed input ends
/// in a GuestError naming the byte offset; nothing traps.
struct JSONParser {
    /// Deep enough for real arguments, shallow enough that hostile nesting
    /// cannot run the guest out of stack: a level costs a few hundred bytes
    /// of stack here and as much again when the value is written back out.
    static var maxDepth: Int { min(128, GuestRuntime.stackBytes / 1024) }

    let bytes: [UInt8]
    var index = 0
    var depth = 0

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    mutating func parseDocument() throws(GuestError) -> JSON {
        skipSpace()
        let value = try parseValue()
        skipSpace()
        if index != bytes.count {
            throw failure("unexpected data after the value")
        }
        return value
    }

    private func failure(_ problem: String) -> GuestError {
        if index >= bytes.count {
            return GuestError("\(problem) at end of input")
        }
        return GuestError("\(problem) at byte \(index)")
    }

    private var current: UInt8? {
        index < bytes.count ? bytes[index] : nil
    }

    private mutating func skipSpace() {
        while let byte = current, JSONParser.isSpace(byte) {
            index += 1
        }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(GuestError) {
        guard current == byte else { throw failure("expected \(what)") }
        index += 1
    }

    private mutating func parseValue() throws(GuestError) -> JSON {
        guard let byte = current else { throw failure("expected a value") }
        switch byte {
        case UInt8(ascii: "{"):
            return try parseObject()
        case UInt8(ascii: "["):
            return try parseArray()
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"):
            try parseWord("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try parseWord("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try parseWord("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try parseNumber()
        default:
            throw failure("expected a value")
        }
    }

    private mutating func parseWord(_ word: StaticString) throws(GuestError) {
        let matches = word.withUTF8Buffer { expected in
            bytes.count - index >= expected.count
                && bytes[index..<index + expected.count].elementsEqual(expected)
        }
        guard matches else { throw failure("expected a value") }
        index += word.utf8CodeUnitCount
    }

    private mutating func enterContainer() throws(GuestError) {
        depth += 1
        if depth > JSONParser.maxDepth {
            throw failure("nesting deeper than \(JSONParser.maxDepth) levels")
        }
        index += 1
        skipSpace()
    }

    private mutating func parseObject() throws(GuestError) -> JSON {
        try enterContainer()
        var members: [(key: String, value: JSON)] = []
        if current == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return .object(members)
        }
        while true {
            guard current == UInt8(ascii: "\"") else { throw failure("expected a string key") }
            let key = try parseString()
            skipSpace()
            try expect(UInt8(ascii: ":"), "':'")
            skipSpace()
            members.append((key: key, value: try parseValue()))
            skipSpace()
            if current == UInt8(ascii: ",") {
                index += 1
                skipSpace()
                continue
            }
            try expect(UInt8(ascii: "}"), "',' or '}'")
            depth -= 1
            return .object(members)
        }
    }

    private mutating func parseArray() throws(GuestError) -> JSON {
        try enterContainer()
        var elements: [JSON] = []
        if current == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            elements.append(try parseValue())
            skipSpace()
            if current == UInt8(ascii: ",") {
                index += 1
                skipSpace()
                continue
            }
            try expect(UInt8(ascii: "]"), "',' or ']'")
            depth -= 1
            return .array(elements)
        }
    }

    /// Invalid UTF-8 inside a string becomes U+FFFD, as String(decoding:)
    /// repairs it; escapes must be well-formed.
    private mutating func parseString() throws(GuestError) -> String {
        index += 1
        var utf8: [UInt8] = []
        while true {
            guard let byte = current else { throw failure("unterminated string") }
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                index += 1
                try parseEscape(into: &utf8)
            case 0..<0x20:
                throw failure("control character in string")
            default:
                utf8.append(byte)
                index += 1
            }
        }
    }

    private mutating func parseEscape(into utf8: inout [UInt8]) throws(GuestError) {
        guard let byte = current else { throw failure("unterminated string") }
        index += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(byte)
        case UInt8(ascii: "b"): utf8.append(0x08)
        case UInt8(ascii: "f"): utf8.append(0x0C)
        case UInt8(ascii: "n"): utf8.append(0x0A)
        case UInt8(ascii: "r"): utf8.append(0x0D)
        case UInt8(ascii: "t"): utf8.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try parseHex4()
            if scalar >= 0xDC00 && scalar <= 0xDFFF {
                throw failure("unpaired low surrogate")
            }
            if scalar >= 0xD800 && scalar <= 0xDBFF {
                guard current == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u")
                else { throw failure("unpaired high surrogate") }
                index += 2
                let low = try parseHex4()
                guard low >= 0xDC00 && low <= 0xDFFF else { throw failure("unpaired high surrogate") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
            JSONParser.appendUTF8(scalar, to: &utf8)
        default:
            index -= 1
            throw failure("invalid escape")
        }
    }

    private mutating func parseHex4() throws(GuestError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = current else { throw failure("expected four hex digits") }
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("expected four hex digits")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    static func appendUTF8(_ scalar: UInt32, to utf8: inout [UInt8]) {
        switch scalar {
        case 0..<0x80:
            utf8.append(UInt8(scalar))
        case 0x80..<0x800:
            utf8.append(0xC0 | UInt8(scalar >> 6))
            utf8.append(0x80 | UInt8(scalar & 0x3F))
        case 0x800..<0x10000:
            utf8.append(0xE0 | UInt8(scalar >> 12))
            utf8.append(0x80 | UInt8(scalar >> 6 & 0x3F))
            utf8.append(0x80 | UInt8(scalar & 0x3F))
        default:
            utf8.append(0xF0 | UInt8(scalar >> 18))
            utf8.append(0x80 | UInt8(scalar >> 12 & 0x3F))
            utf8.append(0x80 | UInt8(scalar >> 6 & 0x3F))
            utf8.append(0x80 | UInt8(scalar & 0x3F))
        }
    }

    private mutating func skipDigits() throws(GuestError) {
        guard let byte = current, JSONParser.isDigit(byte) else { throw failure("expected a digit") }
        while let byte = current, JSONParser.isDigit(byte) {
            index += 1
        }
    }

    private mutating func parseNumber() throws(GuestError) -> JSON {
        let start = index
        if current == UInt8(ascii: "-") {
            index += 1
        }
        if current == UInt8(ascii: "0") {
            index += 1
            if let byte = current, JSONParser.isDigit(byte) {
                throw failure("leading zero in number")
            }
        } else {
            try skipDigits()
        }
        var isInteger = true
        if current == UInt8(ascii: ".") {
            index += 1
            try skipDigits()
            isInteger = false
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") {
                index += 1
            }
            try skipDigits()
            isInteger = false
        }
        let text = bytes[start..<index]
        if isInteger, let value = JSONParser.exactInteger(text) {
            return .int(value)
        }
        return .double(JSONParser.approximateDouble(text))
    }

    /// nil when the integer does not fit Int64. Accumulates negatively: the
    /// range reaches one further below zero than above it.
    static func exactInteger(_ text: ArraySlice<UInt8>) -> Int64? {
        var value: Int64 = 0
        let negative = text.first == UInt8(ascii: "-")
        for byte in text where byte != UInt8(ascii: "-") {
            let times = value.multipliedReportingOverflow(by: 10)
            let next = times.partialValue.subtractingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            if times.overflow || next.overflow { return nil }
            value = next.partialValue
        }
        if negative { return value }
        return value == Int64.min ? nil : -value
    }

    /// Exact when the significant digits fit 2^53 and the decimal exponent
    /// is within ±22 (the common case); otherwise within a few units in the
    /// last place. Correct rounding in every case would cost far more code.
    static func approximateDouble(_ text: ArraySlice<UInt8>) -> Double {
        var mantissa: UInt64 = 0
        var exponent = 0
        var negative = false
        var i = text.startIndex
        if text[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        var inFraction = false
        while i < text.endIndex, text[i] != UInt8(ascii: "e"), text[i] != UInt8(ascii: "E") {
            let byte = text[i]
            i += 1
            if byte == UInt8(ascii: ".") {
                inFraction = true
                continue
            }
            if mantissa <= (UInt64.max - 9) / 10 {
                mantissa = mantissa * 10 + UInt64(byte - UInt8(ascii: "0"))
                if inFraction { exponent -= 1 }
            } else if !inFraction {
                // Digits beyond UInt64's precision only scale the value.
                exponent += 1
            }
        }
        if i < text.endIndex {
            i += 1
            var exponentSign = 1
            if text[i] == UInt8(ascii: "+") || text[i] == UInt8(ascii: "-") {
                exponentSign = text[i] == UInt8(ascii: "-") ? -1 : 1
                i += 1
            }
            var written = 0
            while i < text.endIndex {
                // Saturate: anything past this is zero or infinity anyway.
                if written < 100_000 {
                    written = written * 10 + Int(text[i] - UInt8(ascii: "0"))
                }
                i += 1
            }
            exponent += exponentSign * written
        }
        var value = Double(mantissa)
        while exponent != 0 && value != 0 && value.isFinite {
            let step = min(abs(exponent), 22)
            var power = 1.0
            for _ in 0..<step { power *= 10 }
            if exponent > 0 {
                value *= power
                exponent -= step
            } else {
                value /= power
                exponent += step
            }
        }
        return negative ? -value : value
    }
}
