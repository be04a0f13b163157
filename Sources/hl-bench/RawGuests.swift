import CGuestABI
import MicroVM
import Sandbox

/// x86-64 machine code assembled by hand: the benchmark's probes must do
/// exactly one kind of work each (one `out`, N host calls, N dirty pages),
/// which no compiled guest promises.
struct MachineCode {
    enum Register: UInt8 {
        case rax = 0, rcx = 1, rdx = 2, rbx = 3, rsi = 6
    }

    private(set) var bytes: [UInt8] = []

    mutating func emit(_ more: [UInt8]) {
        bytes += more
    }

    /// mov reg64, [absolute address] (ModRM with a SIB byte that has no base
    /// and no index: a plain disp32).
    mutating func load(_ register: Register, fromAbsolute address: UInt64) {
        precondition(address < 0x8000_0000, "disp32 addresses are sign-extended")
        emit([0x48, 0x8B, 0x04 | register.rawValue << 3, 0x25] + Self.little(UInt32(address)))
    }

    /// mov dword [base + offset], value
    mutating func store(_ value: UInt32, at base: Register, offset: UInt8) {
        emit([0xC7, 0x40 | base.rawValue, offset] + Self.little(value))
    }

    /// mov dx, port; out dx, al
    mutating func out(_ port: UInt32) {
        emit([0x66, 0xBA] + Self.little(UInt16(port)) + [0xEE])
    }

    /// Runs `body` ECX times, not at all when ECX is 0. `body` must leave ECX alone.
    mutating func repeatECX(_ body: (inout MachineCode) -> Void) {
        var inner = MachineCode()
        body(&inner)
        inner.emit([0xFF, 0xC9])  // dec ecx
        let back = -(inner.bytes.count + 2)
        precondition(back >= -128, "loop body too long for a short jump")
        inner.emit([0x75, UInt8(bitPattern: Int8(back))])  // jnz body
        precondition(inner.bytes.count <= 127, "loop too long for a short jump")
        emit([0x85, 0xC9, 0x74, UInt8(inner.bytes.count)])  // test ecx, ecx; jz past the loop
        emit(inner.bytes)
    }

    static func little<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }
}

/// The guests the micro-benchmarks run.
enum RawGuests {
    /// Code for a bare VM: `out` to the DONE port forever. Every KVM_RUN
    /// ends at the next `out`, so one run is one exit round trip.
    static var outLoop: [UInt8] {
        var code = MachineCode()
        code.emit([0x66, 0xBA] + MachineCode.little(UInt16(HL_PORT_DONE)))  // mov dx, port
        code.emit([0xEE, 0xEB, 0xFD])  // out dx, al; jmp back to the out
        return code.bytes
    }

    /// A guest that speaks the call protocol with no runtime at all. Its
    /// input is two little-endian UInt32s: K, then D. It makes K wall-clock
    /// host calls, writes one byte to each of the first D heap pages, writes
    /// an empty OK result and signals done. So a call dirties exactly D + 1
    /// pages (the heap pages and the output header's page), and the
    /// difference between K = 64 and K = 0 is 64 host-call round trips.
    static func probeELF() -> [UInt8] {
        func boot(_ field: PartialKeyPath<hl_boot_info>) -> UInt64 {
            UInt64(HL_BOOT_INFO_ADDR) + UInt64(MemoryLayout<hl_boot_info>.offset(of: field)!)
        }
        var code = MachineCode()
        // rsi = the input bytes: input area + header + name_len.
        code.load(.rsi, fromAbsolute: boot(\hl_boot_info.input_addr))
        code.emit([0x8B, 0x46, 0x04])  // mov eax, [rsi + 4] (hl_call_header.name_len)
        code.emit([0x48, 0x8D, 0x74, 0x06, UInt8(MemoryLayout<hl_call_header>.size)])  // lea rsi, [rsi + rax + 16]

        code.emit([0x8B, 0x0E])  // mov ecx, [rsi]: K
        code.load(.rbx, fromAbsolute: boot(\hl_boot_info.hostcall_addr))
        code.emit([0x66, 0xBA] + MachineCode.little(UInt16(HL_PORT_HOSTCALL)))  // mov dx, HOSTCALL
        code.repeatECX { body in
            // The reply overwrites the request, so write it each time.
            body.store(HL_HOSTCALL_MAGIC, at: .rbx, offset: 0)
            body.store(HL_HOSTCALL_WALL_CLOCK.rawValue, at: .rbx, offset: 4)
            body.store(0, at: .rbx, offset: 8)
            body.emit([0xEE])  // out dx, al
        }

        code.emit([0x8B, 0x4E, 0x04])  // mov ecx, [rsi + 4]: D
        code.load(.rbx, fromAbsolute: boot(\hl_boot_info.heap_start))
        code.repeatECX { body in
            body.emit([0xC6, 0x03, 0x01])  // mov byte [rbx], 1
            body.emit([0x48, 0x81, 0xC3] + MachineCode.little(UInt32(HL_PAGE_SIZE)))  // add rbx, page
        }

        code.load(.rax, fromAbsolute: boot(\hl_boot_info.output_addr))
        code.store(HL_RESULT_MAGIC, at: .rax, offset: 0)
        code.store(HL_STATUS_OK.rawValue, at: .rax, offset: 4)
        code.store(0, at: .rax, offset: 8)
        code.out(HL_PORT_DONE)
        return staticELF(code: code.bytes, address: UInt64(HL_IMAGE_BASE))
    }

