import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// Why an HTTP server could not start.
public enum HTTPServerError: Error, CustomStringConvertible, Equatable {
    case invalidPort(Int)
    /// Binding failed; `errno` is the system's code where there is one.
    case cannotListen(host: String, port: Int, reason: String, errno: Int32?)

    public var description: String {
        switch self {
        case .invalidPort(let port):
            return "port \(port) is outside 0...65535"
        case .cannotListen(let host, let port, let reason, let code):
            let hint: String
            switch code {
            case EADDRINUSE: hint = " (another process listens there: choose another port)"
            case EACCES: hint = " (ports below 1024 need CAP_NET_BIND_SERVICE)"
            case EADDRNOTAVAIL: hint = " (that address is not one of this host's)"
            default: hint = " (give an address such as 127.0.0.1, 0.0.0.0 or ::)"
            }
            return "cannot listen on \(host):\(port): \(reason)\(hint)"
        }
    }
}

/// A Hummingbird application served in the background, for callers that are
/// plain threads (the worker service) rather than async code: `init` returns
/// once the socket listens, or throws why it could not; `stop()` closes the
/// listener and every connection and returns when the server has ended.
///
/// Connections are NIO channels, so an idle one costs a little memory and no
/// thread: hundreds of idle clients do not delay the next request.
public final class HTTPServer: Sendable {
    /// The port listened on: the one asked for, or the kernel's choice for 0.
    public let port: Int
    public let host: String
    private let task: Task<Void, Never>
    private let group: ServiceGroup
    private let ended: Latch<Void>

    /// - Parameter idleTimeoutSeconds: a connection that sends nothing for
    ///   this long is closed, so idle clients cannot pile up without bound.
    public init<Responder: HTTPResponder>(
        host: String, port: Int, responder: Responder, idleTimeoutSeconds: Int64 = 60, logger: Logger
    ) throws where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
        guard (0...65535).contains(port) else { throw HTTPServerError.invalidPort(port) }
        let started = Latch<Result<Int, HTTPServerError>>()
        let ended = Latch<Void>()
        var quiet = logger
        // Hummingbird logs every connection error at info; ours are reported
        // by the caller, once.
        quiet.logLevel = max(logger.logLevel, .warning)
        let app = Application(
            responder: responder,
            server: .http1(configuration: .init(idleTimeout: .seconds(idleTimeoutSeconds))),
            configuration: .init(address: .hostname(host, port: port), serverName: nil, backlog: 1024),
            onServerRunning: { channel in started.set(.success(channel.localAddress?.port ?? port)) },
            logger: quiet)
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: quiet))
        self.group = group
        task = Task.detached {
            do {
                try await group.run()
            } catch {
                started.set(.failure(Self.listenError(error, host: host, port: port)))
            }
            ended.set(())
        }
        self.ended = ended
        self.host = host
        switch started.wait() {
        case .success(let bound):
            self.port = bound
        case .failure(let error):
            ended.wait()
            throw error
        }
    }

    deinit {
        stop()
    }

    /// Stops accepting, lets requests in progress finish and closes idle
    /// connections (graceful shutdown); a client still sending after two
    /// seconds is cut off. Safe to call more than once.
    public func stop() {
        let group = self.group
        Task.detached { await group.triggerGracefulShutdown() }
        if ended.wait(timeout: .now() + 2) == nil {
            task.cancel()
            ended.wait()
        }
    }

    private static func listenError(_ error: any Error, host: String, port: Int) -> HTTPServerError {
        if let io = error as? IOError {
            return .cannotListen(host: host, port: port, reason: String(cString: strerror(io.errnoCode)), errno: io.errnoCode)
        }
        return .cannotListen(host: host, port: port, reason: "\(error)", errno: nil)
    }
}

/// A value set once and awaited by plain threads.
final class Latch<Value: Sendable>: @unchecked Sendable {
    /// Guards `value`.
    private let condition = NSCondition()
    private var value: Value?

    /// The first value wins; later ones are dropped.
    func set(_ newValue: Value) {
        condition.lock()
        if value == nil { value = newValue }
        condition.broadcast()
        condition.unlock()
    }

    func wait() -> Value {
        condition.lock()
        defer { condition.unlock() }
        while value == nil { condition.wait() }
        return value!
    }

    /// The value, or nil if none came by `deadline`.
    func wait(timeout deadline: DispatchTime) -> Value? {
        condition.lock()
        defer { condition.unlock() }
        while value == nil {
            let left = Double(Int64(deadline.uptimeNanoseconds) - Int64(DispatchTime.now().uptimeNanoseconds)) / 1e9
            if left <= 0 { break }
            _ = condition.wait(until: Date(timeIntervalSinceNow: left))
        }
        return value
    }
}
