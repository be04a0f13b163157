import Foundation
import JobQueue
import Sandbox

/// How a worker process runs. Every field has a named default; `validate()`
/// refuses combinations that cannot work, with a message naming the flag.
public struct WorkerConfiguration: Sendable {
    public enum VMMode: String, Sendable, CaseIterable {
        /// A new micro-VM per job, built ahead of demand and torn down after.
        case fresh
        /// A pooled micro-VM reset to its snapshot after every job.
        case recycled
        /// No VM and no isolation: `echo` answered in-process. Only the
        /// benchmark uses it, as the baseline for the queue's own cost.
        case novm
    }

    /// Execution slots: jobs run at once, each on its own thread and vCPU.
    public var concurrency = 8
    /// nil: every queue.
    public var queues: [String]?
    /// A postgres:// URL or key=value string; nil: libpq's PG* defaults.
    public var databaseURL: String?
    public var workerID = WorkerConfiguration.defaultWorkerID()
    public var defaultVM = VMMode.fresh
    public var defaultTimeoutMilliseconds = CallLimits.defaultTimeoutMilliseconds
    public var defaultMemoryMB = SandboxConfiguration.defaultMemoryMB
    public var maxTimeoutMilliseconds = 15 * 60_000
    public var maxMemoryMB = 512
    public var maxOutputBytes = 1 << 20 - 16
    public var maxHostCalls = 10_000
    /// Guest log bytes one job's call may write before the rest of its
    /// lines are dropped (see `CallLimits.maxLogBytes`).
    public var maxGuestLogBytes = CallLimits.defaultMaxLogBytes
    /// How long a running job may take to finish after SIGTERM before it is
    /// stopped and handed back to the queue.
    public var shutdownGrace: TimeInterval = 25
    public var heartbeatInterval: TimeInterval = 2
    /// A worker silent this long is presumed dead and its jobs are rescued.
    public var rescueAfter: TimeInterval = 30
    public var rescueInterval: TimeInterval = 5
    /// The fallback poll when no notification arrives.
    public var pollInterval: TimeInterval = 1
    /// Most jobs one claim takes.
    public var claimBatch = 100
    /// Jobs claimed ahead of the free slots, waiting in the worker for one
    /// (nil: adaptive, see `PrefetchDepth.standard`; 0: claim for free
    /// slots only). Refilled once half of it has started, so one claim
    /// serves several jobs. A prefetched job counts as claimed: its
    /// `attempted_at` is set and its attempt taken; at shutdown it is handed
    /// back unstarted.
    public var prefetch: Int?
    /// The prefetch depth in effect.
    var prefetchDepth: PrefetchDepth { prefetch.map { .fixed($0) } ?? .standard(slots: concurrency) }
    public var backoff = Backoff.standard
    /// Threads building fresh VMs ahead of demand in this process.
    public var vmCreators = 1
    /// Threads building VMs at once on this host, across all processes.
    public var vmCreationSlotsPerHost = 2
    /// Fresh VMs kept built per (guest version, memory size).
    public var freshVMStock: Int?
    /// Recycled VMs kept idle, all guests together (default: concurrency).
    public var recycledPoolCapacity: Int?
    public var recycledIdleLifetime: TimeInterval = 60
    /// Serve /metrics and /healthz on this port (nil: no server).
    public var metricsPort: Int?
    public var metricsHost = "0.0.0.0"
    /// Completed and cancelled jobs are deleted this long after finishing
    /// (nil: kept forever).
    public var retainCompleted: TimeInterval? = 24 * 3600
    /// Discarded jobs are deleted this long after finishing (nil: forever).
    public var retainDiscarded: TimeInterval? = 7 * 24 * 3600
    public var pruneInterval: TimeInterval = 60
    /// Seconds between reads of hl.queue_summary for the per-queue gauges,
    /// by the one worker holding the lease.
    public var queueMetricsInterval: TimeInterval = 15
    /// Rows one pruning statement deletes: small, so locks stay short.
    public var pruneBatch = 1000

    public init() {}

