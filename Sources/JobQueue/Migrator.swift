import Foundation
import Logging

public enum MigrationError: Error, Equatable, Sendable {
    /// No directory with migrations was found; `searched` lists where we looked.
    case directoryNotFound(searched: [String])
    case unreadable(path: String, reason: String)
    /// A .sql file whose name is not NNNN_name.sql, or two files with one number.
    case badFileName(path: String, reason: String)
    case failed(migration: String, cause: PGError)
}

extension MigrationError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .directoryNotFound(let searched):
            return "no migrations directory (migrations/0001_*.sql) found; looked in: "
                + searched.joined(separator: ", ") + ". Pass one explicitly or set HL_MIGRATIONS_DIR"
        case .unreadable(let path, let reason):
            return "cannot read \(path): \(reason)"
        case .badFileName(let path, let reason):
            return "\(path): \(reason); migrations are named NNNN_name.sql"
        case .failed(let migration, let cause):
            return "migration \(migration) failed and was rolled back: \(cause)"
        }
    }
}

/// One migration file.
public struct Migration: Sendable, Equatable {
    public var version: Int
    /// The file name without .sql, e.g. "0001_schema".
    public var name: String
    /// Where it was read from: a file, or "(embedded)/NAME.sql".
    public var path: String
    /// The SQL of an embedded migration; nil for a file, read when applied.
    public var embeddedSQL: String?

    public init(version: Int, name: String, path: String, embeddedSQL: String? = nil) {
        self.version = version
        self.name = name
        self.path = path
        self.embeddedSQL = embeddedSQL
    }
}

/// Applies migrations/NNNN_name.sql files in order, each in its own
/// transaction, recording them in hl.schema_migrations. Concurrent runs
/// against one database (every worker migrating at start-up) are serialised
/// by an advisory lock, so each file is applied exactly once.
///
/// A migration file must not contain BEGIN/COMMIT: it runs inside the
/// transaction that also records it.
public enum Migrator {
    public static let environmentVariable = "HL_MIGRATIONS_DIR"

    /// The migrations compiled into this binary (migrations/*.sql at build
    /// time, by the EmbedMigrations plugin), in version order.
    public static let embedded: [Migration] = EmbeddedMigrations.files.compactMap { file in
        guard let version = Int(file.name.prefix(4)) else { return nil }
        return Migration(version: version, name: file.name, path: "(embedded)/\(file.name).sql", embeddedSQL: file.sql)
    }.sorted { $0.version < $1.version }

    /// The newest schema version this binary knows.
    public static var latestVersion: Int { embedded.last?.version ?? 0 }

    /// What `migrate` applies: the files of `explicit` or of
    /// $HL_MIGRATIONS_DIR when either is set, else the embedded ones.
    public static func chosenMigrations(explicit: String? = nil) throws -> [Migration] {
        let fromEnvironment = ProcessInfo.processInfo.environment[environmentVariable].flatMap { $0.isEmpty ? nil : $0 }
        guard let directory = explicit ?? fromEnvironment else { return embedded }
        guard holdsMigrations(directory) else { throw MigrationError.directoryNotFound(searched: [directory]) }
        return try migrations(in: directory)
    }

    /// Where the migrations are: `explicit` if given, else
    /// $HL_MIGRATIONS_DIR, else `<executable dir>/../share/hl-worker/migrations`
    /// (an installed layout), else the first `migrations/` holding a
    /// 0001_*.sql found walking up from the executable's directory and from
    /// the current directory (a checkout's `.build/debug/hl-worker`).
    public static func locateMigrationsDirectory(explicit: String? = nil) throws -> String {
        var searched: [String] = []
        func accept(_ directory: String) -> Bool {
            searched.append(directory)
            return holdsMigrations(directory)
        }
        if let explicit {
            guard accept(explicit) else { throw MigrationError.directoryNotFound(searched: searched) }
            return explicit
        }
        if let fromEnvironment = ProcessInfo.processInfo.environment[environmentVariable], !fromEnvironment.isEmpty {
            guard accept(fromEnvironment) else { throw MigrationError.directoryNotFound(searched: searched) }
            return fromEnvironment
        }
        let executableDirectory = executableURL().deletingLastPathComponent().standardizedFileURL
        let installed = executableDirectory.appendingPathComponent("../share/hl-worker/migrations").standardizedFileURL
        if accept(installed.path) { return installed.path }
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        for start in [executableDirectory, cwd] {
            var directory = start
            while true {
                let candidate = directory.appendingPathComponent("migrations").path
                if accept(candidate) { return candidate }
                let parent = directory.deletingLastPathComponent()
                if parent.path == directory.path { break }
                directory = parent
            }
        }
        throw MigrationError.directoryNotFound(searched: searched)
    }

