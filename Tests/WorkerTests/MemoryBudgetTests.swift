import Foundation
@testable import Worker
import XCTest

/// The worst-case memory of a configuration, and the cgroup limit it is
/// held to, read from cgroup directories made up for each test.
final class MemoryBudgetTests: XCTestCase {
    // MARK: The worst case

    func testWorstCaseCountsRunningAndIdleRecycledVMsAtTheMaximum() {
        var configuration = WorkerConfiguration()
        configuration.concurrency = 8
        configuration.maxMemoryMB = 512
        let budget = MemoryBudget(configuration)
        XCTAssertEqual(budget.vms, 16, "8 running + a recycled pool of 8 (its default, the concurrency)")
        XCTAssertEqual(budget.worstCaseMB, 16 * (512 + MemoryBudget.perVMOverheadMB) + MemoryBudget.processOverheadMB)

        configuration.recycledPoolCapacity = 2
        XCTAssertEqual(MemoryBudget(configuration).vms, 10)
    }

    /// The shipped Kubernetes Deployment used to run 8 slots with the
    /// default 512 MiB maximum in a 1 GiB container: refused now, with the
    /// largest maximum that fits.
    func testTheOldDeploymentIsRefusedWithWhatWouldFit() {
        var configuration = WorkerConfiguration()
        configuration.concurrency = 8
        let budget = MemoryBudget(configuration)
        let limit = CgroupMemoryLimit.limited(bytes: 1 << 30, file: "/sys/fs/cgroup/memory.max")
        let verdict = budget.verdict(under: limit, minimumMemoryMB: 1)
        // (1024 - 128) / 16 - 2 = 54: 16 × 56 + 128 = 1024.
        XCTAssertEqual(verdict, .exceeds(limitMB: 1024, file: "/sys/fs/cgroup/memory.max", largestMaxMemoryMB: 54))
        var fitting = configuration
        fitting.maxMemoryMB = 54
        XCTAssertEqual(MemoryBudget(fitting).verdict(under: limit, minimumMemoryMB: 1), .fits)
        fitting.maxMemoryMB = 55
        XCTAssertNotEqual(MemoryBudget(fitting).verdict(under: limit, minimumMemoryMB: 1), .fits)

        let line = budget.refusal(limitMB: 1024, file: "/sys/fs/cgroup/memory.max", largestMaxMemoryMB: 54)
        XCTAssertFalse(line.contains("\n"))
        XCTAssertTrue(line.contains("--max-memory-mb to 54"), line)
        XCTAssertTrue(line.contains("at least \(budget.worstCaseMB) MiB"), line)
    }

    func testNoLimitFitsAnything() {
        var configuration = WorkerConfiguration()
        configuration.concurrency = 1024
        configuration.maxMemoryMB = 4096
        XCTAssertEqual(MemoryBudget(configuration).verdict(under: .unlimited, minimumMemoryMB: 1), .fits)
    }

    func testALimitBelowTheProcessItselfSuggestsFewerSlots() {
        let budget = MemoryBudget(WorkerConfiguration())
        XCTAssertEqual(budget.verdict(under: .limited(bytes: 100 << 20, file: "f"), minimumMemoryMB: 1),
                       .exceeds(limitMB: 100, file: "f", largestMaxMemoryMB: nil))
        XCTAssertTrue(budget.refusal(limitMB: 100, file: "f", largestMaxMemoryMB: nil).contains("lower --concurrency"))
    }

    // MARK: Reading the limit

