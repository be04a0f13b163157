import Foundation

/// The job queue's operations over one connection. Like its connection it
/// blocks, and belongs to one thread at a time.
///
/// Every write a worker makes about a job it runs is fenced by
/// (id, attempt, worker): once the job has moved on (rescued, retried,
/// claimed by someone else) a late write from the old attempt changes
/// nothing. That also makes a write safe to repeat after a lost connection.
public final class JobStore: @unchecked Sendable {
    public let connection: PGConnection
    public let backoff: Backoff

    public init(connection: PGConnection, backoff: Backoff = .standard) {
        self.connection = connection
        self.backoff = backoff
    }

    // MARK: Workers

    /// Registers this process under `worker.id` unless another live process
    /// holds that id: one whose heartbeat is younger than `liveWithin`
    /// seconds. A row of a process silent longer is taken over (its jobs are
    /// rescued by `rescueJobs(ofEarlierWorker:)`). The heartbeat starts now.
    public func registerWorker(_ worker: WorkerInfo, liveWithin: TimeInterval) throws -> WorkerRegistration {
        let inserted = try connection.execute(Queries.registerWorker, [
            .text(worker.id), .text(worker.host), PGParam(Int(worker.pid)), PGParam(worker.concurrency),
            worker.queues.map { PGParam.array($0) } ?? .null, .text(worker.version), .text(worker.instance),
            PGParam(liveWithin),
        ])
        if inserted.rowCount == 1 { return .registered }
        // The holder may have deregistered since; then trying again wins.
        guard let row = try connection.execute(Queries.workerHolder, [.text(worker.id)]).rows.first else {
            return try registerWorker(worker, liveWithin: liveWithin)
        }
        return .heldByLiveWorker(
            host: try row.required("host", row.string), pid: Int32(try row.required("pid", row.int)),
            silentFor: try row.required("silent_s", row.double))
    }

    /// Writes the heartbeat of this process's row. When the row is not its
    /// own any more, registers again if the id is free (see
    /// `registerWorker`) and says what happened.
    public func heartbeat(_ worker: WorkerInfo, liveWithin: TimeInterval) throws -> HeartbeatOutcome {
        let beat = try connection.execute(Queries.heartbeat, [.text(worker.id), .text(worker.instance)])
        if beat.affectedRows == 1 { return .beating }
        switch try registerWorker(worker, liveWithin: liveWithin) {
        case .registered: return .registeredAgain
        case .heldByLiveWorker(let host, let pid, _): return .takenOver(host: host, pid: pid)
        }
    }

    /// Deletes this process's row; a row another process owns stays.
    public func deregisterWorker(_ worker: WorkerInfo) throws {
        try connection.execute(Queries.deregisterWorker, [.text(worker.id), .text(worker.instance)])
    }

    // MARK: Claiming and finishing

    /// Claims up to `limit` runnable jobs in (priority, run_at, id) order
    /// from `queues` (nil: every queue), marking them running under a new
    /// attempt for `workerID`. Never blocks on, or shares, a job another
    /// claimer holds.
    public func claim(workerID: String, queues: [String]?, limit: Int) throws -> [ClaimedJob] {
        precondition(limit > 0, "claim limit must be positive")
        let result = try connection.execute(
            Queries.claim, [.text(workerID), PGParam(limit), queues.map { PGParam.array($0) } ?? .null])
        return try result.rows.map { row in
            ClaimedJob(
                id: try row.required("id", row.int64),
                queue: try row.required("queue", row.string),
                guest: try row.required("guest", row.string),
                function: try row.required("function", row.string),
                argsJSON: try row.required("args", row.string),
                argsIsObject: try row.required("args_is_object", row.bool),
                attempt: try row.required("attempt", row.int),
                maxAttempts: try row.required("max_attempts", row.int),
                timeoutMs: try row.int("timeout_ms"),
                memoryMb: try row.int("memory_mb"),
                vm: row.string("vm"),
                guestSHA256: row.string("guest_sha256"),
                runAt: try row.date("run_at"))
        }
    }

