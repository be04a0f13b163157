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
    /// VMs alive in this process, by mode: running a job, in the fresh
    /// stock or idle in the recycled pool.
    let freshVMsLive = Gauge(label: "hl_vms_live", dimensions: [("mode", "fresh")])
    let recycledVMsLive = Gauge(label: "hl_vms_live", dimensions: [("mode", "recycled")])
    let recycledVMsIdle = Gauge(label: "hl_vms_recycled_idle")
    let freshVMsStock = Gauge(label: "hl_vms_fresh_stock")
    let processCPU = FloatingPointCounter(label: "process_cpu_seconds_total")
    let processResident = Gauge(label: "process_resident_memory_bytes")
    let processOpenFDs = Gauge(label: "process_open_fds")
    let pruned = Counter(label: "hl_jobs_pruned_total")
    let liveSlots = Gauge(label: "hl_slots")
    let busySlots = Gauge(label: "hl_slots_busy")
    let databaseReconnects = Counter(label: "hl_database_reconnects_total")
    /// Submitter-chosen label values, bounded per process.
    private let queueLabels = BoundedLabel(limit: 50)
    private let guestLabels = BoundedLabel(limit: 50)
    /// Guards every field below.
    private let lock = NSLock()
    private var failures: [String: Counter] = [:]
    private var finished: [[String]: Counter] = [:]
    /// Per log queue: its counter and the drops already counted.
    private var logDrops: [String: (counter: Counter, counted: Int)] = [:]
    /// VMs taken for a job and not yet given back, by mode.
    private var inUse: [WorkerConfiguration.VMMode: Int] = [:]
    /// `hl_vms_created_total{mode}` and the creations already counted.
    private var created: [WorkerConfiguration.VMMode: (counter: Counter, counted: Int)] = [:]
    private var countedCPU = 0.0
    /// The per-queue gauges this process exports while it holds the queue
    /// metrics lease, by label value.
    private var queueGauges: [String: [Gauge]] = [:]

    init(version: String = HLVersion.current) {
        Gauge(label: "hl_build_info", dimensions: [("version", version)]).record(1)
    }

    func vmsAcquired(_ mode: WorkerConfiguration.VMMode) {
        switch mode {
        case .fresh: freshVMs.increment()
        case .recycled: recycledVMs.increment()
        case .novm: return
        }
        lock.withLock { inUse[mode, default: 0] += 1 }
    }

    func vmReleased(_ mode: WorkerConfiguration.VMMode) {
        guard mode != .novm else { return }
        lock.withLock { inUse[mode, default: 0] -= 1 }
    }

    /// The VM gauges and `hl_vms_created_total`, from the factory's and the
    /// pool's own counts.
    func recordVMs(freshCreated: Int, freshStock: Int, recycledCreated: Int, recycledIdle: Int) {
        lock.withLock {
            for (mode, total) in [(WorkerConfiguration.VMMode.fresh, freshCreated), (.recycled, recycledCreated)] {
                var entry = created[mode]
                    ?? (Counter(label: "hl_vms_created_total", dimensions: [("mode", mode.rawValue)]), 0)
                if total > entry.counted { entry.counter.increment(by: total - entry.counted) }
                entry.counted = total
                created[mode] = entry
            }
            freshVMsLive.record(inUse[.fresh, default: 0] + freshStock)
            recycledVMsLive.record(inUse[.recycled, default: 0] + recycledIdle)
        }
        freshVMsStock.record(freshStock)
        recycledVMsIdle.record(recycledIdle)
    }

    func recordProcess(_ stats: ProcessStats) {
        lock.withLock {
            if stats.cpuSeconds > countedCPU { processCPU.increment(by: stats.cpuSeconds - countedCPU) }
            countedCPU = max(countedCPU, stats.cpuSeconds)
        }
        processResident.record(stats.residentBytes)
        processOpenFDs.record(stats.openFDs)
    }

    func record(_ outcome: RunOutcome, queue: String, guest: String) {
        let name: String
        switch outcome {
        case .finished(.completed):
            completed.increment()
            name = "completed"
        case .finished(.cancelled):
            cancelled.increment()
            name = "cancelled"
        case .finished(.failed(_, _, _, let kind, _, let retryable)):
            failure(kind).increment()
            if retryable { retried.increment() }
            name = "failed"
        case .handBack:
            handedBack.increment()
            return
        }
        let labels = [queueLabels.value(queue), guestLabels.value(guest), name]
        lock.withLock {
            let counter = finished[labels]
                ?? Counter(label: "hl_jobs_finished_total",
                           dimensions: [("queue", labels[0]), ("guest", labels[1]), ("outcome", labels[2])])
            finished[labels] = counter
            return counter
        }.increment()
    }

    /// `hl_queue_jobs{queue,state}` and
    /// `hl_queue_oldest_available_age_seconds{queue}` from hl.queue_summary.
    /// Queues past the label bound add up under "_other"; a queue exported
    /// before and empty now reads 0.
    func recordQueues(_ summaries: [QueueSummary]) {
        var totals: [String: (counts: [Int], age: Double)] = [:]
        for summary in summaries {
            let label = queueLabels.value(summary.queue)
            var entry = totals[label] ?? ([0, 0, 0, 0], 0)
            for (index, count) in [summary.available, summary.scheduled, summary.running, summary.retryable].enumerated() {
                entry.counts[index] += count
            }
            entry.age = max(entry.age, summary.oldestAvailableAge ?? 0)
            totals[label] = entry
        }
        lock.withLock {
            for label in Set(queueGauges.keys).union(totals.keys) {
                let gauges = queueGauges[label] ?? Self.queueStates.map {
                    Gauge(label: "hl_queue_jobs", dimensions: [("queue", label), ("state", $0)])
                } + [Gauge(label: "hl_queue_oldest_available_age_seconds", dimensions: [("queue", label)])]
                queueGauges[label] = gauges
                let entry = totals[label] ?? ([0, 0, 0, 0], 0)
                for (gauge, count) in zip(gauges, entry.counts) { gauge.record(count) }
                gauges[4].record(entry.age)
            }
        }
    }

    /// Another worker exports the queue gauges now: this one stops.
    func dropQueueGauges() {
        lock.withLock {
            queueGauges.values.joined().forEach { $0.destroy() }
            queueGauges.removeAll()
        }
    }

    static let queueStates = ["available", "scheduled", "running", "retryable"]

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
