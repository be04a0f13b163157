import Foundation
import HLTestSupport
import JobQueue
import Worker
import XCTest

/// The validator against PostgreSQL itself: a guest's result that the
/// validator accepts is written to a jsonb column, and a value jsonb refuses
/// there would fail the whole batch of results it is written with, again on
/// every retry. So on edge cases and on random numbers near numeric's
/// limits, the validator accepts exactly what `$1::jsonb` accepts.
final class JSONValidatorJsonbTests: XCTestCase {
    func testTheValidatorAcceptsExactlyWhatJsonbAccepts() throws {
        guard let adminURL = try TestDatabase.adminURL() else { throw XCTSkip(TestDatabase.skipMessage) }
        let database = try TestDatabase(adminURL: adminURL, migrate: false)
        defer { try? database.drop() }
        let connection = try database.connect()
        XCTAssertEqual(try connection.execute("SHOW server_encoding", params: []).singleRow().string("server_encoding"), "UTF8",
                       "jsonb refuses \\u escapes past ASCII in other encodings")

        var cases = [
            #""\ud800""#, #""\udc00""#, #""\ud83d\ude00""#, #""\ud83dx""#, #""\ud83d\u0041""#, #""\ud83d\ud83d""#,
            #""\uDBFF\uDFFF""#, #""\u0000""#, #""\u0001""#, #""a\ud800b""#, #"{"\udc00": 1}"#,
            "1e131071", "1e131072", "9.9e131071", "10e131071", "0.1e131072", "0.1e131073", "1e-16383", "1e-16384",
            "1.5e-16383", "0e1000000", "0e-16383", "0e-16384", "0.0e-99999999", "0.000001e-16377", "0.000001e-16378",
            "1e1073741822", "0e1073741822", "0e1073741823", "0e-1073741823", "1e99999999999999999999", "-0", "-0.0e-5",
            "1" + String(repeating: "0", count: 131071), "1" + String(repeating: "0", count: 131072),
            "0." + String(repeating: "0", count: 16383), "0." + String(repeating: "0", count: 16384),
            "0." + String(repeating: "0", count: 16382) + "1", "1.0e00000000000000000000000000000005",
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let integer = Bool.random(using: &generator) ? "0" : "1" + String(repeating: "0", count: Int.random(in: 0...6, using: &generator))
            let fraction = Bool.random(using: &generator)
                ? "" : "." + String(repeating: "0", count: Int.random(in: 0...6, using: &generator)) + (Bool.random(using: &generator) ? "5" : "0")
            let exponent = [131064...131075, -16390 ... -16376].randomElement(using: &generator)!
            cases.append("\(integer)\(fraction)e\(Int.random(in: exponent, using: &generator))")
        }
        for text in cases {
            let accepted: Bool
            do {
                _ = try connection.execute("SELECT $1::jsonb AS value", params: [text])
                accepted = true
            } catch {
                accepted = false
            }
            XCTAssertEqual(JSONValidator.isValid(Array(text.utf8)), accepted, "jsonb \(accepted ? "accepts" : "refuses") \(text.prefix(60))")
        }
    }
}
