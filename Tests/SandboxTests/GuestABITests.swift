import Foundation
import KVMTestSupport
import MicroVM
@testable import Sandbox
import XCTest

/// What the ABI gives guest authors: the marker note, init before the
/// snapshot, final errors, the function list, and crash messages that name
/// the symbol. Runs the SDK's own guests on real KVM.
final class GuestABITests: SandboxTestCase {
    // MARK: The marker

    func testSDKGuestsCarryTheMarkerAndSayWhetherTheyHaveInit() throws {
        for name in ["demo", "hello_c", "hello_rust", "isolation", "init_swift", "json_rust"] {
            XCTAssertTrue(try guestImage(name).marker.refusal == nil, name)
        }
        XCTAssertFalse(try guestImage("demo").marker.hasInit)
        XCTAssertTrue(try guestImage("init_c").marker.hasInit)
        XCTAssertTrue(try guestImage("hello_rust").marker.hasInit)
    }

    func testAnImageWithoutTheNoteIsMarkedMissing() throws {
        let image = try GuestImage(name: "raw", bytes: RawGuest.elf(code: [0xF4]))  // hlt
        XCTAssertEqual(image.marker, .missing)
        XCTAssertNotNil(image.marker.refusal)
    }

    /// A note this host does not speak refuses the image wherever it is met.
    func testAWrongVersionUnknownFlagsOrInitOutsideCodeRefuseTheImage() throws {
        let bytes = try Self.guestBytes("hello_c")
        for (field, value, expected) in [(0, UInt64(2), "guest ABI version 2"), (4, 1, "flags 0x1"),
                                         (8, 0x10, "outside its code")] {
            let patched = try Self.patchMarker(bytes, field: field, value: value)
            XCTAssertThrowsError(try GuestImage(name: "patched", bytes: patched)) { error in
                guard case .incompatibleGuest(let message) = error as? SandboxError else {
                    return XCTFail("\(error)")
                }
                XCTAssertTrue(message.contains(expected), message)
                XCTAssertEqual((error as? SandboxError)?.kind, "invalid_guest")
            }
        }
    }

    func testAMalformedNoteRefusesTheImage() throws {
        var bytes = try Self.guestBytes("hello_c")
        let note = try Self.markerOffset(bytes) - 24  // header, name, descriptor
        bytes[note + 4] = 0xFF  // descsz far past the segment
        XCTAssertThrowsError(try GuestImage(name: "bad", bytes: bytes)) { error in
            guard case .invalidGuest(.malformedNote) = error as? SandboxError else { return XCTFail("\(error)") }
        }
    }

    // MARK: Functions

    func testEveryRuntimeListsItsFunctions() throws {
        XCTAssertEqual(try sandbox("hello_c").functions(), ["echo", "add", "log", "log_flood", "spawn"])
        XCTAssertEqual(try sandbox("hello_rust").functions(), ["echo", "add", "square", "panic", "fail", "crash", "spawn"])
        XCTAssertEqual(try sandbox("init_c").functions(), ["cube", "bump", "inits", "touch"])
        let demo = try sandbox("demo").functions()
        XCTAssertEqual(demo.first, "echo")
        XCTAssertTrue(demo.contains("scribble"), "\(demo)")
    }

    func testUnknownFunctionNamesTheFunctionsThatExist() throws {
        for (guest, listed) in [("demo", "echo, add, fib"), ("hello_c", "echo, add, log, log_flood"),
                                ("hello_rust", "echo, add, square, panic, fail, crash, spawn")] {
            let error = try expectFailure("unknown_function", "nosuch", guest: guest)
            XCTAssertEqual(error?.isRetryable, false)
            XCTAssertTrue(error?.message.hasPrefix("unknown function 'nosuch'; this guest has: \(listed)") == true,
                          "\(guest): \(String(describing: error))")
        }
    }

    func testReservedNamesCannotBeCalled() throws {
        for name in ["__hl_init", "__hl_functions", "__hl_anything"] {
            let error = try expectFailure("unknown_function", name, guest: "init_c")
            XCTAssertTrue(error?.message.contains("reserved") == true, "\(String(describing: error))")
        }
    }

    func testFunctionListsAreBounded() {
        XCTAssertEqual(try Sandbox.parseFunctionList(Array("a\0b\0".utf8)), ["a", "b"])
        XCTAssertEqual(try Sandbox.parseFunctionList([]), [])
        XCTAssertThrowsError(try Sandbox.parseFunctionList(Array("a\0b".utf8)))
        XCTAssertThrowsError(try Sandbox.parseFunctionList(Array("a\0\0".utf8)))
        XCTAssertThrowsError(try Sandbox.parseFunctionList([UInt8](repeating: 0x61, count: 257) + [0]))
        XCTAssertThrowsError(try Sandbox.parseFunctionList(Array(repeating: Array("f\0".utf8), count: 1025).flatMap { $0 }))
        XCTAssertEqual(try Sandbox.parseFunctionList(Array("bad\u{1B}[2J\0".utf8)), ["bad\\u{1B}[2J"])
    }

