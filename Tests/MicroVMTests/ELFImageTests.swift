import Foundation
import MicroVM
import Synchronization
import XCTest

/// Builds small ELF files byte by byte, so each test states exactly what is wrong.
struct ELFBuilder {
    var type: UInt16 = 2
    var machine: UInt16 = 62
    var entry: UInt64 = 0x200000
    var segments: [(type: UInt32, flags: UInt32, offset: UInt64, address: UInt64, fileSize: UInt64, memorySize: UInt64)] = [
        (1, 5, 0x1000, 0x200000, 0x10, 0x10),
    ]
    var fileSize = 0x1010

    func bytes() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: max(fileSize, 64 + 56 * segments.count))
        func put<T: FixedWidthInteger>(_ value: T, _ at: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { out[at + i] = b } }
        }
        out[0] = 0x7F; out[1] = 0x45; out[2] = 0x4C; out[3] = 0x46
        out[4] = 2; out[5] = 1; out[6] = 1
        put(type, 16); put(machine, 18); put(UInt32(1), 20); put(entry, 24)
        put(UInt64(64), 32); put(UInt16(64), 52); put(UInt16(56), 54); put(UInt16(segments.count), 56)
        for (i, s) in segments.enumerated() {
            let at = 64 + 56 * i
            put(s.type, at); put(s.flags, at + 4); put(s.offset, at + 8); put(s.address, at + 16)
            put(s.address, at + 24); put(s.fileSize, at + 32); put(s.memorySize, at + 40); put(UInt64(0x1000), at + 48)
        }
        return Array(out.prefix(fileSize))
    }
}

final class ELFImageTests: XCTestCase {
    func testAcceptsMinimalStaticExecutable() throws {
        let image = try ELFImage(bytes: ELFBuilder().bytes())
        XCTAssertEqual(image.entry, 0x200000)
        XCTAssertEqual(image.segments.count, 1)
        XCTAssertEqual(image.pageMappings(), [PageMapping(start: 0x200000, length: 0x1000, writable: false, executable: true)])
    }

    func testRejects(_ bytes: [UInt8], _ expected: ELFError, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ELFImage(bytes: bytes), file: file, line: line) { error in
            XCTAssertEqual(error as? ELFError, expected, file: file, line: line)
        }
    }

    func testRejectsEmptyAndRandomBytes() {
        testRejects([], .notELF)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let random = (0..<Int.random(in: 1...4096, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            XCTAssertThrowsError(try ELFImage(bytes: random))
        }
    }

    func testRejectsRandomBytesBehindAValidMagic() {
        for _ in 0..<500 {
            var bytes = ELFBuilder().bytes()
            for _ in 0..<8 { bytes[Int.random(in: 4..<120)] = UInt8.random(in: 0...255) }
            // Whatever it says, parsing must end in a value or a typed error.
            do { _ = try ELFImage(bytes: bytes) } catch { XCTAssertTrue(error is ELFError) }
        }
    }

    func testRejectsEveryTruncation() {
        let full = ELFBuilder().bytes()
        for length in [4, 16, 63, 64, 100, 119, 0x1000, 0x100F] {
            XCTAssertThrowsError(try ELFImage(bytes: Array(full.prefix(length))), "length \(length)")
        }
    }

    func testRejectsWrongClassEndianMachineAndType() {
        var bytes = ELFBuilder().bytes()
        bytes[4] = 1
        testRejects(bytes, .not64Bit)
        bytes = ELFBuilder().bytes()
        bytes[5] = 2
        testRejects(bytes, .notLittleEndian)
        testRejects(ELFBuilder(machine: 183).bytes(), .wrongMachine(183))
        testRejects(ELFBuilder(type: 3).bytes(), .notStaticExecutable(type: 3))
        testRejects(ELFBuilder(type: 1).bytes(), .notStaticExecutable(type: 1))
    }

    func testRejectsDynamicExecutables() {
        var builder = ELFBuilder()
        builder.segments.append((3, 4, 0x1000, 0x201000, 0x10, 0x10))
        testRejects(builder.bytes(), .dynamic("PT_INTERP"))
        builder.segments[1].type = 2
        testRejects(builder.bytes(), .dynamic("PT_DYNAMIC"))
    }

    func testRejectsALinuxExecutable() throws {
        let path = ["/bin/ls", "/usr/bin/env", "/bin/sh"].first { FileManager.default.fileExists(atPath: $0) }
        let bytes = try XCTUnwrap(path.flatMap { FileManager.default.contents(atPath: $0) })
        XCTAssertThrowsError(try ELFImage(bytes: Array(bytes))) { error in
            switch error as? ELFError {
            case .notStaticExecutable, .dynamic, .tooLarge: break
            default: XCTFail("unexpected \(error)")
            }
        }
    }

    func testRejectsSegmentsPastTheFileOrOverlapping() {
        var builder = ELFBuilder()
        builder.segments[0].fileSize = 0x2000
        testRejects(builder.bytes(), .segmentOutsideFile(index: 0))
        builder = ELFBuilder()
        builder.segments[0].memorySize = 0x8
        testRejects(builder.bytes(), .segmentMemorySmallerThanFile(index: 0))
        builder = ELFBuilder()
        builder.segments.append((1, 6, 0x1000, 0x200008, 0x8, 0x8))
        testRejects(builder.bytes(), .segmentsOverlap(first: 0, second: 1))
        builder = ELFBuilder()
        builder.segments[0].address = UInt64.max - 4
        XCTAssertThrowsError(try ELFImage(bytes: builder.bytes()))
    }

    func testRejectsEntryOutsideCode() {
        testRejects(ELFBuilder(entry: 0x300000).bytes(), .entryNotExecutable(0x300000))
        var builder = ELFBuilder()
        builder.segments[0].flags = 6
        testRejects(builder.bytes(), .entryNotExecutable(0x200000))
    }

    func testRangeCheckNamesTheOffendingSegment() throws {
        var builder = ELFBuilder()
        builder.segments[0].address = 0x1000
        builder.entry = 0x1000
        let image = try ELFImage(bytes: builder.bytes())
        XCTAssertThrowsError(try image.check(fitsIn: 0x200000..<0x800000)) { error in
            XCTAssertEqual(error as? ELFError, .segmentOutOfRange(index: 0, start: 0x1000, end: 0x1010,
                                                                   allowedStart: 0x200000, allowedEnd: 0x800000))
        }
    }

    func testPageMappingsMergeSharedPages() throws {
        var builder = ELFBuilder()
        builder.segments = [(1, 5, 0x1000, 0x200000, 0x800, 0x800), (1, 6, 0x1800, 0x200800, 0x10, 0x1800)]
        builder.fileSize = 0x2000
        let image = try ELFImage(bytes: builder.bytes())
        XCTAssertEqual(image.pageMappings(), [
            PageMapping(start: 0x200000, length: 0x1000, writable: true, executable: true),
            PageMapping(start: 0x201000, length: 0x1000, writable: true, executable: false),
        ])
    }
}

