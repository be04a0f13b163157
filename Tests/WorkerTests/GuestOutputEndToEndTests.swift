import Foundation
import XCTest

/// What a guest sends the host besides its result, through a real worker:
/// its log lines cannot hold a job past its deadline nor stop the worker,
/// and its text (and the submitter's) reaches hl.jobs.errors and the logs
/// escaped.
final class GuestOutputEndToEndTests: WorkerTestCase {
    /// The worker's stderr is a pipe nobody reads, as when a log shipper
    /// stops, and a guest logs as fast as it can: the job's 500 ms timeout
    /// still ends it (a failure bound of 5 s, generous), the worker goes on
    /// running jobs with its stderr still stalled, and /metrics counts the
    /// lines it could not write.
    func testATimeoutHoldsAndTheWorkerGoesOnWhileStderrIsStalled() throws {
        try addGuest("hello_c")
        let port = try freePort()
        // A budget far above what the guest writes: the stalled path is
        // what is tested here, not the budget.
        let worker = try startWorker(concurrency: 2, ["--max-guest-log-bytes", "\(100 << 20)", "--metrics-port", "\(port)",
                                                      "--metrics-host", "127.0.0.1"], stallStandardError: true)
        // 5000 lines, more than the pipe and the stderr queue hold together.
        let flood = try insertJob("log_flood", args: #"{"lines": 5000, "bytes": 100, "spin": 1}"#, guest: "hello_c",
                                  maxAttempts: 1, timeoutMs: 500)
        try waitUntilFinal(flood, timeout: 60)
        try assertDiscarded(flood, kind: "timeout", by: worker)
        let ran = try sql("SELECT extract(epoch FROM finished_at - attempted_at)::float8 AS s FROM hl.jobs WHERE id = $1",
                          [String(flood)]).singleRow().double("s")
        XCTAssertLessThan(try XCTUnwrap(ran), 5, "a job with a 500 ms timeout ran this many seconds")

        // The worker goes on with stderr still stalled. This job logs more
        // lines than the pipe and both log queues (4096 lines each) hold,
        // so some must have been dropped, and counted, by the time it ends.
        let more = try insertJob("log_flood", args: #"{"lines": 9500, "bytes": 100}"#, guest: "hello_c", timeoutMs: 60_000)
        try waitUntilFinal(more, timeout: 90)
        try assertCompleted(more, result: #"{"lines": 9500}"#)
        XCTAssertTrue(worker.isRunning)

        try waitUntil("/metrics counts the log lines dropped", timeout: 30) {
            let metrics = get("/metrics", port: port)?.body ?? ""
            let dropped = ["hl-stderr", "hl-guest-log"].compactMap {
                sample(metrics, #"hl_log_lines_dropped_total{queue="\#($0)"}"#)
            }
            return dropped.reduce(0, +) > 0
        }
    }

    /// `--max-guest-log-bytes 2000`: a job that logs 100 lines of 100 bytes
    /// writes 20 of them and one truncation warning, and completes.
    func testTheGuestLogBudgetBoundsAJobsLines() throws {
        try addGuest("hello_c")
        let worker = try startWorker(concurrency: 1, ["--max-guest-log-bytes", "2000"])
        let flood = try insertJob("log_flood", args: #"{"lines": 100, "bytes": 100}"#, guest: "hello_c")
        try waitUntilFinal(flood)
        try assertCompleted(flood, result: #"{"lines": 100}"#)
        let lines = { () -> [Substring] in
            ((try? String(contentsOf: worker.logURL, encoding: .utf8)) ?? "").split(separator: "\n")
        }
        try waitUntil("the truncation warning reaches the worker's log") {
            lines().contains { $0.contains("guest log truncated") }
        }
        let guestLines = lines().filter { $0.hasSuffix(" " + String(repeating: "x", count: 100)) }
        XCTAssertEqual(guestLines.count, 20, worker.logTail())
        XCTAssertEqual(lines().filter { $0.contains("guest log truncated") }.count, 1, worker.logTail())
    }

    /// `--log-level warning` filters the guests' lines too: an INFO line
    /// never shows, an ERROR line logged after it does (guest lines keep
    /// their order on the way to stderr, and one slot runs the jobs in turn).
    func testTheWorkersLogLevelFiltersGuestLines() throws {
        try addGuest("hello_c")
        let worker = try startWorker(concurrency: 1, ["--log-level", "warning"])
        let info = try insertJob("log_flood", args: #"{"lines": 1, "bytes": 7, "level": 1}"#, guest: "hello_c", priority: 1)
        try waitUntilFinal(info)
        let error = try insertJob("log_flood", args: #"{"lines": 1, "bytes": 9, "level": 3}"#, guest: "hello_c", priority: 2)
        try waitUntilFinal(error)
        let lines = { () -> [Substring] in
            ((try? String(contentsOf: worker.logURL, encoding: .utf8)) ?? "").split(separator: "\n")
        }
        try waitUntil("the guest's ERROR line reaches the worker's log") {
            lines().contains { $0.hasSuffix(" xxxxxxxxx") }
        }
        XCTAssertFalse(lines().contains { $0.hasSuffix(" xxxxxxx") }, worker.logTail())
        try assertCompleted(info, result: #"{"lines": 1}"#)
        try assertCompleted(error, result: #"{"lines": 1}"#)
    }

    static let hostile = "a\u{202E}b\u{2028}c\u{2029}d\u{FEFF}e\u{200B}f\u{2066}g"
    static let hostileEscaped = #"a\u{202E}b\u{2028}c\u{2029}d\u{FEFF}e\u{200B}f\u{2066}g"#
    static let rawCharacters: [Unicode.Scalar] = ["\u{202E}", "\u{2028}", "\u{2029}", "\u{FEFF}", "\u{200B}", "\u{2066}"]

    /// A guest error message and a guest log line carrying bidi overrides,
    /// line and paragraph separators, a BOM and a zero-width space, and a
    /// job naming a guest with such a name: hl.jobs.errors and the worker's
    /// log hold the visible escapes, never the characters.
    func testHostileTextIsEscapedInJobErrorsAndInTheLog() throws {
        let worker = try startWorker()
        let args = try String(decoding: JSONSerialization.data(withJSONObject: ["message": Self.hostile]), as: UTF8.self)
        let failing = try insertJob("fail", args: args, maxAttempts: 1)
        let logging = try insertJob("log", args: args)
        // Migration 0008 refuses such a guest name at INSERT; a row from
        // before it still reaches the worker, whose message escapes it.
        try sql("ALTER TABLE hl.jobs DISABLE TRIGGER jobs_validate")
        let unknown = try insertJob("echo", guest: "demo\u{202E}\u{2028}x")
        try sql("ALTER TABLE hl.jobs ENABLE TRIGGER jobs_validate")
        for id in [failing, logging, unknown] { try waitUntilFinal(id) }

        try assertDiscarded(failing, kind: "guest_error", by: worker)
        XCTAssertEqual(try job(failing).errors.first?["message"] as? String, Self.hostileEscaped)
        try assertCompleted(logging, result: "{}")
        try assertDiscarded(unknown, kind: "unknown_guest", by: worker)
        let unknownMessage = try job(unknown).errors.first?["message"] as? String ?? ""
        XCTAssertTrue(unknownMessage.contains(#"demo\u{202E}\u{2028}x"#), unknownMessage)

        try waitUntil("the guest's log line reaches the worker's log") {
            (try? String(contentsOf: worker.logURL, encoding: .utf8))?.contains(Self.hostileEscaped) ?? false
        }
        let log = try String(contentsOf: worker.logURL, encoding: .utf8)
        for scalar in Self.rawCharacters {
            XCTAssertFalse(log.unicodeScalars.contains(scalar), "U+\(String(scalar.value, radix: 16, uppercase: true)) in the worker's log")
        }
    }
}
