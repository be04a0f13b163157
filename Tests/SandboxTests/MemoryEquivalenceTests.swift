import CGuestABI
import Foundation
import MicroVM
@testable import Sandbox
import XCTest

/// Isolation by equivalence, for memory: after any call and a reset, a
/// recycled sandbox's whole guest memory is byte for byte that of a sandbox
/// just built from the same guest. This covers what the dirty log sees (the
/// guest's writes), what it does not (the host's: input, host-call
/// replies), and the pages a reset leaves writable and restores every time.
final class MemoryEquivalenceTests: SandboxTestCase {
    func recyclable(_ guest: String) throws -> Sandbox {
        try sandbox(guest, configuration: SandboxConfiguration(memoryMB: 16, recyclable: true))
    }

    func bytes(_ sandbox: Sandbox) throws -> [UInt8] {
        try sandbox.memory.read(at: 0, count: sandbox.memory.size)
    }

    /// Fails naming the first page that differs, if any.
    func assertSameMemory(_ sandbox: Sandbox, as reference: [UInt8], _ what: String,
                          file: StaticString = #filePath, line: UInt = #line) throws {
        let memory = try bytes(sandbox)
        guard memory != reference else { return }
        let page = GuestMemory.pageSize
        let first = stride(from: 0, to: memory.count, by: page).first { memory[$0..<($0 + page)] != reference[$0..<($0 + page)] }
        XCTFail("after \(what), guest memory differs from a new sandbox's, first at page 0x\(String(first ?? 0, radix: 16))",
                file: file, line: line)
    }

    /// Runs a call whose outcome does not matter here.
    func run(_ sandbox: Sandbox, _ function: String, _ args: String = "{}", timeoutMilliseconds: Int = 1_000,
             hostCalls: (any HostCallHandler)? = nil) {
        _ = try? sandbox.call(function, input: Array(args.utf8), limits: CallLimits(timeoutMilliseconds: timeoutMilliseconds),
                              hostCalls: hostCalls)
    }

