import Foundation
import JobQueue

/// What the PostgreSQL server itself counted between two moments.
struct ServerUsage {
    /// Statements executed in the benchmark database by everyone but
    /// hl-bench itself (pg_stat_statements), nil without the extension.
    var statements: Double?
    /// Their execution and planning time in ms (pg_stat_statements).
    var executionMs: Double?
    /// User + system CPU seconds of the cluster's processes, less the
    /// benchmark's own connection (/proc), nil when the server is not a
    /// process on this machine.
    var cpuSeconds: Double?
}

/// Reads the server's own counters: pg_stat_statements where the cluster
/// preloads it, and the CPU time of the cluster's processes where they run
/// on this machine (the postmaster, its live children, and through the
/// postmaster's child times those that exited, such as autovacuum workers).
/// The benchmark's own statements carry a `/* hl-bench */` comment and are
/// left out; so is its own backend's CPU (the bulk INSERT and the drain
/// checks), so the figures are the queue's cost of processing the jobs.
final class ServerCounters {
    private let connection: PGConnection
    private let hasStatements: Bool
    private let postmaster: pid_t?
    private let ownBackend: pid_t?
    /// pg_stat_statements text of hl-bench's own statements.
    static let ownTag = "/* hl-bench */"

    struct Snapshot {
        var statements: Double?
        var executionMs: Double?
        var clusterCPU: Double?
        var ownCPU: Double?
    }

    init(connection: PGConnection) {
        self.connection = connection
        // Present only when preloaded: the view errors otherwise.
        hasStatements = (try? connection.execute("\(Self.ownTag) CREATE EXTENSION IF NOT EXISTS pg_stat_statements")) != nil
            && (try? connection.execute("\(Self.ownTag) SELECT 1 FROM pg_stat_statements LIMIT 1")) != nil
        let backend = (try? connection.execute("\(Self.ownTag) SELECT pg_backend_pid() AS pid").singleRow())
            .flatMap { try? $0.int("pid") }.map { pid_t($0) }
        // The backend's parent is the postmaster, if both are processes here.
        if let backend, Self.command(backend) == "postgres", let parent = Self.stat(backend)?.parent,
           Self.command(parent) == "postgres" {
            postmaster = parent
            ownBackend = backend
        } else {
            postmaster = nil
            ownBackend = nil
        }
    }

    /// Where each figure comes from, for the report.
    var sources: String {
        [hasStatements ? "statements: pg_stat_statements" : "statements: n/a (pg_stat_statements not preloaded)",
         postmaster != nil ? "cpu: cluster processes in /proc" : "cpu: n/a (server not on this machine)"]
            .joined(separator: "; ")
    }

    /// `excluding`: more backends whose CPU is not the queue's (a peer
    /// driver's own connections, which insert and check like hl-bench's).
    func snapshot(excluding others: [pid_t] = []) -> Snapshot {
        var snapshot = Snapshot()
        if hasStatements, let row = try? connection.execute(
            """
            \(Self.ownTag) SELECT coalesce(sum(calls), 0)::float8 AS calls,
                   coalesce(sum(total_exec_time + total_plan_time), 0)::float8 AS ms
            FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND query NOT LIKE '%' || $1 || '%'
            """, params: [Self.ownTag]).singleRow() {
            snapshot.statements = try? row.double("calls")
            snapshot.executionMs = try? row.double("ms")
        }
        if let postmaster, let ownBackend {
            snapshot.clusterCPU = Self.clusterCPU(postmaster)
            snapshot.ownCPU = ([ownBackend] + others).compactMap { Self.stat($0)?.cpu }.reduce(0, +)
        }
        return snapshot
    }

    static func usage(from before: Snapshot, to after: Snapshot) -> ServerUsage {
        func delta(_ a: Double?, _ b: Double?) -> Double? {
            guard let a, let b else { return nil }
            return b - a
        }
        var cpu = delta(before.clusterCPU, after.clusterCPU)
        if let own = delta(before.ownCPU, after.ownCPU), let total = cpu { cpu = max(0, total - own) }
        return ServerUsage(statements: delta(before.statements, after.statements),
                           executionMs: delta(before.executionMs, after.executionMs), cpuSeconds: cpu)
    }

    private static func clusterCPU(_ postmaster: pid_t) -> Double? {
        guard let root = stat(postmaster) else { return nil }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        let children = entries.compactMap { pid_t($0) }.compactMap(stat).filter { $0.parent == postmaster }
        return root.cpu + root.childrenCPU + children.reduce(0) { $0 + $1.cpu }
    }

    private struct ProcessStat {
        var parent: pid_t
        /// utime + stime, seconds.
        var cpu: Double
        /// cutime + cstime: exited children the process has waited for.
        var childrenCPU: Double
    }

    /// /proc/PID/stat: ppid is field 4, utime..cstime fields 14-17 (clock ticks).
    private static func stat(_ pid: pid_t) -> ProcessStat? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let end = text.lastIndex(of: ")") else { return nil }
        // Fields after the command name, which may itself hold spaces: state is field 3.
        let fields = text[text.index(after: end)...].split(separator: " ")
        guard fields.count > 14, let parent = pid_t(fields[1]), let utime = Double(fields[11]), let stime = Double(fields[12]),
              let cutime = Double(fields[13]), let cstime = Double(fields[14]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ProcessStat(parent: parent, cpu: (utime + stime) / ticks, childrenCPU: (cutime + cstime) / ticks)
    }

    /// /proc/PID/comm: readable for any process, and "postgres" for the
    /// postmaster and every backend (the process title lives elsewhere).
    private static func command(_ pid: pid_t) -> String? {
        (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
