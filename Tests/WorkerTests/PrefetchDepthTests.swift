import XCTest
@testable import Worker

/// The adaptive prefetch depth: many short jobs reach the ceiling, slow ones
/// stay at the floor, and an idle worker's rate falls instead of keeping its
/// last busy value (which would make it hoard the next burst).
final class PrefetchDepthTests: XCTestCase {
    func testDepthFollowsTheStartRateBetweenFloorAndCeiling() {
        let depth = PrefetchDepth.standard(slots: 4)
        XCTAssertEqual(depth.depth(startsPerSecond: 0), 8, "at least 8")
        XCTAssertEqual(depth.depth(startsPerSecond: 40), 8, "4 slots of 100 ms jobs stay at the floor")
        XCTAssertEqual(depth.depth(startsPerSecond: 1_000), 50, "about 50 ms of work")
        XCTAssertEqual(depth.depth(startsPerSecond: 20_000), 256, "capped")
        XCTAssertEqual(depth.depth(startsPerSecond: .infinity), 256)
        XCTAssertEqual(PrefetchDepth.standard(slots: 32).depth(startsPerSecond: 0), 32, "one per slot")
        XCTAssertEqual(PrefetchDepth.fixed(0).depth(startsPerSecond: 20_000), 0, "--prefetch 0 never prefetches")
        XCTAssertEqual(PrefetchDepth.fixed(5).depth(startsPerSecond: 0), 5)
    }

    func testRecentRateMeasuresAndDecaysWhenIdle() {
        var rate = RecentRate(window: 0.02, now: 0)
        // 1,000 events a second for a second.
        for tick in 1...1_000 { rate.record(now: Double(tick) / 1_000) }
        XCTAssertEqual(rate.perSecond(now: 1.0), 1_000, accuracy: 100)
        // Nothing for two seconds: the rate read now is far lower.
        XCTAssertLessThan(rate.perSecond(now: 3.0), 10)
        // One event after the gap replaces the old average.
        rate.record(now: 3.0)
        XCTAssertLessThan(rate.perSecond(now: 3.0), 10)
    }
}
