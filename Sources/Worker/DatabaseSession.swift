import Foundation
import JobQueue
import Logging

/// A connection that comes back: each service thread owns one. When the
/// connection is lost, the next use reconnects, waiting with exponential
/// backoff between tries, so a database restart costs time, never jobs.
final class DatabaseSession: @unchecked Sendable {
    private let url: String?
    private let backoff: Backoff
    private let logger: Logger
    private let metrics: WorkerMetrics
    private var store: JobStore?
    private var retryDelay: TimeInterval = 0.05
    private var lastFailure: Date?
    /// The reason of the failure last logged by `runRetrying`; nil after a success.
    private var lastRetryReason: String?

    init(url: String?, backoff: Backoff, metrics: WorkerMetrics, logger: Logger) {
        self.url = url
        self.backoff = backoff
        self.metrics = metrics
        self.logger = logger
    }

    var isConnected: Bool { store?.connection.isConnected ?? false }

    /// Runs `body` against a live connection. A connection failure drops the
    /// connection and rethrows; the caller decides when to try again.
    func run<T>(_ body: (JobStore) throws -> T) throws -> T {
        let store = try connected()
        do {
            return try body(store)
        } catch let error as PGError {
            if case .connectionLost = error { drop(error) } else if !store.connection.isConnected { drop(error) }
            throw error
        }
    }

    /// Like `run`, but keeps trying (with backoff) until it succeeds or
    /// `shouldStop` says to give up. Use only for idempotent work.
    func runRetrying<T>(shouldStop: () -> Bool = { false }, _ body: (JobStore) throws -> T) -> T? {
        while !shouldStop() {
            do {
                let value = try run(body)
                retryDelay = 0.05
                lastRetryReason = nil
                return value
            } catch {
                // Once per change of reason, not once per try: an outage
                // would otherwise write a line every few seconds per thread.
                let reason = (error as? PGError).map { failure -> String in
                    if case .transient(let reason) = failure.connectionFailure { return reason }
                    return "\(failure)"
                } ?? "\(error)"
                if reason != lastRetryReason {
                    logger.warning("database call failed; retrying until it succeeds",
                                   metadata: ["error": "\(error)", "reason": "\(reason)"])
                    lastRetryReason = reason
                }
                Thread.sleep(forTimeInterval: retryDelay)
                retryDelay = min(retryDelay * 2, 5)
            }
        }
        return nil
    }

    private func connected() throws -> JobStore {
        if let store, store.connection.isConnected { return store }
        do {
            // TCP keepalives and a user timeout, as the listener uses, so a
            // server lost without a FIN (a dead host) fails a call in well
            // under a minute instead of hanging the thread.
            let connection = try PGConnection(conninfo: url, defaults: NotificationListener.connectionDefaults, logger: logger)
            let fresh = JobStore(connection: connection, backoff: backoff)
            if store != nil || lastFailure != nil {
                metrics.databaseReconnects.increment()
                logger.info("reconnected to PostgreSQL")
            }
            store = fresh
            lastFailure = nil
            return fresh
        } catch {
            lastFailure = Date()
            throw error
        }
    }

    private func drop(_ error: Error) {
        logger.warning("lost the PostgreSQL connection", metadata: ["error": "\(error)"])
        store = nil
        lastFailure = Date()
    }
}
