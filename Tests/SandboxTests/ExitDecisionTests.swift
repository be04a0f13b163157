import CGuestABI
import MicroVM
@testable import Sandbox
import XCTest

/// The run loop's decisions, from made-up exits: no /dev/kvm needed.
final class ExitDecisionTests: XCTestCase {
    func testPortsOfTheABI() {
        XCTAssertEqual(decide(.ioOut(port: UInt16(HL_PORT_DONE), size: 1, value: 0)), .callFinished)
        XCTAssertEqual(decide(.ioOut(port: UInt16(HL_PORT_HOSTCALL), size: 1, value: 7)), .hostCall)
    }

    func testAnythingElseEndsTheCall() {
        XCTAssertEqual(decide(.ioOut(port: 0x3F8, size: 1, value: 65)), .crash(reason: "write to unknown I/O port 0x3f8"))
        XCTAssertEqual(decide(.ioIn(port: 0x60, size: 1)), .crash(reason: "read from unknown I/O port 0x60"))
        XCTAssertEqual(decide(.mmio(address: 0xFEE0_0000, isWrite: true)), .memoryViolation(address: 0xFEE0_0000))
        XCTAssertEqual(decide(.shutdown), .tripleFault)
        XCTAssertEqual(decide(.interrupted), .stopped)
        XCTAssertEqual(decide(.halt), .crash(reason: "hlt"))
        if case .crash = decide(.internalError(suberror: 1)) {} else { XCTFail("internal error must end the call") }
        if case .crash = decide(.failEntry(reason: 0x80000021)) {} else { XCTFail("failed entry must end the call") }
        if case .crash = decide(.unsupported(reason: 99)) {} else { XCTFail("unknown exits must end the call") }
    }

    func testErrorKindsAreTheNamesJobsCarry() {
        let kinds: [(SandboxError, String, Bool)] = [
            (.timeout(milliseconds: 1), "timeout", true), (.cancelled, "cancelled", true),
            (.outOfMemory("x"), "out_of_memory", true), (.guestCrash(reason: "x", rip: 1), "guest_crash", true),
            (.guestError("x"), "guest_error", true), (.invalidOutput("x"), "invalid_output", true),
            (.outputTooLarge(bytes: 2, limit: 1), "output_too_large", true),
            (.unknownFunction("x"), "unknown_function", false),
            (.memoryAccessViolation(address: 0, rip: 0), "memory_access_violation", true),
            (.invalidInput("x"), "invalid_input", false), (.tooManyHostCalls(limit: 1), "too_many_host_calls", true),
            (.invalidLimits("x"), "invalid_limits", false), (.invalidGuest(.notELF), "invalid_guest", false),
        ]
        for (error, kind, retryable) in kinds {
            XCTAssertEqual(error.kind, kind)
            XCTAssertEqual(error.isRetryable, retryable, kind)
            XCTAssertFalse(error.message.isEmpty)
        }
    }

    func testGuestTextIsMadeSafe() {
        XCTAssertEqual(Sandbox.safeMessage(Array("a\u{0}b\nc\u{202E}".utf8)), "a\\u{0}b\\nc\\u{202E}")
        XCTAssertEqual(Sandbox.safeMessage([0xFF, 0x41]), "\u{FFFD}A")
        XCTAssertEqual(Sandbox.safeMessage([UInt8](repeating: 0x41, count: 5000)).utf8.count, 1024)
    }
}

/// The memory map, computed without a VM.
final class GuestLayoutTests: XCTestCase {
    func image(end: UInt64) throws -> ELFImage {
        var bytes = [UInt8](repeating: 0, count: 0x1002)
        func put<T: FixedWidthInteger>(_ value: T, _ at: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { bytes[at + i] = b } }
        }
        bytes[0] = 0x7F; bytes[1] = 0x45; bytes[2] = 0x4C; bytes[3] = 0x46; bytes[4] = 2; bytes[5] = 1
        put(UInt16(2), 16); put(UInt16(62), 18); put(UInt64(0x200000), 24); put(UInt64(64), 32)
        put(UInt16(56), 54); put(UInt16(1), 56)
        put(UInt32(1), 64); put(UInt32(7), 68); put(UInt64(0x1000), 72); put(UInt64(0x200000), 80)
        put(UInt64(2), 96); put(end - 0x200000, 104)
        return try ELFImage(bytes: bytes)
    }

    func testAreasAreOrderedWithGuardPagesBetween() throws {
        let layout = try GuestLayout(configuration: .init(), image: image(end: 0x230000))
        XCTAssertEqual(layout.image, 0x200000..<0x230000)
        let areas = [layout.image, layout.heap, layout.input, layout.output, layout.hostCall, layout.stack]
        for (lower, upper) in zip(areas, areas.dropFirst()) {
            XCTAssertEqual(upper.lowerBound - lower.upperBound, 0x1000, "one guard page between \(lower) and \(upper)")
        }
        XCTAssertEqual(layout.stack.upperBound, 16 << 20 - 0x1000)
        XCTAssertEqual(layout.stack.upperBound % 16, 0)
        XCTAssertEqual(layout.bootInfoRecord(features: .init(xsaveMask: 0, fsgsBase: false)).heap_start, layout.heap.lowerBound)
        XCTAssertEqual(layout.bootInfoRecord(features: .init(xsaveMask: 0x7, fsgsBase: true)).magic, UInt64(HL_BOOT_MAGIC))
    }

    func testAnImageTooLargeForTheMemoryIsRefused() throws {
        XCTAssertThrowsError(try GuestLayout(configuration: .init(memoryMB: 8), image: image(end: 0x600000))) {
            XCTAssertEqual(($0 as? SandboxError)?.kind, "invalid_guest")
        }
        XCTAssertNoThrow(try GuestLayout(configuration: .init(memoryMB: 64), image: image(end: 0x600000)))
    }

    func testConfigurationLimits() {
        XCTAssertThrowsError(try SandboxConfiguration(memoryMB: 7).validate())
        XCTAssertThrowsError(try SandboxConfiguration(memoryMB: 100_000).validate())
        XCTAssertThrowsError(try SandboxConfiguration(stackSize: 1000).validate())
        XCTAssertNoThrow(try SandboxConfiguration(memoryMB: 8).validate())
        XCTAssertThrowsError(try CallLimits(timeoutMilliseconds: 0).validate())
        XCTAssertThrowsError(try CallLimits(maxOutputBytes: -1).validate())
    }
}