    func testDemoGuestMemoryIsAsBuiltAfterEveryKindOfCall() throws {
        let reference = try bytes(recyclable("demo"))
        let sandbox = try recyclable("demo")
        try assertSameMemory(sandbox, as: reference, "building")
        let calls: [(String, String)] = [
            ("echo", #"{"a":[1,2,3]}"#), ("counter", "{}"), ("scribble", "{}"), ("alloc", #"{"mb":8}"#),
            ("grow", #"{"bytes":3000000}"#), ("log", #"{"message":"hello"}"#), ("clock", "{}"),
            ("fail", #"{"message":"no"}"#), ("crash", "{}"), ("spin", "{}"), ("no_such_function", "{}"),
        ]
        // Twice over: the second round runs on pages the first left writable.
        for (function, args) in calls + calls {
            run(sandbox, function, args, timeoutMilliseconds: 100)
            try sandbox.reset()
            try assertSameMemory(sandbox, as: reference, function)
        }
    }

    /// Init's writes are part of the snapshot; calls after it must not
    /// leave their own.
    func testGuestWithInitIsAsBuiltAfterCalls() throws {
        let reference = try bytes(recyclable("init_c"))
        let sandbox = try recyclable("init_c")
        for (function, args) in [("bump", "{}"), ("cube", #"{"n":3}"#), ("bump", "{}"), ("cube", "{}")] {
            run(sandbox, function, args)
            try sandbox.reset()
            try assertSameMemory(sandbox, as: reference, function)
        }
    }

    /// A host-call reply is written by the host, which the dirty log does
    /// not see; one longer than a page must be undone all the same.
    func testLongHostCallRepliesAreUndone() throws {
        final class LongReplies: HostCallHandler {
            func handle(function: UInt32, payload: [UInt8]) -> HostCallAnswer {
                .ok([UInt8](repeating: 0xA5, count: 10_000))
            }
        }
        let reference = try bytes(recyclable("fanout"))
        let sandbox = try recyclable("fanout")
        run(sandbox, "split", #"{"numbers":[1,2,3],"parts":1,"guest":"fanout"}"#, hostCalls: LongReplies())
        XCTAssertNotEqual(try bytes(sandbox), reference, "the call should have left a reply in the host-call area")
        try sandbox.reset()
        try assertSameMemory(sandbox, as: reference, "a 10,000-byte host-call reply")
    }

    /// The pages a reset leaves writable are written by the entry stub on
    /// every call, so whether a write to one faults (which a guest can time)
    /// never depends on what earlier calls did. A guest whose own code
    /// writes nothing dirties exactly those pages.
    func testAGuestThatWritesNothingDirtiesExactlyThePagesResetsLeaveWritable() throws {
        let image = try GuestImage(name: "raw", bytes: RawGuest.elf(code: RawGuest.out(port: UInt16(HL_PORT_DONE))))
        let sandbox = try Sandbox(kvm: kvm(), image: image, configuration: SandboxConfiguration(recyclable: true))
        guard sandbox.protectsManually else {
            throw XCTSkip("this KVM has no manual dirty-log protection, so a reset protects every page again")
        }
        for round in 0..<2 {
            run(sandbox, "f")
            var dirty = sandbox.dirtyBitmap
            try sandbox.vm.readDirtyLog(into: &dirty)
            XCTAssertEqual(pages(dirty), pages(sandbox.alwaysRestored), "call \(round + 1)")
            try sandbox.reset()
        }
    }

    /// The smallest stack there can be (one page): the pages a reset leaves
    /// writable name it once, and calls that overflow it or not are undone.
    func testSmallestStackIsAsBuiltAfterCalls() throws {
        let configuration = SandboxConfiguration(memoryMB: 16, stackSize: 4096, recyclable: true)
        let reference = try bytes(sandbox("demo", configuration: configuration))
        let sandbox = try sandbox("demo", configuration: configuration)
        let stackPages = sandbox.layout.alwaysRestoredPages(imageMappings: sandbox.image.pageMappings)
            .filter { sandbox.layout.stack.contains($0) }
        XCTAssertEqual(stackPages, [sandbox.layout.stack.lowerBound])
        // The entry stub writes only pages the guest may write, or no call
        // would get as far as the guest's code.
        let echoed = try sandbox.call("echo", input: Array(#"{"a":1}"#.utf8), limits: CallLimits(timeoutMilliseconds: 1_000))
        XCTAssertEqual(String(decoding: echoed, as: UTF8.self), #"{"a":1}"#)
        try sandbox.reset()
        try assertSameMemory(sandbox, as: reference, "echo")
        for (function, args) in [("echo", #"{"a":[1,2,3]}"#), ("fib", #"{"n":20}"#), ("grow", #"{"bytes":100000}"#), ("echo", "{}")] {
            run(sandbox, function, args)
            try sandbox.reset()
            try assertSameMemory(sandbox, as: reference, function)
        }
    }

    /// A hostile image with more writable segments than the entry stub
    /// touches: the pages a reset leaves writable stay at the stub's limit,
    /// all of them writable by the guest, and the guest's writes to every
    /// segment, past the limit too, are undone.
    func testAGuestWithManyWritableSegmentsIsAsBuiltAfterWritingThemAll() throws {
        let segments = (0..<12).map { (address: 0x300000 + UInt64($0) * 0x2000, size: UInt64(0x1000)) }
        let code = segments.flatMap { RawGuest.storeDword(0xA5A5_A5A5, at: UInt32($0.address)) }
            + RawGuest.out(port: UInt16(HL_PORT_DONE))
        let image = try GuestImage(name: "raw", bytes: RawGuest.elf(code: code, extraSegments: segments))
        let configuration = SandboxConfiguration(memoryMB: 16, recyclable: true)
        let layout = try GuestLayout(configuration: configuration, image: image.elf)
        let touched = layout.alwaysRestoredPages(imageMappings: image.pageMappings)
        XCTAssertEqual(touched.count, EntryStub.maximumTouchedPages)
        XCTAssertEqual(Set(touched).count, touched.count, "a page is named twice")
        let writable = layout.mappings(imageMappings: image.pageMappings).filter { $0.writable && $0.userAccessible }
        for page in touched {
            XCTAssertTrue(writable.contains { $0.start <= page && page + GuestLayout.page <= $0.start + $0.length },
                          "0x\(String(page, radix: 16)) is not a page the guest may write")
        }

        let reference = try bytes(Sandbox(kvm: kvm(), image: image, configuration: configuration))
        let sandbox = try Sandbox(kvm: kvm(), image: image, configuration: configuration)
        for round in 1...2 {
            run(sandbox, "f")
            let written = try bytes(sandbox)
            for segment in segments {
                XCTAssertEqual(written[Int(segment.address)], 0xA5, "call \(round) did not write 0x\(String(segment.address, radix: 16))")
            }
            try sandbox.reset()
            try assertSameMemory(sandbox, as: reference, "call \(round)")
        }
    }

    /// The addresses of the pages set in a bitmap, for readable failures.
    func pages(_ bitmap: [UInt64]) -> [String] {
        bitmap.indices.flatMap { word in
            (0..<64).filter { bitmap[word] & (1 << UInt64($0)) != 0 }
                .map { "0x" + String((word * 64 + $0) * GuestMemory.pageSize, radix: 16) }
        }
    }
}
