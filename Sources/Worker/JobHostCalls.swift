import CGuestABI
import Foundation
import JobQueue
import Sandbox

/// The host functions that concern the job a call runs for: enqueue
/// (children, kept until the job completes) and progress (handed to the
/// throttled `ProgressReporter`). One per call, on the call's thread.
/// Every byte of a request is the guest's: each is checked, and a bad one
/// is refused with a reason (the guest carries on) rather than failing the
/// job. Public for the fuzz target (fuzz/), which feeds it what a guest
/// could send.
public final class JobHostCalls: HostCallHandler {
    public struct Limits: Sendable {
        /// Jobs one call may enqueue.
        public var maxChildren = 100
        /// Bytes of guest, function, args and options over all of them.
        public var maxChildBytes = 256 << 10
        /// A progress note is cut to this many bytes (after escaping).
        public var maxNoteBytes = 256

        public init(maxChildren: Int = 100, maxChildBytes: Int = 256 << 10, maxNoteBytes: Int = 256) {
            self.maxChildren = maxChildren
            self.maxChildBytes = maxChildBytes
            self.maxNoteBytes = maxNoteBytes
        }
    }

    private let attempt: JobAttempt
    private let limits: Limits
    private let progress: ProgressReporter?
    public private(set) var children: [ChildJob] = []
    /// Bytes of the children kept so far, against `limits.maxChildBytes`.
    public private(set) var childBytes = 0

    /// Without a reporter, progress is checked and dropped.
    public convenience init(attempt: JobAttempt, limits: Limits = Limits()) {
        self.init(attempt: attempt, limits: limits, progress: nil)
    }

    init(attempt: JobAttempt, limits: Limits = Limits(), progress: ProgressReporter?) {
        self.attempt = attempt
        self.limits = limits
        self.progress = progress
    }

    public func handle(function: UInt32, payload: [UInt8]) -> HostCallAnswer {
        switch function {
        case HL_HOSTCALL_ENQUEUE.rawValue: return enqueue(payload)
        case HL_HOSTCALL_PROGRESS.rawValue: return reportProgress(payload)
        default: return .unknown
        }
    }

    // MARK: Enqueue

    private static let guestName = try! NSRegularExpression(pattern: "^[A-Za-z][A-Za-z0-9_.-]{0,63}$")

