import Foundation

/// What went wrong talking to PostgreSQL.
///
/// `connectionLost` is the one a caller recovers from by reconnecting
/// (`PGConnection.reset()`) and retrying; `queryFailed` means the server
/// refused the statement and retrying it unchanged will fail again, unless
/// its SQLSTATE says otherwise (serialization failures, deadlocks).
public enum PGError: Error, Equatable, Sendable {
    /// The connection could not be opened; `message` is libpq's.
    case connectFailed(message: String)
    /// The server rejected a statement. `statement` names it (a `Query` name,
    /// or the first line of ad-hoc SQL) so logs say which one.
    case queryFailed(statement: String, sqlState: String, message: String, detail: String?, hint: String?)
    /// The connection broke before or during a statement; whether the
    /// statement took effect is unknown.
    case connectionLost(statement: String, message: String)
    /// The server answered, but not in the shape the statement promises.
    case unexpectedResult(statement: String, reason: String)

    /// The SQLSTATE of a server-side failure, nil for every other case.
    public var sqlState: String? {
        if case .queryFailed(_, let state, _, _, _) = self { return state }
        return nil
    }
}

extension PGError: CustomStringConvertible {
    /// Always one line: libpq's messages carry embedded newlines and tabs
    /// ("...failed: Connection refused\n\tIs the server running..."),
    /// which would split one log entry over several.
    public var description: String {
        PGError.oneLine(multiLineDescription)
    }

    /// Newlines and the whitespace around them become "; ".
    public static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .joined(separator: "; ")
    }

    private var multiLineDescription: String {
        switch self {
        case .connectFailed(let message):
            return "cannot connect to PostgreSQL: \(message) "
                + "(check DATABASE_URL or the PG* environment variables)"
        case .queryFailed(let statement, let sqlState, let message, let detail, let hint):
            var text = "\(statement) failed: \(message) [SQLSTATE \(sqlState)]"
            if let detail { text += "; \(detail)" }
            if let hint { text += "; hint: \(hint)" }
            return text
        case .connectionLost(let statement, let message):
            return "connection to PostgreSQL lost during \(statement): \(message)"
        case .unexpectedResult(let statement, let reason):
            return "\(statement) returned an unexpected result: \(reason)"
        }
    }
}