    /// Records how attempts ended, in one statement per worker; returns the ids of
    /// the jobs updated. An outcome whose attempt is no longer the job's
    /// running one is ignored (see the fencing note on the class).
    ///
    /// A result PostgreSQL will not store as jsonb (malformed JSON, or a
    /// `\u0000` escape) would fail the whole batch; so would a completion
    /// that a trigger or constraint refuses (what a completion sets off,
    /// such as releasing dependents, is the schema's, and a refusal there
    /// would otherwise be retried for ever). Then each outcome is written
    /// alone, and such a completion fails its job as `invalid_output`
    /// rather than blocking the others.
    @discardableResult
    public func finish(_ outcomes: [JobOutcome]) throws -> [Int64] {
        guard !outcomes.isEmpty else { return [] }
        do {
            return try write(outcomes)
        } catch let error as PGError where error.refusesAValue && outcomes.count > 1 {
            return try outcomes.flatMap { try finish([$0]) }
        } catch let error as PGError where error.refusesAValue {
            guard case .completed(let id, let attempt, let workerID, _) = outcomes[0],
                case .queryFailed(_, _, let message, _, _) = error
            else { throw error }
            let why = error.isDataException ? "result is not valid JSON for PostgreSQL" : "PostgreSQL refused to record the result"
            return try write([
                .failed(
                    id: id, attempt: attempt, workerID: workerID, kind: JobErrorKind.invalidOutput.rawValue,
                    message: "\(why): \(message)", retryable: false)
            ])
        }
    }

    /// One statement per worker among the outcomes (a worker process's
    /// outcomes are all its own, so one statement). The ids come back in
    /// no particular order.
    private func write(_ outcomes: [JobOutcome]) throws -> [Int64] {
        try Dictionary(grouping: outcomes, by: \.workerID).flatMap { worker, own in try write(own, worker: worker) }
    }

    private func write(_ outcomes: [JobOutcome], worker: String) throws -> [Int64] {
        var ids: [Int64] = [], attempts: [Int] = [], kinds: [String?] = []
        var results: [String?] = [], errorKinds: [String?] = [], messages: [String?] = []
        var retryable: [Bool] = []
        for outcome in outcomes {
            switch outcome {
            case .completed(let id, let attempt, _, let resultJSON):
                ids.append(id); attempts.append(attempt); kinds.append("completed")
                results.append(resultJSON); errorKinds.append(nil); messages.append(nil); retryable.append(false)
            case .failed(let id, let attempt, _, let kind, let message, let canRetry):
                ids.append(id); attempts.append(attempt); kinds.append("failed")
                results.append(nil); errorKinds.append(kind); messages.append(message); retryable.append(canRetry)
            case .cancelled(let id, let attempt, _, let message):
                ids.append(id); attempts.append(attempt); kinds.append("cancelled")
                results.append(nil); errorKinds.append(JobErrorKind.cancelled.rawValue); messages.append(message)
                retryable.append(false)
            }
        }
        let result = try connection.execute(Queries.finish, [
            PGParam.array(ids), PGParam.array(attempts), .text(worker), PGParam.array(kinds),
            PGParam.array(results), PGParam.array(errorKinds), PGParam.array(messages), PGParam.array(retryable),
            PGParam(backoff.baseSeconds), PGParam(backoff.maxSeconds),
        ])
        return try result.rows.map { try $0.required("id", $0.int64) }
    }

    /// Graceful shutdown: hands jobs this worker will not finish back to
    /// `available` with the attempt taken back (or to `cancelled` if that
    /// was requested), and wakes other workers. Returns the ids handed back.
    /// Nothing is handed back unless `worker`'s row is this process's.
    @discardableResult
    public func requeue(_ jobs: [JobAttempt], worker: WorkerInfo) throws -> [Int64] {
        guard !jobs.isEmpty else { return [] }
        let result = try connection.execute(Queries.requeue, [
            .text(worker.id), PGParam.array(jobs.map(\.id)), PGParam.array(jobs.map(\.attempt)),
            .text(worker.instance),
        ])
        return try result.rows.map { try $0.required("id", $0.int64) }
    }

