import MicroVM

/// Why a call into a guest did not produce a result. `kind` is the stable
/// name that lands in a job's errors; `message` is short and safe to show to
/// whoever submitted the job. Host-side detail goes to the log instead.
public enum SandboxError: Error, Equatable, CustomStringConvertible {
    case timeout(milliseconds: Int)
    case cancelled
    case outOfMemory(String)
    /// `symbol` is where RIP was (`name+0xoffset`), when the image's symbol
    /// table says.
    case guestCrash(reason: String, rip: UInt64, symbol: String? = nil)
    case guestError(String)
    /// A guest error the guest declared final (HL_STATUS_FINAL_ERROR): a
    /// retry cannot fix it, so the job is discarded at once.
    case finalError(String)
    case invalidOutput(String)
    case outputTooLarge(bytes: Int, limit: Int)
    case unknownFunction(String)
    case memoryAccessViolation(address: UInt64, rip: UInt64, symbol: String? = nil)
    case invalidInput(String)
    case tooManyHostCalls(limit: Int)
    case invalidGuest(ELFError)
    /// A well-formed ELF that is not a usable hl-worker guest (its ABI note).
    case incompatibleGuest(String)
    /// The guest's init (run when its VM is built) failed as `cause` says;
    /// no call runs on that VM.
    indirect case initFailed(SandboxError)
    case invalidLimits(String)
    /// The host failed (a KVM ioctl, an mmap): not the guest's fault.
    case host(KVMError)

    public var kind: String {
        switch self {
        case .timeout: return "timeout"
        case .cancelled: return "cancelled"
        case .outOfMemory: return "out_of_memory"
        case .guestCrash: return "guest_crash"
        case .guestError: return "guest_error"
        case .finalError: return "guest_final_error"
        case .invalidOutput: return "invalid_output"
        case .outputTooLarge: return "output_too_large"
        case .unknownFunction: return "unknown_function"
        case .memoryAccessViolation: return "memory_access_violation"
        case .invalidInput: return "invalid_input"
        case .tooManyHostCalls: return "too_many_host_calls"
        case .invalidGuest, .incompatibleGuest: return "invalid_guest"
        case .initFailed: return "init_failed"
        case .invalidLimits: return "invalid_limits"
        case .host: return "host_error"
        }
    }

    public var message: String {
        switch self {
        case .timeout(let milliseconds): return "the call ran past its \(milliseconds) ms timeout"
        case .cancelled: return "the call was cancelled"
        case .outOfMemory(let message): return message
        case .guestCrash(let reason, let rip, let symbol):
            return "\(reason) at rip 0x\(String(rip, radix: 16))\(symbol.map { " (\($0))" } ?? "")"
        case .guestError(let message): return message
        case .finalError(let message): return message
        case .invalidOutput(let message): return message
        case .outputTooLarge(let bytes, let limit):
            return bytes > 0 ? "the result is \(bytes) bytes, over the \(limit)-byte limit"
                             : "the result is over the \(limit)-byte limit"
        case .unknownFunction(let message): return message
        case .memoryAccessViolation(let address, let rip, let symbol):
            return "the guest accessed unmapped or protected memory at 0x\(String(address, radix: 16)) (rip 0x\(String(rip, radix: 16))\(symbol.map { " in \($0)" } ?? ""))"
        case .invalidInput(let message): return message
        case .tooManyHostCalls(let limit): return "the guest made more than \(limit) host calls"
        case .invalidGuest(let error): return "invalid guest image: \(error)"
        case .incompatibleGuest(let reason): return reason
        case .initFailed(let cause): return "init failed: \(cause.kind): \(cause.message)"
        case .invalidLimits(let message): return message
        case .host(let error): return "host error: \(error)"
        }
    }

    /// Whether running the same call again could succeed: a timeout or a host
    /// failure may pass next time; an unknown function never will.
    public var isRetryable: Bool {
        switch self {
        case .unknownFunction, .invalidGuest, .incompatibleGuest, .invalidLimits, .invalidInput, .finalError: return false
        case .initFailed(let cause): return cause.isRetryable
        default: return true
        }
    }

    public var description: String { "\(kind): \(message)" }

    /// A failure below the sandbox: KVM's own error when it is one.
    static func hostFailure(_ error: any Error) -> SandboxError {
        .host((error as? KVMError) ?? .invalidArgument("\(error)"))
    }
}
