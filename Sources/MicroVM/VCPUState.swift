import CKVM
import Glibc

/// Everything KVM keeps for a vCPU that guest code can change or observe, as
/// one value: captured once when a VM is built, restored as one on every
/// reset, so "a reset restores the whole CPU" holds by construction rather
/// than by a list of registers someone remembered.
///
/// `extendedState` is the whole XSAVE area as KVM_GET_XSAVE2 returns it
/// (x87, MXCSR, XMM, YMM, ZMM, opmask, PKRU, AMX, with its XSTATE_BV header),
/// sized by KVM_CAP_XSAVE2. The MSRs are the ones CPL3 code can reach or
/// that decide what its instructions do (FS/GS bases, TSC_AUX through
/// rdtscp/rdpid, the syscall targets), where this KVM lets them be read.
///
/// A hypervisor may not honour every piece on entry (the nested one here
/// applies the host's own XCR0 and keeps the host thread's data selectors),
/// so the sandbox also enters every call through a stub that establishes
/// those pieces from inside the guest; see `EntryStub`.
public struct VCPUState: Sendable {
    public var registers: kvm_regs
    public var specialRegisters: kvm_sregs
    public var extendedState: [UInt8]
    public var extendedControlRegisters: kvm_xcrs
    public var events: kvm_vcpu_events
    public var debugRegisters: kvm_debugregs
    public var modelSpecificRegisters: [kvm_msr_entry]
}

extension VCPU {
    /// Reads the vCPU's whole state. Registers staged for the next KVM_RUN
    /// (`stageRegisters`) are not visible here: set them with the ioctls first.
    public func captureState() throws -> VCPUState {
        VCPUState(
            registers: try registers(),
            specialRegisters: try specialRegisters(),
            extendedState: try extendedState(),
            extendedControlRegisters: try extendedControlRegisters(),
            events: try events(),
            debugRegisters: try debugRegisters(),
            modelSpecificRegisters: try modelSpecificRegisters(vm.kvm.readableMSRs(using: self)))
    }

    /// How much of a captured state a restore puts back.
    public enum RestoreScope: Sendable {
        /// All of it: after a call that faulted, was stopped, or ended in
        /// any way the host did not see it reach.
        case everything
        /// What code at CPL3 can change without raising an exception and
        /// the entry stub does not set itself: the general and special
        /// registers (the FS/GS bases among them) and the events. XCRs,
        /// debug registers and the other MSRs change only through
        /// privileged instructions (xsetbv, mov to a debug register, wrmsr,
        /// swapgs) or an exception (DR6), and a guest with no IDT that
        /// tries any of them ends in a triple fault: after a call that
        /// reached its own end they still hold what was captured. The XSAVE
        /// area is left as the call left it: every call enters through
        /// `EntryStub`, whose XRSTOR puts every XCR0 component (and MXCSR)
        /// into its initial state before any instruction that could read
        /// one, so a restored area would be overwritten unseen. Four ioctls
        /// fewer; each vCPU ioctl costs 5–9 µs here.
        case afterCleanEnd
    }

    /// Puts `state` back, all of it or what `scope` says a call could have
    /// changed. The general and special registers and the events go through
    /// kvm_run with the next KVM_RUN where KVM supports it (an ioctl costs
    /// 5–9 µs here); XCRs are set before the XSAVE area, because XCR0
    /// decides which of its components KVM accepts.
    public func restore(_ state: VCPUState, scope: RestoreScope = .everything) throws {
        try stageSpecialRegisters(state.specialRegisters)
        try stageRegisters(state.registers)
        if scope == .everything {
            var xcrs = state.extendedControlRegisters
            try systemCall("KVM_SET_XCRS") { ckvm_ioctl(fd, CKVM_SET_XCRS, &xcrs) }
            _ = try state.extendedState.withUnsafeBytes { area in
                // SAFETY: KVM reads at most the KVM_CAP_XSAVE2 size, which is
                // the size the area was captured with.
                try systemCall("KVM_SET_XSAVE") {
                    ckvm_ioctl(fd, CKVM_SET_XSAVE, UnsafeMutableRawPointer(mutating: area.baseAddress))
                }
            }
        }
        try stageEvents(state.events)
        if scope == .everything {
            var debug = state.debugRegisters
            try systemCall("KVM_SET_DEBUGREGS") { ckvm_ioctl(fd, CKVM_SET_DEBUGREGS, &debug) }
            try setModelSpecificRegisters(state.modelSpecificRegisters)
        }
    }

