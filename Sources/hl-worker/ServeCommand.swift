import ArgumentParser
import Foundation
import Logging
import OperationsHTTP
import Sandbox
import Worker

/// The service: `hl-worker [--concurrency N] ...`.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the worker service (the default command).",
        discussion: """
            Fixed limits of every job (not settable):
              args                at most \(ServeLimits.inputBytes) bytes of JSON text, less the function name's bytes \
            (the guest's 1 MiB input area); refused at INSERT beyond that
              function name       1 to 256 bytes
              result              at most \(WorkerConfiguration().maxOutputBytes) bytes of JSON (the 1 MiB output area \
            less its header); larger ends the job as output_too_large
              host calls          at most \(WorkerConfiguration().maxHostCalls) per call; more ends the job as \
            too_many_host_calls
              guest log line      at most \(UntrustedText.defaultMaxBytes) bytes (longer ones are cut)
              error message       a guest's failure message is kept up to \(GuestMessageDecoder.maximumMessageBytes) bytes
              memory_mb           \(SandboxConfiguration.minimumMemoryMB) to \(SandboxConfiguration.absoluteMaximumMemoryMB) \
            (refused at INSERT outside it; clamped to --max-memory-mb)
              timeout_ms          1 to \(CallLimits.maximumTimeoutMilliseconds) (refused at INSERT outside it; clamped to \
            --max-timeout-ms)
            Settable: the guest log budget per call (--max-guest-log-bytes, default \(CallLimits.defaultMaxLogBytes)).

            Start-up waits, with backoff, for a server that refuses connections, times out or is restarting, and logs \
            each change of reason once. It exits 1 with one line for what waiting cannot fix: no database configured, \
            a malformed URL, a refused login, a missing database, a missing schema or one older than this binary \
            (run `hl-worker migrate`). A second SIGTERM or SIGINT during the drain interrupts the running jobs and \
            hands them back to the queue at once.

            Environment: DATABASE_URL (or libpq's PG* variables); HL_LOG_LEVEL (as --log-level); HL_MIGRATIONS_DIR \
            (for `migrate`: apply that folder's files instead of the built-in migrations).
            """
    )

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Jobs run at once.") var concurrency = 8
    @Option(help: "Comma-separated queues to work (default: all).") var queues: String?
    @Option(help: "VM per job when the job does not say: fresh or recycled.")
    var vm = "fresh"
    @Option(help: "Timeout for jobs that set none.") var defaultTimeoutMs = WorkerConfiguration().defaultTimeoutMilliseconds
    @Option(help: "Memory for jobs that set none.") var defaultMemoryMb = WorkerConfiguration().defaultMemoryMB
    @Option(help: "Largest timeout a job may ask for; larger ones are clamped.") var maxTimeoutMs = WorkerConfiguration().maxTimeoutMilliseconds
    @Option(help: "Largest memory a job may ask for; larger ones are clamped.") var maxMemoryMb = WorkerConfiguration().maxMemoryMB
    @Option(help: "This worker's id (default: host-pid-random).") var workerId: String?
    @Option(help: "Jobs claimed ahead of the free slots, refilled at half empty (default: adaptive, about 50 ms of this process's recent start rate, from max(--concurrency, 8) to 256; 0: none, for long jobs).")
    var prefetch: Int?
    @Option(help: "Seconds running jobs get to finish after SIGTERM.") var shutdownGrace = WorkerConfiguration().shutdownGrace
    @Option(help: "Seconds of silence after which a worker's jobs are rescued.") var rescueAfter = WorkerConfiguration().rescueAfter
    @Option(help: "Threads on this host building VMs at once, across processes.") var vmCreationSlots = WorkerConfiguration().vmCreationSlotsPerHost
    @Option(help: "Serve /metrics (Prometheus) and /healthz on this port.") var metricsPort: Int?
    @Option(help: "Address the metrics server binds.") var metricsHost = "0.0.0.0"
    @Option(help: "Delete completed and cancelled jobs this long after they finish (e.g. 24h, 7d; 'forever' keeps them).")
    var retainCompleted = "24h"
    @Option(help: "Delete discarded jobs this long after they finish (e.g. 7d; 'forever' keeps them).")
    var retainDiscarded = "7d"
    @Option(help: "Log format: text or json.") var logFormat = "text"
    @Option(help: "Least severe log level written, the guests' own lines included: trace, debug, info, notice, warning, error or critical (default: $HL_LOG_LEVEL, else info).")
    var logLevel = ProcessInfo.processInfo.environment["HL_LOG_LEVEL"].flatMap { $0.isEmpty ? nil : $0 } ?? "info"
    @Option(help: "Guest log bytes one job's call may write (escapes included); the first line past it is replaced by one 'guest log truncated' warning and the rest of that call's lines are dropped. 0 drops them all.")
    var maxGuestLogBytes = WorkerConfiguration().maxGuestLogBytes
    @Flag(help: "Check the configuration, including its worst-case memory against this cgroup's memory limit, print the worst case, and exit.")
    var checkConfig = false

    func run() throws {
        try reportingFailures {
            var configuration = WorkerConfiguration()
            configuration.concurrency = concurrency
            configuration.prefetch = prefetch
            configuration.queues = queues.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            // --check-config checks what a worker would run with, and needs no database.
            configuration.databaseURL = checkConfig ? database.resolvedURL : try database.checkedURL()
            // novm answers every job with an echo and fails all others as
            // unknown_function: only hl-bench, which sets the variable,
            // may start a worker that way.
            let benchmarkOnly = ProcessInfo.processInfo.environment[ServeLimits.benchmarkVariable] == "1"
            guard let mode = WorkerConfiguration.VMMode(rawValue: vm), mode != .novm || benchmarkOnly else {
                throw CommandError(kind: "invalid_configuration", message: "--vm must be fresh or recycled, not \(vm)")
            }
            configuration.defaultVM = mode
            configuration.defaultTimeoutMilliseconds = defaultTimeoutMs
            configuration.defaultMemoryMB = defaultMemoryMb
            configuration.maxTimeoutMilliseconds = maxTimeoutMs
            configuration.maxMemoryMB = maxMemoryMb
            configuration.maxGuestLogBytes = maxGuestLogBytes
            if let workerId { configuration.workerID = workerId }
            configuration.shutdownGrace = shutdownGrace
            configuration.rescueAfter = rescueAfter
            configuration.vmCreationSlotsPerHost = vmCreationSlots
            configuration.metricsPort = metricsPort
            configuration.metricsHost = metricsHost
            configuration.retainCompleted = try RetentionPeriod.parse(retainCompleted, flag: "--retain-completed")
            configuration.retainDiscarded = try RetentionPeriod.parse(retainDiscarded, flag: "--retain-discarded")
            try LogSetup.bootstrap(format: logFormat, level: logLevel)
            let service: WorkerService
            do {
                service = try WorkerService(configuration: configuration, operations: { port, host, registry, isHealthy in
                    let server = try OperationsServer(port: port, host: host, registry: registry, isHealthy: isHealthy)
                    return OperationsEndpoint(port: server.port, stop: { server.stop() })
                })
            } catch {
                throw CommandError(kind: "invalid_configuration", message: "\(error)")
            }
            if checkConfig {
                let limit = service.memoryLimit.bytes.map { "the memory limit of \($0 >> 20) MiB" } ?? "no memory limit"
                print("configuration ok: worst-case memory \(service.memoryBudget.worstCaseMB) MiB, under \(limit)")
                return
            }
            service.installSignalHandlers()
            do {
                try service.run()
            } catch WorkerError.databaseUnusable(let line) {
                throw CommandError(kind: "database", message: line)
            } catch {
                throw CommandError(kind: "worker", message: "\(error)")
            }
        }
    }
}

/// The fixed limits `serve --help` reports, where no type names them.
enum ServeLimits {
    /// The guest's input area less the call header: what args and the
    /// function name share (migration 0008 refuses larger at INSERT).
    static let inputBytes = SandboxConfiguration().inputAreaSize - 16
    /// Set to 1 by hl-bench to allow `--vm novm`.
    static let benchmarkVariable = "HL_BENCHMARK_NOVM"
}

/// "90s", "30m", "24h", "7d", a number of seconds, or "forever" (nil).
enum RetentionPeriod {
    static func parse(_ text: String, flag: String) throws -> TimeInterval? {
        if text == "forever" { return nil }
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        var number = Substring(text)
        var scale = 1.0
        if let last = text.last, let unit = units[last] {
            number = text.dropLast()
            scale = unit
        }
        guard let value = Double(number), value >= 0, value.isFinite else {
            throw CommandError(kind: "invalid_configuration",
                               message: "\(flag) \(text) is not a duration like 90s, 30m, 24h, 7d or forever")
        }
        return value * scale
    }
}