    // MARK: init

    func testInitRunsOncePerFreshVMBeforeTheCall() throws {
        XCTAssertEqual(try call("cube", #"{"n": 3}"#, guest: "init_c"), #"{"cube":27}"#)
        XCTAssertEqual(try call("inits", guest: "init_c"), #"{"inits":1}"#)
    }

    /// A recycled VM's snapshot is taken after init: every reset goes back
    /// to what init left, and init does not run again.
    func testARecycledVMResetsToWhatInitLeft() throws {
        let sandbox = try sandbox("init_c", configuration: .init(recyclable: true))
        for _ in 0..<3 {
            XCTAssertEqual(String(decoding: try sandbox.call("bump", input: []), as: UTF8.self), #"{"counter":101}"#)
            XCTAssertEqual(String(decoding: try sandbox.call("inits", input: []), as: UTF8.self), #"{"inits":1}"#)
            try sandbox.reset()
        }
        // Also after a call that crashed.
        XCTAssertThrowsError(try sandbox.call("touch", input: Array(#"{"address": 16}"#.utf8)))
        try sandbox.reset()
        XCTAssertEqual(String(decoding: try sandbox.call("bump", input: []), as: UTF8.self), #"{"counter":101}"#)
    }

    func testAFailingInitFailsTheBuildWithItsCause() throws {
        let cases: [(mode: String, cause: String, retryable: Bool)] = [
            ("crash", "guest_crash", true), ("fail", "guest_error", true), ("final", "guest_final_error", false),
            ("loop", "timeout", true),
        ]
        for recyclable in [false, true] {
            for (mode, cause, retryable) in cases {
                let image = try GuestImage(name: "init_\(mode)", bytes: try Self.initGuest(mode: mode))
                let configuration = SandboxConfiguration(recyclable: recyclable, initTimeoutMilliseconds: 200)
                XCTAssertThrowsError(try Sandbox(kvm: kvm(), image: image, configuration: configuration)) { error in
                    guard case .initFailed(let inner) = error as? SandboxError else { return XCTFail("\(mode): \(error)") }
                    XCTAssertEqual(inner.kind, cause, "\(mode): \(inner)")
                    XCTAssertEqual((error as? SandboxError)?.kind, "init_failed")
                    XCTAssertEqual((error as? SandboxError)?.isRetryable, retryable, mode)
                    XCTAssertTrue((error as? SandboxError)?.message.hasPrefix("init failed: \(cause): ") == true, "\(error)")
                }
            }
        }
        // The unpatched guest builds: the patch is what failed it.
        XCTAssertNoThrow(try Sandbox(kvm: kvm(), image: GuestImage(name: "ok", bytes: Self.initGuest(mode: "ok"))))
    }

    // MARK: Final errors and Rust

    func testFinalErrorsAreNotRetryable() throws {
        let final = try expectFailure("guest_final_error", "fail", #"{"final": 1}"#, guest: "hello_rust")
        XCTAssertEqual(final?.message, "this request can never succeed")
        XCTAssertEqual(final?.isRetryable, false)
        let plain = try expectFailure("guest_error", "fail", guest: "hello_rust")
        XCTAssertEqual(plain?.isRetryable, true)
        XCTAssertEqual(try expectFailure("guest_final_error", "cube", #"{"n": 99}"#, guest: "init_c")?.isRetryable, false)
        let swift = try expectFailure("guest_final_error", "fail", #"{"message": "never", "final": true}"#)
        XCTAssertEqual(swift?.message, "never")
        XCTAssertEqual(try expectFailure("guest_error", "fail", #"{"message": "again"}"#)?.isRetryable, true)
    }

    /// Embedded Swift's init (`@_cdecl("hl_init")` + GuestInit.run) runs
    /// once per VM, and a recycled VM keeps what it built.
    func testSwiftInitRunsOncePerVM() throws {
        XCTAssertTrue(try guestImage("init_swift").marker.hasInit)
        let expected = #"{"greeting":"hello from init","inits":1}"#
        XCTAssertEqual(try call("greet", guest: "init_swift"), expected)
        let sandbox = try sandbox("init_swift", configuration: .init(recyclable: true))
        for _ in 0..<3 {
            XCTAssertEqual(String(decoding: try sandbox.call("greet", input: []), as: UTF8.self), expected)
            try sandbox.reset()
        }
        XCTAssertEqual(try sandbox.functions(), ["greet"])
    }

    func testRustGuestRunsAndItsPanicsNameMessageAndLocation() throws {
        XCTAssertEqual(try call("add", #"{"a": 40, "b": 2}"#, guest: "hello_rust"), #"{"sum":42}"#)
        XCTAssertEqual(try call("square", #"{"n": 12}"#, guest: "hello_rust"), #"{"square":144}"#)
        XCTAssertEqual(try call("echo", "bytes", guest: "hello_rust"), "bytes")
        let panic = try expectFailure("guest_error", "panic", #"{"index": 5}"#, guest: "hello_rust")
        let message = try XCTUnwrap(panic?.message)
        XCTAssertTrue(message.hasPrefix("panicked at "), message)
        XCTAssertTrue(message.contains("hello_rust/lib.rs:"), message)
        XCTAssertTrue(message.hasSuffix("index out of bounds: the len is 3 but the index is 5"), message)
        // A panic leaves the VM usable after its reset.
        let sandbox = try sandbox("hello_rust", configuration: .init(recyclable: true))
        XCTAssertThrowsError(try sandbox.call("panic", input: []))
        try sandbox.reset()
        XCTAssertEqual(String(decoding: try sandbox.call("square", input: Array(#"{"n": 3}"#.utf8)), as: UTF8.self),
                       #"{"square":9}"#)
    }

    // MARK: Crash symbols

    func testCrashesNameTheSymbolAndOffset() throws {
        let rust = try expectFailure("guest_crash", "crash", guest: "hello_rust")
        XCTAssertTrue(rust?.message.contains("(hello_rust::crash+0x") == true, "\(String(describing: rust))")
        let swift = try expectFailure("guest_crash", "crash", guest: "demo")
        XCTAssertTrue(swift?.message.contains("(hl_crash+0x") == true, "\(String(describing: swift))")
        let violation = try expectFailure("memory_access_violation", "touch", #"{"address": 16}"#, guest: "init_c")
        XCTAssertTrue(violation?.message.hasSuffix(" in touch+0x23)") == true || violation?.message.contains(" in touch+0x") == true,
                      "\(String(describing: violation))")
    }

    func testAnImageWithoutSymbolsReportsTheBareAddress() throws {
        let image = try GuestImage(name: "raw", bytes: RawGuest.elf(code: [0x0F, 0x0B]))  // ud2
        XCTAssertTrue(image.symbols.symbols.isEmpty)
        let sandbox = try Sandbox(kvm: kvm(), image: image)
        XCTAssertThrowsError(try sandbox.call("x", input: [])) { error in
            XCTAssertEqual(error as? SandboxError, .guestCrash(
                reason: "the guest raised an exception (invalid instruction, divide error or similar)", rip: 0x200000))
        }
    }

    func testRustLegacyNamesAreDemangledAndOthersLeftAlone() {
        XCTAssertEqual(SymbolName.readable("_ZN10hello_rust5crash17hc597de662a8c6aa8E"), "hello_rust::crash")
        XCTAssertEqual(SymbolName.readable("_ZN4core3ptr46drop_in_place$LT$alloc..vec..Vec$LT$u8$GT$$GT$17h0123456789abcdefE"),
                       "core::ptr::drop_in_place<alloc::vec::Vec<u8>>")
        XCTAssertEqual(SymbolName.readable("$s4Demo5crashyAA4JSONOAEKF"), "$s4Demo5crashyAA4JSONOAEKF")
        XCTAssertEqual(SymbolName.readable("_ZN99999999999999999999E"), "_ZN99999999999999999999E")
        XCTAssertEqual(SymbolName.readable("_ZN3abcE"), "abc")
        XCTAssertEqual(SymbolName.readable("_ZN5abcE"), "_ZN5abcE")
        XCTAssertEqual(SymbolName.readable("hl_crash"), "hl_crash")
    }

    // MARK: Helpers

    static func guestBytes(_ name: String) throws -> [UInt8] {
        Array(try XCTUnwrap(FileManager.default.contents(atPath: RepositoryPaths.guest(name).path), "run guests/build.sh"))
    }

    /// Offset of the marker's descriptor in the file.
    static func markerOffset(_ bytes: [UInt8]) throws -> Int {
        let name = Array("hl-worker\0\0\0".utf8)
        let at = try XCTUnwrap((0...(bytes.count - name.count)).first { bytes[$0..<($0 + name.count)].elementsEqual(name) })
        return at + name.count
    }

    static func patchMarker(_ bytes: [UInt8], field: Int, value: UInt64) throws -> [UInt8] {
        var bytes = bytes
        let at = try markerOffset(bytes) + field
        let width = field == 8 ? 8 : 4
        for i in 0..<width { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        return bytes
    }

    /// init_c with its test-only init mode patched.
    static func initGuest(mode: String) throws -> [UInt8] {
        var bytes = try guestBytes("init_c")
        // The whole default value: the mode's prefix also appears alone.
        let marker = Array("HL-TEST-INIT-MODE:ok".utf8)
        let at = try XCTUnwrap((0...(bytes.count - marker.count)).first {
            bytes[$0..<($0 + marker.count)].elementsEqual(marker)
        }) + marker.count - 2
        for i in 0..<(32 - marker.count + 2) { bytes[at + i] = 0 }
        for (i, byte) in mode.utf8.enumerated() { bytes[at + i] = byte }
        return bytes
    }
}
