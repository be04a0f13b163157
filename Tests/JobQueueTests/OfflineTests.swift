import Foundation
import XCTest

@testable import JobQueue

/// What JobQueue decides without a server: these run with no DATABASE_URL.
final class OfflineTests: XCTestCase {
    func testArrayLiteralsQuoteEveryElement() {
        XCTAssertEqual(PGParam.array(["plain", nil, "a,b", "say \"hi\"", "back\\slash", "NULL", "{}"]),
                       .text(#"{"plain",NULL,"a,b","say \"hi\"","back\\slash","NULL","{}"}"#))
        XCTAssertEqual(PGParam.array([Int64]()), .text("{}"))
        XCTAssertEqual(PGParam.array([true, false]), .text(#"{"t","f"}"#))
    }

    func testConninfoReplacingKeepsOtherSettings() throws {
        let rewritten = try PGConnection.conninfo(
            "postgres://ann:it's@db.example:6543/app?sslmode=require", replacing: ["dbname": "other"])
        for expected in ["user='ann'", "password='it\\'s'", "host='db.example'", "port='6543'",
                         "dbname='other'", "sslmode='require'"] {
            XCTAssertTrue(rewritten.contains(expected), "\(expected) missing from \(rewritten)")
        }
        XCTAssertFalse(rewritten.contains("app"))
        XCTAssertEqual(try PGConnection.conninfo(nil, replacing: ["dbname": "x"]), "dbname='x'")
        XCTAssertThrowsError(try PGConnection.conninfo("host=x bogus_setting=1", replacing: [:])) { error in
            guard case PGError.connectFailed(let message) = error else { return XCTFail("got \(error)") }
            XCTAssertTrue(message.contains("bogus_setting"), message)
        }
    }

    func testMigrationFilesAreOrderedAndNamesChecked() throws {
        let good = try temporaryDirectory(files: ["0002_b.sql": "", "0001_a.sql": "", "0010_c.sql": "", "notes.md": ""])
        XCTAssertEqual(try Migrator.migrations(in: good).map(\.name), ["0001_a", "0002_b", "0010_c"])
        XCTAssertEqual(try Migrator.migrations(in: good).map(\.version), [1, 2, 10])

        for files in [["0001_ok.sql": "", "2_short.sql": ""], ["0001_a.sql": "", "0001_b.sql": ""],
                      ["0001_a.sql": "", "00x1_b.sql": ""]] {
            XCTAssertThrowsError(try Migrator.migrations(in: try temporaryDirectory(files: files))) { error in
                guard case MigrationError.badFileName = error else { return XCTFail("got \(error)") }
            }
        }
    }

    func testLocatingTheMigrationsDirectory() throws {
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
}
