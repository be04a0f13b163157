import MicroVM
import Sandbox

/// The ELF loader on any bytes. Invariants:
/// - parsing ends in an image or an ELFError, and GuestImage agrees with it,
///   adding only the bound of the largest guest memory;
/// - an accepted image's segments lie inside the file and the address
///   space, do not overlap, and the entry is in an executable one;
/// - its page mappings are sorted, page aligned, merged, cover exactly the
///   segments' pages with the permissions of the segments there (and equal
///   a page-by-page computation where that is small enough to do);
/// - the image written back out with its parsed headers parses the same;
/// - its symbol table is bounded and sorted, and lookups stay inside it;
/// - GuestImage refuses an ABI marker only when the marker is invalid;
/// - where it fits a sandbox, the layout's areas are ordered with guard
///   pages between them, and loading it puts its bytes where they belong.
enum ELFCheck {
    static let page = UInt64(GuestMemory.pageSize)
    static let largestMemory = UInt64(SandboxConfiguration.absoluteMaximumMemoryMB) << 20

    static func check(_ bytes: [UInt8]) {
        let parsed = Result { () throws(ELFError) in try ELFImage(bytes: bytes) }
        let guest = Result { () throws(SandboxError) in try GuestImage(name: "fuzz", bytes: bytes) }
        guard case .success(let image) = parsed else {
            if case .failure(let error) = parsed {
                expect(guest.failure == .invalidGuest(error), "GuestImage fails as the parser does: \(error)")
            }
            return
        }
        checkSegments(image, fileSize: bytes.count)
        let mappings = image.pageMappings()
        checkMappings(mappings, of: image.segments)
        checkReparse(image)
        checkSymbols(image)

        let fitsLargestMemory = image.segments.allSatisfy { $0.address >= GuestLayout.imageBase && $0.end <= largestMemory }
        switch guest {
        case .success:
            expect(fitsLargestMemory, "GuestImage accepts only images inside the largest memory")
        case .failure(let error):
            if case .incompatibleGuest = error {
                if case .invalid = GuestMarker(image) { return }
                return expect(false, "GuestImage refuses a marker only when the marker is invalid: \(error)")
            }
            guard case .invalidGuest(.segmentOutOfRange) = error, !fitsLargestMemory else {
                return expect(false, "GuestImage refuses an image the parser accepts only for its memory bound: \(error)")
            }
            return
        }
        for configuration in [SandboxConfiguration(memoryMB: SandboxConfiguration.minimumMemoryMB), SandboxConfiguration()] {
            guard let layout = try? GuestLayout(configuration: configuration, image: image) else { continue }
            checkLayout(layout, image: image, mappings: mappings)
        }
        if let layout = try? GuestLayout(configuration: .init(memoryMB: SandboxConfiguration.minimumMemoryMB), image: image) {
            checkLoad(image, into: layout)
        }
    }

    static func checkSegments(_ image: ELFImage, fileSize: Int) {
        let segments = image.segments
        expect(!segments.isEmpty && segments.count <= ELFImage.maximumProgramHeaders, "1...64 segments, not \(segments.count)")
        for segment in segments {
            let fileEnd = segment.fileOffset.addingReportingOverflow(segment.fileSize)
            expect(!fileEnd.overflow && fileEnd.partialValue <= UInt64(fileSize), "segment \(segment.index) inside the file")
            expect(segment.memorySize > 0 && segment.memorySize >= segment.fileSize, "segment \(segment.index) sizes")
            let end = segment.address.addingReportingOverflow(segment.memorySize)
            expect(!end.overflow && end.partialValue <= ELFImage.addressLimit, "segment \(segment.index) inside the address space")
        }
        let sorted = segments.sorted { $0.address < $1.address }
        for (a, b) in zip(sorted, sorted.dropFirst()) {
            expect(a.end <= b.address, "segments \(a.index) and \(b.index) do not overlap")
        }
        expect(segments.contains { $0.executable && $0.address <= image.entry && image.entry < $0.end }, "entry is executable")
        expect(image.addressRange.lowerBound == sorted.first!.address && image.addressRange.upperBound == sorted.last!.end,
               "address range spans the segments")
    }

