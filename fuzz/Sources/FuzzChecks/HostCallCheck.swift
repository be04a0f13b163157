import CGuestABI
import Foundation
import JobQueue
import Sandbox
import Worker

/// What a guest leaves in the host-call area when it calls the host. The
/// input is the area's contents. Invariants, for every area size tried:
/// - the header decodes to a request exactly when its magic is right and
///   its payload fits the area after the header, with the header's fields;
/// - the payload (read as the host reads it: from the area, zero past the
///   input's end) decodes to the function the header named: a log request
///   carries the payload's level and exactly the bytes after it, a wall
///   clock request needs nothing, any other function is unknown, and only
///   a log payload shorter than its level is malformed;
/// - the worker's handler for the functions the sandbox does not know
///   (enqueue, progress) answers every payload: an accepted enqueue keeps
///   one child whose args are a JSON object, within the per-call limits,
///   and replies with its index; a refused one keeps nothing.
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
            checkJobHostCall(function: function, payload: payload)
        case .malformed:
            expect(function == HL_HOSTCALL_LOG.rawValue && payload.count < 4, "malformed only for a log without a level")
        }
    }

    /// Twice, so that a second request sees the first one's child.
    static func checkJobHostCall(function: UInt32, payload: [UInt8]) {
        let limits = JobHostCalls.Limits(maxChildren: 2, maxChildBytes: 1 << 20)
        let calls = JobHostCalls(attempt: JobAttempt(id: 1, attempt: 1), limits: limits)
        for _ in 0..<2 {
            let before = calls.children.count
            let answer = calls.handle(function: function, payload: payload)
            switch answer {
            case .ok(let reply) where function == HL_HOSTCALL_ENQUEUE.rawValue:
                expect(calls.children.count == before + 1, "an accepted enqueue keeps one child")
                expect(reply == withUnsafeBytes(of: UInt32(before).littleEndian) { Array($0) }, "the reply is its index")
                let child = calls.children[before]
                expect(JSONValidator.isObject(Array(child.args.utf8)), "a child's args are a JSON object")
                expect(child.after.allSatisfy { (0..<before).contains($0) }, "after names earlier children only")
                expect(calls.childBytes <= limits.maxChildBytes, "within the byte limit")
            case .ok(let reply):
                expect(function == HL_HOSTCALL_PROGRESS.rawValue && reply.isEmpty && payload.count >= 4,
                       "only enqueue and progress are answered")
            case .refused:
                expect(calls.children.count == before, "a refused request keeps nothing")
                expect(function == HL_HOSTCALL_ENQUEUE.rawValue || function == HL_HOSTCALL_PROGRESS.rawValue,
                       "only the job's functions refuse")
            case .unknown:
                expect(function != HL_HOSTCALL_ENQUEUE.rawValue && function != HL_HOSTCALL_PROGRESS.rawValue,
                       "enqueue and progress are known")
            }
        }
    }
}
