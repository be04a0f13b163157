/// The code every guest call enters through: a page of host-written machine
/// code, mapped read-only and executable at CPL3, that puts the CPU state
/// the hypervisor does not reliably set into a known state and then jumps to
/// the guest's own entry point.
///
/// Why it exists: restoring a `VCPUState` through KVM is not enough here.
/// The nested hypervisor leaves DS/ES/FS/GS as the previous VM on the host
/// thread loaded them, whatever KVM_SET_SREGS says, and it gives guests the
/// host's XCR0, so extended state (AVX-512, PKRU, AMX) exists that KVM's view
/// of the vCPU may not cover. Code running inside the guest sets what the
/// guest will see, on every host.
///
/// What it does, changing no flag (only `mov`, `wrpkru`, segment loads,
/// `wr*base`, `xrstor` and `jmp`): zero PKRU where the guest can reach it,
/// before any data access; load the null selector into DS, ES, FS and GS; zero
/// the FS and GS bases where the guest could have moved them; put every
/// extended state component in XCR0 into its initial state with one XRSTOR
/// from an image whose XSTATE_BV is 0 (x87 reset, MXCSR = 0x1F80, vector
/// registers, opmask and PKRU zero, AMX tiles unconfigured), or FXRSTOR the
/// x87/SSE image where XSAVE is unavailable; read and write back one byte
/// of each page it is asked to touch; zero RAX, RCX and RDX, which it used;
/// and jump to the guest's entry through a pointer in the same page.
/// The guest cannot skip it (the host sets RIP) or change it (it cannot
/// write the page, nor the page tables). The page has a second entry point,
/// `prefaultOffset`, that a recyclable sandbox runs when it is built.
public enum EntryStub {
    /// Where in the page the jump target and the XSAVE image live.
    static let targetOffset = 0x100
    static let initialStateOffset = 0x200  // 64-byte aligned, as XRSTOR needs
    static let initialStateSize = 512 + 64  // legacy region + XSAVE header
    /// What fits before `targetOffset` beside the rest of the stub.
    public static let maximumTouchedPages = 8

    /// The stub's page, jumping to `target` when done. The code is position
    /// independent: the page may go at any page-aligned address.
    /// `touching`: pages the stub writes on every call, each by a one-byte
    /// read and write back that leaves it as it was (at most
    /// `maximumTouchedPages`). Making every call write them keeps whether
    /// a write there faults independent of what earlier calls did.
    public static func page(target: UInt64, features: GuestCPUFeatures, touching: [UInt64] = [],
                            prefaulting: [PageMapping] = [], exitPort: UInt16 = 0) -> [UInt8] {
        precondition(touching.count <= maximumTouchedPages)
        var code = prologue(features: features, touching: touching, at: 0)
        code += ripRelative([0xFF, 0x25], to: targetOffset, from: code.count)  // jmp [target]
        precondition(code.count <= targetOffset)

        var page = [UInt8](repeating: 0, count: 0x1000)
        page.replaceSubrange(0..<code.count, with: code)
        put(target, at: targetOffset, in: &page)
        // The legacy region of the image: FCW = 0x37F (the x87 reset value)
        // and MXCSR = 0x1F80 (every exception masked, round to nearest);
        // an abridged tag word of 0 marks every x87 register empty. The
        // XSAVE header (XSTATE_BV, XCOMP_BV) stays zero.
        put(UInt16(0x37F), at: initialStateOffset, in: &page)
        put(UInt32(0x1F80), at: initialStateOffset + 24, in: &page)

        let prefault = prefaultCode(features: features, touching: touching, exitPort: exitPort)
        page.replaceSubrange(prefaultOffset..<(prefaultOffset + prefault.count), with: prefault)
        precondition(prefaultOffset + prefault.count <= prefaultTableOffset)
        precondition(prefaulting.count <= maximumPrefaultRanges)
        for (index, mapping) in prefaulting.enumerated() {
            put(mapping.start, at: prefaultTableOffset + 16 * index, in: &page)
            put((mapping.length + 0xFFF) / 0x1000, at: prefaultTableOffset + 16 * index + 8, in: &page)
        }
        // The table ends at the first entry of zero pages, left zero here.
        return page
    }

    /// Where the second entry point starts: the same prologue, then a read
    /// of one byte of every page of the table's ranges, then `out` to the
    /// exit port. A recyclable sandbox runs it once, when it is built, so
    /// that every page the guest can reach is mapped before any call (see
    /// `Sandbox`). A guest that jumps here only reads memory it may read
    /// and ends its call.
    public static let prefaultOffset = 0x480
    /// The table of (start, pages) pairs, each two little-endian UInt64s.
    static let prefaultTableOffset = 0x680
    /// Ranges that fit in the table with its zero entry.
    public static let maximumPrefaultRanges = (0x1000 - prefaultTableOffset) / 16 - 1

