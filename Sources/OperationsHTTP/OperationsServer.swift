import Foundation
import Hummingbird
import Logging
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
}
