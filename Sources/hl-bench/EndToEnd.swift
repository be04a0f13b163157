import Foundation
import JobQueue

/// One end-to-end configuration: `processes` hl-worker processes with
/// `concurrency` slots each, all in one VM mode.
struct E2EConfiguration {
    var mode: String
    var processes: Int
    var concurrency: Int
}

/// A bulk run: `jobs` echo jobs inserted by one INSERT, drained by the fleet.
struct E2EResult {
    var configuration: E2EConfiguration
    var jobs: Int
    var jobsPerSecond: Double?
    /// created_at → finished_at; for a bulk insert mostly time queued behind the batch.
    var latencyP50Ms: Double?
    var latencyP99Ms: Double?
    /// created_at → attempted_at (the claim).
    var startP50Ms: Double?
    /// CPU time (user + system) the hl-worker processes spent per job, from
    /// the insert until the VMs the batch left behind were torn down (fresh
    /// VMs are closed off the job's path, but the cost is the batch's).
    /// Unlike jobs/s, other load on the machine barely moves it.
    var workerCPUMsPerJob: Double?
    /// VMs alive in the fleet when the last job finished: beyond the
    /// concurrency and the fresh stock, these are torn-down-later VMs.
    var liveVMsAtEnd: Int?
    /// Why there are no figures.
    var error: String?
}

/// Jobs inserted one at a time into an idle fleet: what a single job waits.
struct LightLoadResult {
    var configuration: E2EConfiguration
    var jobs: Int
    var startP50Ms: Double?
    var startP99Ms: Double?
    var latencyP50Ms: Double?
    var latencyP99Ms: Double?
    var error: String?
}

/// Which end-to-end runs to make, and how big.
struct E2EPlan {
    var modes: [String]
    /// (processes, concurrency) pairs.
    var shapes: [(Int, Int)]
    var jobs: Int
    var lightJobs: Int
    /// The shape the light-load run uses (a fleet already up for the bulk run).
    var lightShape: (Int, Int) = (1, 8)

    static let allModes = ["novm", "recycled", "fresh"]

    /// Every pair of 1, 2, 4 processes and 1, 2, 4, 8 slots.
    static let full = E2EPlan(modes: allModes, shapes: [1, 2, 4].flatMap { p in [1, 2, 4, 8].map { (p, $0) } },
                              jobs: 10_000, lightJobs: 100)
    /// Each process count and each concurrency at least once.
    static let quick = E2EPlan(modes: allModes, shapes: [(1, 1), (1, 8), (2, 4), (4, 2)], jobs: 3000, lightJobs: 40)
}

/// Runs echo jobs through PostgreSQL and real hl-worker processes. Every
/// figure comes from the job rows' own timestamps (set by the database's
/// clock), so the benchmark's polling does not blur them.
struct EndToEnd {
    static let echoArgs = #"{"bench":1}"#

    let database: BenchDatabase
    let workerBinary: String
    let logDirectory: String
    let plan: E2EPlan
    let progress: (String) -> Void

