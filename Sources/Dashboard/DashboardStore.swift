import Foundation
import JobQueue

/// Reads the pages' data and performs the actions, one connection at a
/// time (the pool's). Statements and their reasons are in DashboardQueries.
struct DashboardStore: Sendable {
    let pool: ConnectionPool

    func permissions() async throws -> Permissions {
        try await pool.run { connection in
            let row = try connection.execute(DashboardQueries.permissions).singleRow()
            return Permissions(canCancel: try row.bool("can_cancel") ?? false, canRetry: try row.bool("can_retry") ?? false,
                               canPause: try row.bool("can_pause") ?? false, role: row.string("role") ?? "")
        }
    }

    func overview() async throws -> Overview {
        try await pool.run { connection in
            let limit = DashboardQueries.exactCountLimit
            let capped = try connection.execute(DashboardQueries.cappedCounts, params: [String(limit)]).singleRow()
            let manyWaiting = try (capped.int("waiting") ?? 0) >= limit
            let manyFinished = try (capped.int("finished") ?? 0) >= limit
            let queues = manyWaiting || manyFinished
                ? try Self.queuesAtScale(connection, limit: limit, waiting: manyWaiting, finished: manyFinished)
                : try connection.execute(DashboardQueries.queues).rows.map { row in
                    QueueSummary(
                        name: row.string("queue") ?? "", available: try row.int("available") ?? 0,
                        scheduled: try row.int("scheduled") ?? 0, retryable: try row.int("retryable") ?? 0,
                        running: try row.int("running") ?? 0, completed: try row.int("completed") ?? 0,
                        discarded: try row.int("discarded") ?? 0, oldestAge: try row.double("oldest_age_s"),
                        paused: try row.bool("paused") ?? false)
                }
            var completed = [Int](repeating: 0, count: 60), discarded = [Int](repeating: 0, count: 60)
            for row in try connection.execute(DashboardQueries.throughput).rows {
                let minute = try row.required("minutes_ago", row.int)
                guard (0..<60).contains(minute) else { continue }
                completed[minute] = try row.int("completed") ?? 0
                discarded[minute] = try row.int("discarded") ?? 0
            }
            let failures = try connection.execute(DashboardQueries.failuresByKind, params: [String(limit)]).rows.map { row in
                (kind: row.string("kind") ?? "", jobs: try row.int("jobs") ?? 0)
            }
            let total = try connection.execute(DashboardQueries.estimatedTotal).singleRow().int64("estimate") ?? 0
            return Overview(queues: queues, waitingEstimated: manyWaiting, finishedEstimated: manyFinished,
                            failureLimit: limit, completedPerMinute: completed, discardedPerMinute: discarded,
                            failures: failures, estimatedTotal: total)
        }
    }

    /// Exact counts where an index holds only the few, planner estimates
    /// for the rest (see DashboardQueries.queuesAtScale).
    private static func queuesAtScale(_ connection: PGConnection, limit: Int, waiting: Bool, finished: Bool) throws -> [QueueSummary] {
        // The kind that is not numerous is counted exactly, on its own.
        let exact = waiting ? (finished ? [] : try connection.execute(DashboardQueries.finishedCounts).rows)
            : try connection.execute(DashboardQueries.waitingCounts).rows
        return try connection.execute(DashboardQueries.queuesAtScale).rows.map { row in
            let name = row.string("queue") ?? ""
            let counted = exact.first { $0.string("queue") == name }
            func count(_ column: String, estimated: Bool, _ sql: String) throws -> Int {
                estimated ? try estimate(connection, sql, name) : try counted?.int(column) ?? 0
            }
            return QueueSummary(
                name: name,
                available: try count("available", estimated: waiting, DashboardQueries.estimatedAvailable),
                scheduled: try count("scheduled", estimated: waiting, DashboardQueries.estimatedScheduled),
                retryable: try row.int("retryable") ?? 0, running: try row.int("running") ?? 0,
                completed: try count("completed", estimated: finished, DashboardQueries.estimatedCompleted),
                discarded: try count("discarded", estimated: finished, DashboardQueries.estimatedDiscarded),
                oldestAge: try row.double("oldest_age_s"), paused: try row.bool("paused") ?? false)
        }
    }

