import Foundation
import XCTest

@testable import Worker

/// The cron parser against a table of expressions and the next times they
/// fire, worked out by hand from a calendar (1 January 2026 is a Thursday;
/// New York springs forward on 8 March 2026 at 02:00 EST and falls back on
/// 1 November 2026 at 02:00 EDT).
final class CronExpressionTests: XCTestCase {
    private func date(_ text: String) throws -> Date {
        try XCTUnwrap(ISO8601DateFormatter().date(from: text), text)
    }

    func testNextTimes() throws {
        let table: [(cron: String, zone: String, after: String, next: String, why: String)] = [
            ("*/15 * * * *", "UTC", "2026-01-01T00:07:00Z", "2026-01-01T00:15:00Z", "step"),
            ("0 0 * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "strictly after"),
            ("30 9 * * mon-fri", "UTC", "2026-01-02T10:00:00Z", "2026-01-05T09:30:00Z", "weekday names, over a weekend"),
            ("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z", "leap day"),
            ("*/10 * * * * *", "UTC", "2026-01-01T00:00:05Z", "2026-01-01T00:00:10Z", "six fields: seconds"),
            ("0 0 13 * fri", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "both days restricted: a Friday"),
            ("0 0 13 * fri", "UTC", "2026-01-10T00:00:00Z", "2026-01-13T00:00:00Z", "both days restricted: the 13th"),
            ("0 0 1 * fri", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "day and weekday are or-ed"),
            ("0 0 * * fri", "UTC", "2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "weekday only"),
            ("0 12 * * 7", "UTC", "2026-01-01T00:00:00Z", "2026-01-04T12:00:00Z", "7 is Sunday"),
            ("0 0 1 jan,jul *", "UTC", "2026-02-01T00:00:00Z", "2026-07-01T00:00:00Z", "month names"),
            ("5/20 * * * *", "UTC", "2026-01-01T00:46:00Z", "2026-01-01T01:05:00Z", "a/n runs to the end"),
            ("0 22-23,1 * * *", "UTC", "2026-01-01T23:30:00Z", "2026-01-02T01:00:00Z", "list of a range and a number"),
            ("59 23 31 12 *", "UTC", "2026-01-01T00:00:00Z", "2026-12-31T23:59:00Z", "end of year"),
            ("0 9 * * *", "Europe/Berlin", "2026-01-01T00:00:00Z", "2026-01-01T08:00:00Z", "winter offset +1"),
            ("0 9 * * *", "Europe/Berlin", "2026-07-01T00:00:00Z", "2026-07-01T07:00:00Z", "summer offset +2"),
            ("0 9 * * *", "Asia/Kolkata", "2026-01-01T00:00:00Z", "2026-01-01T03:30:00Z", "half-hour offset"),
            // Spring forward: 02:00-02:59 does not exist on 8 March.
            ("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z",
             "a skipped wall time runs once, as the gap ends (03:00 EDT)"),
            ("30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z",
             "and the day after at 02:30 EDT"),
            ("* * * * *", "America/New_York", "2026-03-08T06:59:00Z", "2026-03-08T07:00:00Z",
             "the whole skipped hour fires once, at 03:00 EDT"),
            ("* * * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-08T07:01:00Z",
             "then every minute again"),
            ("0 3 * * *", "America/New_York", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z",
             "03:00 itself exists on the day of the gap"),
            // Fall back: 01:00-01:59 happens twice on 1 November.
            ("30 1 * * *", "America/New_York", "2026-11-01T00:00:00Z", "2026-11-01T05:30:00Z",
             "a repeated wall time runs at its first occurrence (EDT)"),
            ("30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z",
             "and not again in the repeat (EST)"),
            ("*/15 * * * *", "America/New_York", "2026-11-01T05:45:00Z", "2026-11-01T07:00:00Z",
             "wall-clock times run once: the repeated hour's second pass is skipped"),
            ("0 2 * * *", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z",
             "02:00 after the fall back is 02:00 EST"),
            ("0 0 * * *", "Europe/London", "2026-03-29T00:30:00Z", "2026-03-29T23:00:00Z",
             "midnight after the spring change is 00:00 BST"),
        ]
        for row in table {
            let cron = try CronExpression(row.cron, timeZone: row.zone)
            let next = cron.next(after: try date(row.after))
            XCTAssertEqual(next, try date(row.next), "\(row.cron) [\(row.zone)] after \(row.after): \(row.why)")
        }
    }

    func testRejectsWhatCanNeverRun() {
        let bad: [(String, String)] = [
            ("61 * * * *", "minute"), ("* * *", "fields"), ("0 0 30 2 *", "February"), ("*/0 * * * *", "step"),
            ("5-1 * * * *", "backwards"), ("@daily", "fields"), ("0 0 * * mon-xyz", "day of week"),
            ("1,,2 * * * *", "malformed"), ("0 24 * * *", "hour"), ("* * * * * * *", "fields"),
        ]
        for (text, reason) in bad {
            XCTAssertThrowsError(try CronExpression(text), "\(text) should be rejected (\(reason))")
        }
        XCTAssertThrowsError(try CronExpression("* * * * *", timeZone: "Mars/Olympus"))
        XCTAssertNoThrow(try CronExpression("0 0 30 2 mon"), "or-ed with a weekday it runs on Mondays")
    }

    func testLatestTickRunsAMissedStretchOnce() throws {
        let hourly = try CronExpression("0 * * * *")
        XCTAssertEqual(hourly.latestTick(after: try date("2026-01-01T00:00:00Z"), notAfter: try date("2026-01-03T05:30:00Z")),
                       try date("2026-01-03T05:00:00Z"), "two days missed: only the latest tick")
        XCTAssertNil(hourly.latestTick(after: try date("2026-01-03T05:00:00Z"), notAfter: try date("2026-01-03T05:59:59Z")))
        XCTAssertEqual(hourly.latestTick(after: try date("2026-01-03T05:00:00Z"), notAfter: try date("2026-01-03T06:00:00Z")),
                       try date("2026-01-03T06:00:00Z"), "a tick exactly now is due")
        let everySecond = try CronExpression("* * * * * *")
        XCTAssertEqual(everySecond.latestTick(after: try date("2025-01-01T00:00:00Z"), notAfter: try date("2026-01-01T00:00:00Z")),
                       try date("2026-01-01T00:00:00Z"), "a year of per-second ticks is one tick, found quickly")
    }

    func testDueTicksKeepUpButCollapseAnOutage() throws {
        let everySecond = try CronExpression("* * * * * *")
        let now = try date("2026-01-01T00:00:10Z")
        XCTAssertEqual(everySecond.dueTicks(after: try date("2026-01-01T00:00:07Z"), notAfter: now, lateAfter: 10),
                       [try date("2026-01-01T00:00:08Z"), try date("2026-01-01T00:00:09Z"), now],
                       "a slow round enqueues each tick it finds")
        XCTAssertEqual(everySecond.dueTicks(after: try date("2025-12-31T23:00:00Z"), notAfter: now, lateAfter: 10),
                       [now], "after an outage: the latest tick, once")
        XCTAssertEqual(everySecond.dueTicks(after: now, notAfter: now, lateAfter: 10), [])
    }

    func testCivilCalendar() {
        XCTAssertTrue(CronExpression.civil(fromDays: 0) == (1970, 1, 1))
        XCTAssertTrue(CronExpression.civil(fromDays: 11_016) == (2000, 2, 29))
        XCTAssertTrue(CronExpression.civil(fromDays: 20_454) == (2026, 1, 1))
        XCTAssertEqual(CronExpression.weekday(days: 20_454), 4, "1 January 2026 is a Thursday")
    }
}
