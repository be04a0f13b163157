import CKVM
import Glibc
import Synchronization

/// The /dev/kvm system handle: checks the API once and creates VMs.
/// One per process is enough; it is safe to share between threads.
public final class KVM: @unchecked Sendable {
    // Every stored property is immutable except the lazily found answers, each
    // in a Mutex of its own.
    public static let devicePath = "/dev/kvm"

    let fd: Int32
    /// Size of the kvm_run mapping of every vCPU.
    let vcpuMappingSize: Int
    /// CPUID entries KVM supports, handed to every vCPU so the guest sees a
    /// consistent CPU (long mode, SSE2).
    let supportedCPUID: [kvm_cpuid_entry2]
    /// Whether registers can be handed over through kvm_run on the next
    /// KVM_RUN instead of with ioctls of their own (each ioctl costs ~5 µs).
    public let hasSyncRegisters: Bool
    /// Whether pending events can be handed over through kvm_run the same way.
    let hasSyncEvents: Bool
    /// A new vCPU's special registers, read once: every vCPU starts the same.
    private let resetState = Mutex<kvm_sregs?>(nil)
    /// Whether vCPUs need KVM's CPUID table installed before they accept the
    /// long-mode state (bare KVM checks CR4 bits against the guest's CPUID;
    /// the nested hypervisor here does not). KVM_SET_CPUID2 costs ~50 µs per
    /// vCPU, a tenth of a fresh VM, so it is skipped where it is not needed.
    /// Found out once, on first use.
    private let cpuidRequirement = Mutex<Bool?>(nil)
    /// Bytes of a vCPU's XSAVE area as KVM_GET_XSAVE2 writes it (4096 where
    /// KVM has only KVM_GET_XSAVE).
    let extendedStateSize: Int
    /// Which of `ReachableMSR.candidates` this KVM reads and writes, found
    /// once on the first vCPU whose state is captured.
    private let readableMSRList = Mutex<[UInt32]?>(nil)
    /// What CPL3 code can use on this host, found once by running a probe.
    private let guestFeatures = Mutex<GuestCPUFeatures?>(nil)

    public init(path: String = KVM.devicePath) throws {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw KVMError.openDevice(path: path, errno: errno) }
        do {
            let version = try systemCall("KVM_GET_API_VERSION") { ckvm_ioctl_value(fd, CKVM_GET_API_VERSION, 0) }
            guard version == KVM_API_VERSION else { throw KVMError.unsupportedAPIVersion(version) }
            for (capability, name) in [(KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"),
                                       (KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"),
                                       (KVM_CAP_XSAVE, "KVM_CAP_XSAVE"), (KVM_CAP_XCRS, "KVM_CAP_XCRS"),
                                       (KVM_CAP_DEBUGREGS, "KVM_CAP_DEBUGREGS"),
                                       (KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS")] {
                let present = try systemCall("KVM_CHECK_EXTENSION") {
                    ckvm_ioctl_value(fd, CKVM_CHECK_EXTENSION, UInt(capability))
                }
                guard present > 0 else { throw KVMError.missingCapability(name) }
            }
            vcpuMappingSize = Int(try systemCall("KVM_GET_VCPU_MMAP_SIZE") {
                ckvm_ioctl_value(fd, CKVM_GET_VCPU_MMAP_SIZE, 0)
            })
            supportedCPUID = try KVM.readSupportedCPUID(fd)
            let xsave2 = ckvm_ioctl_value(fd, CKVM_CHECK_EXTENSION, UInt(KVM_CAP_XSAVE2))
            extendedStateSize = max(Int(xsave2), MemoryLayout<kvm_xsave>.size)
            let syncMask = ckvm_ioctl_value(fd, CKVM_CHECK_EXTENSION, UInt(KVM_CAP_SYNC_REGS))
            hasSyncRegisters = syncMask > 0 && UInt64(syncMask) & (CKVM_SYNC_X86_REGS | CKVM_SYNC_X86_SREGS)
                == (CKVM_SYNC_X86_REGS | CKVM_SYNC_X86_SREGS)
            hasSyncEvents = syncMask > 0 && UInt64(syncMask) & CKVM_SYNC_X86_EVENTS != 0
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        let installed = ckvm_install_kick_handler()
        precondition(installed == 0, "installing the vCPU kick signal handler failed: \(installed)")
    }

    deinit { close(fd) }

    var vcpusNeedCPUID: Bool {
        get throws {
            if let known = cpuidRequirement.withLock({ $0 }) { return known }
            let vm = try makeVM()
            let probe = try vm.makeVCPU(installingCPUID: false)
            let longMode = LongMode.specialRegisters(from: try probe.specialRegisters(), pageTableRoot: 0,
                                                     descriptorTables: 0)
            var sregs = longMode
            let needed = ckvm_ioctl(probe.fd, CKVM_SET_SREGS, &sregs) != 0
            cpuidRequirement.withLock { $0 = needed }
            return needed
        }
    }

    /// The MSRs among `ReachableMSR.candidates` that KVM reads for `vcpu`,
    /// found the first time and remembered.
    func readableMSRs(using vcpu: VCPU) throws -> [UInt32] {
        if let known = readableMSRList.withLock({ $0 }) { return known }
        var readable: [UInt32] = []
        for index in ReachableMSR.candidates {
            var count = 0
            _ = try vcpu.modelSpecificRegisters([index], count: &count)
            if count == 1 { readable.append(index) }
        }
        readableMSRList.withLock { $0 = readable }
        return readable
    }

    /// What guest code at CPL3 can use on this host. `cpuid` answers zeros
    /// to guests here, and the nested hypervisor applies the host's CR4 and
    /// XCR0 whatever the VM asks for, so the only way to know is to try:
    /// the first call runs `GuestCPUFeatures.probe` and remembers its answer.
    public func guestCPUFeatures() throws -> GuestCPUFeatures {
        if let known = guestFeatures.withLock({ $0 }) { return known }
        let found = try GuestCPUFeatures.probe(self)
        guestFeatures.withLock { $0 = found }
        return found
    }

    /// The special registers of a vCPU fresh from KVM_CREATE_VCPU, read from
    /// `vcpu` the first time and remembered.
    func resetSpecialRegisters(of vcpu: VCPU) throws -> kvm_sregs {
        if let known = resetState.withLock({ $0 }) { return known }
        let read = try vcpu.specialRegisters()
        resetState.withLock { $0 = read }
        return read
    }

    public func makeVM() throws -> VM {
        let vmFD = try systemCall("KVM_CREATE_VM") { ckvm_ioctl_value(fd, CKVM_CREATE_VM, 0) }
        return VM(fd: vmFD, kvm: self)
    }

    private static func readSupportedCPUID(_ fd: Int32) throws -> [kvm_cpuid_entry2] {
        let capacity = 256
        let headerSize = MemoryLayout<kvm_cpuid2>.size
        let byteCount = headerSize + capacity * MemoryLayout<kvm_cpuid_entry2>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        // SAFETY: raw holds a kvm_cpuid2 header followed by `capacity` entries,
        // which is what KVM_GET_SUPPORTED_CPUID writes into.
        let header = raw.assumingMemoryBound(to: kvm_cpuid2.self)
        header.pointee.nent = UInt32(capacity)
        try systemCall("KVM_GET_SUPPORTED_CPUID") { ckvm_ioctl(fd, CKVM_GET_SUPPORTED_CPUID, raw) }
        let entries = (raw + headerSize).assumingMemoryBound(to: kvm_cpuid_entry2.self)
        return Array(UnsafeBufferPointer(start: entries, count: Int(header.pointee.nent)))
    }
}
