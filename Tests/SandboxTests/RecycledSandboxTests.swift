import Foundation
import MicroVM
import Sandbox
import KVMTestSupport
import XCTest

/// A recycled sandbox is reset to its snapshot after every call, so no call
/// sees what an earlier one left behind, whatever that call did.
final class RecycledSandboxTests: SandboxTestCase {
    override func setUpWithError() throws {
        _ = try kvm()
        _ = try guestImage("demo")
    }

    func recyclable(memoryMB: Int = 16) throws -> Sandbox {
        try sandbox(configuration: SandboxConfiguration(memoryMB: memoryMB, recyclable: true))
    }

    func call(_ sandbox: Sandbox, _ function: String, _ args: String = "{}",
              limits: CallLimits = .init()) throws -> String {
        String(decoding: try sandbox.call(function, input: Array(args.utf8), limits: limits), as: UTF8.self)
    }

    func testCounterAnswersOneOverTenThousandRecycledCalls() throws {
        let sandbox = try recyclable()
        for index in 0..<10_000 {
            let result = try call(sandbox, "counter")
            if result != #"{"count":1}"# {
                return XCTFail("call \(index) answered \(result)")
            }
            try sandbox.reset()
        }
    }

    func testWithoutAResetStateCarriesOver() throws {
        let sandbox = try recyclable()
        XCTAssertEqual(try call(sandbox, "counter"), #"{"count":1}"#)
        XCTAssertEqual(try call(sandbox, "counter"), #"{"count":2}"#, "the reset is what makes the answer 1")
    }

    func testScribbledHeapStackAndGlobalsArePristineAfterReset() throws {
        let sandbox = try recyclable()
        XCTAssertEqual(try call(sandbox, "counter"), #"{"count":1}"#)
        try sandbox.reset()
        XCTAssertEqual(try call(sandbox, "scribble"), "{}")
        let restored = try sandbox.reset()
        XCTAssertGreaterThan(restored, 1_000, "scribble fills the heap, so the reset restores thousands of pages")
        XCTAssertEqual(try call(sandbox, "counter"), #"{"count":1}"#)
        try sandbox.reset()
        // A heap that was full would fail this allocation.
        XCTAssertEqual(try call(sandbox, "alloc", #"{"mb":8}"#), #"{"mb":8}"#)
        try sandbox.reset()
        XCTAssertEqual(try call(sandbox, "sha256", #"{"text":"abc"}"#),
                       #"{"hex":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}"#)
    }

    func testEveryAbnormalEndLeavesAResettableSandbox() throws {
        let sandbox = try recyclable()
        let failures: [(String, String, CallLimits, String)] = [
            ("spin", "{}", CallLimits(timeoutMilliseconds: 50), "timeout"),
            ("crash", "{}", .init(), "guest_crash"),
            ("alloc", #"{"mb":64}"#, .init(), "out_of_memory"),
            ("fail", #"{"message":"no"}"#, .init(), "guest_error"),
            ("grow", #"{"bytes":100}"#, CallLimits(maxOutputBytes: 10), "output_too_large"),
        ]
        for (function, args, limits, kind) in failures {
            XCTAssertEqual(try call(sandbox, "counter"), #"{"count":1}"#, "before \(function)")
            XCTAssertThrowsError(try call(sandbox, function, args, limits: limits)) {
                XCTAssertEqual(($0 as? SandboxError)?.kind, kind)
            }
            XCTAssertEqual(sandbox.status, .poisoned)
            XCTAssertThrowsError(try call(sandbox, "counter"), "a poisoned sandbox refuses calls until reset")
            try sandbox.reset()
            XCTAssertEqual(sandbox.status, .ready)
            XCTAssertEqual(try call(sandbox, "counter"), #"{"count":1}"#, "after \(function)")
            XCTAssertEqual(try call(sandbox, "fib", #"{"n":90}"#), #"{"fib":2880067194370816120}"#)
            try sandbox.reset()
        }
    }

    func testACancelledCallLeavesAResettableSandbox() throws {
        let sandbox = try recyclable()
        let canceller = Thread { usleep(30_000); sandbox.stop(.cancelled) }
        canceller.start()
        XCTAssertThrowsError(try call(sandbox, "spin", limits: CallLimits(timeoutMilliseconds: 10_000))) {
            XCTAssertEqual($0 as? SandboxError, .cancelled)
        }
        try sandbox.reset()
        XCTAssertEqual(try call(sandbox, "counter"), #"{"count":1}"#)
    }

    func testAFreshSandboxCannotBeReset() throws {
        let sandbox = try sandbox()
        XCTAssertThrowsError(try sandbox.reset())
    }

    func testPoolStaysBoundedUnderAMixOfMemorySizes() throws {
        let reaper = SandboxReaper()
        let pool = RecycledSandboxPool(kvm: try kvm(), capacity: 3, limit: try HostCreationLimit(slots: 1), reaper: reaper)
        let image = try guestImage()
        for round in 0..<30 {
            let sizes = [16, 24, 16, 32, 16, 48][round % 6]
            let taken = try (0..<(1 + round % 3)).map { _ in
                try pool.take(image, configuration: SandboxConfiguration(memoryMB: sizes))
            }
            for sandbox in taken {
                XCTAssertEqual(sandbox.status, .ready, "the pool hands out ready sandboxes only")
                XCTAssertEqual(try call(sandbox, "counter"), #"{"count":1}"#)
                pool.giveBack(sandbox)
            }
            XCTAssertLessThanOrEqual(pool.idleCount, 3)
        }
        XCTAssertGreaterThan(pool.reused, 0)
        pool.drain()
        XCTAssertEqual(pool.idleCount, 0)
    }

    func testANewGuestVersionDrainsTheOldVersionsPool() throws {
        let reaper = SandboxReaper()
        let pool = RecycledSandboxPool(kvm: try kvm(), capacity: 8, limit: try HostCreationLimit(slots: 1), reaper: reaper)
        let bytes = try Array(Data(contentsOf: RepositoryPaths.guest("demo")))
        let old = try GuestImage(name: "demo", version: "v1", bytes: bytes)
        let new = try GuestImage(name: "demo", version: "v2", bytes: bytes)
        let busy = try pool.take(old, configuration: .init())
        pool.giveBack(try pool.take(old, configuration: .init()))
        XCTAssertEqual(pool.idleCount, 1)
        let current = try pool.take(new, configuration: .init())
        XCTAssertEqual(pool.idleCount, 0, "the idle v1 sandbox was drained")
        pool.giveBack(busy)
        XCTAssertEqual(pool.idleCount, 0, "a v1 sandbox coming back is not kept")
        pool.giveBack(current)
        XCTAssertEqual(pool.idleCount, 1)
    }

    func testAPoisonedSandboxComesBackReady() throws {
        let reaper = SandboxReaper()
        let pool = RecycledSandboxPool(kvm: try kvm(), capacity: 2, limit: try HostCreationLimit(slots: 1), reaper: reaper)
        let sandbox = try pool.take(try guestImage(), configuration: .init())
        XCTAssertThrowsError(try call(sandbox, "crash"))
        pool.giveBack(sandbox)
        let again = try pool.take(try guestImage(), configuration: .init())
        XCTAssertTrue(again === sandbox)
        XCTAssertEqual(try call(again, "counter"), #"{"count":1}"#)
    }
}
