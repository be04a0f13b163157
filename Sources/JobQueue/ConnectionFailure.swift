/// Whether a failure to reach or use the database can heal by waiting.
///
/// A server that is down, restarting, overloaded or unreachable comes back:
/// the worker waits and tries again. A wrong password, a missing database or
/// role, a malformed URL, or a schema the binary does not match never heals
/// by waiting, and an operator must act: the worker exits with one line
/// saying what to do.
public enum ConnectionFailure: Equatable, Sendable {
    /// Worth retrying; `reason` is a short, stable name for logging each
    /// change of state once ("refused", "timeout", "starting up", ...).
    case transient(reason: String)
    /// One actionable line.
    case permanent(String)
}

extension PGError {
    /// How start-up treats this error. libpq reports connection failures
    /// as text only (no SQLSTATE), so those are told apart by the server's
    /// and libpq's English messages; anything unrecognised counts as
    /// transient, which at worst keeps a worker waiting with a logged reason.
    public var connectionFailure: ConnectionFailure {
        switch self {
        case .connectFailed(let message):
            return PGError.classifyConnect(PGError.oneLine(message))
        case .connectionLost:
            return .transient(reason: "connection lost")
        case .queryFailed(_, let sqlState, let message, _, _):
            switch sqlState {
            // undefined_table, invalid_schema_name: nothing migrated.
            case "42P01", "3F000":
                return .permanent("the database has no hl-worker schema (\(message)); run: hl-worker migrate")
            // undefined_function: hl.schema_version, which start-up calls,
            // came with migration 0008.
            case "42883":
                return .permanent("the database schema is older than this hl-worker (\(message)); run: hl-worker migrate")
            // insufficient_privilege: a login without the hl_worker role.
            case "42501":
                return .permanent("\(message); grant the login the hl_worker role (see docs/operations.md)")
            // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections.
            case "57P01", "57P02", "57P03", "53300":
                return .transient(reason: "server restarting or busy")
            default:
                return .transient(reason: "query failed [\(sqlState)]")
            }
        case .unexpectedResult:
            return .transient(reason: "unexpected result")
        }
    }

    private static func classifyConnect(_ message: String) -> ConnectionFailure {
        let text = message.lowercased()
        func has(_ fragment: String) -> Bool { text.contains(fragment) }
        if has("password authentication failed") || has("authentication failed") || has("no password supplied")
            || has("no pg_hba.conf entry") || (has("role \"") && has("does not exist")) {
            return .permanent("PostgreSQL refused the login: \(message); check the user and password in DATABASE_URL")
        }
        if has("database \"") && has("does not exist") {
            return .permanent("\(message); create it (createdb) or correct the database name in DATABASE_URL")
        }
        if has("invalid connection option") || has("invalid uri") || has("missing \"=\"") || has("invalid integer value")
            || has("invalid port") || has("unterminated quoted string") || has("invalid percent-encoded")
            || has("invalid sslmode") || has("invalid value for parameter") {
            return .permanent("the database URL is malformed: \(message)")
        }
        if has("starting up") || has("shutting down") || has("in recovery") || has("too many clients")
            || has("not yet accepting connections") || has("restart") {
            return .transient(reason: "server starting, stopping or full")
        }
        if has("timeout expired") || has("timed out") {
            return .transient(reason: "timeout")
        }
        if has("connection refused") || has("no such file or directory") {
            return .transient(reason: "connection refused")
        }
        if has("could not translate host name") {
            return .transient(reason: "host name not resolved")
        }
        return .transient(reason: "cannot connect")
    }
}
