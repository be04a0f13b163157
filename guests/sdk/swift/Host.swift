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
