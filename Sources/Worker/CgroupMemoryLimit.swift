import Foundation

/// The memory limit this process runs under: the smallest limit of its
/// cgroup and the cgroup's ancestors, as the kernel enforces it (the OOM
/// killer acts on whichever is reached first). cgroup v2 first
/// (`memory.max`), then the v1 memory controller (`memory.limit_in_bytes`).
///
/// The cgroup file system is read under `/sys/fs/cgroup`, or under
/// `$HL_CGROUP_ROOT` (tests point it at a directory of their own). A
/// process's cgroup, from `/proc/self/cgroup`, may not exist under the mount
/// (a container whose cgroup is mounted as the root, without a cgroup
/// namespace): the walk up to the root still finds the limit there.
public enum CgroupMemoryLimit: Equatable, Sendable {
    case limited(bytes: UInt64, file: String)
    /// Every limit file found says "max", or no limit file was found.
    case unlimited

    /// nil: no limit.
    public var bytes: UInt64? {
        if case .limited(let bytes, _) = self { return bytes }
        return nil
    }

    public static let rootVariable = "HL_CGROUP_ROOT"
    public static let defaultRoot = "/sys/fs/cgroup"

    /// v1 reports "no limit" as the largest page-aligned counter value
    /// (9223372036854771712 with 4 KiB pages); anything this large is none.
    static let v1Unlimited: UInt64 = 1 << 62

    /// The limit of this process.
    public static func current(environment: [String: String] = ProcessInfo.processInfo.environment) -> CgroupMemoryLimit {
        let root = environment[rootVariable].flatMap { $0.isEmpty ? nil : $0 } ?? defaultRoot
        let membership = (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? ""
        return read(root: root, procSelfCgroup: membership)
    }

    /// The limit for a process whose `/proc/self/cgroup` reads
    /// `procSelfCgroup`, with the cgroup file system at `root`.
    static func read(root: String, procSelfCgroup: String) -> CgroupMemoryLimit {
        let paths = CgroupPaths(procSelfCgroup: procSelfCgroup)
        if let v2 = smallest(under: root, path: paths.unified ?? "/", file: "memory.max") {
            return v2
        }
        return smallest(under: root + "/memory", path: paths.memoryV1 ?? "/", file: "memory.limit_in_bytes")
            ?? .unlimited
    }

    /// The smallest limit in `file` from `path` up to the root of the
    /// hierarchy at `mount`; nil when no level has the file.
    private static func smallest(under mount: String, path: String, file: String) -> CgroupMemoryLimit? {
        var found: CgroupMemoryLimit?
        var components = path.split(separator: "/").map(String.init)
        while true {
            let directory = ([mount] + components).joined(separator: "/")
            let candidate = directory + "/" + file
            if let text = try? String(contentsOfFile: candidate, encoding: .utf8) {
                if let bytes = parseLimit(text) {
                    if bytes < (found?.bytes ?? .max) { found = .limited(bytes: bytes, file: candidate) }
                } else if found == nil {
                    found = .unlimited
                }
            }
            if components.isEmpty { return found }
            components.removeLast()
        }
    }

    /// "max" (v2) or a v1 value past `v1Unlimited`: nil, no limit. A number
    /// of bytes otherwise; text that is neither also counts as no limit,
    /// since refusing to start on a file we cannot read helps nobody.
    static func parseLimit(_ text: String) -> UInt64? {
        let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard value != "max", let bytes = UInt64(value), bytes < v1Unlimited else { return nil }
        return bytes
    }
}

/// Where this process sits in each cgroup hierarchy, from /proc/self/cgroup:
/// lines `hierarchy-id:controllers:path`, `0::path` for v2.
struct CgroupPaths: Equatable {
    /// The v2 (unified) path.
    var unified: String?
    /// The path in the v1 hierarchy that has the memory controller.
    var memoryV1: String?

    init(procSelfCgroup: String) {
        for line in procSelfCgroup.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let path = String(fields[2])
            if fields[0] == "0" && fields[1].isEmpty {
                unified = path
            } else if fields[1].split(separator: ",").contains("memory") {
                memoryV1 = path
            }
        }
    }
}
