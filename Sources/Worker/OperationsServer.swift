import CoreMetrics
import Foundation
import Glibc
import Prometheus

/// Why the operations server could not start.
public enum OperationsServerError: Error, CustomStringConvertible, Equatable {
    case invalidPort(Int)
    case invalidLimits(String)
    /// The listen address did not resolve.
    case resolve(host: String, reason: String)
    case systemCall(operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .invalidPort(let port):
            return "metrics port \(port) is outside 0...65535"
        case .invalidLimits(let reason):
            return "operations server limits: \(reason)"
        case .resolve(let host, let reason):
            return "cannot listen on \(host): \(reason) (give an address such as 0.0.0.0, ::, or 127.0.0.1)"
        case .systemCall(let operation, let errno):
            let hint: String
            switch errno {
            case EADDRINUSE: hint = " (another process listens there: choose another --metrics-port)"
            case EACCES: hint = " (ports below 1024 need CAP_NET_BIND_SERVICE)"
            case EADDRNOTAVAIL: hint = " (that address is not one of this host's)"
            default: hint = ""
            }
            return "\(operation) failed: \(String(cString: strerror(errno)))\(hint)"
        }
    }
}

/// A small HTTP/1.1 server for operators and orchestrators: `GET /metrics`
/// (Prometheus text format) and `GET /healthz` (200 or 503).
///
/// swift-prometheus has no server of its own, and a scrape endpoint does
/// not justify an event-loop framework: this is one thread polling
/// non-blocking sockets. Every connection has a deadline, a request head
/// has a size limit, each response closes its connection, and no request
/// or client failure stops the server. The `isHealthy` closure and the
/// registry's rendering run on that thread, so both must be quick and must
/// not block (read a flag, not the database).
public final class OperationsServer: @unchecked Sendable {
    /// Bounds on what one client can cost the server.
    public struct Limits: Sendable {
        /// Connections served at once; further ones wait in the kernel's
        /// backlog until a slot frees.
        public var maxConnections = 64
        /// Time from accepting a connection to holding its whole request
        /// head; a client slower than this gets 408 (or, if it sent
        /// nothing, just a close).
        public var requestTimeout: TimeInterval = 5
        /// Time for a client to take its response.
        public var writeTimeout: TimeInterval = 10
        /// Largest request head (request line and headers); more is 431.
        public var maxRequestHeadBytes = 8192
        /// After responding, input is read and dropped for up to this long
        /// before closing, so that closing with unread input (which makes
        /// the kernel reset the connection) cannot destroy the response
        /// before the client reads it.
        public var lingerTimeout: TimeInterval = 1

        public init() {}

        public func validate() throws {
            guard maxConnections > 0 else { throw OperationsServerError.invalidLimits("maxConnections must be positive") }
            guard requestTimeout > 0, writeTimeout > 0, lingerTimeout >= 0 else {
                throw OperationsServerError.invalidLimits("request and write timeouts must be positive, linger not negative")
            }
            guard maxRequestHeadBytes >= 256 else {
                throw OperationsServerError.invalidLimits("maxRequestHeadBytes must be at least 256")
            }
        }
    }

    /// The port listened on: the one asked for, or the one the kernel
    /// chose when asked for port 0.
    public let port: Int
    public let host: String

    private let loop: EventLoop
    private let exited = Completion()

    /// Starts listening at once and serves on a thread of its own until
    /// `stop()` (or until the server is released).
    public init(
        port: Int, host: String = "0.0.0.0", registry: PrometheusCollectorRegistry,
        isHealthy: @escaping @Sendable () -> Bool, limits: Limits = Limits()
    ) throws {
        guard (0...65535).contains(port) else { throw OperationsServerError.invalidPort(port) }
        try limits.validate()
        let listener = try Listener.open(host: host, port: port)
        self.host = host
        self.port = listener.port
        let routes = Routes(registry: registry, isHealthy: isHealthy)
        do {
            loop = try EventLoop(listenFD: listener.fd, routes: routes, limits: limits)
        } catch {
            close(listener.fd)
            throw error
        }
        // The thread holds the loop, never the server, so releasing the
        // server runs deinit, which stops the loop.
        let thread = Thread { [loop, exited] in
            loop.run()
            exited.signal()
        }
        thread.name = "hl-ops-http"
        thread.start()
    }

