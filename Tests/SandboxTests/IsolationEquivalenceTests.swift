import Foundation
import MicroVM
import Sandbox
import XCTest

/// Isolation by equivalence: the isolation probe guest (guests/examples/
/// isolation) records every piece of CPU state a CPL3 guest can observe at
/// entry, before any of its own code runs, and `state_digest` returns it.
/// A recycled VM after any call, however hostile, must hand the next call
/// exactly the state a fresh VM does; so must a fresh VM built on a thread
/// where a hostile call just ran.
final class IsolationEquivalenceTests: SandboxTestCase {
    static let guest = "isolation"

    /// A hostile call: what it does, and the outcome it must have (an error
    /// kind, or nil for a normal result). `nil` outcome with `anyOutcome`
    /// set means the call's own result depends on the CPU (PKRU, AMX).
    struct Hostile {
        var function: String
        var args = "{}"
        var limits = CallLimits()
        var expected: String?
        var anyOutcome = false
        var cancel = false
    }

    static let hostileCalls: [Hostile] = [
        Hostile(function: "state_digest"),
        Hostile(function: "float_probe"),
        Hostile(function: "plant"),
        Hostile(function: "plant_error", expected: "guest_error"),
        Hostile(function: "plant_crash", expected: "guest_crash"),
        Hostile(function: "plant_fault", expected: "memory_access_violation"),
        Hostile(function: "plant_spin", limits: CallLimits(timeoutMilliseconds: 100), expected: "timeout"),
        Hostile(function: "plant_spin", limits: CallLimits(timeoutMilliseconds: 60_000), expected: "cancelled",
                cancel: true),
        Hostile(function: "poison_mxcsr"),
        Hostile(function: "poison_pkru", anyOutcome: true),
        Hostile(function: "plant_amx", anyOutcome: true),
    ]

    override func setUpWithError() throws {
        _ = try kvm()
        _ = try guestImage(Self.guest)
    }

    func recyclable() throws -> Sandbox {
        try sandbox(Self.guest, configuration: SandboxConfiguration(memoryMB: 16, recyclable: true))
    }

    func digest(_ sandbox: Sandbox) throws -> Digest {
        try Digest(String(decoding: sandbox.call("state_digest", input: Array("{}".utf8)), as: UTF8.self))
    }

    func freshDigest() throws -> Digest {
        try digest(sandbox(Self.guest))
    }

    /// Runs `hostile` and checks its own outcome; returns a description.
    @discardableResult
    func run(_ hostile: Hostile, in sandbox: Sandbox, file: StaticString = #filePath, line: UInt = #line) -> String {
        let canceller = hostile.cancel ? Canceller(sandbox) : nil
        defer { canceller?.finish() }
        do {
            let result = try sandbox.call(hostile.function, input: Array(hostile.args.utf8), limits: hostile.limits)
            if let expected = hostile.expected, !hostile.anyOutcome {
                XCTFail("\(hostile.function) should end as \(expected), answered \(String(decoding: result, as: UTF8.self))",
                        file: file, line: line)
            }
            return "ok"
        } catch {
            if !hostile.anyOutcome {
                XCTAssertEqual(error.kind, hostile.expected, "\(hostile.function): \(error)", file: file, line: line)
            }
            return error.kind
        }
    }

    func testRecycledVMLooksFreshAfterEveryHostileCall() throws {
        let reference = try freshDigest()
        print("isolation digest covers \(reference.classes.keys.sorted().joined(separator: ", "));"
              + " this CPU lacks (skipped): \(reference.skipped.isEmpty ? "nothing" : reference.skipped);"
              + " xsave_mask \(reference.xsaveMask)")
        XCTAssertEqual(try freshDigest(), reference, "two fresh VMs disagree")

        let sandbox = try recyclable()
        XCTAssertEqual(try digest(sandbox), reference, "a new recycled VM differs from a fresh one")
        try sandbox.reset()
        for hostile in Self.hostileCalls {
            let outcome = run(hostile, in: sandbox)
            try sandbox.reset()
            let after = try digest(sandbox)
            XCTAssertEqual(after, reference, "after \(hostile.function) (\(outcome)) the recycled VM differs in "
                           + after.differences(from: reference).joined(separator: ", "))
            try sandbox.reset()
        }
    }