    func extendedState() throws -> [UInt8] {
        let size = vm.kvm.extendedStateSize
        var area = [UInt8](repeating: 0, count: size)
        let request = size > MemoryLayout<kvm_xsave>.size ? CKVM_GET_XSAVE2 : CKVM_GET_XSAVE
        _ = try area.withUnsafeMutableBytes { buffer in
            try systemCall("KVM_GET_XSAVE") { ckvm_ioctl(fd, request, buffer.baseAddress) }
        }
        return area
    }

    func extendedControlRegisters() throws -> kvm_xcrs {
        var xcrs = kvm_xcrs()
        try systemCall("KVM_GET_XCRS") { ckvm_ioctl(fd, CKVM_GET_XCRS, &xcrs) }
        return xcrs
    }

    func debugRegisters() throws -> kvm_debugregs {
        var debug = kvm_debugregs()
        try systemCall("KVM_GET_DEBUGREGS") { ckvm_ioctl(fd, CKVM_GET_DEBUGREGS, &debug) }
        return debug
    }

    /// Reads the MSRs at `indices`; returns how many KVM read (it stops at
    /// the first it cannot) through `count`.
    func modelSpecificRegisters(_ indices: [UInt32], count: UnsafeMutablePointer<Int>? = nil) throws -> [kvm_msr_entry] {
        var entries = indices.map { kvm_msr_entry(index: $0, reserved: 0, data: 0) }
        let read = try withMSRList(&entries) { list in
            try systemCall("KVM_GET_MSRS") { ckvm_ioctl(fd, CKVM_GET_MSRS, list) }
        }
        count?.pointee = Int(read)
        return Array(entries.prefix(Int(read)))
    }

    func setModelSpecificRegisters(_ entries: [kvm_msr_entry]) throws {
        guard !entries.isEmpty else { return }
        var entries = entries
        let written = try withMSRList(&entries) { list in
            try systemCall("KVM_SET_MSRS") { ckvm_ioctl(fd, CKVM_SET_MSRS, list) }
        }
        guard Int(written) == entries.count else {
            throw KVMError.invalidArgument("KVM_SET_MSRS set \(written) of \(entries.count) MSRs")
        }
    }

    /// Lays `entries` out as a kvm_msrs header followed by the entries, runs
    /// `body` on it and copies what KVM wrote back.
    private func withMSRList(_ entries: inout [kvm_msr_entry],
                             _ body: (UnsafeMutableRawPointer) throws -> Int32) throws -> Int32 {
        let header = MemoryLayout<kvm_msrs>.size
        let stride = MemoryLayout<kvm_msr_entry>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: header + entries.count * stride, alignment: 8)
        defer { raw.deallocate() }
        // SAFETY: raw holds the header and every entry; KVM reads and writes
        // no more than nmsrs entries.
        raw.storeBytes(of: UInt32(entries.count), as: UInt32.self)
        raw.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self)
        entries.withUnsafeBytes { (raw + header).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let result = try body(raw)
        entries.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: raw + header, byteCount: $0.count) }
        return result
    }
}

/// MSRs that decide what CPL3 code sees or where its instructions go.
enum ReachableMSR {
    static let candidates: [UInt32] = [
        0xC000_0081,  // STAR: syscall selectors
        0xC000_0082,  // LSTAR: where `syscall` jumps
        0xC000_0083,  // CSTAR
        0xC000_0084,  // SFMASK
        0xC000_0100,  // FS_BASE: wrfsbase
        0xC000_0101,  // GS_BASE: wrgsbase
        0xC000_0102,  // KERNEL_GS_BASE: swapgs
        0xC000_0103,  // TSC_AUX: rdtscp, rdpid
    ]
}