    func testParsesProcSelfCgroup() {
        let hybrid = """
            12:memory:/system.slice/hl-worker.service
            3:cpu,cpuacct:/system.slice/hl-worker.service
            1:name=systemd:/system.slice/hl-worker.service
            0::/system.slice/hl-worker.service
            """
        XCTAssertEqual(CgroupPaths(procSelfCgroup: hybrid).unified, "/system.slice/hl-worker.service")
        XCTAssertEqual(CgroupPaths(procSelfCgroup: hybrid).memoryV1, "/system.slice/hl-worker.service")
        XCTAssertEqual(CgroupPaths(procSelfCgroup: "0::/\n"), CgroupPaths(procSelfCgroup: "0::/"))
        XCTAssertNil(CgroupPaths(procSelfCgroup: "0::/").memoryV1)
        XCTAssertNil(CgroupPaths(procSelfCgroup: "4:memory,hugetlb:/a").unified)
        XCTAssertEqual(CgroupPaths(procSelfCgroup: "4:hugetlb,memory:/a").memoryV1, "/a")
    }

    func testParsesLimitValues() {
        XCTAssertEqual(CgroupMemoryLimit.parseLimit("1073741824\n"), 1 << 30)
        XCTAssertNil(CgroupMemoryLimit.parseLimit("max\n"))
        XCTAssertNil(CgroupMemoryLimit.parseLimit("9223372036854771712\n"), "v1's no-limit value")
        XCTAssertNil(CgroupMemoryLimit.parseLimit("garbage"))
    }

    /// cgroup v2: the smallest memory.max from the process's cgroup up to
    /// the root (a pod's limit above its container's, a slice above a unit).
    func testV2TakesTheSmallestLimitOnThePathToTheRoot() throws {
        let root = try cgroupTree([
            "memory.max": "max\n",
            "kubepods/memory.max": "4294967296\n",
            "kubepods/pod1/memory.max": "2147483648\n",
            "kubepods/pod1/worker/memory.max": "max\n",
        ])
        XCTAssertEqual(CgroupMemoryLimit.read(root: root, procSelfCgroup: "0::/kubepods/pod1/worker\n"),
                       .limited(bytes: 2 << 30, file: root + "/kubepods/pod1/memory.max"))
        XCTAssertEqual(CgroupMemoryLimit.read(root: root, procSelfCgroup: "0::/\n"), .unlimited)
    }

    /// In a container with its own cgroup namespace the process is at "/"
    /// and the mount's top holds its limit; without one, the path from
    /// /proc/self/cgroup is the host's and is missing under the mount.
    func testAContainerCgroupMountedAsTheRootIsFound() throws {
        let root = try cgroupTree(["memory.max": "536870912\n"])
        for membership in ["0::/\n", "0::/kubepods/burstable/pod9/abc\n"] {
            XCTAssertEqual(CgroupMemoryLimit.read(root: root, procSelfCgroup: membership),
                           .limited(bytes: 512 << 20, file: root + "/memory.max"), membership)
        }
    }

    func testV1IsTheFallback() throws {
        let root = try cgroupTree([
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
            "memory/system.slice/hl.service/memory.limit_in_bytes": "3221225472\n",
        ])
        let membership = "4:memory:/system.slice/hl.service\n0::/system.slice/hl.service\n"
        XCTAssertEqual(CgroupMemoryLimit.read(root: root, procSelfCgroup: membership),
                       .limited(bytes: 3 << 30, file: root + "/memory/system.slice/hl.service/memory.limit_in_bytes"))
        XCTAssertEqual(CgroupMemoryLimit.read(root: root, procSelfCgroup: "4:memory:/\n"), .unlimited)
    }

    func testNoCgroupFileSystemMeansNoLimit() throws {
        let root = try cgroupTree([:])
        XCTAssertEqual(CgroupMemoryLimit.read(root: root, procSelfCgroup: ""), .unlimited)
        XCTAssertEqual(CgroupMemoryLimit.current(environment: [CgroupMemoryLimit.rootVariable: root]), .unlimited)
    }

    /// A directory with `files` (relative path: contents), removed afterwards.
    private func cgroupTree(_ files: [String: String]) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("hl-cgroup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: root) }
        for (path, contents) in files {
            let file = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try contents.write(to: file, atomically: true, encoding: .utf8)
        }
        return root.path
    }
}
