import Foundation
import Logging

/// Channels the schema notifies on. Payloads are empty: any login may
/// LISTEN, so a payload would tell every tenant about the others' jobs; and
/// any login may NOTIFY, so a notification is a hint to look at the table,
/// never a fact to act on.
public enum Channel {
    /// Jobs became runnable (inserted, handed back, their queue resumed).
    public static let jobs = "hl_jobs"
    /// The cancellation of some running job was requested.
    public static let cancel = "hl_cancel"
}

/// What `NotificationListener.wait` saw.
public enum ListenerEvent: Sendable, Hashable {
    case notification(channel: String, payload: String)
    /// The connection broke; nothing is heard until `reconnected`.
    case disconnected(reason: String)
    /// Listening again after a break. Notifications sent during the break
    /// are gone: re-poll the table for anything they would have announced.
    case reconnected
}

/// LISTENs on its own connection (a connection that runs queries cannot wait
/// on notifications) and hands notifications to one thread that calls
/// `wait`. Connection trouble is absorbed here: `wait` reports it as events
/// and keeps reconnecting with backoff, so the caller's loop never dies of it.
public final class NotificationListener: @unchecked Sendable {
    /// TCP keepalives, so that a server that vanished without closing the
    /// connection (a lost host) is noticed in well under a minute rather
    /// than never. The connection string still overrides them.
    public static let connectionDefaults = PGConnection.standardDefaults.merging([
        "keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5",
        "keepalives_count": "3", "tcp_user_timeout": "30000",
    ]) { _, new in new }

    public let channels: [String]
    private let conninfo: String?
    private let logger: Logger
    private var connection: PGConnection?
    private var nextReconnect = Date.distantPast
    private var reconnectDelay: TimeInterval
    private let minimumReconnectDelay: TimeInterval
    private let maximumReconnectDelay: TimeInterval
    /// Lets another thread interrupt a `wait` (shutdown) through a self-pipe.
    private let wakePipe: (read: Int32, write: Int32)

    /// Connects and LISTENs, or throws if the first connection fails.
    public init(
        conninfo: String?, channels: [String] = [Channel.jobs, Channel.cancel],
        reconnectDelay: ClosedRange<TimeInterval> = 0.1...5,
        logger: Logger = Logger(label: "hl.listener")
    ) throws {
        self.conninfo = conninfo
        self.channels = channels
        self.logger = logger
        minimumReconnectDelay = reconnectDelay.lowerBound
        maximumReconnectDelay = reconnectDelay.upperBound
        self.reconnectDelay = reconnectDelay.lowerBound
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw PGError.connectFailed(message: "cannot create a wake-up pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakePipe = (fds[0], fds[1])
        do {
            connection = try connect()
        } catch {
            close(wakePipe.read)
            close(wakePipe.write)
            throw error
        }
    }

    deinit {
        close(wakePipe.read)
        close(wakePipe.write)
    }

    /// The listening connection's server process, nil while disconnected.
    public var backendPID: Int32? { connection?.backendPID }

    /// Makes a `wait` in progress (or the next one) return at once. Safe to
    /// call from any thread.
    public func wakeUp() {
        var byte: UInt8 = 1
        _ = write(wakePipe.write, &byte, 1)
    }

    /// Waits up to `timeout` seconds for notifications and returns them in
    /// the order sent; empty on timeout or `wakeUp()`. While disconnected,
    /// tries to reconnect (with backoff) instead.
    public func wait(timeout: TimeInterval) -> [ListenerEvent] {
        guard let connection else { return reconnect(within: timeout) }
        var events = drain(connection)
        if !events.isEmpty { return events }
        var fds = [
            pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0),
        ]
        let ready = poll(&fds, 2, milliseconds(timeout))
        if ready < 0 && errno != EINTR {
            return lose(connection, reason: "poll: \(String(cString: strerror(errno)))")
        }
        if fds[1].revents != 0 { drainWakePipe() }
        guard fds[0].revents != 0 else { return [] }
        guard connection.consumeInput() else {
            return lose(connection, reason: connection.lastErrorMessage)
        }
        events = drain(connection)
        return events
    }

    private func drain(_ connection: PGConnection) -> [ListenerEvent] {
        var events: [ListenerEvent] = []
        while let notification = connection.nextNotification() {
            events.append(.notification(channel: notification.channel, payload: notification.payload))
        }
        return events
    }

    private func lose(_ connection: PGConnection, reason: String) -> [ListenerEvent] {
        logger.warning("listener connection lost", metadata: ["reason": "\(reason)"])
        // What it had already read is still worth handing over.
        let events = drain(connection)
        self.connection = nil
        reconnectDelay = minimumReconnectDelay
        nextReconnect = Date()
        return events + [.disconnected(reason: reason)]
    }

    private func reconnect(within timeout: TimeInterval) -> [ListenerEvent] {
        let pause = nextReconnect.timeIntervalSinceNow
        if pause > 0 {
            var fds = [pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 1, milliseconds(min(pause, timeout)))
            if fds[0].revents != 0 { drainWakePipe() }
            if pause > timeout || fds[0].revents != 0 { return [] }
        }
        do {
            connection = try connect()
            reconnectDelay = minimumReconnectDelay
            logger.info("listener reconnected")
            return [.reconnected]
        } catch {
            logger.debug("listener reconnect failed", metadata: ["error": "\(error)"])
            nextReconnect = Date().addingTimeInterval(reconnectDelay)
            reconnectDelay = min(reconnectDelay * 2, maximumReconnectDelay)
            return []
        }
    }

    private func connect() throws -> PGConnection {
        let connection = try PGConnection(
            conninfo: conninfo, defaults: NotificationListener.connectionDefaults, logger: logger)
        for channel in channels {
            try connection.execute(Queries.listen(quotedChannel: try connection.quoteIdentifier(channel)))
        }
        return connection
    }

    private func drainWakePipe() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakePipe.read, &buffer, buffer.count) > 0 {}
    }

    private func milliseconds(_ seconds: TimeInterval) -> Int32 {
        Int32(max(0, min(seconds, 3600)) * 1000)
    }
}
