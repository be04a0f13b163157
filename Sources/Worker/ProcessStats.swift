import Foundation

/// This process's CPU time, resident memory and open descriptors, from
/// /proc/self (Linux): what the standard `process_*` metrics report.
struct ProcessStats: Equatable {
    var cpuSeconds: Double
    var residentBytes: Int
    var openFDs: Int

    static func current() -> ProcessStats? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let end = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name, which may hold spaces: state is
        // field 3, utime 14, stime 15, rss (pages) 24.
        let fields = stat[stat.index(after: end)...].split(separator: " ")
        guard fields.count > 21, let user = Double(fields[11]), let system = Double(fields[12]),
              let pages = Int(fields[21]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        return ProcessStats(cpuSeconds: (user + system) / ticks, residentBytes: pages * Int(sysconf(Int32(_SC_PAGESIZE))),
                            openFDs: descriptors)
    }
}
