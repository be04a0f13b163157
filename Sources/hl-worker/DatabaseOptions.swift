import ArgumentParser
import Foundation
import JobQueue
import Sandbox

/// The database flag shared by every command that talks to PostgreSQL.
/// swift-argument-parser does not read the environment, so DATABASE_URL is
/// resolved here, after parsing; the URL never appears in --help.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"),
            help: ArgumentHelp("PostgreSQL URL (default: $DATABASE_URL, else libpq's PG* variables).", valueName: "url"))
    var databaseURL: String?

    var resolvedURL: String? {
        databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// libpq variables that say where the database is; with none of them
    /// and no URL, libpq would guess a local socket and this login's name.
    static let locatingVariables = ["PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE"]

    /// The URL to connect with, or a one-line `invalid_configuration` error
    /// for what connecting cannot fix: nothing configured at all, or a
    /// string libpq would silently take as a database name (`notaurl://x`).
    func checkedURL() throws -> String? {
        guard let url = resolvedURL else {
            let environment = ProcessInfo.processInfo.environment
            guard Self.locatingVariables.contains(where: { environment[$0] != nil }) else {
                throw CommandError(kind: "invalid_configuration",
                                   message: "no database configured: set DATABASE_URL (postgres://user:password@host/db) "
                                       + "or pass --database-url")
            }
            return nil
        }
        // libpq expands only postgres:// and postgresql:// URLs and
        // key=value strings; anything else becomes a database name.
        let isURL = url.hasPrefix("postgres://") || url.hasPrefix("postgresql://")
        guard isURL || (url.contains("=") && !url.contains("://")) else {
            throw CommandError(kind: "invalid_configuration",
                               message: "the database URL is malformed: it must start with postgres:// or postgresql:// "
                                   + "(or be key=value settings such as 'host=db dbname=jobs')")
        }
        return url
    }

    func connect() throws -> JobStore {
        let url = try checkedURL()
        do {
            return JobStore(connection: try PGConnection(conninfo: url))
        } catch let error as PGError {
            throw CommandError(kind: "database", message: Self.oneLine(error))
        }
    }

    /// What a command prints for a database failure: for a refused
    /// statement, the server's message and hint (constraint violations name
    /// their constraint) without the row dump of its detail.
    static func oneLine(_ error: PGError) -> String {
        switch error {
        case .queryFailed(_, let sqlState, let message, _, let hint):
            return PGError.oneLine(message + (hint.map { "; hint: \($0)" } ?? "") + " [SQLSTATE \(sqlState)]")
        case .connectFailed:
            if case .permanent(let line) = error.connectionFailure { return line }
            return error.description
        default:
            return error.description
        }
    }
}

/// Prints a failure as `kind: message` on stderr and exits 1, so scripts
/// get a clear line and never a crash dump.
func reportingFailures(_ body: () throws -> Void) throws {
    // Queued log lines go out before the failure line, and before exit.
    defer { LogSetup.flush() }
    do {
        try body()
    } catch let error as CommandError {
        LogSetup.flush()
        FileHandle.standardError.write(Data("\(error.kind): \(error.message)\n".utf8))
        throw ExitCode(1)
    } catch let error as SandboxError {
        LogSetup.flush()
        FileHandle.standardError.write(Data("\(error.kind): \(error.message)\n".utf8))
        throw ExitCode(1)
    } catch let error as ExitCode {
        throw error
    } catch {
        LogSetup.flush()
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}