    /// Rescues the running jobs of workers that stopped heartbeating more
    /// than `staleAfter` seconds ago, or have no row: each gets a
    /// `worker_lost` error and is retried with backoff, discarded when out
    /// of attempts, or cancelled when that was requested. Also forgets
    /// workers silent for `forgetAfter` seconds. Safe to run from every
    /// worker at once. Returns how many jobs it rescued.
    @discardableResult
    public func rescue(staleAfter: TimeInterval, forgetAfter: TimeInterval = 3600) throws -> Int {
        let row = try connection.execute(Queries.rescue, [
            .text("worker stopped heartbeating mid-job"),
            PGParam(backoff.baseSeconds), PGParam(backoff.maxSeconds),
            PGParam(staleAfter), PGParam(forgetAfter),
        ]).singleRow()
        return try row.required("rescued", row.int)
    }

    /// At start-up, once registered: rescues the jobs an earlier process
    /// with the same id left running (its heartbeat, now ours, would
    /// otherwise keep them from ever being rescued). Does nothing unless
    /// `worker`'s row is this process's. Returns how many.
    @discardableResult
    public func rescueJobs(ofEarlierWorker worker: WorkerInfo) throws -> Int {
        try connection.execute(Queries.rescueWorker, [
            .text("worker \(worker.id) restarted mid-job"),
            PGParam(backoff.baseSeconds), PGParam(backoff.maxSeconds), .text(worker.id), .text(worker.instance),
        ]).affectedRows
    }

    /// The jobs running under this worker, as the database sees them. After
    /// a lost connection a claim may have committed without its answer
    /// arriving; those jobs show up here and nowhere in the worker.
    public func runningJobs(workerID: String) throws -> [JobAttempt] {
        try attempts(Queries.runningJobs, workerID: workerID)
    }

    /// Running jobs of this worker whose cancellation was requested: the
    /// fallback for a missed hl_cancel notification.
    public func cancelRequests(workerID: String) throws -> [JobAttempt] {
        try attempts(Queries.cancelRequests, workerID: workerID)
    }

    private func attempts(_ query: Query, workerID: String) throws -> [JobAttempt] {
        try connection.execute(query, [.text(workerID)]).rows.map { row in
            JobAttempt(id: try row.required("id", row.int64), attempt: try row.required("attempt", row.int))
        }
    }

    // MARK: Enqueue and inspection

    /// Inserts one job; nil arguments take the column defaults. Returns its id.
    public func enqueue(
        guest: String, function: String, argsJSON: String? = nil, queue: String? = nil,
        priority: Int? = nil, runAt: Date? = nil, maxAttempts: Int? = nil,
        timeoutMs: Int? = nil, memoryMb: Int? = nil, vm: String? = nil
    ) throws -> Int64 {
        let row = try connection.execute(Queries.enqueue, [
            .text(guest), .text(function), PGParam(argsJSON), PGParam(queue), PGParam(priority),
            PGParam(runAt), PGParam(maxAttempts), PGParam(timeoutMs), PGParam(memoryMb), PGParam(vm),
        ]).singleRow()
        return try row.required("id", row.int64)
    }

    /// Jobs per queue and state (`hl.queue_stats`), and the workers whose
    /// heartbeat is younger than `liveWithin` seconds.
    public func status(liveWithin: TimeInterval = 60) throws -> QueueStatus {
        let queues = try connection.execute(Queries.queueStats, []).rows.map { row in
            QueueStat(
                queue: try row.required("queue", row.string),
                state: try row.required("state", row.string),
                count: try row.required("count", row.int),
                oldestRunAt: try row.date("oldest_run_at"))
        }
        let workers = try connection.execute(Queries.liveWorkers, [PGParam(liveWithin)]).rows.map(liveWorker)
        return QueueStatus(queues: queues, workers: workers)
    }

    /// A row of Queries.liveWorkers or Queries.liveWorkerSummary, which
    /// return the same columns.
    func liveWorker(_ row: PGRow) throws -> LiveWorker {
        LiveWorker(
            id: try row.required("id", row.string),
            host: try row.required("host", row.string),
            pid: Int32(try row.required("pid", row.int)),
            startedAt: try row.required("started_at", row.date),
            heartbeatAt: try row.required("heartbeat_at", row.date),
            concurrency: try row.required("concurrency", row.int),
            queues: try row.string("queues").map { try decodeStringArray($0, column: "queues") },
            version: try row.required("version", row.string),
            runningJobs: try row.required("running", row.int))
    }

    /// One job's row, or nil when there is no such id.
    public func job(id: Int64) throws -> JobRecord? {
        guard let row = try connection.execute(Queries.job, [PGParam(id)]).rows.first else { return nil }
        return try JobRecord(row: row, statement: Queries.job.name)
    }

