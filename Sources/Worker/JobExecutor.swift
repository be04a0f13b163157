import Foundation
import JobQueue
import Logging
import Sandbox

/// N execution slots, each an OS thread that owns the vCPU of the job it
/// runs (KVM_RUN blocks its thread; on Swift's cooperative pool two running
/// guests would stall the process). Jobs wait in a local queue no longer
/// than it takes a slot to free up: the producer claims only what is free.
final class JobExecutor: @unchecked Sendable {
    private let runner: JobRunner
    private let completer: JobCompleter
    private let condition = NSCondition()
    private var queue: [PreparedJob] = []
    private var busy = 0
    private var stopping = false
    private var handedBack: [JobAttempt] = []
    private var exited = 0
    private let controls: [SlotControl]
    let cancellations: CancellationRegistry
    let concurrency: Int
    /// Called when a slot frees up, so the producer can claim again.
    var onSlotFreed: () -> Void = {}

    init(concurrency: Int, runner: JobRunner, completer: JobCompleter) {
        self.concurrency = concurrency
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

    /// Slots neither running nor promised a queued job.
    var freeSlots: Int {
        condition.lock()
        defer { condition.unlock() }
        return stopping ? 0 : concurrency - busy - queue.count
    }

    /// Jobs running or waiting for a slot.
    var inFlight: Int {
        condition.lock()
        defer { condition.unlock() }
        return busy + queue.count
    }

    /// Ids of the jobs this worker holds.
    var heldJobIDs: Set<Int64> {
        condition.lock()
        defer { condition.unlock() }
        return Set(queue.map(\.job.id)).union(runningIDs)
    }
    private var runningIDs: Set<Int64> = []

    func submit(_ jobs: [PreparedJob]) {
        condition.lock()
        queue.append(contentsOf: jobs)
        condition.broadcast()
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
        handedBack.append(contentsOf: queue.map(\.job.attemptRef))
        queue.removeAll()
        condition.broadcast()
        let deadline = Date(timeIntervalSinceNow: grace)
        while busy > 0 && condition.wait(until: deadline) {}
        condition.unlock()
        controls.forEach { $0.interruptForShutdown() }
        condition.lock()
        while exited < concurrency { condition.wait() }
        let attempts = handedBack
        condition.unlock()
        return attempts
    }

    private func slotLoop(_ control: SlotControl) {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if stopping && queue.isEmpty {
                exited += 1
                condition.broadcast()
                condition.unlock()
                return
            }
            let prepared = queue.removeFirst()
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
            condition.broadcast()
            condition.unlock()
            onSlotFreed()
        }
    }
}
