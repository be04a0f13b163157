import Foundation
import KVMTestSupport
import MicroVM
import Sandbox
import XCTest

/// Base for tests that run guests: skips (or fails under HL_REQUIRE_KVM=1)
/// when /dev/kvm or the built guests are missing.
class SandboxTestCase: XCTestCase {
    static let sharedKVM: KVM? = try? KVM()

    func kvm() throws -> KVM {
        if let reason = KVMRequirement.unavailableReason() {
            if KVMRequirement.isRequired { XCTFail(reason) }
            throw XCTSkip(reason)
        }
        return try XCTUnwrap(Self.sharedKVM, "KVM could not be opened")
    }

    func guestImage(_ name: String = "demo") throws -> GuestImage {
        let url = RepositoryPaths.guest(name)
        guard let bytes = FileManager.default.contents(atPath: url.path) else {
            let reason = "\(url.path) is missing; run guests/build.sh"
            if KVMRequirement.isRequired { XCTFail(reason) }
            throw XCTSkip(reason)
        }
        return try GuestImage(name: name, bytes: Array(bytes))
    }

    func sandbox(_ name: String = "demo", configuration: SandboxConfiguration = .init()) throws -> Sandbox {
        try Sandbox(kvm: kvm(), image: guestImage(name), configuration: configuration)
    }

    /// Calls a function in a fresh sandbox and returns the result as text.
    func call(_ function: String, _ args: String = "{}", guest: String = "demo",
              limits: CallLimits = .init(), configuration: SandboxConfiguration = .init()) throws -> String {
        let sandbox = try sandbox(guest, configuration: configuration)
        return String(decoding: try sandbox.call(function, input: Array(args.utf8), limits: limits), as: UTF8.self)
    }

    /// Asserts the call fails with the given error kind and returns the error.
    @discardableResult
    func expectFailure(_ kind: String, _ function: String, _ args: String = "{}", guest: String = "demo",
                       limits: CallLimits = .init(), configuration: SandboxConfiguration = .init(),
                       file: StaticString = #filePath, line: UInt = #line) throws -> SandboxError? {
        do {
            let result = try call(function, args, guest: guest, limits: limits, configuration: configuration)
            XCTFail("expected \(kind), got result \(result)", file: file, line: line)
            return nil
        } catch let error as SandboxError {
            XCTAssertEqual(error.kind, kind, "\(error)", file: file, line: line)
            return error
        }
    }
}

/// A static ELF around raw machine code (one code segment, plus any number
/// of writable zero-filled ones), for hostile guests that the SDK would
/// never produce.
enum RawGuest {
    static func elf(code: [UInt8], address: UInt64 = 0x200000, extraSegments: [(address: UInt64, size: UInt64)] = [])
        -> [UInt8] {
        let segmentCount = 1 + extraSegments.count
        precondition(64 + 56 * segmentCount <= 0x1000, "the program headers must fit before the code")
        var out = [UInt8](repeating: 0, count: 0x1000 + code.count)
        func put<T: FixedWidthInteger>(_ value: T, _ at: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { out[at + i] = b } }
        }
        out[0] = 0x7F; out[1] = 0x45; out[2] = 0x4C; out[3] = 0x46; out[4] = 2; out[5] = 1; out[6] = 1
        put(UInt16(2), 16); put(UInt16(62), 18); put(UInt32(1), 20); put(address, 24)
        put(UInt64(64), 32); put(UInt16(64), 52); put(UInt16(56), 54); put(UInt16(segmentCount), 56)
        put(UInt32(1), 64); put(UInt32(5), 68); put(UInt64(0x1000), 72); put(address, 80); put(address, 88)
        put(UInt64(code.count), 96); put(UInt64(code.count), 104); put(UInt64(0x1000), 112)
        for (index, extra) in extraSegments.enumerated() {
            let header = 64 + 56 * (index + 1)
            put(UInt32(1), header); put(UInt32(6), header + 4); put(UInt64(0x1000), header + 8); put(extra.address, header + 16)
            put(extra.address, header + 24); put(UInt64(0), header + 32); put(extra.size, header + 40); put(UInt64(0x1000), header + 48)
        }
        for (i, byte) in code.enumerated() { out[0x1000 + i] = byte }
        return out
    }

    // Machine-code fragments.
    static func out(port: UInt16) -> [UInt8] {
        [0x66, 0xBA, UInt8(port & 0xFF), UInt8(port >> 8), 0xEE]  // mov dx, port; out dx, al
    }
    static func movRAXFromAbsolute(_ address: UInt32) -> [UInt8] {
        [0x48, 0x8B, 0x04, 0x25] + withUnsafeBytes(of: address.littleEndian) { Array($0) }
    }
    static func storeDword(_ value: UInt32, at address: UInt32) -> [UInt8] {
        // mov dword [address], value
        [0xC7, 0x04, 0x25] + withUnsafeBytes(of: address.littleEndian) { Array($0) }
            + withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }
    static let spin: [UInt8] = [0xEB, 0xFE]
}
