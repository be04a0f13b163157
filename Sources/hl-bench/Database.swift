import Foundation
import JobQueue

/// A database of the benchmark's own inside the cluster, hl_bench_<pid>,
/// migrated, with the demo guest registered; dropped at the end, so nothing
/// the benchmark inserts lands in anybody else's tables.
final class BenchDatabase {
    let name: String
    let url: String
    let connection: PGConnection
    /// The same database as a postgres:// URL, which every peer's driver
    /// takes (asyncpg takes no key=value conninfo); nil when the admin URL
    /// is not a URL.
    let peerURL: String?
    private let adminURL: String
    static let guestName = "demo"

    init(adminURL: String, guest: [UInt8]) throws {
        self.adminURL = adminURL
        name = "hl_bench_\(getpid())"
        url = try PGConnection.conninfo(adminURL, replacing: ["dbname": name])
        peerURL = Self.urlNaming(name, in: adminURL)
        let admin = try PGConnection(conninfo: adminURL)
        // The name is made of [a-z0-9_] only: safe to splice into the statement.
        try admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        try admin.execute("CREATE DATABASE \(name)")
        connection = try PGConnection(conninfo: url)
        try Migrator.migrate(connection: connection, directory: Migrator.locateMigrationsDirectory())
        try JobStore(connection: connection).putGuest(name: Self.guestName, image: guest)
    }

    private static func urlNaming(_ database: String, in adminURL: String) -> String? {
        guard var components = URLComponents(string: adminURL),
              components.scheme == "postgres" || components.scheme == "postgresql" else { return nil }
        components.path = "/" + database
        return components.string
    }

    func drop() {
        _ = try? PGConnection(conninfo: adminURL).execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Removes dead rows and, once the job table has rows, refreshes the
    /// planner's statistics, so that every run starts from a comparable
    /// table whatever ran before it. An empty table is not analyzed: that
    /// would leave statistics that say "no rows" (no running queue has
    /// them), and plans that depend on statistics then degrade on the
    /// batch that follows; the peers' drivers follow the same rule.
    func vacuumAnalyze() throws {
        try connection.execute("/* hl-bench */ VACUUM hl.jobs")
        let row = try connection.execute("/* hl-bench */ SELECT EXISTS (SELECT 1 FROM hl.jobs) AS rows").singleRow()
        if try row.bool("rows") == true {
            try connection.execute("/* hl-bench */ ANALYZE hl.jobs")
        }
    }

    /// The highest job id so far: jobs of the next batch have larger ones.
    func lastJobID() throws -> Int64 {
        let row = try connection.execute("/* hl-bench */ SELECT coalesce(max(id), 0) AS id FROM hl.jobs").singleRow()
        return try row.required("id", row.int64)
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
