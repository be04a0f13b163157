import Foundation
import Logging
import Synchronization

/// A bounded queue of log writes, drained in order by a thread of its own,
/// so that whoever logs never waits for where the log goes. A log handler
/// can block for as long as its destination does (a stderr pipe nobody
/// reads, a stalled log shipper); a slot thread servicing a guest's host
/// call must not, or the guest's deadline stops holding.
///
/// When `capacity` writes are pending, further ones are dropped and
/// counted; once the drain thread gets going again it reports the count
/// through `droppedNotice`, once per run of drops.
///
/// `@unchecked Sendable`: `condition`'s lock guards `pending`, `inFlight`,
/// `dropped` and `droppedTotal`; everything else is immutable.
public final class LogQueue: @unchecked Sendable {
    public typealias Write = @Sendable () -> Void

    /// Guest log lines of every sandbox in the process. Its drop notice is
    /// logged through "hl.sandbox", after the lines that were kept.
    public static let guestLines = LogQueue(name: "hl-guest-log", capacity: 4096) { dropped in
        Logger(label: "hl.sandbox").warning("guest log lines dropped: the log output did not keep up",
                                            metadata: ["dropped": "\(dropped)"])
    }

    /// Every queue of the process, so metrics can report their drops.
    public static var all: [LogQueue] { registry.withLock { $0 } }
    private static let registry = Mutex<[LogQueue]>([])

    /// Names the queue's thread and its metrics.
    public let name: String
    public let capacity: Int
    private let droppedNotice: @Sendable (Int) -> Void
    /// Its lock guards the counts below and `pending`; signalled when
    /// writes are added, broadcast when the drain thread runs out of them.
    private let condition = NSCondition()
    private var pending: [Write] = []
    /// Writes the drain thread has taken and not finished: they still count
    /// against `capacity`, so memory stays bounded while a write is stuck.
    private var inFlight = 0
    private var dropped = 0
    private var droppedTotal = 0

    /// Starts the drain thread, which lives as long as the process: make a
    /// queue per destination, once.
    public init(name: String, capacity: Int, droppedNotice: @escaping @Sendable (Int) -> Void) {
        precondition(capacity >= 1, "a log queue holds at least one write")
        self.name = name
        self.capacity = capacity
        self.droppedNotice = droppedNotice
        let thread = Thread { [self] in drainLoop() }
        thread.name = name
        thread.start()
        Self.registry.withLock { $0.append(self) }
    }

    /// Queues `write` unless the queue is full; never blocks beyond a short
    /// lock. Returns whether it was queued.
    @discardableResult
    public func enqueue(_ write: @escaping Write) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard pending.count + inFlight < capacity else {
            dropped += 1
            droppedTotal += 1
            return false
        }
        pending.append(write)
        condition.signal()
        return true
    }

    /// Waits until every write queued so far has been done, or `timeout`
    /// seconds have passed; returns whether the queue ran dry. For tests and
    /// for a process about to exit.
    @discardableResult
    public func flush(timeout: TimeInterval) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while !pending.isEmpty || inFlight > 0 {
            if !condition.wait(until: deadline) { return pending.isEmpty && inFlight == 0 }
        }
        return true
    }

    /// Writes dropped since the drain thread last reported them.
    public var droppedSinceLastNotice: Int {
        condition.lock()
        defer { condition.unlock() }
        return dropped
    }

    /// Writes dropped since the queue was made.
    public var totalDropped: Int {
        condition.lock()
        defer { condition.unlock() }
        return droppedTotal
    }

    private func drainLoop() -> Never {
        while true {
            condition.lock()
            while pending.isEmpty {
                condition.broadcast()
                condition.wait()
            }
            let batch = pending
            pending.removeAll(keepingCapacity: true)
            inFlight = batch.count
            condition.unlock()
            for write in batch {
                write()
                condition.lock()
                inFlight -= 1
                condition.unlock()
            }
            condition.lock()
            let droppedNow = dropped
            dropped = 0
            condition.unlock()
            if droppedNow > 0 { droppedNotice(droppedNow) }
        }
    }
}
