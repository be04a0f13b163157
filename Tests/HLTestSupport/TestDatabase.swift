import Foundation
import JobQueue

/// A PostgreSQL database of its own for one test: created fresh (and
/// migrated) in the cluster DATABASE_URL points at, dropped afterwards.
/// Tests never share rows, so they can run in any order, or at once.
public final class TestDatabase: @unchecked Sendable {
    public enum Unavailable: Error, CustomStringConvertible {
        case required

        public var description: String {
            "HL_REQUIRE_DB=1 but DATABASE_URL is not set: run the tests through scripts/test.sh, "
                + "or start a cluster with scripts/pg.sh start and export the DATABASE_URL it prints"
        }
    }

    public static let skipMessage =
        "DATABASE_URL is not set, so the PostgreSQL tests are skipped; scripts/test.sh starts "
        + "a private cluster and sets it (HL_REQUIRE_DB=1 turns this skip into a failure)"

    /// The URL of the cluster to create test databases in; nil when tests
    /// needing it should skip (with `skipMessage`). Throws when
    /// HL_REQUIRE_DB=1, so that CI cannot pass by skipping them.
    public static func adminURL() throws -> String? {
        let environment = ProcessInfo.processInfo.environment
        if let url = environment["DATABASE_URL"], !url.isEmpty { return url }
        if environment["HL_REQUIRE_DB"] == "1" { throw Unavailable.required }
        return nil
    }

    /// The database's name, hl_test_<pid>_<random>.
    public let name: String
    /// A connection string for this database, for PGConnection or for a
    /// worker process's DATABASE_URL.
    public let url: String
    private let adminURL: String

    public init(adminURL: String, migrate: Bool = true) throws {
        self.adminURL = adminURL
        name = "hl_test_\(getpid())_\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        url = try PGConnection.conninfo(adminURL, replacing: ["dbname": name])
        let admin = try PGConnection(conninfo: adminURL)
        TestDatabase.dropAbandoned(admin)
        // The name is ours and made of [a-z0-9_] only: safe to splice.
        try admin.execute("CREATE DATABASE \(name)")
        if migrate {
            let connection = try connect()
            try Migrator.migrate(connection: connection, directory: Migrator.locateMigrationsDirectory())
        }
    }

    public func connect() throws -> PGConnection {
        try PGConnection(conninfo: url)
    }

    /// Drops the database, closing any connection still open to it.
    public func drop() throws {
        try PGConnection(conninfo: adminURL).execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    private static let cleanupLock = NSLock()
    private static var cleanedUp = false

    /// Test databases of processes that died before dropping them (a crash,
    /// a killed run) would pile up in a long-lived cluster; once per
    /// process, drop those whose creating process is gone from this host.
    private static func dropAbandoned(_ admin: PGConnection) {
        cleanupLock.lock()
        defer { cleanupLock.unlock() }
        guard !cleanedUp else { return }
        cleanedUp = true
        guard let result = try? admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'hl\\_test\\_%'")
        else { return }
        for row in result.rows {
            guard let name = row.string("datname"),
                let pid = name.split(separator: "_").dropFirst(2).first.flatMap({ Int32($0) }),
                kill(pid, 0) != 0 && errno == ESRCH,
                name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
            else { continue }
            _ = try? admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        }
    }
}
