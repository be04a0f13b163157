import Foundation
import MicroVM
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
