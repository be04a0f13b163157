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
    // `condition` (an NSCondition) guards `pending` and `tearingDown`.
    private let condition = NSCondition()
    private var pending: [Sandbox] = []
    /// 1 while the reaper thread is tearing one down: it still counts.
    private var tearingDown = 0
    public let bound: Int

    public init(bound: Int = 16) {
        precondition(bound >= 1, "the reaper's backlog bound must be positive")
        self.bound = bound
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "hl-reaper"
        thread.start()
    }

    public func discard(_ sandbox: Sandbox) {
        condition.lock()
        guard pending.count + tearingDown < bound else {
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
        return pending.count + tearingDown >= bound
    }

    private func loop() {
        while true {
            condition.lock()
            while pending.isEmpty { condition.wait() }
            let next = pending.removeFirst()
            tearingDown = 1
            condition.unlock()
            // The last reference: deinit closes fds and unmaps memory here.
            withExtendedLifetime(next) {}
            condition.lock()
            tearingDown = 0
            condition.unlock()
        }
    }
}
