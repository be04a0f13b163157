import Foundation

/// The states of `hl.jobs.state`.
public enum JobState: String, Sendable, CaseIterable {
    /// Waiting for the jobs in its `depends_on` to complete.
    case pending
    case available, running, retryable, completed, discarded, cancelled
}

/// The `kind` of an entry in a job's `errors`. Dashboards group by these,
/// so they are part of the public interface.
public enum JobErrorKind: String, Sendable, CaseIterable {
    case timeout
    case outOfMemory = "out_of_memory"
    case guestCrash = "guest_crash"
    case guestError = "guest_error"
    /// The guest ended the call with a final error: discarded, never retried.
    case guestFinalError = "guest_final_error"
    /// The guest's init failed when its VM was built (retried unless init
    /// itself ended with a final error).
    case initFailed = "init_failed"
    case invalidOutput = "invalid_output"
    case outputTooLarge = "output_too_large"
    case unknownGuest = "unknown_guest"
    case unknownFunction = "unknown_function"
    case invalidJob = "invalid_job"
    case workerLost = "worker_lost"
    case cancelled
    /// A job it depended on ended discarded or cancelled.
    case dependencyFailed = "dependency_failed"
}

/// One attempt of one job: what fences every write a worker makes.
public struct JobAttempt: Sendable, Hashable {
    public var id: Int64
    public var attempt: Int

    public init(id: Int64, attempt: Int) {
        self.id = id
        self.attempt = attempt
    }
}

/// A row of `hl.workers`, as a worker registers itself.
public struct WorkerInfo: Sendable, Equatable {
    public var id: String
    public var host: String
    public var pid: Int32
    public var concurrency: Int
    /// nil: every queue.
    public var queues: [String]?
    public var version: String
    /// Random per process: tells this process apart from any other that
    /// uses, or used, the same id.
    public var instance: String

    public init(id: String, host: String, pid: Int32, concurrency: Int, queues: [String]?, version: String,
                instance: String = WorkerInfo.newInstance()) {
        self.id = id
        self.host = host
        self.pid = pid
        self.concurrency = concurrency
        self.queues = queues
        self.version = version
        self.instance = instance
    }

    /// 128 random bits in hex.
    public static func newInstance() -> String {
        (0..<2).map { _ in
            let hex = String(UInt64.random(in: 0...UInt64.max), radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }
}

/// What registering a worker id came to.
public enum WorkerRegistration: Sendable, Equatable {
    /// The id is this process's now.
    case registered
    /// Another process holds the id and heartbeated `silentFor` seconds ago.
    case heldByLiveWorker(host: String, pid: Int32, silentFor: Double)
}

/// What a heartbeat came to.
public enum HeartbeatOutcome: Sendable, Equatable {
    case beating
    /// The row was gone (forgotten after a long silence) or had gone stale
    /// under another process: it is this process's again. Its running jobs
    /// may have been rescued meanwhile.
    case registeredAgain
    /// Another live process holds the id: it took it over while this one
    /// was silent, and this one's jobs were rescued.
    case takenOver(host: String, pid: Int32)
}

/// A job just claimed: it is `running` under `attempt` for this worker.
public struct ClaimedJob: Sendable, Equatable {
    public var id: Int64
    public var queue: String
    public var guest: String
    public var function: String
    /// The args column as JSON text, whatever its type.
    public var argsJSON: String
    /// Whether args is a JSON object; a job whose args are not cannot run.
    public var argsIsObject: Bool
    /// This attempt's number, 1 for the first run.
    public var attempt: Int
    public var maxAttempts: Int
    /// nil: the worker's default.
    public var timeoutMs: Int?
    public var memoryMb: Int?
    /// "fresh", "recycled", or nil for the worker's default.
    public var vm: String?
    /// The digest of the guest's current image; nil when no guest has that name.
    public var guestSHA256: String?
    /// When the job was due (its run_at), for the queue-wait metric; nil
    /// when the claim statement does not return it.
    public var runAt: Date? = nil

    public var attemptRef: JobAttempt { JobAttempt(id: id, attempt: attempt) }
}

/// How one attempt ended, for `JobStore.finish`.
public enum JobOutcome: Sendable, Equatable {
    /// Stores `resultJSON` and ends the job completed.
    case completed(id: Int64, attempt: Int, workerID: String, resultJSON: String)
    /// Appends an error; retries with backoff when `retryable` and attempts
    /// remain, else ends the job discarded.
    case failed(id: Int64, attempt: Int, workerID: String, kind: String, message: String, retryable: Bool)
    /// Appends a `cancelled` error and ends the job cancelled.
    case cancelled(id: Int64, attempt: Int, workerID: String, message: String)

    public var id: Int64 {
        switch self {
        case .completed(let id, _, _, _), .failed(let id, _, _, _, _, _), .cancelled(let id, _, _, _): return id
        }
    }

    public var workerID: String {
        switch self {
        case .completed(_, _, let worker, _), .failed(_, _, let worker, _, _, _), .cancelled(_, _, let worker, _):
            return worker
        }
    }
}

/// How long to wait before retrying a failed job: `baseSeconds × 2^attempt`,
/// at most `maxSeconds`, times a random factor in [0.5, 1.5).
public struct Backoff: Sendable, Equatable {
    public var baseSeconds: Double
    public var maxSeconds: Double

    /// 2 s after the first failure, 4 s, 8 s, ... up to an hour.
    public static let standard = Backoff(baseSeconds: 1, maxSeconds: 3600)

    public init(baseSeconds: Double, maxSeconds: Double) {
        precondition(baseSeconds >= 0 && maxSeconds >= 0, "backoff must not be negative")
        self.baseSeconds = baseSeconds
        self.maxSeconds = maxSeconds
    }
}

/// A guest image from the registry.
public struct GuestImage: Sendable, Equatable {
    public var name: String
    /// Lower-case hex SHA-256 of `image`.
    public var sha256: String
    public var image: [UInt8]

    public init(name: String, sha256: String, image: [UInt8]) {
        self.name = name
        self.sha256 = sha256
        self.image = image
    }
}

/// A guest as `guest list` shows it, without its image.
public struct GuestSummary: Sendable, Equatable {
    public var name: String
    public var sha256: String
    public var size: Int
    /// As the guest listed them at `guest add`; nil when not known.
    public var functions: [String]?
    public var createdAt: Date
    public var updatedAt: Date
}

/// A row of `hl.queue_stats`.
public struct QueueStat: Sendable, Equatable {
    public var queue: String
    public var state: String
    public var count: Int
    public var oldestRunAt: Date?
}

/// A worker whose heartbeat is recent.
public struct LiveWorker: Sendable, Equatable {
    public var id: String
    public var host: String
    public var pid: Int32
    public var startedAt: Date
    public var heartbeatAt: Date
    public var concurrency: Int
    public var queues: [String]?
    public var version: String
    public var runningJobs: Int
}

/// What `hl-worker status` prints.
public struct QueueStatus: Sendable, Equatable {
    public var queues: [QueueStat]
    public var workers: [LiveWorker]
}

/// A job row, for inspection (the CLI, tests). Timestamps it does not
/// carry are for dashboards to read from the table.
public struct JobRecord: Sendable, Equatable {
    public var id: Int64
    public var queue: String
    public var guest: String
    public var function: String
    public var argsJSON: String
    public var priority: Int
    public var state: JobState
    public var attempt: Int
    public var maxAttempts: Int
    public var resultJSON: String?
    /// The errors array as JSON text.
    public var errorsJSON: String
    public var runAt: Date
    public var finishedAt: Date?
    public var attemptedBy: String?
}
