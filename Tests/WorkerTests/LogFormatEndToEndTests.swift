import Foundation
import XCTest

/// What the worker's log says about a job, in both formats: the level
/// (from HL_LOG_LEVEL too) filters the guests' lines; every job and guest
/// line names the job, attempt, guest and function; JSON lines carry
/// numbers as numbers, millisecond RFC 3339 times and unescaped slashes;
/// text lines quote values with spaces; a failure says whether it was
/// discarded or when it runs again.
final class LogFormatEndToEndTests: WorkerTestCase {
    private func objects(_ worker: WorkerProcess) -> [[String: Any]] {
        worker.log.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func testJSONLinesCarryTheJobAndHonourHLLogLevel() throws {
        try addGuest("hello_c")
        let worker = try startWorker(concurrency: 1, ["--log-format", "json"], environment: ["HL_LOG_LEVEL": "debug"])
        try sql("INSERT INTO hl.jobs (queue, guest, function, args) VALUES ('team/a', 'hello_c', 'log_flood', $1::jsonb)",
                [#"{"lines": 2, "bytes": 6, "level": 0}"#])
        let id = try XCTUnwrap(try sql("SELECT id FROM hl.jobs").singleRow().int64("id"))
        try waitUntilFinal(id)
        try waitUntil("the job's line reaches the log") {
            self.objects(worker).contains { $0["message"] as? String == "job completed" }
        }
        let lines = objects(worker)
        let guest = lines.filter { $0["message"] as? String == "xxxxxx" }
        XCTAssertEqual(guest.count, 2, "debug guest lines at HL_LOG_LEVEL=debug\n\(worker.logTail())")
        for line in guest + lines.filter({ $0["message"] as? String == "job completed" }) {
            XCTAssertEqual((line["job"] as? NSNumber)?.int64Value, id, "\(line)")
            XCTAssertEqual((line["attempt"] as? NSNumber)?.intValue, 1, "\(line)")
            XCTAssertEqual(line["guest"] as? String, "hello_c", "\(line)")
            XCTAssertEqual(line["function"] as? String, "log_flood", "\(line)")
            XCTAssertEqual(line["queue"] as? String, "team/a", "\(line)")
        }
        for line in lines {
            let time = try XCTUnwrap(line["time"] as? String)
            XCTAssertNotNil(time.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression), time)
        }
        XCTAssertFalse(worker.log.contains(#"\/"#), worker.logTail())
        XCTAssertTrue(worker.log.contains(#""queue":"team/a""#), worker.logTail())
    }

    func testTextLinesQuoteValuesAndSayWhatBecomesOfAFailure() throws {
        let worker = try startWorker(concurrency: 1)
        // A completion's line is debug: at the default level only the
        // failures below are written (one queue, in order, so a line for
        // this job would be in the log before theirs).
        let completed = try insertJob("echo")
        try waitUntilFinal(completed)
        let retried = try insertJob("crash", maxAttempts: 2)
        try waitUntilFinal(retried)
        try waitUntil("both failures reach the log") {
            worker.log.contains("job failed and was discarded")
        }
        let lines = worker.log.split(separator: "\n")
        XCTAssertFalse(lines.contains { $0.contains(" job=\(completed) ") }, worker.logTail())
        let retrying = try XCTUnwrap(lines.first { $0.contains("job failed; retrying in") }, worker.logTail())
        XCTAssertTrue(retrying.contains(" attempt=1 "), String(retrying))
        XCTAssertTrue(retrying.contains(" job=\(retried) "), String(retrying))
        XCTAssertTrue(retrying.contains(#" error="the guest raised an exception"#), String(retrying))
        XCTAssertTrue(retrying.contains(" retry_in_s_min=1.0 "), String(retrying))
        let discarded = try XCTUnwrap(lines.first { $0.contains("job failed and was discarded (no attempts left)") })
        XCTAssertTrue(discarded.contains(" attempt=2 "), String(discarded))
        XCTAssertNotNil(discarded.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "#, options: .regularExpression))

        // Below the default level (info), a guest's debug line is dropped;
        // its info line shows, with the job's fields.
        try addGuest("hello_c")
        let quiet = try insertJob("log_flood", args: #"{"lines": 1, "bytes": 11, "level": 0}"#, guest: "hello_c")
        let loud = try insertJob("log_flood", args: #"{"lines": 1, "bytes": 13, "level": 1}"#, guest: "hello_c")
        try waitUntilFinal(quiet)
        try waitUntilFinal(loud)
        try waitUntil("the info line reaches the log") { worker.log.contains(" " + String(repeating: "x", count: 13)) }
        XCTAssertFalse(worker.log.contains(" " + String(repeating: "x", count: 11) + "\n"), worker.logTail())
        let line = try XCTUnwrap(worker.log.split(separator: "\n").first { $0.hasSuffix(String(repeating: "x", count: 13)) })
        for field in [" job=\(loud) ", " attempt=1 ", " guest=hello_c ", " function=log_flood ", " origin=guest "] {
            XCTAssertTrue(line.contains(field), "\(field) in \(line)")
        }
    }
}
