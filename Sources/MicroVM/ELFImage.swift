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
    case tooManyProgramHeaders(count: Int, limit: Int)
    case segmentOutsideFile(index: Int)
    case segmentMemorySmallerThanFile(index: Int)
    case segmentOutOfRange(index: Int, start: UInt64, end: UInt64, allowedStart: UInt64, allowedEnd: UInt64)
    /// The segment reaches past the guest address space (or past 2^64).
    case segmentTooLarge(index: Int, start: UInt64, size: UInt64, limit: UInt64)
    case segmentsOverlap(first: Int, second: Int)
    case entryNotExecutable(UInt64)
    case malformedNote(index: Int)

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
        case .tooManyProgramHeaders(let count, let limit):
            return "ELF file has \(count) program headers, over the limit of \(limit)"
        case .segmentOutsideFile(let index): return "ELF segment \(index) points past the end of the file"
        case .segmentMemorySmallerThanFile(let index): return "ELF segment \(index) has p_memsz < p_filesz"
        case .segmentOutOfRange(let index, let start, let end, let allowedStart, let allowedEnd):
            return "ELF segment \(index) [0x\(String(start, radix: 16)), 0x\(String(end, radix: 16))) is outside the guest image area [0x\(String(allowedStart, radix: 16)), 0x\(String(allowedEnd, radix: 16)))"
        case .segmentTooLarge(let index, let start, let size, let limit):
            return "ELF segment \(index) at 0x\(String(start, radix: 16)) claims 0x\(String(size, radix: 16)) bytes, past the guest address limit 0x\(String(limit, radix: 16))"
        case .segmentsOverlap(let first, let second): return "ELF segments \(first) and \(second) overlap"
        case .malformedNote(let index): return "ELF segment \(index) (PT_NOTE) holds malformed or too many notes"
        case .entryNotExecutable(let entry): return "ELF entry point 0x\(String(entry, radix: 16)) is not inside an executable segment"
        }
    }
}

/// A static, non-PIE x86-64 ELF executable, parsed and checked. Parsing reads
/// only the bytes it was given, with every offset checked against the file
/// size, because guest images come from users. Every check is O(segments)
/// with overflow-checked arithmetic, and nothing here walks a segment page by
/// page: a 4 KiB file can claim any size, so sizes are refused before anyone
/// acts on them.
public struct ELFImage: Sendable {
    public struct Segment: Equatable, Sendable {
        /// Which program header describes it: what error messages name.
        public var index: Int
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
    /// Static guests have a handful of program headers (ours have 3, a
    /// Linux executable about 13); more is a file built to make work.
    public static let maximumProgramHeaders = 64
    /// Guest virtual addresses equal guest physical ones, and a 4-level page
    /// table's lower canonical half ends here: no segment can be mapped past
    /// it, whatever the guest's memory. Callers check the real memory size
    /// with `check(fitsIn:)`.
    public static let addressLimit: UInt64 = 1 << 47

    /// One entry of a PT_NOTE segment: who defined it (`name`, without its
    /// NUL), its type, and its descriptor bytes.
    public struct Note: Equatable, Sendable {
        public var name: String
        public var type: UInt32
        public var descriptor: [UInt8]
    }

    /// More notes than this is a file built to make work; ours have one.
    public static let maximumNotes = 64

    public let bytes: [UInt8]
    public let entry: UInt64
    public let segments: [Segment]
    /// The notes of every PT_NOTE segment, in file order. A malformed note
    /// segment refuses the image.
    public let notes: [Note]

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
        let headerCount = Int(reader.u16(56))
        guard headerCount > 0 else { throw ELFError.noLoadableSegments }
        guard headerCount <= Self.maximumProgramHeaders else {
            throw ELFError.tooManyProgramHeaders(count: headerCount, limit: Self.maximumProgramHeaders)
        }
        guard headerSize >= 56 else { throw ELFError.truncated("the program header entries") }
        let (tableEnd, overflow) = headerOffset.addingReportingOverflow(headerSize * UInt64(headerCount))
        guard !overflow, tableEnd <= UInt64(bytes.count) else {
            throw ELFError.truncated("the program header table")
        }

