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

/// A one-segment static ELF around raw machine code, for hostile guests that
/// the SDK would never produce.
enum RawGuest {
    static func elf(code: [UInt8], address: UInt64 = 0x200000, extraSegment: (address: UInt64, size: UInt64)? = nil) -> [UInt8] {
        let segmentCount = extraSegment == nil ? 1 : 2
        var out = [UInt8](repeating: 0, count: 0x1000 + code.count)
        func put<T: FixedWidthInteger>(_ value: T, _ at: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { out[at + i] = b } }
        }
        out[0] = 0x7F; out[1] = 0x45; out[2] = 0x4C; out[3] = 0x46; out[4] = 2; out[5] = 1; out[6] = 1
        put(UInt16(2), 16); put(UInt16(62), 18); put(UInt32(1), 20); put(address, 24)
        put(UInt64(64), 32); put(UInt16(64), 52); put(UInt16(56), 54); put(UInt16(segmentCount), 56)
        put(UInt32(1), 64); put(UInt32(5), 68); put(UInt64(0x1000), 72); put(address, 80); put(address, 88)
        put(UInt64(code.count), 96); put(UInt64(code.count), 104); put(UInt64(0x1000), 112)
        if let extra = extraSegment {
            put(UInt32(1), 120); put(UInt32(6), 124); put(UInt64(0x1000), 128); put(extra.address, 136)
            put(extra.address, 144); put(UInt64(0), 152); put(extra.size, 160); put(UInt64(0x1000), 168)
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
