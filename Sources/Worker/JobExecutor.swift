import Foundation
import JobQueue
import Logging
import Sandbox

/// N execution slots, each an OS thread that owns the vCPU of the job it
/// runs (KVM_RUN blocks its thread; on Swift's cooperative pool two running
/// guests would stall the process). Jobs wait in a local queue of at most
/// the prefetch depth beyond the slots: claimed ahead, so that a slot that
/// frees up finds its next job here instead of waiting for a claim, and one
/// claim serves several jobs.
///
/// `condition` guards every `var` below (the queue, the counters, the start
/// rate, the hand-back list); `controls` and `cancellations` lock for
/// themselves.
final class JobExecutor: @unchecked Sendable {
    private let runner: JobRunner
    private let completer: JobCompleter
    private let condition = NSCondition()
    private var queue = FIFO<PreparedJob>()
    private var busy = 0
    private var stopping = false
    /// Set by `endGrace`; guarded by `condition`, like the fields above.
    private var graceEnded = false
    private var handedBack: [JobAttempt] = []
    private var exited = 0
    private let controls: [SlotControl]
    let cancellations: CancellationRegistry
    let concurrency: Int
    /// Jobs held beyond the slots, waiting to start.
    let prefetch: PrefetchDepth
    /// Jobs started, for the adaptive prefetch depth.
    private var starts: RecentRate
    /// Whether the producer was woken and has not yet asked `wanted` since.
    private var producerWoken = false
    /// Wakes the producer when a freed slot means it should claim again.
    var onSlotFreed: () -> Void = {}

    init(concurrency: Int, prefetch: PrefetchDepth, runner: JobRunner, completer: JobCompleter) {
        self.concurrency = concurrency
        self.prefetch = prefetch
        starts = RecentRate(now: ProcessInfo.processInfo.systemUptime)
        self.runner = runner
        self.completer = completer
        let cancellations = CancellationRegistry()
        self.cancellations = cancellations
        controls = (0..<concurrency).map { _ in SlotControl(cancellations: cancellations) }
        for (index, control) in controls.enumerated() {
            let thread = Thread { [unowned self] in self.slotLoop(control) }
            thread.name = "hl-slot-\(index)"
            thread.start()
        }
    }

    /// How many jobs to claim now. While a slot has nothing to run (or
    /// with no prefetch), enough to fill the slots and the prefetch queue;
    /// otherwise nothing until the queue is down to half of the depth
    /// (refilling at half empty, so each claim takes several jobs rather
    /// than one per freed slot); none once stopping.
    var wanted: Int {
        condition.lock()
        defer { condition.unlock() }
        producerWoken = false
        return wantedLocked
    }

    /// `wanted`, with `condition` held.
    private var wantedLocked: Int {
        guard !stopping else { return 0 }
        let depth = prefetch.depth(startsPerSecond: starts.perSecond(now: ProcessInfo.processInfo.systemUptime))
        let room = concurrency + depth - busy - queue.count
        let slotIdle = busy + queue.count < concurrency
        return slotIdle || queue.count <= depth / 2 ? max(0, room) : 0
    }

    /// Slots running a job now.
    var busySlots: Int {
        condition.lock()
        defer { condition.unlock() }
        return busy
    }

    /// Ids of the jobs this worker holds.
    var heldJobIDs: Set<Int64> {
        condition.lock()
        defer { condition.unlock() }
        return Set(queue.elements.map(\.job.id)).union(runningIDs)
    }
    private var runningIDs: Set<Int64> = []

    func submit(_ jobs: [PreparedJob]) {
        condition.lock()
        queue.append(contentsOf: jobs)
        // One wake-up a job, not a broadcast: with one job and eight idle
        // slots, a broadcast woke all eight to find one job.
        for _ in 0..<min(jobs.count, concurrency) { condition.signal() }
        condition.unlock()
    }

    /// Cancels a job held here: stops it if running, or makes it end
    /// cancelled when its slot picks it up.
    func cancel(_ id: Int64) {
        guard heldJobIDs.contains(id) else { return }
        if controls.contains(where: { $0.cancel(id) }) { return }
        cancellations.add(id)
        if controls.contains(where: { $0.cancel(id) }) { _ = cancellations.take(id) }
    }

    /// Stops taking jobs, hands back those not started, waits up to `grace`
    /// for running ones, then interrupts the rest. Returns the attempts to
    /// hand back to the queue.
    func drain(grace: TimeInterval) -> [JobAttempt] {
        condition.lock()
        stopping = true
        handedBack.append(contentsOf: queue.elements.map(\.job.attemptRef))
        queue.removeAll()
        condition.broadcast()
        let deadline = Date(timeIntervalSinceNow: grace)
        while busy > 0 && !graceEnded && condition.wait(until: deadline) {}
        condition.unlock()
        controls.forEach { $0.interruptForShutdown() }
        condition.lock()
        while exited < concurrency { condition.wait() }
        let attempts = handedBack
        condition.unlock()
        return attempts
    }

    /// Ends a drain's grace period now (a second SIGTERM or SIGINT): the
    /// running jobs are interrupted and handed back.
    func endGrace() {
        condition.lock()
        graceEnded = true
        condition.broadcast()
        condition.unlock()
    }

    private func slotLoop(_ control: SlotControl) {
        while true {
            condition.lock()
            var next = queue.popFirst()
            while next == nil && !stopping {
                condition.wait()
                next = queue.popFirst()
            }
            guard let prepared = next else {
                exited += 1
                condition.broadcast()
                condition.unlock()
                return
            }
            starts.record(now: ProcessInfo.processInfo.systemUptime)
            busy += 1
            runningIDs.insert(prepared.job.id)
            condition.unlock()

            let outcome = runner.run(prepared, control: control)
            switch outcome {
            case .finished(let result): completer.add(result)
            case .handBack(let attempt):
                condition.lock()
                handedBack.append(attempt)
                condition.unlock()
            }

            condition.lock()
            busy -= 1
            runningIDs.remove(prepared.job.id)
            // Only a drain waits for a slot to free up.
            if stopping { condition.broadcast() }
            // The producer is woken only when this freed slot makes it
            // claim (an idle slot, or the queue down to its refill mark),
            // and once until it looks: under load most jobs end with the
            // queue still full, and a wake-up each would cost a context
            // switch per job.
            let wakeProducer = !producerWoken && wantedLocked > 0
            if wakeProducer { producerWoken = true }
            condition.unlock()
            if wakeProducer { onSlotFreed() }
        }
    }
}
