import Logging

/// Where a sandbox's guest log lines go. A line is filtered by the logger's
/// level, escaped as untrusted text, charged to the call's byte budget and
/// queued on `LogQueue.guestLines`, in that order, on the slot's thread and
/// without waiting for anything: the call's deadline holds however slow the
/// log's destination is. The first line over the budget is replaced by one
/// warning that the call's log was truncated; the call itself goes on.
struct GuestLog {
    let logger: Logger
    let queue: LogQueue
    private(set) var budget = LogBudget(limit: CallLimits.defaultMaxLogBytes)

    init(logger: Logger, queue: LogQueue = .guestLines) {
        self.logger = logger
        self.queue = queue
    }

    /// This call's fields (job, attempt, guest, function), on each line:
    /// built on the call's first line, since most calls write none.
    private var makeCallMetadata: () -> Logger.Metadata = { [:] }
    private var callMetadata: Logger.Metadata?

    /// A new call starts with the whole budget.
    mutating func beginCall(maxBytes: Int, metadata: @escaping () -> Logger.Metadata = { [:] }) {
        budget = LogBudget(limit: maxBytes)
        makeCallMetadata = metadata
        callMetadata = nil
    }

    mutating func record(level: Logger.Level, message: some Collection<UInt8>) {
        // Below the configured level: neither escaped, charged nor queued.
        guard logger.logLevel <= level, !budget.isExhausted else { return }
        let text = UntrustedText.escape(message)
        let logger = logger
        let call = callMetadata ?? makeCallMetadata()
        callMetadata = call
        switch budget.admit(bytes: text.utf8.count) {
        case .write:
            queue.enqueue {
                logger.log(level: level, "\(text)", metadata: call.merging(["origin": "guest"]) { $1 })
            }
        case .truncate(let limit):
            queue.enqueue {
                logger.warning("guest log truncated: this call logged more than its \(limit)-byte budget; its later lines are dropped",
                               metadata: call.merging(["origin": "host", "log_budget_bytes": .stringConvertible(limit)]) { $1 })
            }
        case .drop:
            break
        }
    }
}

/// The log bytes one call may still write. A pure value: `admit` says what
/// to do with a line of a given size.
struct LogBudget: Equatable {
    enum Admission: Equatable {
        /// Write the line; it fits.
        case write
        /// Drop the line and say, once, that the call's log was truncated.
        case truncate(limit: Int)
        /// Drop the line: the call's log was already truncated.
        case drop
    }

    let limit: Int
    private(set) var used = 0
    private(set) var isExhausted = false

    init(limit: Int) {
        self.limit = max(0, limit)
    }

    mutating func admit(bytes: Int) -> Admission {
        if isExhausted { return .drop }
        guard used + bytes <= limit else {
            isExhausted = true
            return .truncate(limit: limit)
        }
        used += bytes
        return .write
    }
}
