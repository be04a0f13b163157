import Foundation

/// A periodic job's row (`hl.schedules`), as the scheduler and
/// `hl-worker schedule list` read it.
public struct Schedule: Sendable, Equatable {
    public var name: String
    public var cron: String
    public var timeZone: String
    public var lastTick: Date

    public init(name: String, cron: String, timeZone: String, lastTick: Date) {
        self.name = name
        self.cron = cron
        self.timeZone = timeZone
        self.lastTick = lastTick
    }
}

public struct ScheduleSummary: Sendable, Equatable {
    public var name, cron, timeZone, guest, function, queue: String
    public var enabled: Bool
    public var lastTick: Date
    public var lastJobID: Int64?
    public var lastError: String?
}

/// A job a guest asked for, inserted with its parent's completion.
public struct ChildJob: Sendable, Equatable, Codable {
    public var guest: String
    public var function: String
    /// A JSON object, as text.
    public var args: String
    public var queue: String?
    public var uniqueKey: String?
    public var priority: Int?
    public var maxAttempts: Int?
    /// Indexes of earlier children of the same parent this one depends on.
    public var after: [Int]

    public init(guest: String, function: String, args: String = "{}", queue: String? = nil,
                uniqueKey: String? = nil, after: [Int] = []) {
        self.guest = guest
        self.function = function
        self.args = args
        self.queue = queue
        self.uniqueKey = uniqueKey
        self.after = after
    }
}

/// Unique jobs, schedules, children and progress (migration 0009).
extension JobStore {
    // MARK: Unique jobs

    /// Inserts one job unless a job of this submitter with `uniqueKey` is
    /// pending, available, running or retryable; returns its id, or nil
    /// when that other job made this insert a no-op.
    public func enqueue(
        uniqueKey: String, guest: String, function: String, argsJSON: String? = nil, queue: String? = nil,
        priority: Int? = nil, runAt: Date? = nil, maxAttempts: Int? = nil,
        timeoutMs: Int? = nil, memoryMb: Int? = nil, vm: String? = nil
    ) throws -> Int64? {
        let result = try connection.execute(Queries.enqueueUnique, [
            .text(guest), .text(function), PGParam(argsJSON), PGParam(queue), PGParam(priority),
            PGParam(runAt), PGParam(maxAttempts), PGParam(timeoutMs), PGParam(memoryMb), PGParam(vm), .text(uniqueKey),
        ])
        return try result.rows.first.map { try $0.required("id", $0.int64) }
    }

    // MARK: Schedules

    /// One scheduler round, in one transaction, by at most one worker at a
    /// time per database (a transaction-scoped advisory lock, tried, never
    /// waited for): `due` gets the enabled schedules and the database's
    /// clock and says which tick of each to enqueue; each is enqueued at
    /// most once ever (hl.enqueue_tick). Returns nil when another worker
    /// holds the lock, else the ids of the jobs enqueued.
    public func runSchedulerRound(
        _ due: (_ schedules: [Schedule], _ now: Date) -> (ticks: [(name: String, tick: Date)], failures: [(name: String, message: String)])
    ) throws -> [Int64]? {
        try connection.transaction {
            let locked = try connection.execute(Queries.tryLockScheduler, [PGParam(Queries.schedulerLockKey)]).singleRow()
            guard try locked.required("locked", locked.bool) else { return nil }
            var now = Date()
            let schedules = try connection.execute(Queries.dueSchedules, []).rows.map { row in
                now = try row.required("now", row.date)
                return Schedule(name: try row.required("name", row.string), cron: try row.required("cron", row.string),
                                timeZone: try row.required("time_zone", row.string),
                                lastTick: try row.required("last_tick", row.date))
            }
            guard !schedules.isEmpty else { return [] }
            let (ticks, failures) = due(schedules, now)
            for failure in failures {
                try connection.execute(Queries.scheduleFailed, [.text(failure.name), .text(failure.message)])
            }
            var ids: [Int64] = []
            for tick in ticks {
                let row = try connection.execute(Queries.enqueueTick, [.text(tick.name), PGParam(tick.tick)]).singleRow()
                if let id = try row.int64("id") { ids.append(id) }
            }
            return ids
        }
    }

    public func addSchedule(name: String, cron: String, timeZone: String, guest: String, function: String,
                            argsJSON: String?, queue: String?, priority: Int?) throws {
        try connection.execute(Queries.addSchedule, [
            .text(name), .text(cron), .text(timeZone), .text(guest), .text(function), PGParam(argsJSON),
            PGParam(queue), PGParam(priority),
        ])
    }

    /// Whether a schedule of that name existed.
    @discardableResult
    public func removeSchedule(name: String) throws -> Bool {
        try connection.execute(Queries.removeSchedule, [.text(name)]).affectedRows == 1
    }

    /// Pauses or resumes a schedule; false when it was so already (or does
    /// not exist). Resuming starts from now: ticks missed while paused do
    /// not run.
    @discardableResult
    public func setScheduleEnabled(name: String, _ enabled: Bool) throws -> Bool {
        try connection.execute(Queries.enableSchedule, [.text(name), .text(enabled ? "true" : "false")]).affectedRows == 1
    }

    public func listSchedules() throws -> [ScheduleSummary] {
        try connection.execute(Queries.listSchedules, []).rows.map { row in
            ScheduleSummary(
                name: try row.required("name", row.string), cron: try row.required("cron", row.string),
                timeZone: try row.required("time_zone", row.string), guest: try row.required("guest", row.string),
                function: try row.required("function", row.string), queue: try row.required("queue", row.string),
                enabled: try row.required("enabled", row.bool), lastTick: try row.required("last_tick", row.date),
                lastJobID: try row.int64("last_job_id"), lastError: row.string("last_error"))
        }
    }

    // MARK: Children and progress

    /// Completes a job and inserts the children its guest enqueued, in one
    /// transaction (hl.complete_with_children); fenced like `finish`.
    /// Returns whether it completed the job (false: the attempt is no
    /// longer the job's running one, and nothing was inserted).
    public func complete(_ attempt: JobAttempt, workerID: String, resultJSON: String, children: [ChildJob]) throws -> Bool {
        // Spliced, not re-encoded: each child's args is JSON the worker has
        // validated, kept byte for byte; the strings are escaped.
        let json = "[" + children.map { child in
            var fields = ["\"guest\":\(Self.jsonString(child.guest))", "\"function\":\(Self.jsonString(child.function))",
                          "\"args\":\(child.args)", "\"after\":[\(child.after.map(String.init).joined(separator: ","))]"]
            if let queue = child.queue { fields.append("\"queue\":\(Self.jsonString(queue))") }
            if let key = child.uniqueKey { fields.append("\"unique_key\":\(Self.jsonString(key))") }
            if let priority = child.priority { fields.append("\"priority\":\(priority)") }
            if let attempts = child.maxAttempts { fields.append("\"max_attempts\":\(attempts)") }
            return "{" + fields.joined(separator: ",") + "}"
        }.joined(separator: ",") + "]"
        let row = try connection.execute(Queries.completeWithChildren, [
            PGParam(attempt.id), PGParam(attempt.attempt), .text(workerID), .text(resultJSON), .text(json),
        ]).singleRow()
        return try row.required("completed", row.bool)
    }

    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Stores a running job's progress; nothing when the attempt has moved on.
    public func reportProgress(_ attempt: JobAttempt, workerID: String, fraction: Double, note: String) throws {
        try connection.execute(Queries.reportProgress, [
            PGParam(attempt.id), PGParam(attempt.attempt), .text(workerID), PGParam(fraction), .text(note),
        ])
    }
}
