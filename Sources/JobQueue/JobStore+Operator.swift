import Foundation

/// One queue as an operator watches it (hl.queue_summary, migration 0008).
public struct QueueSummary: Sendable, Equatable {
    public var queue: String
    /// Due now and waiting for a slot.
    public var available: Int
    /// Available or retryable, but with run_at still ahead.
    public var scheduled: Int
    public var running: Int
    /// Failed, waiting for their retry, and due now.
    public var retryable: Int
    /// Seconds since the oldest due job's run_at; nil when none is due.
    public var oldestAvailableAge: Double?
    public var pausedAt: Date?
}

/// A job as `hl-worker job show` prints it: the columns a user set and
/// what the runs made of it.
public struct JobDetail: Sendable, Equatable {
    public var record: JobRecord
    public var timeoutMs: Int?
    public var memoryMb: Int?
    public var vm: String?
    public var submittedBy: String?
    public var createdAt: Date
    /// Workflow fields (migration 0009): the unique key, the job that
    /// enqueued this one, the jobs it waits for (JSON array), the latest
    /// progress report (JSON object).
    public var uniqueKey: String?
    public var parentID: Int64?
    public var dependsOnJSON: String?
    public var progressJSON: String?
}

/// Operator actions on one job, each allowed by the caller's role in SQL
/// (hl.job_for_caller): any job for the owner and hl_worker logins, its
/// own for an hl_enqueue login. A job the caller may not touch is reported
/// as not found (SQLSTATE P0002), never as someone else's.
extension JobStore {
    /// The newest migration applied (hl.schema_version, for the owner and
    /// hl_worker logins). Throws 3F000 when nothing was migrated, 42883 when
    /// the schema predates migration 0008.
    public func schemaVersion() throws -> Int {
        let row = try connection.execute(Queries.schemaVersion, []).singleRow()
        return try row.required("version", row.int)
    }

    public func jobDetail(id: Int64) throws -> JobDetail? {
        let rows: [PGRow]
        do {
            rows = try connection.execute(Queries.jobForCaller, [PGParam(id)]).rows
        } catch let error as PGError where error.sqlState == "P0002" {
            return nil
        }
        guard let row = rows.first else { return nil }
        let record = try JobRecord(row: row, statement: Queries.jobForCaller.name)
        return JobDetail(record: record, timeoutMs: try row.int("timeout_ms"), memoryMb: try row.int("memory_mb"),
                         vm: row.string("vm"), submittedBy: row.string("submitted_by"),
                         createdAt: try row.required("created_at", row.date),
                         uniqueKey: row.string("unique_key"), parentID: try row.int64("parent_id"),
                         dependsOnJSON: row.string("depends_on"), progressJSON: row.string("progress"))
    }

    /// True when the job was discarded or cancelled and is now available
    /// again; false when it is in another state.
    public func retryJob(id: Int64) throws -> Bool {
        let row = try connection.execute(Queries.retryJob, [PGParam(id)]).singleRow()
        return try row.required("changed", row.bool)
    }

    /// True when this call requested the cancellation; false when the job
    /// had finished or was already asked to stop.
    public func cancelJob(id: Int64) throws -> Bool {
        let row = try connection.execute(Queries.cancelJob, [PGParam(id)]).singleRow()
        return try row.required("changed", row.bool)
    }

    /// Whether this connection now holds the lease of the per-queue gauges
    /// (a session advisory lock, released when the connection ends). Call
    /// it once per connection: each success takes the lock once more.
    public func tryQueueMetricsLease() throws -> Bool {
        let row = try connection.execute(Queries.tryQueueMetricsLease, [PGParam(Queries.queueMetricsLeaseKey)]).singleRow()
        return try row.required("leader", row.bool)
    }

    public func queueSummary() throws -> [QueueSummary] {
        try connection.execute(Queries.queueSummary, []).rows.map { row in
            QueueSummary(
                queue: try row.required("queue", row.string),
                available: try row.required("available", row.int),
                scheduled: try row.required("scheduled", row.int),
                running: try row.required("running", row.int),
                retryable: try row.required("retryable", row.int),
                oldestAvailableAge: try row.double("oldest_available_age"),
                pausedAt: try row.date("paused_at"))
        }
    }

    /// Workers with a heartbeat in the last minute (hl.live_workers).
    public func liveWorkerSummary() throws -> [LiveWorker] {
        try connection.execute(Queries.liveWorkerSummary, []).rows.map(liveWorker)
    }
}

extension JobRecord {
    /// A job's row as `Queries.job` and `Queries.jobForCaller` select it.
    init(row: PGRow, statement: String) throws {
        let stateName = try row.required("state", row.string)
        guard let state = JobState(rawValue: stateName) else {
            throw PGError.unexpectedResult(statement: statement, reason: "unknown state \(stateName)")
        }
        self.init(
            id: try row.required("id", row.int64),
            queue: try row.required("queue", row.string),
            guest: try row.required("guest", row.string),
            function: try row.required("function", row.string),
            argsJSON: try row.required("args", row.string),
            priority: try row.required("priority", row.int),
            state: state,
            attempt: try row.required("attempt", row.int),
            maxAttempts: try row.required("max_attempts", row.int),
            resultJSON: row.string("result"),
            errorsJSON: try row.required("errors", row.string),
            runAt: try row.required("run_at", row.date),
            finishedAt: try row.date("finished_at"),
            attemptedBy: row.string("attempted_by"))
    }
}
