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

    /// Reads and clears the dirty-page bitmap of a slot: bit N set means the
    /// guest wrote page N since the last read.
    public func takeDirtyLog(slot: UInt32 = 0, into bitmap: inout [UInt64]) throws {
        try bitmap.withUnsafeMutableBytes { buffer in
            var log = kvm_dirty_log()
            log.slot = slot
            log.dirty_bitmap = buffer.baseAddress
            try systemCall("KVM_GET_DIRTY_LOG") { ckvm_ioctl(fd, CKVM_GET_DIRTY_LOG, &log) }
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
