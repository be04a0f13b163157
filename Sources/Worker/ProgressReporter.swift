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
    private let thread = ServiceThread()
    /// Guards `latest`.
    private let lock = NSLock()
    private var latest: [Int64: Report] = [:]

    init(session: DatabaseSession, workerID: String, logger: Logger) {
        self.session = session
        self.workerID = workerID
        self.logger = logger
    }

    func start() {
        thread.start(name: "hl-progress") { [unowned self] in loop() }
    }

    /// Unwritten reports are dropped: progress of jobs that are ending.
    func stop() {
        thread.stop()
    }

    func report(_ attempt: JobAttempt, fraction: Double, note: String) {
        lock.withLock { latest[attempt.id] = Report(attempt: attempt, fraction: fraction, note: note) }
    }

    private func loop() {
        while thread.pause(Self.interval) {
            let batch = lock.withLock {
                defer { latest.removeAll() }
                return Array(latest.values)
            }
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
