import CGuestABI
import Foundation
import JobQueue
import Sandbox
import XCTest

@testable import Worker

/// The enqueue and progress host calls as a hostile guest would send them:
/// pure, no VM and no database.
final class JobHostCallsTests: XCTestCase {
    private func request(guest: String = "fanout", function: String = "sum", args: String = "{}", options: String = "",
                         lengths: [UInt32]? = nil) -> [UInt8] {
        let parts = [guest, function, args, options].map { Array($0.utf8) }
        var bytes: [UInt8] = []
        for length in lengths ?? parts.map({ UInt32($0.count) }) {
            withUnsafeBytes(of: length.littleEndian) { bytes.append(contentsOf: $0) }
        }
        return bytes + parts.joined()
    }

    private func enqueue(_ calls: JobHostCalls, _ payload: [UInt8]) -> HostCallAnswer {
        calls.handle(function: HL_HOSTCALL_ENQUEUE.rawValue, payload: payload)
    }

    private func isRefused(_ answer: HostCallAnswer) -> Bool {
        if case .refused = answer { return true }
        return false
    }

    func testChildrenAreCollectedWithTheirIndexes() {
        let calls = JobHostCalls(attempt: JobAttempt(id: 1, attempt: 1), progress: nil)
        XCTAssertEqual(enqueue(calls, request(args: #"{"n":1}"#)), .ok([0, 0, 0, 0]))
        XCTAssertEqual(enqueue(calls, request(args: "")), .ok([1, 0, 0, 0]), "empty args are {}")
        XCTAssertEqual(enqueue(calls, request(function: "combine", options: #"{"after":[0,1],"queue":"q","unique_key":"k","priority":-5,"max_attempts":2}"#)),
                       .ok([2, 0, 0, 0]))
        XCTAssertEqual(calls.children.map(\.function), ["sum", "sum", "combine"])
        XCTAssertEqual(calls.children[2].after, [0, 1])
        XCTAssertEqual(calls.children[2].queue, "q")
        XCTAssertEqual(calls.children[2].uniqueKey, "k")
        XCTAssertEqual(calls.children[2].priority, -5)
        XCTAssertEqual(calls.children[1].args, "{}")
    }

    func testBadRequestsAreRefusedNotFatal() {
        let calls = JobHostCalls(attempt: JobAttempt(id: 1, attempt: 1), progress: nil)
        let bad: [(String, [UInt8])] = [
            ("short header", [1, 2, 3]),
            ("lengths past the payload", request(lengths: [100, 3, 2, 0])),
            ("lengths short of the payload", request(lengths: [1, 3, 2, 0])),
            ("guest name", request(guest: "../etc")),
            ("empty function", request(function: "")),
            ("args not an object", request(args: "[1]")),
            ("args not JSON", request(args: "{oops")),
            ("a NUL jsonb refuses", request(args: #"{"a":"\u0000"}"#)),
            ("unknown option", request(options: #"{"run_as":"root"}"#)),
            ("after a job not yet enqueued", request(options: #"{"after":[0]}"#)),
            ("after not integers", request(options: #"{"after":["0"]}"#)),
            ("priority range", request(options: #"{"priority":1000}"#)),
            ("options not an object", request(options: "7")),
            ("invalid UTF-8 guest", [2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xC3, 0x28, 0x66]),
        ]
        for (why, payload) in bad {
            XCTAssertTrue(isRefused(enqueue(calls, payload)), why)
        }
        XCTAssertEqual(calls.children, [], "nothing refused was kept")
        XCTAssertEqual(calls.handle(function: 99, payload: []), .unknown)
    }

    func testLimitsPerCall() {
        let calls = JobHostCalls(attempt: JobAttempt(id: 1, attempt: 1),
                                 limits: .init(maxChildren: 3, maxChildBytes: 200), progress: nil)
        for _ in 0..<3 { XCTAssertFalse(isRefused(enqueue(calls, request()))) }
        XCTAssertTrue(isRefused(enqueue(calls, request())), "a fourth job")
        let bytes = JobHostCalls(attempt: JobAttempt(id: 1, attempt: 1),
                                 limits: .init(maxChildren: 100, maxChildBytes: 200), progress: nil)
        let big = #"{"s":"\#(String(repeating: "x", count: 150))"}"#
        XCTAssertFalse(isRefused(enqueue(bytes, request(args: big))))
        XCTAssertTrue(isRefused(enqueue(bytes, request(args: big))), "past the byte budget")
    }

    func testProgressIsCheckedAndBounded() {
        let calls = JobHostCalls(attempt: JobAttempt(id: 1, attempt: 1), progress: nil)
        func progress(_ ppm: UInt32, _ note: String) -> HostCallAnswer {
            var payload: [UInt8] = []
            withUnsafeBytes(of: ppm.littleEndian) { payload.append(contentsOf: $0) }
            return calls.handle(function: HL_HOSTCALL_PROGRESS.rawValue, payload: payload + Array(note.utf8))
        }
        XCTAssertEqual(progress(500_000, "half"), .ok([]))
        XCTAssertTrue(isRefused(progress(1_000_001, "over")))
        XCTAssertTrue(isRefused(calls.handle(function: HL_HOSTCALL_PROGRESS.rawValue, payload: [1, 2])))
    }
}