    deinit {
        stop()
    }

    /// Stops listening, closes every connection, and returns once the
    /// server's thread has finished. Safe to call more than once.
    public func stop() {
        loop.requestStop()
        exited.wait()
    }

    // MARK: Metrics bootstrap

    private static let bootstrapLock = NSLock()
    nonisolated(unsafe) private static var bootstrapped: PrometheusCollectorRegistry?

    /// Bucket bounds for every swift-metrics Timer: the library's defaults
    /// start at 5 ms, but a VM reset takes microseconds and a warm job well
    /// under a millisecond, while a queue wait can last minutes.
    public static let durationBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(300),
    ]

    /// Makes swift-metrics report to a Prometheus registry, and returns
    /// that registry for an `OperationsServer` to serve. The first call
    /// bootstraps the process-wide MetricsSystem; later calls return the
    /// same registry (MetricsSystem accepts one bootstrap per process).
    /// Metrics made before the first call go to the no-op backend, so call
    /// it before creating the service.
    public static func bootstrapMetrics() -> PrometheusCollectorRegistry {
        bootstrapLock.lock()
        defer { bootstrapLock.unlock() }
        if let bootstrapped { return bootstrapped }
        if let existing = MetricsSystem.factory as? PrometheusMetricsFactory {
            bootstrapped = existing.registry
            return existing.registry
        }
        precondition(
            MetricsSystem.factory is NOOPMetricsHandler,
            "bootstrapMetrics: MetricsSystem already reports to \(type(of: MetricsSystem.factory)), "
                + "and a process can bootstrap it only once")
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = durationBuckets
        MetricsSystem.bootstrap(factory)
        bootstrapped = registry
        return registry
    }
}

// MARK: - Requests and responses

/// What the server answers, decided without any I/O.
struct Routes: Sendable {
    let registry: PrometheusCollectorRegistry
    let isHealthy: @Sendable () -> Bool

    func respond(to head: [UInt8]) -> HTTPResponse {
        switch HTTPRequestHead.parse(head) {
        case .failure(let status):
            return HTTPResponse(status: status, body: Array("\(status.reason)\n".utf8))
        case .success(let request):
            var response = route(request)
            if request.method == "HEAD" { response.omitBody = true }
            return response
        }
    }

    private func route(_ request: HTTPRequestHead) -> HTTPResponse {
        guard request.method == "GET" || request.method == "HEAD" else {
            return HTTPResponse(
                status: .methodNotAllowed, headers: [("Allow", "GET, HEAD")],
                body: Array("method not allowed\n".utf8))
        }
        switch request.path {
        case "/metrics":
            var body: [UInt8] = []
            registry.emit(into: &body)
            return HTTPResponse(
                status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: body)
        case "/healthz":
            let healthy = isHealthy()
            return HTTPResponse(
                status: healthy ? .ok : .serviceUnavailable, headers: [("Cache-Control", "no-store")],
                body: Array((healthy ? "ok\n" : "unhealthy\n").utf8))
        default:
            return HTTPResponse(status: .notFound, body: Array("not found\n".utf8))
        }
    }
}

/// An Error so that parsing can return `Result<HTTPRequestHead, HTTPStatus>`.
enum HTTPStatus: Int, Error, Sendable {
    case ok = 200
    case badRequest = 400
    case notFound = 404
    case methodNotAllowed = 405
    case requestTimeout = 408
    case headTooLarge = 431
    case serviceUnavailable = 503
    case versionNotSupported = 505

    var reason: String {
        switch self {
        case .ok: return "OK"
        case .badRequest: return "Bad Request"
        case .notFound: return "Not Found"
        case .methodNotAllowed: return "Method Not Allowed"
        case .requestTimeout: return "Request Timeout"
        case .headTooLarge: return "Request Header Fields Too Large"
        case .serviceUnavailable: return "Service Unavailable"
        case .versionNotSupported: return "HTTP Version Not Supported"
        }
    }
}

