import Foundation
import HLTestSupport
import XCTest

/// Periodic jobs, unique keys and guest-enqueued children with real
/// `hl-worker` processes on a real PostgreSQL, including the concurrent
/// cases: two workers and one schedule, racing producers, and a worker
/// killed between a parent's completion and its children's claim.
final class WorkflowEndToEndTests: WorkerTestCase {
    private func cli(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let (status, output) = try WorkerProcess.command(arguments)
        XCTAssertEqual(status, 0, "hl-worker \(arguments.joined(separator: " ")): \(output)", file: file, line: line)
        return output
    }

    /// Two workers run the scheduler against one schedule that fires every
    /// second: every tick becomes exactly one job, and no second is lost
    /// while they run.
    func testTwoWorkersOneScheduleOneJobPerTick() throws {
        let added = try cli(["schedule", "add", "--database-url", database.url, "every-second", "* * * * * *",
                             "demo", "add", #"{"a":1,"b":2}"#])
        XCTAssertTrue(added.contains("added every-second"), added)
        let workers = [try startWorker(concurrency: 2), try startWorker(concurrency: 2)]
        try waitUntil("six ticks enqueued", timeout: 60) {
            let row = try sql("SELECT count(*) AS n FROM hl.jobs WHERE unique_key LIKE 'schedule:every-second:%'").singleRow()
            return try row.int("n") ?? 0 >= 6
        }
        XCTAssertTrue(try cli(["schedule", "pause", "--database-url", database.url, "every-second"]).contains("paused"))
        let list = try cli(["schedule", "list", "--database-url", database.url])
        XCTAssertTrue(list.contains("every-second") && list.contains("paused"), list)
        try waitUntilAllFinal()
        let row = try sql("""
            SELECT count(*) AS jobs, count(DISTINCT unique_key) AS ticks,
                   count(*) FILTER (WHERE state = 'completed' AND (result->>'sum')::int = 3) AS done,
                   extract(epoch FROM max(created_at) - min(created_at))::float8 AS span
            FROM hl.jobs WHERE unique_key LIKE 'schedule:every-second:%'
            """).singleRow()
        let jobs = try row.required("jobs", row.int), ticks = try row.required("ticks", row.int)
        XCTAssertEqual(jobs, ticks, "one job per tick, however the two workers' rounds interleave")
        XCTAssertEqual(try row.int("done"), jobs)
        // Consecutive seconds: the ticks' keys name every second between
        // the first and the last.
        let keys = try sql("SELECT unique_key FROM hl.jobs WHERE unique_key LIKE 'schedule:every-second:%' ORDER BY 1")
            .rows.compactMap { $0.string("unique_key") }
        let seconds = keys.compactMap { Self.parseTimestamp(String($0.dropFirst("schedule:every-second:".count))) }
        XCTAssertEqual(seconds.count, keys.count)
        if let first = seconds.first, let last = seconds.last {
            XCTAssertEqual(Int(last.timeIntervalSince(first)) + 1, seconds.count, "no tick lost or doubled: \(keys)")
        }
        let status = try cli(["status", "--database-url", database.url])
        XCTAssertTrue(status.contains("SCHEDULE") && status.contains("every-second"), status)
        workers.forEach { $0.terminate() }
    }

    /// Producers racing the same key through `hl-worker enqueue
    /// --unique-key`: one job, one id printed.
    func testProducersRacingOneUniqueKeyMakeOneJob() throws {
        let outputs = Collected<String>()
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            if let (status, output) = try? WorkerProcess.command(
                ["enqueue", "--database-url", database.url, "--unique-key", "nightly-report", "demo", "add", #"{"a":2,"b":3}"#]),
               status == 0 {
                outputs.append(output)
            }
        }
        XCTAssertEqual(outputs.values.count, 6, "every producer succeeds: a taken key is not an error")
        let ids = outputs.values.compactMap { output in
            output.split(separator: "\n").first { Int64($0) != nil }.flatMap { Int64($0) }
        }
        XCTAssertEqual(ids.count, 1, "exactly one producer got an id: \(outputs.values)")
        XCTAssertEqual(try sql("SELECT count(*) AS n FROM hl.jobs").singleRow().int("n"), 1)
        let worker = try startWorker(concurrency: 1)
        try waitUntilAllFinal()
        try assertCompleted(ids[0], result: #"{"sum": 5}"#)
        // Finished, the key is free again.
        let again = try cli(["enqueue", "--database-url", database.url, "--unique-key", "nightly-report", "demo", "add",
                             #"{"a":2,"b":3}"#])
        XCTAssertNotNil(again.split(separator: "\n").first { Int64($0) != nil }, again)
        worker.terminate()
    }

    /// Fan-out/fan-in: a parent splits work into parts and a combine job;
    /// the worker that completed the parent is killed (SIGKILL) before any
    /// child is claimed. The children exist exactly once, and another
    /// worker runs them and the combine job, which adds up their results.
    func testFanOutFanInWithAWorkerKilledBetweenParentAndChildren() throws {
        try addGuest("fanout")
        let numbers = (1...200).map(String.init).joined(separator: ",")
        let row = try sql("""
            INSERT INTO hl.jobs (queue, guest, function, args)
            VALUES ('fanout-split', 'fanout', 'split', $1::jsonb) RETURNING id
            """, [#"{"numbers":[\#(numbers)],"parts":5,"guest":"fanout","queue":"fanout-parts"}"#]).singleRow()
        let splitID = try row.required("id", row.int64)

        // This worker serves the parent's queue only, so it never claims a child.
        let splitter = try startWorker(concurrency: 1, ["--queues", "fanout-split"])
        try waitUntilFinal(splitID)
        splitter.kill()
        try assertCompleted(splitID, result: #"{"parts": 5}"#)
        let children = try sql("""
            SELECT count(*) AS n, count(*) FILTER (WHERE function = 'sum' AND state = 'available') AS parts,
                   count(*) FILTER (WHERE function = 'combine' AND state = 'pending') AS combine
            FROM hl.jobs WHERE parent_id = $1
            """, [String(splitID)]).singleRow()
        XCTAssertEqual(try children.int("n"), 6, "five parts and one combine job, once")
        XCTAssertEqual(try children.int("parts"), 5)
        XCTAssertEqual(try children.int("combine"), 1)

        let runner = try startWorker(concurrency: 2, ["--queues", "fanout-parts", "--rescue-after", "5"])
        try waitUntilAllFinal(timeout: 90)
        let combine = try sql("SELECT id, state, result::text AS result FROM hl.jobs WHERE function = 'combine'").singleRow()
        XCTAssertEqual(combine.string("state"), "completed")
        XCTAssertEqual(combine.string("result"), #"{"parts": 5, "total": 20100}"#, "1 + ... + 200 through five parts")
        XCTAssertEqual(try sql("SELECT count(*) AS n FROM hl.jobs").singleRow().int("n"), 7, "nothing enqueued twice")
        XCTAssertEqual(try sql("SELECT count(*) AS n FROM hl.jobs WHERE state <> 'completed'").singleRow().int("n"), 0)
        runner.terminate()
    }

    /// A parent killed (SIGKILL with its worker) after enqueuing, then
    /// retried and never completing: none of its children ever exist.
    func testAParentThatNeverCompletesLeavesNoChildren() throws {
        try addGuest("fanout")
        let split = try insertJob("split", args: #"{"numbers":[1,2,3],"parts":3,"guest":"fanout","then_spin":true}"#,
                                  guest: "fanout", maxAttempts: 2, timeoutMs: 120_000)
        let doomed = try startWorker(concurrency: 1)
        try waitUntilRunning([split], by: doomed)
        doomed.kill()
        let rescuer = try startWorker(concurrency: 1, ["--rescue-after", "5", "--max-timeout-ms", "1000",
                                                       "--default-timeout-ms", "1000"])
        try waitUntilAllFinal(timeout: 90)
        let parent = try job(split)
        XCTAssertEqual(parent.state, "discarded", "\(parent)")
        XCTAssertEqual(parent.errors.map { $0["kind"] as? String }, ["worker_lost", "timeout"], "\(parent)")
        XCTAssertEqual(try sql("SELECT count(*) AS n FROM hl.jobs").singleRow().int("n"), 1,
                       "two attempts enqueued three jobs each; neither completed, so none exists")
        rescuer.terminate()
    }

    /// A failed part cancels the combine job waiting on it.
    func testAFailedPartCancelsTheCombineJob() throws {
        try addGuest("fanout")
        let split = try insertJob("split", args: #"{"numbers":[1,2,"three",4],"parts":2,"guest":"fanout"}"#, guest: "fanout")
        let worker = try startWorker(concurrency: 2)
        try waitUntilAllFinal()
        XCTAssertEqual(try job(split).state, "completed")
        let rows = try sql("SELECT function, state, errors::text AS errors FROM hl.jobs WHERE parent_id = $1 ORDER BY id",
                           [String(split)]).rows
        XCTAssertEqual(rows.map { $0.string("state") }, ["completed", "discarded", "cancelled"], "\(rows.map { $0.string("errors") })")
        XCTAssertTrue(rows.last?.string("errors")?.contains("dependency_failed") ?? false)
        worker.terminate()
    }

    /// The C SDK's hl_enqueue: children inserted with the completion, and
    /// a call past the per-call limit refused, failing that job with the
    /// host's reason and inserting none of its children.
    func testACGuestEnqueuesWithinThePerCallLimit() throws {
        try addGuest("hello_c")
        let ok = try insertJob("spawn", args: #"{"count":3}"#, guest: "hello_c")
        let tooMany = try insertJob("spawn", args: #"{"count":101}"#, guest: "hello_c", maxAttempts: 1)
        let worker = try startWorker(concurrency: 2)
        try waitUntilAllFinal()
        try assertCompleted(ok, result: #"{"enqueued": 3}"#)
        let children = try sql("SELECT args::text AS args, state, result::text AS result FROM hl.jobs WHERE parent_id = $1 ORDER BY id",
                               [String(ok)]).rows
        XCTAssertEqual(children.map { $0.string("args") }, [#"{"n": 0}"#, #"{"n": 1}"#, #"{"n": 2}"#])
        XCTAssertEqual(children.map { $0.string("state") }, ["completed", "completed", "completed"])
        try assertDiscarded(tooMany, kind: "guest_error", by: worker)
        XCTAssertTrue(try job(tooMany).errors.first?["message"].map { "\($0)" }?.contains("at most 100 jobs") ?? false)
        XCTAssertEqual(try sql("SELECT count(*) AS n FROM hl.jobs WHERE parent_id = $1", [String(tooMany)]).singleRow().int("n"), 0,
                       "a job that did not complete enqueued nothing")
        worker.terminate()
    }

    /// The Rust SDK's `hl::enqueue` and `hl::progress`, and the Wasm
    /// imports behind hl_enqueue and hl_progress (hello_c built through
    /// Wasm as hello_c_wasm): children inserted with the parent's
    /// completion run, a refusal past the per-call limit fails the parent
    /// with the host's reason, and a parent that spins after enqueuing
    /// shows its progress while it runs and, cancelled, leaves no children.
    func testRustAndWasmGuestsEnqueueChildrenAndReportProgress() throws {
        try addGuest("hello_rust")
        try addGuest("hello_c_wasm")
        let cases: [(guest: String, extra: String)] = [("hello_rust", ""), ("hello_c_wasm", #","guest":"hello_c_wasm""#)]
        var parents: [(ok: Int64, tooMany: Int64, spinning: Int64)] = []
        for (guest, extra) in cases {
            parents.append((
                ok: try insertJob("spawn", args: #"{"count":3\#(extra)}"#, guest: guest),
                tooMany: try insertJob("spawn", args: #"{"count":101\#(extra)}"#, guest: guest, maxAttempts: 1),
                spinning: try insertJob("spawn", args: #"{"count":2,"spin":1\#(extra)}"#, guest: guest, timeoutMs: 60_000)))
        }
        let worker = try startWorker(concurrency: 2)
        for ((guest, _), parent) in zip(cases, parents) {
            try waitUntil("\(guest)'s spinning parent's progress is written", timeout: 30) {
                try sql("SELECT 1 FROM hl.job_progress WHERE id = $1 AND fraction = 1 AND note = 'spawning'",
                        [String(parent.spinning)]).rowCount == 1
            }
            try sql("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = $1", [String(parent.spinning)])
        }
        try waitUntilAllFinal()
        for ((guest, _), parent) in zip(cases, parents) {
            try assertCompleted(parent.ok, result: #"{"enqueued": 3}"#)
            let children = try sql("""
                SELECT guest, args::text AS args, state, result::text AS result FROM hl.jobs WHERE parent_id = $1 ORDER BY id
                """, [String(parent.ok)]).rows
            XCTAssertEqual(children.map { $0.string("guest") }, [guest, guest, guest])
            XCTAssertEqual(children.map { $0.string("args") }, [#"{"n": 0}"#, #"{"n": 1}"#, #"{"n": 2}"#], guest)
            XCTAssertEqual(children.map { $0.string("state") }, ["completed", "completed", "completed"], guest)
            XCTAssertEqual(children.map { $0.string("result") }, [#"{"n": 0}"#, #"{"n": 1}"#, #"{"n": 2}"#], guest)
            try assertDiscarded(parent.tooMany, kind: "guest_error", by: worker)
            let message = try job(parent.tooMany).errors.first?["message"].map { "\($0)" } ?? ""
            XCTAssertTrue(message.contains("at most 100 jobs"), "\(guest): \(message)")
            XCTAssertEqual(try job(parent.spinning).state, "cancelled", guest)
            for id in [parent.tooMany, parent.spinning] {
                XCTAssertEqual(try sql("SELECT count(*) AS n FROM hl.jobs WHERE parent_id = $1", [String(id)]).singleRow().int("n"),
                               0, "\(guest): a job that did not complete enqueued nothing")
            }
        }
        worker.terminate()
    }

    /// A guest's progress shows in hl.job_progress while it runs.
    func testProgressIsVisibleWhileTheJobRuns() throws {
        try addGuest("fanout")
        let id = try insertJob("crawl", args: #"{"note":"halfway there"}"#, guest: "fanout", timeoutMs: 60_000)
        let worker = try startWorker(concurrency: 1)
        try waitUntil("the crawl job's progress is written", timeout: 30) {
            try sql("SELECT 1 FROM hl.job_progress WHERE id = $1 AND fraction = 0.5 AND note = 'halfway there'",
                    [String(id)]).rowCount == 1
        }
        try sql("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = $1", [String(id)])
        try waitUntilFinal(id)
        XCTAssertEqual(try job(id).state, "cancelled")
        worker.terminate()
    }
}

