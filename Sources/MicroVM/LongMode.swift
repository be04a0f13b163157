import CKVM

/// The CPU state of a guest in 64-bit long mode at CPL3. On these hosts code at
/// CPL0 is emulated (slow, and SSE fails), while CPL3 runs natively, so the
/// guest never runs at ring 0: the host sets the mode up directly through
/// KVM_SET_SREGS, with user-level segments and IOPL 3 so that `out` works.
public enum LongMode {
    /// Selectors of the GDT written by `writeDescriptorTables`.
    static let userCodeSelector: UInt16 = 0x18 | 3
    static let userDataSelector: UInt16 = 0x20 | 3
    static let taskSelector: UInt16 = 0x28

    /// Bytes the GDT (one page) and the TSS with its I/O bitmap (two pages) need.
    public static let descriptorTablesSize: UInt64 = 3 * 0x1000

    /// The TSS's I/O permission bitmap covers ports 0..<ioBitmapPorts, all
    /// allowed. KVM here does not let the guest keep RFLAGS.IOPL = 3, so the
    /// bitmap is what lets CPL3 code use `out`; ports above it fault.
    static let ioBitmapPorts = 0x8000
    static let tssSize = 0x68
    static var tssLimit: UInt64 { UInt64(tssSize + ioBitmapPorts / 8) }

    static let cr0: UInt64 = 1 << 0 | 1 << 1 | 1 << 4 | 1 << 5 | 1 << 16 | 1 << 31  // PE MP ET NE WP PG
    static let cr4: UInt64 = 1 << 5 | 1 << 9 | 1 << 10  // PAE OSFXSR OSXMMEXCPT: SSE without an OS
    static let efer: UInt64 = 1 << 8 | 1 << 10 | 1 << 11  // LME LMA NXE
    /// Bit 1 is always set; IOPL = 3 lets CPL3 code use `out`.
    public static let rflags: UInt64 = 0x2 | 0x3000

    /// The descriptor tables must be mapped, supervisor-only: when the guest
    /// does `out`, the hypervisor here checks the TSS's I/O bitmap through the
    /// guest's page tables. CPL3 code still cannot read or write them.
    public static func descriptorTablesMapping(at address: UInt64) -> PageMapping {
        PageMapping(start: address, length: descriptorTablesSize, writable: false, executable: false,
                    userAccessible: false)
    }

    /// Writes a GDT and a TSS at `address` (`descriptorTablesSize` bytes). The CPU only reads
    /// them on a segment reload or a privilege change, which a guest without
    /// an IDT never survives; they exist so that the state KVM checks on entry
    /// is architecturally valid.
    public static func writeDescriptorTables(into memory: GuestMemory, at address: UInt64) throws {
        let descriptors: [UInt64] = [
            0,
            0x00AF_9A00_0000_FFFF,  // ring-0 code, 64-bit
            0x00CF_9200_0000_FFFF,  // ring-0 data
            0x00AF_FA00_0000_FFFF,  // ring-3 code, 64-bit
            0x00CF_F200_0000_FFFF,  // ring-3 data
        ] + taskDescriptor(base: address + 0x1000, limit: tssLimit)
        for (index, descriptor) in descriptors.enumerated() {
            try memory.store(descriptor, at: address + UInt64(index * 8))
        }
        let tss = address + 0x1000
        try memory.zero(at: tss, length: Int(tssLimit))
        try memory.store(UInt16(tssSize), at: tss + 0x66)
        // The byte after the bitmap must be all ones.
        try memory.store(UInt8(0xFF), at: tss + tssLimit)
    }

    private static func taskDescriptor(base: UInt64, limit: UInt64) -> [UInt64] {
        let low = (limit & 0xFFFF) | (base & 0xFF_FFFF) << 16 | 0x89 << 40 | (limit >> 16 & 0xF) << 48
            | (base >> 24 & 0xFF) << 56
        return [low, base >> 32]
    }

    /// Special registers for the guest: paging rooted at `pageTableRoot`,
    /// ring-3 64-bit segments, descriptor tables at `descriptorTables`.
    public static func specialRegisters(from initial: kvm_sregs, pageTableRoot: UInt64,
                                        descriptorTables: UInt64) -> kvm_sregs {
        var sregs = initial
        sregs.cr0 = cr0
        sregs.cr3 = pageTableRoot
        sregs.cr4 = cr4
        sregs.efer = efer
        sregs.cr2 = 0
        sregs.cs = segment(selector: userCodeSelector, type: 0xB, code: true)
        let data = segment(selector: userDataSelector, type: 0x3, code: false)
        sregs.ds = data
        sregs.es = data
        sregs.fs = data
        sregs.gs = data
        sregs.ss = data
        sregs.tr = kvm_segment(base: descriptorTables + 0x1000, limit: UInt32(tssLimit), selector: taskSelector, type: 0xB,
                               present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0, padding: 0)
        sregs.ldt = kvm_segment(base: 0, limit: 0, selector: 0, type: 2, present: 0, dpl: 0, db: 0, s: 0, l: 0,
                                g: 0, avl: 0, unusable: 1, padding: 0)
        sregs.gdt = kvm_dtable(base: descriptorTables, limit: 7 * 8 - 1, padding: (0, 0, 0))
        sregs.idt = kvm_dtable(base: 0, limit: 0, padding: (0, 0, 0))
        return sregs
    }

    private static func segment(selector: UInt16, type: UInt8, code: Bool) -> kvm_segment {
        kvm_segment(base: 0, limit: 0xFFFF_FFFF, selector: selector, type: type, present: 1, dpl: 3,
                    db: code ? 0 : 1, s: 1, l: code ? 1 : 0, g: 1, avl: 0, unusable: 0, padding: 0)
    }

    /// General registers to enter the guest at `entry` with the stack at `stack`.
    public static func registers(entry: UInt64, stack: UInt64) -> kvm_regs {
        var regs = kvm_regs()
        regs.rip = entry
        regs.rsp = stack
        regs.rflags = rflags
        return regs
    }
}
