import Foundation
import JobQueue
import Logging

/// Completes a job whose guest enqueued children: the completion and the
/// children are one transaction (hl.complete_with_children), written here,
/// on the job's own slot thread and before the slot takes another job, on
/// a connection of its own. The ordinary completion the runner then hands
/// to the JobCompleter finds the row no longer running and changes nothing
/// (finishes are fenced), so this adds no second path to the state.
final class ChildCompleter: @unchecked Sendable {
    /// Tries before the job is failed as retryable instead (its children
    /// then were not inserted, and its next attempt enqueues them again).
    static let maxTries = 8

    private let session: DatabaseSession
    private let workerID: String
    private let logger: Logger
    /// Serialises the slots' use of `session`.
    private let lock = NSLock()

    init(session: DatabaseSession, workerID: String, logger: Logger) {
        self.session = session
        self.workerID = workerID
        self.logger = logger
    }

    /// What to hand the JobCompleter afterwards.
    func complete(_ job: ClaimedJob, resultJSON: String, children: [ChildJob]) -> JobOutcome {
        lock.lock()
        defer { lock.unlock() }
        var delay = 0.05
        for _ in 0..<Self.maxTries {
            do {
                // false: the attempt is no longer the running one (rescued,
                // or already completed by an earlier try whose answer was
                // lost); either way nothing more is to be written.
                _ = try session.run { store in
                    try store.complete(job.attemptRef, workerID: workerID, resultJSON: resultJSON, children: children)
                }
                return .completed(id: job.id, attempt: job.attempt, workerID: workerID, resultJSON: resultJSON)
            } catch let error as PGError where error.refusesAValue {
                // A child or the result the database will not store: no
                // retry can change that.
                return .failed(id: job.id, attempt: job.attempt, workerID: workerID,
                               kind: JobErrorKind.invalidOutput.rawValue,
                               message: "the jobs the guest enqueued were refused: \(Self.reason(error))", retryable: false)
            } catch {
                logger.warning("could not record a completion with its children; retrying",
                               metadata: ["job": "\(job.id)", "error": "\(error)"])
                Thread.sleep(forTimeInterval: delay)
                delay = min(delay * 2, 2)
            }
        }
        return .failed(id: job.id, attempt: job.attempt, workerID: workerID, kind: "host_error",
                       message: "could not record the completion with the jobs it enqueued", retryable: true)
    }

    private static func reason(_ error: PGError) -> String {
        if case .queryFailed(_, _, let message, _, _) = error { return message }
        return "\(error)"
    }
}
