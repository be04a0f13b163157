import CGuestABI
import MicroVM
import Sandbox
import XCTest

/// Guests that break the rules on purpose. Each must end in its named error
/// while the process, and the next sandbox, carry on.
final class HostileGuestTests: SandboxTestCase {
    /// The layout every raw guest here runs in (the image does not move the
    /// fixed areas).
    func layout() throws -> GuestLayout {
        try GuestLayout(configuration: .init(), image: ELFImage(bytes: RawGuest.elf(code: RawGuest.spin)))
    }

    func run(_ code: [UInt8], limits: CallLimits = .init(timeoutMilliseconds: 2_000)) throws -> SandboxError? {
        let image = try GuestImage(name: "raw", bytes: RawGuest.elf(code: code))
        let sandbox = try Sandbox(kvm: kvm(), image: image)
        do {
            let result = try sandbox.call("f", input: [], limits: limits)
            XCTFail("a hostile guest returned \(result)")
            return nil
        } catch let error as SandboxError {
            XCTAssertEqual(sandbox.status, .poisoned, "\(error)")
            return error
        }
    }

    func testReadingThePageTablesIsAMemoryAccessViolation() throws {
        let error = try run(RawGuest.movRAXFromAbsolute(UInt32(GuestLayout.pageTableArea)))
        XCTAssertEqual(error, .memoryAccessViolation(address: GuestLayout.pageTableArea, rip: 0x200000))
    }

    func testReadingTheSupervisorOnlyTSSIsAMemoryAccessViolation() throws {
        let tss = UInt32(GuestLayout.descriptorTables + 0x1000)
        XCTAssertEqual(try run(RawGuest.movRAXFromAbsolute(tss))?.kind, "memory_access_violation")
    }

    /// The entry stub runs before every later call: a guest that could
    /// patch it would own the next job's CPU state.
    func testWritingTheEntryStubIsAMemoryAccessViolation() throws {
        let stub = UInt32(GuestLayout.entryStub)
        XCTAssertEqual(try run(RawGuest.storeDword(0x90909090, at: stub)),
                       .memoryAccessViolation(address: UInt64(stub), rip: 0x200000))
    }

    func testWritingTheReadOnlyInputAreaIsAMemoryAccessViolation() throws {
        let input = UInt32(try layout().input.lowerBound)
        XCTAssertEqual(try run(RawGuest.storeDword(1, at: input)),
                       .memoryAccessViolation(address: UInt64(input), rip: 0x200000))
    }

    func testWritingPastTheStackIntoTheGuardPageIsAMemoryAccessViolation() throws {
        let guardPage = UInt32(try layout().stack.lowerBound - 8)
        XCTAssertEqual(try run(RawGuest.storeDword(1, at: guardPage))?.kind, "memory_access_violation")
    }

    func testUnknownPortIsAGuestCrash() throws {
        let error = try run(RawGuest.out(port: 0x1234))
        XCTAssertEqual(error?.kind, "guest_crash")
        XCTAssertTrue(error?.message.contains("0x1234") ?? false, "\(String(describing: error))")
    }

    func testDoneWithoutAResultIsInvalidOutput() throws {
        XCTAssertEqual(try run(RawGuest.out(port: UInt16(HL_PORT_DONE)))?.kind, "invalid_output")
    }

    func testMalformedHostCallIsAGuestCrash() throws {
        let error = try run(RawGuest.out(port: UInt16(HL_PORT_HOSTCALL)))
        XCTAssertEqual(error?.kind, "guest_crash")
        XCTAssertTrue(error?.message.contains("malformed host call") ?? false)
    }

    func testHostCallWithAnOversizedPayloadIsAGuestCrash() throws {
        let area = UInt32(try layout().hostCall.lowerBound)
        let code = RawGuest.storeDword(HL_HOSTCALL_MAGIC, at: area) + RawGuest.storeDword(HL_HOSTCALL_LOG.rawValue, at: area + 4)
            + RawGuest.storeDword(0xFFFF_FFF0, at: area + 8) + RawGuest.out(port: UInt16(HL_PORT_HOSTCALL))
        XCTAssertEqual(try run(code)?.kind, "guest_crash")
    }

    func testResultLongerThanTheLimitIsOutputTooLarge() throws {
        let area = UInt32(try layout().output.lowerBound)
        let code = RawGuest.storeDword(HL_RESULT_MAGIC, at: area) + RawGuest.storeDword(0, at: area + 4)
            + RawGuest.storeDword(100, at: area + 8) + RawGuest.out(port: UInt16(HL_PORT_DONE))
        XCTAssertEqual(try run(code, limits: CallLimits(maxOutputBytes: 10)), .outputTooLarge(bytes: 100, limit: 10))
    }

