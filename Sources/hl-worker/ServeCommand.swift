import ArgumentParser
import Foundation
import Logging
import Worker

/// The service: `hl-worker [--concurrency N] ...`.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the worker service (the default command)."
    )

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Jobs run at once.") var concurrency = 8
    @Option(help: "Comma-separated queues to work (default: all).") var queues: String?
    @Option(help: "VM per job when the job does not say: fresh or recycled. (novm, for benchmarks only, runs echo without a VM.)")
    var vm = "fresh"
    @Option(help: "Timeout for jobs that set none.") var defaultTimeoutMs = WorkerConfiguration().defaultTimeoutMilliseconds
    @Option(help: "Memory for jobs that set none.") var defaultMemoryMb = WorkerConfiguration().defaultMemoryMB
    @Option(help: "Largest timeout a job may ask for; larger ones are clamped.") var maxTimeoutMs = WorkerConfiguration().maxTimeoutMilliseconds
    @Option(help: "Largest memory a job may ask for; larger ones are clamped.") var maxMemoryMb = WorkerConfiguration().maxMemoryMB
    @Option(help: "This worker's id (default: host-pid-random).") var workerId: String?
    @Option(help: "Seconds running jobs get to finish after SIGTERM.") var shutdownGrace = WorkerConfiguration().shutdownGrace
    @Option(help: "Seconds of silence after which a worker's jobs are rescued.") var rescueAfter = WorkerConfiguration().rescueAfter
    @Option(help: "Threads on this host building VMs at once, across processes.") var vmCreationSlots = WorkerConfiguration().vmCreationSlotsPerHost
    @Option(help: "Log format: text or json.") var logFormat = "text"

    func run() throws {
        try reportingFailures {
            var configuration = WorkerConfiguration()
            configuration.concurrency = concurrency
            configuration.queues = queues.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            configuration.databaseURL = database.resolvedURL
            guard let mode = WorkerConfiguration.VMMode(rawValue: vm) else {
                throw CommandError(kind: "invalid_configuration", message: "--vm must be fresh or recycled, not \(vm)")
            }
            configuration.defaultVM = mode
            configuration.defaultTimeoutMilliseconds = defaultTimeoutMs
            configuration.defaultMemoryMB = defaultMemoryMb
            configuration.maxTimeoutMilliseconds = maxTimeoutMs
            configuration.maxMemoryMB = maxMemoryMb
            if let workerId { configuration.workerID = workerId }
            configuration.shutdownGrace = shutdownGrace
            configuration.rescueAfter = rescueAfter
            configuration.vmCreationSlotsPerHost = vmCreationSlots
            try LogSetup.bootstrap(format: logFormat)
            let service: WorkerService
            do {
                service = try WorkerService(configuration: configuration)
            } catch {
                throw CommandError(kind: "invalid_configuration", message: "\(error)")
            }
            service.installSignalHandlers()
            do {
                try service.run()
            } catch {
                throw CommandError(kind: "worker", message: "\(error)")
            }
        }
    }
}
