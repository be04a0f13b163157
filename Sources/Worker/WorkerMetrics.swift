import CoreMetrics
import Foundation
import JobQueue
import Sandbox

/// The worker's metrics, through swift-metrics: whatever backend the process
/// bootstrapped (Prometheus with --metrics-port) receives them. Names follow
/// Prometheus conventions: one `hl_` prefix, base units, `_total` counters,
/// and never a job id as a label.
final class WorkerMetrics: @unchecked Sendable {
    let claimed = Counter(label: "hl_jobs_claimed_total")
    let completed = Counter(label: "hl_jobs_completed_total")
    let retried = Counter(label: "hl_jobs_retried_total")
    let rescued = Counter(label: "hl_jobs_rescued_total")
    let cancelled = Counter(label: "hl_jobs_cancelled_total")
    let handedBack = Counter(label: "hl_jobs_handed_back_total")
    let runTime = CoreMetrics.Timer(label: "hl_job_run_seconds")
    let queueWait = CoreMetrics.Timer(label: "hl_job_queue_wait_seconds")
    let resetTime = CoreMetrics.Timer(label: "hl_vm_reset_seconds")
    let freshVMs = Counter(label: "hl_vms_acquired_total", dimensions: [("mode", "fresh")])
    let recycledVMs = Counter(label: "hl_vms_acquired_total", dimensions: [("mode", "recycled")])
    let freshVMsCreated = Gauge(label: "hl_vms_created", dimensions: [("mode", "fresh")])
    let recycledVMsCreated = Gauge(label: "hl_vms_created", dimensions: [("mode", "recycled")])
    let pruned = Counter(label: "hl_jobs_pruned_total")
    let liveSlots = Gauge(label: "hl_slots")
    let busySlots = Gauge(label: "hl_slots_busy")
    let databaseReconnects = Counter(label: "hl_database_reconnects_total")
    /// Guards `failures` and `logDrops`.
    private let lock = NSLock()
    private var failures: [String: Counter] = [:]
    /// Per log queue: its counter and the drops already counted.
    private var logDrops: [String: (counter: Counter, counted: Int)] = [:]

    func vmsAcquired(_ mode: WorkerConfiguration.VMMode) {
        switch mode {
        case .fresh: freshVMs.increment()
        case .recycled: recycledVMs.increment()
        case .novm: break
        }
    }

    func record(_ outcome: RunOutcome) {
        switch outcome {
        case .finished(.completed): completed.increment()
        case .finished(.cancelled): cancelled.increment()
        case .finished(.failed(_, _, _, let kind, _, let retryable)):
            failure(kind).increment()
            if retryable { retried.increment() }
        case .handBack: handedBack.increment()
        }
    }

    /// Brings `hl_log_lines_dropped_total{queue}` up to the drops of every
    /// log queue in the process (the queues count; this only reads them).
    func recordLogDrops(_ queues: [LogQueue] = LogQueue.all) {
        lock.withLock {
            for queue in queues {
                let total = queue.totalDropped
                var entry = logDrops[queue.name]
                    ?? (Counter(label: "hl_log_lines_dropped_total", dimensions: [("queue", queue.name)]), 0)
                if total > entry.counted { entry.counter.increment(by: total - entry.counted) }
                entry.counted = total
                logDrops[queue.name] = entry
            }
        }
    }

    private func failure(_ kind: String) -> Counter {
        lock.withLock {
            if let counter = failures[kind] { return counter }
            let counter = Counter(label: "hl_jobs_failed_total", dimensions: [("kind", kind)])
            failures[kind] = counter
            return counter
        }
    }
}

extension CoreMetrics.Timer {
    func recordSeconds(_ seconds: Double) {
        recordNanoseconds(Int64(seconds * 1e9))
    }
}
