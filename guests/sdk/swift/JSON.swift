/// A JSON value, small enough for Embedded Swift: no Foundation, no Codable.
///
/// Integers without a fraction or exponent that fit Int64 stay exact as
/// `.int`; other numbers are `.double`. Objects keep their members in order.
/// Build values with literals:
///
///     let result: JSON = ["sum": .int(a + b), "tags": ["x", "y"]]
public enum JSON {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(key: String, value: JSON)])
}

extension JSON {
    /// Parses one JSON document; trailing bytes other than whitespace are
    /// an error.
    public static func parse(_ bytes: [UInt8]) throws(GuestError) -> JSON {
        var parser = JSONParser(bytes: bytes)
        return try parser.parseDocument()
    }

    /// Arguments as `.json` guest functions receive them: an object, with
    /// empty input standing for `{}`. Useful in `.bytes` functions that take
    /// JSON arguments but write their result themselves.
    public static func parseArguments(_ input: [UInt8]) throws(GuestError) -> JSON {
        if input.allSatisfy(JSONParser.isSpace) {
            return .object([])
        }
        let value: JSON
        do {
            value = try parse(input)
        } catch {
            throw GuestError("invalid JSON args: " + error.message)
        }
        guard case .object = value else {
            throw GuestError("invalid JSON args: expected object")
        }
        return value
    }
}

// MARK: - Reading

extension JSON {
    /// The member named `key` of an object (the first, if repeated).
    public subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        for member in members where member.key.utf8.elementsEqual(key.utf8) {
            return member.value
        }
        return nil
    }

    public subscript(index: Int) -> JSON? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }

    /// An `.int`, or a `.double` that holds an integer exactly.
    public var int: Int64? {
        switch self {
        case .int(let value): value
        case .double(let value): Int64(exactly: value)
        default: nil
        }
    }

    public var double: Double? {
        switch self {
        case .int(let value): Double(value)
        case .double(let value): value
        default: nil
        }
    }

    public var string: String? {
        guard case .string(let value) = self else { return nil }
        return value
    }

    public var bool: Bool? {
        guard case .bool(let value) = self else { return nil }
        return value
    }

    public var array: [JSON]? {
        guard case .array(let value) = self else { return nil }
        return value
    }

    public var object: [(key: String, value: JSON)]? {
        guard case .object(let value) = self else { return nil }
        return value
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The integer argument `key`, or a guest error saying what is wrong.
    public func requireInt(_ key: String) throws(GuestError) -> Int64 {
        guard let member = self[key] else { throw GuestError("missing argument '\(key)'") }
        guard let value = member.int else { throw GuestError("argument '\(key)' must be an integer") }
        return value
    }

    /// The numeric argument `key`, or a guest error saying what is wrong.
    public func requireDouble(_ key: String) throws(GuestError) -> Double {
        guard let member = self[key] else { throw GuestError("missing argument '\(key)'") }
        guard let value = member.double else { throw GuestError("argument '\(key)' must be a number") }
        return value
    }

    /// The string argument `key`, or a guest error saying what is wrong.
    public func requireString(_ key: String) throws(GuestError) -> String {
        guard let member = self[key] else { throw GuestError("missing argument '\(key)'") }
        guard let value = member.string else { throw GuestError("argument '\(key)' must be a string") }
        return value
    }
}

// MARK: - Literals

extension JSON: ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }

    public init(dictionaryLiteral members: (String, JSON)...) {
        self = .object(members.map { (key: $0.0, value: $0.1) })
    }
}

// MARK: - Writing

extension JSON {
    /// Compact JSON text, as UTF-8.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        write(to: &out)
        return out
    }

    /// Appends compact JSON text. Non-finite doubles, which JSON cannot
    /// express, are written as null.
    public func write(to out: inout [UInt8]) {
        switch self {
        case .null:
            out.append(contentsOf: "null".utf8)
        case .bool(let value):
            out.append(contentsOf: (value ? "true" : "false").utf8)
        case .int(let value):
            JSON.writeInteger(value, to: &out)
        case .double(let value):
            if value.isFinite {
                out.append(contentsOf: value.description.utf8)
            } else {
                out.append(contentsOf: "null".utf8)
            }
        case .string(let value):
            JSON.writeString(value, to: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (i, element) in elements.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                element.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, member) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSON.writeString(member.key, to: &out)
                out.append(UInt8(ascii: ":"))
                member.value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    static func writeInteger(_ value: Int64, to out: inout [UInt8]) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        let start = out.count
        repeat {
            out.append(UInt8(ascii: "0") + UInt8(magnitude % 10))
            magnitude /= 10
        } while magnitude != 0
        out[start..<out.count].reverse()
    }

    static func writeString(_ value: String, to out: inout [UInt8]) {
        let hex: StaticString = "0123456789abcdef"
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                hex.withUTF8Buffer { digits in
                    out.append(digits[Int(byte >> 4)])
                    out.append(digits[Int(byte & 0xF)])
                }
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
