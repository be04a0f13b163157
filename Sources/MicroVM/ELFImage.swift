/// Why an ELF file was refused. Each case says what was wrong, in words an
/// operator uploading a guest can act on.
public enum ELFError: Error, Equatable, CustomStringConvertible {
    case tooLarge(size: Int, limit: Int)
    case truncated(String)
    case notELF
    case not64Bit
    case notLittleEndian
    case wrongMachine(UInt16)
    case notStaticExecutable(type: UInt16)
    case dynamic(String)
    case noLoadableSegments
    case segmentOutsideFile(index: Int)
    case segmentMemorySmallerThanFile(index: Int)
    case segmentOutOfRange(index: Int, start: UInt64, end: UInt64, allowedStart: UInt64, allowedEnd: UInt64)
    case segmentsOverlap(first: Int, second: Int)
    case entryNotExecutable(UInt64)

    public var description: String {
        switch self {
        case .tooLarge(let size, let limit): return "ELF image is \(size) bytes, over the \(limit)-byte limit"
        case .truncated(let what): return "ELF file is truncated: \(what) lies past the end of the file"
        case .notELF: return "not an ELF file (bad magic)"
        case .not64Bit: return "ELF file is not 64-bit (ELFCLASS64 required)"
        case .notLittleEndian: return "ELF file is not little-endian"
        case .wrongMachine(let machine): return "ELF machine \(machine) is not x86-64 (62)"
        case .notStaticExecutable(let type):
            return type == 3
                ? "ELF file is position-independent (ET_DYN); link a static non-PIE executable at 0x200000"
                : "ELF type \(type) is not an executable (ET_EXEC)"
        case .dynamic(let what): return "ELF file is dynamically linked (has \(what)); guests must be static"
        case .noLoadableSegments: return "ELF file has no PT_LOAD segments"
        case .segmentOutsideFile(let index): return "ELF segment \(index) points past the end of the file"
        case .segmentMemorySmallerThanFile(let index): return "ELF segment \(index) has p_memsz < p_filesz"
        case .segmentOutOfRange(let index, let start, let end, let allowedStart, let allowedEnd):
            return "ELF segment \(index) [0x\(String(start, radix: 16)), 0x\(String(end, radix: 16))) is outside the guest image area [0x\(String(allowedStart, radix: 16)), 0x\(String(allowedEnd, radix: 16)))"
        case .segmentsOverlap(let first, let second): return "ELF segments \(first) and \(second) overlap"
        case .entryNotExecutable(let entry): return "ELF entry point 0x\(String(entry, radix: 16)) is not inside an executable segment"
        }
    }
}

/// A static, non-PIE x86-64 ELF executable, parsed and checked. Parsing reads
/// only the bytes it was given, with every offset checked against the file
/// size, because guest images come from users.
public struct ELFImage: Sendable {
    public struct Segment: Equatable, Sendable {
        public var fileOffset: UInt64
        public var fileSize: UInt64
        public var address: UInt64
        public var memorySize: UInt64
        public var readable: Bool
        public var writable: Bool
        public var executable: Bool
        public var end: UInt64 { address + memorySize }
    }

    public static let maximumFileSize = 64 << 20

    public let bytes: [UInt8]
    public let entry: UInt64
    public let segments: [Segment]

    /// Lowest and highest (exclusive) addresses the segments occupy.
    public var addressRange: Range<UInt64> {
        segments.map(\.address).min()!..<segments.map(\.end).max()!
    }

