import CGuestABI
import Foundation
import Sandbox
import Worker

/// What a guest leaves in the output area: a result header, then bytes that
/// the worker accepts as a job's result only if they are JSON. The input is
/// the output area's contents. Invariants:
/// - for every area size and output limit tried, the decoded outcome is the
///   one the header's fields call for, and every length it hands back lies
///   within the area after the header (and the limit, for a result);
/// - the JSON validator ends on any bytes; what it accepts is UTF-8, stays
///   valid with whitespace around it or nested one level deeper, is
///   accepted by Foundation's parser too (which only refuses numbers a
///   Double cannot hold), and an object is valid JSON.
enum ResultCheck {
    static let headerSize = GuestMessageDecoder.headerSize
    /// (output area, output limit): the defaults, a small area, a zero limit.
    static let limits = [(1 << 20, (1 << 20) - 16), (64, 32), (4096, 0)]

    static func check(_ bytes: [UInt8]) {
        for (area, maxOutput) in limits {
            let outcome = GuestMessageDecoder.resultHeader(bytes, outputAreaSize: area, maxOutputBytes: maxOutput)
            checkHeader(outcome, bytes, area: area, maxOutput: maxOutput)
        }
        // The result as the worker would take it: the bytes after the header.
        JSONCheck.check(Array(bytes.dropFirst(headerSize)))
    }

    static func field(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * $1) }
    }

    static func checkHeader(_ outcome: GuestMessageDecoder.ResultHeader, _ bytes: [UInt8], area: Int, maxOutput: Int) {
        guard bytes.count >= headerSize, field(bytes, 0) == HL_RESULT_MAGIC else {
            return expect(outcome.errorKind == "invalid_output", "no header is invalid_output: \(outcome)")
        }
        let status = field(bytes, 4)
        let length = Int(field(bytes, 8))
        guard length <= area - headerSize else {
            return expect(outcome.errorKind == "invalid_output", "a length past the area is invalid_output: \(outcome)")
        }
        switch outcome {
        case .result(let decoded):
            expect(status == HL_STATUS_OK.rawValue && decoded == length, "a result only for status OK, with its length")
            expect(decoded <= maxOutput && decoded <= area - headerSize, "a result within the limit and the area")
        case .failure(let failure, let messageLength):
            let expected: [UInt32: GuestMessageDecoder.GuestFailure] = [
                HL_STATUS_GUEST_ERROR.rawValue: .guestError, HL_STATUS_UNKNOWN_FUNCTION.rawValue: .unknownFunction,
                HL_STATUS_OUT_OF_MEMORY.rawValue: .outOfMemory, HL_STATUS_INVALID_INPUT.rawValue: .invalidInput,
                HL_STATUS_FINAL_ERROR.rawValue: .finalError,
            ]
            expect(expected[status] == failure, "status \(status) is \(failure)")
            expect(messageLength == min(length, GuestMessageDecoder.maximumMessageBytes), "message length bounded")
        case .error(let error):
            switch status {
            case HL_STATUS_OK.rawValue:
                expect(error == .outputTooLarge(bytes: length, limit: maxOutput) && length > maxOutput, "only too large: \(error)")
            case HL_STATUS_OUTPUT_TOO_LARGE.rawValue:
                expect(error == .outputTooLarge(bytes: 0, limit: min(maxOutput, area - headerSize)), "too large: \(error)")
            default:
                expect(error == .invalidOutput("the guest returned unknown status \(status)") && status > HL_STATUS_FINAL_ERROR.rawValue, "unknown status: \(error)")
            }
        }
    }
}

extension GuestMessageDecoder.ResultHeader {
    var errorKind: String? {
        if case .error(let error) = self { return error.kind }
        return nil
    }
}

enum JSONCheck {
    static func check(_ bytes: [UInt8]) {
        let valid = JSONValidator.isValid(bytes)
        expect(!JSONValidator.isObject(bytes) || valid, "an object is valid JSON")
        guard valid else { return }
        expect(String(validating: bytes, as: UTF8.self) != nil, "valid JSON is UTF-8")
        expect(JSONValidator.isValid(Array(" \n\t".utf8) + bytes + Array("\r\n ".utf8)), "whitespace around valid JSON")
        if nesting(bytes) < JSONValidator.maximumDepth {
            expect(JSONValidator.isValid([UInt8(ascii: "[")] + bytes + [UInt8(ascii: "]")]), "valid JSON nests in an array")
            expect(JSONValidator.isObject(Array(#"{"k":"#.utf8) + bytes + [UInt8(ascii: "}")]), "valid JSON nests in an object")
        }
        do {
            _ = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        } catch {
            // Foundation turns numbers into Doubles and refuses the ones
            // past their range; PostgreSQL's numeric holds far larger.
            expect("\(error)".contains("not representable"), "Foundation parses what the validator accepts: \(error)")
        }
    }

    /// How deeply arrays and objects nest, outside strings.
    static func nesting(_ bytes: [UInt8]) -> Int {
        var depth = 0, deepest = 0
        var inString = false, escaped = false
        for byte in bytes {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"): depth += 1; deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return deepest
    }
}
