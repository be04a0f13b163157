import CGuestABI
import Glibc
import MicroVM

/// One raw VM's phases, in microseconds.
struct FloorTiming {
    var create: Double
    var run: Double
    var teardown: Double
    var total: Double { create + run + teardown }
}

/// A way to run guest code with the least work KVM allows: build a VM, run
/// it to its first exit (an `out`), close it. The floor is the cheapest
/// candidate on this host, measured in the same run as the fresh sandbox it
/// is compared to: which one wins depends on the hypervisor (here CPL0 code
/// is emulated, so real mode, which runs at CPL0, is not free).
protocol FloorCandidate: AnyObject {
    /// Names the candidate in the output.
    var name: String { get }
    /// Its set-up in a few words, for the output (for the long-mode one,
    /// whether this host made it install CPUID).
    var detail: String { get }
    func once() throws -> FloorTiming
}

/// The real-mode candidate: one 4 KiB slot, one vCPU, KVM_RUN from the
/// vCPU's reset state (real mode, CS:IP = F000:FFF0, so the first fetch is
/// at guest-physical 0xFFFFFFF0), where the slot holds
/// `mov dx, port; out dx, al`. No register is set, no page table written,
/// no CPUID installed, but the code runs at CPL0, which the nested
/// hypervisor here emulates.
final class RealModeFloor: FloorCandidate {
    let name = "real mode"
    let detail = "4 KiB slot, reset state"
    private let kvm: RawKVM
    private static let slotAddress: UInt64 = 0xFFFF_F000
    private static let slotSize = 4096
    /// Offset of the reset vector (0xFFFFFFF0) in the slot.
    private static let resetVectorOffset = 0xFF0

    init(kvm: RawKVM) {
        self.kvm = kvm
    }

    func once() throws -> FloorTiming {
        let start = monotonicNanoseconds()
        let memory = mmap(nil, Self.slotSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let memory, memory != MAP_FAILED else { throw BenchError.system("mmap guest memory", errno) }
        defer { munmap(memory, Self.slotSize) }
        // 16-bit code: mov dx, HL_PORT_DONE; out dx, al.
        let port = UInt16(HL_PORT_DONE)
        let code: [UInt8] = [0xBA, UInt8(port & 0xFF), UInt8(port >> 8), 0xEE]
        // SAFETY: the mapping is 4 KiB and the code ends 12 bytes before its end.
        (memory + Self.resetVectorOffset).copyMemory(from: code, byteCount: code.count)
        let vm = try RawVM(kvm: kvm, memory: memory, size: Self.slotSize, at: Self.slotAddress)
        let created = monotonicNanoseconds()
        try vm.runToDone()
        let ran = monotonicNanoseconds()
        vm.close()
        let end = monotonicNanoseconds()
        return FloorTiming(create: Double(created - start) / 1_000, run: Double(ran - created) / 1_000,
                           teardown: Double(end - ran) / 1_000)
    }
}

/// The long-mode CPL3 VM built through MicroVM (`BareCPL3VM`: 1 MiB slot,
/// MicroVM's page tables and vCPU set-up): the sandbox's way of running
/// code before any sandbox feature, as a candidate next to the raw ones.
final class MicroVMFloor: FloorCandidate {
    let name = "long mode, CPL3, via MicroVM"
    let detail = "1 MiB slot"
    private let kvm: KVM

    init(kvm: KVM) {
        self.kvm = kvm
    }

    func once() throws -> FloorTiming {
        let start = monotonicNanoseconds()
        var bare: BareCPL3VM? = try BareCPL3VM(kvm: kvm, code: RawGuests.outLoop)
        let created = monotonicNanoseconds()
        let exit = try bare!.vcpu.runUntilExit()
        let ran = monotonicNanoseconds()
        guard case .ioOut = exit else { throw BenchError.unexpected("the MicroVM floor VM exited with \(exit)") }
        bare = nil  // the last reference: closes the vCPU and VM fds and unmaps memory, here
        let end = monotonicNanoseconds()
        return FloorTiming(create: Double(created - start) / 1_000, run: Double(ran - created) / 1_000,
                           teardown: Double(end - ran) / 1_000)
    }
}