/// Files built to make the loader work: a few KiB that claim exabytes, or
/// thousands of segments. Each must be refused by a check that costs
/// O(segments), never by walking what the file claims. A loader that walks
/// pages would not return at all, so each parse runs under a generous
/// deadline instead of a timing assertion.
final class HostileELFTests: XCTestCase {
    static let huge: UInt64 = 1 << 63

    func rejects(_ builder: ELFBuilder, _ expected: ELFError, file: StaticString = #filePath, line: UInt = #line) {
        let bytes = builder.bytes()
        let outcome = finishes(file: file, line: line) { () -> Result<ELFImage, ELFError> in
            Result { () throws(ELFError) in try ELFImage(bytes: bytes) }
        }
        switch outcome {
        case .failure(let error)?: XCTAssertEqual(error, expected, file: file, line: line)
        case .success?: XCTFail("a hostile ELF was accepted", file: file, line: line)
        case nil: break
        }
    }

    /// Runs `body` on its own thread and fails the test if it has not
    /// returned within `seconds`; nil then.
    func finishes<T: Sendable>(within seconds: Double = 30, file: StaticString = #filePath, line: UInt = #line,
                               _ body: @escaping @Sendable () -> T) -> T? {
        let value = Mutex<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            let result = body()
            value.withLock { $0 = result }
            done.signal()
        }.start()
        guard done.wait(timeout: .now() + seconds) == .success else {
            XCTFail("still running after \(seconds) s", file: file, line: line)
            return nil
        }
        return value.withLock { $0 }
    }

    /// The audit's file: 4 KiB, one PT_LOAD whose p_memsz is 2^63.
    static func hugeSegment() -> ELFBuilder {
        var builder = ELFBuilder()
        builder.segments[0].memorySize = huge
        builder.fileSize = 0x1000 + 0x10
        return builder
    }

    func testASegmentClaiming2To63BytesIsRefused() {
        rejects(Self.hugeSegment(), .segmentTooLarge(index: 0, start: 0x200000, size: Self.huge, limit: ELFImage.addressLimit))
        XCTAssertTrue("\(ELFError.segmentTooLarge(index: 0, start: 0x200000, size: Self.huge, limit: ELFImage.addressLimit))"
            .contains("claims 0x8000000000000000 bytes"))
    }

    func testHugeFileSizeOrOffsetIsRefused() {
        var builder = ELFBuilder()
        builder.segments[0].fileSize = Self.huge
        builder.segments[0].memorySize = Self.huge
        rejects(builder, .segmentOutsideFile(index: 0))
        builder = ELFBuilder()
        builder.segments[0].offset = UInt64.max - 8
        rejects(builder, .segmentOutsideFile(index: 0))
        builder.segments[0].offset = Self.huge
        rejects(builder, .segmentOutsideFile(index: 0))
    }

    func testAddressesNear2To64AreRefused() {
        var builder = ELFBuilder()
        builder.segments[0].address = UInt64.max - 0xFFF
        builder.entry = UInt64.max - 0xFFF
        rejects(builder, .segmentTooLarge(index: 0, start: UInt64.max - 0xFFF, size: 0x10, limit: ELFImage.addressLimit))
        // Wraps around 2^64 when added up.
        builder.segments[0].memorySize = 0x2000
        rejects(builder, .segmentTooLarge(index: 0, start: UInt64.max - 0xFFF, size: 0x2000, limit: ELFImage.addressLimit))
        // Ends one byte past the address space.
        builder = ELFBuilder()
        builder.segments[0].memorySize = ELFImage.addressLimit - 0x200000 + 1
        rejects(builder, .segmentTooLarge(index: 0, start: 0x200000, size: ELFImage.addressLimit - 0x200000 + 1,
                                          limit: ELFImage.addressLimit))
    }

    func testHugeOverlappingSegmentsAreRefused() {
        var builder = ELFBuilder()
        builder.segments.append((1, 6, 0x1000, 0x100000, 0, 1 << 46))
        rejects(builder, .segmentsOverlap(first: 0, second: 1))
        // Identical twins name both of their headers.
        builder = ELFBuilder()
        builder.segments.append(builder.segments[0])
        rejects(builder, .segmentsOverlap(first: 0, second: 1))
    }

    func testThousandsOfProgramHeadersAreRefused() {
        var builder = ELFBuilder()
        builder.segments = (0..<4000).map { (1, 5, 0x1000, 0x200000 + UInt64($0) * 0x1000, 0, 0x1000) }
        rejects(builder, .tooManyProgramHeaders(count: 4000, limit: ELFImage.maximumProgramHeaders))
        // e_phnum 0xFFFF with no table behind it.
        var bytes = ELFBuilder().bytes()
        bytes[56] = 0xFF
        bytes[57] = 0xFF
        XCTAssertThrowsError(try ELFImage(bytes: bytes)) { error in
            XCTAssertEqual(error as? ELFError, .tooManyProgramHeaders(count: 0xFFFF, limit: ELFImage.maximumProgramHeaders))
        }
    }

    func testTheMostProgramHeadersAllowedStillLoad() throws {
        var builder = ELFBuilder()
        builder.segments = (0..<ELFImage.maximumProgramHeaders).map {
            (1, $0 == 0 ? 5 : 6, 0x1000, 0x200000 + UInt64($0) * 0x1000, 0, 0x1000)
        }
        let image = try ELFImage(bytes: builder.bytes())
        XCTAssertEqual(image.pageMappings(), [
            PageMapping(start: 0x200000, length: 0x1000, writable: false, executable: true),
            PageMapping(start: 0x201000, length: UInt64(ELFImage.maximumProgramHeaders - 1) * 0x1000,
                        writable: true, executable: false),
        ])
    }

    /// The largest segment the parser accepts is mapped in one step: page
    /// mappings come from segment boundaries, not from walking its 2^35 pages.
    func testPageMappingsOfAHugeSegmentAreComputedWithoutWalkingIt() throws {
        var builder = ELFBuilder()
        builder.segments[0].memorySize = ELFImage.addressLimit - 0x200000
        let image = try ELFImage(bytes: builder.bytes())
        let mappings = finishes { image.pageMappings() }
        XCTAssertEqual(mappings, [PageMapping(start: 0x200000, length: ELFImage.addressLimit - 0x200000,
                                              writable: false, executable: true)])
    }

    func testSegmentsSharingOnePageMergeTheirPermissions() throws {
        var builder = ELFBuilder()
        builder.segments = [(1, 5, 0x1000, 0x200000, 0x10, 0x10),
                            (1, 4, 0x1010, 0x200010, 0x10, 0x10),
                            (1, 6, 0x1020, 0x200020, 0x10, 0x2000),
                            (1, 4, 0x1000, 0x205000, 0x10, 0x10)]
        builder.fileSize = 0x1030
        let image = try ELFImage(bytes: builder.bytes())
        XCTAssertEqual(image.pageMappings(), [
            PageMapping(start: 0x200000, length: 0x1000, writable: true, executable: true),
            PageMapping(start: 0x201000, length: 0x2000, writable: true, executable: false),
            PageMapping(start: 0x205000, length: 0x1000, writable: false, executable: false),
        ])
    }
}
