/// What a sandbox is built with. Fixed for the sandbox's life, so recycled
/// sandboxes are pooled by it (and the guest's hash).
public struct SandboxConfiguration: Hashable, Sendable {
    /// Guest memory in MiB: the whole slab the guest gets, and so its memory limit.
    public var memoryMB: Int
    public var inputAreaSize: Int
    public var outputAreaSize: Int
    public var hostCallAreaSize: Int
    public var stackSize: Int
    /// Record the pages the guest writes, so the sandbox can be reset to its
    /// snapshot after each call instead of being thrown away.
    public var recyclable: Bool
    /// How long the guest's init (HL_CALL_INIT, run once when the VM is
    /// built) may run before the build fails as init_failed/timeout.
    public var initTimeoutMilliseconds: Int

    public static let defaultMemoryMB = 16
    public static let minimumMemoryMB = 8
    /// Upper bound the code supports; operators set a lower one per worker.
    public static let absoluteMaximumMemoryMB = 4096
    public static let defaultInitTimeoutMilliseconds = 5_000

    public init(memoryMB: Int = SandboxConfiguration.defaultMemoryMB,
                inputAreaSize: Int = 1 << 20,
                outputAreaSize: Int = 1 << 20,
                hostCallAreaSize: Int = 64 << 10,
                stackSize: Int = 256 << 10,
                recyclable: Bool = false,
                initTimeoutMilliseconds: Int = SandboxConfiguration.defaultInitTimeoutMilliseconds) {
        self.memoryMB = memoryMB
        self.inputAreaSize = inputAreaSize
        self.outputAreaSize = outputAreaSize
        self.hostCallAreaSize = hostCallAreaSize
        self.stackSize = stackSize
        self.recyclable = recyclable
        self.initTimeoutMilliseconds = initTimeoutMilliseconds
    }

    public func validate() throws(SandboxError) {
        guard (Self.minimumMemoryMB...Self.absoluteMaximumMemoryMB).contains(memoryMB) else {
            throw .invalidLimits("memory_mb \(memoryMB) is outside \(Self.minimumMemoryMB)...\(Self.absoluteMaximumMemoryMB)")
        }
        for (name, size) in [("input area", inputAreaSize), ("output area", outputAreaSize),
                             ("host-call area", hostCallAreaSize), ("stack", stackSize)]
        where size < 4096 || size % 4096 != 0 || size > 256 << 20 {
            throw .invalidLimits("\(name) size \(size) is not a multiple of 4 KiB between 4 KiB and 256 MiB")
        }
        guard (1...CallLimits.maximumTimeoutMilliseconds).contains(initTimeoutMilliseconds) else {
            throw .invalidLimits("init timeout \(initTimeoutMilliseconds) ms is outside 1...\(CallLimits.maximumTimeoutMilliseconds)")
        }
    }
}

/// Limits of one call.
public struct CallLimits: Hashable, Sendable {
    public var timeoutMilliseconds: Int
    /// At most the output area's size less its header.
    public var maxOutputBytes: Int
    public var maxHostCalls: Int
    /// Guest log bytes one call may write (its lines as logged, escapes
    /// included). The first line past it is replaced by one "guest log
    /// truncated" warning and the call's later lines are dropped; the call
    /// itself goes on. 0 drops every line.
    public var maxLogBytes: Int

    public static let defaultTimeoutMilliseconds = 5_000
    public static let defaultMaxLogBytes = 64 << 10
    public static let maximumTimeoutMilliseconds = 24 * 3_600_000

    public init(timeoutMilliseconds: Int = CallLimits.defaultTimeoutMilliseconds,
                maxOutputBytes: Int = 1 << 20 - 16,
                maxHostCalls: Int = 10_000,
                maxLogBytes: Int = CallLimits.defaultMaxLogBytes) {
        self.timeoutMilliseconds = timeoutMilliseconds
        self.maxOutputBytes = maxOutputBytes
        self.maxHostCalls = maxHostCalls
        self.maxLogBytes = maxLogBytes
    }

    public func validate() throws(SandboxError) {
        guard (1...Self.maximumTimeoutMilliseconds).contains(timeoutMilliseconds) else {
            throw .invalidLimits("timeout_ms \(timeoutMilliseconds) is outside 1...\(Self.maximumTimeoutMilliseconds)")
        }
        guard maxOutputBytes >= 0 else { throw .invalidLimits("max output bytes \(maxOutputBytes) is negative") }
        guard maxHostCalls >= 0 else { throw .invalidLimits("max host calls \(maxHostCalls) is negative") }
        guard maxLogBytes >= 0 else { throw .invalidLimits("max log bytes \(maxLogBytes) is negative") }
    }
}
