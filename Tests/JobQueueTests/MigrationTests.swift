import Foundation
import HLTestSupport
import JobQueue
import XCTest

final class MigrationTests: XCTestCase {
    private var database: TestDatabase!

    override func setUpWithError() throws {
        guard let adminURL = try TestDatabase.adminURL() else { throw XCTSkip(TestDatabase.skipMessage) }
        database = try TestDatabase(adminURL: adminURL, migrate: false)
    }

    override func tearDownWithError() throws {
        try database?.drop()
    }

    func testMigrateAppliesEverythingOnceAndRecordsIt() throws {
        let connection = try database.connect()
        let directory = try Migrator.locateMigrationsDirectory()
        let all = try Migrator.migrations(in: directory).map(\.name)
        XCTAssertEqual(all.first, "0001_schema")
        XCTAssertEqual(try Migrator.migrate(connection: connection, directory: directory), all)
        XCTAssertEqual(try Migrator.migrate(connection: connection, directory: directory), [])
        let recorded = try connection.execute("SELECT name FROM hl.schema_migrations ORDER BY version")
        XCTAssertEqual(recorded.rows.map { $0.string("name") }, all)
    }

    func testConcurrentRunsApplyEachMigrationExactlyOnce() throws {
        let directory = try Migrator.locateMigrationsDirectory()
        let connections = try (0..<4).map { _ in try database.connect() }
        let outcomes = NSLock()
        var applied: [String] = []
        var failures: [Error] = []
        DispatchQueue.concurrentPerform(iterations: connections.count) { index in
            do {
                let names = try Migrator.migrate(connection: connections[index], directory: directory)
                outcomes.lock()
                applied += names
                outcomes.unlock()
            } catch {
                outcomes.lock()
                failures.append(error)
                outcomes.unlock()
            }
        }
        XCTAssertTrue(failures.isEmpty, "\(failures)")
        XCTAssertEqual(applied.sorted(), try Migrator.migrations(in: directory).map(\.name))
    }

    func testFailedMigrationRollsBackAndStopsThere() throws {
        let directory = try temporaryDirectory(files: [
            "0001_first.sql": "CREATE SCHEMA IF NOT EXISTS hl; CREATE TABLE hl.first (x int);",
            "0002_broken.sql": "CREATE TABLE hl.second (x int); SELECT 1 / 0;",
            "0003_never.sql": "CREATE TABLE hl.third (x int);",
            "README.md": "not a migration",
        ])
        let connection = try database.connect()
        XCTAssertThrowsError(try Migrator.migrate(connection: connection, directory: directory)) { error in
            guard case MigrationError.failed(let name, let cause) = error else {
                return XCTFail("expected failed, got \(error)")
            }
            XCTAssertEqual(name, "0002_broken")
            XCTAssertEqual(cause.sqlState, "22012")
        }
        let tables = try connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'hl' ORDER BY tablename")
        XCTAssertEqual(tables.rows.map { $0.string("tablename") }, ["first", "schema_migrations"])
        XCTAssertEqual(try connection.execute("SELECT count(*) AS n FROM hl.schema_migrations").singleRow().int("n"), 1)
    }

    /// hl.jobs carries autovacuum settings for a queue's churn.
    func testJobsTableHasQueueAutovacuumSettings() throws {
        let connection = try database.connect()
        try Migrator.migrate(connection: connection, directory: Migrator.locateMigrationsDirectory())
        let options = try connection.execute(
            "SELECT unnest(reloptions) AS option FROM pg_class WHERE oid = 'hl.jobs'::regclass"
        ).rows.compactMap { $0.string("option") }
        for expected in ["autovacuum_vacuum_scale_factor=0.02", "autovacuum_vacuum_threshold=1000",
                         "autovacuum_analyze_scale_factor=0.02", "autovacuum_vacuum_insert_scale_factor=0.02",
                         "autovacuum_vacuum_cost_limit=2000"] {
            XCTAssertTrue(options.contains(expected), "\(expected) not in \(options)")
        }
    }
}
