import Foundation
import JobQueue
import Logging
import Sandbox

/// A claimed job with its guest looked up: what an execution slot runs.
struct PreparedJob: Sendable {
    var job: ClaimedJob
    /// nil when the job names no registered guest.
    var program: Result<GuestProgram, GuestCache.LookupError>
    var claimedAt: Date
}

/// What became of a job in this worker.
enum RunOutcome: Sendable {
    /// Write this to the job row.
    case finished(JobOutcome)
    /// The worker is shutting down and did not finish the job: hand it back.
    case handBack(JobAttempt)
}

/// The one place where jobs meet micro-VMs: turns a claimed job into a
/// sandbox call under that job's limits, and the call's end into an outcome.
final class JobRunner: @unchecked Sendable {
    let configuration: WorkerConfiguration
    let fresh: FreshSandboxFactory
    let recycled: RecycledSandboxPool
    let metrics: WorkerMetrics
    let logger: Logger
    /// Guest host calls about the job (enqueue, progress); nil answers
    /// them as unknown functions.
    let children: ChildCompleter?
    let progress: ProgressReporter?

    init(configuration: WorkerConfiguration, fresh: FreshSandboxFactory, recycled: RecycledSandboxPool,
         metrics: WorkerMetrics, logger: Logger, children: ChildCompleter? = nil, progress: ProgressReporter? = nil) {
        self.children = children
        self.progress = progress
        self.configuration = configuration
        self.fresh = fresh
        self.recycled = recycled
        self.metrics = metrics
        self.logger = logger
    }

    private func inProcessEcho(_ job: ClaimedJob) throws -> String {
        guard job.function == "echo" else {
            throw Rejection(kind: "unknown_function", message: "without a VM only echo can run")
        }
        return job.argsJSON
    }

    /// The worker is shutting down before the job started.
    struct HandBack: Error {}

    /// A job-level failure found before any VM runs.
    struct Rejection: Error {
        var kind: String
        var message: String
    }

    func run(_ prepared: PreparedJob, control: SlotControl) -> RunOutcome {
        let job = prepared.job
        let started = Date()
        // From when the job was due to when it starts: the backlog a user
        // feels, not just the moment between claim and slot.
        metrics.queueWait.recordSeconds(max(0, started.timeIntervalSince(job.runAt ?? prepared.claimedAt)))
        let outcome = self.outcome(of: prepared, control: control)
        let duration = Date().timeIntervalSince(started)
        metrics.runTime.recordSeconds(duration)
        metrics.record(outcome, queue: UntrustedText.escape(job.queue, maxBytes: 128),
                       guest: UntrustedText.escape(job.guest, maxBytes: 128))
        log(outcome, of: job, duration: duration)
        return outcome
    }

    /// One line per outcome: a completion at debug (the job's row and the
    /// metrics record every one; at thousands of jobs a second a line each
    /// would cost more than the job), a failure at warning, a cancellation
    /// or hand-back at info. The fields are built only for a line that is
    /// written.
    private func log(_ outcome: RunOutcome, of job: ClaimedJob, duration: TimeInterval) {
        let level: Logger.Level
        switch outcome {
        case .finished(.completed): level = .debug
        case .finished(.failed): level = .warning
        case .finished(.cancelled), .handBack: level = .info
        }
        guard logger.logLevel <= level else { return }
        var metadata = Self.logMetadata(job)
        metadata["duration_ms"] = .stringConvertible(Int((duration * 1000).rounded()))
        switch outcome {
        case .finished(.completed):
            logger.debug("job completed", metadata: metadata)
        case .finished(.failed(_, _, _, let kind, let message, let retryable)):
            metadata["error_kind"] = "\(kind)"
            metadata["error"] = "\(message)"
            if retryable && job.attempt < job.maxAttempts {
                // The finish draws the exact time with jitter; this is its range.
                let nominal = min(pow(2, Double(min(job.attempt, 30))) * configuration.backoff.baseSeconds,
                                  configuration.backoff.maxSeconds)
                metadata["retry_in_s_min"] = .stringConvertible(nominal * 0.5)
                metadata["retry_in_s_max"] = .stringConvertible(nominal * 1.5)
                logger.warning("job failed; retrying in \(Self.seconds(nominal * 0.5)) to \(Self.seconds(nominal * 1.5))",
                               metadata: metadata)
            } else {
                let why = retryable ? "no attempts left" : "a retry cannot fix \(kind)"
                logger.warning("job failed and was discarded (\(why))", metadata: metadata)
            }
        case .finished(.cancelled):
            metadata["error_kind"] = "cancelled"
            logger.info("job cancelled", metadata: metadata)
        case .handBack:
            logger.info("job handed back at shutdown", metadata: metadata)
        }
    }

