import Foundation
import HLTestSupport
import JobQueue
import XCTest

/// What one tenant (a database login, a worker process misconfigured next
/// to another) can do to others' jobs through real hl-worker processes.
final class TenantIsolationEndToEndTests: WorkerTestCase {
    /// Login roles made by a test; roles belong to the cluster, so they are
    /// dropped after the test's database.
    private var logins: [String] = []

    override func tearDownWithError() throws {
        try super.tearDownWithError()
        guard !logins.isEmpty, let adminURL = try TestDatabase.adminURL() else { return }
        let admin = try PGConnection(conninfo: adminURL)
        for login in logins { try admin.execute("DROP ROLE IF EXISTS \(login)") }
    }

    /// A connection as a new login that is a member of `group`.
    private func connect(asMemberOf group: String) throws -> PGConnection {
        // Only [a-z0-9_]: safe to splice into SQL.
        let name = "hl_t_\(getpid())_\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        try sql("CREATE ROLE \(name) LOGIN IN ROLE \(group)")
        logins.append(name)
        return try PGConnection(conninfo: PGConnection.conninfo(database.url, replacing: ["user": name]))
    }

    // MARK: Cancellation

    /// Any login can pg_notify on hl_cancel with a running job's id (ids are
    /// sequential). The worker used to stop that job and record it
    /// cancelled; now it runs to its own end, while a real request, made by
    /// the job's owner through hl.my_jobs, still stops a job at once.
    func testForgedCancelNotificationsDoNotStopAJob() throws {
        let tenant = try connect(asMemberOf: "hl_enqueue")
        let dashboard = try connect(asMemberOf: "hl_dashboard")
        // Another tenant's job; it spins until its 3 s timeout ends it.
        let victim = try insertJob("spin", maxAttempts: 1, timeoutMs: 3000)
        let worker = try startWorker(concurrency: 1)
        try waitUntilRunning([victim], by: worker)

        for forger in [tenant, dashboard] {
            for payload in [String(victim), "", "\(victim),\(victim + 1)"] {
                try forger.execute("SELECT pg_notify('hl_cancel', $1)", params: [payload])
            }
            try forger.execute("SELECT pg_notify('hl_jobs', $1)", params: [String(victim)])
        }

        try waitUntilFinal(victim)
        let row = try job(victim)
        XCTAssertEqual(row.state, "discarded", "it ran to its timeout, not cancelled: \(row)")
        XCTAssertEqual(row.errors.count, 1, "\(row)")
        if let entry = row.errors.first { assertErrorEntry(entry, kind: "timeout", attempt: 1, worker: worker.id) }

        // The tenant cancels a job of its own, the one way there is.
        let own = try XCTUnwrap(try tenant.execute(
            "INSERT INTO hl.my_jobs (guest, function, timeout_ms) VALUES ('demo', 'spin', 120000) RETURNING id"
        ).singleRow().int64("id"))
        try waitUntilRunning([own], by: worker)
        try tenant.execute("UPDATE hl.my_jobs SET cancel_requested_at = now() WHERE id = $1", params: [String(own)])
        try assertCancelledPromptly(own, by: worker)
        worker.terminate()
    }

    // MARK: Worker ids

    /// A second process started with the --worker-id of a live one used to
    /// take the first one's running job for its own stray and requeue it (a
    /// job running twice at once), and delete the shared row on exit. Now
    /// it refuses to start, with one line that says what to do.
    func testASecondWorkerWithALiveWorkersIDRefusesToStart() throws {
        try recordStateChanges()
        let first = try startWorker(concurrency: 1)
        let spinning = try insertJob("spin", timeoutMs: 120_000)
        try waitUntilRunning([spinning], by: first)

        let second = try launchWorker(id: first.id, ["--concurrency", "1"])
        let status = second.exitStatus(within: 30)
        XCTAssertEqual(status, 1, "the second worker must exit 1\n\(second.logTail())")
        let lines = second.log.split(separator: "\n").filter { $0.contains("is in use by a live worker") }
        XCTAssertEqual(lines.count, 1, second.logTail())
        XCTAssertTrue(lines.first?.contains("--worker-id \(first.id)") ?? false, second.logTail())

        XCTAssertEqual(try stateHistory(spinning).map(\.state), ["available", "running"], "claimed once, never requeued")
        XCTAssertTrue(try job(spinning).errors.isEmpty)
        XCTAssertEqual(try sql("SELECT count(*) AS n FROM hl.workers WHERE id = $1", [first.id]).singleRow().int("n"), 1,
                       "the first worker's row is still there")
        // The first worker still owns its job: it is the one that stops it.
        try sql("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = $1", [String(spinning)])
        try assertCancelledPromptly(spinning, by: first)
        first.terminate()
    }