    static func pages(of segment: ELFImage.Segment) -> Range<UInt64> {
        (segment.address & ~(page - 1))..<((segment.end + page - 1) & ~(page - 1))
    }

    static func checkMappings(_ mappings: [PageMapping], of segments: [ELFImage.Segment]) {
        expect(!mappings.isEmpty && mappings.count <= 2 * segments.count, "\(mappings.count) mappings for \(segments.count) segments")
        for (index, mapping) in mappings.enumerated() {
            expect(mapping.start % page == 0 && mapping.length % page == 0 && mapping.length > 0, "mapping \(index) page aligned")
            expect(mapping.userAccessible, "image pages are the guest's")
            let range = mapping.start..<(mapping.start + mapping.length)
            let touching = segments.filter { pages(of: $0).overlaps(range) }
            expect(!touching.isEmpty, "mapping \(index) belongs to a segment")
            expect(mapping.writable == touching.contains { $0.writable }, "mapping \(index) writable as its segments")
            expect(mapping.executable == touching.contains { $0.executable }, "mapping \(index) executable as its segments")
            if index > 0 {
                let previous = mappings[index - 1]
                let previousEnd = previous.start + previous.length
                expect(previousEnd <= mapping.start, "mappings sorted and apart")
                expect(previousEnd < mapping.start || previous.writable != mapping.writable
                       || previous.executable != mapping.executable, "neighbours with equal permissions are merged")
            }
        }
        // Every page of every segment is mapped, and nothing else is: the
        // mapped total equals the pages the segments cover.
        for segment in segments {
            let range = pages(of: segment)
            var covered = range.lowerBound
            for mapping in mappings where mapping.start <= covered && covered < mapping.start + mapping.length {
                covered = min(range.upperBound, mapping.start + mapping.length)
                if covered == range.upperBound { break }
            }
            expect(covered == range.upperBound, "segment \(segment.index) mapped to its end")
        }
        var union: UInt64 = 0
        var reach: UInt64 = 0
        for range in segments.map(pages(of:)).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            let start = max(range.lowerBound, reach)
            if range.upperBound > start { union += range.upperBound - start }
            reach = max(reach, range.upperBound)
        }
        expect(mappings.reduce(0) { $0 + $1.length } == union, "mappings cover exactly the segments' pages")