struct HTTPResponse {
    var status: HTTPStatus
    var contentType = "text/plain; charset=utf-8"
    var headers: [(String, String)] = []
    var body: [UInt8]
    /// A response to HEAD: the headers a GET would get, no body.
    var omitBody = false

    init(status: HTTPStatus, contentType: String = "text/plain; charset=utf-8",
         headers: [(String, String)] = [], body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    /// Every response closes its connection: scrapers and probes open one
    /// per request anyway, and it spares the server keep-alive state.
    func serialized() -> [UInt8] {
        var head = "HTTP/1.1 \(status.rawValue) \(status.reason)\r\n"
        head += "Content-Type: \(contentType)\r\n"
        head += "Content-Length: \(body.count)\r\n"
        head += "Connection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + (omitBody ? [] : body)
    }
}

/// The parts of a request head the server acts on.
struct HTTPRequestHead: Equatable {
    var method: String
    /// The target's path, without its query string.
    var path: String
    var minorVersion: Int

    /// Where the head ends (the index just past its blank line), if `bytes`
    /// holds all of it. Lines end in CRLF, or in a bare LF, which RFC 9112
    /// lets a server accept.
    static func endOfHead(in bytes: [UInt8], from start: Int = 0) -> Int? {
        var index = max(start, 0)
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "\n") {
                if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "\n") { return index + 2 }
                if index + 2 < bytes.count, bytes[index + 1] == UInt8(ascii: "\r"),
                    bytes[index + 2] == UInt8(ascii: "\n")
                {
                    return index + 3
                }
            }
            index += 1
        }
        return nil
    }

    /// Parses a complete head (RFC 9112 §2–5, strictly enough that
    /// anything odd is refused rather than guessed at).
    static func parse(_ head: [UInt8]) -> Result<HTTPRequestHead, HTTPStatus> {
        // Visible ASCII, spaces and tabs only: no NULs, no other controls,
        // no bytes a header value may carry but this server never needs.
        guard head.allSatisfy({ $0 == 0x09 || $0 == 0x0A || $0 == 0x0D || (0x20...0x7E).contains($0) })
        else { return .failure(.badRequest) }
        // Lines are split on the bytes: in a Swift String, CR LF is a
        // single Character and would not split on "\n".
        var lines: [String] = []
        for var line in head.split(separator: 0x0A, omittingEmptySubsequences: false) {
            if line.last == 0x0D { line = line.dropLast() }
            // A CR anywhere else is a bare CR, which RFC 9112 rejects.
            guard !line.contains(0x0D) else { return .failure(.badRequest) }
            lines.append(String(decoding: line, as: UTF8.self))
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let requestLine = lines.first else { return .failure(.badRequest) }
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(.badRequest) }
        let method = String(parts[0]), target = parts[1], version = Array(parts[2].utf8)
        guard !method.isEmpty, method.allSatisfy(isTokenCharacter) else { return .failure(.badRequest) }
        guard version.count == 8, version.starts(with: "HTTP/".utf8), version[6] == UInt8(ascii: "."),
            let major = Character(UnicodeScalar(version[5])).wholeNumberValue,
            let minor = Character(UnicodeScalar(version[7])).wholeNumberValue
        else { return .failure(.badRequest) }
        guard major == 1 else { return .failure(.versionNotSupported) }
        // Origin form only: no absolute URLs, no "*", no fragments.
        guard target.hasPrefix("/"), !target.contains("#") else { return .failure(.badRequest) }
        let path = String(target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
        var hosts = 0
        for line in lines.dropFirst() {
            // A field line is `name: value`; whitespace before the colon,
            // and obsolete line folding (a line starting with whitespace),
            // are both grounds for a 400.
            guard let colon = line.firstIndex(of: ":") else { return .failure(.badRequest) }
            let name = line[..<colon]
            guard !name.isEmpty, name.allSatisfy(isTokenCharacter) else { return .failure(.badRequest) }
            if name.lowercased() == "host" { hosts += 1 }
        }
        // HTTP/1.1 requires exactly one Host header.
        if minor >= 1 && hosts != 1 { return .failure(.badRequest) }
        return .success(HTTPRequestHead(method: method, path: path, minorVersion: minor))
    }

    /// RFC 9110 tchar.
    private static func isTokenCharacter(_ character: Character) -> Bool {
        guard let ascii = character.asciiValue else { return false }
        switch ascii {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "A")...UInt8(ascii: "Z"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(ascii)
        }
    }
}