    /// The planner's row estimate for a statement, from EXPLAIN (which
    /// plans and does not run it). Statistics come from ANALYZE, which
    /// autovacuum runs often on hl.jobs (migration 0006).
    static func estimate(_ connection: PGConnection, _ sql: String, _ queue: String) throws -> Int {
        let plan = try connection.execute("EXPLAIN (FORMAT JSON) " + sql, params: [queue]).singleRow().string("QUERY PLAN") ?? ""
        guard let json = try? JSONSerialization.jsonObject(with: Data(plan.utf8)) as? [[String: Any]],
              let top = json.first?["Plan"] as? [String: Any], let rows = top["Plan Rows"] as? NSNumber else {
            throw PGError.unexpectedResult(statement: "EXPLAIN", reason: "no Plan Rows in \(plan.prefix(200))")
        }
        // The planner never estimates fewer than one row.
        return rows.intValue <= 1 ? 0 : rows.intValue
    }

    func jobs(_ filter: JobFilter, pageSize: Int) async throws -> JobListPage {
        try await pool.run { connection in
            let newer = filter.after != nil
            let params: [String?] = [
                filter.queue, filter.state, filter.guest, filter.function,
                filter.from.map { $0 + " UTC" }, filter.to.map { $0 + " UTC" },
                (filter.after ?? filter.before).map(String.init), String(pageSize + 1),
            ]
            var rows = try connection.execute(DashboardQueries.jobList(newer: newer), params: params).rows.map { row in
                JobRow(id: try row.required("id", row.int64), queue: row.string("queue") ?? "",
                       guest: row.string("guest") ?? "", function: row.string("function") ?? "",
                       state: row.string("state") ?? "", attempt: try row.int("attempt") ?? 0,
                       maxAttempts: try row.int("max_attempts") ?? 0, created: row.string("created") ?? "",
                       finished: row.string("finished"), lastErrorKind: row.string("last_kind"))
            }
            let more = rows.count > pageSize
            if more { rows.removeLast() }
            if newer {
                rows.reverse()
                // Walking up: `more` means newer rows remain; older ones
                // exist below the cursor by construction.
                return JobListPage(rows: rows, older: rows.last?.id ?? filter.after.map { $0 + 1 },
                                   newer: more ? rows.first?.id : nil)
            }
            // Walking down from the top (or a cursor): a cursor means newer
            // rows exist above it.
            return JobListPage(rows: rows, older: more ? rows.last?.id : nil,
                               newer: filter.before != nil ? (rows.first?.id ?? filter.before.map { $0 - 1 }) : nil)
        }
    }

    func job(id: Int64) async throws -> JobDetail? {
        try await pool.run { connection in
            guard let row = try connection.execute(DashboardQueries.job, params: [String(id)]).rows.first else { return nil }
            let errorsText = row.string("errors") ?? "[]"
            let parsed = Self.parseErrors(errorsText)
            return JobDetail(
                id: id, queue: row.string("queue") ?? "", guest: row.string("guest") ?? "",
                function: row.string("function") ?? "", state: row.string("state") ?? "",
                args: row.string("args") ?? "", result: row.string("result"),
                attempt: try row.int("attempt") ?? 0, maxAttempts: try row.int("max_attempts") ?? 0,
                priority: try row.int("priority") ?? 0, timeoutMS: try row.int("timeout_ms"),
                memoryMB: try row.int("memory_mb"), vm: row.string("vm"), submittedBy: row.string("submitted_by"),
                attemptedBy: row.string("attempted_by"), scheduled: try row.bool("scheduled") ?? false,
                created: row.string("created") ?? "", runAt: row.string("run_at") ?? "",
                attempted: row.string("attempted"), cancelRequested: row.string("cancel_requested"),
                finished: row.string("finished"), uniqueKey: row.string("unique_key"),
                dependsOn: row.string("depends_on"), progress: row.string("progress"),
                parentID: try row.int64("parent_id"), errors: parsed ?? [], rawErrors: parsed == nil ? errorsText : nil)
        }
    }