    // MARK: Guests

    /// Stores a guest image under `name`, replacing any earlier one in the
    /// same statement, so readers see the old image or the new, never
    /// neither. Returns the image's SHA-256 (hex), computed by the database.
    /// The caller validates the image first.
    @discardableResult
    /// Stores `image` under `name` with the functions it lists (nil: not
    /// known). Names must not contain a newline (callers pass them escaped).
    public func putGuest(name: String, image: [UInt8], functions: [String]? = nil) throws -> String {
        let list: PGParam = functions.map { .text($0.joined(separator: "\n")) } ?? .null
        let row = try connection.execute(Queries.putGuest, [.text(name), .bytes(image), list]).singleRow()
        return try row.required("sha256", row.string)
    }

    public func guestImage(name: String) throws -> GuestImage? {
        try guest(Queries.guestByName, key: name)
    }

    /// The image with this digest, whichever guest name it is stored under;
    /// nil once every guest with it has been replaced.
    public func guestImage(sha256: String) throws -> GuestImage? {
        try guest(Queries.guestBySHA256, key: sha256)
    }

    public func listGuests() throws -> [GuestSummary] {
        try connection.execute(Queries.listGuests, []).rows.map { row in
            GuestSummary(
                name: try row.required("name", row.string),
                sha256: try row.required("sha256", row.string),
                size: try row.required("size", row.int),
                functions: row.string("functions").map { $0.isEmpty ? [] : $0.split(separator: "\n").map(String.init) },
                createdAt: try row.required("created_at", row.date),
                updatedAt: try row.required("updated_at", row.date))
        }
    }

    // MARK: Operations

    /// Stops every worker claiming from `queue`; running jobs finish.
    /// Returns false when it was paused already.
    @discardableResult
    public func pauseQueue(_ queue: String) throws -> Bool {
        let row = try connection.execute(Queries.pauseQueue, [.text(queue)]).singleRow()
        return try row.required("changed", row.bool)
    }

    /// Lets workers claim from `queue` again (they are woken at once).
    /// Returns false when it was not paused.
    @discardableResult
    public func resumeQueue(_ queue: String) throws -> Bool {
        let row = try connection.execute(Queries.resumeQueue, [.text(queue)]).singleRow()
        return try row.required("changed", row.bool)
    }

    public func pausedQueues() throws -> [String] {
        try connection.execute(Queries.pausedQueues, []).rows.map { try $0.required("name", $0.string) }
    }

    /// Deletes up to `batch` finished jobs past their retention (nil keeps
    /// that kind forever); 0 when another worker holds the pruning lock.
    public func pruneFinished(retainCompleted: TimeInterval?, retainDiscarded: TimeInterval?, batch: Int) throws -> Int {
        let row = try connection.execute(Queries.pruneFinished, [
            retainCompleted.map { PGParam($0) } ?? .null, retainDiscarded.map { PGParam($0) } ?? .null, PGParam(batch),
        ]).singleRow()
        return try row.required("deleted", row.int)
    }

    /// Binary-format result: text columns arrive as their UTF-8 bytes, the
    /// image as raw bytes.
    private func guest(_ query: Query, key: String) throws -> GuestImage? {
        guard let row = try connection.execute(query, [.text(key)]).rows.first else { return nil }
        return GuestImage(
            name: try row.required("name", row.string),
            sha256: try row.required("sha256", row.string),
            image: try row.required("image", row.bytes))
    }

    func decodeStringArray(_ json: String, column: String) throws -> [String] {
        guard let array = try? JSONDecoder().decode([String].self, from: Data(json.utf8)) else {
            throw PGError.unexpectedResult(statement: Queries.liveWorkers.name, reason: "\(column) = \(json)")
        }
        return array
    }
}

extension PGError {
    /// SQLSTATE class 22: the server could not accept a value (bad JSON,
    /// an untranslatable character, an out-of-range number).
    var isDataException: Bool { sqlState?.hasPrefix("22") ?? false }

    /// A data exception, or class 23: a constraint or trigger refused the
    /// row. Writing the same values again fails the same way.
    public var refusesAValue: Bool { isDataException || (sqlState?.hasPrefix("23") ?? false) }
}
