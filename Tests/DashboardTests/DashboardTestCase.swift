import Dashboard
import Foundation
import HLTestSupport
import JobQueue
import XCTest

/// A dashboard server on a port of its own over a freshly migrated
/// database, reached over real HTTP. `start(as:)` picks the database role
/// it connects as.
class DashboardTestCase: XCTestCase {
    var database: TestDatabase!
    /// The test's own superuser connection, for setting rows up and
    /// checking what actions did.
    var admin: PGConnection!
    var servers: [DashboardServer] = []
    private var adminURL: String!
    /// Login roles made by this test; roles outlive databases.
    private var logins: [String] = []

    override func setUpWithError() throws {
        guard let adminURL = try TestDatabase.adminURL() else { throw XCTSkip(TestDatabase.skipMessage) }
        self.adminURL = adminURL
        database = try TestDatabase(adminURL: adminURL)
        admin = try database.connect()
    }

    override func tearDownWithError() throws {
        servers.forEach { $0.stop() }
        servers = []
        admin = nil
        try database?.drop()
        if let adminURL, !logins.isEmpty {
            let cluster = try PGConnection(conninfo: adminURL)
            for login in logins { try cluster.execute("DROP ROLE IF EXISTS \(login)") }
        }
    }

    /// A new login role in `group` (nil: the test's superuser).
    func login(in group: String?) throws -> String? {
        guard let group else { return nil }
        // Only [a-z0-9_]: safe to splice into SQL.
        let name = "hl_d_\(getpid())_\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        try admin.execute("CREATE ROLE \(name) LOGIN IN ROLE \(group)")
        logins.append(name)
        return name
    }

    /// Starts a dashboard connecting as a member of `group`.
    func start(as group: String?, configure: (inout DashboardConfiguration) -> Void = { _ in }) throws -> DashboardClient {
        var configuration = DashboardConfiguration()
        configuration.port = 0
        configuration.connections = 2
        if let role = try login(in: group) {
            configuration.databaseURL = try PGConnection.conninfo(database.url, replacing: ["user": role])
        } else {
            configuration.databaseURL = database.url
        }
        configure(&configuration)
        let server = try DashboardServer(configuration: configuration)
        servers.append(server)
        return DashboardClient(port: server.port)
    }

    // MARK: Rows

    @discardableResult
    func insertJobs(_ count: Int = 1, queue: String = "default", guest: String = "demo", function: String = "add",
                    args: String = "{}") throws -> [Int64] {
        try admin.execute(
            """
            INSERT INTO hl.jobs (queue, guest, function, args)
            SELECT $1, $2, $3, $4::jsonb FROM generate_series(1, $5::int) RETURNING id
            """, params: [queue, guest, function, args, String(count)]
        ).rows.map { try $0.required("id", $0.int64) }.sorted()
    }

    /// Ends a job discarded with one error, as a worker would have.
    func discard(_ id: Int64, kind: String = "guest_trap", message: String) throws {
        try admin.execute(
            """
            UPDATE hl.jobs SET state = 'discarded', attempt = 1, finished_at = now(), attempted_at = now(),
                attempted_by = 'w-test',
                errors = jsonb_build_array(jsonb_build_object('attempt', 1, 'at', now(), 'kind', $2::text,
                                                              'message', $3::text, 'worker', 'w-test'))
            WHERE id = $1::bigint
            """, params: [String(id), kind, message])
    }

    func state(of id: Int64) throws -> String? {
        try admin.execute("SELECT state FROM hl.jobs WHERE id = $1::bigint", params: [String(id)]).rows.first?.string("state")
    }

    func isPaused(_ queue: String) throws -> Bool {
        try admin.execute("SELECT count(*) AS n FROM hl.paused_queues WHERE queue = $1", params: [queue])
            .singleRow().int("n") == 1
    }

    /// The hidden form token a page carries.
    func formToken(in body: String) throws -> String {
        let marker = "name=\"csrf\" value=\""
        let start = try XCTUnwrap(body.range(of: marker), "no form on the page").upperBound
        return String(body[start...].prefix(64))
    }
}

/// A blocking HTTP/1.1 client over a real socket, one connection per
/// request, that keeps the cookies the server sets (like a browser would).
final class DashboardClient {
    let port: Int
    var cookies: [String: String] = [:]
    var authorization: String?

    init(port: Int) { self.port = port }

    struct Response {
        var status: Int
        var headers: [(String, String)]
        var body: String
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    func get(_ path: String, headers: [String: String] = [:]) throws -> Response {
        try send("GET", path, headers: headers)
    }

    func post(_ path: String, form: [String: String], headers: [String: String] = [:]) throws -> Response {
        let body = form.map { "\($0.key)=\(Self.encode($0.value))" }.joined(separator: "&")
        var all = headers
        all["Content-Type"] = "application/x-www-form-urlencoded"
        return try send("POST", path, headers: all, body: body)
    }

    static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    func send(_ method: String, _ path: String, headers: [String: String] = [:], body: String = "") throws -> Response {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        if !cookies.isEmpty { head += "Cookie: " + cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") + "\r\n" }
        if let authorization { head += "Authorization: \(authorization)\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(body.utf8.count)\r\n\r\n"
        let bytes = try exchange(Array((head + body).utf8))
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw ClientError(message: "no response head: \(text)") }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        guard let status = Int(lines[0].split(separator: " ").dropFirst().first ?? "") else {
            throw ClientError(message: "bad status line \(lines[0])")
        }
        let headers = lines.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        for (name, value) in headers where name.lowercased() == "set-cookie" {
            let pair = value.split(separator: ";")[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2 else { continue }
            if value.contains("Max-Age=0") { cookies[String(pair[0])] = nil } else { cookies[String(pair[0])] = String(pair[1]) }
        }
        return Response(status: status, headers: headers, body: String(text[split.upperBound...]))
    }

    struct ClientError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    private func exchange(_ request: [UInt8]) throws -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError(message: "socket: \(errno)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { throw ClientError(message: "connect to \(port): \(errno)") }
        var offset = 0
        while offset < request.count {
            let sent = request.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, request.count - offset, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw ClientError(message: "send: \(errno)") }
            offset += sent
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return received }
            guard count > 0 else { throw ClientError(message: "recv: \(errno)") }
            received += chunk[0..<count]
        }
    }
}
