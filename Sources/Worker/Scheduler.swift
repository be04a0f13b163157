import Foundation
import JobQueue
import Logging

/// Enqueues the ticks of periodic jobs (`hl.schedules`), on its own thread
/// and connection. Every worker runs one; each round is one transaction
/// under a transaction-scoped advisory lock that the others try and skip,
/// so one worker at a time does the work and leadership needs no
/// election: whoever comes next after a worker dies simply gets the lock.
/// Each tick is enqueued at most once ever by hl.enqueue_tick, however
/// rounds and workers interleave; ticks missed during an outage are
/// enqueued once, as their latest (`CronExpression.dueTicks`).
final class Scheduler: @unchecked Sendable {
    /// Seconds between rounds: the finest a six-field expression can fire.
    static let interval: TimeInterval = 1
    /// A tick older than this when its round comes was missed (no worker
    /// ran, or the database was away): then only the latest missed tick of
    /// that schedule is enqueued. Rounds come every second or so, so ticks
    /// of a schedule that fires every second are all enqueued while
    /// workers run.
    static let lateAfter: TimeInterval = 10

    private let session: DatabaseSession
    private let logger: Logger
    private let thread = ServiceThread()
    /// Parsed expressions by (cron, time zone); touched only by the
    /// scheduler's thread.
    private var parsed: [String: Result<CronExpression, CronExpression.ParseError>] = [:]

    init(session: DatabaseSession, logger: Logger) {
        self.session = session
        self.logger = logger
    }

    func start() {
        thread.start(name: "hl-scheduler") { [unowned self] in loop() }
    }

    func stop() {
        thread.stop()
    }

    private func loop() {
        while true {
            do {
                let enqueued = try session.run { store in try store.runSchedulerRound(self.due) }
                if let enqueued, !enqueued.isEmpty {
                    logger.info("enqueued scheduled jobs", metadata: ["jobs": "\(enqueued.map(String.init).joined(separator: ","))"])
                }
            } catch {
                logger.warning("scheduler round failed; trying again next round", metadata: ["error": "\(error)"])
            }
            // Jittered, so the workers' rounds spread over the interval.
            guard thread.pause(Self.interval * Double.random(in: 0.8...1.2)) else { return }
        }
    }

    /// Which tick of each schedule is due at `now` (the database's clock).
    private func due(_ schedules: [Schedule], now: Date)
        -> (ticks: [(name: String, tick: Date)], failures: [(name: String, message: String)]) {
        var ticks: [(name: String, tick: Date)] = []
        var failures: [(name: String, message: String)] = []
        // Forget expressions no schedule uses any more.
        let inUse = Set(schedules.map { $0.cron + "\u{0}" + $0.timeZone })
        parsed = parsed.filter { inUse.contains($0.key) }
        for schedule in schedules {
            let key = schedule.cron + "\u{0}" + schedule.timeZone
            let expression = parsed[key] ?? Result { () throws(CronExpression.ParseError) in
                try CronExpression(schedule.cron, timeZone: schedule.timeZone)
            }
            parsed[key] = expression
            switch expression {
            case .success(let cron):
                for tick in cron.dueTicks(after: schedule.lastTick, notAfter: now, lateAfter: Self.lateAfter) {
                    ticks.append((schedule.name, tick))
                }
            case .failure(let error):
                failures.append((schedule.name, error.description))
            }
        }
        return (ticks, failures)
    }
}
