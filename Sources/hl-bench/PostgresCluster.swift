import Foundation

/// The PostgreSQL cluster the end-to-end runs use: the one the user named
/// (--database-url or DATABASE_URL), else the checkout's private cluster
/// from scripts/pg.sh, which is shared with tests and other tools. It is
/// stopped at the end only if this run started it.
final class PostgresCluster {
    let adminURL: String
    private let script: String?
    private let environment: [String: String]
    private let startedHere: Bool

    /// What happened when the private cluster was asked for.
    enum Start {
        case started(url: String)
        /// The port the script would use is held by a server that is not
        /// this checkout's cluster.
        case portTaken(port: Int, chosenByUser: Bool)
        case failed(String)
    }

    init(explicitURL: String?, repository: Repository, progress: (String) -> Void) throws {
        if let explicitURL, !explicitURL.isEmpty {
            adminURL = explicitURL
            script = nil
            environment = [:]
            startedHere = false
            return
        }
        let script = repository.path("scripts/pg.sh")
        guard FileManager.default.isExecutableFile(atPath: script) else {
            throw BenchError.setup("no --database-url or DATABASE_URL, and \(script) is missing")
        }
        let wasRunning = Shell.run(script, ["status"]).status == 0
        var environment = ProcessInfo.processInfo.environment
        var outcome = Self.start(script, environment: environment, wasRunning: wasRunning)
        if case .portTaken(let port, chosenByUser: false) = outcome, let free = Self.freePort(after: port) {
            // Another checkout's cluster (or any server) holds the default
            // port: this checkout's cluster can run next to it on its own.
            progress("port \(port) is held by another server; starting this checkout's cluster on \(free) (PGPORT_HL)")
            environment["PGPORT_HL"] = String(free)
            outcome = Self.start(script, environment: environment, wasRunning: wasRunning)
        }
        switch outcome {
        case .started(let url):
            adminURL = url
        case .portTaken(let port, let chosenByUser):
            throw BenchError.setup(chosenByUser
                ? "port \(port) (PGPORT_HL) is held by another server: set PGPORT_HL to a free port, or pass --database-url"
                : "port \(port) is held by another server and no free port was found after it: set PGPORT_HL, or pass --database-url")
        case .failed(let message):
            throw BenchError.setup(message)
        }
        self.script = script
        self.environment = environment
        startedHere = !wasRunning
    }

    /// Stops the cluster if this run started it; others may be using it otherwise.
    func release() {
        guard startedHere, let script else { return }
        _ = Shell.run(script, ["stop"], environment: environment)
    }

    private static func start(_ script: String, environment: [String: String], wasRunning: Bool) -> Start {
        if !wasRunning, let port = port(script, environment: environment), !portIsFree(port) {
            return .portTaken(port: port, chosenByUser: environment["PGPORT_HL"] != nil)
        }
        let started = Shell.run(script, ["start"], environment: environment)
        guard started.status == 0, let url = urlLine(started.output) else {
            return .failed("scripts/pg.sh start failed (exit \(started.status)): \(started.output)")
        }
        return .started(url: url)
    }

    /// The port the script would start the cluster on (`pg.sh url`).
    private static func port(_ script: String, environment: [String: String]) -> Int? {
        let answer = Shell.run(script, ["url"], environment: environment)
        guard answer.status == 0, let url = urlLine(answer.output),
              let components = URLComponents(string: url) else { return nil }
        return components.port
    }

    private static func urlLine(_ output: String) -> String? {
        output.split(separator: "\n").last { $0.hasPrefix("DATABASE_URL=") }.map { String($0.dropFirst("DATABASE_URL=".count)) }
    }

    private static func freePort(after port: Int) -> Int? {
        (port + 1...port + 50).first(where: portIsFree)
    }

    /// Whether a server could listen on 127.0.0.1:`port` (which is where
    /// scripts/pg.sh listens): binds a socket there, as PostgreSQL will.
    static func portIsFree(_ port: Int) -> Bool {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return false }
        defer { close(socket) }
        var reuse: Int32 = 1
        setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        // SAFETY: sockaddr_in is a valid sockaddr of the length passed.
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return bound == 0
    }
}

/// Runs a helper script and collects its output.
///
/// Not through Foundation's Process: it learns that a child has exited when
/// a socket the child inherits is closed, and a server that the script
/// starts in the background inherits that socket too and keeps it open, so
/// Process would report the script as running (unreaped, a zombie) for as
/// long as the server lives. Here the script is spawned with only
/// /dev/null and an output file open (everything else is closed in the
/// child), waited for with waitpid, and its output read from the file, so
/// nothing a daemon keeps open can hold the caller up.
enum Shell {
    static func run(_ executable: String, _ arguments: [String],
                    environment: [String: String]? = nil) -> (status: Int32, output: String) {
        let outputPath = (NSTemporaryDirectory() as NSString)
            .appendingPathComponent("hl-bench-\(getpid())-\(UUID().uuidString).out")
        let output = open(outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard output >= 0 else { return (-1, "cannot create \(outputPath): \(String(cString: strerror(errno)))") }
        defer { unlink(outputPath) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        posix_spawn_file_actions_adddup2(&actions, output, 2)
        closeFrom?(&actions, 3)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let environmentStrings = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") }
        let envp = environmentStrings + [nil]
        defer {
            argv.forEach { free($0) }
            environmentStrings.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        close(output)
        guard spawned == 0 else { return (-1, "cannot run \(executable): \(String(cString: strerror(spawned)))") }

        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // WIFEXITED / WEXITSTATUS, which Swift does not import (macros).
        let exitStatus = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return (exitStatus, text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// glibc's posix_spawn_file_actions_addclosefrom_np (2.34 and later),
    /// looked up at run time because Swift's Glibc module does not import
    /// it; without it only descriptors opened without O_CLOEXEC leak, and
    /// this process opens none on purpose.
    private static let closeFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()
}
