import Foundation
import JobQueue
import Logging

/// Writes job outcomes back, in batches, on its own connection. Outcomes not
/// yet written are kept (in order) through connection loss and retried until
/// written; writes are fenced by attempt, so retrying one is harmless.
///
/// Each statement writes every outcome that arrived while the previous one
/// was written, so batches grow with load. Under load an outcome also
/// lingers (at most `longestLinger`) for others to share its statement:
/// PostgreSQL's cost per job falls with the batch. At light load, when
/// fewer than two more outcomes are expected within the linger, nothing
/// waits; nor does anything while a flush or a stop waits for the backlog.
///
/// `condition` guards every `var` below.
final class JobCompleter: @unchecked Sendable {
    private let session: DatabaseSession
    private let logger: Logger
    private let condition = NSCondition()
    private var pending: [JobOutcome] = []
    private var writing = 0
    private var writingIDs: Set<Int64> = []
    private var stopped = false
    private var flushing = 0
    private var arrivals = RecentRate(now: ProcessInfo.processInfo.systemUptime)
    /// Most outcomes written by one statement.
    static let batchLimit = 500
    /// Outcomes a lingering statement waits for.
    static let lingerTarget = 100
    /// Longest an outcome waits for others to share its statement.
    static let longestLinger: TimeInterval = 0.01

    init(session: DatabaseSession, logger: Logger) {
        self.session = session
        self.logger = logger
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "hl-completer"
        thread.start()
    }

    func add(_ outcome: JobOutcome) {
        condition.lock()
        pending.append(outcome)
        arrivals.record(now: ProcessInfo.processInfo.systemUptime)
        // The writer waits for a first outcome, or while it lingers for
        // `lingerTarget` of them: only those two moments can end its wait,
        // so only they wake it (a wake-up per outcome cost a context switch
        // per job). Broadcast: a flush may be waiting on the same
        // condition, and a signal that woke only it would leave the writer
        // asleep.
        if pending.count == 1 || pending.count == Self.lingerTarget {
            condition.broadcast()
        }
        condition.unlock()
    }

    /// Outcomes not yet written.
    var backlog: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending.count + writing
    }

    /// Ids of jobs whose outcome is not written yet.
    var pendingIDs: Set<Int64> {
        condition.lock()
        defer { condition.unlock() }
        return Set(pending.map(\.id)).union(writingIDs)
    }

    /// Waits until everything added so far is written, or `timeout` passes.
    /// Returns whether the backlog is empty.
    @discardableResult
    func flush(timeout: TimeInterval) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        flushing += 1
        condition.broadcast()
        defer {
            flushing -= 1
            condition.unlock()
        }
        while pending.count + writing > 0 {
            if !condition.wait(until: deadline) { break }
        }
        return pending.count + writing == 0
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while pending.isEmpty && !stopped { condition.wait() }
            if pending.isEmpty && stopped {
                condition.unlock()
                return
            }
            lingerForCompany()
            let batch = Array(pending.prefix(Self.batchLimit))
            pending.removeFirst(batch.count)
            writing = batch.count
            writingIDs = Set(batch.map(\.id))
            condition.unlock()

            let written = session.runRetrying(shouldStop: { [unowned self] in
                condition.lock()
                defer { condition.unlock() }
                return stopped
            }) { store in try store.finish(batch) }
            if written == nil {
                logger.error("stopped with outcomes not written; their jobs will be rescued", metadata: ["count": .stringConvertible(batch.count)])
            }

            condition.lock()
            writing = 0
            writingIDs = []
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Under load, waits (holding `condition`, which the wait releases)
    /// until `lingerTarget` outcomes are pending or the linger is over.
    private func lingerForCompany() {
        let now = ProcessInfo.processInfo.systemUptime
        let expected = arrivals.perSecond(now: now) * Self.longestLinger
        guard expected >= 2, pending.count < Self.lingerTarget else { return }
        let deadline = Date(timeIntervalSinceNow: Self.longestLinger)
        while pending.count < Self.lingerTarget && !stopped && flushing == 0 {
            if !condition.wait(until: deadline) { return }
        }
    }
}
