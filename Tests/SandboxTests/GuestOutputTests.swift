import Foundation
import Logging
import Sandbox
import XCTest

/// What reaches the host from a guest besides its result: log lines and
/// error messages. Deadlines hold whatever the log's destination does, log
/// bytes are budgeted per call, and the text is escaped.
final class GuestOutputTests: SandboxTestCase {
    private func sandbox(_ guest: String, handler: some LogHandler,
                         configuration: SandboxConfiguration = .init()) throws -> Sandbox {
        try Sandbox(kvm: kvm(), image: guestImage(guest), configuration: configuration,
                    logger: Logger(label: "test.guest") { _ in handler })
    }

    private func guestLines(_ lines: Locked<[CapturingLogHandler.Line]>) -> [CapturingLogHandler.Line] {
        XCTAssertTrue(LogQueue.guestLines.flush(timeout: 30), "guest log lines still queued after 30 s")
        return lines.value.filter { $0.metadata["origin"] == "guest" }
    }

    private func hostLines(_ lines: Locked<[CapturingLogHandler.Line]>) -> [CapturingLogHandler.Line] {
        XCTAssertTrue(LogQueue.guestLines.flush(timeout: 30), "guest log lines still queued after 30 s")
        return lines.value.filter { $0.metadata["origin"] == "host" }
    }

    /// The log's destination stalls (as a stderr pipe nobody reads does)
    /// while the guest logs as fast as it can: the 500 ms timeout still ends
    /// the call, and the next call runs.
    func testATimeoutHoldsWhileTheLogDestinationIsStalled() throws {
        let released = Locked(false)
        defer { released.update { $0 = true } }
        // The stall ends by itself after 20 s, so code that waits on it
        // fails this test late instead of hanging the suite.
        let stalled = StalledLogHandler(released: released, stallUntil: Date(timeIntervalSinceNow: 20))
        let sandbox = try sandbox("hello_c", handler: stalled)
        let started = Date()
        XCTAssertThrowsError(try sandbox.call("log_flood", input: Array(#"{"lines": 5000, "bytes": 200, "spin": 1}"#.utf8),
                                              limits: CallLimits(timeoutMilliseconds: 500, maxLogBytes: 100 << 20))) { error in
            XCTAssertEqual(error as? SandboxError, .timeout(milliseconds: 500))
        }
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertLessThan(elapsed, 5, "a 500 ms call ran \(elapsed) s while the log was stalled")

        // Still stalled: another guest in another sandbox runs normally.
        XCTAssertEqual(try self.sandbox("hello_c", handler: stalled)
                        .call("add", input: Array(#"{"a": 1, "b": 2}"#.utf8)), Array(#"{"sum":3}"#.utf8))
        released.update { $0 = true }
        XCTAssertTrue(LogQueue.guestLines.flush(timeout: 30))
    }

    /// A call that logs far more than its budget writes at most the budget,
    /// plus one line saying it was truncated, and still returns its result.
    func testACallLogsAtMostItsBudgetAndOneTruncationLine() throws {
        let lines = Locked<[CapturingLogHandler.Line]>([])
        let sandbox = try sandbox("hello_c", handler: CapturingLogHandler(lines: lines))
        let result = try sandbox.call("log_flood", input: Array(#"{"lines": 1000, "bytes": 200}"#.utf8),
                                      limits: CallLimits(maxLogBytes: 4096))
        XCTAssertEqual(result, Array(#"{"lines":1000}"#.utf8), "the call goes on past its log budget")
        let written = guestLines(lines)
        XCTAssertEqual(written.count, 20, "20 lines of 200 bytes fit in 4096")
        XCTAssertLessThanOrEqual(written.map(\.message.utf8.count).reduce(0, +), 4096)
        let notices = hostLines(lines)
        XCTAssertEqual(notices.count, 1, "\(notices.map(\.message))")
        XCTAssertTrue(notices.first?.message.contains("guest log truncated") ?? false, "\(notices.map(\.message))")
        XCTAssertEqual(notices.first?.level, .warning)
    }

    /// Each call of a recycled sandbox gets the whole budget again.
    func testTheBudgetIsPerCall() throws {
        let lines = Locked<[CapturingLogHandler.Line]>([])
        let sandbox = try sandbox("hello_c", handler: CapturingLogHandler(lines: lines),
                                  configuration: SandboxConfiguration(recyclable: true))
        for _ in 0..<2 {
            _ = try sandbox.call("log_flood", input: Array(#"{"lines": 10, "bytes": 100}"#.utf8),
                                 limits: CallLimits(maxLogBytes: 500))
            try sandbox.reset()
        }
        XCTAssertEqual(guestLines(lines).count, 10, "5 lines per call")
        XCTAssertEqual(hostLines(lines).count, 2, "one truncation line per call")
    }

    /// Lines below the logger's level are dropped before they are queued,
    /// and do not use up the budget.
    func testLinesBelowTheConfiguredLevelAreNotLoggedNorCharged() throws {
        let lines = Locked<[CapturingLogHandler.Line]>([])
        var handler = CapturingLogHandler(lines: lines)
        handler.logLevel = .warning
        let sandbox = try sandbox("hello_c", handler: handler, configuration: SandboxConfiguration(recyclable: true))
        let limits = CallLimits(maxLogBytes: 1000)
        _ = try sandbox.call("log_flood", input: Array(#"{"lines": 100, "bytes": 100, "level": 1}"#.utf8), limits: limits)
        XCTAssertEqual(guestLines(lines).count, 0, "INFO lines under a WARNING level")
        XCTAssertEqual(hostLines(lines).count, 0, "filtered lines do not use up the budget")
        try sandbox.reset()
        _ = try sandbox.call("log_flood", input: Array(#"{"lines": 3, "bytes": 100, "level": 3}"#.utf8), limits: limits)
        XCTAssertEqual(guestLines(lines).map(\.level), [.error, .error, .error])
    }

    static let hostile = "a\u{202E}b\u{2028}c\u{2029}d\u{FEFF}e\u{200B}f\u{2066}g\nh"
    static let hostileEscaped = #"a\u{202E}b\u{2028}c\u{2029}d\u{FEFF}e\u{200B}f\u{2066}g\nh"#
    /// The hostile text as a JSON string literal, every character escaped.
    static let hostileJSON = "\"" + hostile.unicodeScalars.map { "\\u" + String(format: "%04X", $0.value) }.joined() + "\""

    func testAGuestErrorMessageComesBackEscaped() throws {
        let error = try expectFailure("guest_error", "fail", "{\"message\": \(Self.hostileJSON)}")
        XCTAssertEqual(error?.message, Self.hostileEscaped)
    }

    func testAGuestLogLineIsEscaped() throws {
        let lines = Locked<[CapturingLogHandler.Line]>([])
        let sandbox = try sandbox("demo", handler: CapturingLogHandler(lines: lines))
        _ = try sandbox.call("log", input: Array("{\"message\": \(Self.hostileJSON)}".utf8))
        XCTAssertEqual(guestLines(lines).map(\.message), [Self.hostileEscaped])
    }
}
