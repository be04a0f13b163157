import CGuestABI
import Sandbox

/// What a guest leaves in the host-call area when it calls the host. The
/// input is the area's contents. Invariants, for every area size tried:
/// - the header decodes to a request exactly when its magic is right and
///   its payload fits the area after the header, with the header's fields;
/// - the payload (read as the host reads it: from the area, zero past the
///   input's end) decodes to the function the header named: a log request
///   carries the payload's level and exactly the bytes after it, a wall
///   clock request needs nothing, any other function is unknown, and only
///   a log payload shorter than its level is malformed.
enum HostCallCheck {
    static let headerSize = GuestMessageDecoder.headerSize
    /// The default host-call area, a page, and the smallest area with room
    /// for a header.
    static let areas = [64 << 10, 4096, 16]

    static func check(_ bytes: [UInt8]) {
        for area in areas {
            let header = GuestMessageDecoder.hostCallHeader(bytes, areaSize: area)
            guard bytes.count >= headerSize, ResultCheck.field(bytes, 0) == HL_HOSTCALL_MAGIC,
                  Int(ResultCheck.field(bytes, 8)) <= area - headerSize else {
                expect(header == .malformed("malformed host call request"), "a bad header is malformed: \(header)")
                continue
            }
            guard case .request(let function, let length) = header else {
                return expect(false, "a good header is a request: \(header)")
            }
            expect(function == ResultCheck.field(bytes, 4) && length == Int(ResultCheck.field(bytes, 8)), "the header's fields")
            expect(length <= area - headerSize, "the payload fits the area")
            let available = bytes.dropFirst(headerSize).prefix(length)
            let payload = Array(available) + [UInt8](repeating: 0, count: length - available.count)
            checkRequest(GuestMessageDecoder.hostCall(function: function, payload: payload), function: function, payload: payload)
        }
    }

    static func checkRequest(_ request: GuestMessageDecoder.HostCall, function: UInt32, payload: [UInt8]) {
        switch request {
        case .log(let level, let message):
            expect(function == HL_HOSTCALL_LOG.rawValue && payload.count >= 4, "a log request has a level")
            expect(level == ResultCheck.field(payload, 0), "the log level is the payload's first four bytes")
            expect(message.startIndex == 4 && message.elementsEqual(payload.dropFirst(4)), "the message is the rest of the payload")
        case .wallClock:
            expect(function == HL_HOSTCALL_WALL_CLOCK.rawValue, "wall clock only when asked for")
        case .unknown(let unknown):
            expect(unknown == function && function != HL_HOSTCALL_LOG.rawValue && function != HL_HOSTCALL_WALL_CLOCK.rawValue,
                   "unknown only for functions there are not")
        case .malformed:
            expect(function == HL_HOSTCALL_LOG.rawValue && payload.count < 4, "malformed only for a log without a level")
        }
    }
}
