import CGuestABI

/// The bytes a guest hands the host, decoded: the result header it leaves in
/// the output area when a call ends, and the host-call requests it makes.
/// Every byte here is the guest's to choose, so decoding is pure (bytes in,
/// an outcome out; no VM, no guest memory), which lets the fuzz targets in
/// fuzz/ run it on its own. `Sandbox` reads the bytes and acts on the outcome.
public enum GuestMessageDecoder {
    /// Every header of the ABI is 16 bytes.
    public static let headerSize = MemoryLayout<hl_result_header>.size
    /// A failure message is read up to this many bytes; the rest is ignored.
    public static let maximumMessageBytes = 1024

    // MARK: Result header

    /// What a result header asks the host to do next.
    public enum ResultHeader: Equatable, Sendable {
        /// The call succeeded: the result is the `length` bytes after the header.
        case result(length: Int)
        /// The guest reports a failure, explained by the first
        /// `messageLength` bytes after the header.
        case failure(GuestFailure, messageLength: Int)
        /// The call ends with this error; nothing after the header is read.
        case error(SandboxError)
    }

    /// The failures a guest may report, each with its own message.
    public enum GuestFailure: Equatable, Sendable {
        case guestError, finalError, unknownFunction, outOfMemory, invalidInput

        public func error(message: String) -> SandboxError {
            switch self {
            case .guestError: return .guestError(message)
            case .finalError: return .finalError(message)
            case .unknownFunction: return .unknownFunction(message)
            case .outOfMemory: return .outOfMemory(message)
            case .invalidInput: return .invalidInput(message)
            }
        }
    }

    /// Decodes the result header at the start of `bytes` for an output area
    /// of `outputAreaSize` bytes. Lengths in the outcome never exceed the
    /// area after the header, nor `maxOutputBytes` for a result.
    public static func resultHeader(_ bytes: [UInt8], outputAreaSize: Int, maxOutputBytes: Int) -> ResultHeader {
        guard bytes.count >= headerSize, u32(bytes, 0) == HL_RESULT_MAGIC else {
            return .error(.invalidOutput("the guest signalled done without writing a result header"))
        }
        let status = u32(bytes, 4)
        let length = Int(u32(bytes, 8))
        guard length <= outputAreaSize - headerSize else {
            return .error(.invalidOutput("the result header claims \(length) bytes, more than the output area holds"))
        }
        let messageLength = min(length, maximumMessageBytes)
        switch status {
        case HL_STATUS_OK.rawValue:
            guard length <= maxOutputBytes else {
                return .error(.outputTooLarge(bytes: length, limit: maxOutputBytes))
            }
            return .result(length: length)
        case HL_STATUS_GUEST_ERROR.rawValue: return .failure(.guestError, messageLength: messageLength)
        case HL_STATUS_FINAL_ERROR.rawValue: return .failure(.finalError, messageLength: messageLength)
        case HL_STATUS_UNKNOWN_FUNCTION.rawValue: return .failure(.unknownFunction, messageLength: messageLength)
        case HL_STATUS_OUT_OF_MEMORY.rawValue: return .failure(.outOfMemory, messageLength: messageLength)
        case HL_STATUS_OUTPUT_TOO_LARGE.rawValue:
            return .error(.outputTooLarge(bytes: 0, limit: min(maxOutputBytes, outputAreaSize - headerSize)))
        case HL_STATUS_INVALID_INPUT.rawValue: return .failure(.invalidInput, messageLength: messageLength)
        default: return .error(.invalidOutput("the guest returned unknown status \(status)"))
        }
    }

    // MARK: Host calls

    /// What a host-call request header says.
    public enum HostCallHeader: Equatable, Sendable {
        /// Call `function` with the `payloadLength` bytes after the header.
        case request(function: UInt32, payloadLength: Int)
        /// Not a request: the call ends as a guest crash with this reason.
        case malformed(String)
    }

    /// A host-call request with its payload decoded.
    public enum HostCall: Equatable, Sendable {
        /// HL_HOSTCALL_LOG: `level` as the guest sent it (enum hl_log_level)
        /// and the message's raw bytes, not yet made safe to print.
        case log(level: UInt32, message: ArraySlice<UInt8>)
        case wallClock
        /// No such host function: the guest gets HL_HOSTCALL_UNKNOWN.
        case unknown(function: UInt32)
        /// The payload does not fit the function: a guest crash with this reason.
        case malformed(String)
    }

    /// Decodes the request header at the start of `bytes` for a host-call
    /// area of `areaSize` bytes; the payload length is within the area.
    public static func hostCallHeader(_ bytes: [UInt8], areaSize: Int) -> HostCallHeader {
        guard bytes.count >= headerSize, u32(bytes, 0) == HL_HOSTCALL_MAGIC,
              Int(u32(bytes, 8)) <= areaSize - headerSize else {
            return .malformed("malformed host call request")
        }
        return .request(function: u32(bytes, 4), payloadLength: Int(u32(bytes, 8)))
    }

    /// Decodes the payload of a request for `function`.
    public static func hostCall(function: UInt32, payload: [UInt8]) -> HostCall {
        switch function {
        case HL_HOSTCALL_LOG.rawValue:
            guard payload.count >= 4 else { return .malformed("malformed log host call") }
            return .log(level: u32(payload, 0), message: payload[4...])
        case HL_HOSTCALL_WALL_CLOCK.rawValue:
            return .wallClock
        default:
            return .unknown(function: function)
        }
    }

    /// Little-endian, as every integer of the ABI; the caller checked the bounds.
    private static func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }
}
