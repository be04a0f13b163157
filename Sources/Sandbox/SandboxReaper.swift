import Foundation

/// Tears sandboxes down on its own thread. Closing a VM's descriptors costs
/// about as much as creating it on these hosts; doing it here keeps that
/// cost off the job's path while still paying it.
///
/// The backlog is bounded: every VM still open makes each new VM, and every
/// memory-map change in the process, slower (KVM walks all of them), so a
/// reaper that falls behind would slow everything down. Past `bound`
/// pending sandboxes, `discard` tears down on the caller's thread instead.
public final class SandboxReaper: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [Sandbox] = []
    public let bound: Int
    public private(set) var reaped = 0
    /// Sandboxes torn down by their caller because the backlog was full.
    public private(set) var reapedInline = 0

    public init(bound: Int = 16) {
        precondition(bound >= 1, "the reaper's backlog bound must be positive")
        self.bound = bound
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "hl-reaper"
        thread.start()
    }

    public func discard(_ sandbox: Sandbox) {
        condition.lock()
        guard pending.count < bound else {
            reapedInline += 1
            condition.unlock()
            return  // the caller's reference is the last: teardown happens as it returns
        }
        pending.append(sandbox)
        condition.signal()
        condition.unlock()
    }

    /// Whether the backlog is at its bound (builders should hold back).
    public var isBehind: Bool {
        condition.lock()
        defer { condition.unlock() }
        return pending.count >= bound
    }

    /// Sandboxes handed over but not yet torn down.
    public var backlog: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending.count
    }

    private func loop() {
        while true {
            condition.lock()
            while pending.isEmpty { condition.wait() }
            var batch = pending
            pending.removeAll()
            condition.unlock()
            let count = batch.count
            batch.removeAll()  // the last references: deinit closes fds and unmaps memory here
            condition.lock()
            reaped += count
            condition.unlock()
        }
    }
}
