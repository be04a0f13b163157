import ArgumentParser
import Foundation
import Logging
import MicroVM
import Sandbox

/// `hl-bench`: measures the whole path of a job, from a bare KVM VM up to
/// jobs drained through PostgreSQL by hl-worker processes, and prints every
/// figure next to the baseline it is judged against, measured in the same
/// run (these machines are too noisy to compare across runs).
@main
struct HLBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hl-bench",
        abstract: "Benchmark hl-worker: KVM floor, sandbox calls, resets, host calls, and jobs end to end.",
        discussion: """
            Prints a table, or with --json one JSON object on stdout; progress goes to stderr. \
            End-to-end runs use --database-url, else DATABASE_URL, else the checkout's private cluster \
            (scripts/pg.sh start; if another server holds its port and PGPORT_HL is unset, on the next free port; \
            stopped at the end if this run started it), inside a database of their own (hl_bench_<pid>) that is dropped afterwards. \
            Each end-to-end configuration runs --repeats times, interleaved, shapes and modes in a rotated order, \
            with VACUUM of the job table before each run (and ANALYZE once it has rows); the figures are medians over the runs. \
            They start the hl-worker built next to hl-bench, so build both: \
            swift build -c release --product hl-worker && swift build -c release --product hl-bench.
            """
    )

    @Flag(help: "Fewer iterations, end-to-end shapes and jobs (about 3 minutes on 2 cores, 4 with --peers).") var quick = false
    @Flag(help: "Print one JSON object instead of the table.") var json = false
    @Option(help: "Also write the JSON object to this file (the table still goes to stdout), so one run gives both.")
    var jsonFile: String?
    @Option(help: ArgumentHelp("The demo guest (default: guests/build/demo.elf in the checkout).", valueName: "path"))
    var guest: String?
    @Option(name: .customLong("database-url"),
            help: ArgumentHelp("PostgreSQL URL to create the benchmark database in (default: $DATABASE_URL, else scripts/pg.sh).",
                               valueName: "url"))
    var databaseURL: String?
    @Option(help: ArgumentHelp("The hl-worker binary (default: the one next to hl-bench).", valueName: "path"))
    var worker: String?
    @Option(help: ArgumentHelp("Runs of each end-to-end configuration, interleaved; figures are their medians (default: 3, 2 with --quick).",
                               valueName: "n"))
    var repeats: Int?
    @Flag(help: ArgumentHelp(
        "Also run peer job queues (pgqueuer, procrastinate; installed from PyPI into .hl/peers-venv by scripts/peers/setup.sh) on the same PostgreSQL, interleaved with hl-worker's runs, with the same jobs."))
    var peers = false
    @Flag(name: .customLong("skip-e2e"), help: "Only the in-process measurements; no PostgreSQL, no hl-worker.")
    var skipE2E = false

    func validate() throws {
        if let repeats, repeats < 1 { throw ValidationError("--repeats must be at least 1") }
        if peers && skipE2E { throw ValidationError("--peers runs end to end: it cannot go with --skip-e2e") }
    }

    func run() throws {
        // Sandboxes log through swift-log; the guests here never log, and
        // nothing else should reach the table.
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        do {
            try measure()
        } catch {
            FileHandle.standardError.write(Data("hl-bench: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    private func measure() throws {
        let repository = try Repository()
        let guestPath = guest ?? repository.path("guests/build/demo.elf")
        guard let bytes = FileManager.default.contents(atPath: guestPath) else {
            throw BenchError.setup("cannot read \(guestPath); build the guests with guests/build.sh")
        }
        let demo = try GuestImage(name: "demo", bytes: Array(bytes))
        let kvm = try KVM()

        // The database side is set up first, so that a missing hl-worker or
        // a cluster that cannot start fails the run at once, not after the
        // micro-benchmarks.
        var e2e: (workerBinary: String, cluster: PostgresCluster, database: BenchDatabase)?
        let peerEnvironment = peers ? try PeerEnvironment(repository: repository, progress: Self.progress) : nil
        if !skipE2E {
            let workerBinary = worker ?? URL(fileURLWithPath: CommandLine.executablePath)
                .deletingLastPathComponent().appendingPathComponent("hl-worker").path
            guard FileManager.default.isExecutableFile(atPath: workerBinary) else {
                throw BenchError.setup("no hl-worker at \(workerBinary): build it with the same scratch path, or pass --worker")
            }
            Self.progress("PostgreSQL")
            let cluster = try PostgresCluster(explicitURL: databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"],
                                              repository: repository, progress: Self.progress)
            do {
                e2e = (workerBinary, cluster, try BenchDatabase(adminURL: cluster.adminURL, guest: Array(bytes)))
            } catch {
                cluster.release()
                throw error
            }
        }
        defer {
            e2e?.database.drop()
            e2e?.cluster.release()
        }

        let micro = try MicroBenchmarks(kvm: kvm, demo: demo, plan: quick ? .quick : .full, progress: Self.progress).run()

        var report = Report(quick: quick, machine: Machine.describe(), micro: micro, bulk: [], light: [])
        if let e2e {
            let logDirectory = (NSTemporaryDirectory() as NSString).appendingPathComponent("hl-bench-\(getpid())")
            try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
            var plan = quick ? E2EPlan.quick : E2EPlan.full
            plan.repeats = repeats ?? plan.repeats
            if peers { plan.peers = quick ? E2EPlan.quickPeers : E2EPlan.fullPeers }
            report.repeats = plan.repeats
            let server = ServerCounters(connection: e2e.database.connection)
            report.serverCounters = server.sources
            let endToEnd = EndToEnd(database: e2e.database, server: server, workerBinary: e2e.workerBinary,
                                    peerEnvironment: peerEnvironment, logDirectory: logDirectory, plan: plan,
                                    progress: Self.progress)
            (report.bulk, report.light) = endToEnd.run()
            let failed = report.bulk.contains { $0.error != nil && !$0.error!.hasPrefix("n/a") }
                || report.light.contains { $0.error != nil && !$0.error!.hasPrefix("n/a") }
            if failed {
                Self.progress("worker logs kept in \(logDirectory)")
            } else {
                try? FileManager.default.removeItem(atPath: logDirectory)
            }
        } else {
            report.e2eSkipped = "--skip-e2e"
        }
        print(json ? report.json.text : report.table)
        if let jsonFile {
            try report.json.text.write(toFile: jsonFile, atomically: true, encoding: .utf8)
        }
    }

    private static let started = Date()

    /// One line per phase on stderr, with the elapsed time, so a slow phase shows.
    static func progress(_ message: String) {
        let elapsed = String(format: "%6.1f s", Date().timeIntervalSince(started))
        FileHandle.standardError.write(Data("[\(elapsed)] \(message)\n".utf8))
    }
}

/// What the numbers were measured on.
enum Machine {
    static func describe() -> [(String, String)] {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last!.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let hypervisor = ["kvm_pvm", "kvm_intel", "kvm_amd"].first {
            FileManager.default.fileExists(atPath: "/sys/module/\($0)")
        } ?? "unknown"
        let memory = Double(ProcessInfo.processInfo.physicalMemory) / Double(1 << 30)
        return [
            ("cpu", model),
            ("cores", String(ProcessInfo.processInfo.activeProcessorCount)),
            ("memory_gib", String(format: "%.1f", memory)),
            ("kernel", release),
            ("kvm", hypervisor == "kvm_pvm" ? "kvm_pvm (nested, CPL0 emulated)" : hypervisor),
            ("date", ISO8601DateFormatter().string(from: Date())),
        ]
    }
}