// MARK: - Sockets

/// Runs a system call again while a signal interrupts it; returns its
/// result, leaving errno for the caller to read straight after.
private func retryingInterrupts(_ body: () -> Int) -> Int {
    while true {
        let result = body()
        if result >= 0 || errno != EINTR { return result }
    }
}

/// The one door for the system calls that set the server up: a failure
/// becomes a typed error naming the operation. EBADF and EFAULT would mean
/// this file passed a bad descriptor or pointer, a bug.
@discardableResult
private func systemCall(_ operation: @autoclosure () -> String, _ body: () -> Int32) throws -> Int32 {
    let result = retryingInterrupts { Int(body()) }
    guard result < 0 else { return Int32(result) }
    let code = errno
    precondition(code != EBADF && code != EFAULT, "\(operation()): programmer error, errno \(code)")
    throw OperationsServerError.systemCall(operation: operation(), errno: code)
}

private func makeNonBlockingCloseOnExec(_ fd: Int32, label: String) throws {
    let status = try systemCall("fcntl F_GETFL on \(label)", { fcntl(fd, F_GETFL) })
    try systemCall("fcntl F_SETFL on \(label)", { fcntl(fd, F_SETFL, status | O_NONBLOCK) })
    try systemCall("fcntl F_SETFD on \(label)", { fcntl(fd, F_SETFD, FD_CLOEXEC) })
}

private func monotonicNow() -> TimeInterval {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return TimeInterval(now.tv_sec) + TimeInterval(now.tv_nsec) / 1e9
}

/// A bound, listening, non-blocking socket.
private struct Listener {
    let fd: Int32
    let port: Int

