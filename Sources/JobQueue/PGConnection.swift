import CLibPQ
import Foundation
import Logging

/// One libpq connection. Calls block the calling thread until the server
/// answers, so use it from a dedicated OS thread, never from Swift
/// concurrency's cooperative pool; one thread at a time (libpq connections
/// are not safe for concurrent use, hence `@unchecked Sendable`: handing it
/// to another thread is fine, sharing it is not).
///
/// Reconnecting: after `PGError.connectionLost` call `reset()`, which
/// reopens the connection with the same parameters (it throws
/// `connectFailed` while the server is unreachable; retry with backoff),
/// then retry the operation. Whether the interrupted statement committed is
/// unknown, which is why the job operations are fenced and idempotent.
public final class PGConnection: @unchecked Sendable {
    /// Applied unless the connection string or a PG* variable sets them: a
    /// bounded connect, and a name that shows up in pg_stat_activity.
    public static let standardDefaults: [String: String] = [
        "connect_timeout": "10",
        "application_name": "hl-worker",
    ]

    private let connection: OpaquePointer
    private let logger: Logger
    /// Named statements prepared on this session; a new session (reset)
    /// starts with none.
    private var prepared: Set<String> = []

    /// Opens a connection. `conninfo` is a `postgres://` URL or a
    /// `key=value` string; nil or empty leaves everything to libpq's PG*
    /// variables and `.pgpass` (libpq does not read DATABASE_URL itself).
    public init(
        conninfo: String?,
        defaults: [String: String] = PGConnection.standardDefaults,
        logger: Logger = Logger(label: "hl.postgres")
    ) throws {
        let environmentSet = PGConnection.settingsFromEnvironment()
        var keywords: [String] = []
        var values: [String] = []
        // Array entries before the expanded `dbname` are overridden by the
        // connection string's own settings: defaults go there.
        for (key, value) in defaults.sorted(by: { $0.key < $1.key }) where !environmentSet.contains(key) {
            keywords.append(key)
            values.append(value)
        }
        if let conninfo, !conninfo.isEmpty {
            keywords.append("dbname")
            values.append(conninfo)
        }
        let opened = withCStringArray(keywords) { keywordPointers in
            withCStringArray(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let opened else {
            throw PGError.connectFailed(message: "libpq could not allocate a connection")
        }
        guard PQstatus(opened) == CONNECTION_OK else {
            let message = PGConnection.errorMessage(opened)
            PQfinish(opened)
            throw PGError.connectFailed(message: message)
        }
        connection = opened
        self.logger = logger
        // libpq prints server notices (e.g. "relation already exists,
        // skipping") to stderr by default; route them to the log instead.
        PQsetNoticeProcessor(opened, { context, message in
            guard let context, let message else { return }
            let owner = Unmanaged<PGConnection>.fromOpaque(context).takeUnretainedValue()
            let text = String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines)
            owner.logger.log(level: text.hasPrefix("WARNING") ? .warning : .debug, "\(text)")
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        PQfinish(connection)
    }

    public var isConnected: Bool { PQstatus(connection) == CONNECTION_OK }

    /// The server process serving this connection (pg_stat_activity.pid).
    public var backendPID: Int32 { PQbackendPID(connection) }

    /// Reopens the connection with the parameters it was opened with.
    public func reset() throws {
        prepared.removeAll()
        PQreset(connection)
        guard isConnected else {
            throw PGError.connectFailed(message: PGConnection.errorMessage(connection))
        }
    }

    /// Runs one statement with `$1`, `$2`, ... bound to `params` (text
    /// format; nil is NULL). The statement runs in its own transaction
    /// unless one is open.
    @discardableResult
    public func execute(_ sql: String, params: [String?] = []) throws -> PGResult {
        let label = PGConnection.label(sql)
        return try withParams(params.map(PGParam.init)) { count, values, lengths, formats in
            try check(PQexecParams(connection, sql, count, nil, values, lengths, formats, 0), statement: label)
        }
    }

    /// Runs `sql` as the named prepared statement `name`, preparing it on
    /// first use in this session, as a driver with a statement cache does:
    /// for a client (the benchmark) that sends one statement many times.
    @discardableResult
    public func executePrepared(name: String, sql: String, params: [String?] = []) throws -> PGResult {
        try execute(Query(name: name, sql: sql), params.map(PGParam.init))
    }

    /// Runs several statements separated by semicolons, without parameters:
    /// the simple-query protocol, which is what migration files need.
    public func executeScript(_ sql: String, name: String) throws {
        _ = try check(PQexec(connection, sql), statement: name)
    }

    /// Runs `body` inside BEGIN/COMMIT, rolling back if it throws.
    @discardableResult
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN")
        let value: T
        do {
            value = try body()
        } catch {
            if isConnected { _ = try? execute("ROLLBACK") }
            throw error
        }
        // A COMMIT that fails has ended the transaction all the same.
        try execute("COMMIT")
        return value
    }

    /// Runs a named statement from `Queries`, preparing it on first use in
    /// this session so the server parses and plans it once.
    @discardableResult
    func execute(_ query: Query, _ params: [PGParam]) throws -> PGResult {
        if !prepared.contains(query.name) {
            _ = try check(PQprepare(connection, query.name, query.sql, 0, nil), statement: query.name)
            prepared.insert(query.name)
        }
        let resultFormat: Int32 = query.binaryResult ? 1 : 0
        return try withParams(params) { count, values, lengths, formats in
            try check(
                PQexecPrepared(connection, query.name, count, values, lengths, formats, resultFormat),
                statement: query.name)
        }
    }

    /// Quotes a name (a LISTEN channel) for use as an SQL identifier.
    func quoteIdentifier(_ name: String) throws -> String {
        let utf8 = Array(name.utf8)
        guard let quoted = PQescapeIdentifier(connection, name, utf8.count) else {
            throw PGError.unexpectedResult(
                statement: "quote identifier", reason: PGConnection.errorMessage(connection))
        }
        defer { PQfreemem(quoted) }
        return String(cString: quoted)
    }

    // MARK: Notifications, for NotificationListener

    var socket: Int32 { PQsocket(connection) }

    /// Reads whatever the server has sent; false when the connection broke.
    func consumeInput() -> Bool {
        PQconsumeInput(connection) == 1 && isConnected
    }

    /// The next notification already read off the socket, if any.
    func nextNotification() -> (channel: String, payload: String)? {
        guard let notification = PQnotifies(connection) else { return nil }
        defer { PQfreemem(notification) }
        return (String(cString: notification.pointee.relname), String(cString: notification.pointee.extra))
    }

    var lastErrorMessage: String { PGConnection.errorMessage(connection) }

    // MARK: Connection strings

    /// Rewrites a connection string (URL or key=value) with some settings
    /// replaced, as a key=value string. Settings it does not name stay
    /// unset, so libpq still fills them from PG* variables.
    public static func conninfo(_ conninfo: String?, replacing settings: [String: String]) throws -> String {
        var parsed: [(String, String)] = []
        if let conninfo, !conninfo.isEmpty {
            var error: UnsafeMutablePointer<CChar>?
            guard let options = PQconninfoParse(conninfo, &error) else {
                let message = error.map { String(cString: $0) } ?? "out of memory"
                if let error { PQfreemem(error) }
                throw PGError.connectFailed(message: message.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            defer { PQconninfoFree(options) }
            var option = options
            while let keyword = option.pointee.keyword {
                if let value = option.pointee.val {
                    parsed.append((String(cString: keyword), String(cString: value)))
                }
                option += 1
            }
        }
        parsed.removeAll { settings[$0.0] != nil }
        parsed += settings.sorted { $0.key < $1.key }
        return parsed.map { key, value in
            let escaped = value.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "'", with: "\\'")
            return "\(key)='\(escaped)'"
        }.joined(separator: " ")
    }

    // MARK: Private

    /// The settings a PG* environment variable provides, which our defaults
    /// must not override.
    private static func settingsFromEnvironment() -> Set<String> {
        guard let options = PQconndefaults() else { return [] }
        defer { PQconninfoFree(options) }
        var set: Set<String> = []
        var option = options
        while let keyword = option.pointee.keyword {
            if let variable = option.pointee.envvar, getenv(variable) != nil {
                set.insert(String(cString: keyword))
            }
            option += 1
        }
        return set
    }

    private static func errorMessage(_ connection: OpaquePointer) -> String {
        String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A short name for ad-hoc SQL in errors and logs: its first line.
    private static func label(_ sql: String) -> String {
        let line = sql.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? sql
        return line.count > 60 ? String(line.prefix(60)) + "…" : line
    }

    private func check(_ result: OpaquePointer?, statement: String) throws -> PGResult {
        guard let result else {
            throw isConnected
                ? PGError.unexpectedResult(statement: statement, reason: lastErrorMessage)
                : PGError.connectionLost(statement: statement, message: lastErrorMessage)
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK:
            return PGResult(copying: result, statement: statement)
        case PGRES_FATAL_ERROR where !isConnected:
            throw PGError.connectionLost(statement: statement, message: lastErrorMessage)
        case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR:
            func field(_ code: Int32) -> String? {
                PQresultErrorField(result, code).map { String(cString: $0) }
            }
            throw PGError.queryFailed(
                statement: statement,
                sqlState: field(hl_pg_diag_sqlstate) ?? "",
                message: field(hl_pg_diag_message_primary) ?? lastErrorMessage,
                detail: field(hl_pg_diag_message_detail),
                hint: field(hl_pg_diag_message_hint))
        default:
            let status = String(cString: PQresStatus(PQresultStatus(result)))
            throw PGError.unexpectedResult(statement: statement, reason: "result status \(status)")
        }
    }

    /// Lays out parameters as libpq wants them: parallel C arrays of value
    /// pointers, lengths and formats (0 text, 1 binary), alive for `body`.
    private func withParams<T>(
        _ params: [PGParam],
        _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) throws -> T
    ) throws -> T {
        var buffers: [UnsafeMutableRawBufferPointer?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        defer { buffers.forEach { $0?.deallocate() } }
        for param in params {
            switch param {
            case .null:
                buffers.append(nil)
                lengths.append(0)
                formats.append(0)
            case .text(let text):
                // Text values are NUL-terminated C strings, so libpq would
                // cut a value at an embedded NUL (PostgreSQL text cannot hold
                // one anyway): a guest's message must not truncate an array
                // literal and fail a whole batch.
                var bytes = Array(text.utf8)
                if bytes.contains(0) {
                    bytes = Array(text.replacingOccurrences(of: "\0", with: "\u{FFFD}").utf8)
                }
                bytes.append(0)
                buffers.append(copy(bytes))
                lengths.append(Int32(bytes.count - 1))
                formats.append(0)
            case .bytes(let bytes):
                buffers.append(copy(bytes))
                lengths.append(Int32(bytes.count))
                formats.append(1)
            }
        }
        let values: [UnsafePointer<CChar>?] = buffers.map {
            $0.map { UnsafePointer($0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
        }
        return try values.withUnsafeBufferPointer { values in
            try lengths.withUnsafeBufferPointer { lengths in
                try formats.withUnsafeBufferPointer { formats in
                    try body(Int32(params.count), values.baseAddress, lengths.baseAddress, formats.baseAddress)
                }
            }
        }
    }

    private func copy(_ bytes: [UInt8]) -> UnsafeMutableRawBufferPointer {
        // At least one byte, so an empty value still has a valid address.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
        buffer.copyBytes(from: bytes)
        return buffer
    }
}

/// Runs `body` with a NULL-terminated array of C strings that live for the
/// duration of the call.
private func withCStringArray<T>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> T) -> T {
    let duplicates = strings.map { strdup($0) }
    defer { duplicates.forEach { free($0) } }
    let pointers = duplicates.map { UnsafePointer($0) } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
