import Foundation
import XCTest

/// Headless Chromium (Debian's `chromium`) driven over the DevTools
/// protocol: load a page, read the DOM it rendered (after its script ran),
/// take a screenshot, click. One browser per test, with a profile of its
/// own that is removed afterwards.
final class Browser {
    struct Failure: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    private let process: Process
    private let profile: URL
    private let socket: WebSocket
    private var nextID = 1
    /// Events that arrived while waiting for a reply, oldest first.
    private var events: [[String: Any]] = []

    /// The browser binary, or nil when none is installed.
    static var executable: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Skips the test when no browser is installed, unless
    /// HL_REQUIRE_BROWSER=1 (CI), where that is a failure.
    static func launch() throws -> Browser {
        guard let executable else {
            if ProcessInfo.processInfo.environment["HL_REQUIRE_BROWSER"] == "1" {
                throw Failure(message: "HL_REQUIRE_BROWSER=1 but chromium is not installed (apt-get install chromium)")
            }
            throw XCTSkip("chromium is not installed (apt-get install chromium); HL_REQUIRE_BROWSER=1 makes this a failure")
        }
        return try Browser(executable: executable)
    }

    private init(executable: String) throws {
        profile = FileManager.default.temporaryDirectory.appendingPathComponent("hl-chromium-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: profile, withIntermediateDirectories: true)
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        process.arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", "--disable-sync", "--mute-audio",
            "--hide-scrollbars", "--remote-debugging-port=0", "--remote-allow-origins=*",
            "--user-data-dir=\(profile.path)", "--window-size=1280,900", "about:blank",
        ]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        var port: Int?
        var seen = Data()
        let deadline = Date().addingTimeInterval(60)
        while port == nil, Date() < deadline {
            let chunk = errors.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen.append(chunk)
            let text = String(decoding: seen, as: UTF8.self)
            if let range = text.range(of: "DevTools listening on ws://127.0.0.1:") {
                port = Int(text[range.upperBound...].prefix { $0.isNumber })
            }
        }
        guard let port else {
            process.terminate()
            throw Failure(message: "chromium did not open its DevTools port: \(String(decoding: seen, as: UTF8.self))")
        }
        // Keep draining its stderr so that it never blocks on a full pipe.
        errors.fileHandleForReading.readabilityHandler = { _ = $0.availableData }
        let list = try Browser.httpGet(port: port, path: "/json/list")
        guard let targets = try JSONSerialization.jsonObject(with: Data(list.utf8)) as? [[String: Any]],
              let page = targets.first(where: { $0["type"] as? String == "page" }),
              let url = page["webSocketDebuggerUrl"] as? String, let path = URL(string: url)?.path
        else { throw Failure(message: "no page target in \(list)") }
        socket = try WebSocket(port: port, path: path)
        _ = try call("Page.enable")
        _ = try call("Runtime.enable")
        _ = try call("Emulation.setDeviceMetricsOverride",
                     ["width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false])
    }

    deinit {
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: profile)
    }

    /// Sends one command and returns its result.
    @discardableResult
    func call(_ method: String, _ params: [String: Any] = [:]) throws -> [String: Any] {
        let id = nextID
        nextID += 1
        let message = try JSONSerialization.data(withJSONObject: ["id": id, "method": method, "params": params])
        try socket.send(text: message)
        while true {
            let reply = try socket.receive()
            guard let object = try JSONSerialization.jsonObject(with: reply) as? [String: Any] else { continue }
            if object["id"] as? Int == id {
                if let error = object["error"] { throw Failure(message: "\(method): \(error)") }
                return object["result"] as? [String: Any] ?? [:]
            }
            events.append(object)
        }
    }

    /// Waits for an event, including one that came while waiting for a reply.
    func wait(for method: String, timeout: TimeInterval = 30) throws {
        if let index = events.firstIndex(where: { $0["method"] as? String == method }) {
            events.removeSubrange(...index)
            return
        }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let message = try socket.receive()
            if let object = try JSONSerialization.jsonObject(with: message) as? [String: Any],
               object["method"] as? String == method {
                return
            }
        }
        throw Failure(message: "no \(method) within \(timeout) s")
    }

    /// Loads a page and waits until it has loaded (its deferred script has run).
    func open(_ url: String) throws {
        events.removeAll()
        let result = try call("Page.navigate", ["url": url])
        if let error = result["errorText"] as? String { throw Failure(message: "\(url): \(error)") }
        try wait(for: "Page.loadEventFired")
    }

