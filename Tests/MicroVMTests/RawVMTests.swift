import CKVM
import KVMTestSupport
import MicroVM
import XCTest

/// Runs hand-assembled machine code at CPL3 in long mode: the MicroVM layer
/// alone, with no ELF and no guest runtime.
final class RawVMTests: XCTestCase {
    static let codeAddress: UInt64 = 0x200000
    static let stackTop: UInt64 = 0x302000

    struct RawVM {
        let vm: VM
        let vcpu: VCPU
        let memory: GuestMemory
    }

    func makeRawVM(code: [UInt8]) throws -> RawVM {
        if let reason = KVMRequirement.unavailableReason() {
            if KVMRequirement.isRequired { XCTFail(reason) }
            throw XCTSkip(reason)
        }
        let kvm = try KVM()
        let memory = try GuestMemory(size: 4 << 20)
        let vm = try kvm.makeVM()
        try vm.map(memory)
        try LongMode.writeDescriptorTables(into: memory, at: 0x1000)
        var tables = try PageTableBuilder(memory: memory, areaStart: 0x4000, areaEnd: 0x100000)
        try tables.map(LongMode.descriptorTablesMapping(at: 0x1000))
        try tables.map(PageMapping(start: Self.codeAddress, length: 0x1000, writable: false, executable: true))
        try tables.map(PageMapping(start: 0x301000, length: 0x1000, writable: true, executable: false))
        try memory.write(code, at: Self.codeAddress)
        let vcpu = try vm.makeVCPU()
        try vcpu.setSpecialRegisters(LongMode.specialRegisters(from: try vcpu.specialRegisters(),
                                                               pageTableRoot: tables.root, descriptorTables: 0x1000))
        try vcpu.setRegisters(LongMode.registers(entry: Self.codeAddress, stack: Self.stackTop))
        return RawVM(vm: vm, vcpu: vcpu, memory: memory)
    }

    static let outToPort7F00: [UInt8] = [0x66, 0xBA, 0x00, 0x7F, 0xB0, 0x2A, 0xEE]  // mov dx,0x7f00; mov al,42; out dx,al

    func testOutAtCPL3ExitsWithPortAndValue() throws {
        let raw = try makeRawVM(code: Self.outToPort7F00)
        XCTAssertEqual(try raw.vcpu.runUntilExit(), .ioOut(port: 0x7F00, size: 1, value: 42))
        XCTAssertEqual(try raw.vcpu.specialRegisters().cs.dpl, 3)
    }

    func testSSEWorksAtCPL3() throws {
        // pxor xmm0,xmm0; movq rax,xmm0; then the out
        let raw = try makeRawVM(code: [0x66, 0x0F, 0xEF, 0xC0, 0x66, 0x48, 0x0F, 0x7E, 0xC0] + Self.outToPort7F00)
        XCTAssertEqual(try raw.vcpu.runUntilExit(), .ioOut(port: 0x7F00, size: 1, value: 42))
    }

    func testInvalidInstructionIsATripleFault() throws {
        let raw = try makeRawVM(code: [0x0F, 0x0B])
        XCTAssertEqual(try raw.vcpu.runUntilExit(), .shutdown)
    }

    func testReadingUnmappedMemoryFaultsWithTheAddressInCR2() throws {
        // mov rax, [0x100000] — the page tables live there, unmapped.
        let raw = try makeRawVM(code: [0x48, 0x8B, 0x04, 0x25, 0x00, 0x00, 0x10, 0x00])
        XCTAssertEqual(try raw.vcpu.runUntilExit(), .shutdown)
        XCTAssertEqual(try raw.vcpu.specialRegisters().cr2, 0x100000)
    }

    func testWritingReadOnlyCodeFaults() throws {
        // mov byte [0x200000], 0
        let raw = try makeRawVM(code: [0xC6, 0x04, 0x25, 0x00, 0x00, 0x20, 0x00, 0x00])
        XCTAssertEqual(try raw.vcpu.runUntilExit(), .shutdown)
        XCTAssertEqual(try raw.vcpu.specialRegisters().cr2, 0x200000)
    }

    func testStopInterruptsASpinningGuestAndTheVCPURunsAgain() throws {
        let raw = try makeRawVM(code: [0xEB, 0xFE] + Self.outToPort7F00)
        let stopper = Thread { usleep(20_000); raw.vcpu.stop() }
        stopper.start()
        XCTAssertEqual(try raw.vcpu.runUntilExit(), .interrupted)
        // A stop before the run starts is not lost.
        raw.vcpu.clearStop()
        raw.vcpu.stop()
        XCTAssertEqual(try raw.vcpu.runUntilExit(), .interrupted)
        // After clearing, the vCPU is usable: skip the spin and run to the out.
        raw.vcpu.clearStop()
        var regs = try raw.vcpu.registers()
        regs.rip = Self.codeAddress + 2
        try raw.vcpu.setRegisters(regs)
        XCTAssertEqual(try raw.vcpu.runUntilExit(), .ioOut(port: 0x7F00, size: 1, value: 42))
    }

    func testGuestMemoryRefusesOutOfBoundsAccess() throws {
        let memory = try GuestMemory(size: 8192)
        XCTAssertThrowsError(try memory.write([1, 2, 3], at: 8190))
        XCTAssertThrowsError(try memory.read(at: UInt64.max - 1, count: 4))
        XCTAssertThrowsError(try GuestMemory(size: 100))
        XCTAssertNoThrow(try memory.write([1, 2], at: 8190))
        XCTAssertEqual(try memory.read(at: 8190, count: 2), [1, 2])
    }
}
