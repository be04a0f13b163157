import Foundation
import JobQueue

/// The PostgreSQL cluster the end-to-end runs use: the one the user named
/// (--database-url or DATABASE_URL), else the checkout's private cluster
/// from scripts/pg.sh, which is shared with tests and other tools. It is
/// stopped at the end only if this run started it.
final class PostgresCluster {
    let adminURL: String
    private let script: String?
    private let startedHere: Bool

    init(explicitURL: String?, repository: Repository) throws {
        if let explicitURL, !explicitURL.isEmpty {
            adminURL = explicitURL
            script = nil
            startedHere = false
            return
        }
        let script = repository.path("scripts/pg.sh")
        guard FileManager.default.isExecutableFile(atPath: script) else {
            throw BenchError.setup("no --database-url or DATABASE_URL, and \(script) is missing")
        }
        let wasRunning = (try? Shell.run(script, ["status"]))?.status == 0
        let started = try Shell.run(script, ["start"])
        guard started.status == 0,
              let line = started.output.split(separator: "\n").last(where: { $0.hasPrefix("DATABASE_URL=") }) else {
            throw BenchError.setup("scripts/pg.sh start failed (exit \(started.status)): \(started.output)")
        }
        adminURL = String(line.dropFirst("DATABASE_URL=".count))
        self.script = script
        startedHere = !wasRunning
    }

    /// Stops the cluster if this run started it; others may be using it otherwise.
    func release() {
        guard startedHere, let script else { return }
        _ = try? Shell.run(script, ["stop"])
    }
}

/// A database of the benchmark's own inside the cluster, hl_bench_<pid>,
/// migrated, with the demo guest registered; dropped at the end, so nothing
/// the benchmark inserts lands in anybody else's tables.
final class BenchDatabase {
    let name: String
    let url: String
    let connection: PGConnection
    private let adminURL: String
    static let guestName = "demo"

    init(adminURL: String, guest: [UInt8]) throws {
        self.adminURL = adminURL
        name = "hl_bench_\(getpid())"
        url = try PGConnection.conninfo(adminURL, replacing: ["dbname": name])
        let admin = try PGConnection(conninfo: adminURL)
        // The name is made of [a-z0-9_] only: safe to splice into the statement.
        try admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        try admin.execute("CREATE DATABASE \(name)")
        connection = try PGConnection(conninfo: url)
        try Migrator.migrate(connection: connection, directory: Migrator.locateMigrationsDirectory())
        try JobStore(connection: connection).putGuest(name: Self.guestName, image: guest)
    }

    func drop() {
        _ = try? PGConnection(conninfo: adminURL).execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Removes dead rows and refreshes the planner's statistics of the job
    /// table, so that every run starts from a comparable table whatever ran
    /// before it.
    func vacuumAnalyze() throws {
        try connection.execute("/* hl-bench */ VACUUM (ANALYZE) hl.jobs")
    }

    /// The highest job id so far: jobs of the next batch have larger ones.
    func lastJobID() throws -> Int64 {
        let row = try connection.execute("SELECT coalesce(max(id), 0) AS id FROM hl.jobs").singleRow()
        return try row.required("id", row.int64)
    }
}

/// Runs a helper script and collects its output.
enum Shell {
    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// Where the checkout is: the folder holding scripts/pg.sh, found walking up
/// from the current directory and from the executable's (which lives in
/// <checkout>/.build*/release/).
struct Repository {
    let root: URL

    init() throws {
        let executable = URL(fileURLWithPath: CommandLine.executablePath).deletingLastPathComponent()
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        for start in [cwd, executable] {
            var directory = start.standardizedFileURL
            while true {
                if FileManager.default.fileExists(atPath: directory.appendingPathComponent("scripts/pg.sh").path) {
                    root = directory
                    return
                }
                let parent = directory.deletingLastPathComponent()
                if parent.path == directory.path { break }
                directory = parent
            }
        }
        throw BenchError.setup("cannot find the hl-worker checkout (scripts/pg.sh) above \(cwd.path); run from the checkout")
    }

    func path(_ relative: String) -> String {
        root.appendingPathComponent(relative).path
    }
}

extension CommandLine {
    /// This process's executable, resolved through /proc (argv[0] may be relative or a bare name).
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? arguments[0]
    }
}
