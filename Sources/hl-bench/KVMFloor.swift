import CGuestABI
import CKVM
import Glibc

/// The floor: the least work KVM needs to run guest code at all. One VM, one
/// 4 KiB memory slot, one vCPU, KVM_RUN to the first exit, close. The vCPU
/// starts in its reset state (real mode, CS:IP = F000:FFF0, so the first
/// instruction fetch is at guest-physical 0xFFFFFFF0), which is where the
/// slot puts `mov dx, port; out dx, al`: no register is set, no page table is
/// written, no CPUID is installed.
///
/// It talks to /dev/kvm directly rather than through MicroVM because the
/// point is to measure below MicroVM's choices (CPUID, long mode, a 16 MiB
/// slab), so that the fresh sandbox's distance from it shows what those
/// choices cost. Real-mode code runs at CPL0, which the nested hypervisor
/// here emulates; for two instructions that is a microsecond or two.
final class KVMFloor {
    /// Per-iteration phases, in microseconds.
    struct Timing {
        var create: Double
        var run: Double
        var teardown: Double
        var total: Double { create + run + teardown }
    }

    private let kvmFD: Int32
    private let runMappingSize: Int
    private static let slotAddress: UInt64 = 0xFFFF_F000
    private static let slotSize = 4096
    /// Offset of the reset vector (0xFFFFFFF0) in the slot.
    private static let resetVectorOffset = 0xFF0

    init() throws {
        let fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw BenchError.system("open /dev/kvm", errno) }
        let size = ckvm_ioctl_value(fd, CKVM_GET_VCPU_MMAP_SIZE, 0)
        guard size > 0 else {
            close(fd)
            throw BenchError.system("KVM_GET_VCPU_MMAP_SIZE", errno)
        }
        kvmFD = fd
        runMappingSize = Int(size)
    }

    deinit { close(kvmFD) }

    /// Builds, runs and tears down one minimal VM.
    func once() throws -> Timing {
        let start = monotonicNanoseconds()
        let memory = mmap(nil, Self.slotSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let memory, memory != MAP_FAILED else { throw BenchError.system("mmap guest memory", errno) }
        defer { munmap(memory, Self.slotSize) }
        // 16-bit code: mov dx, HL_PORT_DONE; out dx, al.
        let port = UInt16(HL_PORT_DONE)
        let code: [UInt8] = [0xBA, UInt8(port & 0xFF), UInt8(port >> 8), 0xEE]
        // SAFETY: the mapping is 4 KiB and the code ends 12 bytes before its end.
        (memory + Self.resetVectorOffset).copyMemory(from: code, byteCount: code.count)

        let vm = try call("KVM_CREATE_VM") { ckvm_ioctl_value(kvmFD, CKVM_CREATE_VM, 0) }
        var vcpu: Int32 = -1
        var run: UnsafeMutableRawPointer?
        var closed = false
        func closeAll() {
            guard !closed else { return }
            closed = true
            if let run { munmap(run, runMappingSize) }
            if vcpu >= 0 { close(vcpu) }
            close(vm)
        }
        defer { closeAll() }
        var region = kvm_userspace_memory_region(slot: 0, flags: 0, guest_phys_addr: Self.slotAddress,
                                                 memory_size: UInt64(Self.slotSize),
                                                 userspace_addr: UInt64(UInt(bitPattern: memory)))
        try call("KVM_SET_USER_MEMORY_REGION") { ckvm_ioctl(vm, CKVM_SET_USER_MEMORY_REGION, &region) }
        vcpu = try call("KVM_CREATE_VCPU") { ckvm_ioctl_value(vm, CKVM_CREATE_VCPU, 0) }
        let mapping = mmap(nil, runMappingSize, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0)
        guard let mapping, mapping != MAP_FAILED else { throw BenchError.system("mmap kvm_run", errno) }
        run = mapping
        let created = monotonicNanoseconds()

        try call("KVM_RUN") { ckvm_ioctl_value(vcpu, CKVM_RUN, 0) }
        let runState = ckvm_run(mapping)!
        let ran = monotonicNanoseconds()
        guard runState.pointee.exit_reason == UInt32(KVM_EXIT_IO), ckvm_run_io(runState)!.pointee.port == port else {
            throw BenchError.unexpected("the floor VM's first exit was reason \(runState.pointee.exit_reason), not its out")
        }
        closeAll()
        let end = monotonicNanoseconds()
        return Timing(create: Double(created - start) / 1_000, run: Double(ran - created) / 1_000,
                      teardown: Double(end - ran) / 1_000)
    }

    /// ioctl with EINTR retried, failures named.
    @discardableResult
    private func call(_ operation: String, _ body: () -> Int32) throws -> Int32 {
        while true {
            let result = body()
            if result >= 0 { return result }
            if errno != EINTR { throw BenchError.system(operation, errno) }
        }
    }
}

/// Why the benchmark could not produce a figure.
enum BenchError: Error, CustomStringConvertible {
    case system(String, Int32)
    case unexpected(String)
    case setup(String)

    var description: String {
        switch self {
        case .system(let operation, let code): return "\(operation) failed: \(String(cString: strerror(code)))"
        case .unexpected(let message): return message
        case .setup(let message): return message
        }
    }
}
