import Foundation
import Sandbox
import KVMTestSupport
import XCTest

/// Every function of the demo guest, and every error kind it can produce.
final class DemoGuestTests: SandboxTestCase {
    override func setUpWithError() throws {
        _ = try kvm()
        _ = try guestImage("demo")
    }

    func testEchoReturnsTheArgsUnchanged() throws {
        let args = #"{"a": [1, 2.5, "x\"y"], "b": {"c": null}}"#
        XCTAssertEqual(try call("echo", args), args)
    }

    func testAdd() throws {
        XCTAssertEqual(try call("add", #"{"a": 40, "b": 2}"#), #"{"sum":42}"#)
        XCTAssertEqual(try call("add", #"{"a": -5, "b": 3}"#), #"{"sum":-2}"#)
    }

    func testFib() throws {
        XCTAssertEqual(try call("fib", #"{"n":90}"#), #"{"fib":2880067194370816120}"#)
        XCTAssertEqual(try call("fib", #"{"n":0}"#), #"{"fib":0}"#)
        XCTAssertEqual(try call("fib", #"{"n":1}"#), #"{"fib":1}"#)
    }

    func testSHA256() throws {
        XCTAssertEqual(try call("sha256", #"{"text":"abc"}"#),
                       #"{"hex":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}"#)
        XCTAssertEqual(try call("sha256", #"{"text":""}"#),
                       #"{"hex":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}"#)
    }

    func testCounterIsOneInAFreshVM() throws {
        XCTAssertEqual(try call("counter"), #"{"count":1}"#)
        XCTAssertEqual(try call("counter"), #"{"count":1}"#)
    }

    func testLogCallsTheHost() throws {
        XCTAssertEqual(try call("log", #"{"message":"hello from the guest"}"#), "{}")
    }

    func testClockComesFromTheHost() throws {
        let text = try call("clock")
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        let nanoseconds = try XCTUnwrap(object?["ns"] as? NSNumber).doubleValue
        XCTAssertEqual(nanoseconds / 1e9, Date().timeIntervalSince1970, accuracy: 60)
    }

    func testAllocWithinMemory() throws {
        XCTAssertEqual(try call("alloc", #"{"mb":4}"#), #"{"mb":4}"#)
    }

    func testAllocBeyondMemoryIsOutOfMemory() throws {
        try expectFailure("out_of_memory", "alloc", #"{"mb":64}"#)
    }

    func testLargerMemoryAllowsLargerAllocations() throws {
        XCTAssertEqual(try call("alloc", #"{"mb":40}"#, configuration: .init(memoryMB: 64)), #"{"mb":40}"#)
    }

    func testFailIsAGuestErrorCarryingTheMessage() throws {
        let error = try expectFailure("guest_error", "fail", #"{"message":"it went wrong"}"#)
        XCTAssertEqual(error?.message, "it went wrong")
    }

    func testCrashIsAGuestCrash() throws {
        try expectFailure("guest_crash", "crash")
    }

    func testSpinTimesOut() throws {
        try expectFailure("timeout", "spin", limits: CallLimits(timeoutMilliseconds: 100))
    }

    func testUnknownFunction() throws {
        let error = try expectFailure("unknown_function", "no_such_function")
        XCTAssertTrue(error?.message.contains("no_such_function") ?? false)
    }

    func testBadJSONArgsAreAGuestError() throws {
        try expectFailure("guest_error", "add", #"{"a": 1"#)
        try expectFailure("guest_error", "add", #"[1, 2]"#)
        try expectFailure("guest_error", "fib", #"{"n": "ninety"}"#)
    }

    func testOutputTooLarge() throws {
        try expectFailure("output_too_large", "grow", #"{"bytes":2000}"#, limits: CallLimits(maxOutputBytes: 1000))
        try expectFailure("output_too_large", "grow", #"{"bytes":2000000}"#, configuration: .init(memoryMB: 64))
        XCTAssertEqual(try call("grow", #"{"bytes":3}"#), #"{"s":"xxx"}"#)
    }

    func testCGuest() throws {
        XCTAssertEqual(try call("add", #"{"a": 2, "b": 3}"#, guest: "hello_c"), #"{"sum":5}"#)
        XCTAssertEqual(try call("echo", #"{"x":1}"#, guest: "hello_c"), #"{"x":1}"#)
    }

    func testHostileELFFilesAreRefusedWithANamedError() throws {
        let demo = try Data(contentsOf: RepositoryPaths.guest("demo"))
        var candidates: [[UInt8]] = [[], Array(demo.prefix(10)), Array(demo.prefix(64)), Array(demo.prefix(demo.count / 2))]
        candidates.append((0..<10_000).map { _ in UInt8.random(in: 0...255) })
        if let linux = FileManager.default.contents(atPath: "/bin/ls") { candidates.append(Array(linux)) }
        for bytes in candidates {
            XCTAssertThrowsError(try Sandbox(kvm: kvm(), image: GuestImage(name: "bad", bytes: bytes))) { error in
                XCTAssertEqual((error as? SandboxError)?.kind, "invalid_guest", "\(error)")
            }
        }
        XCTAssertEqual(try call("add", #"{"a": 1, "b": 1}"#), #"{"sum":2}"#, "the process is still healthy")
    }

    func testAThousandSandboxesLeakNoDescriptorsOrThreads() throws {
        let image = try guestImage()
        let kvm = try kvm()
        func run() throws {
            let sandbox = try Sandbox(kvm: kvm, image: image)
            XCTAssertEqual(try sandbox.call("add", input: Array(#"{"a":1,"b":2}"#.utf8)), Array(#"{"sum":3}"#.utf8))
        }
        for _ in 0..<20 { try run() }
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        let threads = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count
        for index in 0..<1_000 {
            if index % 3 == 0 {
                let sandbox = try Sandbox(kvm: kvm, image: image)
                XCTAssertThrowsError(try sandbox.call("crash", input: Array("{}".utf8)))
            } else {
                try run()
            }
        }
        // Other tests' threads may still be winding down, so the counts may
        // fall; they must not grow.
        XCTAssertLessThanOrEqual(try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count, descriptors)
        XCTAssertLessThanOrEqual(try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count, threads)
    }
}
