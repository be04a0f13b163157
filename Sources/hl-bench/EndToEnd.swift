import Foundation
import JobQueue

/// One end-to-end configuration: `processes` hl-worker processes with
/// `concurrency` slots each, all in one VM mode.
struct E2EConfiguration {
    var mode: String
    var processes: Int
    var concurrency: Int

    /// Identifies the configuration across repeats.
    var key: String { "\(mode)/\(processes)x\(concurrency)" }
}

/// A bulk run: `jobs` echo jobs inserted by one INSERT, drained by the fleet.
/// Reported figures are medians over `runs` repeats of the configuration.
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
    /// What the PostgreSQL server spent per job while the batch drained,
    /// from its own counters (see `ServerCounters`).
    var serverCPUMsPerJob: Double?
    var statementsPerJob: Double?
    var serverExecutionMsPerJob: Double?
    /// Successful repeats the medians are taken over, and each one's jobs/s
    /// in the order they ran (the spread shows how noisy the median is).
    var runs = 1
    var jobsPerSecondRuns: [Double] = []
    /// A peer's name and version, as its driver reported them.
    var version: String?
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
    var runs = 1
    var error: String?
}

/// Which end-to-end runs to make, and how big.
struct E2EPlan {
    var modes: [String]
    /// (processes, concurrency) pairs.
    var shapes: [(Int, Int)]
    var jobs: Int
    var lightJobs: Int
    /// Every configuration runs this many times; each repeat starts the
    /// shapes and the modes at a different place in their order, so no
    /// configuration always runs first or always follows the same one.
    var repeats: Int
    /// The shape the light-load run uses (a fleet already up for the bulk run).
    var lightShape: (Int, Int) = (1, 8)

    static let allModes = ["novm", "recycled", "fresh"]

    /// Every pair of 1, 2, 4 processes and 1, 2, 4, 8 slots.
    static let full = E2EPlan(modes: allModes, shapes: [1, 2, 4].flatMap { p in [1, 2, 4, 8].map { (p, $0) } },
                              jobs: 10_000, lightJobs: 100, repeats: 3)
    /// Each process count and each concurrency at least once.
    static let quick = E2EPlan(modes: allModes, shapes: [(1, 1), (1, 8), (2, 4), (4, 2)], jobs: 2000, lightJobs: 40,
                               repeats: 2)

    /// Peer job queues (`--peers`), each configuration a mode named after
    /// the peer with its processes and its knob (see `Peer.widthMeaning`).
    var peers: [E2EConfiguration] = []

    /// The peers' configurations: pgqueuer around its best one found so far
    /// (2 processes, batch 100), procrastinate at its best (concurrency 10).
    static let fullPeers = [(Peer.pgqueuer, 1, 10), (.pgqueuer, 1, 100), (.pgqueuer, 2, 100), (.procrastinate, 1, 10)]
        .map { E2EConfiguration(mode: $0.0.rawValue, processes: $0.1, concurrency: $0.2) }
    static let quickPeers = [(Peer.pgqueuer, 2, 100), (.procrastinate, 1, 10)]
        .map { E2EConfiguration(mode: $0.0.rawValue, processes: $0.1, concurrency: $0.2) }

    /// Every configuration in the order reported: hl-worker mode by mode,
    /// then the peers.
    var reportOrder: [E2EConfiguration] {
        modes.flatMap { mode in shapes.map { E2EConfiguration(mode: mode, processes: $0.0, concurrency: $0.1) } } + peers
    }

    /// The runs of repeat `index`, in order. The runs come in groups (each
    /// shape's hl-worker modes back to back, so that a mode meets the same
    /// machine conditions as its baseline; the peers as one more group);
    /// the groups are rotated by `index`, and so is each group's order.
    func order(repeat index: Int) -> [E2EConfiguration] {
        var groups = shapes.map { processes, concurrency in
            modes.map { E2EConfiguration(mode: $0, processes: processes, concurrency: concurrency) }
        }
        if !peers.isEmpty { groups.append(peers) }
        return rotated(groups, by: index).flatMap { rotated($0, by: index) }
    }