    /// The migration files in `directory`, in version order.
    public static func migrations(in directory: String) throws -> [Migration] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw MigrationError.unreadable(path: directory, reason: "\(error)")
        }
        var byVersion: [Int: Migration] = [:]
        for file in names where file.hasSuffix(".sql") {
            let path = (directory as NSString).appendingPathComponent(file)
            let stem = String(file.dropLast(4))
            let parts = stem.split(separator: "_", maxSplits: 1)
            guard parts.count == 2, parts[0].count == 4, let version = Int(parts[0]),
                parts[0].allSatisfy(\.isASCII), parts[0].allSatisfy(\.isNumber)
            else {
                throw MigrationError.badFileName(path: path, reason: "no four-digit version before the first _")
            }
            if let other = byVersion[version] {
                throw MigrationError.badFileName(path: path, reason: "version \(version) is also \(other.path)")
            }
            byVersion[version] = Migration(version: version, name: stem, path: path)
        }
        return byVersion.values.sorted { $0.version < $1.version }
    }

    /// Applies the migrations of `directory` that the database lacks.
    /// Returns the names of those it applied, in order; none when the
    /// database is up to date.
    @discardableResult
    public static func migrate(
        connection: PGConnection, directory: String,
        logger: Logger = Logger(label: "hl.migrate")
    ) throws -> [String] {
        try migrate(connection: connection, migrations: try migrations(in: directory), logger: logger)
    }

    /// Applies those of `pending` that the database lacks.
    @discardableResult
    public static func migrate(
        connection: PGConnection, migrations pending: [Migration],
        logger: Logger = Logger(label: "hl.migrate")
    ) throws -> [String] {
        let lockKey = PGParam(Queries.migrationLockKey)
        try connection.execute(Queries.lockMigrations, [lockKey])
        defer {
            if connection.isConnected { _ = try? connection.execute(Queries.unlockMigrations, [lockKey]) }
        }
        try connection.executeScript(Queries.migrationBootstrap, name: "migration bootstrap")
        let applied = Set(
            try connection.execute(Queries.appliedMigrations, []).rows.map { try $0.required("version", $0.int) })
        var names: [String] = []
        for migration in pending where !applied.contains(migration.version) {
            let sql: String
            if let embeddedSQL = migration.embeddedSQL {
                sql = embeddedSQL
            } else {
                do {
                    sql = try String(contentsOfFile: migration.path, encoding: .utf8)
                } catch {
                    throw MigrationError.unreadable(path: migration.path, reason: "\(error)")
                }
            }
            do {
                try connection.transaction {
                    try connection.executeScript(sql, name: migration.name)
                    try connection.execute(
                        Queries.recordMigration, [PGParam(migration.version), .text(migration.name)])
                }
            } catch let error as PGError {
                throw MigrationError.failed(migration: migration.name, cause: error)
            }
            logger.debug("applied migration", metadata: ["migration": "\(migration.name)"])
            names.append(migration.name)
        }
        return names
    }

    private static func holdsMigrations(_ directory: String) -> Bool {
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return false }
        return files.contains { $0.hasPrefix("0001_") && $0.hasSuffix(".sql") }
    }

    private static func executableURL() -> URL {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: path)
        }
        return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
    }
}
