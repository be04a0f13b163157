import CKVM
import CGuestABI
import Glibc

/// /dev/kvm opened for the raw floor candidates, which talk to KVM with
/// ioctls of their own so that nothing MicroVM chooses is in their figures.
final class RawKVM {
    let fd: Int32
    let runMappingSize: Int

    init() throws {
        let fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw BenchError.system("open /dev/kvm", errno) }
        let size = ckvm_ioctl_value(fd, CKVM_GET_VCPU_MMAP_SIZE, 0)
        guard size > 0 else {
            close(fd)
            throw BenchError.system("KVM_GET_VCPU_MMAP_SIZE", errno)
        }
        self.fd = fd
        runMappingSize = Int(size)
    }

    deinit { close(fd) }

    /// ioctl with EINTR retried, failures named.
    @discardableResult
    func call(_ operation: String, _ body: () -> Int32) throws -> Int32 {
        while true {
            let result = body()
            if result >= 0 { return result }
            if errno != EINTR { throw BenchError.system(operation, errno) }
        }
    }
}

/// One VM with one memory slot and one vCPU, its kvm_run mapped; closed by
/// `close()`, timed by the caller, or else when released.
final class RawVM {
    let vcpu: Int32
    let run: UnsafeMutablePointer<kvm_run>
    private let vm: Int32
    private let kvm: RawKVM
    private var closed = false

    init(kvm: RawKVM, memory: UnsafeMutableRawPointer, size: Int, at guestAddress: UInt64 = 0) throws {
        self.kvm = kvm
        vm = try kvm.call("KVM_CREATE_VM") { ckvm_ioctl_value(kvm.fd, CKVM_CREATE_VM, 0) }
        var vcpu: Int32 = -1
        do {
            var region = kvm_userspace_memory_region(slot: 0, flags: 0, guest_phys_addr: guestAddress,
                                                     memory_size: UInt64(size), userspace_addr: UInt64(UInt(bitPattern: memory)))
            try kvm.call("KVM_SET_USER_MEMORY_REGION") { [vm] in ckvm_ioctl(vm, CKVM_SET_USER_MEMORY_REGION, &region) }
            vcpu = try kvm.call("KVM_CREATE_VCPU") { [vm] in ckvm_ioctl_value(vm, CKVM_CREATE_VCPU, 0) }
            let mapping = mmap(nil, kvm.runMappingSize, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0)
            guard let mapping, mapping != MAP_FAILED else { throw BenchError.system("mmap kvm_run", errno) }
            run = ckvm_run(mapping)!
        } catch {
            if vcpu >= 0 { Glibc.close(vcpu) }
            Glibc.close(vm)
            throw error
        }
        self.vcpu = vcpu
    }

    deinit { close() }

    /// A CPUID table of one entry, leaf 0x80000001 offering long mode and
    /// NX: what stock KVM checks before it accepts long-mode EFER bits.
    func setLongModeCPUID() throws {
        let headerSize = MemoryLayout<kvm_cpuid2>.size
        let byteCount = headerSize + MemoryLayout<kvm_cpuid_entry2>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        // SAFETY: raw holds the header and one entry.
        raw.storeBytes(of: UInt32(1), as: UInt32.self)
        var entry = kvm_cpuid_entry2()
        entry.function = 0x8000_0001
        entry.edx = 1 << 29 | 1 << 20
        (raw + headerSize).storeBytes(of: entry, as: kvm_cpuid_entry2.self)
        try kvm.call("KVM_SET_CPUID2") { ckvm_ioctl(vcpu, CKVM_SET_CPUID2, raw) }
    }

    /// KVM_RUN once; the exit must be the `out` to HL_PORT_DONE.
    func runToDone() throws {
        try kvm.call("KVM_RUN") { ckvm_ioctl_value(vcpu, CKVM_RUN, 0) }
        guard run.pointee.exit_reason == UInt32(KVM_EXIT_IO), ckvm_run_io(run)!.pointee.port == UInt16(HL_PORT_DONE) else {
            throw BenchError.unexpected("a floor VM's first exit was reason \(run.pointee.exit_reason), not its out")
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        munmap(run, kvm.runMappingSize)
        Glibc.close(vcpu)
        Glibc.close(vm)
    }
}