        var segments: [Segment] = []
        var notes: [Note] = []
        for index in 0..<headerCount {
            let at = Int(headerOffset) + index * Int(headerSize)
            switch reader.u32(at) {
            case 1:  // PT_LOAD
                let flags = reader.u32(at + 4)
                let segment = Segment(
                    index: index, fileOffset: reader.u64(at + 8), fileSize: reader.u64(at + 32),
                    address: reader.u64(at + 16), memorySize: reader.u64(at + 40),
                    readable: flags & 4 != 0, writable: flags & 2 != 0, executable: flags & 1 != 0)
                let (fileEnd, fileOverflow) = segment.fileOffset.addingReportingOverflow(segment.fileSize)
                guard !fileOverflow, fileEnd <= UInt64(bytes.count) else { throw ELFError.segmentOutsideFile(index: index) }
                guard segment.memorySize >= segment.fileSize else { throw ELFError.segmentMemorySmallerThanFile(index: index) }
                let (end, addressOverflow) = segment.address.addingReportingOverflow(segment.memorySize)
                guard !addressOverflow, end <= Self.addressLimit else {
                    throw ELFError.segmentTooLarge(index: index, start: segment.address, size: segment.memorySize,
                                                   limit: Self.addressLimit)
                }
                if segment.memorySize > 0 { segments.append(segment) }
            case 4:  // PT_NOTE
                let offset = reader.u64(at + 8), size = reader.u64(at + 32)
                let (end, overflow) = offset.addingReportingOverflow(size)
                guard !overflow, end <= UInt64(bytes.count) else { throw ELFError.segmentOutsideFile(index: index) }
                notes += try Self.parseNotes(reader, from: Int(offset), to: Int(end), align: reader.u64(at + 48) == 8 ? 8 : 4,
                                             segment: index)
                guard notes.count <= Self.maximumNotes else { throw ELFError.malformedNote(index: index) }
            case 2: throw ELFError.dynamic("PT_DYNAMIC")
            case 3: throw ELFError.dynamic("PT_INTERP")
            default: continue
            }
        }
        guard !segments.isEmpty else { throw ELFError.noLoadableSegments }
        // Sorted by address, two segments overlap only if two neighbours do.
        let sorted = segments.sorted { $0.address < $1.address }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.address < a.end {
            throw ELFError.segmentsOverlap(first: min(a.index, b.index), second: max(a.index, b.index))
        }
        guard segments.contains(where: { $0.executable && $0.address <= entry && entry < $0.end }) else {
            throw ELFError.entryNotExecutable(entry)
        }
        self.bytes = bytes
        self.entry = entry
        self.segments = segments
        self.notes = notes
    }

    /// Note entries between two file offsets already checked against the
    /// file: each a 12-byte header, the name and the descriptor, both padded
    /// to `align`.
    private static func parseNotes(_ reader: LittleEndianReader, from start: Int, to end: Int, align: Int,
                                   segment: Int) throws(ELFError) -> [Note] {
        var notes: [Note] = []
        var at = start
        func padded(_ n: Int) -> Int { (n + align - 1) & ~(align - 1) }
        while at < end {
            guard end - at >= 12 else { throw ELFError.malformedNote(index: segment) }
            let nameSize = Int(reader.u32(at)), descriptorSize = Int(reader.u32(at + 4)), type = reader.u32(at + 8)
            // Each size is below 2^32, so these sums cannot overflow Int.
            let nameStart = at + 12
            let descriptorStart = padded(nameStart + nameSize)
            let next = padded(descriptorStart + descriptorSize)
            guard descriptorStart + descriptorSize <= end, notes.count < maximumNotes else {
                throw ELFError.malformedNote(index: segment)
            }
            var name = Array(reader.bytes[nameStart..<nameStart + nameSize])
            if name.last == 0 { name.removeLast() }
            notes.append(Note(name: String(decoding: name, as: UTF8.self), type: type,
                              descriptor: Array(reader.bytes[descriptorStart..<descriptorStart + descriptorSize])))
            at = next
        }
        return notes
    }

    /// Checks that every segment lies inside [allowed.lowerBound, allowed.upperBound).
    public func check(fitsIn allowed: Range<UInt64>) throws(ELFError) {
        for segment in segments where segment.address < allowed.lowerBound || segment.end > allowed.upperBound {
            throw ELFError.segmentOutOfRange(index: segment.index, start: segment.address, end: segment.end,
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
    /// where segments share a page. O(segments log segments): a sweep over
    /// the page boundaries where segments begin and end, never over pages.
    public func pageMappings() -> [PageMapping] {
        let page = UInt64(GuestMemory.pageSize)
        // Segments end below addressLimit, so rounding up cannot overflow.
        var boundaries: [(address: UInt64, change: Int, writable: Bool, executable: Bool)] = []
        for segment in segments {
            boundaries.append((segment.address & ~(page - 1), 1, segment.writable, segment.executable))
            boundaries.append(((segment.end + page - 1) & ~(page - 1), -1, segment.writable, segment.executable))
        }
        boundaries.sort { $0.address < $1.address }
        // How many segments cover the pages from the current boundary on,
        // and how many of them are writable and executable.
        var covering = 0, writable = 0, executable = 0
        var mappings: [PageMapping] = []
        var next = 0
        while next < boundaries.count {
            let address = boundaries[next].address
            while next < boundaries.count, boundaries[next].address == address {
                let boundary = boundaries[next]
                covering += boundary.change
                if boundary.writable { writable += boundary.change }
                if boundary.executable { executable += boundary.change }
                next += 1
            }
            guard covering > 0, next < boundaries.count else { continue }
            let length = boundaries[next].address - address
            if var last = mappings.last, last.start + last.length == address,
               last.writable == (writable > 0), last.executable == (executable > 0) {
                last.length += length
                mappings[mappings.count - 1] = last
            } else {
                mappings.append(PageMapping(start: address, length: length, writable: writable > 0, executable: executable > 0))
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
