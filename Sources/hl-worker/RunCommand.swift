import ArgumentParser
import Foundation
import Logging
import MicroVM
import Sandbox
import Worker

/// `hl-worker run`: one guest function, called once (or --repeat times), with
/// no database. Failures print their kind and exit 1, never crash.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Call one guest function in a micro-VM, without a database."
    )

    @Argument(help: "Path to the guest ELF.") var guest: String
    @Argument(help: "Function to call.") var function: String
    @Argument(help: "Arguments as JSON.") var args: String = "{}"
    @Option(help: "Guest memory in MiB.") var memoryMb: Int = SandboxConfiguration.defaultMemoryMB
    @Option(help: "Wall-clock limit of each call, in milliseconds.") var timeoutMs: Int = CallLimits.defaultTimeoutMilliseconds

    func run() throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        do {
            let result = try callOnce()
            print(String(decoding: result, as: UTF8.self))
        } catch let error as SandboxError {
            FileHandle.standardError.write(Data("\(error.kind): \(error.message)\n".utf8))
            throw ExitCode(1)
        } catch let error as CommandError {
            FileHandle.standardError.write(Data("\(error.kind): \(error.message)\n".utf8))
            throw ExitCode(1)
        }
    }

    private func callOnce() throws -> [UInt8] {
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
        let sandbox = try Sandbox(kvm: kvm, image: image, configuration: SandboxConfiguration(memoryMB: memoryMb))
        let result = try sandbox.call(function, input: input, limits: CallLimits(timeoutMilliseconds: timeoutMs))
        guard JSONValidator.isValid(result) else {
            throw SandboxError.invalidOutput("the guest returned \(result.count) bytes that are not JSON")
        }
        return result
    }
}

/// A failure of the command line itself, reported like a job failure.
struct CommandError: Error {
    var kind: String
    var message: String
}
