import CoreMetrics
import Foundation
import Glibc
import Prometheus
import OperationsHTTP
import XCTest

@testable import Worker

/// The operations server (Hummingbird) over real loopback sockets: what
/// scrapers and probes get, and that idle and numerous clients do not hold
/// them up.
final class OperationsServerTests: XCTestCase {
    private var servers: [OperationsServer] = []

    override func tearDown() {
        servers.forEach { $0.stop() }
        servers = []
    }

    private func start(
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        healthy: HealthFlag = HealthFlag(true)
    ) throws -> OperationsServer {
        let server = try OperationsServer(
            port: 0, host: "127.0.0.1", registry: registry, isHealthy: { healthy.value })
        servers.append(server)
        return server
    }

    // MARK: Endpoints

    func testMetricsServesTheRegistry() throws {
        let registry = PrometheusCollectorRegistry()
        let counter = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "hl", metricName: "test_events", unitName: "total", helpText: "Events seen by the test."),
            labels: [("kind", "timeout")])
        counter.increment(by: Int64(3))
        let server = try start(registry: registry)
        XCTAssertGreaterThan(server.port, 0)

        let response = try HTTPClient.get("/metrics", port: server.port)
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        XCTAssertTrue(response.body.contains(#"hl_test_events_total{kind="timeout"} 3"#), response.body)
        XCTAssertEqual(response.header("Content-Length"), String(response.body.utf8.count))

        counter.increment()
        XCTAssertTrue(try HTTPClient.get("/metrics?x=1", port: server.port).body
            .contains(#"hl_test_events_total{kind="timeout"} 4"#))
    }

    func testBootstrapMetricsRoutesSwiftMetricsToOneRegistry() throws {
        let registry = MetricsBootstrap.prometheus()
        XCTAssertTrue(registry === MetricsBootstrap.prometheus(), "a second call returns the same registry")
        Counter(label: "hl_ops_test_bootstrap_total").increment(by: 2)
        CoreMetrics.Timer(label: "hl_ops_test_seconds").recordNanoseconds(300_000)
        let server = try start(registry: registry)

        let body = try HTTPClient.get("/metrics", port: server.port).body
        XCTAssertTrue(body.contains("hl_ops_test_bootstrap_total 2"), body)
        // Timers become histograms with buckets fine enough for sub-ms work.
        XCTAssertTrue(body.contains(#"hl_ops_test_seconds_bucket{le="0.0005"} 1"#), body)
        XCTAssertTrue(body.contains(#"hl_ops_test_seconds_bucket{le="0.00025"} 0"#), body)
    }

    func testHealthzFollowsTheClosure() throws {
        let healthy = HealthFlag(true)
        let server = try start(healthy: healthy)

        var response = try HTTPClient.get("/healthz", port: server.port)
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.body, "ok\n")
        XCTAssertEqual(response.header("Cache-Control"), "no-store")

        healthy.value = false
        response = try HTTPClient.get("/healthz", port: server.port)
        XCTAssertEqual(response.status, 503)
        XCTAssertEqual(response.body, "unhealthy\n")

        healthy.value = true
        XCTAssertEqual(try HTTPClient.get("/healthz", port: server.port).status, 200)
    }

    func testOtherPathsAndMethods() throws {
        let server = try start()
        XCTAssertEqual(try HTTPClient.get("/", port: server.port).status, 404)
        XCTAssertEqual(try HTTPClient.get("/metrics/extra", port: server.port).status, 404)

        let socket = try HTTPClient.Socket(port: server.port)
        try socket.send(Array("HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        let head = try HTTPClient.Response(parsing: socket.readToEnd())
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.body, "")

        // Garbage gets an error status or a closed connection, and the
        // server goes on serving.
        _ = try? HTTPClient.exchange("garbage\r\n\r\n", port: server.port)
        _ = try? HTTPClient.exchange(bytes: [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x0A, 0x0A], port: server.port)
        XCTAssertEqual(try HTTPClient.get("/healthz", port: server.port).status, 200)
    }

    /// The reason the hand-written server went: 64 idle connections made
    /// /healthz wait about 5 s, past a Kubernetes probe's timeout. Now
    /// hundreds are held open, some having sent half a request, and every
    /// probe is still answered within a Kubernetes probe's default timeout
    /// (1 s): a contract the old server broke, not a speed figure.
    func testHealthzAnswersPromptlyWithHundredsOfIdleConnections() throws {
        let server = try start()
        var idle: [HTTPClient.Socket] = []
        for index in 0..<300 {
            let socket = try HTTPClient.Socket(port: server.port)
            if index.isMultiple(of: 3) { try socket.send(Array("GET /metrics HTTP/1.1\r\nHost: x\r\n".utf8)) }
            idle.append(socket)
        }
        // Every one of them is accepted and held by now.
        XCTAssertEqual(try HTTPClient.get("/healthz", port: server.port).status, 200)
        var durations: [Duration] = []
        for _ in 0..<9 {
            let clock = ContinuousClock()
            let start = clock.now
            XCTAssertEqual(try HTTPClient.get("/healthz", port: server.port).status, 200)
            durations.append(clock.now - start)
        }
        XCTAssertLessThan(durations.max()!, .seconds(1), "slowest of \(durations)")
        withExtendedLifetime(idle) {}
    }

    func testServesManyClientsAtOnce() throws {
        let registry = PrometheusCollectorRegistry()
        registry.makeGauge(
            descriptor: MetricNameDescriptor(metricName: "hl_test_gauge", unitName: "", helpText: "A gauge.")
        ).set(to: 7)
        let server = try start(registry: registry)
        let failures = FailureLog()
        DispatchQueue.concurrentPerform(iterations: 400) { index in
            do {
                let response = try HTTPClient.get(index.isMultiple(of: 2) ? "/metrics" : "/healthz", port: server.port)
                if response.status != 200 { failures.add("request \(index): \(response.status)") }
            } catch {
                failures.add("request \(index): \(error)")
            }
        }
        XCTAssertEqual(failures.entries, [])
    }

    // MARK: Lifecycle

    func testStopClosesTheListener() throws {
        let server = try start()
        let port = server.port
        // A client mid-request when the server stops is closed, not left hanging.
        let pending = try HTTPClient.Socket(port: port)
        server.stop()
        server.stop()
        // Closed if it had been accepted, reset if still in the backlog.
        do {
            let received = try pending.readToEnd()
            XCTAssertEqual(received, [])
        } catch let failure as HTTPClient.Failure {
            XCTAssertEqual(failure.errno, ECONNRESET, "\(failure)")
        }
        XCTAssertThrowsError(try HTTPClient.Socket(port: port)) { error in
            XCTAssertEqual((error as? HTTPClient.Failure)?.errno, ECONNREFUSED)
        }
    }

    func testReleasingTheServerStopsIt() throws {
        var server: OperationsServer? = try OperationsServer(
            port: 0, host: "127.0.0.1", registry: PrometheusCollectorRegistry(), isHealthy: { true })
        let port = try XCTUnwrap(server?.port)
        XCTAssertEqual(try HTTPClient.get("/healthz", port: port).status, 200)
        server = nil
        XCTAssertThrowsError(try HTTPClient.Socket(port: port))
    }

    func testStartupErrorsNameTheCause() throws {
        let server = try start()
        XCTAssertThrowsError(try OperationsServer(
            port: server.port, host: "127.0.0.1", registry: PrometheusCollectorRegistry(), isHealthy: { true })
        ) { error in
            guard case .cannotListen(_, let port, _, let code)? = error as? HTTPServerError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(port, server.port)
            XCTAssertEqual(code, EADDRINUSE)
            XCTAssertTrue("\(error)".contains("another process listens there"), "\(error)")
        }
        XCTAssertThrowsError(try OperationsServer(
            port: 70000, registry: PrometheusCollectorRegistry(), isHealthy: { true })
        ) { XCTAssertEqual($0 as? HTTPServerError, .invalidPort(70000)) }
        XCTAssertThrowsError(try OperationsServer(
            port: 0, host: "not an address", registry: PrometheusCollectorRegistry(), isHealthy: { true }))
    }

    func testListensOnIPv6Loopback() throws {
        let server: OperationsServer
        do {
            server = try OperationsServer(port: 0, host: "::1", registry: PrometheusCollectorRegistry(), isHealthy: { true })
        } catch HTTPServerError.cannotListen(_, _, _, EADDRNOTAVAIL?), HTTPServerError.cannotListen(_, _, _, EAFNOSUPPORT?) {
            throw XCTSkip("this host has no IPv6 loopback")
        }
        servers.append(server)
        XCTAssertEqual(try HTTPClient.get("/healthz", port: server.port, host: "::1").status, 200)
    }
}

/// The health closure's answer, changed by the test while the server reads it.
private final class HealthFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Bool

    init(_ value: Bool) { current = value }

    var value: Bool {
        get { lock.withLock { current } }
        set { lock.withLock { current = newValue } }
    }
}

private final class FailureLog: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []

    func add(_ entry: String) { lock.withLock { list.append(entry) } }
    var entries: [String] { lock.withLock { list } }
}

/// A deliberately dumb blocking HTTP client, so that the tests can send
/// exactly the bytes they mean to, broken ones included.
private enum HTTPClient {
    struct Failure: Error, CustomStringConvertible {
        let operation: String
        let errno: Int32
        var description: String { "\(operation): \(String(cString: strerror(errno)))" }
    }

    struct Response {
        let status: Int
        let headers: [(String, String)]
        let body: String

        init(parsing bytes: [UInt8]) throws {
            let text = String(decoding: bytes, as: UTF8.self)
            guard let split = text.range(of: "\r\n\r\n") else {
                throw Failure(operation: "parse response \(text.debugDescription)", errno: EPROTO)
            }
            let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
            let statusParts = lines[0].split(separator: " ")
            guard statusParts.count >= 2, statusParts[0] == "HTTP/1.1", let code = Int(statusParts[1]) else {
                throw Failure(operation: "parse status line \(lines[0].debugDescription)", errno: EPROTO)
            }
            status = code
            headers = lines.dropFirst().map { line in
                let colon = line.firstIndex(of: ":")!
                return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
            body = String(text[split.upperBound...])
        }

        func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    final class Socket {
        let fd: Int32

        init(port: Int, host: String = "127.0.0.1") throws {
            var hints = addrinfo()
            hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var address: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(host, String(port), &hints, &address) == 0, let address else {
                throw Failure(operation: "getaddrinfo \(host)", errno: EINVAL)
            }
            defer { freeaddrinfo(address) }
            fd = socket(address.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw Failure(operation: "socket", errno: errno) }
            // Tests fail rather than hang if the server never answers.
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            guard connect(fd, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 else {
                let code = errno
                close(fd)
                throw Failure(operation: "connect", errno: code)
            }
        }

        deinit { close(fd) }

        func send(_ bytes: [UInt8]) throws {
            var offset = 0
            while offset < bytes.count {
                let count = bytes.withUnsafeBytes {
                    Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
                }
                guard count > 0 else { throw Failure(operation: "send", errno: errno) }
                offset += count
            }
        }

        func finishSending() { shutdown(fd, Int32(SHUT_WR)) }

        func readToEnd() throws -> [UInt8] {
            var received: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count == 0 { return received }
                guard count > 0 else { throw Failure(operation: "recv", errno: errno) }
                received += chunk[0..<count]
            }
        }
    }

    static func exchange(bytes: [UInt8], port: Int, host: String = "127.0.0.1") throws -> Response {
        let socket = try Socket(port: port, host: host)
        try socket.send(bytes)
        socket.finishSending()
        return try Response(parsing: socket.readToEnd())
    }

    static func exchange(_ request: String, port: Int) throws -> Response {
        try exchange(bytes: Array(request.utf8), port: port)
    }

    /// Without a half-close: the request asks the server to close.
    static func get(_ path: String, port: Int, host: String = "127.0.0.1") throws -> Response {
        let socket = try Socket(port: port, host: host)
        try socket.send(Array("GET \(path) HTTP/1.1\r\nHost: test\r\nUser-Agent: hl-test\r\nConnection: close\r\n\r\n".utf8))
        return try Response(parsing: socket.readToEnd())
    }
}
