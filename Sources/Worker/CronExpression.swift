import Foundation

/// A cron expression: five fields (minute hour day-of-month month
/// day-of-week) or six (second first), each `*`, a number, a range `a-b`,
/// a step `*/n` or `a-b/n` or `a/n`, or a comma-separated list of those.
/// Months and weekdays also take three-letter English names; weekday 0 and
/// 7 are both Sunday. As in classic cron, when both day fields are
/// restricted (neither starts with `*`), a day matches if either does.
///
/// Times are wall-clock times in the schedule's time zone. Across DST
/// changes (see `next(after:)`): a wall time the spring-forward gap skips
/// runs once, at the first instant after the gap; a wall time the fall-back
/// repeats runs once, at its first occurrence.
public struct CronExpression: Sendable, Equatable {
    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    let seconds: Set<Int>
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    /// 0 = Sunday ... 6 = Saturday.
    let weekdays: Set<Int>
    let dayOfMonthRestricted: Bool
    let weekdayRestricted: Bool
    public let timeZone: TimeZone

    private static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let weekdayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    /// Parses `text` for `timeZone` (an IANA name such as Europe/Berlin).
    public init(_ text: String, timeZone zoneName: String = "UTC") throws(ParseError) {
        guard let zone = TimeZone(identifier: zoneName) else {
            throw ParseError(description: "unknown time zone \(zoneName)")
        }
        timeZone = zone
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 || fields.count == 6 else {
            throw ParseError(description: "a cron expression has 5 or 6 fields, not \(fields.count)")
        }
        let f = fields.count == 6 ? fields : ["0"] + fields
        seconds = try Self.field(f[0], "second", 0...59)
        minutes = try Self.field(f[1], "minute", 0...59)
        hours = try Self.field(f[2], "hour", 0...23)
        daysOfMonth = try Self.field(f[3], "day of month", 1...31)
        months = try Self.field(f[4], "month", 1...12, names: Self.monthNames, nameBase: 1)
        let days = try Self.field(f[5], "day of week", 0...7, names: Self.weekdayNames, nameBase: 0)
        weekdays = Set(days.map { $0 % 7 })
        dayOfMonthRestricted = !f[3].hasPrefix("*")
        weekdayRestricted = !f[5].hasPrefix("*")
        // An expression no calendar satisfies (30 February) would make the
        // schedule silently never run.
        guard months.contains(where: { month in daysOfMonth.contains(where: { $0 <= Self.maxDays(month) }) })
                || weekdayRestricted else {
            throw ParseError(description: "no month has the days of month \(f[3])")
        }
    }

    private static func maxDays(_ month: Int) -> Int {
        [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    }

    private static func field(_ text: String, _ what: String, _ range: ClosedRange<Int>,
                              names: [String] = [], nameBase: Int = 0) throws(ParseError) -> Set<Int> {
        func value(_ token: Substring) throws(ParseError) -> Int {
            if let number = Int(token), range.contains(number) { return number }
            if let index = names.firstIndex(of: token.lowercased()) { return index + nameBase }
            throw ParseError(description: "\(what) \(token) is not in \(range.lowerBound)-\(range.upperBound)")
        }
        var result = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2, !pieces[0].isEmpty else {
                throw ParseError(description: "\(what) field \(text) is malformed")
            }
            var step = 1
            if pieces.count == 2 {
                guard let parsed = Int(pieces[1]), parsed >= 1, parsed <= range.upperBound else {
                    throw ParseError(description: "\(what) step \(pieces[1]) is not a positive number in range")
                }
                step = parsed
            }
            var low: Int, high: Int
            if pieces[0] == "*" {
                (low, high) = (range.lowerBound, range.upperBound)
            } else {
                let bounds = pieces[0].split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count <= 2 else { throw ParseError(description: "\(what) range \(pieces[0]) is malformed") }
                low = try value(bounds[0])
                // `a/n` runs from a to the field's end.
                high = bounds.count == 2 ? try value(bounds[1]) : (pieces.count == 2 ? range.upperBound : low)
                guard low <= high else {
                    throw ParseError(description: "\(what) range \(pieces[0]) runs backwards")
                }
            }
            result.formUnion(stride(from: low, through: high, by: step))
        }
        return result
    }

    // MARK: Next time

    /// Seconds of a wall-clock time counted as if it were UTC: civil
    /// arithmetic with no zone in the way.
    private typealias WallSeconds = Int64

