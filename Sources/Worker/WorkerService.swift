import Dispatch
import Foundation
import JobQueue
import Logging
import MicroVM
import Prometheus
import Sandbox

/// The hl-worker service: claims jobs from PostgreSQL and runs each in a
/// micro-VM, with N execution slots, a producer, a completer and
/// housekeeping, each on its own thread. `run()` blocks until a stop is
/// requested (SIGTERM, SIGINT or `requestStop()`), then drains: it stops
/// claiming, lets running jobs finish within the grace period, hands the
/// rest back to the queue, writes every outcome, and returns.
public final class WorkerService: @unchecked Sendable {
    public let configuration: WorkerConfiguration
    private let logger: Logger
    private let metrics: WorkerMetrics
    private let registry: PrometheusCollectorRegistry?
    private let operations: OperationsStarter?
    private let stopRequested = DispatchSemaphore(value: 0)
    private var signalSources: [DispatchSourceSignal] = []
    /// Guards `maintenance`, `executor`, `graceEnded`, `stopping` and `stopFailure`.
    private let stateLock = NSLock()
    private var maintenance: Maintenance?
    private var executor: JobExecutor?
    private var graceEnded = false
    private var stopping = false
    /// Why the worker stopped on its own, reported once it has drained.
    private var stopFailure: WorkerError?

    /// The memory limit it runs under, and what its configuration could
    /// come to (see `MemoryBudget`).
    public let memoryLimit: CgroupMemoryLimit
    public let memoryBudget: MemoryBudget

    /// Refuses a configuration whose worst-case memory exceeds
    /// `memoryLimit` (by default, this process's cgroup limit). With
    /// `configuration.metricsPort` set, swift-metrics is bootstrapped to
    /// Prometheus here (once per process), before any metric is made.
    ///
    /// `operations` starts the /metrics and /healthz server when
    /// `configuration.metricsPort` is set (the command line passes
    /// OperationsHTTP's; this module stays free of the HTTP stack).
    public init(configuration: WorkerConfiguration, memoryLimit: CgroupMemoryLimit = .current(),
                logger: Logger = Logger(label: "hl.worker"), operations: OperationsStarter? = nil) throws {
        try configuration.validate()
        let budget = MemoryBudget(configuration)
        if case .exceeds(let limitMB, let file, let largest) = budget.verdict(
            under: memoryLimit, minimumMemoryMB: SandboxConfiguration.minimumMemoryMB) {
            throw WorkerError.invalidConfiguration(budget.refusal(limitMB: limitMB, file: file, largestMaxMemoryMB: largest))
        }
        self.memoryLimit = memoryLimit
        memoryBudget = budget
        self.configuration = configuration
        registry = configuration.metricsPort == nil ? nil : MetricsBootstrap.prometheus()
        self.operations = operations
        metrics = WorkerMetrics()
        var logger = logger
        logger[metadataKey: "worker"] = "\(configuration.workerID)"
        self.logger = logger
    }

    /// Healthy while the worker holds a database connection and its
    /// heartbeat is current.
    public var isHealthy: Bool {
        stateLock.lock()
        defer { stateLock.unlock() }
        return maintenance?.isHealthy ?? false
    }

