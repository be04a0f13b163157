import Foundation
import KVMTestSupport
import MicroVM
import Sandbox
import XCTest

/// Wasm modules compiled ahead of time (guests/sdk/wasm): the same source
/// gives the same results natively and through Wasm, and every trap ends
/// the call as a guest error that names it, never as a fault the host sees.
final class WasmGuestTests: SandboxTestCase {
    override func setUpWithError() throws {
        _ = try kvm()
        for guest in ["compute", "compute_wasm", "traps_wasm", "wasi_wasm", "demo_wasm"] {
            _ = try guestImage(guest)
        }
    }

    func testTheSameCSourceGivesTheSameResultsNativelyAndThroughWasm() throws {
        for (function, args) in [("fib", #"{"n":25}"#), ("sha256", #"{"text":"abc"}"#), ("sha256", #"{"kib":1024}"#),
                                 ("noop", "{}")] {
            let native = try call(function, args, guest: "compute")
            XCTAssertEqual(try call(function, args, guest: "compute_wasm"), native, "\(function) \(args)")
        }
        XCTAssertEqual(try call("fib", #"{"n":25}"#, guest: "compute_wasm"), #"{"fib":75025}"#)
        XCTAssertEqual(try call("sha256", #"{"text":"abc"}"#, guest: "compute_wasm"),
                       #"{"hex":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}"#)
        let error = try expectFailure("guest_error", "fib", #"{"n":41}"#, guest: "compute_wasm")
        XCTAssertEqual(error?.message, #"fib needs an integer "n" in 0...40"#)
        try expectFailure("unknown_function", "nope", guest: "compute_wasm")
    }

    func testTheSameSwiftSourceGivesTheSameResultsNativelyAndThroughWasm() throws {
        for (function, args) in [("add", #"{"a":2,"b":40}"#), ("fib", #"{"n":50}"#), ("echo", #"{"x":[1,"y"]}"#),
                                 ("sha256", #"{"text":"hello"}"#), ("counter", "{}"), ("grow", #"{"bytes":5000}"#)] {
            let native = try call(function, args, guest: "demo")
            XCTAssertEqual(try call(function, args, guest: "demo_wasm"), native, "\(function) \(args)")
        }
        let error = try expectFailure("guest_error", "fail", #"{"message":"no"}"#, guest: "demo_wasm")
        XCTAssertEqual(error?.message, "no")
        let overflow = try expectFailure("guest_error", "add", #"{"a":9223372036854775807,"b":1}"#, guest: "demo_wasm")
        XCTAssertEqual(overflow?.message, "9223372036854775807 + 1 overflows Int64")
    }

    func testAWasiLibcProgramRuns() throws {
        XCTAssertEqual(try call("sort", #"{"numbers":"5 3 -1 10 2"}"#, guest: "wasi_wasm"), #"{"sorted":"-1 2 3 5 10"}"#)
        XCTAssertEqual(try call("hello", #"{"name":"wasm"}"#, guest: "wasi_wasm"), "{}")
        let before = UInt64(Date().timeIntervalSince1970 * 1e9)
        let clock = try call("clock", guest: "wasi_wasm")
        let ns = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(clock.utf8)) as? [String: Any])?["ns"] as? NSNumber)
        XCTAssertGreaterThanOrEqual(ns.uint64Value + 1_000_000_000, before, clock)
        XCTAssertEqual(try call("exit", #"{"status":0}"#, guest: "wasi_wasm"), #"{"exited":true}"#)
        let exited = try expectFailure("guest_error", "exit", #"{"status":3}"#, guest: "wasi_wasm")
        XCTAssertEqual(exited?.message, "wasm module exited with status 3")
    }

    func testEveryTrapEndsTheCallAsAGuestErrorNamingIt() throws {
        let traps = [
            ("out_of_bounds", "{}", "wasm trap: out of bounds memory access"),
            ("divide_by_zero", "{}", "wasm trap: integer divide by zero"),
            ("overflow", "{}", "wasm trap: integer overflow"),
            ("unreachable", "{}", "wasm trap: unreachable executed"),
            ("recurse", "{}", "wasm trap: call stack exhausted"),
            ("bad_pointer", "{}", "wasm trap: bad pointer handed to the host (hl.log: 4096 bytes at 4294967040"),
            ("bad_enqueue", "{}", "wasm trap: bad pointer handed to the host (hl.enqueue: 4096 bytes at 4294967040"),
            ("grow", #"{"pages":60000}"#, "wasm trap: memory.grow past the guest's memory"),
        ]
        for (function, args, expected) in traps {
            let error = try expectFailure("guest_error", function, args, guest: "traps_wasm")
            XCTAssertTrue(error?.message.hasPrefix(expected) ?? false, "\(function): \(error?.message ?? "no error")")
        }
        // Growing within the guest's memory is not a trap.
        XCTAssertEqual(try call("grow", #"{"pages":2}"#, guest: "traps_wasm"), #"{"before":5}"#)
    }

    /// The module's own stack overflowing (it lies first in linear memory)
    /// is an out-of-bounds access, as is the native stack check's job for
    /// the generated code: both end in a trap, neither in a fault.
    func testDeepRecursionUnderASmallNativeStackStillTraps() throws {
        let configuration = SandboxConfiguration(stackSize: 64 << 10)
        let error = try expectFailure("guest_error", "recurse", guest: "traps_wasm", configuration: configuration)
        XCTAssertEqual(error?.message, "wasm trap: call stack exhausted")
    }

    /// Without a reset, module state carries over from call to call as in a
    /// native guest; a trap ends the call like any failure, so the host
    /// takes that VM out of use until a reset (and the runtime would
    /// instantiate the module afresh before running it again).
    func testStateCarriesOverUntilATrap() throws {
        let sandbox = try sandbox("traps_wasm")
        func counter() throws -> String {
            String(decoding: try sandbox.call("counter", input: [], limits: .init()), as: UTF8.self)
        }
        XCTAssertEqual(try counter(), #"{"count":1}"#)
        XCTAssertEqual(try counter(), #"{"count":2}"#)
        XCTAssertThrowsError(try sandbox.call("divide_by_zero", input: [], limits: .init()))
        XCTAssertThrowsError(try counter(), "a VM whose call trapped is not used again without a reset")
    }

    /// A recycled sandbox's snapshot is taken after init, which
    /// instantiated the module: a call and reset then write about as few
    /// pages as a native guest's (instantiating in the call would add the
    /// instance, its tables, the data segments and wasi-libc's start-up),
    /// and after a trap and a reset the same instance answers.
    func testRecycledCallsStartFromTheInstanceInitMade() throws {
        func restoredPages(_ guest: String) throws -> [Int] {
            let sandbox = try self.sandbox(guest, configuration: SandboxConfiguration(recyclable: true))
            return try (0..<3).map { _ in
                XCTAssertEqual(String(decoding: try sandbox.call("noop", input: [], limits: .init()), as: UTF8.self), "{}")
                return try sandbox.reset()
            }
        }
        let native = try restoredPages("compute")
        let wasm = try restoredPages("compute_wasm")
        XCTAssertLessThanOrEqual(try XCTUnwrap(wasm.max()), try XCTUnwrap(native.min()) + 2,
                                 "pages restored after each call: native \(native), Wasm \(wasm)")

        let traps = try self.sandbox("traps_wasm", configuration: SandboxConfiguration(recyclable: true))
        XCTAssertThrowsError(try traps.call("recurse", input: [], limits: .init()))
        try traps.reset()
        XCTAssertEqual(String(decoding: try traps.call("counter", input: [], limits: .init()), as: UTF8.self),
                       #"{"count":1}"#)
    }

    // MARK: Modules from other toolchains

    /// A module written by hand, with no SDK inside: guest functions are its
    /// (i32, i32) exports, input arrives where its hl_alloc says, and
    /// build.sh works from any folder with relative paths.
    func testAHandWrittenModuleBuildsFromAnyFolderAndRuns() throws {
        let folder = try temporaryFolder()
        try #"""
            (module
              (import "hl" "return_result" (func $return (param i32 i32)))
              (memory (export "memory") 1)
              (data (i32.const 16) "{\"raw\":true}")
              (func (export "hl_alloc") (param i32) (result i32) (i32.const 4096))
              (func (export "echo") (param $input i32) (param $length i32)
                (call $return (local.get $input) (local.get $length)))
              (func (export "constant") (param i32 i32)
                (call $return (i32.const 16) (i32.const 12)))
              (func (export "helper") (result i32) (i32.const 1)))
            """#.write(to: folder.appendingPathComponent("raw.wat"), atomically: true, encoding: .utf8)
        try tool(["wat2wasm", "raw.wat", "-o", "raw.wasm"], in: folder)
        let (status, output) = try tool([Self.buildScript, "raw.wasm", "-o", "out/raw.elf"], in: folder, check: false)
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("export helper is not a guest function"), output)

        let image = try GuestImage(name: "raw", bytes: Array(try Data(contentsOf: folder.appendingPathComponent("out/raw.elf"))))
        let sandbox = { try Sandbox(kvm: self.kvm(), image: image, configuration: .init()) }
        XCTAssertEqual(String(decoding: try sandbox().call("echo", input: Array(#"{"a":1}"#.utf8), limits: .init()),
                              as: UTF8.self), #"{"a":1}"#)
        XCTAssertEqual(String(decoding: try sandbox().call("constant", input: [], limits: .init()), as: UTF8.self),
                       #"{"raw":true}"#)
        XCTAssertThrowsError(try sandbox().call("helper", input: [], limits: .init())) { error in
            XCTAssertEqual((error as? SandboxError)?.kind, "unknown_function", "\(error)")
        }
    }

    /// build.sh refuses a module that imports what the runtime lacks, or a
    /// known import with other types, and says which.
    func testBuildRefusesModulesWithImportsTheRuntimeLacks() throws {
        let folder = try temporaryFolder()
        let modules = [
            ("unknown", #"(module (import "env" "secret" (func (param i32))) (memory (export "memory") 1))"#,
             "imports what the runtime does not provide: env.secret"),
            ("mistyped", #"(module (import "hl" "log" (func (param i64))) (memory (export "memory") 1))"#,
             "Z_hlZ_log"),
            ("memoryless", #"(module (func (export "f") (param i32 i32)))"#, "exports no memory"),
        ]
        for (name, text, expected) in modules {
            try text.write(to: folder.appendingPathComponent("\(name).wat"), atomically: true, encoding: .utf8)
            try tool(["wat2wasm", "\(name).wat", "-o", "\(name).wasm"], in: folder)
            let (status, output) = try tool([Self.buildScript, "\(name).wasm", "-o", "\(name).elf"], in: folder, check: false)
            XCTAssertNotEqual(status, 0, "\(name): \(output)")
            XCTAssertTrue(output.contains(expected), "\(name): \(output)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("\(name).elf").path))
        }
    }

    static let buildScript = RepositoryPaths.root.appendingPathComponent("guests/build.sh").path

    private func temporaryFolder() throws -> URL {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/wat2wasm") else {
            let reason = "wat2wasm is missing: apt-get install wabt"
            if KVMRequirement.isRequired { XCTFail(reason) }
            throw XCTSkip(reason)
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hl-wasm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        return folder
    }

    /// Runs a command in a folder; its output is stdout and stderr together.
    @discardableResult
    private func tool(_ arguments: [String], in folder: URL, check: Bool = true) throws -> (Int32, String) {
        let process = Process()
        let pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.currentDirectoryURL = folder
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if check { XCTAssertEqual(process.terminationStatus, 0, "\(arguments): \(output)") }
        return (process.terminationStatus, output)
    }
}