    func run() -> (bulk: [E2EResult], light: [LightLoadResult]) {
        var bulk: [E2EResult] = []
        var light: [LightLoadResult] = []
        var unavailable: [String: String] = [:]
        var runNumber = 0
        // Shape by shape, the modes back to back, so that each mode's
        // figures meet the same machine conditions as their baseline's.
        for (processes, concurrency) in plan.shapes {
            for mode in plan.modes {
                let configuration = E2EConfiguration(mode: mode, processes: processes, concurrency: concurrency)
                let wantsLight = (processes, concurrency) == plan.lightShape
                if let reason = unavailable[mode] {
                    bulk.append(E2EResult(configuration: configuration, jobs: plan.jobs, error: reason))
                    if wantsLight { light.append(LightLoadResult(configuration: configuration, jobs: plan.lightJobs, error: reason)) }
                    continue
                }
                runNumber += 1
                progress("e2e \(mode), \(processes) process(es) x \(concurrency) slot(s), \(plan.jobs) jobs")
                let fleet: WorkerFleet
                do {
                    fleet = try WorkerFleet(binary: workerBinary, databaseURL: database.url, configuration: configuration,
                                            tag: "r\(runNumber)", logDirectory: logDirectory)
                    try fleet.waitRegistered(database.connection)
                } catch {
                    // A mode this hl-worker does not have fails at start-up,
                    // for every shape alike: say so once and skip the rest.
                    let reason = "n/a: hl-worker --vm \(mode) did not start: \(error)"
                    unavailable[mode] = reason
                    bulk.append(E2EResult(configuration: configuration, jobs: plan.jobs, error: reason))
                    if wantsLight { light.append(LightLoadResult(configuration: configuration, jobs: plan.lightJobs, error: reason)) }
                    continue
                }
                defer { fleet.stop() }
                bulk.append(measureBulk(configuration, fleet: fleet))
                if wantsLight { light.append(measureLight(configuration, fleet: fleet)) }
            }
        }
        // Reported mode by mode.
        let order = { (mode: String) in plan.modes.firstIndex(of: mode) ?? 0 }
        bulk = bulk.enumerated().sorted {
            (order($0.element.configuration.mode), $0.offset) < (order($1.element.configuration.mode), $1.offset)
        }.map(\.element)
        return (bulk, light)
    }

    private func measureBulk(_ configuration: E2EConfiguration, fleet: WorkerFleet) -> E2EResult {
        var result = E2EResult(configuration: configuration, jobs: plan.jobs)
        do {
            // Warm-up: every slot has run a job, fresh VM stock is built,
            // recycled pools are full, guest images are cached.
            let warmup = max(20, 4 * configuration.processes * configuration.concurrency)
            try drain(try insert(warmup), count: warmup, fleet: fleet)
            let after = try database.lastJobID()
            let cpuBefore = fleet.cpuSeconds()
            try drain(try insert(plan.jobs), count: plan.jobs, fleet: fleet)
            result.liveVMsAtEnd = fleet.liveVMs()
            fleet.waitForTeardown(settledAt: configuration.processes * (configuration.concurrency + 4))
            let cpu = fleet.cpuSeconds() - cpuBefore
            let stats = try statistics(after: after)
            guard stats.completed == plan.jobs else {
                throw BenchError.unexpected("only \(stats.completed) of \(plan.jobs) jobs completed: \(try failureKinds(after: after))")
            }
            result.jobsPerSecond = stats.span > 0 ? Double(plan.jobs) / stats.span : nil
            result.latencyP50Ms = stats.latencyP50
            result.latencyP99Ms = stats.latencyP99
            result.startP50Ms = stats.startP50
            result.workerCPUMsPerJob = cpu * 1000 / Double(plan.jobs)
        } catch {
            result.error = "\(error)"
        }
        return result
    }

    /// One job at a time, each inserted after the previous one finished and
    /// a pause, so every job finds the fleet idle and asleep on LISTEN.
    private func measureLight(_ configuration: E2EConfiguration, fleet: WorkerFleet) -> LightLoadResult {
        var result = LightLoadResult(configuration: configuration, jobs: plan.lightJobs)
        do {
            let after = try database.lastJobID()
            for _ in 0..<plan.lightJobs {
                usleep(20_000)
                let row = try database.connection.execute(
                    "INSERT INTO hl.jobs (guest, function, args) VALUES ($1, 'echo', $2::jsonb) RETURNING id",
                    params: [BenchDatabase.guestName, Self.echoArgs]).singleRow()
                let id = try row.required("id", row.int64)
                try waitUntil(timeout: 30, fleet: fleet, what: "job \(id) to finish") {
                    let done = try database.connection.execute(
                        "SELECT finished_at IS NOT NULL AS done FROM hl.jobs WHERE id = $1::bigint", params: [String(id)]).singleRow()
                    return try done.bool("done") == true
                }
            }
            let stats = try statistics(after: after)
            guard stats.completed == plan.lightJobs else {
                throw BenchError.unexpected("only \(stats.completed) of \(plan.lightJobs) jobs completed: \(try failureKinds(after: after))")
            }
            result.startP50Ms = stats.startP50
            result.startP99Ms = stats.startP99
            result.latencyP50Ms = stats.latencyP50
            result.latencyP99Ms = stats.latencyP99
        } catch {
            result.error = "\(error)"
        }
        return result
    }