    /// Makes SIGTERM and SIGINT request a graceful stop.
    public func installSignalHandlers() {
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                if self.isStopping {
                    // An operator who asks twice does not want to wait out
                    // the grace period: running jobs are interrupted and
                    // handed back to the queue for another worker.
                    self.logger.warning("second signal; stopping now, handing running jobs back",
                                        metadata: ["signal": .stringConvertible(signalNumber)])
                    self.endGrace()
                } else {
                    self.logger.info("signal received; draining (send it again to stop at once)",
                                     metadata: ["signal": .stringConvertible(signalNumber)])
                    self.requestStop()
                }
            }
            source.resume()
            signalSources.append(source)
        }
    }

    public func requestStop() {
        stateLock.lock()
        let first = !stopping
        stopping = true
        stateLock.unlock()
        if first { stopRequested.signal() }
    }

    /// Cuts the drain's grace period short (now, or as soon as the
    /// executor exists).
    public func endGrace() {
        stateLock.lock()
        graceEnded = true
        let executor = self.executor
        stateLock.unlock()
        executor?.endGrace()
    }

    private var isStopping: Bool {
        stateLock.lock()
        defer { stateLock.unlock() }
        return stopping
    }

    public func run() throws {
        // Listening from the start: a probe reads 503 (not a refused
        // connection) until the database is reached and the heartbeat runs.
        var server: OperationsEndpoint?
        if let port = configuration.metricsPort, let registry {
            guard let operations else {
                throw WorkerError.invalidConfiguration("--metrics-port is set but this build serves no HTTP")
            }
            do {
                server = try operations(port, configuration.metricsHost, registry, { [weak self] in self?.isHealthy ?? false })
            } catch {
                throw WorkerError.invalidConfiguration("--metrics-port: \(error)")
            }
            logger.info("serving /metrics and /healthz", metadata: ["port": "\(server!.port)"])
        }
        defer { server?.stop() }
        let kvm: KVM
        do {
            kvm = try KVM()
        } catch {
            throw WorkerError.kvmUnavailable("\(error)")
        }
        let info = WorkerInfo(id: configuration.workerID, host: ProcessInfo.processInfo.hostName,
                              pid: getpid(), concurrency: configuration.concurrency,
                              queues: configuration.queues, version: HLVersion.current)
        let session = { (name: String) in
            DatabaseSession(url: self.configuration.databaseURL, backoff: self.configuration.backoff,
                            metrics: self.metrics, logger: self.logger.with(component: name))
        }
        let maintenanceSession = session("maintenance")
        let startup = StartupCheck(session: maintenanceSession, logger: logger.with(component: "startup"))
        guard try startup.waitForDatabase(shouldStop: { self.isStopping }) else { return }
        let registration: (WorkerRegistration, Int)? = maintenanceSession.runRetrying(shouldStop: { self.isStopping }) { store in
            let registration = try store.registerWorker(info, liveWithin: configuration.rescueAfter)
            guard registration == .registered else { return (registration, 0) }
            return (registration, try store.rescueJobs(ofEarlierWorker: info))
        }
        guard let (registered, strays) = registration else { return }
        if case .heldByLiveWorker(let host, let pid, let silentFor) = registered {
            throw WorkerError.workerIDInUse(id: info.id, host: host, pid: pid, silentFor: silentFor,
                                            rescueAfter: configuration.rescueAfter)
        }
        if strays > 0 {
            logger.info("rescued jobs an earlier process with this id left running", metadata: ["count": .stringConvertible(strays)])
        }
        var listener: NotificationListener?
        var listenFailure: String?
        while listener == nil && !isStopping {
            do {
                listener = try NotificationListener(conninfo: configuration.databaseURL, logger: logger.with(component: "listener"))
            } catch {
                // Logged once per distinct failure, not once a second.
                if "\(error)" != listenFailure {
                    logger.warning("cannot LISTEN yet; retrying", metadata: ["error": "\(error)"])
                    listenFailure = "\(error)"
                }
                Thread.sleep(forTimeInterval: 1)
            }
        }
        guard let listener else { return }

        // One idle VM with a vCPU, alive as long as the worker: the kernel
        // does costly work (code patching on every CPU) when the first VM of
        // a process appears and the last one goes, which would otherwise be
        // paid per job whenever no other VM happens to be open.
        let resident = try kvm.makeVM()
        let residentVCPU = try resident.makeVCPU()
        defer { withExtendedLifetime((resident, residentVCPU)) {} }
        let reaper = SandboxReaper(bound: 2 * configuration.concurrency)
        let limit = try HostCreationLimit(slots: configuration.vmCreationSlotsPerHost)
        let fresh = FreshSandboxFactory(kvm: kvm, creators: configuration.vmCreators,
                                        stockPerKey: configuration.freshVMStock ?? min(configuration.concurrency, 4),
                                        limit: limit, reaper: reaper, logger: logger.with(component: "fresh-vms"))
        let recycled = RecycledSandboxPool(kvm: kvm, capacity: configuration.recycledPoolCapacity ?? configuration.concurrency,
                                           idleLifetime: configuration.recycledIdleLifetime, limit: limit,
                                           reaper: reaper, logger: logger.with(component: "recycled-vms"))
        let completer = JobCompleter(session: session("completer"), logger: logger.with(component: "completer"))
        let progress = ProgressReporter(session: session("progress"), workerID: configuration.workerID,
                                        logger: logger.with(component: "progress"))
        let childCompleter = ChildCompleter(session: session("children"), workerID: configuration.workerID,
                                            logger: logger.with(component: "children"))
        let runner = JobRunner(configuration: configuration, fresh: fresh, recycled: recycled, metrics: metrics,
                               logger: logger.with(component: "jobs"), children: childCompleter, progress: progress)
        let executor = JobExecutor(concurrency: configuration.concurrency, prefetch: configuration.prefetchDepth,
                                   runner: runner, completer: completer)
        let producer = JobProducer(configuration: configuration, session: session("producer"), listener: listener,
                                   executor: executor, guests: GuestCache(), metrics: metrics,
                                   logger: logger.with(component: "producer"))
        let maintenance = Maintenance(configuration: configuration, info: info, session: maintenanceSession,
                                      executor: executor, completer: completer, fresh: fresh, recycled: recycled,
                                      metrics: metrics, logger: logger.with(component: "maintenance"),
                                      onTakenOver: { [weak self] reason in self?.stop(because: reason) })
        stateLock.lock()
        self.maintenance = maintenance
        self.executor = executor
        let endGraceNow = graceEnded
        stateLock.unlock()
        if endGraceNow { executor.endGrace() }
        metrics.liveSlots.record(configuration.concurrency)
        let scheduler = Scheduler(session: session("scheduler"), logger: logger.with(component: "scheduler"))
        maintenance.start()
        scheduler.start()
        progress.start()
        producer.start()
        logger.info("worker started", metadata: [
            "concurrency": .stringConvertible(configuration.concurrency), "vm": "\(configuration.defaultVM.rawValue)",
            "queues": "\(configuration.queues?.joined(separator: ",") ?? "*")",
            "worst_case_memory_mib": "\(memoryBudget.worstCaseMB)",
            "memory_limit_mib": "\(memoryLimit.bytes.map { "\($0 >> 20)" } ?? "none")",
        ])

        stopRequested.wait()
        logger.info("stopping: no new claims; waiting for running jobs", metadata: ["grace_s": .stringConvertible(configuration.shutdownGrace)])
        scheduler.stop()
        producer.stop()
        let leftOver = executor.drain(grace: configuration.shutdownGrace)
        if !completer.flush(timeout: 30) {
            logger.error("some outcomes could not be written; those jobs will be rescued", metadata: ["count": .stringConvertible(completer.backlog)])
        }
        completer.stop()
        progress.stop()
        if !leftOver.isEmpty {
            let handed = maintenanceSession.runRetrying(shouldStop: { false }) { store in
                try store.requeue(leftOver, worker: info)
            }
            logger.info("handed unfinished jobs back to the queue", metadata: ["count": .stringConvertible(handed?.count ?? 0)])
        }
        maintenance.stop()
        _ = try? maintenanceSession.run { store in try store.deregisterWorker(info) }
        fresh.shutdown()
        recycled.drain()
        logger.info("worker stopped")
        stateLock.lock()
        let failure = stopFailure
        stateLock.unlock()
        if let failure { throw failure }
    }

    /// Drains, and makes `run()` fail with `failure` once drained.
    private func stop(because failure: WorkerError) {
        stateLock.lock()
        stopFailure = stopFailure ?? failure
        stateLock.unlock()
        requestStop()
    }
}

/// A running /metrics and /healthz server: its port, and how to stop it.
public struct OperationsEndpoint: Sendable {
    public let port: Int
    public let stop: @Sendable () -> Void

    public init(port: Int, stop: @escaping @Sendable () -> Void) {
        self.port = port
        self.stop = stop
    }
}

/// Starts the operations server on (port, host), serving the registry and
/// the health closure.
public typealias OperationsStarter = @Sendable (
    _ port: Int, _ host: String, _ registry: PrometheusCollectorRegistry, _ isHealthy: @escaping @Sendable () -> Bool
) throws -> OperationsEndpoint

/// The version hl-worker reports in hl.workers.
public enum HLVersion {
    public static let current = "0.1.0"
}

extension Logger {
    func with(component: String) -> Logger {
        var copy = self
        copy[metadataKey: "component"] = "\(component)"
        return copy
    }
}
