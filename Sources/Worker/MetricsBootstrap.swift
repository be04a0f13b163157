import CoreMetrics
import Foundation
import Prometheus

/// Routes swift-metrics to one Prometheus registry per process, for the
/// operations server (OperationsHTTP) to serve.
public enum MetricsBootstrap {
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
    /// that registry for the operations server to serve. The first call
    /// bootstraps the process-wide MetricsSystem; later calls return the
    /// same registry (MetricsSystem accepts one bootstrap per process).
    /// Metrics made before the first call go to the no-op backend, so call
    /// it before creating the service.
    public static func prometheus() -> PrometheusCollectorRegistry {
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
