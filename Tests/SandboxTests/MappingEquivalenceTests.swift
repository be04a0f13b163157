import Foundation
import MicroVM
@testable import Sandbox
import XCTest

/// Isolation by equivalence, for how a VM's memory is mapped. How long a
/// guest's access to a page takes depends on whether the page is mapped in
/// KVM's page tables (if not, the access faults into the hypervisor) and,
/// for a first write, on whether the host has given the page a frame of its
/// own (if not, the host kernel copies its zero page). A reset puts memory's
/// contents back, not these; so a call in a recycled VM must meet exactly
/// the faults the same call meets in a VM just built, whatever ran in the
/// recycled one before, or it could time them to learn what earlier calls,
/// perhaps another tenant's, touched: their input's size, the code they
/// ran, the heap they used.
final class MappingEquivalenceTests: SandboxTestCase {
    /// KVM's page-fault counters for the vCPU over one call.
    func faults(_ sandbox: Sandbox, _ function: String, _ args: String, timeoutMilliseconds: Int = 1_000) throws
        -> [String: UInt64] {
        func counters() throws -> [String: UInt64] { try sandbox.vcpu.statistics().filter { $0.key.hasPrefix("pf_") } }
        let before = try counters()
        _ = try? sandbox.call(function, input: Array(args.utf8), limits: CallLimits(timeoutMilliseconds: timeoutMilliseconds))
        let after = try counters()
        try sandbox.reset()
        return after.merging(before) { after, before in after &- before }
    }

    /// For each page of the sandbox's memory, whether the host has given it
    /// a frame of its own: bit 56 of its /proc/self/pagemap entry, "mapped
    /// exclusively", which a page still backed by the shared zero page (or
    /// by nothing) lacks.
    func ownFrames(_ sandbox: Sandbox) throws -> [Bool] {
        let pages = sandbox.memory.size / GuestMemory.pageSize
        let fd = open("/proc/self/pagemap", O_RDONLY)
        guard fd >= 0 else { throw XCTSkip("cannot read /proc/self/pagemap: errno \(errno)") }
        defer { close(fd) }
        var entries = [UInt64](repeating: 0, count: pages)
        let offset = off_t(UInt(bitPattern: sandbox.memory.base) / UInt(GuestMemory.pageSize) * 8)
        let read = entries.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
        XCTAssertEqual(read, pages * 8, "short read of /proc/self/pagemap")
        return entries.map { $0 & (1 << 56) != 0 }
    }

    func testACallMeetsTheSameFaultsWhateverRanBefore() throws {
        let large = #"{"pad":""# + String(repeating: "x", count: 200_000) + #""}"#
        try assertSameFaults(
            "demo",
            history: [
                ("alloc", #"{"mb":8}"#), ("echo", large), ("grow", #"{"bytes":3000000}"#), ("sha256", #"{"data":"abc"}"#),
                ("scribble", "{}"), ("log", #"{"message":"hello"}"#), ("crash", "{}"), ("fail", #"{"message":"no"}"#),
                ("spin", "{}"),
            ],
            probes: [
                ("echo", "{}"), ("echo", large), ("fib", #"{"n":15}"#), ("alloc", #"{"mb":8}"#),
                ("grow", #"{"bytes":3000000}"#), ("sha256", #"{"data":"abc"}"#), ("crash", "{}"),
            ])
    }

    /// The same for a guest with init, whose writes are in the snapshot.
    /// Init touched every page `cube` needs but its input's: a 200 KB input
    /// with "n" at its end makes the guest read pages init never did.
    func testAfterInitACallMeetsTheSameFaultsWhateverRanBefore() throws {
        let large = #"{"pad":""# + String(repeating: "x", count: 200_000) + #"","n":3}"#
        try assertSameFaults("init_c", history: [("bump", "{}"), ("cube", large), ("bump", "{}")],
                             probes: [("cube", large), ("bump", "{}"), ("cube", "{}")])
    }

    /// The prefault entry's table holds a range for each of the image's
    /// mappings and the layout's areas; an image may not have more.
    func testThePrefaultTableHoldsEveryImageTheLoaderAccepts() {
        XCTAssertLessThanOrEqual(ELFImage.maximumProgramHeaders + 8, EntryStub.maximumPrefaultRanges)
    }

    /// Runs `history` in one VM, then each probe in a VM just built and in
    /// that used one, comparing what each probe met. A call that spins is
    /// stopped after 50 ms.
    func assertSameFaults(_ guest: String, history: [(String, String)], probes: [(String, String)],
                          file: StaticString = #filePath, line: UInt = #line) throws {
        let configuration = SandboxConfiguration(memoryMB: 16, recyclable: true)
        let used = try sandbox(guest, configuration: configuration)
        XCTAssertFalse(try used.vcpu.statistics().filter { $0.key.hasPrefix("pf_") }.isEmpty,
                       "KVM reports no page-fault counters, so this test would compare nothing", file: file, line: line)
        for (function, args) in history { _ = try faults(used, function, args, timeoutMilliseconds: 50) }

        let new = try sandbox(guest, configuration: configuration)
        for (function, args) in probes {
            let newFrames = try ownFrames(new)
            let usedFrames = try ownFrames(used)
            if newFrames != usedFrames {
                XCTFail("before \(function): \(newFrames.filter { $0 }.count) pages have frames of their own in a new VM, "
                        + "\(usedFrames.filter { $0 }.count) in a used one", file: file, line: line)
            }
            XCTAssertEqual(try faults(new, function, args), try faults(used, function, args),
                           "\(function): KVM's page faults differ between a new VM and a used one", file: file, line: line)
        }
    }
}
