import Foundation
import Logging
@testable import Sandbox
import XCTest

/// The budget and the queue as pure values and threads: no /dev/kvm.
final class LogBudgetTests: XCTestCase {
    func testLinesAreAdmittedUpToTheLimitThenTruncatedOnceThenDropped() {
        var budget = LogBudget(limit: 100)
        XCTAssertEqual(budget.admit(bytes: 60), .write)
        XCTAssertEqual(budget.admit(bytes: 40), .write)
        XCTAssertEqual(budget.admit(bytes: 1), .truncate(limit: 100))
        XCTAssertEqual(budget.admit(bytes: 0), .drop)
        XCTAssertEqual(budget.admit(bytes: 1), .drop)
        XCTAssertEqual(budget.used, 100)
    }

    func testALineThatDoesNotFitIsNotWrittenInPart() {
        var budget = LogBudget(limit: 100)
        XCTAssertEqual(budget.admit(bytes: 90), .write)
        XCTAssertEqual(budget.admit(bytes: 20), .truncate(limit: 100))
        XCTAssertEqual(budget.admit(bytes: 5), .drop, "after truncation nothing more is written, even what would fit")
    }

    func testAZeroBudgetWritesNothing() {
        var budget = LogBudget(limit: 0)
        XCTAssertEqual(budget.admit(bytes: 1), .truncate(limit: 0))
        XCTAssertEqual(budget.admit(bytes: 1), .drop)
    }
}

final class LogQueueTests: XCTestCase {
    func testWritesRunInOrderOnTheQueuesThread() {
        let seen = Locked<[Int]>([])
        let queue = LogQueue(name: "test-order", capacity: 100) { _ in }
        for index in 0..<50 { XCTAssertTrue(queue.enqueue { seen.update { $0.append(index) } }) }
        XCTAssertTrue(queue.flush(timeout: 30))
        XCTAssertEqual(seen.value, Array(0..<50))
    }

    /// A stuck destination costs the caller nothing: writes past the
    /// capacity are dropped and counted at once, and the count is reported
    /// once the destination moves again.
    func testAFullQueueDropsAndCountsAndReportsOnceItMovesAgain() {
        let release = DispatchSemaphore(value: 0)
        let notices = Locked<[Int]>([])
        let queue = LogQueue(name: "test-full", capacity: 10) { dropped in notices.update { $0.append(dropped) } }
        defer { release.signal() }
        let started = DispatchSemaphore(value: 0)
        XCTAssertTrue(queue.enqueue {
            started.signal()
            release.wait()
        })
        started.wait()
        var accepted = 0
        for _ in 0..<1000 where queue.enqueue({}) { accepted += 1 }
        XCTAssertEqual(accepted, 9, "the stuck write still counts against the capacity")
        XCTAssertEqual(queue.droppedSinceLastNotice, 991)
        XCTAssertEqual(notices.value, [])
        release.signal()
        XCTAssertTrue(queue.flush(timeout: 30))
        XCTAssertEqual(notices.value, [991])
        XCTAssertEqual(queue.droppedSinceLastNotice, 0)
    }
}

/// A value shared with other threads; the lock guards `storage`.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: Value

    init(_ value: Value) { storage = value }

    var value: Value {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }

    func update(_ body: (inout Value) -> Void) {
        lock.lock()
        body(&storage)
        lock.unlock()
    }
}

/// Keeps every line logged through it, for tests to read back.
struct CapturingLogHandler: LogHandler {
    struct Line {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    let lines: Locked<[Line]>
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let line = Line(level: event.level, message: event.message.description,
                        metadata: metadata.merging(event.metadata ?? [:]) { $1 })
        lines.update { $0.append(line) }
    }
}

/// A destination that stalls, like a stderr pipe nobody reads: every line
/// waits until the test releases it, or until `stallUntil` has passed (so
/// that code that waits on it ends, late, rather than hanging the suite).
struct StalledLogHandler: LogHandler {
    let released: Locked<Bool>
    let stallUntil: Date
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        while !released.value && Date() < stallUntil { usleep(1_000) }
    }
}
