import CKVM
import Glibc

/// A KVM virtual machine: owns its fd, its memory slots' registrations and
/// creates its vCPUs. Closing the fd (deinit) tears the VM down.
public final class VM: @unchecked Sendable {
    // No lock: the fd and the KVM handle never change; KVM serialises ioctls.
    let fd: Int32
    public let kvm: KVM

    init(fd: Int32, kvm: KVM) {
        self.fd = fd
        self.kvm = kvm
    }

    deinit { close(fd) }

    /// Maps `memory` into the guest's physical address space at
    /// `guestAddress`. With `logDirtyPages`, KVM records every page the guest
    /// writes, which is what lets a recycled VM reset only what changed.
    public func map(_ memory: GuestMemory, slot: UInt32 = 0, guestAddress: UInt64 = 0,
                    logDirtyPages: Bool = false) throws {
        var region = kvm_userspace_memory_region(
            slot: slot,
            flags: logDirtyPages ? CKVM_MEM_LOG_DIRTY_PAGES : 0,
            guest_phys_addr: guestAddress,
            memory_size: UInt64(memory.size),
            userspace_addr: UInt64(UInt(bitPattern: memory.base)))
        try systemCall("KVM_SET_USER_MEMORY_REGION") { ckvm_ioctl(fd, CKVM_SET_USER_MEMORY_REGION, &region) }
    }

    /// Switches the dirty log to manual protection where KVM offers it
    /// (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2): reading the log then neither
    /// clears it nor write-protects the pages it names, and `protect`
    /// does both for the pages a caller chooses. A page left unprotected
    /// stays writable without a fault, and its bit stays set. Call it
    /// before mapping memory; returns false (and changes nothing) where
    /// KVM lacks it, and `readDirtyLog` then clears and protects as before.
    public func enableManualDirtyProtection() throws -> Bool {
        let modes = ckvm_ioctl_value(fd, CKVM_CHECK_EXTENSION, UInt(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2))
        guard modes > 0, UInt64(modes) & UInt64(KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) != 0 else { return false }
        var capability = kvm_enable_cap()
        capability.cap = UInt32(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)
        capability.args.0 = UInt64(KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE)
        try systemCall("KVM_ENABLE_CAP") { ckvm_ioctl(fd, CKVM_ENABLE_CAP, &capability) }
        return true
    }

    /// Reads the dirty-page bitmap of a slot: bit N set means the guest
    /// wrote page N. Without manual protection the read also clears the log
    /// and write-protects those pages; with it, bits stay set until
    /// `protect` clears them.
    public func readDirtyLog(slot: UInt32 = 0, into bitmap: inout [UInt64]) throws {
        try bitmap.withUnsafeMutableBytes { buffer in
            var log = kvm_dirty_log()
            log.slot = slot
            log.dirty_bitmap = buffer.baseAddress
            try systemCall("KVM_GET_DIRTY_LOG") { ckvm_ioctl(fd, CKVM_GET_DIRTY_LOG, &log) }
        }
    }

    /// With manual protection: clears the dirty bits of the pages set in
    /// `pages` (one bit per page of the slot, from its first) and
    /// write-protects those pages, so the guest's next write to one is
    /// logged again.
    public func protect(slot: UInt32 = 0, pages: inout [UInt64], pageCount: Int) throws {
        try pages.withUnsafeMutableBytes { buffer in
            var clear = kvm_clear_dirty_log()
            clear.slot = slot
            clear.num_pages = UInt32(pageCount)
            clear.first_page = 0
            clear.dirty_bitmap = buffer.baseAddress
            try systemCall("KVM_CLEAR_DIRTY_LOG") { ckvm_ioctl(fd, CKVM_CLEAR_DIRTY_LOG, &clear) }
        }
    }

    public func makeVCPU(id: UInt32 = 0) throws -> VCPU {
        try makeVCPU(id: id, installingCPUID: kvm.vcpusNeedCPUID)
    }

    func makeVCPU(id: UInt32 = 0, installingCPUID: Bool) throws -> VCPU {
        let vcpuFD = try systemCall("KVM_CREATE_VCPU") { ckvm_ioctl_value(fd, CKVM_CREATE_VCPU, UInt(id)) }
        do {
            return try VCPU(fd: vcpuFD, vm: self, installingCPUID: installingCPUID)
        } catch {
            close(vcpuFD)
            throw error
        }
    }
}
