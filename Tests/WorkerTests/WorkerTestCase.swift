import Foundation
import HLTestSupport
import JobQueue
import KVMTestSupport
import XCTest

/// Base of the end-to-end tests. Each test gets a freshly migrated database
/// of its own with the demo guest registered through the CLI, inserts jobs
/// with plain SQL as users do, and runs real `hl-worker` processes against
/// it. Tests wait for the database to show what they expect, polling with a
/// generous deadline; they never sleep and hope.
class WorkerTestCase: XCTestCase {
    private(set) var database: TestDatabase!
    private var connection: PGConnection?
    private var workers: [WorkerProcess] = []
    private var logDirectory: URL!

    static let finalStates = ["completed", "discarded", "cancelled"]

    override func setUpWithError() throws {
        if let reason = KVMRequirement.unavailableReason() {
            if KVMRequirement.isRequired { XCTFail(reason) }
            throw XCTSkip(reason)
        }
        for guest in ["demo", "hello_c", "isolation"] {
            let path = RepositoryPaths.guest(guest).path
            guard FileManager.default.fileExists(atPath: path) else {
                let reason = "\(path) is missing; run guests/build.sh"
                if KVMRequirement.isRequired { XCTFail(reason) }
                throw XCTSkip(reason)
            }
        }
        guard let adminURL = try TestDatabase.adminURL() else { throw XCTSkip(TestDatabase.skipMessage) }
        database = try TestDatabase(adminURL: adminURL)
        logDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("hl-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        try addGuest("demo")
    }

    override func tearDownWithError() throws {
        for worker in workers { worker.kill() }
        if let logDirectory {
            // hasSucceeded is false until the run finishes, after tearDown.
            if let run = testRun, run.totalFailureCount > 0 {
                // XCTest on Linux has no attachments: the logs go to the
                // test output, and the files stay for a closer look.
                for worker in workers { print(worker.logTail(lines: 80)) }
            } else {
                try? FileManager.default.removeItem(at: logDirectory)
            }
        }
        workers = []
        connection = nil
        try database?.drop()
    }

    // MARK: Workers and the CLI

    /// Starts `hl-worker` (the root command is the service) on this test's
    /// database and waits until it has registered itself.
    @discardableResult
    func startWorker(concurrency: Int = 4, _ options: [String] = [], stallStandardError: Bool = false,
                     environment: [String: String] = [:],
                     file: StaticString = #filePath, line: UInt = #line) throws -> WorkerProcess {
        let id = "e2e-\(workers.count + 1)-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        let worker = try WorkerProcess(
            id: id,
            arguments: ["--database-url", database.url, "--worker-id", id, "--concurrency", "\(concurrency)"] + options,
            logURL: logDirectory.appendingPathComponent("\(id).log"), stallStandardError: stallStandardError,
            environment: environment)
        workers.append(worker)
        try waitUntil("worker \(id) registers in hl.workers", timeout: 30, file: file, line: line) {
            try sql("SELECT 1 FROM hl.workers WHERE id = $1", [id]).rowCount == 1
        }
        return worker
    }

