import CGuestABI
import CKVM
import Glibc
import MicroVM

/// The floor candidate that runs its code the way sandboxes do, in 64-bit
/// long mode at CPL3, with as little else as that allows: one memory slot
/// of five pages (GDT, TSS and its I/O bitmap, three page-table levels with
/// one 2 MiB page), the code `mov dx, HL_PORT_DONE; out dx, al`, and the
/// registers handed to KVM through kvm_run (KVM_CAP_SYNC_REGS) instead of
/// their own ioctls. On this host CPL0 code is emulated while CPL3 runs
/// natively, so this can beat the real-mode floor despite its extra setup.
///
/// It talks to /dev/kvm directly, like the real-mode floor; from MicroVM it
/// takes only the descriptor-table and register values (pure data), so the
/// CPU state is the one sandboxes enter with.
final class LongModeFloor: FloorCandidate {
    let name = "long mode, CPL3"
    private let kvm: RawKVM
    /// Special registers for long mode at CPL3, from a vCPU's reset state.
    private let sregs: kvm_sregs
    private let regs: kvm_regs
    /// Whether KVM refuses long-mode special registers until the vCPU has a
    /// CPUID table that offers long mode (stock KVM checks it; some
    /// hypervisors do not).
    private let needsCPUID: Bool
    private let hasSyncRegisters: Bool

    private static let descriptorTables: UInt64 = 0
    private static let pml4: UInt64 = 0x3000
    private static let codeAddress: UInt64 = 0x80
    private static let slotSize = 0x6000
    /// Page-table entry flags: present, writable, user; PS makes a 2 MiB page.
    private static let tableFlags: UInt64 = 0x7
    private static let largePageFlags: UInt64 = 0x87

    init(kvm: RawKVM) throws {
        self.kvm = kvm
        hasSyncRegisters = ckvm_ioctl_value(kvm.fd, CKVM_CHECK_EXTENSION, UInt(KVM_CAP_SYNC_REGS)) > 0
        // One probe vCPU: its reset-state special registers, and whether
        // long mode needs CPUID first.
        let vm = try kvm.call("KVM_CREATE_VM") { ckvm_ioctl_value(kvm.fd, CKVM_CREATE_VM, 0) }
        defer { close(vm) }
        let vcpu = try kvm.call("KVM_CREATE_VCPU") { ckvm_ioctl_value(vm, CKVM_CREATE_VCPU, 0) }
        defer { close(vcpu) }
        var initial = kvm_sregs()
        try kvm.call("KVM_GET_SREGS") { ckvm_ioctl(vcpu, CKVM_GET_SREGS, &initial) }
        sregs = LongMode.specialRegisters(from: initial, pageTableRoot: Self.pml4, descriptorTables: Self.descriptorTables)
        regs = LongMode.registers(entry: Self.codeAddress, stack: 0)
        var attempt = sregs
        needsCPUID = ckvm_ioctl(vcpu, CKVM_SET_SREGS, &attempt) != 0
    }

    var detail: String { needsCPUID ? "CPUID installed" : "no CPUID" }

    func once() throws -> FloorTiming {
        let start = monotonicNanoseconds()
        let memory = try GuestMemory(size: Self.slotSize)
        try LongMode.writeDescriptorTables(into: memory, at: Self.descriptorTables)
        try memory.store(Self.pml4 + 0x1000 | Self.tableFlags, at: Self.pml4)
        try memory.store(Self.pml4 + 0x2000 | Self.tableFlags, at: Self.pml4 + 0x1000)
        try memory.store(UInt64(0) | Self.largePageFlags, at: Self.pml4 + 0x2000)
        var code = MachineCode()
        code.out(HL_PORT_DONE)
        try memory.write(code.bytes, at: Self.codeAddress)

        let vm = try RawVM(kvm: kvm, memory: memory.base, size: Self.slotSize)
        if needsCPUID { try vm.setLongModeCPUID() }
        if hasSyncRegisters {
            let sync = ckvm_run_sync_regs(vm.run)!
            sync.pointee.sregs = sregs
            sync.pointee.regs = regs
            vm.run.pointee.kvm_dirty_regs = CKVM_SYNC_X86_SREGS | CKVM_SYNC_X86_REGS
        } else {
            var sregs = self.sregs
            var regs = self.regs
            try kvm.call("KVM_SET_SREGS") { ckvm_ioctl(vm.vcpu, CKVM_SET_SREGS, &sregs) }
            try kvm.call("KVM_SET_REGS") { ckvm_ioctl(vm.vcpu, CKVM_SET_REGS, &regs) }
        }
        let created = monotonicNanoseconds()
        try vm.runToDone()
        let ran = monotonicNanoseconds()
        vm.close()
        withExtendedLifetime(memory) {}
        let end = monotonicNanoseconds()
        return FloorTiming(create: Double(created - start) / 1_000, run: Double(ran - created) / 1_000,
                           teardown: Double(end - ran) / 1_000)
    }
}
