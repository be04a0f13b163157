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
/// write the page, nor the page tables).
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
    public static func page(target: UInt64, features: GuestCPUFeatures, touching: [UInt64] = []) -> [UInt8] {
        precondition(touching.count <= maximumTouchedPages)
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
            code += ripRelative([0x48, 0x0F, 0xAE, 0x2D], to: initialStateOffset, from: code.count)  // xrstor64
        } else {
            code += ripRelative([0x48, 0x0F, 0xAE, 0x0D], to: initialStateOffset, from: code.count)  // fxrstor64
        }
        for address in touching {
            code += [0xA0] + bytes(of: address)  // mov al, [address]
            code += [0xA2] + bytes(of: address)  // mov [address], al
        }
        code += [0xB8, 0, 0, 0, 0]  // mov eax, 0
        code += [0xBA, 0, 0, 0, 0]  // mov edx, 0
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
        return page
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
