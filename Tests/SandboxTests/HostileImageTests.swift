import Foundation
import MicroVM
import Sandbox
import Synchronization
import XCTest

/// Guest images that claim more memory than any sandbox has. They must fail
/// as `invalid_guest` when the image is checked (before any work per page),
/// whichever way they arrive; the deadline is generous, because a loader
/// that walks what the file claims never returns at all.
final class HostileImageTests: SandboxTestCase {
    static let largestMemory = UInt64(SandboxConfiguration.absoluteMaximumMemoryMB) << 20

    /// A 4 KiB ELF with a second PT_LOAD of `size` bytes of bss at 0x300000.
    func elf(claiming size: UInt64) -> [UInt8] {
        RawGuest.elf(code: RawGuest.spin, extraSegments: [(0x300000, size)])
    }

    func assertInvalidGuest(_ body: @escaping @Sendable () throws -> Void,
                            file: StaticString = #filePath, line: UInt = #line) {
        let outcome = Mutex<Result<Void, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            let result = Result { try body() }
            outcome.withLock { $0 = result }
            done.signal()
        }.start()
        guard done.wait(timeout: .now() + 30) == .success else {
            XCTFail("still running after 30 s", file: file, line: line)
            return
        }
        switch outcome.withLock({ $0 }) {
        case .failure(let error as SandboxError)?:
            XCTAssertEqual(error.kind, "invalid_guest", "\(error)", file: file, line: line)
        case let other:
            XCTFail("expected invalid_guest, got \(String(describing: other))", file: file, line: line)
        }
    }

    func testAnImageClaiming2To63BytesIsRefusedWhenParsed() {
        let bytes = elf(claiming: 1 << 63)
        XCTAssertEqual(bytes.count, 0x1002)
        assertInvalidGuest { _ = try GuestImage(name: "huge", bytes: bytes) }
    }

    /// Within the address space but past the largest memory a sandbox may
    /// have: refused by the image itself, for every configuration.
    func testAnImagePastTheLargestGuestMemoryIsRefusedWhenParsed() throws {
        for size in [Self.largestMemory, Self.largestMemory - 0x300000 + 1, 1 << 46] {
            assertInvalidGuest { _ = try GuestImage(name: "big", bytes: self.elf(claiming: size)) }
        }
        XCTAssertThrowsError(try GuestImage(name: "big", bytes: elf(claiming: 1 << 46))) { error in
            XCTAssertEqual(error as? SandboxError, .invalidGuest(.segmentOutOfRange(
                index: 1, start: 0x300000, end: 0x300000 + (1 << 46),
                allowedStart: GuestLayout.imageBase, allowedEnd: Self.largestMemory)))
        }
    }

    /// Fits the largest memory, not the one asked for: `guest add` checks the
    /// default configuration, a sandbox its own; both refuse before mapping.
    func testAnImageLargerThanItsSandboxIsRefusedBeforeMapping() throws {
        let image = try GuestImage(name: "big", bytes: elf(claiming: 3 << 30))
        assertInvalidGuest { try image.check(for: SandboxConfiguration()) }
        let kvm = try kvm()
        assertInvalidGuest { _ = try Sandbox(kvm: kvm, image: image) }
        assertInvalidGuest { _ = try Sandbox(kvm: kvm, image: image, configuration: .init(memoryMB: 1024, recyclable: true)) }
    }
}
