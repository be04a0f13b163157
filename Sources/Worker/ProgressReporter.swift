import Foundation
import JobQueue
import Logging

/// Writes the progress guests report, on its own thread and connection, at
/// most once per `interval` per worker: a report replaces the one before
/// it that is not written yet, so a guest reporting in a tight loop costs
/// the database one small UPDATE per job per interval, and its call never
/// waits on the database.
final class ProgressReporter: @unchecked Sendable {
    static let interval: TimeInterval = 1

    private struct Report {
        var attempt: JobAttempt
        var fraction: Double
        var note: String
    }

    private let session: DatabaseSession
    private let workerID: String
    private let logger: Logger
    /// Guards `latest`, `stopped` and `exited`.
    private let condition = NSCondition()
    private var latest: [Int64: Report] = [:]
    private var stopped = false
    private var exited = false

    init(session: DatabaseSession, workerID: String, logger: Logger) {
        self.session = session
        self.workerID = workerID
        self.logger = logger
    }

    func start() {
        let thread = Thread { [unowned self] in
            self.loop()
            self.condition.lock()
            self.exited = true
            self.condition.broadcast()
            self.condition.unlock()
        }
        thread.name = "hl-progress"
        thread.start()
    }

    /// Unwritten reports are dropped: progress of jobs that are ending.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while !exited { condition.wait() }
        condition.unlock()
    }

    func report(_ attempt: JobAttempt, fraction: Double, note: String) {
        condition.lock()
        latest[attempt.id] = Report(attempt: attempt, fraction: fraction, note: note)
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            let wakeAt = Date(timeIntervalSinceNow: Self.interval)
            while !stopped && condition.wait(until: wakeAt) {}
            if stopped {
                condition.unlock()
                return
            }
            let batch = Array(latest.values)
            latest.removeAll()
            condition.unlock()
            guard !batch.isEmpty else { continue }
            do {
                try session.run { store in
                    for report in batch {
                        try store.reportProgress(report.attempt, workerID: workerID, fraction: report.fraction, note: report.note)
                    }
                }
            } catch {
                // Progress is a hint; the next report brings it up to date.
                logger.warning("could not write progress", metadata: ["error": "\(error)"])
            }
        }
    }
}
