import CKVM

/// What guest code at CPL3 can use on this host, found by trying it.
///
/// Guests cannot ask: `cpuid` answers zeros on the nested hypervisor here,
/// and it applies the host's CR4 and XCR0 to the guest whatever the VM asks
/// for, so a guest may reach AVX, AVX-512, PKRU or AMX state that no
/// register the host set mentions. On bare-metal KVM the VM's own CR4 (no
/// OSXSAVE, no FSGSBASE) decides, and both probes find nothing.
public struct GuestCPUFeatures: Equatable, Sendable {
    /// XCR0 as guest code reads it with `xgetbv`: the state components that
    /// XSAVE and XRSTOR cover. 0 when `xgetbv` faults, and only FXSAVE's x87
    /// and SSE state exists.
    public var xsaveMask: UInt64
    /// Whether `wrfsbase`/`wrgsbase` work, so a guest can move its FS and GS
    /// bases without a selector load.
    public var fsgsBase: Bool

    public init(xsaveMask: UInt64, fsgsBase: Bool) {
        self.xsaveMask = xsaveMask
        self.fsgsBase = fsgsBase
    }

    /// Runs two tiny CPL3 programs in throwaway VMs: `xgetbv`, and
    /// `rdfsbase`. Each either reaches its `out` or faults.
    static func probe(_ kvm: KVM) throws -> GuestCPUFeatures {
        // xor ecx, ecx; xgetbv; mov ebx, edx; then out.
        let xgetbv: [UInt8] = [0x31, 0xC9, 0x0F, 0x01, 0xD0, 0x89, 0xD3]
        // rdfsbase rax; then out.
        let rdfsbase: [UInt8] = [0xF3, 0x48, 0x0F, 0xAE, 0xC0]
        var xsaveMask: UInt64 = 0
        if let regs = try run(xgetbv, kvm) {
            xsaveMask = (regs.rbx & 0xFFFF_FFFF) << 32 | (regs.rax & 0xFFFF_FFFF)
        }
        let fsgsBase = try run(rdfsbase, kvm) != nil
        return GuestCPUFeatures(xsaveMask: xsaveMask, fsgsBase: fsgsBase)
    }

    /// The registers at the program's `out`, or nil if it faulted.
    private static func run(_ program: [UInt8], _ kvm: KVM) throws -> kvm_regs? {
        let descriptorTables: UInt64 = 0x1000
        let code: UInt64 = 0x10000
        let memory = try GuestMemory(size: 0x20000)
        let vm = try kvm.makeVM()
        try vm.map(memory)
        try LongMode.writeDescriptorTables(into: memory, at: descriptorTables)
        var tables = try PageTableBuilder(memory: memory, areaStart: 0x4000, areaEnd: code)
        try tables.map(LongMode.descriptorTablesMapping(at: descriptorTables))
        try tables.map(PageMapping(start: code, length: 0x1000, writable: false, executable: true))
        try tables.map(PageMapping(start: code + 0x1000, length: 0x1000, writable: true, executable: false))
        // mov dx, 0x10; out dx, al; jmp $ (never resumed)
        try memory.write(program + [0x66, 0xBA, 0x10, 0x00, 0xEE, 0xEB, 0xFE], at: code)
        let vcpu = try vm.makeVCPU()
        try vcpu.setSpecialRegisters(LongMode.specialRegisters(
            from: try vcpu.resetSpecialRegisters(), pageTableRoot: tables.root, descriptorTables: descriptorTables))
        try vcpu.setRegisters(LongMode.registers(entry: code, stack: code + 0x2000))
        guard case .ioOut(port: 0x10, _, _) = try vcpu.runUntilExit() else { return nil }
        return try vcpu.registers()
    }
}