    /// The fields of every log line about a job, the guest's own lines
    /// included. Queue, guest and function names are whatever the job's
    /// submitter wrote; shown escaped, like the guest's own text.
    static func logMetadata(_ job: ClaimedJob) -> Logger.Metadata {
        ["job": .stringConvertible(job.id), "attempt": .stringConvertible(job.attempt),
         "queue": "\(UntrustedText.escape(job.queue))", "guest": "\(UntrustedText.escape(job.guest))",
         "function": "\(UntrustedText.escape(job.function))"]
    }

    private static func seconds(_ value: Double) -> String {
        value < 10 ? String(format: "%.1f s", value) : "\(Int(value.rounded())) s"
    }

    /// Runs the job and says how it ended; every failure becomes an outcome.
    /// Failure messages can carry the guest's text or the submitter's (a
    /// guest name, a vm value), so each is escaped before it reaches the row.
    private func outcome(of prepared: PreparedJob, control: SlotControl) -> RunOutcome {
        let job = prepared.job
        let workerID = configuration.workerID
        func failed(_ kind: String, _ message: String, retryable: Bool) -> RunOutcome {
            .finished(.failed(id: job.id, attempt: job.attempt, workerID: workerID, kind: kind,
                              message: UntrustedText.escape(message), retryable: retryable))
        }
        do {
            let (program, sandboxConfiguration, limits, mode) = try plan(prepared)
            if mode == .novm {
                return .finished(.completed(id: job.id, attempt: job.attempt, workerID: workerID,
                                            resultJSON: try inProcessEcho(job)))
            }
            return try runInSandbox(job, program: program, configuration: sandboxConfiguration, limits: limits,
                                    mode: mode, control: control)
        } catch is HandBack {
            return .handBack(job.attemptRef)
        } catch let rejection as Rejection {
            return failed(rejection.kind, rejection.message, retryable: false)
        } catch SandboxError.cancelled {
            return .finished(.cancelled(id: job.id, attempt: job.attempt, workerID: workerID,
                                        message: "cancelled while running"))
        } catch let error as SandboxError {
            if case .host = error {
                logger.error("host failure running a job",
                             metadata: Self.logMetadata(job).merging(["error": "\(UntrustedText.escape(error.description))"]) { $1 })
            }
            return failed(error.kind, error.message + clampNote(job, kind: error.kind), retryable: error.isRetryable)
        } catch {
            return failed("host_error", "\(error)", retryable: true)
        }
    }

    /// One call in a fresh or recycled sandbox, which goes back to its
    /// factory or pool whatever happens.
    private func runInSandbox(_ job: ClaimedJob, program: GuestProgram, configuration sandboxConfiguration: SandboxConfiguration,
                              limits: CallLimits, mode: WorkerConfiguration.VMMode, control: SlotControl) throws -> RunOutcome {
        let sandbox = try (mode == .recycled ? recycled.take(program, configuration: sandboxConfiguration)
                                             : fresh.take(program, configuration: sandboxConfiguration))
        metrics.vmsAcquired(mode)
        defer {
            metrics.vmReleased(mode)
            if mode == .recycled {
                let resetStart = Date()
                recycled.giveBack(sandbox)
                metrics.resetTime.recordSeconds(Date().timeIntervalSince(resetStart))
            } else {
                fresh.discard(sandbox)
            }
        }
        switch control.begin(job.id, sandbox: sandbox) {
        case .run: break
        case .cancelled: throw SandboxError.cancelled
        case .shuttingDown: throw HandBack()
        }
        let hostCalls = children.map { _ in JobHostCalls(attempt: job.attemptRef, progress: progress) }
        let result = Result { () throws(SandboxError) -> [UInt8] in
            try sandbox.call(job.function, input: Array(job.argsJSON.utf8), limits: limits, hostCalls: hostCalls,
                             logMetadata: Self.logMetadata(job))
        }
        let stoppedForShutdown = control.end()
        switch result {
        case .success(let bytes):
            guard JSONValidator.isValid(bytes) else {
                throw SandboxError.invalidOutput("the guest returned \(bytes.count) bytes that are not JSON")
            }
            let resultJSON = String(decoding: bytes, as: UTF8.self)
            if let hostCalls, let children, !hostCalls.children.isEmpty {
                return .finished(children.complete(job, resultJSON: resultJSON, children: hostCalls.children))
            }
            return .finished(.completed(id: job.id, attempt: job.attempt, workerID: configuration.workerID,
                                        resultJSON: resultJSON))
        case .failure(.cancelled) where stoppedForShutdown:
            return .handBack(job.attemptRef)
        case .failure(let error):
            throw error
        }
    }

