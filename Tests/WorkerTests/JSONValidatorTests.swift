@testable import Worker
import XCTest

final class JSONValidatorTests: XCTestCase {
    func testAcceptsJSON() {
        for text in [#"{}"#, #"[]"#, #"0"#, #"-1.5e10"#, #""x""#, #"true"#, #"null"#, #" {"a": [1, {"b": null}], "c": "\u00e9\n"} "#,
                     #"{"fib":2880067194370816120}"#] {
            XCTAssertTrue(JSONValidator.isValid(Array(text.utf8)), text)
        }
    }

    func testRejectsWhatJsonbWouldRefuse() {
        for text in ["", "{", "{}}", "[1,]", "01", "1.", "-", #"{"a" 1}"#, #"{a: 1}"#, "nul", #""\x""#, #""\u0000""#,
                     "\"a\u{1}\"", "{} {}", "NaN"] {
            XCTAssertFalse(JSONValidator.isValid(Array(text.utf8)), text)
        }
        // Lone UTF-16 surrogates, and numbers past PostgreSQL's numeric.
        for text in [#""\ud800""#, #""\udc00""#, #""\ud83d\u0041""#, "1e131072", "1e-16384", "0.5e-16383", "1e99999999999"] {
            XCTAssertFalse(JSONValidator.isValid(Array(text.utf8)), text)
        }
        XCTAssertTrue(JSONValidator.isValid(Array(#"["\ud83d\ude00", 1e131071, 1e-16383, 0e99999]"#.utf8)))
        XCTAssertFalse(JSONValidator.isValid([0x22, 0xFF, 0x22]), "invalid UTF-8")
        XCTAssertFalse(JSONValidator.isValid(Array(String(repeating: "[", count: 10_000).utf8)), "nesting is bounded")
    }

    func testObjects() {
        XCTAssertTrue(JSONValidator.isObject(Array(#"  {"a":1}"#.utf8)))
        XCTAssertFalse(JSONValidator.isObject(Array("[1]".utf8)))
        XCTAssertFalse(JSONValidator.isObject(Array("{".utf8)))
    }
}

final class WorkerConfigurationTests: XCTestCase {
    func testDefaultsAreValid() throws {
        XCTAssertNoThrow(try WorkerConfiguration().validate())
    }

    func testRefusesNonsense() {
        var configuration = WorkerConfiguration()
        configuration.concurrency = 0
        XCTAssertThrowsError(try configuration.validate())
        configuration = WorkerConfiguration()
        configuration.queues = ["ok", "not ok!"]
        XCTAssertThrowsError(try configuration.validate())
        configuration = WorkerConfiguration()
        configuration.defaultMemoryMB = 1024
        configuration.maxMemoryMB = 512
        XCTAssertThrowsError(try configuration.validate())
        configuration = WorkerConfiguration()
        configuration.defaultTimeoutMilliseconds = 0
        XCTAssertThrowsError(try configuration.validate())
        configuration = WorkerConfiguration()
        configuration.rescueAfter = 1
        XCTAssertThrowsError(try configuration.validate())
    }
}
