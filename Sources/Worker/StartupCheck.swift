import Foundation
import JobQueue
import Logging

/// Start-up waits for a database it can use, and gives up on one it never
/// will. A server that refuses connections, times out or is restarting is
/// waited for, with backoff, and each change of reason is logged once, on
/// one line. A failure no wait can heal (authentication, a missing database
/// or schema, a schema older than this binary) ends start-up with one line
/// that says what to do.
struct StartupCheck {
    let session: DatabaseSession
    let logger: Logger
    /// The newest migration this binary's queries rely on.
    var requiredVersion = Migrator.latestVersion

    /// Returns once the schema is usable; false when `shouldStop` ended the wait.
    func waitForDatabase(shouldStop: () -> Bool) throws -> Bool {
        var delay: TimeInterval = 0.1
        var waitingFor: String?
        while !shouldStop() {
            do {
                let version = try session.run { try $0.schemaVersion() }
                if let waitingFor {
                    logger.info("database reachable", metadata: ["after": "\(waitingFor)"])
                }
                guard version >= requiredVersion else {
                    throw WorkerError.databaseUnusable(
                        "the database schema is at migration \(version), older than this hl-worker's "
                            + "\(requiredVersion); run: hl-worker migrate")
                }
                return true
            } catch let error as PGError {
                switch error.connectionFailure {
                case .permanent(let line):
                    throw WorkerError.databaseUnusable(line)
                case .transient(let reason):
                    if reason != waitingFor {
                        logger.warning("cannot use the database yet; retrying until it can be reached",
                                       metadata: ["reason": "\(reason)", "error": "\(error)"])
                        waitingFor = reason
                    }
                }
            }
            Thread.sleep(forTimeInterval: delay)
            delay = min(delay * 2, 5)
        }
        return false
    }
}
