import CLibPQ
import Foundation

/// The rows of one statement, copied out of libpq's `PGresult` so that the
/// C object is cleared at once (`PQclear` in a `defer` at the call site) and
/// the rows can cross threads.
///
/// Values arrive in PostgreSQL's text format (or binary, for statements that
/// ask for it) and are parsed here, on access, by the column's expected type.
public struct PGResult: Sendable {
    /// The statement that produced it, for error messages.
    public let statement: String
    public let columns: [String]
    /// Rows returned (SELECT, RETURNING) or affected (UPDATE, DELETE, INSERT).
    public let affectedRows: Int
    let cells: [[UInt8]?]

    init(copying result: OpaquePointer, statement: String) {
        self.statement = statement
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var cells: [[UInt8]?] = []
        cells.reserveCapacity(rowCount * columnCount)
        for row in 0..<Int32(rowCount) {
            for column in 0..<Int32(columnCount) {
                if PQgetisnull(result, row, column) != 0 {
                    cells.append(nil)
                } else {
                    let length = Int(PQgetlength(result, row, column))
                    // SAFETY: libpq guarantees `length` readable bytes at the
                    // value pointer for as long as the result is not cleared.
                    let start = UnsafeRawPointer(PQgetvalue(result, row, column)!)
                    cells.append(Array(UnsafeRawBufferPointer(start: start, count: length)))
                }
            }
        }
        self.cells = cells
        let tuples = String(cString: PQcmdTuples(result))
        affectedRows = Int(tuples) ?? rowCount
    }

    public var rowCount: Int { columns.isEmpty ? 0 : cells.count / columns.count }

    public var rows: [PGRow] { (0..<rowCount).map { PGRow(result: self, index: $0) } }

    /// The first row; an error for a statement that promises one and returned none.
    public func singleRow() throws -> PGRow {
        guard rowCount >= 1 else {
            throw PGError.unexpectedResult(statement: statement, reason: "no row returned")
        }
        return PGRow(result: self, index: 0)
    }
}

/// One row of a `PGResult`. Accessors return nil for SQL NULL and throw
/// `PGError.unexpectedResult` for a value that does not parse as the type.
/// Column names come from this module's own statements, so an unknown name
/// is a programming error, not a runtime condition.
public struct PGRow: Sendable {
    let result: PGResult
    let index: Int

    public func bytes(_ column: String) -> [UInt8]? {
        guard let position = result.columns.firstIndex(of: column) else {
            preconditionFailure("\(result.statement) has no column \(column)")
        }
        return result.cells[index * result.columns.count + position]
    }

    public func string(_ column: String) -> String? {
        bytes(column).map { String(decoding: $0, as: UTF8.self) }
    }

    public func int64(_ column: String) throws -> Int64? {
        try parse(column, "a bigint") { Int64($0) }
    }

    public func int(_ column: String) throws -> Int? {
        try parse(column, "an integer") { Int($0) }
    }

    public func double(_ column: String) throws -> Double? {
        try parse(column, "a number") { Double($0) }
    }

    public func bool(_ column: String) throws -> Bool? {
        try parse(column, "a boolean") { $0 == "t" ? true : $0 == "f" ? false : nil }
    }

    /// A timestamp selected as `extract(epoch FROM ...)`: seconds since 1970
    /// parse the same whatever the session's DateStyle and TimeZone.
    public func date(_ column: String) throws -> Date? {
        try double(column).map { Date(timeIntervalSince1970: $0) }
    }

    /// The value, or an error naming the column when it is NULL.
    public func required<T>(_ column: String, _ accessor: (String) throws -> T?) throws -> T {
        guard let value = try accessor(column) else {
            throw PGError.unexpectedResult(statement: result.statement, reason: "\(column) is NULL")
        }
        return value
    }

    private func parse<T>(_ column: String, _ what: String, _ convert: (String) -> T?) throws -> T? {
        guard let text = string(column) else { return nil }
        guard let value = convert(text) else {
            throw PGError.unexpectedResult(
                statement: result.statement, reason: "\(column) = \(text) is not \(what)")
        }
        return value
    }
}
