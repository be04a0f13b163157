import Foundation
import XCTest

/// A real `hl-worker` process, started the way an operator starts one: the
/// binary `swift test` built next to this test bundle, the root command
/// (which is the service), its own worker id and a database URL. Its output
/// goes to a file, so a failing test can show what the worker said.
final class WorkerProcess {
    let id: String
    let logURL: URL
    private let process = Process()
    /// With a stalled stderr: the pipe the worker's stderr goes to, which
    /// nobody reads. Held open, so writes to it block once it is full.
    private var stalledStandardError: Pipe?

    /// The directory of the running test executable: SwiftPM puts the
    /// products of one build (hl-worker among them) side by side.
    static let binary: URL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("hl-worker")

    /// `stallStandardError`: stderr, where the worker logs, goes to a pipe
    /// nobody reads, as when a log shipper stops; stdout still goes to the log.
    /// `environment` is added to the test's own; `expectingExit`: the test
    /// waits for it to exit by itself (`exitStatus(within:)`).
    init(id: String, arguments: [String], logURL: URL, stallStandardError: Bool = false,
         environment: [String: String] = [:], expectingExit: Bool = false) throws {
        self.id = id
        self.logURL = logURL
        shouldBeRunning = !expectingExit
        guard FileManager.default.isExecutableFile(atPath: Self.binary.path) else {
            throw WorkerProcessError(message: "\(Self.binary.path) is missing; `swift test` builds it with the tests")
        }
        guard FileManager.default.createFile(atPath: logURL.path, contents: nil) else {
            throw WorkerProcessError(message: "cannot create \(logURL.path)")
        }
        let log = try FileHandle(forWritingTo: logURL)
        // The child gets its own copy of the descriptor; ours is not needed
        // once it runs.
        defer { try? log.close() }
        process.executableURL = Self.binary
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        process.standardOutput = log
        if stallStandardError {
            let pipe = Pipe()
            stalledStandardError = pipe
            process.standardError = pipe
        } else {
            process.standardError = log
        }
        try process.run()
    }

    var isRunning: Bool { process.isRunning }
    var pid: Int32 { process.processIdentifier }

    /// SIGSTOP freezes it as a long stall or a partition would; SIGCONT
    /// lets it go on.
    func send(_ signal: Int32) {
        _ = Foundation.kill(process.processIdentifier, signal)
    }
    /// False once the test has stopped it on purpose.
    private(set) var shouldBeRunning: Bool

    /// SIGTERM, the way service managers stop it: the worker must drain and
    /// exit 0 within `timeout` seconds.
    func terminate(timeout: TimeInterval = 60, file: StaticString = #filePath, line: UInt = #line) {
        shouldBeRunning = false
        process.terminate()
        guard waitForExit(timeout: timeout) else {
            XCTFail("worker \(id) still running \(Int(timeout)) s after SIGTERM\n\(logTail())", file: file, line: line)
            kill()
            return
        }
        XCTAssertEqual(process.terminationReason, .exit,
                       "worker \(id) died of signal \(process.terminationStatus) after SIGTERM\n\(logTail())",
                       file: file, line: line)
        XCTAssertEqual(process.terminationStatus, 0, "worker \(id) exit status after SIGTERM\n\(logTail())",
                       file: file, line: line)
    }

    /// SIGKILL: the process vanishes mid-job, as on a lost host or an OOM kill.
    func kill() {
        shouldBeRunning = false
        guard process.isRunning else { return }
        _ = Foundation.kill(process.processIdentifier, SIGKILL)
        _ = waitForExit(timeout: 30)
    }

    /// The exit status once it exits by itself, nil if it is still running
    /// after `timeout` seconds (it is killed then) or died of a signal.
    func exitStatus(within timeout: TimeInterval) -> Int32? {
        shouldBeRunning = false
        guard waitForExit(timeout: timeout) else {
            kill()
            return nil
        }
        return process.terminationReason == .exit ? process.terminationStatus : nil
    }

    /// Everything it wrote so far.
    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Polls, since Process offers no wait with a deadline.
    private func waitForExit(timeout: TimeInterval) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while process.isRunning {
            if Date() >= deadline { return false }
            usleep(10_000)
        }
        return true
    }

    /// The last lines the worker wrote, for failure messages.
    func logTail(lines: Int = 40) -> String {
        let text = (try? String(contentsOf: logURL, encoding: .utf8)) ?? "(no log at \(logURL.path))"
        let tail = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines)
        return "--- last lines of worker \(id)'s log (\(logURL.path)) ---\n" + tail.joined(separator: "\n")
    }

    /// Runs a one-shot subcommand (`guest add`, `status`, ...) to the end and
    /// returns its exit status and everything it printed.
    /// `environment`: changes to the test's own (nil removes a variable);
    /// `binary`, `directory`: another copy of the binary, another cwd.
    /// A command still running after `timeout` seconds is killed and the
    /// test fails with what it printed, instead of hanging the suite.
    static func command(_ arguments: [String], environment: [String: String?] = [:], binary: URL = binary,
                        directory: URL? = nil, timeout: TimeInterval = 120) throws -> (status: Int32, output: String) {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw WorkerProcessError(message: "\(binary.path) is missing; `swift test` builds it with the tests")
        }
        let process = Process()
        let pipe = Pipe()
        process.executableURL = binary
        process.arguments = arguments
        var variables = ProcessInfo.processInfo.environment
        for (name, value) in environment { variables[name] = value }
        process.environment = variables
        if let directory { process.currentDirectoryURL = directory }
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let pid = process.processIdentifier
        let deadline = DispatchWorkItem { _ = Glibc.kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: deadline)
        // Reading to EOF first: a child blocked on a full pipe never exits.
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        deadline.cancel()
        let text = String(decoding: output, as: UTF8.self)
        if process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL {
            throw WorkerProcessError(
                message: "hl-worker \(arguments.joined(separator: " ")) was still running after \(Int(timeout)) s and was killed; it printed:\n\(text)")
        }
        return (process.terminationStatus, text)
    }
}

struct WorkerProcessError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
