import ArgumentParser
import Foundation
import MicroVM
import Sandbox
import Worker

/// `hl-worker run`: one guest function, called once (or --repeat times), with
/// no database. Failures print their kind and exit 1, never crash.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Call one guest function in a micro-VM, without a database.",
        discussion: """
            With --repeat N the call is made N times and per-call timing goes to stderr. \
            --vm recycled makes every call in one VM reset to its snapshot after each call; \
            --vm fresh builds and tears down a new VM for every call, all on the caller's path.
            """
    )

    @Argument(help: "Path to the guest ELF.") var guest: String
    @Argument(help: "Function to call.") var function: String
    @Argument(help: "Arguments as JSON.") var args: String = "{}"
    @Option(help: "Guest memory in MiB.") var memoryMb: Int = SandboxConfiguration.defaultMemoryMB
    @Option(help: "Wall-clock limit of each call, in milliseconds.") var timeoutMs: Int = CallLimits.defaultTimeoutMilliseconds
    @Option(help: "Calls to make.") var `repeat`: Int = 1
    @Option(help: "fresh or recycled.") var vm: String = "fresh"
    @Option(help: "Least severe log level written, the guest's own lines included.") var logLevel = "info"
    @Option(help: "Guest log bytes each call may write; the rest of its lines are dropped.")
    var maxGuestLogBytes: Int = CallLimits.defaultMaxLogBytes

    func run() throws {
        try reportingFailures {
            try LogSetup.bootstrap(format: "text", level: logLevel)
            print(String(decoding: try callRepeatedly(), as: UTF8.self))
        }
    }

    private func callRepeatedly() throws -> [UInt8] {
        guard let mode = WorkerConfiguration.VMMode(rawValue: vm) else {
            throw CommandError(kind: "invalid_limits", message: "--vm must be fresh or recycled, not \(vm)")
        }
        guard (1...10_000_000).contains(`repeat`) else {
            throw CommandError(kind: "invalid_limits", message: "--repeat must be 1...10000000")
        }
        guard let bytes = FileManager.default.contents(atPath: guest) else {
            throw CommandError(kind: "unknown_guest", message: "cannot read guest file \(guest)")
        }
        let input = Array(args.utf8)
        guard JSONValidator.isObject(input) else {
            throw CommandError(kind: "invalid_args", message: "the arguments are not a JSON object")
        }
        let image = try GuestImage(name: URL(fileURLWithPath: guest).deletingPathExtension().lastPathComponent,
                                   bytes: Array(bytes))
        let kvm: KVM
        do { kvm = try KVM() } catch let error as KVMError { throw SandboxError.host(error) }
        let configuration = SandboxConfiguration(memoryMB: memoryMb, recyclable: mode == .recycled)
        let limits = CallLimits(timeoutMilliseconds: timeoutMs, maxLogBytes: maxGuestLogBytes)
        var recycled: Sandbox?
        var timings: [UInt64] = []
        var result: [UInt8] = []
        timings.reserveCapacity(`repeat`)
        for _ in 0..<`repeat` {
            let start = DispatchTime.now().uptimeNanoseconds
            if mode == .recycled {
                let sandbox = try recycled ?? Sandbox(kvm: kvm, image: image, configuration: configuration)
                recycled = sandbox
                result = try sandbox.call(function, input: input, limits: limits)
                try sandbox.reset()
            } else {
                result = try Sandbox(kvm: kvm, image: image, configuration: configuration)
                    .call(function, input: input, limits: limits)
            }
            timings.append(DispatchTime.now().uptimeNanoseconds - start)
        }
        guard JSONValidator.isValid(result) else {
            throw SandboxError.invalidOutput("the guest returned \(result.count) bytes that are not JSON")
        }
        if `repeat` > 1 { reportTimings(timings, mode: mode) }
        return result
    }

    private func reportTimings(_ timings: [UInt64], mode: WorkerConfiguration.VMMode) {
        let sorted = timings.sorted()
        func percentile(_ p: Double) -> Double {
            Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1000
        }
        let what = mode == .recycled ? "call + reset" : "create + call + teardown"
        let line = String(format: "%d calls (%@, %@): p50 %.1f us, p99 %.1f us, min %.1f us, max %.1f us\n",
                          sorted.count, mode.rawValue, what, percentile(0.5), percentile(0.99),
                          Double(sorted.first!) / 1000, Double(sorted.last!) / 1000)
        FileHandle.standardError.write(Data(line.utf8))
    }
}

/// A failure of the command line itself, reported like a job failure.
struct CommandError: Error {
    var kind: String
    var message: String
}
