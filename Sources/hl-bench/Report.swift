import Foundation

/// A target from the issues, checked against this run's figures.
struct Target {
    var name: String
    /// The measured ratio or value the limit applies to.
    var value: Double?
    var limit: Double
    /// True: value must be at most the limit; false: at least.
    var atMost: Bool
    var unit: String

    var verdict: String {
        guard let value else { return "n/a" }
        return (atMost ? value <= limit : value >= limit) ? "PASS" : "MISS"
    }
}

/// Everything one run produced, and the two ways of printing it.
struct Report {
    var quick: Bool
    var machine: [(String, String)]
    var micro: MicroResults
    var bulk: [E2EResult]
    var light: [LightLoadResult]
    var e2eSkipped: String?
    /// Where the server-side figures come from (`ServerCounters.sources`).
    var serverCounters: String?
    /// Times each end-to-end configuration was run.
    var repeats = 0

    /// The seed's slides: Hyperlight on WSL2, requests per second.
    static let seed = (noVM: 13_853.0, warm: 4_047.0, cold: 290.0)

    private func best(_ mode: String) -> E2EResult? {
        bulk.filter { $0.configuration.mode == mode && $0.jobsPerSecond != nil }.max { $0.jobsPerSecond! < $1.jobsPerSecond! }
    }

    /// The fastest peer configuration (`--peers`), whichever peer it is.
    private var bestPeer: E2EResult? {
        bulk.filter { Peer(rawValue: $0.configuration.mode) != nil && $0.jobsPerSecond != nil }
            .max { $0.jobsPerSecond! < $1.jobsPerSecond! }
    }
    private var noVMVsBestPeer: Double? { ratio(best("novm")?.jobsPerSecond, bestPeer?.jobsPerSecond) }
    private var recycledVsBestPeer: Double? { ratio(best("recycled")?.jobsPerSecond, bestPeer?.jobsPerSecond) }

    private func ratio(_ a: Double?, _ b: Double?) -> Double? {
        guard let a, let b, b > 0 else { return nil }
        return a / b
    }

    private var hostCallVsIOExit: Double? { ratio(micro.hostCall.p50, micro.ioExit.p50) }
    private var freshVsFloor: Double? { ratio(micro.fresh.total.p50, micro.floor.total.p50) }
    private var freshVsFloorAlone: Double? { ratio(micro.freshAlone.total.p50, micro.floorAlone.total.p50) }
    private var recycledVsNoVM: Double? { ratio(best("recycled")?.jobsPerSecond, best("novm")?.jobsPerSecond) }
    private var freshVsNoVM: Double? { ratio(best("fresh")?.jobsPerSecond, best("novm")?.jobsPerSecond) }
    private func rate(_ mode: String, _ processes: Int, _ concurrency: Int) -> Double? {
        bulk.first {
            $0.configuration.mode == mode && $0.configuration.processes == processes && $0.configuration.concurrency == concurrency
        }?.jobsPerSecond
    }
    private var recycledVsFreshAt8: Double? { ratio(rate("recycled", 1, 8), rate("fresh", 1, 8)) }
    /// Process scaling: the same 8 slots as 4 processes x 2 against 1 x 8.
    private func scaling(_ mode: String) -> Double? { ratio(rate(mode, 4, 2), rate(mode, 1, 8)) }
    private var recycledVsNoVMAt1: Double? { ratio(rate("recycled", 1, 1), rate("novm", 1, 1)) }