    public init(bytes: [UInt8]) throws(ELFError) {
        guard bytes.count <= Self.maximumFileSize else {
            throw ELFError.tooLarge(size: bytes.count, limit: Self.maximumFileSize)
        }
        guard bytes.count >= 4, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 else {
            throw ELFError.notELF
        }
        guard bytes.count >= 64 else { throw ELFError.truncated("the ELF header") }
        guard bytes[4] == 2 else { throw ELFError.not64Bit }
        guard bytes[5] == 1 else { throw ELFError.notLittleEndian }
        let reader = LittleEndianReader(bytes)
        let type = reader.u16(16)
        let machine = reader.u16(18)
        guard machine == 62 else { throw ELFError.wrongMachine(machine) }
        guard type == 2 else { throw ELFError.notStaticExecutable(type: type) }
        let entry = reader.u64(24)
        let headerOffset = reader.u64(32)
        let headerSize = UInt64(reader.u16(54))
        let headerCount = UInt64(reader.u16(56))
        guard headerCount > 0 else { throw ELFError.noLoadableSegments }
        guard headerSize >= 56 else { throw ELFError.truncated("the program header entries") }
        let (tableSize, overflowA) = headerSize.multipliedReportingOverflow(by: headerCount)
        let (tableEnd, overflowB) = headerOffset.addingReportingOverflow(tableSize)
        guard !overflowA, !overflowB, tableEnd <= UInt64(bytes.count) else {
            throw ELFError.truncated("the program header table")
        }

        var segments: [Segment] = []
        for index in 0..<Int(headerCount) {
            let at = Int(headerOffset) + index * Int(headerSize)
            switch reader.u32(at) {
            case 1:  // PT_LOAD
                let flags = reader.u32(at + 4)
                let segment = Segment(
                    fileOffset: reader.u64(at + 8), fileSize: reader.u64(at + 32),
                    address: reader.u64(at + 16), memorySize: reader.u64(at + 40),
                    readable: flags & 4 != 0, writable: flags & 2 != 0, executable: flags & 1 != 0)
                let (fileEnd, fileOverflow) = segment.fileOffset.addingReportingOverflow(segment.fileSize)
                guard !fileOverflow, fileEnd <= UInt64(bytes.count) else { throw ELFError.segmentOutsideFile(index: index) }
                guard segment.memorySize >= segment.fileSize else { throw ELFError.segmentMemorySmallerThanFile(index: index) }
                let (_, addressOverflow) = segment.address.addingReportingOverflow(segment.memorySize)
                guard !addressOverflow else {
                    throw ELFError.segmentOutOfRange(index: index, start: segment.address, end: .max, allowedStart: 0, allowedEnd: 0)
                }
                if segment.memorySize > 0 { segments.append(segment) }
            case 2: throw ELFError.dynamic("PT_DYNAMIC")
            case 3: throw ELFError.dynamic("PT_INTERP")
            default: continue
            }
        }
        guard !segments.isEmpty else { throw ELFError.noLoadableSegments }
        let sorted = segments.sorted { $0.address < $1.address }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.address < a.end {
            throw ELFError.segmentsOverlap(first: segments.firstIndex(of: a)!, second: segments.firstIndex(of: b)!)
        }
        guard segments.contains(where: { $0.executable && $0.address <= entry && entry < $0.end }) else {
            throw ELFError.entryNotExecutable(entry)
        }
        self.bytes = bytes
        self.entry = entry
        self.segments = segments
    }

    /// Checks that every segment lies inside [allowed.lowerBound, allowed.upperBound).
    public func check(fitsIn allowed: Range<UInt64>) throws(ELFError) {
        for (index, segment) in segments.enumerated()
        where segment.address < allowed.lowerBound || segment.end > allowed.upperBound {
            throw ELFError.segmentOutOfRange(index: index, start: segment.address, end: segment.end,
                                     allowedStart: allowed.lowerBound, allowedEnd: allowed.upperBound)
        }
    }

    /// Copies the segments into guest memory (identity mapped) and zero-fills
    /// each segment's tail past its file bytes. Call `check(fitsIn:)` first.
    public func load(into memory: GuestMemory) throws {
        for segment in segments {
            let fileBytes = Int(segment.fileSize)
            try bytes.withUnsafeBytes { raw in
                let slice = UnsafeRawBufferPointer(rebasing: raw[Int(segment.fileOffset)..<Int(segment.fileOffset) + fileBytes])
                try memory.write(slice, at: segment.address)
            }
            try memory.zero(at: segment.address + segment.fileSize, length: Int(segment.memorySize - segment.fileSize))
        }
    }

    /// The page mappings the segments need: page-rounded, permissions merged
    /// where two segments share a page.
    public func pageMappings() -> [PageMapping] {
        let page = UInt64(GuestMemory.pageSize)
        var pages: [UInt64: (writable: Bool, executable: Bool)] = [:]
        for segment in segments {
            var address = segment.address & ~(page - 1)
            while address < segment.end {
                let old = pages[address] ?? (false, false)
                pages[address] = (old.writable || segment.writable, old.executable || segment.executable)
                address += page
            }
        }
        var mappings: [PageMapping] = []
        for address in pages.keys.sorted() {
            let flags = pages[address]!
            if var last = mappings.last, last.start + last.length == address,
               last.writable == flags.writable, last.executable == flags.executable {
                last.length += page
                mappings[mappings.count - 1] = last
            } else {
                mappings.append(PageMapping(start: address, length: page, writable: flags.writable, executable: flags.executable))
            }
        }
        return mappings
    }
}

/// Bounds are checked by the caller before each read.
struct LittleEndianReader {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
    func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
    func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
}
