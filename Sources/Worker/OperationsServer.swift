import CoreMetrics
import Foundation
import Hummingbird
import Logging
import OperationsHTTP
import Prometheus

/// The worker's endpoints for operators and orchestrators, on the project's
/// one HTTP stack (Hummingbird, see `HTTPServer`): `GET /metrics`
/// (Prometheus text format) and `GET /healthz` (200 or 503). The worker
/// starts it before it first reaches the database, so a probe gets 503
/// rather than a refused connection while the worker is starting.
///
/// `isHealthy` and the registry's rendering run on the server's event
/// loops: both must be quick and must not block (read a flag, not the
/// database).
public final class OperationsServer: Sendable {
    private let server: HTTPServer

    public var port: Int { server.port }
    public var host: String { server.host }

    /// Starts listening at once; serves until `stop()` or release.
    public init(
        port: Int, host: String = "0.0.0.0", registry: PrometheusCollectorRegistry,
        isHealthy: @escaping @Sendable () -> Bool, logger: Logger = Logger(label: "hl.worker.http")
    ) throws {
        let router = Router()
        let metrics = { @Sendable (_: Request, _: BasicRequestContext) -> Response in
            var body: [UInt8] = []
            registry.emit(into: &body)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        let health = { @Sendable (_: Request, _: BasicRequestContext) -> Response in
            let healthy = isHealthy()
            return Response(
                status: healthy ? .ok : .serviceUnavailable,
                headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(string: healthy ? "ok\n" : "unhealthy\n")))
        }
        router.get("/metrics", use: metrics)
        router.head("/metrics", use: metrics)
        router.get("/healthz", use: health)
        router.head("/healthz", use: health)
        server = try HTTPServer(host: host, port: port, responder: router.buildResponder(), logger: logger)
    }

    /// Stops listening, closes every connection, and returns once served
    /// requests have ended. Safe to call more than once.
    public func stop() {
        server.stop()
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