    /// When a failure may be due to a limit this worker lowered (a job that
    /// asked for more than --max-timeout-ms or --max-memory-mb), says so in
    /// its error message, which is what the job's row records.
    func clampNote(_ job: ClaimedJob, kind: String) -> String {
        switch kind {
        case "timeout":
            guard let asked = job.timeoutMs, asked > configuration.maxTimeoutMilliseconds else { return "" }
            return " (timeout_ms \(asked) was clamped to this worker's --max-timeout-ms \(configuration.maxTimeoutMilliseconds))"
        case "out_of_memory":
            guard let asked = job.memoryMb, asked > configuration.maxMemoryMB else { return "" }
            return " (memory_mb \(asked) was clamped to this worker's --max-memory-mb \(configuration.maxMemoryMB))"
        default:
            return ""
        }
    }

    /// Checks a job's row and works out what to run it in. Limits above the
    /// worker's maximums are clamped; nonsense is a rejection.
    private func plan(_ prepared: PreparedJob) throws -> (GuestProgram, SandboxConfiguration, CallLimits, WorkerConfiguration.VMMode) {
        let job = prepared.job
        let program: GuestProgram
        switch prepared.program {
        case .success(let found): program = found
        case .failure(.notFound):
            throw Rejection(kind: "unknown_guest", message: "no guest named \(job.guest) is registered")
        case .failure(.invalid(let error)):
            throw Rejection(kind: error.kind, message: "guest \(job.guest): \(error.message)")
        }
        guard job.argsIsObject else {
            throw Rejection(kind: "invalid_job", message: "args must be a JSON object")
        }
        let timeout = min(job.timeoutMs ?? configuration.defaultTimeoutMilliseconds, configuration.maxTimeoutMilliseconds)
        let memory = min(job.memoryMb ?? configuration.defaultMemoryMB, configuration.maxMemoryMB)
        guard timeout >= 1 else { throw Rejection(kind: "invalid_job", message: "timeout_ms must be positive") }
        guard memory >= SandboxConfiguration.minimumMemoryMB else {
            throw Rejection(kind: "invalid_job", message: "memory_mb must be at least \(SandboxConfiguration.minimumMemoryMB)")
        }
        let mode: WorkerConfiguration.VMMode
        if configuration.defaultVM == .novm {
            mode = .novm
        } else if let vm = job.vm {
            guard let chosen = WorkerConfiguration.VMMode(rawValue: vm), chosen != .novm else {
                throw Rejection(kind: "invalid_job", message: "vm must be 'fresh' or 'recycled', not '\(vm)'")
            }
            mode = chosen
        } else {
            mode = configuration.defaultVM
        }
        let limits = CallLimits(timeoutMilliseconds: timeout, maxOutputBytes: configuration.maxOutputBytes,
                                maxHostCalls: configuration.maxHostCalls, maxLogBytes: configuration.maxGuestLogBytes)
        return (program, SandboxConfiguration(memoryMB: memory), limits, mode)
    }
}

/// What other threads may do to the job an execution slot is running:
/// cancel it (the user asked) or interrupt it (the worker is shutting down).
final class SlotControl: @unchecked Sendable {
    enum Start { case run, cancelled, shuttingDown }

    private let lock = NSLock()
    private let cancellations: CancellationRegistry
    private var jobID: Int64?
    private var sandbox: Sandbox?
    private var shuttingDown = false

    init(cancellations: CancellationRegistry) {
        self.cancellations = cancellations
    }

    /// Marks `jobID` as running in `sandbox`, unless it was cancelled before
    /// it started or the worker is shutting down.
    func begin(_ jobID: Int64, sandbox: Sandbox) -> Start {
        lock.lock()
        defer { lock.unlock() }
        if shuttingDown { return .shuttingDown }
        if cancellations.take(jobID) { return .cancelled }
        self.jobID = jobID
        self.sandbox = sandbox
        return .run
    }

    /// Clears the running job; true if the worker stopped it for shutdown.
    @discardableResult
    func end() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        jobID = nil
        sandbox = nil
        return shuttingDown
    }

    /// Stops the job if it runs here; returns whether it did.
    func cancel(_ id: Int64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard jobID == id, let sandbox else { return false }
        sandbox.stop(.cancelled)
        return true
    }

    func interruptForShutdown() {
        lock.lock()
        shuttingDown = true
        sandbox?.stop(.cancelled)
        lock.unlock()
    }
}

/// Cancellations that arrived for jobs this worker holds but has not started.
final class CancellationRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: Set<Int64> = []

    func add(_ id: Int64) {
        lock.lock()
        ids.insert(id)
        lock.unlock()
    }

    /// Whether `id` was cancelled; forgets it.
    func take(_ id: Int64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return ids.remove(id) != nil
    }
}