    var targets: [Target] {
        var targets = [
            Target(name: "fresh_call_us <= 1.5 x kvm_floor_us", value: freshVsFloor, limit: 1.5, atMost: true, unit: "x"),
            Target(name: "recycled_call_us <= 100", value: micro.recycled.p50, limit: 100, atMost: true, unit: "us"),
            Target(name: "hostcall_us <= 2 x io_exit_us", value: hostCallVsIOExit, limit: 2, atMost: true, unit: "x"),
            Target(name: "best recycled jobs/s >= 0.5 x best novm", value: recycledVsNoVM, limit: 0.5, atMost: false, unit: "x"),
            Target(name: "best fresh jobs/s >= 0.2 x best novm", value: freshVsNoVM, limit: 0.2, atMost: false, unit: "x"),
            Target(name: "recycled jobs/s >= 2 x fresh (1 process, concurrency 8)", value: recycledVsFreshAt8, limit: 2,
                   atMost: false, unit: "x"),
        ]
        // Issue 10's targets for the queue: process scaling, the server's
        // cost per job at the best shape, one slot.
        for mode in ["novm", "recycled"] {
            targets.append(Target(name: "\(mode) 4 x 2 jobs/s >= 0.9 x 1 x 8", value: scaling(mode), limit: 0.9, atMost: false,
                                  unit: "x"))
        }
        for mode in ["novm", "recycled"] {
            targets.append(Target(name: "pg cpu per job <= 0.08 ms at best \(mode) shape", value: best(mode)?.serverCPUMsPerJob,
                                  limit: 0.08, atMost: true, unit: "ms"))
            targets.append(Target(name: "statements per job <= 0.05 at best \(mode) shape", value: best(mode)?.statementsPerJob,
                                  limit: 0.05, atMost: true, unit: ""))
        }
        targets.append(Target(name: "recycled jobs/s >= 0.8 x novm (1 process, 1 slot)", value: recycledVsNoVMAt1, limit: 0.8,
                              atMost: false, unit: "x"))
        if bestPeer != nil {
            targets.append(Target(name: "best novm jobs/s >= 1.2 x best peer", value: noVMVsBestPeer, limit: 1.2, atMost: false,
                                  unit: "x"))
            targets.append(Target(name: "best recycled jobs/s >= 0.7 x best peer", value: recycledVsBestPeer, limit: 0.7,
                                  atMost: false, unit: "x"))
        }
        for result in light where Peer(rawValue: result.configuration.mode) == nil {
            targets.append(Target(name: "insert->start p50 <= 1 ms at light load (\(result.configuration.mode))",
                                  value: result.startP50Ms, limit: 1, atMost: true, unit: "ms"))
        }
        return targets
    }

    // MARK: JSON

