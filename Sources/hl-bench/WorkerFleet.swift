import Foundation
import JobQueue

/// The hl-worker processes of one run, each with its log in `logDirectory`.
final class WorkerFleet {
    private let processes: [Process]
    private let logs: [String]
    private let idPrefix: String

    init(binary: String, databaseURL: String, configuration: E2EConfiguration, tag: String, logDirectory: String) throws {
        idPrefix = "hl-bench-\(getpid())-\(tag)-"
        var processes: [Process] = []
        var logs: [String] = []
        for index in 0..<configuration.processes {
            let log = (logDirectory as NSString).appendingPathComponent("\(tag)-\(configuration.mode)-\(index).log")
            guard FileManager.default.createFile(atPath: log, contents: nil) else {
                throw BenchError.setup("cannot create \(log)")
            }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["serve", "--database-url", databaseURL, "--concurrency", String(configuration.concurrency),
                                 "--vm", configuration.mode, "--worker-id", "\(idPrefix)\(index)"]
            // `serve` refuses the benchmark-only novm mode unless told so.
            process.environment = ProcessInfo.processInfo.environment.merging(["HL_BENCHMARK_NOVM": "1"]) { $1 }
            process.standardOutput = handle
            process.standardError = handle
            do {
                try process.run()
            } catch {
                processes.forEach { $0.terminate() }
                throw BenchError.setup("cannot start \(binary): \(error)")
            }
            try? handle.close()
            processes.append(process)
            logs.append(log)
        }
        self.processes = processes
        self.logs = logs
    }

    /// Waits until every process has registered in hl.workers.
    func waitRegistered(_ connection: PGConnection) throws {
        let deadline = Date(timeIntervalSinceNow: 30)
        while true {
            try checkAlive()
            let row = try connection.execute("SELECT count(*) AS n FROM hl.workers WHERE id LIKE $1",
                                             params: [idPrefix + "%"]).singleRow()
            if try row.int("n") == processes.count { return }
            guard Date() < deadline else {
                stop()
                throw BenchError.setup("hl-worker did not register within 30 s; see \(logs[0])")
            }
            usleep(5_000)
        }
    }

    /// Throws, with the end of its log, if a worker has exited.
    func checkAlive() throws {
        for (process, log) in zip(processes, logs) where !process.isRunning {
            let tail = (try? String(contentsOfFile: log, encoding: .utf8))?
                .split(separator: "\n").suffix(3).joined(separator: " | ") ?? ""
            stop()
            throw BenchError.setup("exit \(process.terminationStatus): \(tail)")
        }
    }

    /// User + system CPU seconds the processes have used so far, from
    /// /proc/PID/stat (fields 14 and 15, in clock ticks).
    func cpuSeconds() -> Double {
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        return processes.reduce(0) { total, process in
            guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
                  let end = stat.lastIndex(of: ")") else { return total }
            // Fields after the command name, which may itself hold spaces: state is field 3.
            let fields = stat[stat.index(after: end)...].split(separator: " ")
            guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return total }
            return total + (user + system) / ticksPerSecond
        }
    }

    /// KVM VM descriptors the processes hold open.
    func liveVMs() -> Int {
        processes.reduce(0) { total, process in
            let directory = "/proc/\(process.processIdentifier)/fd"
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            return total + entries.filter {
                (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\($0)")) == "anon_inode:kvm-vm"
            }.count
        }
    }

    /// Waits until at most `settledAt` VMs are left (what the pools and the
    /// fresh stock keep), or the count stops falling for a second.
    func waitForTeardown(settledAt: Int) {
        let deadline = Date(timeIntervalSinceNow: 120)
        var last = liveVMs()
        var lastFell = Date()
        while last > settledAt && Date() < deadline && Date().timeIntervalSince(lastFell) < 1 {
            usleep(100_000)
            let now = liveVMs()
            if now < last { lastFell = Date() }
            last = now
        }
    }

    /// SIGTERM (the worker drains and deregisters), then SIGKILL for any
    /// still running after its grace period.
    func stop() {
        for process in processes where process.isRunning { process.terminate() }
        let deadline = Date(timeIntervalSinceNow: 40)
        for process in processes {
            while process.isRunning && Date() < deadline { usleep(5_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }
}
