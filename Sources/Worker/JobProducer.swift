import Foundation
import JobQueue
import Logging

/// Claims jobs for the free slots and the executor's bounded prefetch
/// queue (see `JobExecutor.wanted`), and passes cancellations to the
/// executor. Wakes on NOTIFY (new jobs, cancellations) and when a freed
/// slot leaves room to claim (see `JobExecutor.onSlotFreed`); polls as a
/// fallback. After the listening connection comes back
/// it re-polls, because notifications sent while it was away are gone.
///
/// Notifications carry nothing and prove nothing: any database login can
/// send one (see migration 0005). On one it only looks again: it claims, or
/// asks the table which of this worker's running jobs have a recorded
/// cancellation request, and stops only those.
final class JobProducer: @unchecked Sendable {
    private let configuration: WorkerConfiguration
    private let session: DatabaseSession
    private let listener: NotificationListener
    private let executor: JobExecutor
    private let guests: GuestCache
    private let metrics: WorkerMetrics
    private let logger: Logger
    private let lock = NSLock()
    private var stopped = false
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    init(configuration: WorkerConfiguration, session: DatabaseSession, listener: NotificationListener,
         executor: JobExecutor, guests: GuestCache, metrics: WorkerMetrics, logger: Logger) {
        self.configuration = configuration
        self.session = session
        self.listener = listener
        self.executor = executor
        self.guests = guests
        self.metrics = metrics
        self.logger = logger
    }

    func start() {
        executor.onSlotFreed = { [weak listener] in listener?.wakeUp() }
        let thread = Thread { [unowned self] in
            self.loop()
            self.finished.signal()
        }
        thread.name = "hl-producer"
        thread.start()
        self.thread = thread
    }

    /// Stops claiming; returns once the producer's thread is out of its loop.
    func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
        listener.wakeUp()
        finished.wait()
    }

    private var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    private func loop() {
        var nextCancelPoll = Date()
        var mustPoll = true
        // Whether claimable jobs may be waiting. A claim that got fewer
        // jobs than it asked for saw none left; until a notification says
        // more arrived, or the poll interval passes (jobs whose run_at came
        // due, retries after their backoff: nothing announces those), a
        // freed slot does not ask again. At light load that saves an empty
        // claim after every job.
        var jobsMayWait = true
        var nextClaimPoll = Date()
        while !isStopped {
            var claimedFull = false
            let wanted = executor.wanted
            if wanted > 0 && (jobsMayWait || Date() >= nextClaimPoll) {
                switch claim(limit: min(wanted, configuration.claimBatch)) {
                case .full: claimedFull = true
                case .short: jobsMayWait = false
                case .failed: jobsMayWait = true
                }
                nextClaimPoll = Date(timeIntervalSinceNow: configuration.pollInterval)
            }
            if mustPoll || Date() >= nextCancelPoll {
                pollCancellations()
                nextCancelPoll = Date(timeIntervalSinceNow: configuration.pollInterval)
                mustPoll = false
            }
            if claimedFull { continue }
            for event in listener.wait(timeout: configuration.pollInterval) {
                switch event {
                case .notification(Channel.cancel, _):
                    mustPoll = true
                case .notification:
                    jobsMayWait = true
                case .disconnected(let reason):
                    logger.warning("notification connection lost; polling until it is back", metadata: ["reason": "\(reason)"])
                case .reconnected:
                    mustPoll = true
                    jobsMayWait = true
                }
            }
        }
    }

    /// What a claim got.
    private enum ClaimResult {
        /// As many jobs as it asked for: more may be waiting.
        case full
        /// Fewer: none were left to claim.
        case short
        /// The claim failed; it is worth trying again.
        case failed
    }

    /// Claims up to `limit` jobs and hands them to the executor.
    private func claim(limit: Int) -> ClaimResult {
        do {
            let now = Date()
            let prepared: [PreparedJob] = try session.run { store in
                let jobs = try store.claim(workerID: configuration.workerID, queues: configuration.queues, limit: limit)
                return try jobs.map { job in
                    let program: Result<GuestProgram, GuestCache.LookupError>
                    if let sha256 = job.guestSHA256 {
                        program = try guests.program(sha256: sha256, store: store)
                    } else {
                        program = .failure(.notFound)
                    }
                    return PreparedJob(job: job, program: program, claimedAt: now)
                }
            }
            if !prepared.isEmpty {
                metrics.claimed.increment(by: prepared.count)
                executor.submit(prepared)
            }
            return prepared.count == limit ? .full : .short
        } catch {
            // A claim whose answer was lost may still have committed: those
            // jobs stay running under this worker and are found by the
            // rescue of this worker's own strays (see Maintenance).
            logger.warning("claiming failed", metadata: ["error": "\(error)"])
            Thread.sleep(forTimeInterval: min(configuration.pollInterval, 0.5))
            return .failed
        }
    }

    private func pollCancellations() {
        do {
            let requests = try session.run { store in try store.cancelRequests(workerID: configuration.workerID) }
            for request in requests { executor.cancel(request.id) }
        } catch {
            logger.warning("polling cancellations failed", metadata: ["error": "\(error)"])
        }
    }
}