    var json: JSONOutput {
        func p(_ samples: Samples) -> [(String, JSONOutput)] {
            [("p50", .number(samples.p50)), ("p99", .number(samples.p99)), ("n", .integer(samples.count))]
        }
        func floor(_ figures: FloorFigures) -> JSONOutput {
            .object([("total_us", .object(p(figures.total))), ("create_us", .object(p(figures.create))),
                     ("run_us", .object(p(figures.run))), ("teardown_us", .object(p(figures.teardown)))])
        }
        func fresh(_ figures: FreshFigures) -> JSONOutput {
            .object([("total_us", .object(p(figures.total))), ("create_us", .object(p(figures.create))),
                     ("echo_us", .object(p(figures.call))), ("teardown_us", .object(p(figures.teardown)))])
        }
        let resetP50 = micro.reset.map { (String($0.dirtied), JSONOutput.number($0.samples.p50)) }
        let resetP99 = micro.reset.map { (String($0.dirtied), JSONOutput.number($0.samples.p99)) }
        let e2e: [JSONOutput] = bulk.map { result in
            var members: [(String, JSONOutput)] = [
                ("mode", .string(result.configuration.mode)),
                ("processes", .integer(result.configuration.processes)),
                ("concurrency", .integer(result.configuration.concurrency)),
                ("jobs", .integer(result.jobs)),
                ("jobs_per_s", .number(result.jobsPerSecond)),
                ("latency_p50_ms", .number(result.latencyP50Ms)),
                ("latency_p99_ms", .number(result.latencyP99Ms)),
                ("start_p50_ms", .number(result.startP50Ms)),
                ("worker_cpu_ms_per_job", .number(result.workerCPUMsPerJob)),
                ("pg_cpu_ms_per_job", .number(result.serverCPUMsPerJob)),
                ("pg_statements_per_job", .number(result.statementsPerJob)),
                ("pg_exec_ms_per_job", .number(result.serverExecutionMsPerJob)),
                ("live_vms_at_end", result.liveVMsAtEnd.map { .integer($0) } ?? .number(nil)),
                ("runs", .integer(result.runs)),
                ("jobs_per_s_runs", .array(result.jobsPerSecondRuns.map { .number($0) })),
            ]
            if let version = result.version { members.append(("version", .string(version))) }
            if let error = result.error { members.append(("error", .string(error))) }
            return .object(members)
        }
        let lightLoad: [JSONOutput] = light.map { result in
            var members: [(String, JSONOutput)] = [
                ("mode", .string(result.configuration.mode)),
                ("processes", .integer(result.configuration.processes)),
                ("concurrency", .integer(result.configuration.concurrency)),
                ("jobs", .integer(result.jobs)),
                ("start_p50_ms", .number(result.startP50Ms)),
                ("start_p99_ms", .number(result.startP99Ms)),
                ("latency_p50_ms", .number(result.latencyP50Ms)),
                ("latency_p99_ms", .number(result.latencyP99Ms)),
                ("runs", .integer(result.runs)),
            ]
            if let error = result.error { members.append(("error", .string(error))) }
            return .object(members)
        }
        var root: [(String, JSONOutput)] = [
            ("quick", .bool(quick)),
            ("machine", .object(machine.map { ($0.0, .string($0.1)) })),
            ("kvm_floor_kind", .string(micro.floorName)),
            ("kvm_floor_us", .number(micro.floor.total.p50)),
            ("kvm_floor_p99_us", .number(micro.floor.total.p99)),
            ("fresh_call_us", .number(micro.fresh.total.p50)),
            ("fresh_call_p99_us", .number(micro.fresh.total.p99)),
            ("kvm_floor_alone_us", .number(micro.floorAlone.total.p50)),
            ("fresh_call_alone_us", .number(micro.freshAlone.total.p50)),
            ("recycled_call_us", .number(micro.recycled.p50)),
            ("recycled_call_p99_us", .number(micro.recycled.p99)),
            ("io_exit_us", .number(micro.ioExit.p50)),
            ("io_exit_p99_us", .number(micro.ioExit.p99)),
            ("hostcall_us", .number(micro.hostCall.p50)),
            ("hostcall_p99_us", .number(micro.hostCall.p99)),
            ("reset_us", .object(resetP50)),
            ("reset_p99_us", .object(resetP99)),
            ("cancel_us", .number(micro.cancel.p50)),
            ("cancel_p99_us", .number(micro.cancel.p99)),
            ("e2e_repeats", .integer(repeats)),
            ("pg_counters", serverCounters.map { .string($0) } ?? .number(nil)),
            ("e2e", .array(e2e)),
            ("light_load", .array(lightLoad)),
        ]
        if let e2eSkipped { root.append(("e2e_skipped", .string(e2eSkipped))) }
        root += [
            ("breakdown", .object([
                ("kvm_floor", floor(micro.floor)),
                ("kvm_floor_alone", floor(micro.floorAlone)),
                ("kvm_floor_candidates", .array(micro.floorCandidates.map { candidate in
                    .object([("name", .string(candidate.name)), ("detail", .string(candidate.detail)),
                             ("resident", floor(candidate.resident)), ("alone", floor(candidate.alone))])
                })),
                ("fresh_call", fresh(micro.fresh)),
                ("fresh_call_alone", fresh(micro.freshAlone)),
                ("recycled_echo_us", .object(p(micro.recycledCall))),
                ("recycled_reset_us", .object(p(micro.recycledReset))),
                ("recycled_echo_dirty_pages", .integer(micro.echoDirtyPages)),
                ("probe_call_no_hostcalls_us", .object(p(micro.probeCallNoHostCalls))),
                ("reset_pages_restored", .object(micro.reset.map { (String($0.dirtied), .integer($0.restored)) })),
                ("cancel_missed", .integer(micro.cancelMissed)),
            ])),
            ("ratios", .object([
                ("fresh_vs_floor", .number(freshVsFloor)),
                ("fresh_vs_floor_alone", .number(freshVsFloorAlone)),
                ("hostcall_vs_io_exit", .number(hostCallVsIOExit)),
                ("recycled_vs_novm", .number(recycledVsNoVM)),
                ("fresh_vs_novm", .number(freshVsNoVM)),
                ("recycled_vs_fresh_c8", .number(recycledVsFreshAt8)),
                ("novm_4x2_vs_1x8", .number(scaling("novm"))),
                ("recycled_4x2_vs_1x8", .number(scaling("recycled"))),
                ("recycled_vs_novm_c1", .number(recycledVsNoVMAt1)),
                ("novm_vs_best_peer", .number(noVMVsBestPeer)),
                ("recycled_vs_best_peer", .number(recycledVsBestPeer)),
                ("seed_warm_vs_novm", .number(Self.seed.warm / Self.seed.noVM)),
                ("seed_cold_vs_novm", .number(Self.seed.cold / Self.seed.noVM)),
            ])),
            ("targets", .array(targets.map { target in
                .object([("name", .string(target.name)), ("value", .number(target.value)),
                         ("limit", .number(target.limit)), ("result", .string(target.verdict))])
            })),
        ]
        return .object(root)
    }

