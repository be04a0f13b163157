import Foundation
import JobQueue
import XCTest

final class ConnectionTests: DatabaseTestCase {
    func testParametersAndNullsRoundTrip() throws {
        let row = try connection.execute(
            "SELECT $1::int + 1 AS n, $2::text IS NULL AS missing, $3::text AS word", params: ["41", nil, "héllo 'x'"]
        ).singleRow()
        XCTAssertEqual(try row.int("n"), 42)
        XCTAssertEqual(try row.bool("missing"), true)
        XCTAssertEqual(row.string("word"), "héllo 'x'")
    }

    func testServerErrorCarriesSQLState() throws {
        XCTAssertThrowsError(try connection.execute("SELECT * FROM hl.no_such_table")) { error in
            guard case PGError.queryFailed(_, let state, let message, _, _) = error else {
                return XCTFail("expected queryFailed, got \(error)")
            }
            XCTAssertEqual(state, "42P01")
            XCTAssertTrue(message.contains("no_such_table"), message)
        }
        XCTAssertTrue(connection.isConnected, "a failed statement leaves the connection usable")
        XCTAssertEqual(try connection.execute("SELECT 1 AS one").singleRow().int("one"), 1)
    }

    func testConnectFailureCarriesLibpqMessage() throws {
        // Port 1 on loopback: nothing listens there, so libpq reports refusal.
        XCTAssertThrowsError(try PGConnection(conninfo: "postgres://nobody@127.0.0.1:1/x")) { error in
            guard case PGError.connectFailed(let message) = error else {
                return XCTFail("expected connectFailed, got \(error)")
            }
            XCTAssertTrue(message.contains("127.0.0.1"), message)
        }
    }

    func testLostConnectionIsReportedAndResetReconnects() throws {
        // A named statement prepared before the break must work after it:
        // the new session has none.
        _ = try store.status()
        let admin = try database.connect()
        try admin.execute("SELECT pg_terminate_backend($1::int)", params: [String(connection.backendPID)])
        XCTAssertThrowsError(try store.status()) { error in
            guard case PGError.connectionLost = error else { return XCTFail("expected connectionLost, got \(error)") }
        }
        XCTAssertFalse(connection.isConnected)
        try connection.reset()
        XCTAssertTrue(connection.isConnected)
        XCTAssertEqual(try store.status().queues, [])
    }

    func testArrayParametersKeepAwkwardQueueNamesIntact() throws {
        let awkward = ["a,b", "say \"hi\"", "{braces}", "NULL", "back\\slash"]
        for queue in awkward { try insertJobs(queue: queue) }
        try insertJobs(queue: "other")
        let claimed = try store.claim(workerID: "w", queues: awkward, limit: 10)
        XCTAssertEqual(Set(claimed.map(\.queue)), Set(awkward))
    }
}