    /// A worker frozen past --rescue-after is presumed dead, and a new
    /// process may take its id. When the old one wakes up it must neither
    /// heartbeat for the id nor hand back the new one's running job as a
    /// stray: it learns it lost the id and exits 1.
    func testAWorkerWhoseIDWasTakenOverWhileFrozenStops() throws {
        try recordStateChanges()
        let rescueAfter = ["--concurrency", "1", "--rescue-after", "5"]
        let old = try startWorker(concurrency: 1, ["--rescue-after", "5"])
        old.send(SIGSTOP)
        try waitUntil("the frozen worker's heartbeat is stale") {
            try sql("SELECT now() - heartbeat_at > interval '5 seconds' AS stale FROM hl.workers WHERE id = $1",
                    [old.id]).singleRow().bool("stale") == true
        }
        let new = try launchWorker(id: old.id, rescueAfter, expectingExit: false)
        try waitUntil("the new process owns the id") {
            try sql("SELECT pid FROM hl.workers WHERE id = $1", [old.id]).rows.first?.int("pid") == Int(new.pid)
        }
        let spinning = try insertJob("spin", timeoutMs: 120_000)
        try waitUntilRunning([spinning], by: new)

        old.send(SIGCONT)
        XCTAssertEqual(old.exitStatus(within: 30), 1, old.logTail())
        XCTAssertEqual(old.log.split(separator: "\n").filter { $0.contains("was taken over by pid \(new.pid)") }.count, 1,
                       old.logTail())
        // Claimed once, never handed back and claimed again.
        XCTAssertEqual(try stateHistory(spinning).map(\.state), ["available", "running"])
        XCTAssertEqual(try sql("SELECT pid FROM hl.workers WHERE id = $1", [old.id]).rows.first?.int("pid"), Int(new.pid))
        try sql("UPDATE hl.jobs SET cancel_requested_at = now() WHERE id = $1", [String(spinning)])
        try waitUntilFinal(spinning, timeout: 10)
        XCTAssertEqual(try job(spinning).state, "cancelled")
        new.terminate()
    }

    // MARK: Memory limits

    /// A worker whose worst case (every slot and every idle recycled VM at
    /// --max-memory-mb) would not fit its cgroup's memory limit would let
    /// any producer get it OOM-killed: it refuses to start, and one that
    /// fits runs jobs.
    func testAWorkerOverItsMemoryLimitRefusesToStart() throws {
        let cgroup = try temporaryCgroup(memoryMax: 256 << 20)
        let tooBig = try launchWorker(["--concurrency", "2", "--max-memory-mb", "512"],
                                             environment: ["HL_CGROUP_ROOT": cgroup])
        XCTAssertEqual(tooBig.exitStatus(within: 30), 1, tooBig.logTail())
        let lines = tooBig.log.split(separator: "\n").filter { $0.contains("exceeds the memory limit of 256 MiB") }
        XCTAssertEqual(lines.count, 1, tooBig.logTail())
        XCTAssertEqual(try sql("SELECT count(*) AS n FROM hl.workers").singleRow().int("n"), 0)

        // 4 VMs × (24 + 2) MiB + 128 MiB = 232 MiB.
        let fitting = try startWorker(concurrency: 2, ["--max-memory-mb", "24"], environment: ["HL_CGROUP_ROOT": cgroup])
        let id = try insertJob("add", args: #"{"a": 2, "b": 3}"#)
        try waitUntilFinal(id)
        try assertCompleted(id, result: #"{"sum": 5}"#)
        fitting.terminate()
    }

    /// A cgroup directory of its own whose memory.max is `memoryMax`: the
    /// worker walks up from its own cgroup to this root and finds it there.
    private func temporaryCgroup(memoryMax: Int) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("hl-cgroup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: root) }
        try "\(memoryMax)\n".write(to: root.appendingPathComponent("memory.max"), atomically: true, encoding: .utf8)
        return root.path
    }
}