    static func probeInput(hostCalls: UInt32, dirtyPages: UInt32) -> [UInt8] {
        MachineCode.little(hostCalls) + MachineCode.little(dirtyPages)
    }

    /// A static ELF64 executable with one read+execute PT_LOAD segment
    /// holding `code` at `address`, entered at its first byte.
    static func staticELF(code: [UInt8], address: UInt64) -> [UInt8] {
        let codeOffset = 0x1000
        var file = [UInt8](repeating: 0, count: codeOffset + code.count)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            for (index, byte) in MachineCode.little(value).enumerated() { file[offset + index] = byte }
        }
        file.replaceSubrange(0..<8, with: [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0])  // ELF, 64-bit, LE, v1
        put(UInt16(2), at: 16)  // ET_EXEC
        put(UInt16(62), at: 18)  // x86-64
        put(UInt32(1), at: 20)
        put(address, at: 24)  // e_entry
        put(UInt64(64), at: 32)  // e_phoff
        put(UInt16(64), at: 52)  // e_ehsize
        put(UInt16(56), at: 54)  // e_phentsize
        put(UInt16(1), at: 56)  // e_phnum
        put(UInt32(1), at: 64)  // PT_LOAD
        put(UInt32(5), at: 68)  // R + X
        put(UInt64(codeOffset), at: 72)
        put(address, at: 80)
        put(address, at: 88)
        put(UInt64(code.count), at: 96)
        put(UInt64(code.count), at: 104)
        put(UInt64(0x1000), at: 112)
        file.replaceSubrange(codeOffset..<(codeOffset + code.count), with: code)
        return file
    }
}

/// A long-mode CPL3 VM built straight from MicroVM, with nothing a sandbox
/// adds (no ELF, no guest layout, no FPU state, one code page): the smallest
/// VM that runs guest code the way sandboxes do.
struct BareCPL3VM {
    let vm: VM
    let vcpu: VCPU
    let memory: GuestMemory

    static let memorySize = 1 << 20
    static let descriptorTables: UInt64 = 0x1000
    static let pageTableArea: Range<UInt64> = 0x4000..<0x10000
    static let codeAddress: UInt64 = 0x10000

    init(kvm: KVM, code: [UInt8]) throws {
        memory = try GuestMemory(size: Self.memorySize)
        vm = try kvm.makeVM()
        try vm.map(memory)
        try LongMode.writeDescriptorTables(into: memory, at: Self.descriptorTables)
        var tables = try PageTableBuilder(memory: memory, areaStart: Self.pageTableArea.lowerBound,
                                          areaEnd: Self.pageTableArea.upperBound)
        try tables.map(LongMode.descriptorTablesMapping(at: Self.descriptorTables))
        try tables.map(PageMapping(start: Self.codeAddress, length: UInt64(GuestMemory.pageSize),
                                   writable: false, executable: true))
        try memory.write(code, at: Self.codeAddress)
        vcpu = try vm.makeVCPU()
        try vcpu.setSpecialRegisters(LongMode.specialRegisters(from: try vcpu.specialRegisters(),
                                                               pageTableRoot: tables.root,
                                                               descriptorTables: Self.descriptorTables))
        // No stack: the code never touches one.
        try vcpu.setRegisters(LongMode.registers(entry: Self.codeAddress, stack: 0))
    }
}
