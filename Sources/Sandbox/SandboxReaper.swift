import Foundation

/// Tears sandboxes down on its own thread. Closing a VM's descriptors costs
/// about as much as creating it on these hosts; doing it here keeps that
/// cost off the job's path while still paying it.
public final class SandboxReaper: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [Sandbox] = []
    public private(set) var reaped = 0

    public init() {
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "hl-reaper"
        thread.start()
    }

    public func discard(_ sandbox: Sandbox) {
        condition.lock()
        pending.append(sandbox)
        condition.signal()
        condition.unlock()
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