    /// Evaluates JavaScript in the page; returns its value.
    func evaluate(_ expression: String) throws -> Any? {
        let result = try call("Runtime.evaluate", ["expression": expression, "returnByValue": true, "awaitPromise": true])
        if let exception = result["exceptionDetails"] { throw Failure(message: "\(expression): \(exception)") }
        return (result["result"] as? [String: Any])?["value"]
    }

    /// The DOM as the browser holds it now.
    func dom() throws -> String {
        try evaluate("document.documentElement.outerHTML") as? String ?? ""
    }

    /// A PNG of the whole page.
    func screenshot() throws -> Data {
        let result = try call("Page.captureScreenshot", ["format": "png", "captureBeyondViewport": true])
        guard let base64 = result["data"] as? String, let data = Data(base64Encoded: base64) else {
            throw Failure(message: "no screenshot data")
        }
        return data
    }

    private static func httpGet(port: Int, path: String) throws -> String {
        let connection = try TCPConnection(port: port)
        try connection.send(Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8))
        // The DevTools server keeps the connection open: read what
        // Content-Length says.
        let head = try connection.readHead()
        guard let line = head.components(separatedBy: "\r\n").first(where: { $0.lowercased().hasPrefix("content-length:") }),
              let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
        else { throw Failure(message: "bad reply from DevTools: \(head)") }
        return String(decoding: try connection.read(length), as: UTF8.self)
    }
}

/// A blocking TCP connection to 127.0.0.1.
final class TCPConnection {
    let fd: Int32
    private var buffered: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Browser.Failure(message: "socket: \(errno)") }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            close(fd)
            throw Browser.Failure(message: "connect to \(port): \(errno)")
        }
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw Browser.Failure(message: "send: \(errno)") }
            offset += sent
        }
    }

    /// Exactly `count` bytes.
    func read(_ count: Int) throws -> [UInt8] {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while buffered.count < count {
            let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard received > 0 else { throw Browser.Failure(message: "recv: \(received == 0 ? "closed" : "errno \(errno)")") }
            buffered += chunk[0..<received]
        }
        let bytes = Array(buffered[0..<count])
        buffered.removeFirst(count)
        return bytes
    }

    /// Up to and including the blank line that ends an HTTP head.
    func readHead() throws -> String {
        var head: [UInt8] = []
        while !(head.count >= 4 && Array(head.suffix(4)) == [13, 10, 13, 10]) { head += try read(1) }
        return String(decoding: head, as: UTF8.self)
    }

    func readToEnd() throws -> [UInt8] {
        var all = buffered
        buffered = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received == 0 { return all }
            guard received > 0 else { throw Browser.Failure(message: "recv: \(errno)") }
            all += chunk[0..<received]
        }
    }
}

/// The client side of RFC 6455, as much as the DevTools protocol needs:
/// text messages out (masked), text messages in (possibly fragmented).
final class WebSocket {
    private let connection: TCPConnection

    init(port: Int, path: String) throws {
        connection = try TCPConnection(port: port)
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        try connection.send(Array("""
            GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n
            """.utf8))
        let head = try connection.readHead()
        guard head.hasPrefix("HTTP/1.1 101") else { throw Browser.Failure(message: "websocket upgrade refused: \(head)") }
    }

    func send(text payload: Data) throws {
        var frame: [UInt8] = [0x81]
        let count = payload.count
        if count < 126 {
            frame.append(0x80 | UInt8(count))
        } else if count < 65536 {
            frame.append(0x80 | 126)
            frame += [UInt8(count >> 8), UInt8(count & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            frame += (0..<8).reversed().map { UInt8((count >> ($0 * 8)) & 0xFF) }
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        try connection.send(frame)
    }

    /// The next whole text message.
    func receive() throws -> Data {
        var message: [UInt8] = []
        while true {
            let head = try connection.read(2)
            let final = head[0] & 0x80 != 0
            let opcode = head[0] & 0x0F
            var length = Int(head[1] & 0x7F)
            if length == 126 {
                length = try connection.read(2).reduce(0) { $0 << 8 | Int($1) }
            } else if length == 127 {
                length = try connection.read(8).reduce(0) { $0 << 8 | Int($1) }
            }
            let payload = length > 0 ? try connection.read(length) : []
            switch opcode {
            case 0x8: throw Browser.Failure(message: "the browser closed the DevTools connection")
            case 0x9, 0xA: continue  // ping, pong: the browser sends none unasked
            default: message += payload
            }
            if final { return Data(message) }
        }
    }
}
