import Foundation

/// The thread of a background service (maintenance, scheduler, progress):
/// runs a loop that pauses between rounds, and stops it on request, waiting
/// until the loop has returned. One place for the start/stop handshake the
/// services share.
///
/// `condition` guards `stopping` and `exited`.
final class ServiceThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var stopping = false
    private var exited = false

    /// Starts a thread named `name` that runs `loop` once; the loop returns
    /// when `pause` says the service is stopping.
    func start(name: String, _ loop: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            loop()
            condition.lock()
            exited = true
            condition.broadcast()
            condition.unlock()
        }
        thread.name = name
        thread.start()
    }

    /// Waits `interval` seconds, or less if `stop` is called meanwhile.
    /// Returns false once the service is stopping: the loop should return.
    func pause(_ interval: TimeInterval) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let wakeAt = Date(timeIntervalSinceNow: interval)
        while !stopping && condition.wait(until: wakeAt) {}
        return !stopping
    }

    /// Asks the loop to stop and returns once it has; a loop in `pause`
    /// wakes at once.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !exited { condition.wait() }
        condition.unlock()
    }
}
