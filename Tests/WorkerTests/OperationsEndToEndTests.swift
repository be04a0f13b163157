import Foundation
import HLTestSupport
import JobQueue
import XCTest

/// What an operator watches, against a real worker: /metrics agrees with the
/// job table, and /healthz turns 503 while the database is unreachable.
final class OperationsEndToEndTests: WorkerTestCase {
    /// A port nothing listens on right now.
    private func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw WorkerProcessError(message: "cannot find a free port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// GET on 127.0.0.1:port; nil while nothing answers.
    private func get(_ path: String, port: Int) -> (status: Int, body: String)? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { return nil }
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        guard request.withCString({ send(fd, $0, strlen($0), 0) }) > 0 else { return nil }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            response.append(contentsOf: buffer[0..<count])
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let statusLine = text.split(separator: "\r\n").first,
              let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") else { return nil }
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, body)
    }

    /// The value of one sample line (`name{labels} value`) of /metrics.
    private func sample(_ metrics: String, _ series: String) -> Double? {
        for line in metrics.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

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
}