    static func open(host: String, port: Int) throws -> Listener {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var addresses: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &addresses)
        guard status == 0, let addresses else {
            let reason = status == EAI_SYSTEM ? String(cString: strerror(errno)) : String(cString: gai_strerror(status))
            throw OperationsServerError.resolve(host: host, reason: reason)
        }
        defer { freeaddrinfo(addresses) }
        // The first address that binds wins; if none does, the last
        // failure is the one reported.
        var lastError: Error = OperationsServerError.resolve(host: host, reason: "no addresses")
        var candidate: UnsafeMutablePointer<addrinfo>? = addresses
        while let address = candidate {
            candidate = address.pointee.ai_next
            do {
                return try bind(address.pointee, label: "\(host):\(port)")
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    private static func bind(_ address: addrinfo, label: String) throws -> Listener {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let fd = try systemCall("socket for \(label)", { socket(address.ai_family, type, address.ai_protocol) })
        do {
            // A restarted worker can bind again at once, while connections
            // of the previous process linger in TIME_WAIT.
            var one: Int32 = 1
            try systemCall("setsockopt SO_REUSEADDR on \(label)", {
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            })
            try systemCall("bind \(label)", { Glibc.bind(fd, address.ai_addr, address.ai_addrlen) })
            try systemCall("listen on \(label)", { listen(fd, 128) })
            var bound = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            try systemCall("getsockname for \(label)", {
                withUnsafeMutablePointer(to: &bound) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
                }
            })
            return Listener(fd: fd, port: Int(boundPort(bound)))
        } catch {
            close(fd)
            throw error
        }
    }

    private static func boundPort(_ storage: sockaddr_storage) -> UInt16 {
        var storage = storage
        let family = storage.ss_family
        return withUnsafePointer(to: &storage) { pointer in
            if family == sa_family_t(AF_INET6) {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }
}

/// Set once by the server's thread as it ends; any number may wait for it.
private final class Completion: @unchecked Sendable {
    private let condition = NSCondition()
    private var done = false

    func signal() {
        condition.lock()
        done = true
        condition.broadcast()
        condition.unlock()
    }

    func wait() {
        condition.lock()
        while !done { condition.wait() }
        condition.unlock()
    }
}

/// One client connection and where it is in its short life: read a request
/// head, write the response, linger, close.
private final class Connection {
    enum Phase { case reading, writing, lingering }

    /// -1 once closed.
    var fd: Int32
    var phase = Phase.reading
    var input: [UInt8] = []
    /// How much of `input` has been searched for the end of the head.
    var scanned = 0
    var output: [UInt8] = []
    var written = 0
    var deadline: TimeInterval

    init(fd: Int32, deadline: TimeInterval) {
        self.fd = fd
        self.deadline = deadline
    }
}

/// The server's thread: poll over the wake-up pipe, the listener and every
/// connection, with the nearest deadline as the timeout.
private final class EventLoop: @unchecked Sendable {
    private let listenFD: Int32
    private let routes: Routes
    private let limits: OperationsServer.Limits
    /// `requestStop` writes a byte here to wake `poll`.
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let stopLock = NSLock()
    private var stopRequested = false
    private var connections: [Connection] = []
    /// Set when accept ran out of descriptors or memory: the listener stays
    /// readable, so polling it again at once would spin.
    private var acceptPausedUntil: TimeInterval = 0

    init(listenFD: Int32, routes: Routes, limits: OperationsServer.Limits) throws {
        var fds: [Int32] = [0, 0]
        try systemCall("pipe for the operations server", { pipe(&fds) })
        do {
            for fd in fds { try makeNonBlockingCloseOnExec(fd, label: "the operations server's pipe") }
        } catch {
            fds.forEach { close($0) }
            throw error
        }
        self.listenFD = listenFD
        self.routes = routes
        self.limits = limits
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    /// Writes under the lock that `run` closes the pipe under: the loop
    /// only ends once a stop was requested, so the write always finds the
    /// pipe open (never a reused descriptor number).
    func requestStop() {
        stopLock.lock()
        defer { stopLock.unlock() }
        guard !stopRequested else { return }
        stopRequested = true
        var byte: UInt8 = 1
        // The pipe is empty until now, so the byte fits; it only wakes poll.
        _ = retryingInterrupts { Glibc.write(wakeWrite, &byte, 1) }
    }

    private var isStopRequested: Bool {
        stopLock.lock()
        defer { stopLock.unlock() }
        return stopRequested
    }

    func run() {
        defer {
            for connection in connections { close(connection.fd) }
            connections.removeAll()
            close(listenFD)
            stopLock.lock()
            close(wakeRead)
            close(wakeWrite)
            stopLock.unlock()
        }
        while !isStopRequested {
            let now = monotonicNow()
            let accepting = connections.count < limits.maxConnections && now >= acceptPausedUntil
            var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            fds.append(pollfd(fd: accepting ? listenFD : -1, events: Int16(POLLIN), revents: 0))
            for connection in connections {
                let events = connection.phase == .writing ? POLLOUT : POLLIN
                fds.append(pollfd(fd: connection.fd, events: Int16(events), revents: 0))
            }
            var wakeAt = connections.map(\.deadline).min() ?? .infinity
            if !accepting && acceptPausedUntil > now { wakeAt = min(wakeAt, acceptPausedUntil) }
            let timeout = wakeAt.isFinite ? Int32(min(max((wakeAt - now) * 1000, 0).rounded(.up), 60_000)) : -1
            let ready = fds.withUnsafeMutableBufferPointer { buffer in
                Int(poll(buffer.baseAddress, nfds_t(buffer.count), timeout))
            }
            // EINTR (or, in theory, ENOMEM): look again.
            guard ready >= 0 else { continue }
            if fds[0].revents != 0 { break }
            // Connections are served before new ones are accepted, so the
            // indices into `fds` still match `connections`.
            for (index, connection) in connections.enumerated() where fds[index + 2].revents != 0 {
                service(connection)
            }
            expireDeadlines()
            connections.removeAll { $0.fd < 0 }
            if fds[1].revents != 0 { acceptAll() }
        }
    }

    // MARK: Accepting

    private func acceptAll() {
        while connections.count < limits.maxConnections {
            let fd = Int32(retryingInterrupts { Int(accept(listenFD, nil, nil)) })
            if fd >= 0 {
                // accept4 is not in Swift's Glibc; an accepted socket does
                // not inherit the listener's O_NONBLOCK on Linux.
                guard (try? makeNonBlockingCloseOnExec(fd, label: "a client")) != nil else {
                    close(fd)
                    continue
                }
                connections.append(Connection(fd: fd, deadline: monotonicNow() + limits.requestTimeout))
                continue
            }
            switch errno {
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                acceptPausedUntil = monotonicNow() + 0.1
                return
            case ECONNABORTED, EPROTO, EPERM:
                // That client is gone or refused by a firewall rule; the
                // next may be fine.
                continue
            default:
                // EAGAIN: the backlog is empty.
                return
            }
        }
    }

    // MARK: Serving

    private func service(_ connection: Connection) {
        switch connection.phase {
        case .reading: readRequest(connection)
        case .writing: writeResponse(connection)
        case .lingering: linger(connection)
        }
    }

    private func readRequest(_ connection: Connection) {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let count = chunk.withUnsafeMutableBytes { buffer in
            retryingInterrupts { recv(connection.fd, buffer.baseAddress, buffer.count, 0) }
        }
        if count < 0 {
            if errno != EAGAIN && errno != EWOULDBLOCK { finish(connection) }
            return
        }
        if count == 0 {
            // The client stopped sending. If it began a request, it may
            // still be reading: tell it why nothing else will happen.
            if connection.input.isEmpty { finish(connection) } else { respond(connection, status: .badRequest) }
            return
        }
        connection.input += chunk[0..<count]
        // A CRLFCRLF can straddle two reads: search again from a little
        // before the new bytes.
        if let end = HTTPRequestHead.endOfHead(in: connection.input, from: connection.scanned - 3),
            end <= limits.maxRequestHeadBytes
        {
            send(connection, routes.respond(to: Array(connection.input[0..<end])))
        } else if connection.input.count >= limits.maxRequestHeadBytes {
            respond(connection, status: .headTooLarge)
        } else {
            connection.scanned = connection.input.count
        }
    }

    private func respond(_ connection: Connection, status: HTTPStatus) {
        send(connection, HTTPResponse(status: status, body: Array("\(status.reason)\n".utf8)))
    }

    private func send(_ connection: Connection, _ response: HTTPResponse) {
        connection.input = []
        connection.output = response.serialized()
        connection.written = 0
        connection.phase = .writing
        connection.deadline = monotonicNow() + limits.writeTimeout
        // Most responses fit the socket buffer: try now rather than after
        // another poll.
        writeResponse(connection)
    }

    private func writeResponse(_ connection: Connection) {
        while connection.written < connection.output.count {
            let count = connection.output.withUnsafeBytes { buffer in
                retryingInterrupts {
                    Glibc.send(connection.fd, buffer.baseAddress! + connection.written,
                               buffer.count - connection.written, Int32(MSG_NOSIGNAL))
                }
            }
            if count < 0 {
                // EPIPE, ECONNRESET: the client left.
                if errno != EAGAIN && errno != EWOULDBLOCK { finish(connection) }
                return
            }
            connection.written += count
        }
        connection.output = []
        // Tell the client the response is complete, then drain what it
        // still sends until it closes.
        shutdown(connection.fd, Int32(SHUT_WR))
        connection.phase = .lingering
        connection.deadline = monotonicNow() + limits.lingerTimeout
    }

    /// Drops what the client still sends, a bounded amount per wake-up so
    /// that a client that never stops cannot hold the thread; its deadline
    /// ends it.
    private func linger(_ connection: Connection) {
        var chunk = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<16 {
            let count = chunk.withUnsafeMutableBytes { buffer in
                retryingInterrupts { recv(connection.fd, buffer.baseAddress, buffer.count, 0) }
            }
            if count > 0 { continue }
            if count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) { finish(connection) }
            return
        }
    }

    private func expireDeadlines() {
        let now = monotonicNow()
        for connection in connections where connection.fd >= 0 && connection.deadline <= now {
            if connection.phase == .reading && !connection.input.isEmpty {
                respond(connection, status: .requestTimeout)
            } else {
                finish(connection)
            }
        }
    }

    /// Closes the connection; the loop then drops it from its list.
    private func finish(_ connection: Connection) {
        close(connection.fd)
        connection.fd = -1
    }
}
