import Foundation

/// The peer job queues `hl-bench --peers` runs next to hl-worker, each
/// through scripts/peers/peer.py and a module of its own there.
enum Peer: String, CaseIterable {
    case pgqueuer
    case procrastinate

    /// The module in scripts/peers/.
    var module: String { "\(rawValue)_peer" }
    /// What the `conc` column means for it.
    var widthMeaning: String {
        switch self {
        case .pgqueuer: return "batch size"
        case .procrastinate: return "concurrency"
        }
    }
}

/// The private virtual environment the peers are installed into
/// (scripts/peers/setup.sh: .hl/peers-venv, pinned versions).
struct PeerEnvironment {
    let python: String
    let script: String

    init(repository: Repository, progress: (String) -> Void) throws {
        progress("peers: installing scripts/peers/requirements.txt into .hl/peers-venv (once)")
        let setup = Shell.run(repository.path("scripts/peers/setup.sh"), [])
        guard setup.status == 0,
              let line = setup.output.split(separator: "\n").last(where: { $0.hasPrefix("PEERS_PYTHON=") }) else {
            throw BenchError.setup("scripts/peers/setup.sh failed (exit \(setup.status)): \(setup.output)")
        }
        python = String(line.dropFirst("PEERS_PYTHON=".count))
        script = repository.path("scripts/peers/peer.py")
    }
}

/// One run of a peer: peer.py with its consumers, driven line by line
/// over its stdin and stdout (the protocol is in peer.py's docstring).
final class PeerDriver {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffer: [UInt8] = []
    private let log: String

    init(environment: PeerEnvironment, peer: Peer, configuration: E2EConfiguration, databaseURL: String, jobs: Int,
         lightJobs: Int, warmup: Int, log: String) throws {
        self.log = log
        guard FileManager.default.createFile(atPath: log, contents: nil) else { throw BenchError.setup("cannot create \(log)") }
        let errors = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.executableURL = URL(fileURLWithPath: environment.python)
        process.arguments = [environment.script, peer.module, "--dsn", databaseURL,
                             "--processes", String(configuration.processes), "--width", String(configuration.concurrency),
                             "--jobs", String(jobs), "--light", String(lightJobs), "--warmup", String(warmup)]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        do {
            try process.run()
        } catch {
            throw BenchError.setup("cannot start \(environment.python): \(error)")
        }
        try? errors.close()
    }

    deinit { stop() }

    /// Sends one word of the protocol.
    func send(_ word: String) {
        input.fileHandleForWriting.write(Data((word + "\n").utf8))
    }

    /// The next line, which must start with `word`; fails with the end of
    /// the driver's log if it exits, says something else, or is silent for
    /// `timeout` seconds.
    func expect(_ word: String, timeout: Double) throws -> String {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                guard line.hasPrefix(word) else { throw failure("said \(line.prefix(200)) instead of \(word)") }
                return line
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw failure("said nothing for \(Int(timeout)) s while hl-bench waited for \(word)") }
            var descriptor = pollfd(fd: output.fileHandleForReading.fileDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(min(left, 1) * 1000)) > 0 else { continue }
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw failure("exited before it said \(word)") }
            buffer += chunk
        }
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    private func failure(_ what: String) -> BenchError {
        let tail = (try? String(contentsOfFile: log, encoding: .utf8))?
            .split(separator: "\n").suffix(3).joined(separator: " | ") ?? ""
        return BenchError.unexpected("peer.py \(what): \(tail) (log: \(log))")
    }
}