    /// The first time after `instant` this expression fires, or nil when
    /// none comes within the next 30 years.
    ///
    /// Searches wall-clock times from the wall time of `instant` onwards
    /// and maps each to an instant: once where it exists once, its first
    /// occurrence where fall-back repeats it, and the end of the gap where
    /// spring-forward skips it. That mapping never goes backwards, so the
    /// first match whose instant is later than `instant` is the answer.
    public func next(after instant: Date) -> Date? {
        let start = Int64(instant.timeIntervalSince1970.rounded(.down))
        let startOffset = offset(start)
        // A wall time earlier than this cannot map past `start`: at most
        // the largest drop of the offset around it (fall-back repeats that
        // much wall time).
        let nearby = [-86_400, -43_200, 43_200, 86_400].map { offset(start + Int64($0)) }
        let earliest = start + startOffset - max(0, startOffset - nearby.min()!)
        var day = earliest / 86_400
        let lastDay = day + 366 * 30
        let hourList = hours.sorted(), minuteList = minutes.sorted(), secondList = seconds.sorted()
        while day <= lastDay {
            let (_, month, dayOfMonth) = Self.civil(fromDays: day)
            if months.contains(month) && matches(dayOfMonth: dayOfMonth, weekday: Self.weekday(days: day)) {
                for hour in hourList where day * 86_400 + Int64(hour * 3600 + 3599) >= earliest {
                    for minute in minuteList where day * 86_400 + Int64(hour * 3600 + minute * 60 + 59) >= earliest {
                        for second in secondList {
                            let wall = day * 86_400 + Int64(hour * 3600 + minute * 60 + second)
                            guard wall >= earliest else { continue }
                            let at = instantOf(wall: wall)
                            if at > start { return Date(timeIntervalSince1970: Double(at)) }
                        }
                    }
                }
            }
            day += 1
        }
        return nil
    }

    private func offset(_ at: Int64) -> Int64 {
        Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(at))))
    }

    /// The ticks a scheduler that last enqueued `last` enqueues at `now`:
    /// every tick since, in order, while the oldest of them is at most
    /// `lateAfter` seconds old (the scheduler's rounds keep up); only the
    /// latest one after an outage that left an older tick behind, however
    /// many it missed.
    public func dueTicks(after last: Date, notAfter now: Date, lateAfter: TimeInterval) -> [Date] {
        guard let first = next(after: last), first <= now else { return [] }
        if first < now.addingTimeInterval(-lateAfter) {
            return latestTick(after: last, notAfter: now).map { [$0] } ?? []
        }
        var ticks = [first]
        while let following = next(after: ticks[ticks.count - 1]), following <= now {
            ticks.append(following)
        }
        return ticks
    }

    /// The latest time this expression fires at or before `now` and after
    /// `last`, or nil when none does.
    public func latestTick(after last: Date, notAfter now: Date) -> Date? {
        guard var tick = next(after: last), tick <= now else { return nil }
        // Skip ahead over a long outage: the first tick within the last
        // second, minute or hour (the narrowest window that has one) is
        // found directly, and only the rest of that window is walked tick
        // by tick.
        for window in [1.0, 60, 3600] {
            if let recent = next(after: now.addingTimeInterval(-window)), recent <= now {
                tick = max(tick, recent)
                break
            }
        }
        while let following = next(after: tick), following <= now {
            tick = following
        }
        return tick
    }

    private func matches(dayOfMonth: Int, weekday: Int) -> Bool {
        let byDay = daysOfMonth.contains(dayOfMonth)
        let byWeekday = weekdays.contains(weekday)
        if dayOfMonthRestricted && weekdayRestricted { return byDay || byWeekday }
        return byDay && byWeekday
    }

    /// The instant a wall time stands for (see `next(after:)`).
    private func instantOf(wall: WallSeconds) -> Int64 {
        // Offsets in force around this wall time; no zone moves by more
        // than a day.
        let candidates = Set([offset(wall - 86_400), offset(wall), offset(wall + 86_400),
                              offset(wall - 43_200), offset(wall + 43_200)])
        let valid = candidates.map { wall - $0 }.filter { offset($0) == wall - $0 }
        if let first = valid.min() { return first }
        // In a gap: the first instant whose wall time is past it. Between
        // the instants the two offsets give, the offset changes once;
        // bisect for that moment.
        let bounds = candidates.map { wall - $0 }
        var low = bounds.min()!, high = bounds.max()!
        let lowOffset = offset(low)
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if offset(middle) == lowOffset { low = middle } else { high = middle }
        }
        return high
    }

    /// Days since 1970-01-01 to the proleptic Gregorian (year, month, day),
    /// counting in 400-year eras of 146,097 days that start on 1 March, so
    /// the leap day falls at the end of each era year.
    static func civil(fromDays days: Int64) -> (year: Int, month: Int, day: Int) {
        let shifted = days + 719_468  // days from 0000-03-01
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153  // 0 = March
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }

    /// 1970-01-01 was a Thursday (4).
    static func weekday(days: Int64) -> Int {
        Int(((days % 7) + 7 + 4) % 7)
    }
}
