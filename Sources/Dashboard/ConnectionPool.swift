import Dispatch
import Foundation
import JobQueue
import Logging

/// A few libpq connections for request handlers. libpq blocks its thread,
/// and request handlers run on Swift concurrency's shared pool, which must
/// never block: each connection lives on a serial queue of its own and a
/// handler awaits the statement's result there.
final class ConnectionPool: @unchecked Sendable {
    /// One connection and the queue that alone touches it.
    private final class Slot: @unchecked Sendable {
        /// Touched only on `queue`.
        var connection: PGConnection?
        let queue: DispatchQueue
        init(index: Int) { queue = DispatchQueue(label: "hl.dashboard.db.\(index)") }
    }

    private let conninfo: String?
    private let sessionSettings: [String]
    private let logger: Logger
    /// Guards `idle` and `waiters`.
    private let lock = NSLock()
    private var idle: [Slot]
    private var waiters: [CheckedContinuation<Slot, Never>] = []

    /// - Parameter sessionSettings: statements run once on each new
    ///   connection (SET statement_timeout ..., and so on).
    init(conninfo: String?, size: Int, sessionSettings: [String], logger: Logger) {
        self.conninfo = conninfo
        self.sessionSettings = sessionSettings
        self.logger = logger
        idle = (0..<max(size, 1)).map(Slot.init)
    }

    /// Runs `body` with a connection, on that connection's own thread. A
    /// connection that broke is dropped and opened again by the next user.
    func run<T: Sendable>(_ body: @escaping @Sendable (PGConnection) throws -> T) async throws -> T {
        let slot = await acquire()
        defer { release(slot) }
        return try await withCheckedThrowingContinuation { continuation in
            slot.queue.async { [conninfo, sessionSettings] in
                do {
                    let connection: PGConnection
                    if let open = slot.connection, open.isConnected {
                        connection = open
                    } else {
                        slot.connection = nil
                        connection = try PGConnection(conninfo: conninfo, defaults: [
                            "connect_timeout": "5", "application_name": "hl-dashboard",
                        ])
                        for setting in sessionSettings { try connection.execute(setting) }
                        slot.connection = connection
                    }
                    continuation.resume(returning: try body(connection))
                } catch {
                    if let connection = slot.connection, !connection.isConnected { slot.connection = nil }
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    private func acquire() async -> Slot {
        await withCheckedContinuation { continuation in
            lock.lock()
            if let slot = idle.popLast() {
                lock.unlock()
                continuation.resume(returning: slot)
            } else {
                waiters.append(continuation)
                lock.unlock()
            }
        }
    }

    private func release(_ slot: Slot) {
        lock.lock()
        if waiters.isEmpty {
            idle.append(slot)
            lock.unlock()
        } else {
            let next = waiters.removeFirst()
            lock.unlock()
            next.resume(returning: slot)
        }
    }
}
