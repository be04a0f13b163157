import Foundation
import HLTestSupport
import KVMTestSupport
import XCTest

/// The PostgreSQL server restarted under a working worker: every connection
/// drops, the worker reconnects, and no job is lost or run twice.
final class DatabaseRestartEndToEndTests: WorkerTestCase {
    /// Runs `scripts/pg.sh COMMAND`, which manages the test cluster, to its
    /// end. Not with Foundation's Process: the postmaster that `restart`
    /// leaves running would inherit the socket Process watches to learn of
    /// the script's exit, and Process would wait for the server to exit too.
    /// So posix_spawn, with every descriptor above stderr closed in the child.
    private func pgScript(_ command: String) throws -> (status: Int32, output: String) {
        let script = RepositoryPaths.root.appendingPathComponent("scripts/pg.sh").path
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("hl-pg-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let prepared = [
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0),
            posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600),
            posix_spawn_file_actions_adddup2(&actions, 1, 2),
            spawnActionsAddCloseFrom(&actions, 3),
        ]
        guard prepared.allSatisfy({ $0 == 0 }) else {
            throw WorkerProcessError(message: "posix_spawn file actions failed: \(prepared)")
        }
        let arguments = ["/bin/bash", script, command].map { $0.withCString { strdup($0) } } + [nil]
        defer { arguments.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/bash", &actions, nil, arguments, environ)
        guard spawned == 0 else {
            throw WorkerProcessError(message: "posix_spawn /bin/bash \(script): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // WIFEXITED / WEXITSTATUS, which Swift does not import.
        let exitStatus = status & 0x7F == 0 ? (status >> 8) & 0xFF : -1
        return (exitStatus, output)
    }

    func testServerRestartUnderLoadLosesNoJob() throws {
        let managed = try pgScript("url").output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard managed == "DATABASE_URL=" + (try TestDatabase.adminURL() ?? "") else {
            throw XCTSkip("DATABASE_URL is not the cluster scripts/pg.sh runs (\(managed)); this test restarts only that one")
        }
        try recordStateChanges()
        // Two spins outlast the restart, so their outcomes are written only
        // after it; the adds keep the other two slots busy throughout.
        let spins = try (0..<2).map { _ in try insertJob("spin", priority: -1, maxAttempts: 1, timeoutMs: 3_000) }
        try sql("""
            INSERT INTO hl.jobs (guest, function, args)
            SELECT 'demo', 'add', jsonb_build_object('a', i, 'b', 1) FROM generate_series(1, 1000) AS i
            """)
        let worker = try startWorker(concurrency: 4)
        try waitUntilRunning(spins, by: worker)
        try waitUntil("some adds have completed") {
            try sql("SELECT count(*) AS n FROM hl.jobs WHERE state = 'completed'").singleRow().int("n") ?? 0 > 0
        }

        let restart = try pgScript("restart")
        XCTAssertEqual(restart.status, 0, "scripts/pg.sh restart: \(restart.output)")
        try waitUntilAllFinal(timeout: 180)

        for id in spins {
            try assertDiscarded(id, kind: "timeout", by: worker)
        }
        let summary = try sql("""
            SELECT count(*) AS adds,
                   count(*) FILTER (WHERE state = 'completed' AND attempt = 1 AND errors = '[]'
                       AND (result->>'sum')::bigint = (args->>'a')::bigint + 1) AS right_once
            FROM hl.jobs WHERE function = 'add'
            """).singleRow()
        XCTAssertEqual(try summary.int("adds"), 1000)
        XCTAssertEqual(try summary.int("right_once"), 1000, "adds not completed right on their first attempt")
        // A claim whose answer the restart swallowed is handed back and
        // claimed again, which is fine; completing twice is not.
        let completedTwice = try sql("""
            SELECT count(*) AS n FROM (SELECT job_id FROM e2e_state_changes WHERE state = 'completed'
                                       GROUP BY job_id HAVING count(*) > 1) AS twice
            """).singleRow()
        XCTAssertEqual(try completedTwice.int("n"), 0, "jobs completed more than once")

        // Still serving: it hears about new jobs on its new connections.
        XCTAssertTrue(worker.isRunning)
        let after = try insertJob("add", args: #"{"a": 20, "b": 22}"#)
        try waitUntilFinal(after)
        try assertCompleted(after, result: #"{"sum": 42}"#)
        worker.terminate()
    }
}

/// glibc's posix_spawn_file_actions_addclosefrom_np (2.34 and later), which
/// the Glibc module does not import.
@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
private func spawnActionsAddCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32) -> Int32
