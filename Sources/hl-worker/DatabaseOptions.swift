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
        databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"]
    }

    func connect() throws -> JobStore {
        do {
            return JobStore(connection: try PGConnection(conninfo: resolvedURL))
        } catch {
            throw CommandError(kind: "database", message: "\(error)")
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