    func testResultLongerThanTheOutputAreaIsInvalidOutput() throws {
        let area = UInt32(try layout().output.lowerBound)
        let code = RawGuest.storeDword(HL_RESULT_MAGIC, at: area) + RawGuest.storeDword(0, at: area + 4)
            + RawGuest.storeDword(0x7FFF_FFFF, at: area + 8) + RawGuest.out(port: UInt16(HL_PORT_DONE))
        XCTAssertEqual(try run(code)?.kind, "invalid_output")
    }

    func testTooManyHostCalls() throws {
        let area = UInt32(try layout().hostCall.lowerBound)
        // Loop forever asking for the wall clock.
        let body = RawGuest.storeDword(HL_HOSTCALL_MAGIC, at: area)
            + RawGuest.storeDword(HL_HOSTCALL_WALL_CLOCK.rawValue, at: area + 4)
            + RawGuest.storeDword(0, at: area + 8) + RawGuest.out(port: UInt16(HL_PORT_HOSTCALL))
        let jumpBack: [UInt8] = [0xE9] + withUnsafeBytes(of: Int32(-(body.count + 5)).littleEndian) { Array($0) }
        XCTAssertEqual(try run(body + jumpBack, limits: CallLimits(timeoutMilliseconds: 10_000, maxHostCalls: 50)),
                       .tooManyHostCalls(limit: 50))
    }

    func testSpinningGuestTimesOutWithinItsLimitPlusAMargin() throws {
        let start = Date()
        XCTAssertEqual(try run(RawGuest.spin, limits: CallLimits(timeoutMilliseconds: 200)), .timeout(milliseconds: 200))
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertGreaterThanOrEqual(elapsed, 0.2)
        XCTAssertLessThan(elapsed, 0.2 + 1.0, "the timeout fired \(elapsed) s after the call started")
    }

    func testCancellationFromAnotherThreadStopsTheCall() throws {
        let image = try GuestImage(name: "raw", bytes: RawGuest.elf(code: RawGuest.spin))
        let sandbox = try Sandbox(kvm: kvm(), image: image)
        let canceller = Thread { usleep(50_000); sandbox.stop(.cancelled) }
        canceller.start()
        XCTAssertThrowsError(try sandbox.call("f", input: [], limits: CallLimits(timeoutMilliseconds: 10_000))) {
            XCTAssertEqual($0 as? SandboxError, .cancelled)
        }
        XCTAssertEqual(sandbox.status, .poisoned)
        XCTAssertThrowsError(try sandbox.call("f", input: []), "a poisoned sandbox must refuse calls")
    }

    func testSegmentsOverHostStructuresOrOutOfRangeAreRefused() throws {
        for address: UInt64 in [0x1000, GuestLayout.bootInfo, 0x1000_0000, 0x7FFF_FFFF_F000] {
            let bytes = RawGuest.elf(code: RawGuest.spin, extraSegments: [(address, 0x1000)])
            XCTAssertThrowsError(try Sandbox(kvm: kvm(), image: GuestImage(name: "raw", bytes: bytes)), "segment at \(address)") { error in
                XCTAssertEqual((error as? SandboxError)?.kind, "invalid_guest", "\(error)")
            }
        }
    }

    func testInputLargerThanTheInputAreaIsRefusedBeforeRunning() throws {
        let image = try GuestImage(name: "raw", bytes: RawGuest.elf(code: RawGuest.spin))
        let sandbox = try Sandbox(kvm: kvm(), image: image)
        XCTAssertThrowsError(try sandbox.call("f", input: [UInt8](repeating: 0x20, count: 2 << 20))) {
            XCTAssertEqual(($0 as? SandboxError)?.kind, "invalid_input")
        }
        XCTAssertThrowsError(try sandbox.call("", input: [])) {
            XCTAssertEqual(($0 as? SandboxError)?.kind, "invalid_input")
        }
    }

    func testLimitsOutOfRangeAreRefused() throws {
        for memory in [0, 4, 1 << 20] {
            let image = try GuestImage(name: "raw", bytes: RawGuest.elf(code: RawGuest.spin))
            XCTAssertThrowsError(try Sandbox(kvm: kvm(), image: image, configuration: .init(memoryMB: memory))) {
                XCTAssertEqual(($0 as? SandboxError)?.kind, "invalid_limits")
            }
        }
        let sandbox = try Sandbox(kvm: kvm(), image: GuestImage(name: "raw", bytes: RawGuest.elf(code: RawGuest.spin)))
        XCTAssertThrowsError(try sandbox.call("f", input: [], limits: CallLimits(timeoutMilliseconds: 0))) {
            XCTAssertEqual(($0 as? SandboxError)?.kind, "invalid_limits")
        }
    }
}
