import CGuestABI
import Sandbox
import XCTest

/// The guest's headers decoded from bytes, without a VM: every outcome the
/// call protocol has, and the bounds on every length it hands back.
final class GuestMessageDecoderTests: XCTestCase {
    static func header(_ magic: UInt32, _ second: UInt32, _ length: UInt32) -> [UInt8] {
        [magic, second, length, 0].flatMap { withUnsafeBytes(of: $0.littleEndian) { Array($0) } }
    }

    func result(_ status: UInt32, length: UInt32, magic: UInt32 = HL_RESULT_MAGIC, area: Int = 4096,
                maxOutput: Int = 1000) -> GuestMessageDecoder.ResultHeader {
        GuestMessageDecoder.resultHeader(Self.header(magic, status, length), outputAreaSize: area, maxOutputBytes: maxOutput)
    }

    func testResultHeaders() {
        XCTAssertEqual(result(HL_STATUS_OK.rawValue, length: 1000), .result(length: 1000))
        XCTAssertEqual(result(HL_STATUS_OK.rawValue, length: 0), .result(length: 0))
        XCTAssertEqual(result(HL_STATUS_OK.rawValue, length: 1001), .error(.outputTooLarge(bytes: 1001, limit: 1000)))
        XCTAssertEqual(result(HL_STATUS_GUEST_ERROR.rawValue, length: 3), .failure(.guestError, messageLength: 3))
        XCTAssertEqual(result(HL_STATUS_UNKNOWN_FUNCTION.rawValue, length: 4080), .failure(.unknownFunction, messageLength: 1024))
        XCTAssertEqual(result(HL_STATUS_OUT_OF_MEMORY.rawValue, length: 0), .failure(.outOfMemory, messageLength: 0))
        XCTAssertEqual(result(HL_STATUS_INVALID_INPUT.rawValue, length: 9), .failure(.invalidInput, messageLength: 9))
        XCTAssertEqual(result(HL_STATUS_FINAL_ERROR.rawValue, length: 5), .failure(.finalError, messageLength: 5))
        XCTAssertEqual(GuestMessageDecoder.GuestFailure.finalError.error(message: "no"), .finalError("no"))
        XCTAssertEqual(result(HL_STATUS_OUTPUT_TOO_LARGE.rawValue, length: 0), .error(.outputTooLarge(bytes: 0, limit: 1000)))
        XCTAssertEqual(result(HL_STATUS_OUTPUT_TOO_LARGE.rawValue, length: 0, maxOutput: 1 << 20),
                       .error(.outputTooLarge(bytes: 0, limit: 4080)))
        XCTAssertEqual(result(77, length: 0), .error(.invalidOutput("the guest returned unknown status 77")))
        XCTAssertEqual(GuestMessageDecoder.GuestFailure.guestError.error(message: "boom"), .guestError("boom"))
    }

    func testResultHeadersThatBreakTheProtocol() {
        XCTAssertEqual(result(0, length: 0, magic: 0), .error(.invalidOutput("the guest signalled done without writing a result header")))
        XCTAssertEqual(GuestMessageDecoder.resultHeader([0x48, 0x4F], outputAreaSize: 4096, maxOutputBytes: 10),
                       .error(.invalidOutput("the guest signalled done without writing a result header")))
        for status in [HL_STATUS_OK.rawValue, HL_STATUS_GUEST_ERROR.rawValue, 99] {
            XCTAssertEqual(result(status, length: 4081, maxOutput: 1 << 20),
                           .error(.invalidOutput("the result header claims 4081 bytes, more than the output area holds")))
            XCTAssertEqual(result(status, length: .max, maxOutput: .max),
                           .error(.invalidOutput("the result header claims 4294967295 bytes, more than the output area holds")))
        }
    }

    func testHostCallRequests() {
        let log = Self.header(HL_HOSTCALL_MAGIC, HL_HOSTCALL_LOG.rawValue, 7)
        XCTAssertEqual(GuestMessageDecoder.hostCallHeader(log, areaSize: 4096),
                       .request(function: HL_HOSTCALL_LOG.rawValue, payloadLength: 7))
        XCTAssertEqual(GuestMessageDecoder.hostCallHeader(Self.header(HL_HOSTCALL_MAGIC, 9, 4080), areaSize: 4096),
                       .request(function: 9, payloadLength: 4080))
        for bad in [Self.header(HL_HOSTCALL_MAGIC, 1, 4081), Self.header(HL_HOSTCALL_MAGIC, 1, .max),
                    Self.header(HL_RESULT_MAGIC, 1, 0), Array(log.prefix(15)), []] {
            XCTAssertEqual(GuestMessageDecoder.hostCallHeader(bad, areaSize: 4096), .malformed("malformed host call request"))
        }
        XCTAssertEqual(GuestMessageDecoder.hostCall(function: HL_HOSTCALL_LOG.rawValue, payload: [3, 0, 0, 0, 0x68, 0x69]),
                       .log(level: HL_LOG_ERROR.rawValue, message: [0x68, 0x69]))
        XCTAssertEqual(GuestMessageDecoder.hostCall(function: HL_HOSTCALL_LOG.rawValue, payload: [0xFF, 0xFF, 0xFF, 0xFF]),
                       .log(level: .max, message: []))
        XCTAssertEqual(GuestMessageDecoder.hostCall(function: HL_HOSTCALL_LOG.rawValue, payload: [1, 0, 0]),
                       .malformed("malformed log host call"))
        XCTAssertEqual(GuestMessageDecoder.hostCall(function: HL_HOSTCALL_WALL_CLOCK.rawValue, payload: [1, 2]), .wallClock)
        XCTAssertEqual(GuestMessageDecoder.hostCall(function: 0, payload: []), .unknown(function: 0))
    }
}