    private func enqueue(_ payload: [UInt8]) -> HostCallAnswer {
        let head = MemoryLayout<hl_enqueue_request>.size
        guard payload.count >= head else { return .refused("an enqueue request starts with a 16-byte header") }
        let lengths = (0..<4).map { Int(Self.u32(payload, $0 * 4)) }
        guard lengths.reduce(head, +) == payload.count else {
            return .refused("the enqueue header's lengths do not add up to the payload")
        }
        guard children.count < limits.maxChildren else {
            return .refused("a call may enqueue at most \(limits.maxChildren) jobs")
        }
        guard childBytes + payload.count - head <= limits.maxChildBytes else {
            return .refused("a call may enqueue at most \(limits.maxChildBytes) bytes of jobs")
        }
        var offset = head
        func next(_ length: Int) -> [UInt8] {
            defer { offset += length }
            return Array(payload[offset..<offset + length])
        }
        let guestBytes = next(lengths[0]), functionBytes = next(lengths[1])
        let argsBytes = next(lengths[2]), optionsBytes = next(lengths[3])
        guard let guest = String(validating: guestBytes, as: UTF8.self),
              Self.guestName.firstMatch(in: guest, range: NSRange(guest.startIndex..., in: guest)) != nil else {
            return .refused("the guest name must match [A-Za-z][A-Za-z0-9_.-]{0,63}")
        }
        guard let function = String(validating: functionBytes, as: UTF8.self), (1...128).contains(function.count),
              !function.allSatisfy(\.isWhitespace), !function.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
            return .refused("the function name must be 1 to 128 characters of text")
        }
        let args = argsBytes.isEmpty ? Array("{}".utf8) : argsBytes
        // jsonb refuses \u0000; the validator accepts it as JSON.
        guard JSONValidator.isObject(args), !Self.containsNullEscape(args) else {
            return .refused("args must be a JSON object")
        }
        var child = ChildJob(guest: guest, function: function, args: String(decoding: args, as: UTF8.self))
        if !optionsBytes.isEmpty {
            guard JSONValidator.isObject(optionsBytes),
                  let options = try? JSONSerialization.jsonObject(with: Data(optionsBytes)) as? [String: Any] else {
                return .refused("options must be a JSON object")
            }
            for (key, value) in options {
                switch key {
                case "queue":
                    guard let queue = value as? String, (1...128).contains(queue.count), !queue.allSatisfy(\.isWhitespace),
                          !queue.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
                        return .refused("queue must be 1 to 128 characters of text")
                    }
                    child.queue = queue
                case "unique_key":
                    guard let key = value as? String, (1...256).contains(key.count),
                          !key.unicodeScalars.contains(where: { $0.value == 0 }) else {
                        return .refused("unique_key must be 1 to 256 characters")
                    }
                    child.uniqueKey = key
                case "priority":
                    guard let number = value as? NSNumber, let priority = Int(exactly: number.doubleValue),
                          (-100...100).contains(priority) else {
                        return .refused("priority must be an integer from -100 to 100")
                    }
                    child.priority = priority
                case "max_attempts":
                    guard let number = value as? NSNumber, let attempts = Int(exactly: number.doubleValue),
                          (1...1000).contains(attempts) else {
                        return .refused("max_attempts must be an integer from 1 to 1000")
                    }
                    child.maxAttempts = attempts
                case "after":
                    guard let list = value as? [Any], list.count <= limits.maxChildren else {
                        return .refused("after must be a list of indexes of jobs this call enqueued")
                    }
                    var after: [Int] = []
                    for item in list {
                        guard let number = item as? NSNumber, let index = Int(exactly: number.doubleValue),
                              (0..<children.count).contains(index) else {
                            return .refused("after must be a list of indexes of jobs this call enqueued")
                        }
                        after.append(index)
                    }
                    child.after = after
                default:
                    return .refused("unknown option \(UntrustedText.escape(key))")
                }
            }
        }
        children.append(child)
        childBytes += payload.count - head
        return .ok(withUnsafeBytes(of: UInt32(children.count - 1).littleEndian) { Array($0) })
    }

    private static func containsNullEscape(_ bytes: [UInt8]) -> Bool {
        let needle = Array("\\u0000".utf8)
        guard bytes.count >= needle.count else { return false }
        // Over-cautious on purpose: "\\u0000" (an escaped backslash) is
        // refused too, which no real guest needs.
        return (0...(bytes.count - needle.count)).contains { i in
            bytes[i] == needle[0] && Array(bytes[i..<i + needle.count]).lowercased() == needle
        }
    }

    // MARK: Progress

    private func reportProgress(_ payload: [UInt8]) -> HostCallAnswer {
        guard payload.count >= 4 else { return .refused("a progress report starts with a uint32 fraction") }
        let partsPerMillion = Self.u32(payload, 0)
        guard partsPerMillion <= 1_000_000 else { return .refused("the fraction is in parts per million, 0 to 1000000") }
        var note = UntrustedText.escape(Array(payload[4...]))
        if note.utf8.count > limits.maxNoteBytes {
            note = String(decoding: note.utf8.prefix(limits.maxNoteBytes), as: UTF8.self)
        }
        progress?.report(attempt, fraction: Double(partsPerMillion) / 1_000_000, note: note)
        return .ok([])
    }

    private static func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }
}

private extension Array where Element == UInt8 {
    /// ASCII letters lower-cased, for the \u0000 check.
    func lowercased() -> [UInt8] { map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 } }
}