    /// Inserts `count` echo jobs in one statement; returns the last id before them.
    private func insert(_ count: Int) throws -> Int64 {
        let after = try database.lastJobID()
        try database.connection.execute(
            "INSERT INTO hl.jobs (guest, function, args) SELECT $1, 'echo', $2::jsonb FROM generate_series(1, $3::int)",
            params: [BenchDatabase.guestName, Self.echoArgs, String(count)])
        return after
    }

    private func drain(_ after: Int64, count: Int, fleet: WorkerFleet) throws {
        // Generous: the slowest configuration here drains ~100 jobs/s.
        try waitUntil(timeout: 60 + Double(count) / 20, fleet: fleet, what: "\(count) jobs to finish") {
            let row = try database.connection.execute(
                """
                SELECT count(*) FILTER (WHERE finished_at IS NOT NULL) AS done,
                       count(*) FILTER (WHERE errors <> '[]') AS failed
                FROM hl.jobs WHERE id > $1::bigint
                """, params: [String(after)]).singleRow()
            if let failed = try row.int("failed"), failed > 0 {
                throw BenchError.unexpected("\(failed) jobs failed: \(try failureKinds(after: after))")
            }
            return try row.int("done") == count
        }
    }

    private func waitUntil(timeout: Double, fleet: WorkerFleet, what: String, _ done: () throws -> Bool) throws {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while try !done() {
            try fleet.checkAlive()
            guard Date() < deadline else { throw BenchError.unexpected("timed out after \(Int(timeout)) s waiting for \(what)") }
            usleep(2_000)
        }
    }

    private struct Statistics {
        var completed: Int
        var span: Double
        var latencyP50: Double?
        var latencyP99: Double?
        var startP50: Double?
        var startP99: Double?
    }

    private func statistics(after: Int64) throws -> Statistics {
        let row = try database.connection.execute(
            """
            SELECT count(*) FILTER (WHERE state = 'completed') AS completed,
                   extract(epoch FROM max(finished_at) - min(created_at))::float8 AS span,
                   1000 * percentile_disc(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))::float8 AS latency_p50,
                   1000 * percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))::float8 AS latency_p99,
                   1000 * percentile_disc(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - created_at))::float8 AS start_p50,
                   1000 * percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - created_at))::float8 AS start_p99
            FROM hl.jobs WHERE id > $1::bigint
            """, params: [String(after)]).singleRow()
        return Statistics(completed: try row.int("completed") ?? 0, span: try row.double("span") ?? 0,
                          latencyP50: try row.double("latency_p50"), latencyP99: try row.double("latency_p99"),
                          startP50: try row.double("start_p50"), startP99: try row.double("start_p99"))
    }

    private func failureKinds(after: Int64) throws -> String {
        let result = try database.connection.execute(
            """
            SELECT state, coalesce(errors -> -1 ->> 'kind', '') AS kind, coalesce(errors -> -1 ->> 'message', '') AS message,
                   count(*) AS count
            FROM hl.jobs WHERE id > $1::bigint AND state <> 'completed'
            GROUP BY 1, 2, 3 ORDER BY count DESC LIMIT 3
            """, params: [String(after)])
        return result.rows.map { row in
            "\(row.string("count") ?? "?") \(row.string("state") ?? "?") \(row.string("kind") ?? "") \(row.string("message") ?? "")"
        }.joined(separator: "; ")
    }
}

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