        // The page-by-page computation the loader used to do, where it is cheap.
        guard segments.reduce(UInt64(0), { $0 + UInt64(pages(of: $1).count) / page }) <= 4096 else { return }
        var perPage: [UInt64: (writable: Bool, executable: Bool)] = [:]
        for segment in segments {
            for address in stride(from: pages(of: segment).lowerBound, to: pages(of: segment).upperBound, by: Int(page)) {
                let old = perPage[address] ?? (false, false)
                perPage[address] = (old.writable || segment.writable, old.executable || segment.executable)
            }
        }
        var fromMappings: [UInt64: (writable: Bool, executable: Bool)] = [:]
        for mapping in mappings {
            for address in stride(from: mapping.start, to: mapping.start + mapping.length, by: Int(page)) {
                fromMappings[address] = (mapping.writable, mapping.executable)
            }
        }
        expect(perPage.count == fromMappings.count && perPage.allSatisfy { address, flags in
            fromMappings[address].map { $0 == flags } ?? false
        }, "mappings equal the page-by-page permissions")
    }

    /// Writes the parsed segments back out as a fresh program header table
    /// (behind the original bytes, which stay the segments' file data) and
    /// parses that: the same segments and entry must come back.
    static func checkReparse(_ image: ELFImage) {
        var bytes = image.bytes
        let tableOffset = (bytes.count + 7) & ~7
        guard tableOffset + 56 * image.segments.count <= ELFImage.maximumFileSize else { return }
        bytes += [UInt8](repeating: 0, count: tableOffset - bytes.count + 56 * image.segments.count)
        func put<T: FixedWidthInteger>(_ value: T, _ at: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (i, byte) in $0.enumerated() { bytes[at + i] = byte } }
        }
        for (index, segment) in image.segments.enumerated() {
            let at = tableOffset + 56 * index
            let flags = UInt32(segment.readable ? 4 : 0) | UInt32(segment.writable ? 2 : 0) | UInt32(segment.executable ? 1 : 0)
            put(UInt32(1), at); put(flags, at + 4); put(segment.fileOffset, at + 8); put(segment.address, at + 16)
            put(segment.address, at + 24); put(segment.fileSize, at + 32); put(segment.memorySize, at + 40); put(page, at + 48)
        }
        put(UInt64(tableOffset), 32); put(UInt16(56), 54); put(UInt16(image.segments.count), 56)
        guard let again = try? ELFImage(bytes: bytes) else { return expect(false, "the image written back parses") }
        expect(again.entry == image.entry, "the entry survives a round trip")
        var renumbered = image.segments
        for index in renumbered.indices { renumbered[index].index = index }
        expect(again.segments == renumbered, "the segments survive a round trip")
    }

    /// Whatever the section headers say, the symbol table is bounded and
    /// sorted, and looking up any code address ends in a symbol inside
    /// code or nothing.
    static func checkSymbols(_ image: ELFImage) {
        let symbols = ELFSymbols(image: image)
        expect(symbols.symbols.count <= ELFSymbols.maximumSymbols, "at most \(ELFSymbols.maximumSymbols) symbols")
        expect(zip(symbols.symbols, symbols.symbols.dropFirst()).allSatisfy { $0.address <= $1.address }, "symbols sorted")
        expect(symbols.symbols.allSatisfy { !$0.name.isEmpty && $0.name.utf8.count <= 4 * ELFSymbols.maximumNameBytes },
               "symbol names bounded")
        for segment in image.segments where segment.executable {
            for address in [segment.address, image.entry, segment.end - 1] {
                if let found = symbols.locate(address, in: image) {
                    expect(found.offset <= address, "a symbol at or below the address")
                }
            }
        }
    }

    static func checkLayout(_ layout: GuestLayout, image: ELFImage, mappings: [PageMapping]) {
        expect(layout.image.lowerBound >= GuestLayout.imageBase
               && layout.image.lowerBound <= image.addressRange.lowerBound
               && layout.image.upperBound >= image.addressRange.upperBound, "the image area holds the image")
        let areas = [layout.image, layout.heap, layout.input, layout.output, layout.hostCall, layout.stack]
        for (a, b) in zip(areas, areas.dropFirst()) {
            expect(a.upperBound + GuestLayout.page <= b.lowerBound, "a guard page between areas")
        }
        expect(layout.heap.count >= Int(GuestLayout.minimumHeap), "the heap is at least the minimum")
        expect(layout.stack.upperBound + GuestLayout.page == layout.memorySize, "a guard page above the stack")
        for mapping in layout.mappings(imageMappings: mappings) {
            let end = mapping.start.addingReportingOverflow(mapping.length)
            expect(!end.overflow && end.partialValue <= layout.memorySize, "every mapping inside guest memory")
        }
    }

    /// Loads the image into memory the size of the layout (an mmap, no VM)
    /// and reads it back: each segment's file bytes, then zeros to its end.
    static func checkLoad(_ image: ELFImage, into layout: GuestLayout) {
        guard let memory = try? GuestMemory(size: Int(layout.memorySize)) else { return }
        do { try image.load(into: memory) } catch { return expect(false, "a checked image loads: \(error)") }
        for segment in image.segments {
            guard let loaded = try? memory.read(at: segment.address, count: Int(segment.memorySize)) else {
                return expect(false, "segment \(segment.index) readable where it was loaded")
            }
            let start = Int(segment.fileOffset)
            expect(loaded.prefix(Int(segment.fileSize)).elementsEqual(image.bytes[start..<(start + Int(segment.fileSize))]),
                   "segment \(segment.index) holds its file bytes")
            expect(loaded.dropFirst(Int(segment.fileSize)).allSatisfy { $0 == 0 }, "segment \(segment.index) zero past its file bytes")
        }
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