    private func rotated<T>(_ items: [T], by offset: Int) -> [T] {
        guard !items.isEmpty else { return items }
        let start = offset % items.count
        return Array(items[start...] + items[..<start])
    }
}

/// Runs echo jobs through PostgreSQL and real hl-worker processes. Every
/// figure comes from the job rows' own timestamps (set by the database's
/// clock), so when the benchmark notices a drain has ended does not change
/// them; it waits with a cheap check at a coarse interval so that it takes
/// little from the CPU the fleet and the database are using.
struct EndToEnd {
    static let echoArgs = #"{"bench":1}"#

    let database: BenchDatabase
    let server: ServerCounters
    let workerBinary: String
    /// Where the peers are installed; nil without --peers.
    let peerEnvironment: PeerEnvironment?
    let logDirectory: String
    let plan: E2EPlan
    let progress: (String) -> Void

    func run() -> (bulk: [E2EResult], light: [LightLoadResult]) {
        var bulk: [String: [E2EResult]] = [:]
        var light: [String: [LightLoadResult]] = [:]
        var unavailable: [String: String] = [:]
        var runNumber = 0
        for repeatIndex in 0..<plan.repeats {
            for configuration in plan.order(repeat: repeatIndex) {
                let key = configuration.key
                let wantsLight = (configuration.processes, configuration.concurrency) == plan.lightShape
                if let reason = unavailable[configuration.mode] {
                    bulk[key, default: []].append(E2EResult(configuration: configuration, jobs: plan.jobs, error: reason))
                    if wantsLight {
                        light[key, default: []].append(LightLoadResult(configuration: configuration, jobs: plan.lightJobs,
                                                                       error: reason))
                    }
                    continue
                }
                runNumber += 1
                progress("e2e \(repeatIndex + 1)/\(plan.repeats): \(configuration.mode), \(configuration.processes) process(es) x "
                         + "\(configuration.concurrency) slot(s), \(plan.jobs) jobs")
                do {
                    // Every run starts from the same kind of table: dead rows
                    // of earlier runs gone, statistics current.
                    try database.vacuumAnalyze()
                } catch {
                    bulk[key, default: []].append(E2EResult(configuration: configuration, jobs: plan.jobs,
                                                            error: "VACUUM or ANALYZE failed: \(error)"))
                    continue
                }
                if let peer = Peer(rawValue: configuration.mode) {
                    let (result, lightResult) = measurePeer(peer, configuration, tag: "r\(runNumber)")
                    bulk[key, default: []].append(result)
                    light[key, default: []].append(lightResult)
                    continue
                }
                let fleet: WorkerFleet
                do {
                    fleet = try WorkerFleet(binary: workerBinary, databaseURL: database.url, configuration: configuration,
                                            tag: "r\(runNumber)", logDirectory: logDirectory)
                    try fleet.waitRegistered(database.connection)
                } catch {
                    // A mode this hl-worker does not have fails at start-up,
                    // for every shape alike: say so once and skip the rest.
                    let reason = "n/a: hl-worker --vm \(configuration.mode) did not start: \(error)"
                    unavailable[configuration.mode] = reason
                    bulk[key, default: []].append(E2EResult(configuration: configuration, jobs: plan.jobs, error: reason))
                    if wantsLight {
                        light[key, default: []].append(LightLoadResult(configuration: configuration, jobs: plan.lightJobs,
                                                                       error: reason))
                    }
                    continue
                }
                defer { fleet.stop() }
                bulk[key, default: []].append(measureBulk(configuration, fleet: fleet))
                if wantsLight { light[key, default: []].append(measureLight(configuration, fleet: fleet)) }
            }
        }
        let reportOrder = plan.reportOrder.map(\.key)
        return (reportOrder.compactMap { bulk[$0].map(E2EResult.median) },
                reportOrder.compactMap { light[$0].map(LightLoadResult.median) })
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
            let serverBefore = server.snapshot()
            try drain(try insert(plan.jobs), count: plan.jobs, fleet: fleet)
            let serverUsage = ServerCounters.usage(from: serverBefore, to: server.snapshot())
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
            result.serverCPUMsPerJob = serverUsage.cpuSeconds.map { $0 * 1000 / Double(plan.jobs) }
            result.statementsPerJob = serverUsage.statements.map { $0 / Double(plan.jobs) }
            result.serverExecutionMsPerJob = serverUsage.executionMs.map { $0 / Double(plan.jobs) }
        } catch {
            result.error = "\(error)"
        }
        return result
    }

    /// One run of a peer: the same batch, its light load, and the server's
    /// counters around the drain, less the driver's own connections.
    private func measurePeer(_ peer: Peer, _ configuration: E2EConfiguration, tag: String) -> (E2EResult, LightLoadResult) {
        var result = E2EResult(configuration: configuration, jobs: plan.jobs)
        var light = LightLoadResult(configuration: configuration, jobs: plan.lightJobs)
        do {
            guard let peerEnvironment else { throw BenchError.setup("the peers are not installed") }
            guard let peerURL = database.peerURL else {
                throw BenchError.setup("n/a: the peers need the database as a postgres:// URL, not key=value conninfo")
            }
            let log = (logDirectory as NSString).appendingPathComponent("\(tag)-\(configuration.mode).log")
            let driver = try PeerDriver(environment: peerEnvironment, peer: peer, configuration: configuration,
                                        databaseURL: peerURL, jobs: plan.jobs, lightJobs: plan.lightJobs,
                                        warmup: max(20, 4 * configuration.processes * configuration.concurrency), log: log)
            defer { driver.stop() }
            let ready = try driver.expect("ready", timeout: 300)
            let driverBackends = ready.split(separator: " ").dropFirst().compactMap { pid_t($0) }
            let serverBefore = server.snapshot(excluding: driverBackends)
            driver.send("go")
            _ = try driver.expect("drained", timeout: 120 + Double(plan.jobs) / 20)
            let serverUsage = ServerCounters.usage(from: serverBefore, to: server.snapshot(excluding: driverBackends))
            driver.send("light")
            _ = try driver.expect("done", timeout: 60 + Double(plan.lightJobs))
            driver.send("quit")
            let line = try driver.expect("{", timeout: 120)
            guard let figures = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw BenchError.unexpected("peer.py printed \(line.prefix(200))")
            }
            func number(_ key: String) -> Double? { (figures[key] as? NSNumber)?.doubleValue }
            result.jobsPerSecond = number("jobs_per_s")
            result.startP50Ms = number("start_p50_ms")
            result.workerCPUMsPerJob = number("worker_cpu_ms_per_job")
            result.serverCPUMsPerJob = serverUsage.cpuSeconds.map { $0 * 1000 / Double(plan.jobs) }
            result.statementsPerJob = serverUsage.statements.map { $0 / Double(plan.jobs) }
            result.serverExecutionMsPerJob = serverUsage.executionMs.map { $0 / Double(plan.jobs) }
            result.version = figures["version"] as? String
            light.startP50Ms = number("light_start_p50_ms")
            light.startP99Ms = number("light_start_p99_ms")
        } catch {
            result.error = "\(error)"
            light.error = "\(error)"
        }
        return (result, light)
    }

    /// One job at a time, each inserted after the previous one finished and
    /// a pause, so every job finds the fleet idle and asleep on LISTEN.
    private func measureLight(_ configuration: E2EConfiguration, fleet: WorkerFleet) -> LightLoadResult {
        var result = LightLoadResult(configuration: configuration, jobs: plan.lightJobs)
        do {
            let after = try database.lastJobID()
            for _ in 0..<plan.lightJobs {
                usleep(20_000)
                // Prepared once, as the peers' drivers (asyncpg) and any
                // client with a statement cache send a repeated INSERT:
                // created_at is taken before parsing and planning, so an
                // unprepared INSERT would add its planning to the latency.
                let row = try database.connection.executePrepared(
                    name: "hl_bench_light_insert",
                    sql: "/* hl-bench */ INSERT INTO hl.jobs (guest, function, args) VALUES ($1, 'echo', $2::jsonb) RETURNING id",
                    params: [BenchDatabase.guestName, Self.echoArgs]).singleRow()
                let id = try row.required("id", row.int64)
                try waitUntil(timeout: 30, longestPause: 0.01, fleet: fleet, what: "job \(id) to finish") {
                    let done = try database.connection.execute(
                        "/* hl-bench */ SELECT finished_at IS NOT NULL AS done FROM hl.jobs WHERE id = $1::bigint", params: [String(id)]).singleRow()
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
            "/* hl-bench */ INSERT INTO hl.jobs (guest, function, args) SELECT $1, 'echo', $2::jsonb FROM generate_series(1, $3::int)",
            params: [BenchDatabase.guestName, Self.echoArgs, String(count)])
        return after
    }

    /// Waits until no job is waiting or running: an EXISTS over the claim
    /// index's and the running index's partial predicates, which stops at
    /// the first row it finds, every `drainPollInterval`. Failures are
    /// counted afterwards from the batch's rows.
    private func drain(_ after: Int64, count: Int, fleet: WorkerFleet) throws {
        // Generous: the slowest configuration here drains ~100 jobs/s.
        try waitUntil(timeout: 60 + Double(count) / 20, longestPause: Self.drainPollInterval, fleet: fleet,
                      what: "\(count) jobs to finish") {
            let row = try database.connection.execute(
                """
                /* hl-bench */ SELECT EXISTS (SELECT 1 FROM hl.jobs WHERE state IN ('available', 'retryable'))
                    OR EXISTS (SELECT 1 FROM hl.jobs WHERE state = 'running') AS busy
                """).singleRow()
            return try row.bool("busy") == false
        }
    }

    /// How often a drain is checked once it has gone on a while: coarse
    /// next to a 10,000-job batch (seconds), and free of effect on the
    /// figures, which come from the rows' timestamps.
    static let drainPollInterval: Double = 0.05

    /// Checks `done` after pauses that start at 1 ms and double up to
    /// `longestPause`: a short wait is noticed soon, a long one is checked
    /// rarely.
    private func waitUntil(timeout: Double, longestPause: Double, fleet: WorkerFleet, what: String,
                           _ done: () throws -> Bool) throws {
        let deadline = Date(timeIntervalSinceNow: timeout)
        var pause = 0.001
        while try !done() {
            try fleet.checkAlive()
            guard Date() < deadline else { throw BenchError.unexpected("timed out after \(Int(timeout)) s waiting for \(what)") }
            usleep(UInt32(pause * 1_000_000))
            pause = min(pause * 2, longestPause)
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
            /* hl-bench */ SELECT count(*) FILTER (WHERE state = 'completed') AS completed,
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
            /* hl-bench */ SELECT state, coalesce(errors -> -1 ->> 'kind', '') AS kind, coalesce(errors -> -1 ->> 'message', '') AS message,
                   count(*) AS count
            FROM hl.jobs WHERE id > $1::bigint AND state <> 'completed'
            GROUP BY 1, 2, 3 ORDER BY count DESC LIMIT 3
            """, params: [String(after)])
        return result.rows.map { row in
            "\(row.string("count") ?? "?") \(row.string("state") ?? "?") \(row.string("kind") ?? "") \(row.string("message") ?? "")"
        }.joined(separator: "; ")
    }
}
