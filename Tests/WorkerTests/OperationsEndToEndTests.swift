import Foundation
import HLTestSupport
import JobQueue
import XCTest

/// What an operator watches, against a real worker: /metrics agrees with the
/// job table, and /healthz turns 503 while the database is unreachable.
final class OperationsEndToEndTests: WorkerTestCase {
    func testMetricsCountWhatTheJobTableHolds() throws {
        try addGuest("demo")
        let port = try freePort()
        let worker = try startWorker(concurrency: 2, ["--metrics-port", "\(port)", "--metrics-host", "127.0.0.1"])
        try sql("""
            INSERT INTO hl.jobs (guest, function, args, max_attempts)
            SELECT 'demo', 'add', jsonb_build_object('a', i, 'b', 1), 1 FROM generate_series(1, 30) AS i
            UNION ALL SELECT 'demo', 'crash', '{}', 1 FROM generate_series(1, 4)
            UNION ALL SELECT 'demo', 'no_such_function', '{}', 3 FROM generate_series(1, 3)
            """)
        try waitUntilAllFinal()
        let completed = try sql("SELECT count(*) AS n FROM hl.jobs WHERE state = 'completed'").singleRow().int("n")
        XCTAssertEqual(completed, 30)
        // Outcomes are counted as they are handed to the completer, which
        // may be a moment before the table shows them; wait for agreement.
        var metrics = ""
        try waitUntil("/metrics agrees with the table", timeout: 10) {
            metrics = get("/metrics", port: port)?.body ?? ""
            return sample(metrics, "hl_jobs_completed_total") == 30
        }
        XCTAssertEqual(sample(metrics, "hl_jobs_claimed_total"), 37)
        XCTAssertEqual(sample(metrics, #"hl_jobs_failed_total{kind="guest_crash"}"#), 4)
        XCTAssertEqual(sample(metrics, #"hl_jobs_failed_total{kind="unknown_function"}"#), 3)
        XCTAssertEqual(sample(metrics, "hl_slots"), 2)
        XCTAssertEqual(sample(metrics, "hl_job_run_seconds_count"), 37)
        XCTAssertNotNil(sample(metrics, #"hl_vms_acquired_total{mode="fresh"}"#))
        XCTAssertEqual(get("/healthz", port: port)?.status, 200)
        worker.terminate()
    }

    func testHealthzIsUnavailableWhileTheDatabaseIsAway() throws {
        try addGuest("demo")
        let port = try freePort()
        let worker = try startWorker(concurrency: 1, ["--metrics-port", "\(port)", "--metrics-host", "127.0.0.1"])
        try waitUntil("/healthz answers 200", timeout: 30) { get("/healthz", port: port)?.status == 200 }

        // Take the database away from the worker alone: refuse new
        // connections to it and end the ones it holds.
        let admin = try PGConnection(conninfo: try XCTUnwrap(try TestDatabase.adminURL()))
        try admin.execute("ALTER DATABASE \(database.name) WITH ALLOW_CONNECTIONS false")
        defer { _ = try? admin.execute("ALTER DATABASE \(database.name) WITH ALLOW_CONNECTIONS true") }
        try admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", params: [database.name])
        try waitUntil("/healthz answers 503", timeout: 60) { get("/healthz", port: port)?.status == 503 }
        XCTAssertTrue(worker.isRunning, "the worker rides out the outage")

        try admin.execute("ALTER DATABASE \(database.name) WITH ALLOW_CONNECTIONS true")
        try waitUntil("/healthz answers 200 again", timeout: 60) { get("/healthz", port: port)?.status == 200 }
        // The test's own connection was ended too; waitUntil reconnects it.
        try waitUntil("the test reconnects") { try sql("SELECT 1").rowCount == 1 }
        let id = try insertJob("add", args: #"{"a": 2, "b": 2}"#)
        try waitUntilFinal(id)
        XCTAssertEqual(try job(id).state, "completed")
        worker.terminate()
    }

    /// The metrics server listens before the worker first reaches the
    /// database: a probe reads 503 (not a refused connection) until it has.
    func testHealthzListensFromStartUpAndTurnsHealthyOnceTheDatabaseIsReached() throws {
        try addGuest("demo")
        let port = try freePort()
        let admin = try PGConnection(conninfo: try XCTUnwrap(try TestDatabase.adminURL()))
        try admin.execute("ALTER DATABASE \(database.name) WITH ALLOW_CONNECTIONS false")
        defer { _ = try? admin.execute("ALTER DATABASE \(database.name) WITH ALLOW_CONNECTIONS true") }
        let worker = try launchWorker(["--concurrency", "1", "--metrics-port", "\(port)", "--metrics-host", "127.0.0.1"],
                                      expectingExit: false)
        try waitUntil("/healthz answers 503 while the database refuses the worker", timeout: 30) {
            get("/healthz", port: port)?.status == 503
        }
        XCTAssertEqual(get("/metrics", port: port)?.status, 200)
        XCTAssertTrue(worker.isRunning)
        try admin.execute("ALTER DATABASE \(database.name) WITH ALLOW_CONNECTIONS true")
        try waitUntil("/healthz answers 200 once connected", timeout: 60) { get("/healthz", port: port)?.status == 200 }
        worker.terminate()
    }
}