    /// host-pid-random: unique per process, also where every process is
    /// pid 1 of its own container on one host name.
    public static func defaultWorkerID() -> String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count)
        let host = String(String(cString: name).prefix(100))
        return "\(host)-\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
    }

    public static let namePattern = try! NSRegularExpression(pattern: "^[A-Za-z0-9_.:-]{1,128}$")

    public func validate() throws {
        func fail(_ message: String) -> WorkerError { .invalidConfiguration(message) }
        guard (1...1024).contains(concurrency) else { throw fail("--concurrency must be 1...1024, not \(concurrency)") }
        if let queues {
            guard !queues.isEmpty else { throw fail("--queues needs at least one queue name") }
            for queue in queues where !Self.isName(queue) {
                throw fail("--queues: \"\(queue)\" is not a queue name (letters, digits, _ . : -)")
            }
        }
        guard Self.isName(workerID) else { throw fail("--worker-id \"\(workerID)\" is not a valid id (letters, digits, _ . : -)") }
        let memoryRange = SandboxConfiguration.minimumMemoryMB...SandboxConfiguration.absoluteMaximumMemoryMB
        guard memoryRange.contains(maxMemoryMB) else { throw fail("--max-memory-mb must be in \(memoryRange)") }
        guard (SandboxConfiguration.minimumMemoryMB...maxMemoryMB).contains(defaultMemoryMB) else {
            throw fail("--default-memory-mb must be in \(SandboxConfiguration.minimumMemoryMB)...\(maxMemoryMB) (--max-memory-mb)")
        }
        guard (1...CallLimits.maximumTimeoutMilliseconds).contains(maxTimeoutMilliseconds) else {
            throw fail("--max-timeout-ms must be in 1...\(CallLimits.maximumTimeoutMilliseconds)")
        }
        guard (1...maxTimeoutMilliseconds).contains(defaultTimeoutMilliseconds) else {
            throw fail("--default-timeout-ms must be in 1...\(maxTimeoutMilliseconds) (--max-timeout-ms)")
        }
        guard shutdownGrace >= 0, heartbeatInterval > 0, pollInterval > 0, rescueInterval > 0 else {
            throw fail("intervals must be positive")
        }
        guard rescueAfter > heartbeatInterval * 2 else {
            throw fail("--rescue-after must be more than twice the heartbeat interval")
        }
        guard maxGuestLogBytes >= 0 else { throw fail("--max-guest-log-bytes must not be negative") }
        if let metricsPort, !(0...65535).contains(metricsPort) {
            throw fail("--metrics-port must be 0...65535")
        }
        if let retainCompleted, retainCompleted < 0 { throw fail("--retain-completed must not be negative") }
        if let retainDiscarded, retainDiscarded < 0 { throw fail("--retain-discarded must not be negative") }
        guard pruneInterval > 0, (1...100_000).contains(pruneBatch) else {
            throw fail("the prune interval must be positive and the batch 1...100000")
        }
        if let prefetch, !(0...1000).contains(prefetch) { throw fail("--prefetch must be 0...1000") }
        guard (1...10_000).contains(claimBatch), vmCreators >= 1, vmCreationSlotsPerHost >= 1 else {
            throw fail("claim batch, VM creators and creation slots must be positive")
        }
    }

    static func isName(_ text: String) -> Bool {
        namePattern.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }
}

public enum WorkerError: Error, CustomStringConvertible {
    case invalidConfiguration(String)
    case kvmUnavailable(String)
    /// Another live process registered this worker id: two processes under
    /// one id would take each other's running jobs for strays.
    case workerIDInUse(id: String, host: String, pid: Int32, silentFor: Double, rescueAfter: TimeInterval)
    /// Another process took this worker id over while this one was silent;
    /// this one's jobs were rescued, so it stopped.
    case workerIDTakenOver(id: String, host: String, pid: Int32)
    /// The database cannot be used, and waiting will not change that
    /// (authentication, a missing database, a missing or older schema).
    case databaseUnusable(String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let message): return message
        case .kvmUnavailable(let message): return message
        case .workerIDInUse(let id, let host, let pid, let silentFor, let rescueAfter):
            return "--worker-id \(id) is in use by a live worker (pid \(pid) on \(host), heartbeat "
                + "\(String(format: "%.1f", silentFor)) s ago): give this process another --worker-id or leave "
                + "the flag out for a unique one; the id frees when that worker stops, or \(Int(rescueAfter)) s "
                + "(--rescue-after) after its last heartbeat if it died"
        case .workerIDTakenOver(let id, let host, let pid):
            return "worker id \(id) was taken over by pid \(pid) on \(host) while this process was silent past "
                + "--rescue-after, and its jobs were rescued; stopped. Give each process its own --worker-id"
        case .databaseUnusable(let message): return message
        }
    }
}
