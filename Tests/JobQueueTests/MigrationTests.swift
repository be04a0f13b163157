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

    func testBadFileNamesAreRejected() throws {
        let misnamed = try temporaryDirectory(files: ["0001_ok.sql": "", "2_short.sql": ""])
        XCTAssertThrowsError(try Migrator.migrations(in: misnamed)) { error in
            guard case MigrationError.badFileName = error else { return XCTFail("got \(error)") }
        }
        let duplicated = try temporaryDirectory(files: ["0001_a.sql": "", "0001_b.sql": ""])
        XCTAssertThrowsError(try Migrator.migrations(in: duplicated)) { error in
            guard case MigrationError.badFileName = error else { return XCTFail("got \(error)") }
        }
    }

    func testLocatingTheDirectory() throws {
        let found = try Migrator.locateMigrationsDirectory()
        XCTAssertTrue(FileManager.default.fileExists(atPath: found + "/0001_schema.sql"), found)

        let elsewhere = try temporaryDirectory(files: ["0001_x.sql": ""])
        XCTAssertEqual(try Migrator.locateMigrationsDirectory(explicit: elsewhere), elsewhere)
        setenv(Migrator.environmentVariable, elsewhere, 1)
        defer { unsetenv(Migrator.environmentVariable) }
        XCTAssertEqual(try Migrator.locateMigrationsDirectory(), elsewhere)

        XCTAssertThrowsError(try Migrator.locateMigrationsDirectory(explicit: "/nonexistent/migrations")) { error in
            XCTAssertEqual(error as? MigrationError, .directoryNotFound(searched: ["/nonexistent/migrations"]))
        }
    }

    private func temporaryDirectory(files: [String: String]) throws -> String {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("hl-migrations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        for (name, contents) in files {
            try contents.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        return directory.path
    }
}