    /// Starts `hl-worker` without waiting for it to register (its id may be
    /// another's); `expectingExit`: it should refuse to run, ask
    /// `exitStatus(within:)`.
    func launchWorker(id: String? = nil, _ arguments: [String], environment: [String: String] = [:],
                      expectingExit: Bool = true) throws -> WorkerProcess {
        let id = id ?? "e2e-\(workers.count + 1)-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        let worker = try WorkerProcess(
            id: id, arguments: ["--database-url", database.url, "--worker-id", id] + arguments,
            logURL: logDirectory.appendingPathComponent("\(id)-\(workers.count + 1).log"),
            environment: environment, expectingExit: expectingExit)
        workers.append(worker)
        return worker
    }

    /// `hl-worker guest add NAME ELF`, as an operator registers a guest.
    func addGuest(_ name: String, elf: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let path = RepositoryPaths.guest(elf ?? name).path
        let (status, output) = try WorkerProcess.command(["guest", "add", "--database-url", database.url, name, path])
        XCTAssertEqual(status, 0, "hl-worker guest add \(name) \(path): \(output)", file: file, line: line)
    }

    // MARK: SQL

    /// Runs a statement on the test's own connection, reconnecting first if
    /// the server dropped it (the restart test takes the server away).
    @discardableResult
    func sql(_ text: String, _ params: [String?] = []) throws -> PGResult {
        if let connection, connection.isConnected {
            return try connection.execute(text, params: params)
        }
        let fresh = try database.connect()
        connection = fresh
        return try fresh.execute(text, params: params)
    }

    /// Inserts one job with plain SQL, naming only the columns given, so
    /// that every other column takes the table's default; returns its id.
    @discardableResult
    func insertJob(_ function: String, args: String = "{}", guest: String = "demo", priority: Int? = nil,
                   maxAttempts: Int? = nil, timeoutMs: Int? = nil, memoryMb: Int? = nil, vm: String? = nil,
                   runAtSQL: String? = nil) throws -> Int64 {
        var columns = ["guest", "function", "args"]
        var values = ["$1", "$2", "$3::jsonb"]
        var params: [String?] = [guest, function, args]
        for (column, value, type) in [("priority", priority.map(String.init), "smallint"),
                                      ("max_attempts", maxAttempts.map(String.init), "integer"),
                                      ("timeout_ms", timeoutMs.map(String.init), "integer"),
                                      ("memory_mb", memoryMb.map(String.init), "integer"),
                                      ("vm", vm, "text")] {
            guard let value else { continue }
            params.append(value)
            columns.append(column)
            values.append("$\(params.count)::\(type)")
        }
        if let runAtSQL {
            columns.append("run_at")
            values.append(runAtSQL)
        }
        let row = try sql("INSERT INTO hl.jobs (\(columns.joined(separator: ", "))) VALUES (\(values.joined(separator: ", "))) RETURNING id",
                          params).singleRow()
        return try row.required("id", row.int64)
    }

    /// After `count` `add` jobs: each completed right on its first attempt,
    /// was claimed exactly once (the state history counts one `running` per
    /// job), and every worker in `workers` took part, since otherwise the run
    /// would prove nothing about sharing.
    func assertAddJobsRanRightOnce(_ count: Int, by workers: [WorkerProcess],
                                   file: StaticString = #filePath, line: UInt = #line) throws {
        let summary = try sql("""
            SELECT count(*) AS jobs,
                   count(*) FILTER (WHERE state = 'completed' AND attempt = 1 AND errors = '[]'
                       AND (result->>'sum')::bigint = (args->>'a')::bigint + (args->>'b')::bigint) AS right_once
            FROM hl.jobs
            """).singleRow()
        XCTAssertEqual(try summary.int("jobs"), count, file: file, line: line)
        XCTAssertEqual(try summary.int("right_once"), count, "jobs not completed right on their first attempt",
                       file: file, line: line)
        let claims = try sql("""
            SELECT count(*) FILTER (WHERE claims <> 1) AS not_once, coalesce(sum(claims), 0) AS claims
            FROM (SELECT job_id, count(*) FILTER (WHERE state = 'running') AS claims
                  FROM e2e_state_changes GROUP BY job_id) AS per_job
            """).singleRow()
        XCTAssertEqual(try claims.int("not_once"), 0, "jobs claimed other than once", file: file, line: line)
        XCTAssertEqual(try claims.int("claims"), count, file: file, line: line)
        let runners = Set(try sql("SELECT DISTINCT attempted_by FROM hl.jobs").rows.compactMap { $0.string("attempted_by") })
        XCTAssertEqual(runners, Set(workers.map(\.id)), file: file, line: line)
    }

    /// Waits (10 s: a spinning guest ends that fast only if its vCPU was
    /// stopped) for `id` to end cancelled on its first attempt by `worker`.
    func assertCancelledPromptly(_ id: Int64, by worker: WorkerProcess,
                                 file: StaticString = #filePath, line: UInt = #line) throws {
        try waitUntilFinal(id, timeout: 10, file: file, line: line)
        let row = try job(id, file: file, line: line)
        XCTAssertEqual(row.state, "cancelled", "\(row)", file: file, line: line)
        if let entry = row.errors.first {
            assertErrorEntry(entry, kind: "cancelled", attempt: 1, worker: worker.id, file: file, line: line)
        }
    }

    /// `id` is back in the queue as if never claimed: available, no attempt
    /// used, no worker named.
    func assertHandedBackUnstarted(_ id: Int64, _ why: String = "",
                                   file: StaticString = #filePath, line: UInt = #line) throws {
        let row = try job(id, file: file, line: line)
        XCTAssertEqual(row.state, "available", "\(row)", file: file, line: line)
        XCTAssertEqual(row.attempt, 0, "\(why)\(row)", file: file, line: line)
        XCTAssertNil(row.attemptedBy, "\(row)", file: file, line: line)
    }

    func job(_ id: Int64, file: StaticString = #filePath, line: UInt = #line) throws -> JobRow {
        let row = try XCTUnwrap(try sql("""
            SELECT state, attempt, result::text AS result, errors::text AS errors, attempted_by,
                   finished_at IS NOT NULL AS finished
            FROM hl.jobs WHERE id = $1
            """, [String(id)]).rows.first, "job \(id) not found", file: file, line: line)
        let errorsJSON = try row.required("errors", row.string)
        let errors = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(errorsJSON.utf8)) as? [[String: Any]],
                                   "errors of job \(id): \(errorsJSON)", file: file, line: line)
        return JobRow(id: id, state: try row.required("state", row.string), attempt: try row.required("attempt", row.int),
                      resultJSON: row.string("result"), errors: errors, attemptedBy: row.string("attempted_by"),
                      finished: try row.required("finished", row.bool))
    }

    /// Asserts the job completed with `expected` as its result (compared as
    /// jsonb, so spacing and key order do not matter), on its first attempt.
    func assertCompleted(_ id: Int64, result expected: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let job = try job(id, file: file, line: line)
        XCTAssertEqual(job.state, "completed", "job \(id): \(job)", file: file, line: line)
        XCTAssertEqual(job.attempt, 1, "job \(id): \(job)", file: file, line: line)
        XCTAssertTrue(job.errors.isEmpty, "job \(id): \(job)", file: file, line: line)
        let matches = try sql("SELECT result = $2::jsonb AS matches FROM hl.jobs WHERE id = $1", [String(id), expected])
        XCTAssertEqual(try matches.singleRow().bool("matches"), true,
                       "job \(id): result \(job.resultJSON ?? "NULL"), expected \(expected)", file: file, line: line)
    }

    /// Asserts the job was discarded after `attempts` attempts, each with an
    /// error entry that names its attempt, the worker, a time, a message and
    /// `kind`.
    func assertDiscarded(_ id: Int64, kind: String, attempts: Int = 1, by worker: WorkerProcess,
                         file: StaticString = #filePath, line: UInt = #line) throws {
        let job = try job(id, file: file, line: line)
        XCTAssertEqual(job.state, "discarded", "job \(id): \(job)", file: file, line: line)
        XCTAssertEqual(job.attempt, attempts, "job \(id): \(job)", file: file, line: line)
        XCTAssertTrue(job.finished, "job \(id) has no finished_at", file: file, line: line)
        XCTAssertEqual(job.errors.count, attempts, "job \(id): \(job)", file: file, line: line)
        for (index, entry) in job.errors.enumerated() {
            assertErrorEntry(entry, kind: kind, attempt: index + 1, worker: worker.id, file: file, line: line)
        }
    }

    func assertErrorEntry(_ entry: [String: Any], kind: String, attempt: Int, worker: String,
                          file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(entry["kind"] as? String, kind, "\(entry)", file: file, line: line)
        XCTAssertEqual((entry["attempt"] as? NSNumber)?.intValue, attempt, "\(entry)", file: file, line: line)
        XCTAssertEqual(entry["worker"] as? String, worker, "\(entry)", file: file, line: line)
        XCTAssertFalse((entry["message"] as? String ?? "").isEmpty, "no message: \(entry)", file: file, line: line)
        XCTAssertNotNil((entry["at"] as? String).flatMap(Self.parseTimestamp), "no time: \(entry)", file: file, line: line)
    }

    /// jsonb writes now() as 2024-01-02T03:04:05.123456+00:00.
    static func parseTimestamp(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }

    /// Jobs per state.
    func stateCounts() throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try sql("SELECT state, count(*) AS n FROM hl.jobs GROUP BY state").rows {
            counts[try row.required("state", row.string)] = try row.required("n", row.int)
        }
        return counts
    }

    // MARK: Waiting

    /// Polls `condition` until it holds. Fails, with the job counts and the
    /// workers' log tails, when `timeout` passes or when a worker that should
    /// be running has exited. A lost database connection is retried until
    /// the deadline: the restart test waits through one.
    func waitUntil(_ what: @autoclosure () -> String, timeout: TimeInterval = 60,
                   file: StaticString = #filePath, line: UInt = #line, _ condition: () throws -> Bool) throws {
        let deadline = Date(timeIntervalSinceNow: timeout)
        var lastError: PGError?
        while true {
            do {
                if try condition() { return }
                lastError = nil
            } catch let error as PGError where error.isConnectionFailure {
                connection = nil
                lastError = error
            }
            if let dead = workers.first(where: { $0.shouldBeRunning && !$0.isRunning }) {
                throw failure("worker \(dead.id) exited while waiting until \(what())", lastError: lastError,
                              file: file, line: line)
            }
            if Date() >= deadline {
                throw failure("timed out after \(Int(timeout)) s waiting until \(what())", lastError: lastError,
                              file: file, line: line)
            }
            usleep(50_000)
        }
    }

    func waitUntilAllFinal(timeout: TimeInterval = 60, file: StaticString = #filePath, line: UInt = #line) throws {
        try waitUntil("every job is final", timeout: timeout, file: file, line: line) {
            try sql("SELECT count(*) AS n FROM hl.jobs WHERE state NOT IN ('completed', 'discarded', 'cancelled')")
                .singleRow().int("n") == 0
        }
    }

    func waitUntilFinal(_ id: Int64, timeout: TimeInterval = 60, file: StaticString = #filePath, line: UInt = #line) throws {
        try waitUntil("job \(id) is final", timeout: timeout, file: file, line: line) {
            Self.finalStates.contains(try job(id).state)
        }
    }

    func waitUntilRunning(_ ids: [Int64], by worker: WorkerProcess, timeout: TimeInterval = 60,
                          file: StaticString = #filePath, line: UInt = #line) throws {
        try waitUntil("jobs \(ids) run on \(worker.id)", timeout: timeout, file: file, line: line) {
            try ids.allSatisfy { id in
                let job = try job(id)
                return job.state == "running" && job.attemptedBy == worker.id
            }
        }
    }

    /// Records the failure where the test waited, with what the database
    /// and the workers say; the error it returns ends the test.
    private func failure(_ message: String, lastError: PGError?, file: StaticString, line: UInt) -> WaitFailure {
        var text = message
        if let lastError { text += "\nlast database error: \(lastError)" }
        if let counts = try? stateCounts() { text += "\njobs by state: \(counts)" }
        for worker in workers { text += "\n" + worker.logTail() }
        XCTFail(text, file: file, line: line)
        return WaitFailure(message: message)
    }

    // MARK: State history

    /// Records every state a job takes, with a test-only trigger in this
    /// test's private database: the exact path a job took, with no race
    /// against states that last only milliseconds. `delay_s` is how far in
    /// the future run_at was set by the change (the retry backoff).
    func recordStateChanges() throws {
        try sql("""
            CREATE TABLE e2e_state_changes (
                seq bigserial PRIMARY KEY, job_id bigint NOT NULL, state text NOT NULL,
                attempt integer NOT NULL, delay_s float8 NOT NULL)
            """)
        try sql("""
            CREATE FUNCTION e2e_record_state() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO e2e_state_changes (job_id, state, attempt, delay_s)
                VALUES (NEW.id, NEW.state, NEW.attempt, extract(epoch FROM NEW.run_at - now()));
                RETURN NULL;
            END $$
            """)
        try sql("""
            CREATE TRIGGER e2e_record_insert AFTER INSERT ON hl.jobs
                FOR EACH ROW EXECUTE FUNCTION e2e_record_state()
            """)
        try sql("""
            CREATE TRIGGER e2e_record_update AFTER UPDATE ON hl.jobs
                FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION e2e_record_state()
            """)
    }

    /// The states job `id` went through, in order, with each change's attempt
    /// and run_at delay.
    func stateHistory(_ id: Int64) throws -> [(state: String, attempt: Int, delay: Double)] {
        try sql("SELECT state, attempt, delay_s FROM e2e_state_changes WHERE job_id = $1 ORDER BY seq", [String(id)])
            .rows.map { row in
                (try row.required("state", row.string), try row.required("attempt", row.int),
                 try row.required("delay_s", row.double))
            }
    }
}

/// A job row as the tests look at it.
struct JobRow: CustomStringConvertible {
    var id: Int64
    var state: String
    var attempt: Int
    var resultJSON: String?
    var errors: [[String: Any]]
    var attemptedBy: String?
    var finished: Bool

    var description: String {
        "state=\(state) attempt=\(attempt) result=\(resultJSON ?? "NULL") attempted_by=\(attemptedBy ?? "NULL") errors=\(errors)"
    }
}

struct WaitFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

extension PGError {
    /// The server is unreachable or went away; a new connection may succeed.
    var isConnectionFailure: Bool {
        switch self {
        case .connectFailed, .connectionLost: return true
        case .queryFailed, .unexpectedResult: return false
        }
    }
}
