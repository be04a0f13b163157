import Foundation
import Worker
import XCTest

/// The metrics an operator alerts on, checked against the job table: the
/// per-queue gauges come from one worker at a time, the VM gauges and
/// counters follow the pool, and the process metrics and build info exist.
final class MetricsEndToEndTests: WorkerTestCase {
    private func startWithMetrics(_ options: [String]) throws -> (WorkerProcess, Int) {
        let port = try freePort()
        let worker = try startWorker(concurrency: 2, ["--metrics-port", "\(port)", "--metrics-host", "127.0.0.1"] + options)
        return (worker, port)
    }

    private func count(_ predicate: String) throws -> Double {
        Double(try sql("SELECT count(*) AS n FROM hl.jobs WHERE \(predicate)").singleRow().int("n") ?? -1)
    }

    func testQueueGaugesAgreeWithTheTableAndComeFromOneWorker() throws {
        // Jobs in queues these workers do not serve, so the counts hold still.
        try sql("""
            INSERT INTO hl.jobs (queue, guest, function, run_at)
            SELECT 'waiting', 'demo', 'add', now() - interval '90 seconds' FROM generate_series(1, 3)
            UNION ALL SELECT 'waiting', 'demo', 'add', now() + interval '1 hour' FROM generate_series(1, 2)
            """)
        let (first, firstPort) = try startWithMetrics(["--queues", "elsewhere"])
        let (second, secondPort) = try startWithMetrics(["--queues", "elsewhere"])
        let series = #"hl_queue_jobs{queue="waiting",state="available"}"#
        var pages: [String] = []
        try waitUntil("one worker exports the queue gauges", timeout: 30) {
            pages = [firstPort, secondPort].map { self.get("/metrics", port: $0)?.body ?? "" }
            return pages.contains { self.sample($0, series) != nil }
        }
        XCTAssertEqual(pages.filter { sample($0, series) != nil }.count, 1, "exactly one exporter")
        let page = try XCTUnwrap(pages.first { sample($0, series) != nil })
        XCTAssertEqual(sample(page, series), try count("queue = 'waiting' AND state = 'available' AND run_at <= now()"))
        XCTAssertEqual(sample(page, #"hl_queue_jobs{queue="waiting",state="scheduled"}"#),
                       try count("queue = 'waiting' AND run_at > now()"))
        XCTAssertEqual(sample(page, #"hl_queue_jobs{queue="waiting",state="running"}"#), 0)
        XCTAssertEqual(try XCTUnwrap(sample(page, #"hl_queue_oldest_available_age_seconds{queue="waiting"}"#)), 90,
                       accuracy: 30)

        // The exporter goes away; the other takes the lease over.
        let leaderPort = sample(pages[0], series) != nil ? firstPort : secondPort
        let survivorPort = leaderPort == firstPort ? secondPort : firstPort
        (leaderPort == firstPort ? first : second).kill()
        try waitUntil("the other worker exports the queue gauges", timeout: 60) {
            self.sample(self.get("/metrics", port: survivorPort)?.body ?? "", series) == 3
        }
    }

    func testVMProcessAndOutcomeMetrics() throws {
        let (_, port) = try startWithMetrics(["--vm", "recycled"])
        try sql("""
            INSERT INTO hl.jobs (guest, function, args, max_attempts)
            SELECT 'demo', 'add', jsonb_build_object('a', i, 'b', 1), 1 FROM generate_series(1, 6) AS i
            UNION ALL SELECT 'demo', 'crash', '{}', 1
            """)
        try waitUntilAllFinal()
        var page = ""
        try waitUntil("/metrics agrees with the table", timeout: 20) {
            page = self.get("/metrics", port: port)?.body ?? ""
            return self.sample(page, #"hl_jobs_finished_total{queue="default",guest="demo",outcome="completed"}"#) == 6
                && self.sample(page, #"hl_vms_created_total{mode="recycled"}"#) ?? 0 >= 1
        }
        XCTAssertEqual(sample(page, #"hl_jobs_finished_total{queue="default",guest="demo",outcome="failed"}"#),
                       try count("state = 'discarded'"))
        let idle = try XCTUnwrap(sample(page, "hl_vms_recycled_idle"))
        XCTAssertGreaterThanOrEqual(idle, 1)
        XCTAssertEqual(sample(page, #"hl_vms_live{mode="recycled"}"#), idle, "no job runs: every live VM is idle")
        XCTAssertNotNil(sample(page, "hl_vms_fresh_stock"))
        XCTAssertEqual(sample(page, #"hl_build_info{version="\#(HLVersion.current)"}"#), 1)
        XCTAssertGreaterThan(try XCTUnwrap(sample(page, "process_resident_memory_bytes")), 1_048_576)
        XCTAssertGreaterThan(try XCTUnwrap(sample(page, "process_open_fds")), 3)
        XCTAssertGreaterThan(try XCTUnwrap(sample(page, "process_cpu_seconds_total")), 0)
        XCTAssertFalse(page.contains("hl_vms_created{"), "the old gauge is gone")
    }

    /// The queue wait runs from when a job became due (its run_at) to its
    /// start, so a job that waited an hour shows an hour, not the instant
    /// between its claim and its start.
    func testQueueWaitStartsWhenTheJobBecameDue() throws {
        try sql("INSERT INTO hl.jobs (guest, function, args, run_at) VALUES ('demo', 'add', '{\"a\": 1, \"b\": 2}', now() - interval '1 hour')")
        let (_, port) = try startWithMetrics([])
        try waitUntilAllFinal()
        var page = ""
        try waitUntil("the wait is exported", timeout: 20) {
            page = self.get("/metrics", port: port)?.body ?? ""
            return self.sample(page, "hl_job_queue_wait_seconds_count") == 1
        }
        XCTAssertEqual(try XCTUnwrap(sample(page, "hl_job_queue_wait_seconds_sum")), 3600, accuracy: 120)
    }
}