    /// What both entry points do first: every piece of CPU state the
    /// hypervisor may not set, put into a known state, and the touched
    /// pages written; RAX, RCX and RDX zero at the end. `offset` is where
    /// in the page the code starts.
    private static func prologue(features: GuestCPUFeatures, touching: [UInt64], at offset: Int) -> [UInt8] {
        var code: [UInt8] = []
        code += [0xB8, 0, 0, 0, 0]  // mov eax, 0
        if features.xsaveMask & 1 << 9 != 0 {
            // PKRU first, before the stub's own data reads: a guest that left
            // PKRU denying key 0 (every page's key) would make them fault,
            // and KVM does not restore PKRU here (it is outside the XCR0
            // KVM knows of), so the VM would fault on every later call.
            code += [0xB9, 0, 0, 0, 0, 0xBA, 0, 0, 0, 0]  // mov ecx, 0; mov edx, 0
            code += [0x0F, 0x01, 0xEF]  // wrpkru
        }
        code += [0x8E, 0xD8, 0x8E, 0xC0, 0x8E, 0xE0, 0x8E, 0xE8]  // mov ds/es/fs/gs, eax
        if features.fsgsBase {
            code += [0xF3, 0x48, 0x0F, 0xAE, 0xD0]  // wrfsbase rax
            code += [0xF3, 0x48, 0x0F, 0xAE, 0xD8]  // wrgsbase rax
        }
        if features.xsaveMask != 0 {
            // Every component (RFBM = XCR0 & EDX:EAX); XSTATE_BV = 0 in the
            // image initialises each one.
            code += [0xB8, 0xFF, 0xFF, 0xFF, 0xFF]  // mov eax, 0xFFFFFFFF
            code += [0xBA, 0xFF, 0xFF, 0xFF, 0xFF]  // mov edx, 0xFFFFFFFF
            code += ripRelative([0x48, 0x0F, 0xAE, 0x2D], to: initialStateOffset, from: offset + code.count)  // xrstor64
        } else {
            code += ripRelative([0x48, 0x0F, 0xAE, 0x0D], to: initialStateOffset, from: offset + code.count)  // fxrstor64
        }
        for address in touching {
            code += [0xA0] + bytes(of: address)  // mov al, [address]
            code += [0xA2] + bytes(of: address)  // mov [address], al
        }
        code += [0xB8, 0, 0, 0, 0]  // mov eax, 0
        code += [0xBA, 0, 0, 0, 0]  // mov edx, 0
        return code
    }

    /// The prefault entry: the prologue, then for each (start, pages) in
    /// the table until one of zero pages, a one-byte read of each page;
    /// then `out` to `exitPort`, and a loop in place should anything resume it.
    private static func prefaultCode(features: GuestCPUFeatures, touching: [UInt64], exitPort: UInt16) -> [UInt8] {
        var code = prologue(features: features, touching: touching, at: prefaultOffset)
        code += ripRelative([0x48, 0x8D, 0x35], to: prefaultTableOffset, from: prefaultOffset + code.count)  // lea rsi, [table]
        let nextRange = code.count
        code += [0x48, 0x8B, 0x3E]  // mov rdi, [rsi]
        code += [0x48, 0x8B, 0x4E, 0x08]  // mov rcx, [rsi + 8]
        code += [0x48, 0x85, 0xC9]  // test rcx, rcx
        var loop: [UInt8] = []
        loop += [0x8A, 0x07]  // nextPage: mov al, [rdi]
        loop += [0x48, 0x81, 0xC7, 0x00, 0x10, 0x00, 0x00]  // add rdi, 0x1000
        loop += [0x48, 0xFF, 0xC9]  // dec rcx
        loop += [0x75, UInt8(bitPattern: Int8(-(loop.count + 2)))]  // jnz nextPage
        loop += [0x48, 0x83, 0xC6, 0x10]  // add rsi, 16
        code += [0x74, UInt8(loop.count + 2)]  // jz done (past the loop and its jmp)
        code += loop
        code += [0xEB, UInt8(bitPattern: Int8(nextRange - (code.count + 2)))]  // jmp nextRange
        code += [0x66, 0xBA] + bytes(of: exitPort)  // done: mov dx, exitPort
        code += [0xEE]  // out dx, al
        code += [0xEB, 0xFE]  // jmp $
        return code
    }

    /// `opcode` with a 32-bit RIP-relative displacement to `offset`, for an
    /// instruction that starts at `start` in the page.
    private static func ripRelative(_ opcode: [UInt8], to offset: Int, from start: Int) -> [UInt8] {
        let next = start + opcode.count + 4
        return opcode + bytes(of: Int32(offset - next))
    }

    private static func bytes<T: FixedWidthInteger>(of value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    private static func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in page: inout [UInt8]) {
        page.replaceSubrange(offset..<(offset + MemoryLayout<T>.size), with: bytes(of: value))
    }
}
