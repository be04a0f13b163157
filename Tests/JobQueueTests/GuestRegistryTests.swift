import Foundation
import JobQueue
import XCTest

final class GuestRegistryTests: DatabaseTestCase {
    func testPutReplaceAndFetch() throws {
        // FIPS 180-2's "abc" test vector.
        let first = try store.putGuest(name: "demo", image: Array("abc".utf8))
        XCTAssertEqual(first, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(try store.guestImage(name: "demo"),
                       GuestImage(name: "demo", sha256: first, image: Array("abc".utf8)))

        let second = try store.putGuest(name: "demo", image: [1, 2, 3])
        XCTAssertNotEqual(first, second)
        XCTAssertEqual(try store.guestImage(name: "demo")?.image, [1, 2, 3])
        XCTAssertNil(try store.guestImage(sha256: first), "the replaced image is gone")
        XCTAssertEqual(try store.guestImage(sha256: second)?.name, "demo")
        XCTAssertNil(try store.guestImage(name: "missing"))

        try store.putGuest(name: "another", image: [9])
        let listed = try store.listGuests()
        XCTAssertEqual(listed.map(\.name), ["another", "demo"])
        XCTAssertEqual(listed.map(\.size), [1, 3])
        XCTAssertEqual(listed[1].sha256, second)
        XCTAssertGreaterThanOrEqual(listed[1].updatedAt, listed[1].createdAt)
    }

    func testEveryByteValueSurvivesTheRoundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        let image = Array(0...255).map(UInt8.init) + (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let digest = try store.putGuest(name: "blob", image: image)
        XCTAssertEqual(try store.guestImage(name: "blob")?.image, image)
        XCTAssertEqual(try store.guestImage(sha256: digest)?.image, image)
        // The digest is the database's own: check it against PostgreSQL on the same bytes.
        let check = try connection.execute(
            "SELECT encode(sha256(image), 'hex') = sha256 AS matches FROM hl.guests WHERE name = 'blob'").singleRow()
        XCTAssertEqual(try check.bool("matches"), true)
    }

    func testClaimSeesTheCurrentImageDigest() throws {
        let old = try store.putGuest(name: "demo", image: [1])
        try insertJobs(2)
        XCTAssertEqual(try store.claim(workerID: "w", queues: nil, limit: 1).first?.guestSHA256, old)
        let new = try store.putGuest(name: "demo", image: [2])
        XCTAssertEqual(try store.claim(workerID: "w", queues: nil, limit: 1).first?.guestSHA256, new)
    }

    func testOddNamesAreRejected() throws {
        for name in ["", "9lives", "has space", "semi;colon", String(repeating: "x", count: 65)] {
            XCTAssertThrowsError(try store.putGuest(name: name, image: [1]), name) { error in
                XCTAssertEqual((error as? PGError)?.sqlState, "23514")
            }
        }
        XCTAssertThrowsError(try store.putGuest(name: "empty", image: []))
    }
}
