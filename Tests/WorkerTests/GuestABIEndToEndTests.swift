import Foundation
import KVMTestSupport
import XCTest

/// The guest ABI through the command line and a real worker: `guest add`
/// refuses what is not an SDK guest (or whose init fails) and records the
/// functions of what is; a Rust guest and a guest with an init run jobs
/// inserted with SQL; final errors are discarded without retries.
final class GuestABIEndToEndTests: WorkerTestCase {
    // MARK: guest add

    func testGuestAddRefusesImagesThatAreNotSDKGuestsAndStoresNothing() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hl-abi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func write(_ name: String, _ bytes: [UInt8]) throws -> String {
            let path = directory.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }

        let hello = try Self.guestBytes("hello_c")
        let cases: [(path: String, expected: String)] = [
            (try Self.staticGlibcBinary(in: directory), "invalid_guest: not an hl-worker guest: it carries no hl-worker ABI note"),
            (try write("hlt.elf", Self.elf(code: [0xF4])), "invalid_guest: not an hl-worker guest: it carries no hl-worker ABI note"),
            (try write("v2.elf", Self.patchMarkerVersion(hello, to: 2)),
             "invalid_guest: not a usable hl-worker guest: it was built for guest ABI version 2"),
            (try write("init-crash.elf", Self.initGuest(mode: "crash")),
             "init_failed: the guest did not pass its trial run: init failed: guest_crash: "),
            (try write("init-final.elf", Self.initGuest(mode: "final")),
             "init_failed: the guest did not pass its trial run: init failed: guest_final_error: init found its configuration invalid"),
        ]
        for (path, expected) in cases {
            let (status, output) = try WorkerProcess.command(["guest", "add", "--database-url", database.url, "evil", path])
            XCTAssertEqual(status, 1, "\(path): \(output)")
            XCTAssertTrue(output.hasPrefix(expected), "\(path): \(output)")
            XCTAssertEqual(output.split(separator: "\n").count, 1, "one actionable line: \(output)")
        }
        XCTAssertEqual(try sql("SELECT count(*) AS n FROM hl.guests WHERE name = 'evil'").singleRow().int("n"), 0)
    }

    func testGuestAddAndGuestListShowEachGuestsFunctions() throws {
        let path = RepositoryPaths.guest("hello_rust").path
        let (status, output) = try WorkerProcess.command(["guest", "add", "--database-url", database.url, "rusty", path])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("\nfunctions: echo, add, square, panic, fail, crash, spawn\n"), output)
        try addGuest("demo")

        let stored = try sql("SELECT array_to_string(functions, ',') AS f FROM hl.guests WHERE name = 'rusty'").singleRow()
        XCTAssertEqual(stored.string("f"), "echo,add,square,panic,fail,crash,spawn")

        let (listStatus, list) = try WorkerProcess.command(["guest", "list", "--database-url", database.url])
        XCTAssertEqual(listStatus, 0, list)
        let lines = list.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("rusty\t") && $0.hasSuffix("\techo,add,square,panic,fail,crash,spawn") }, list)
        XCTAssertTrue(lines.contains { $0.hasPrefix("demo\t") && $0.contains("\techo,add,fib,") }, list)

        // A row written straight into hl.guests has no list: it says so.
        try sql("INSERT INTO hl.guests (name, image) SELECT 'copied', image FROM hl.guests WHERE name = 'demo'")
        let (_, again) = try WorkerProcess.command(["guest", "list", "--database-url", database.url])
        XCTAssertTrue(again.contains("(functions not listed)"), again)
    }

    // MARK: Jobs

    func testRustGuestJobsRunInFreshAndRecycledVMs() throws {
        try addGuest("rusty", elf: "hello_rust")
        var added: [Int64] = [], squared: [Int64] = []
        for vm in ["fresh", "recycled"] {
            added.append(try insertJob("add", args: #"{"a": 40, "b": 2}"#, guest: "rusty", vm: vm))
            squared.append(try insertJob("square", args: #"{"n": 11}"#, guest: "rusty", vm: vm))
        }
        let panic = try insertJob("panic", args: #"{"index": 9}"#, guest: "rusty", maxAttempts: 1)
        let final = try insertJob("fail", args: #"{"final": 1}"#, guest: "rusty", maxAttempts: 5)
        let unknown = try insertJob("nosuch", guest: "rusty", maxAttempts: 5)
        let worker = try startWorker()
        try waitUntilAllFinal()

        for id in added { try assertCompleted(id, result: #"{"sum": 42}"#) }
        for id in squared { try assertCompleted(id, result: #"{"square": 121}"#) }
        try assertDiscarded(panic, kind: "guest_error", by: worker)
        let message = try XCTUnwrap(try job(panic).errors.first?["message"] as? String)
        XCTAssertTrue(message.hasPrefix("panicked at ") && message.contains("lib.rs:")
                      && message.hasSuffix("index out of bounds: the len is 3 but the index is 9"), message)
        // Final: one attempt of five, no retry.
        try assertDiscarded(final, kind: "guest_final_error", by: worker)
        XCTAssertEqual(try job(final).errors.first?["message"] as? String, "this request can never succeed")
        try assertDiscarded(unknown, kind: "unknown_function", by: worker)
        XCTAssertEqual(try job(unknown).errors.first?["message"] as? String,
                       "unknown function 'nosuch'; this guest has: echo, add, square, panic, fail, crash, spawn")
        worker.terminate()
    }

    /// serde_json from Debian's crate packages, inside a guest.
    func testARustGuestUsingSerdeJSONRunsJobs() throws {
        try addGuest("json_rust")
        let stats = try insertJob("stats", args: #"{"numbers": [1, 2.5, -3]}"#, guest: "json_rust")
        let keys = try insertJob("keys", args: #"{"b": 1, "a": {"c": 2}}"#, guest: "json_rust", vm: "recycled")
        let bad = try insertJob("stats", args: #"{"numbers": [1, "x"]}"#, guest: "json_rust", maxAttempts: 3)
        let worker = try startWorker()
        try waitUntilAllFinal()
        try assertCompleted(stats, result: #"{"count": 3, "sum": 0.5, "min": -3.0, "max": 2.5}"#)
        try assertCompleted(keys, result: #"["a", "b"]"#)
        try assertDiscarded(bad, kind: "guest_final_error", by: worker)
        worker.terminate()
    }

    /// Every job in a recycled VM starts from what init left (the counter
    /// at 100), and init ran once in that memory.
    func testJobsInRecycledVMsStartFromWhatInitLeft() throws {
        try addGuest("init_c")
        let bumps = try (0..<6).map { _ in try insertJob("bump", guest: "init_c", vm: "recycled") }
        let inits = try insertJob("inits", guest: "init_c", vm: "recycled")
        let fresh = try insertJob("cube", args: #"{"n": 4}"#, guest: "init_c", vm: "fresh")
        let worker = try startWorker(concurrency: 1)
        try waitUntilAllFinal()
        for id in bumps { try assertCompleted(id, result: #"{"counter": 101}"#) }
        try assertCompleted(inits, result: #"{"inits": 1}"#)
        try assertCompleted(fresh, result: #"{"cube": 64}"#)
        worker.terminate()
    }

    /// A guest whose init fails (written straight into hl.guests, past
    /// `guest add`'s trial run) fails its jobs as init_failed: retried,
    /// then discarded; a final error in init discards at once.
    func testJobsOfAGuestWhoseInitFailsEndAsInitFailed() throws {
        for (name, mode) in [("initfail", "fail"), ("initfinal", "final")] {
            try sql("INSERT INTO hl.guests (name, image) VALUES ($1, decode($2, 'hex'))",
                    [name, Self.initGuest(mode: mode).map { String(format: "%02x", $0) }.joined()])
        }
        let retried = try insertJob("cube", args: #"{"n": 1}"#, guest: "initfail", maxAttempts: 2)
        let final = try insertJob("cube", args: #"{"n": 1}"#, guest: "initfinal", maxAttempts: 5)
        let worker = try startWorker()
        try waitUntilAllFinal(timeout: 60)
        try assertDiscarded(retried, kind: "init_failed", attempts: 2, by: worker)
        XCTAssertEqual(try job(retried).errors.first?["message"] as? String,
                       "init failed: guest_error: init could not reach its configuration")
        try assertDiscarded(final, kind: "init_failed", by: worker)
        worker.terminate()
    }

    // MARK: Helpers

    static func guestBytes(_ name: String) throws -> [UInt8] {
        Array(try XCTUnwrap(FileManager.default.contents(atPath: RepositoryPaths.guest(name).path), "run guests/build.sh"))
    }

    static func find(_ needle: String, in bytes: [UInt8]) throws -> Int {
        let pattern = Array(needle.utf8)
        return try XCTUnwrap((0...(bytes.count - pattern.count)).first {
            bytes[$0..<($0 + pattern.count)].elementsEqual(pattern)
        }, "\(needle) not found")
    }

    static func patchMarkerVersion(_ bytes: [UInt8], to version: UInt8) throws -> [UInt8] {
        var bytes = bytes
        bytes[try find("hl-worker\0\0\0", in: bytes) + 12] = version
        return bytes
    }

    /// init_c with its test-only init mode patched (see its source).
    static func initGuest(mode: String) throws -> [UInt8] {
        var bytes = try guestBytes("init_c")
        let at = try find("HL-TEST-INIT-MODE:ok", in: bytes) + "HL-TEST-INIT-MODE:".utf8.count
        for i in 0..<14 { bytes[at + i] = 0 }
        for (i, byte) in mode.utf8.enumerated() { bytes[at + i] = byte }
        return bytes
    }

    /// An ordinary static Linux program, as a tenant might upload by mistake.
    static func staticGlibcBinary(in directory: URL) throws -> String {
        let source = directory.appendingPathComponent("hello.c")
        try Data("#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n".utf8).write(to: source)
        let output = directory.appendingPathComponent("hello-static").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["cc", "-static", "-O1", "-o", output, source.path]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "cc -static (gcc and libc6-dev; .ci/run installs them)")
        return output
    }

    /// A one-segment static ELF around raw code: what no SDK produces.
    static func elf(code: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 0x1000 + code.count)
        func put<T: FixedWidthInteger>(_ value: T, _ at: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { out[at + i] = b } }
        }
        out[0] = 0x7F; out[1] = 0x45; out[2] = 0x4C; out[3] = 0x46; out[4] = 2; out[5] = 1; out[6] = 1
        put(UInt16(2), 16); put(UInt16(62), 18); put(UInt32(1), 20); put(UInt64(0x200000), 24)
        put(UInt64(64), 32); put(UInt16(64), 52); put(UInt16(56), 54); put(UInt16(1), 56)
        put(UInt32(1), 64); put(UInt32(5), 68); put(UInt64(0x1000), 72); put(UInt64(0x200000), 80)
        put(UInt64(0x200000), 88); put(UInt64(code.count), 96); put(UInt64(code.count), 104); put(UInt64(0x1000), 112)
        for (i, byte) in code.enumerated() { out[0x1000 + i] = byte }
        return out
    }
}
