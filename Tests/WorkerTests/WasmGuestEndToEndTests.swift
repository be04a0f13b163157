import Foundation
import KVMTestSupport
import XCTest

/// Wasm guests as users meet them: C (with wasi-libc) and Embedded Swift
/// compiled to wasm32 and through wasm2c by guests/build.sh, registered
/// with `guest add`, run by a worker from rows inserted with SQL, in fresh
/// and recycled VMs; traps end jobs as guest errors that name them.
final class WasmGuestEndToEndTests: WorkerTestCase {
    static let wasmGuests = ["compute_wasm", "wasi_wasm", "demo_wasm", "traps_wasm"]

    override func setUpWithError() throws {
        try super.setUpWithError()
        for guest in Self.wasmGuests where !FileManager.default.fileExists(atPath: RepositoryPaths.guest(guest).path) {
            let reason = "\(RepositoryPaths.guest(guest).path) is missing; run guests/build.sh"
            if KVMRequirement.isRequired { XCTFail(reason) }
            throw XCTSkip(reason)
        }
        for guest in Self.wasmGuests { try addGuest(guest) }
    }

    func testCAndSwiftWasmGuestsCompleteJobsFromSQL() throws {
        let worker = try startWorker(concurrency: 2)
        var expected: [(Int64, String)] = []
        for vm in ["fresh", "recycled"] {
            expected += [
                (try insertJob("fib", args: #"{"n":20}"#, guest: "compute_wasm", vm: vm), #"{"fib":6765}"#),
                (try insertJob("sha256", args: #"{"kib":1024}"#, guest: "compute_wasm", vm: vm),
                 #"{"hex":"fbbab289f7f94b25736c58be46a994c441fd02552cc6022352e3d86d2fab7c83"}"#),
                (try insertJob("sort", args: #"{"numbers":"5 3 -1 10 2"}"#, guest: "wasi_wasm", vm: vm),
                 #"{"sorted":"-1 2 3 5 10"}"#),
                (try insertJob("hello", args: #"{"name":"sql"}"#, guest: "wasi_wasm", vm: vm), "{}"),
                (try insertJob("add", args: #"{"a":40,"b":2}"#, guest: "demo_wasm", vm: vm), #"{"sum":42}"#),
                (try insertJob("sha256", args: #"{"text":"abc"}"#, guest: "demo_wasm", vm: vm),
                 #"{"hex":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}"#),
            ]
        }
        for (id, _) in expected { try waitUntilFinal(id) }
        for (id, result) in expected { try assertCompleted(id, result: result) }
        // printf's line reached the worker's log as the guest's.
        try waitUntil("the Wasm guest's printf line reaches the worker's log") {
            (try? String(contentsOf: worker.logURL, encoding: .utf8))?.contains("hello, sql") ?? false
        }
    }

    func testEveryTrapEndsItsJobAsAGuestErrorNamingTheTrap() throws {
        let worker = try startWorker(concurrency: 2)
        let traps = [
            ("out_of_bounds", "{}", "wasm trap: out of bounds memory access"),
            ("divide_by_zero", "{}", "wasm trap: integer divide by zero"),
            ("overflow", "{}", "wasm trap: integer overflow"),
            ("unreachable", "{}", "wasm trap: unreachable executed"),
            ("recurse", "{}", "wasm trap: call stack exhausted"),
            ("bad_pointer", "{}", "wasm trap: bad pointer handed to the host"),
            ("bad_enqueue", "{}", "wasm trap: bad pointer handed to the host (hl.enqueue: "),
            ("grow", #"{"pages":60000}"#, "wasm trap: memory.grow past the guest's memory"),
        ]
        var jobs: [(Int64, String)] = []
        for (function, args, message) in traps {
            for vm in ["fresh", "recycled"] {
                jobs.append((try insertJob(function, args: args, guest: "traps_wasm", maxAttempts: 1, vm: vm), message))
            }
        }
        let exited = try insertJob("exit", args: #"{"status":3}"#, guest: "wasi_wasm", maxAttempts: 1)
        for (id, _) in jobs { try waitUntilFinal(id) }
        for (id, message) in jobs {
            try assertDiscarded(id, kind: "guest_error", by: worker)
            let text = try job(id).errors.first?["message"] as? String ?? ""
            XCTAssertTrue(text.hasPrefix(message), "job \(id): \(text)")
        }
        // bad_enqueue enqueued a job before it trapped: a call that fails
        // enqueues nothing.
        XCTAssertEqual(try sql("SELECT count(*) AS n FROM hl.jobs WHERE parent_id IS NOT NULL").singleRow().int("n"), 0)
        try waitUntilFinal(exited)
        try assertDiscarded(exited, kind: "guest_error", by: worker)
        XCTAssertEqual(try job(exited).errors.first?["message"] as? String, "wasm module exited with status 3")
        // After all of those, a recycled VM still answers from a clean instance.
        let after = try insertJob("counter", guest: "traps_wasm", vm: "recycled")
        try waitUntilFinal(after)
        try assertCompleted(after, result: #"{"count":1}"#)
        XCTAssertTrue(worker.isRunning)
    }

    /// `guest add` lists a Wasm guest's functions like any other's, and
    /// refuses a .wasm module with the command that builds it.
    func testGuestAddListsWasmFunctionsAndExplainsHowToBuildAModule() throws {
        let (status, output) = try WorkerProcess.command(["guest", "add", "--database-url", database.url, "compute_wasm",
                                                          RepositoryPaths.guest("compute_wasm").path])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("functions: fib, sha256, noop"), output)

        let module = FileManager.default.temporaryDirectory.appendingPathComponent("hl-\(UUID().uuidString).wasm")
        defer { try? FileManager.default.removeItem(at: module) }
        // The smallest module there is: its magic and version.
        try Data([0x00, 0x61, 0x73, 0x6D, 0x01, 0x00, 0x00, 0x00]).write(to: module)
        let (refused, message) = try WorkerProcess.command(["guest", "add", "--database-url", database.url, "mod", module.path])
        XCTAssertNotEqual(refused, 0, message)
        XCTAssertTrue(message.contains("is a WebAssembly module, not a guest ELF"), message)
        XCTAssertTrue(message.contains("guests/build.sh \(module.path) -o mod.elf"), message)
        XCTAssertEqual(try sql("SELECT 1 FROM hl.guests WHERE name = 'mod'").rowCount, 0)
    }
}
