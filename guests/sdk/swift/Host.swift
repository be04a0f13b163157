import HLRuntime

public enum LogLevel {
    case debug, info, warning, error

    var abiValue: UInt32 {
        switch self {
        case .debug: HL_LOG_DEBUG.rawValue
        case .info: HL_LOG_INFO.rawValue
        case .warning: HL_LOG_WARNING.rawValue
        case .error: HL_LOG_ERROR.rawValue
        }
    }
}

/// The host functions a guest may call. Each is a VM exit, so they cost
/// tens of microseconds: log lines, not log characters.
public enum Host {
    /// Sends one line to the host's log. Messages longer than the host-call
    /// area are cut.
    public static func log(_ message: String, level: LogLevel = .info) {
        var message = message
        message.withUTF8 { hl_log(level.abiValue, $0.baseAddress, $0.count) }
    }

    /// Nanoseconds since the Unix epoch by the host's clock, or 0 if the
    /// host did not answer.
    public static func wallClockNanoseconds() -> UInt64 {
        hl_wall_clock_ns()
    }
}

/// The guest's own view of its sandbox.
public enum GuestRuntime {
    /// Free heap bytes in total, possibly in several pieces.
    public static var heapFreeBytes: Int { Int(hl_heap_free_bytes()) }

    /// The largest single allocation that would succeed now; allocating
    /// more ends the call with out_of_memory.
    public static var largestAllocation: Int { Int(hl_heap_largest_allocation()) }

    /// The stack's size as the host laid it out.
    public static var stackBytes: Int { Int(hl_stack_size()) }

    /// Executes an invalid instruction; the host sees a guest crash.
    public static func crash() -> Never {
        hl_crash()
    }
}

/// Jobs a guest asks for and progress it reports: they concern the job the
/// call runs for.
extension Host {
    /// Asks for a new job, inserted only if and when this call's job
    /// completes, in the same transaction as its result. `options` may set
    /// "queue", "priority", "max_attempts", "unique_key" and "after" (indexes
    /// returned by earlier calls, jobs the new one waits for). Returns the
    /// new job's index among this call's, or the host's reason for refusing.
    public static func enqueue(guest: String, function: String, args: JSON = [:],
                               options: JSON = [:]) -> Result<Int, GuestError> {
        let argsBytes = args.encoded()
        let optionsBytes = options.encoded()
        var reason = [CChar](repeating: 0, count: 256)
        let index = guest.withCString { guestName in
            function.withCString { functionName in
                argsBytes.withUnsafeBufferPointer { argsBuffer in
                    optionsBytes.withUnsafeBufferPointer { optionsBuffer in
                        reason.withUnsafeMutableBufferPointer { reasonBuffer in
                            hl_enqueue(guestName, functionName, argsBuffer.baseAddress, argsBuffer.count,
                                       optionsBuffer.baseAddress, optionsBuffer.count,
                                       reasonBuffer.baseAddress, reasonBuffer.count)
                        }
                    }
                }
            }
        }
        guard index >= 0 else {
            let bytes = reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            return .failure(GuestError("enqueue refused: " + String(decoding: bytes, as: UTF8.self)))
        }
        return .success(index)
    }

    /// Reports how far the job has got (`fraction` from 0 to 1) with a
    /// short note. The host keeps the latest, written about once a second.
    @discardableResult
    public static func progress(_ fraction: Double, note: String = "") -> Bool {
        let clamped = fraction.isNaN ? 0 : min(max(fraction, 0), 1)
        var note = note
        return note.withUTF8 { hl_progress(UInt32(clamped * 1_000_000), $0.baseAddress, $0.count) } != 0
    }
}