    /// The same, with the hostile calls one after another without a look in
    /// between, so state planted by one and missed by the next reset would
    /// pile up.
    func testRecycledVMLooksFreshAfterAllHostileCallsInARow() throws {
        let reference = try freshDigest()
        let sandbox = try recyclable()
        for hostile in Self.hostileCalls + Self.hostileCalls.reversed() {
            run(hostile, in: sandbox)
            try sandbox.reset()
        }
        let after = try digest(sandbox)
        XCTAssertEqual(after, reference, "differs in " + after.differences(from: reference).joined(separator: ", "))
    }

    /// The hypervisor here keeps data selectors per host thread, not per VM:
    /// a fresh VM built after a hostile call on the same thread must not see
    /// what that call loaded.
    func testFreshVMOnTheSameThreadLooksFreshAfterEveryHostileCall() throws {
        let reference = try freshDigest()
        // The isolation guest's planted state, the demo guest's misbehaviour
        // and raw guests that break the ABI.
        var hostileVMs: [(name: String, sandbox: Sandbox, call: Hostile)] = try Self.hostileCalls.map {
            ($0.function, try sandbox(Self.guest), $0)
        }
        for (function, args) in [("crash", "{}"), ("spin", "{}"), ("alloc", #"{"mb":64}"#), ("scribble", "{}"),
                                 ("fail", #"{"message":"no"}"#), ("grow", #"{"bytes":10000000}"#)] {
            hostileVMs.append(("demo \(function)", try sandbox("demo"),
                               Hostile(function: function, args: args, limits: CallLimits(timeoutMilliseconds: 100),
                                       anyOutcome: true)))
        }
        for (name, code) in [("raw page-table read", RawGuest.movRAXFromAbsolute(UInt32(GuestLayout.pageTableArea))),
                             ("raw unknown port", RawGuest.out(port: 0x7000)), ("raw spin", RawGuest.spin)] {
            let image = try GuestImage(name: "raw", bytes: RawGuest.elf(code: code))
            hostileVMs.append((name, try Sandbox(kvm: kvm(), image: image),
                               Hostile(function: "f", limits: CallLimits(timeoutMilliseconds: 100), anyOutcome: true)))
        }
        for (name, hostileVM, call) in hostileVMs {
            let outcome = run(call, in: hostileVM)
            let after = try freshDigest()
            XCTAssertEqual(after, reference, "a fresh VM after \(name) (\(outcome)) differs in "
                           + after.differences(from: reference).joined(separator: ", "))
        }
    }

    /// A leftover MXCSR (round toward zero, flush to zero) would change the
    /// next job's arithmetic without failing it; unmasked exceptions would
    /// make every later call on the VM fault.
    func testFloatingPointResultsAreUnchangedAfterPoisonedState() throws {
        let expected = String(decoding: try sandbox(Self.guest).call("float_probe", input: Array("{}".utf8)), as: UTF8.self)
        XCTAssertEqual(expected, #"{"third":"0x3fd5555555555555","half_tiny":"0x0008000000000000"}"#)
        let sandbox = try recyclable()
        for poison in ["plant", "poison_mxcsr", "plant_crash", "poison_pkru"] {
            run(Hostile(function: poison, anyOutcome: true), in: sandbox)
            try sandbox.reset()
            for _ in 0..<3 {
                let result = String(decoding: try sandbox.call("float_probe", input: Array("{}".utf8)), as: UTF8.self)
                XCTAssertEqual(result, expected, "after \(poison)")
                try sandbox.reset()
            }
        }
    }
}

/// The probe's answer, class by class.
struct Digest: Equatable, CustomStringConvertible {
    var xsaveMask: String
    var classes: [String: String]
    var skipped: String

    init(_ json: String) throws {
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], json)
        xsaveMask = try XCTUnwrap(object["xsave_mask"] as? String, json)
        classes = try XCTUnwrap(object["classes"] as? [String: String], json)
        skipped = try XCTUnwrap(object["skipped"] as? String, json)
    }

    func differences(from other: Digest) -> [String] {
        Set(classes.keys).union(other.classes.keys).sorted().filter { classes[$0] != other.classes[$0] }
            .map { "\($0) (\(classes[$0] ?? "-") vs \(other.classes[$0] ?? "-"))" }
    }

    var description: String { classes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
}

/// Keeps asking a sandbox to cancel its call until `finish`, so the cancel
/// lands whatever the moment the call starts.
final class Canceller: @unchecked Sendable {
    // `done` is guarded by `lock`; the thread reads it, `finish` writes it.
    private let lock = NSLock()
    private var done = false

    init(_ sandbox: Sandbox) {
        Thread { [self] in
            while !lock.withLock({ done }) {
                sandbox.stop(.cancelled)
                usleep(20_000)
            }
        }.start()
    }

    func finish() { lock.withLock { done = true } }
}
