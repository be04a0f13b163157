import Foundation
import XCTest

@testable import Worker

/// The start/stop handshake of the worker's background services.
final class ServiceThreadTests: XCTestCase {
    /// Guarded by `lock`: what the loop did.
    private final class Rounds: @unchecked Sendable {
        let lock = NSLock()
        var count = 0
        var returned = false
    }

    /// A loop paused for an hour wakes on `stop`, sees that it must return,
    /// and `stop` comes back only after it has.
    func testStopWakesAPausedLoopAndWaitsForItToReturn() {
        let thread = ServiceThread()
        let rounds = Rounds()
        let started = DispatchSemaphore(value: 0)
        thread.start(name: "test-service") {
            while true {
                rounds.lock.withLock { rounds.count += 1 }
                started.signal()
                guard thread.pause(3600) else { break }
            }
            rounds.lock.withLock { rounds.returned = true }
        }
        started.wait()
        // Stopped from another thread, so that a stop that never woke the
        // loop fails the test instead of hanging it for the hour.
        let stopped = DispatchSemaphore(value: 0)
        Thread { thread.stop(); stopped.signal() }.start()
        XCTAssertEqual(stopped.wait(timeout: .now() + 60), .success, "stop did not wake the paused loop")
        rounds.lock.withLock {
            XCTAssertTrue(rounds.returned)
            XCTAssertEqual(rounds.count, 1)
        }
    }

    /// Once stopping, `pause` returns false at once, also when called again.
    func testPauseAfterStopReturnsFalse() {
        let thread = ServiceThread()
        let result = Rounds()
        thread.start(name: "test-service") {
            while thread.pause(0.001) {}
            result.lock.withLock { result.returned = true }
        }
        thread.stop()
        XCTAssertFalse(thread.pause(3600))
        result.lock.withLock { XCTAssertTrue(result.returned) }
    }
}
