import Foundation
import HLTestSupport
import JobQueue
import Worker
import XCTest

/// The operator's path through the real binary: start-up that waits only
/// for what can heal, migrations the binary carries, the job commands by
/// role, `status` for a dashboard login, and a second signal that ends the
/// drain at once.
final class CommandLineEndToEndTests: WorkerTestCase {
    private var logins: [String] = []

    override func tearDownWithError() throws {
        try super.tearDownWithError()
        if let adminURL = try TestDatabase.adminURL() {
            let admin = try PGConnection(conninfo: adminURL)
            for login in logins { try admin.execute("DROP ROLE IF EXISTS \(login)") }
        }
    }

    /// A login in `group` and a URL for it.
    private func login(in group: String) throws -> String {
        // Only [a-z0-9_]: safe to splice into SQL.
        let name = "hl_t_\(getpid())_\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        try sql("CREATE ROLE \(name) LOGIN IN ROLE \(group)")
        logins.append(name)
        return try PGConnection.conninfo(database.url, replacing: ["user": name])
    }

    private func run(_ arguments: [String], environment: [String: String?] = [:]) throws -> (status: Int32, output: String) {
        try WorkerProcess.command(arguments, environment: environment)
    }

    /// Exit 1 and exactly one line that contains `expected`.
    private func assertOneLineFailure(_ arguments: [String], environment: [String: String?] = [:], _ expected: String,
                                      file: StaticString = #filePath, line: UInt = #line) throws {
        let (status, output) = try run(arguments, environment: environment)
        XCTAssertEqual(status, 1, output, file: file, line: line)
        let lines = output.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, output, file: file, line: line)
        XCTAssertTrue(output.contains(expected), "expected \(expected) in: \(output)", file: file, line: line)
    }

    func testVersionAndHelpTextForEveryArgumentAndLimit() throws {
        let (status, version) = try run(["--version"])
        XCTAssertEqual(status, 0)
        XCTAssertEqual(version.trimmingCharacters(in: .whitespacesAndNewlines), HLVersion.current)

        let serveHelp = try run(["serve", "--help"]).output
        for fact in ["1048560", "host calls", "10000", "--max-guest-log-bytes", "4096", "86400000",
                     "HL_MIGRATIONS_DIR", "HL_LOG_LEVEL", "hl-worker migrate"] {
            XCTAssertTrue(serveHelp.contains(fact), "serve --help lacks \(fact):\n\(serveHelp)")
        }
        XCTAssertFalse(serveHelp.contains("novm"), "the benchmark-only mode is not offered")
        XCTAssertTrue(try run(["--help"]).output.contains("HL_MIGRATIONS_DIR"))
        // Every argument and option of every command has help text: on its
        // own line after the name, or on the next, indented further.
        for command in [["enqueue"], ["job", "show"], ["job", "cancel"], ["job", "retry"], ["status"], ["migrate"],
                        ["queue", "pause"], ["queue", "resume"], ["guest", "add"], ["serve"]] {
            let lines = try run(command + ["--help"]).output.split(separator: "\n", omittingEmptySubsequences: false)
            for (index, line) in lines.enumerated() where line.hasPrefix("  -") || line.hasPrefix("  <") {
                // The names ("-x, --name <value>") come first; help text follows.
                let inline = !line.split(separator: " ")
                    .drop { $0.hasPrefix("-") || $0.hasPrefix("<") }.isEmpty
                let below = index + 1 < lines.count && lines[index + 1].hasPrefix("          ")
                    && !lines[index + 1].trimmingCharacters(in: .whitespaces).isEmpty
                XCTAssertTrue(inline || below, "\(command.joined(separator: " ")): no help for \(line)")
            }
        }
    }

    func testStartUpExitsWithOneActionableLineOnWhatCannotHeal() throws {
        let unset = Dictionary(uniqueKeysWithValues: (["DATABASE_URL"] + ["PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE",
                                                                          "PGUSER", "PGSERVICE"]).map { ($0, String?.none) })
        try assertOneLineFailure(["serve"], environment: unset, "no database configured: set DATABASE_URL")
        try assertOneLineFailure(["serve", "--database-url", "notaurl://x"], "malformed")
        try assertOneLineFailure(["status", "--database-url", "notaurl://x"], "malformed")
        let missing = try PGConnection.conninfo(database.url, replacing: ["dbname": "hl_no_such_db_\(getpid())"])
        try assertOneLineFailure(["serve", "--database-url", missing], "does not exist; create it")
        let stranger = try PGConnection.conninfo(database.url, replacing: ["user": "hl_no_such_role_\(getpid())"])
        try assertOneLineFailure(["serve", "--database-url", stranger], "PostgreSQL refused the login")
        try assertOneLineFailure(["serve", "--database-url", database.url, "--vm", "novm"], "--vm must be fresh or recycled")

        // A database nobody migrated, then one migrated by an older binary.
        let empty = try TestDatabase(adminURL: try XCTUnwrap(try TestDatabase.adminURL()), migrate: false)
        defer { try? empty.drop() }
        try assertOneLineFailure(["serve", "--database-url", empty.url], "run: hl-worker migrate")
        try sql("DELETE FROM hl.schema_migrations WHERE version = (SELECT max(version) FROM hl.schema_migrations)")
        try assertOneLineFailure(["serve", "--database-url", database.url], "older than this hl-worker's")
        // A schema from before the version check itself (migration 0008).
        try sql("DROP FUNCTION hl.schema_version()")
        try assertOneLineFailure(["serve", "--database-url", database.url], "older than this hl-worker (")
    }

    /// A server that refuses connections is waited for, and said so once,
    /// on one line, however many tries it takes.
    func testRefusedConnectionsAreRetriedAndLoggedOnce() throws {
        let closed = try PGConnection.conninfo(database.url, replacing: ["host": "127.0.0.1", "port": "1"])
        let worker = try launchWorker(["--database-url", closed], expectingExit: false)
        // Backoff from 0.1 s: about six tries in four seconds.
        Thread.sleep(forTimeInterval: 4)
        XCTAssertTrue(worker.isRunning, worker.logTail())
        let waits = worker.log.split(separator: "\n").filter { $0.contains("cannot use the database yet") }
        XCTAssertEqual(waits.count, 1, worker.logTail())
        XCTAssertTrue(waits.first?.contains("connection refused") ?? false, worker.logTail())
        worker.terminate()
    }

    /// A copy of the binary, run far from any checkout, migrates an empty
    /// database to the schema it was built with.
    func testACopiedBinaryMigratesWithTheMigrationsItCarries() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hl-copy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("hl-worker")
        try FileManager.default.copyItem(at: WorkerProcess.binary, to: copy)
        let empty = try TestDatabase(adminURL: try XCTUnwrap(try TestDatabase.adminURL()), migrate: false)
        defer { try? empty.drop() }

        let (status, output) = try WorkerProcess.command(["migrate", "--database-url", empty.url],
                                                         environment: ["HL_MIGRATIONS_DIR": nil], binary: copy,
                                                         directory: URL(fileURLWithPath: "/"))
        XCTAssertEqual(status, 0, output)
        let names = try Migrator.migrations(in: Migrator.locateMigrationsDirectory()).map(\.name)
        XCTAssertEqual(output.split(separator: "\n").map(String.init), names.map { "applied \($0)" })
        let version = try empty.connect().execute("SELECT max(version) AS v FROM hl.schema_migrations").singleRow()
        XCTAssertEqual(try version.int("v"), Migrator.latestVersion)

        let elsewhere = try WorkerProcess.command(["migrate", "--database-url", empty.url],
                                                  environment: ["HL_MIGRATIONS_DIR": "/nonexistent"], binary: copy)
        XCTAssertEqual(elsewhere.status, 1)
        XCTAssertTrue(elsewhere.output.contains("/nonexistent"), elsewhere.output)
    }

    func testEnqueueTakesEveryColumnAndRefusesWithOneLine() throws {
        let (status, output) = try run([
            "enqueue", "--database-url", database.url, "demo", "add", #"{"a": 1, "b": 2}"#, "--queue", "q1",
            "--priority", "-5", "--run-at", "2030-01-31T12:00:00Z", "--max-attempts", "7", "--timeout-ms", "1500",
            "--memory-mb", "32", "--vm", "recycled",
        ])
        XCTAssertEqual(status, 0, output)
        let id = try XCTUnwrap(Int64(output.trimmingCharacters(in: .whitespacesAndNewlines)), output)
        let row = try sql("""
            SELECT queue, priority, run_at = '2030-01-31T12:00:00Z' AS at, max_attempts, timeout_ms, memory_mb, vm,
                   args = '{"a": 1, "b": 2}' AS args
            FROM hl.jobs WHERE id = $1
            """, [String(id)]).singleRow()
        XCTAssertEqual(row.string("queue"), "q1")
        XCTAssertEqual(try row.int("priority"), -5)
        XCTAssertEqual(try row.bool("at"), true)
        XCTAssertEqual(try row.int("max_attempts"), 7)
        XCTAssertEqual(try row.int("timeout_ms"), 1500)
        XCTAssertEqual(try row.int("memory_mb"), 32)
        XCTAssertEqual(row.string("vm"), "recycled")
        XCTAssertEqual(try row.bool("args"), true)

        let base = ["enqueue", "--database-url", database.url, "demo", "add"]
        try assertOneLineFailure(base + ["--memory-mb", "4"], "invalid_job: jobs_memory_range: memory_mb 4")
        try assertOneLineFailure(base + ["[1, 2]"], "invalid_job: jobs_args_object")
        try assertOneLineFailure(base + ["--priority", "-500"], "jobs_priority_range")
        try assertOneLineFailure(base + ["--run-at", "tomorrow"], "is not an ISO 8601 time")
    }

    func testJobCommandsActByTheCallersRole() throws {
        let alice = try login(in: "hl_enqueue")
        let bob = try login(in: "hl_enqueue")
        let dashboard = try login(in: "hl_dashboard")
        func enqueue(as url: String) throws -> String {
            let (status, output) = try run(["enqueue", "--database-url", url, "demo", "add", "--run-at", "2030-01-01T00:00:00Z"])
            XCTAssertEqual(status, 0, output)
            return output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let alices = try enqueue(as: alice)
        _ = try enqueue(as: bob)

        try assertOneLineFailure(["job", "show", "--database-url", bob, alices], "not_found")
        try assertOneLineFailure(["job", "cancel", "--database-url", bob, alices], "not_found")
        try assertOneLineFailure(["job", "cancel", "--database-url", dashboard, alices], "permission_denied")
        let cancel = try run(["job", "cancel", "--database-url", alice, alices])
        XCTAssertEqual(cancel.status, 0, cancel.output)
        XCTAssertEqual(try job(Int64(alices)!).state, "cancelled")
        try assertOneLineFailure(["job", "retry", "--database-url", bob, alices], "not_found")
        let retry = try run(["job", "retry", "--database-url", alice, alices])
        XCTAssertEqual(retry.status, 0, retry.output)
        XCTAssertEqual(try job(Int64(alices)!).state, "available")
        try assertOneLineFailure(["job", "retry", "--database-url", alice, alices], "only discarded or cancelled jobs")
        let show = try run(["job", "show", "--database-url", database.url, alices])
        XCTAssertEqual(show.status, 0, show.output)
        XCTAssertTrue(show.output.contains("state         available"), show.output)
        XCTAssertTrue(show.output.contains("attempt       0 of 3"), show.output)
    }

    /// `job show` prints the workflow fields; retrying a job whose unique
    /// key another waiting job holds is refused in one line, not a raw
    /// constraint error.
    func testJobShowsWorkflowFieldsAndRetryNamesATakenUniqueKey() throws {
        let first = try sql("""
            INSERT INTO hl.jobs (guest, function, args, unique_key, state, finished_at)
            VALUES ('demo', 'add', '{"a": 1, "b": 2}', 'nightly', 'discarded', now()) RETURNING id
            """).singleRow().int64("id") ?? -1
        let second = try sql("""
            INSERT INTO hl.jobs (guest, function, args, unique_key, run_at)
            VALUES ('demo', 'add', '{"a": 1, "b": 2}', 'nightly', now() + interval '1 hour') RETURNING id
            """).singleRow().int64("id") ?? -1
        try assertOneLineFailure(["job", "retry", "--database-url", database.url, "\(first)"], "unique_key_taken")
        let show = try run(["job", "show", "--database-url", database.url, "\(second)"])
        XCTAssertEqual(show.status, 0, show.output)
        XCTAssertTrue(show.output.contains("unique_key    nightly"), show.output)
        XCTAssertTrue(show.output.contains("depends_on    -"), show.output)
    }

    func testStatusShowsScheduledPausedAndWorkerQueuesToADashboardLogin() throws {
        let dashboard = try login(in: "hl_dashboard")
        try insertJob("add", args: #"{"a": 1, "b": 2}"#, runAtSQL: "now() + interval '1 hour'")
        try sql("INSERT INTO hl.jobs (queue, guest, function) VALUES ('held', 'demo', 'add')")
        XCTAssertEqual(try run(["queue", "pause", "--database-url", database.url, "held"]).status, 0)
        let worker = try startWorker(concurrency: 1, ["--queues", "default,other"])

        let (status, output) = try run(["status", "--database-url", dashboard])
        XCTAssertEqual(status, 0, output)
        let lines = output.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        XCTAssertTrue(lines.contains(["default", "0", "1", "0", "0", "-", "-"]), output)
        XCTAssertTrue(lines.contains { $0.first == "held" && $0[1] == "1" && $0.last?.hasPrefix("paused since") == true },
                      output)
        XCTAssertTrue(lines.contains { $0.first == worker.id && $0.contains("default,other") }, output)
        worker.terminate()
    }

    /// SIGTERM drains; a second one ends the grace period at once: the
    /// running job is interrupted and handed back unstarted.
    func testASecondSignalStopsTheDrainAtOnce() throws {
        let spinning = try insertJob("spin", maxAttempts: 1, timeoutMs: 120_000)
        let worker = try startWorker(concurrency: 1, ["--shutdown-grace", "120"])
        try waitUntilRunning([spinning], by: worker)
        worker.send(SIGTERM)
        try waitUntil("the worker starts draining", timeout: 10) { worker.log.contains("stopping: no new claims") }
        XCTAssertTrue(worker.isRunning, "the first signal waits for the running job")
        worker.send(SIGTERM)
        XCTAssertEqual(worker.exitStatus(within: 20), 0, worker.logTail())
        try assertHandedBackUnstarted(spinning, "a job interrupted by the second signal goes back: ")
    }
}
