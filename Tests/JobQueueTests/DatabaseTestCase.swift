import Foundation
import HLTestSupport
import JobQueue
import XCTest

/// A test case with its own freshly migrated database.
class DatabaseTestCase: XCTestCase {
    var database: TestDatabase!
    var connection: PGConnection!
    var store: JobStore!
    /// Retries come due within a fraction of a second, so tests wait little.
    let fastBackoff = Backoff(baseSeconds: 0.02, maxSeconds: 0.5)

    override func setUpWithError() throws {
        guard let adminURL = try TestDatabase.adminURL() else { throw XCTSkip(TestDatabase.skipMessage) }
        database = try TestDatabase(adminURL: adminURL)
        connection = try database.connect()
        store = JobStore(connection: connection, backoff: fastBackoff)
    }

    override func tearDownWithError() throws {
        store = nil
        connection = nil
        try database?.drop()
    }

    /// Inserts jobs the way users do, with plain SQL; returns their ids.
    @discardableResult
    func insertJobs(
        _ count: Int = 1, queue: String = "default", guest: String = "demo", function: String = "echo",
        args: String = "{}", priority: Int = 0, on connection: PGConnection? = nil
    ) throws -> [Int64] {
        let result = try (connection ?? self.connection).execute(
            """
            INSERT INTO hl.jobs (queue, guest, function, args, priority)
            SELECT $1, $2, $3, $4::jsonb, $5::smallint FROM generate_series(1, $6::int)
            RETURNING id
            """, params: [queue, guest, function, args, String(priority), String(count)])
        return try result.rows.map { try $0.required("id", $0.int64) }.sorted()
    }

    func job(_ id: Int64) throws -> JobRecord {
        try XCTUnwrap(try store.job(id: id), "job \(id) not found")
    }

    func errors(of id: Int64) throws -> [[String: Any]] {
        let json = try job(id).errorsJSON
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
    }

    /// Registers a worker process under `workerID`; returns it, with its
    /// instance, for the calls fenced by it.
    @discardableResult
    func register(_ workerID: String, on store: JobStore? = nil) throws -> WorkerInfo {
        let worker = WorkerInfo(id: workerID, host: "test-host", pid: getpid(), concurrency: 4, queues: nil, version: "test")
        XCTAssertEqual(try (store ?? self.store).registerWorker(worker, liveWithin: 30), .registered)
        return worker
    }

    /// Claims until a job comes due (a retry waiting out its backoff), or
    /// fails after `timeout` seconds.
    func claimWhenDue(workerID: String, timeout: TimeInterval = 10) throws -> ClaimedJob {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let job = try store.claim(workerID: workerID, queues: nil, limit: 1).first { return job }
            usleep(5_000)
        }
        throw TimedOut(what: "a job to come due")
    }
}

struct TimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}

extension XCTestCase {
    /// A directory holding `files` (name: contents), removed after the test.
    func temporaryDirectory(files: [String: String]) throws -> String {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("hl-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        for (name, contents) in files {
            try contents.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        return directory.path
    }
}