    // MARK: Table

    var table: String {
        var lines: [String] = []
        func f(_ value: Double?, _ decimals: Int = 1, _ unit: String = "") -> String {
            guard let value, value.isFinite else { return "n/a" }
            return String(format: "%.\(decimals)f", value) + unit
        }
        func row(_ columns: [String], _ widths: [Int]) -> String {
            zip(columns, widths).map { text, width in
                let pad = String(repeating: " ", count: max(0, abs(width) - text.count))
                return width < 0 ? text + pad : pad + text
            }.joined(separator: "  ")
        }

        lines.append("hl-bench\(quick ? " --quick" : "")")
        for (key, value) in machine { lines.append("  \(key): \(value)") }
        lines.append("")

        let microWidths = [-34, 9, 9, 6, -1]
        lines.append("micro-benchmarks, in-process; headline rows hold one idle VM resident (as a worker always does)")
        lines.append(row(["micro (us)", "p50", "p99", "n", "same-run baseline / parts (p50)"], microWidths))
        func micro(_ name: String, _ samples: Samples, _ note: String) {
            lines.append(row([name, f(samples.p50), f(samples.p99), String(samples.count), note], microWidths))
        }
        let m = self.micro
        func floor(_ name: String, _ figures: FloorFigures) {
            micro(name, figures.total,
                  "create \(f(figures.create.p50)) + run \(f(figures.run.p50)) + close \(f(figures.teardown.p50))")
        }
        func fresh(_ name: String, _ figures: FreshFigures, _ floor: FloorFigures) {
            micro(name, figures.total, "\(f(ratio(figures.total.p50, floor.total.p50), 2, "x")) floor; create "
                  + "\(f(figures.create.p50)) + echo \(f(figures.call.p50)) + close \(f(figures.teardown.p50))")
        }
        floor("kvm_floor_us", m.floor)
        lines.append("  (the floor is the cheapest of these raw VMs on this host, by p50 with a VM resident: \(m.floorName))")
        for (index, candidate) in m.floorCandidates.enumerated() {
            micro("  \(index == m.floorChoice ? "*" : " ") \(candidate.name)", candidate.resident.total,
                  "\(candidate.detail): run \(f(candidate.resident.run.p50)); "
                  + "\(f(ratio(candidate.resident.total.p50, m.floor.total.p50), 2, "x")) floor")
        }
        fresh("fresh_call_us", m.fresh, m.floor)
        floor("  floor, no VM resident", m.floorAlone)
        fresh("  fresh, no VM resident", m.freshAlone, m.floorAlone)
        micro("recycled_call_us", m.recycled,
              "echo \(f(m.recycledCall.p50)) + reset \(f(m.recycledReset.p50)) (\(m.echoDirtyPages) pages)")
        micro("io_exit_us", m.ioExit, "bare VM: KVM_RUN -> out -> return")
        micro("hostcall_us", m.hostCall, "\(f(hostCallVsIOExit, 2, "x")) io_exit (per call, K=64 vs K=0)")
        for reset in m.reset {
            micro("reset_us[\(reset.dirtied)]", reset.samples, "pages restored: \(reset.restored)")
        }
        micro("cancel_us", m.cancel, "stop() -> call returns\(m.cancelMissed > 0 ? "; \(m.cancelMissed) missed" : "")")
        lines.append("")

        if let e2eSkipped {
            lines.append("end to end: skipped (\(e2eSkipped))")
        } else {
            lines.append("end to end: echo jobs through PostgreSQL, one INSERT of N jobs per run, drained by hl-worker;")
            lines.append("  each configuration run \(repeats) times, interleaved, in a rotated order, VACUUM (+ ANALYZE of a non-empty table) before each run;")
            lines.append("  figures are medians over the runs (runs = how many succeeded; range = slowest..fastest jobs/s)")
            lines.append("  (latency = created_at -> finished_at, so for a bulk insert it is mostly queueing)")
            lines.append("  (cpu/job = user + system CPU ms of the hl-worker processes per job, VM teardown included;")
            lines.append("   VMs@end = VMs alive when the last job finished, pools, stock and not-yet-closed VMs together)")
            if bulk.contains(where: { Peer(rawValue: $0.configuration.mode) != nil }) {
                lines.append("  (peers, --peers: the same number of no-op jobs inserted in one call through the peer's own API, drained")
                lines.append("   by its own workers; conc = \(Peer.allCases.map { "\($0.rawValue) \($0.widthMeaning)" }.joined(separator: ", "));")
                lines.append("   jobs/s until its table shows no job left, start = insert call -> job function, host clock;")
                lines.append("   cpu/job = the peer's worker processes; \(Set(bulk.compactMap(\.version)).sorted().joined(separator: ", ")))")
            }
            lines.append("  (pg cpu = CPU ms of the PostgreSQL cluster's processes per job, stmts = statements per job, both while")
            lines.append("   the batch drained, hl-bench's own insert and checks left out; \(serverCounters ?? "n/a"))")
            let widths = [-13, 5, 4, 6, 9, 9, 9, 9, 7, 7, 6, 7, 7, 4, -1]
            lines.append(row(["mode", "procs", "conc", "jobs", "jobs/s", "p50 ms", "p99 ms", "start p50", "cpu/job", "pg cpu",
                              "stmts", "VMs@end", "vs novm", "runs", "range"], widths))
            let noVM = best("novm")?.jobsPerSecond
            for result in bulk {
                if let error = result.error {
                    lines.append(row([result.configuration.mode, String(result.configuration.processes),
                                      String(result.configuration.concurrency), String(result.jobs)], Array(widths.prefix(4)))
                                 + "  " + error)
                    continue
                }
                lines.append(row([result.configuration.mode, String(result.configuration.processes),
                                  String(result.configuration.concurrency), String(result.jobs), f(result.jobsPerSecond),
                                  f(result.latencyP50Ms), f(result.latencyP99Ms), f(result.startP50Ms),
                                  f(result.workerCPUMsPerJob, 2), f(result.serverCPUMsPerJob, 3), f(result.statementsPerJob, 3),
                                  result.liveVMsAtEnd.map(String.init) ?? "n/a",
                                  f(ratio(result.jobsPerSecond, noVM), 2), String(result.runs),
                                  "\(f(result.jobsPerSecondRuns.min(), 0))..\(f(result.jobsPerSecondRuns.max(), 0))"], widths))
            }
            lines.append("")
            lines.append("light load: one job at a time into an idle fleet")
            let lightWidths = [-13, 5, 4, 6, 12, 12, 12, 12]
            lines.append(row(["mode", "procs", "conc", "jobs", "start p50 ms", "start p99 ms", "done p50 ms", "done p99 ms"],
                             lightWidths))
            for result in light {
                if let error = result.error {
                    lines.append(row([result.configuration.mode, String(result.configuration.processes),
                                      String(result.configuration.concurrency), String(result.jobs)], Array(lightWidths.prefix(4)))
                                 + "  " + error)
                    continue
                }
                lines.append(row([result.configuration.mode, String(result.configuration.processes),
                                  String(result.configuration.concurrency), String(result.jobs), f(result.startP50Ms),
                                  f(result.startP99Ms), f(result.latencyP50Ms), f(result.latencyP99Ms)], lightWidths))
            }
        }
        lines.append("")

        lines.append("ratios (this run; seed = Hyperlight on WSL2: no VM \(Int(Self.seed.noVM)), warm \(Int(Self.seed.warm)), cold \(Int(Self.seed.cold)) req/s)")
        lines.append("  fresh vs floor:    \(f(freshVsFloor, 2, "x"))  (\(f(m.fresh.total.p50)) / \(f(m.floor.total.p50)) us; "
                     + "with no VM resident \(f(freshVsFloorAlone, 2, "x")): \(f(m.freshAlone.total.p50)) / \(f(m.floorAlone.total.p50)) us)")
        lines.append("  recycled vs novm:  \(f(recycledVsNoVM, 3, "x"))  (best \(f(best("recycled")?.jobsPerSecond)) / \(f(best("novm")?.jobsPerSecond)) jobs/s; seed warm vs no VM \(f(Self.seed.warm / Self.seed.noVM, 3))x)")
        lines.append("  fresh vs novm:     \(f(freshVsNoVM, 3, "x"))  (best \(f(best("fresh")?.jobsPerSecond)) / \(f(best("novm")?.jobsPerSecond)) jobs/s; seed cold vs no VM \(f(Self.seed.cold / Self.seed.noVM, 3))x)")
        lines.append("  recycled vs fresh: \(f(recycledVsFreshAt8, 2, "x"))  (1 process, concurrency 8)")
        lines.append("  hostcall vs io:    \(f(hostCallVsIOExit, 2, "x"))  (\(f(m.hostCall.p50)) / \(f(m.ioExit.p50)) us)")
        if let bestPeer {
            let peer = "\(bestPeer.configuration.mode) \(bestPeer.configuration.processes) x \(bestPeer.configuration.concurrency)"
            lines.append("  novm vs peer:      \(f(noVMVsBestPeer, 3, "x"))  (best \(f(best("novm")?.jobsPerSecond)) / \(f(bestPeer.jobsPerSecond)) jobs/s, \(peer))")
            lines.append("  recycled vs peer:  \(f(recycledVsBestPeer, 3, "x"))  (best \(f(best("recycled")?.jobsPerSecond)) / \(f(bestPeer.jobsPerSecond)) jobs/s)")
        }
        lines.append("")
        lines.append("targets")
        for target in targets {
            let value = target.value.map { f($0, target.unit == "x" || abs($0) < 1 ? 3 : 1, target.unit.isEmpty ? "" : " " + target.unit) } ?? "n/a"
            lines.append("  \(target.verdict.padding(toLength: 5, withPad: " ", startingAt: 0)) \(target.name)  [\(value)]")
        }
        return lines.joined(separator: "\n")
    }
}
