import Foundation
import JobQueue
import Logging
import Sandbox

/// The worker's housekeeping, on its own thread and connection: the
/// heartbeat that keeps this worker's jobs its own, the rescuer that hands
/// back the jobs of workers that went silent (kill -9, lost host), the check
/// for this worker's own strays (jobs whose claim committed but whose answer
/// was lost with the connection), and the pruner of old finished jobs (one
/// worker at a time across the cluster, in small batches).
final class Maintenance: @unchecked Sendable {
    private let configuration: WorkerConfiguration
    private let info: WorkerInfo
    private let session: DatabaseSession
    private let executor: JobExecutor
    private let completer: JobCompleter
    private let recycled: RecycledSandboxPool
    private let fresh: FreshSandboxFactory
    private let metrics: WorkerMetrics
    private let logger: Logger
    private let thread = ServiceThread()
    /// Guards `lastHeartbeat`, which the health check reads.
    private let lock = NSLock()
    private var lastHeartbeat: Date?
    /// `suspectedStrays`, `takenOver` and `leaseBackend` belong to the
    /// maintenance thread alone.
    private var suspectedStrays: Set<JobAttempt> = []
    /// Set once another process has taken this worker's id over.
    private var takenOver = false
    /// The server process (backend PID) of the connection holding the
    /// queue metrics lease; nil when this worker holds none. Only the
    /// maintenance thread touches it.
    private var leaseBackend: Int32?
    /// Told when another process has taken this worker's id over.
    private let onTakenOver: @Sendable (WorkerError) -> Void

    init(configuration: WorkerConfiguration, info: WorkerInfo, session: DatabaseSession, executor: JobExecutor,
         completer: JobCompleter, fresh: FreshSandboxFactory, recycled: RecycledSandboxPool,
         metrics: WorkerMetrics, logger: Logger, onTakenOver: @escaping @Sendable (WorkerError) -> Void) {
        self.onTakenOver = onTakenOver
        self.fresh = fresh
        self.configuration = configuration
        self.info = info
        self.session = session
        self.executor = executor
        self.completer = completer
        self.recycled = recycled
        self.metrics = metrics
        self.logger = logger
    }

    /// Whether the last heartbeat was written recently enough that no other
    /// worker would consider this one dead.
    var isHealthy: Bool {
        guard let lastHeartbeat = lock.withLock({ lastHeartbeat }) else { return false }
        return Date().timeIntervalSince(lastHeartbeat) < min(configuration.rescueAfter / 2, configuration.heartbeatInterval * 3)
    }

    func start() {
        thread.start(name: "hl-maintenance") { [unowned self] in loop() }
    }

    func stop() {
        thread.stop()
    }

    private func loop() {
        var nextRescue = Date()
        var nextQueueRead = Date()
        var nextPrune = Date(timeIntervalSinceNow: configuration.pruneInterval * Double.random(in: 0.1...1))
        while true {
            heartbeat()
            metrics.recordLogDrops()
            if !takenOver && Date() >= nextRescue {
                rescue()
                recycled.evictIdle()
                nextRescue = Date(timeIntervalSinceNow: configuration.rescueInterval)
            }
            if Date() >= nextPrune {
                prune()
                nextPrune = Date(timeIntervalSinceNow: configuration.pruneInterval)
            }
            if !takenOver && Date() >= nextQueueRead {
                readQueueMetrics()
                nextQueueRead = Date(timeIntervalSinceNow: configuration.queueMetricsInterval)
            }
            guard thread.pause(configuration.heartbeatInterval) else { return }
        }
    }

    private func heartbeat() {
        do {
            guard !takenOver else { return }
            switch try session.run({ store in try store.heartbeat(info, liveWithin: configuration.rescueAfter) }) {
            case .beating:
                break
            case .registeredAgain:
                logger.warning("this worker's row was gone or stale (silent too long); registered again")
            case .takenOver(let host, let pid):
                // Its jobs were rescued and another process runs under its
                // id: it must neither heartbeat for nor hand back anything.
                takenOver = true
                onTakenOver(.workerIDTakenOver(id: info.id, host: host, pid: pid))
                return
            }
            lock.withLock { lastHeartbeat = Date() }
            metrics.busySlots.record(executor.busySlots)
            metrics.recordVMs(freshCreated: fresh.created, freshStock: fresh.stockCount,
                              recycledCreated: recycled.created, recycledIdle: recycled.idleCount)
            if let stats = ProcessStats.current() { metrics.recordProcess(stats) }
        } catch {
            logger.warning("heartbeat failed", metadata: ["error": "\(error)"])
        }
    }

    private func rescue() {
        do {
            let rescued = try session.run { store in try store.rescue(staleAfter: configuration.rescueAfter) }
            if rescued > 0 {
                metrics.rescued.increment(by: rescued)
                logger.info("rescued jobs of silent workers", metadata: ["count": .stringConvertible(rescued)])
            }
            try handBackStrays()
        } catch {
            logger.warning("rescue failed", metadata: ["error": "\(error)"])
        }
    }

    /// The per-queue gauges, read from hl.queue_summary by one worker at a
    /// time: the one holding a session advisory lock, which it keeps until
    /// its connection ends (then another worker takes over within an
    /// interval). The others export no queue gauges, so summing over
    /// instances counts each job once.
    private func readQueueMetrics() {
        do {
            let summaries: [QueueSummary]? = try session.run { store in
                let backend = store.connection.backendPID
                if leaseBackend != backend {
                    guard try store.tryQueueMetricsLease() else { return nil }
                    leaseBackend = backend
                }
                return try store.queueSummary()
            }
            if let summaries {
                metrics.recordQueues(summaries)
            } else {
                metrics.dropQueueGauges()
            }
        } catch {
            leaseBackend = nil
            metrics.dropQueueGauges()
            logger.warning("reading the queue metrics failed", metadata: ["error": "\(error)"])
        }
    }

    /// Deletes finished jobs past retention, a batch per statement, a
    /// bounded number of batches per round so the heartbeat is not delayed.
    private func prune() {
        guard configuration.retainCompleted != nil || configuration.retainDiscarded != nil else { return }
        do {
            var total = 0
            for _ in 0..<10 {
                let deleted = try session.run { store in
                    try store.pruneFinished(retainCompleted: configuration.retainCompleted,
                                            retainDiscarded: configuration.retainDiscarded,
                                            batch: configuration.pruneBatch)
                }
                total += deleted
                if deleted < configuration.pruneBatch { break }
            }
            if total > 0 {
                metrics.pruned.increment(by: total)
                logger.info("deleted finished jobs past retention", metadata: ["count": .stringConvertible(total)])
            }
        } catch {
            logger.warning("pruning failed", metadata: ["error": "\(error)"])
        }
    }

    /// Jobs the database says run here that this process does not hold are
    /// handed back once seen twice in a row (a claim in flight is seen once).
    private func handBackStrays() throws {
        let running = try session.run { store in try store.runningJobs(workerID: configuration.workerID) }
        let held = executor.heldJobIDs.union(completer.pendingIDs)
        let strays = Set(running.filter { !held.contains($0.id) })
        let confirmed = strays.intersection(suspectedStrays)
        suspectedStrays = strays.subtracting(confirmed)
        if !confirmed.isEmpty {
            let handed = try session.run { store in try store.requeue(Array(confirmed), worker: info) }
            logger.warning("handed back jobs whose claim answer was lost", metadata: ["count": .stringConvertible(handed.count)])
        }
    }
}