    /// The errors array as the worker writes it; nil for anything else
    /// (a user can UPDATE the column), which the page then shows raw.
    static func parseErrors(_ text: String) -> [AttemptError]? {
        guard let array = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [Any] else { return nil }
        return array.map { element in
            let entry = element as? [String: Any] ?? [:]
            func text(_ key: String) -> String {
                switch entry[key] {
                case let string as String: return string
                case nil, is NSNull: return ""
                case let other?: return "\(other)"
                }
            }
            return AttemptError(attempt: (entry["attempt"] as? NSNumber)?.intValue, at: text("at"), kind: text("kind"),
                                message: text("message"), worker: text("worker"))
        }
    }

    func guests() async throws -> [GuestRow] {
        try await pool.run { connection in
            let limit = DashboardQueries.exactCountLimit
            let capped = try connection.execute(DashboardQueries.cappedCounts, params: [String(limit)]).singleRow()
            if try (capped.int("finished") ?? 0) >= limit {
                return try connection.execute(DashboardQueries.guestsOnly).rows.map { row in
                    let name = row.string("name") ?? ""
                    return GuestRow(
                        name: name, sha256: row.string("sha256") ?? "", sizeBytes: try row.int64("size_bytes") ?? 0,
                        functions: Self.functions(row.string("functions")),
                        registered: row.string("registered") ?? "", updated: row.string("updated") ?? "",
                        finished: try Self.estimate(connection, DashboardQueries.estimatedGuestFinished, name),
                        discarded: try Self.estimate(connection, DashboardQueries.estimatedGuestDiscarded, name),
                        estimated: true)
                }
            }
            return try connection.execute(DashboardQueries.guests).rows.map { row in
                GuestRow(name: row.string("name") ?? "", sha256: row.string("sha256") ?? "",
                         sizeBytes: try row.int64("size_bytes") ?? 0, functions: Self.functions(row.string("functions")),
                         registered: row.string("registered") ?? "",
                         updated: row.string("updated") ?? "", finished: try row.int("finished") ?? 0,
                         discarded: try row.int("discarded") ?? 0)
            }
        }
    }

    /// A guest's function list, from its JSON array text.
    static func functions(_ json: String?) -> [String]? {
        guard let data = json?.data(using: .utf8) else { return nil }
        return try? JSONDecoder().decode([String].self, from: data)
    }

    func workers() async throws -> [WorkerRow] {
        try await pool.run { connection in
            try connection.execute(DashboardQueries.workers).rows.map { row in
                WorkerRow(id: row.string("id") ?? "", host: row.string("host") ?? "", pid: try row.int("pid") ?? 0,
                          concurrency: try row.int("concurrency") ?? 0, queues: row.string("queues"),
                          version: row.string("version") ?? "", started: row.string("started") ?? "",
                          heartbeatAge: try row.double("heartbeat_age_s") ?? 0, fresh: try row.int("fresh") ?? 0,
                          recycled: try row.int("recycled") ?? 0, defaultVM: try row.int("default_vm") ?? 0)
            }
        }
    }

    /// An action's outcome: done, or nothing to do (the job or queue was
    /// not in a state the action applies to).
    enum ActionOutcome: Sendable, Equatable { case done, notApplicable }

    enum Action: Sendable {
        case cancel(Int64), retry(Int64), pause(String), resume(String)
    }

    func perform(_ action: Action) async throws -> ActionOutcome {
        try await pool.run { connection in
            switch action {
            case .cancel(let id):
                let result = try connection.execute(DashboardQueries.cancel, params: [String(id)])
                return result.affectedRows > 0 ? .done : .notApplicable
            case .retry(let id):
                return try Self.flag(connection.execute(DashboardQueries.retry, params: [String(id)]))
            case .pause(let queue):
                return try Self.flag(connection.execute(DashboardQueries.pause, params: [queue]))
            case .resume(let queue):
                return try Self.flag(connection.execute(DashboardQueries.resume, params: [queue]))
            }
        }
    }

    private static func flag(_ result: PGResult) throws -> ActionOutcome {
        try result.singleRow().bool("done") == true ? .done : .notApplicable
    }
}
