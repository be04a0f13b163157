/// The code symbols of an ELF image's `.symtab`, sorted by address, to name
/// where a guest was when it crashed. Read from the section headers of an
/// image that `ELFImage` already accepted; any inconsistency there (the
/// image comes from a user) just yields no symbols, never an error, because
/// a stripped or odd symbol table does not make a guest unrunnable.
public struct ELFSymbols: Sendable {
    public struct Symbol: Equatable, Sendable {
        public var name: String
        public var address: UInt64
        /// 0 when the symbol does not say (hand-written assembly).
        public var size: UInt64
    }

    /// Bounds on work and memory for a hostile table.
    public static let maximumSymbols = 200_000
    public static let maximumNameBytes = 256

    /// Sorted by address.
    public let symbols: [Symbol]

    public init(image: ELFImage) {
        symbols = Self.read(image)
    }

    /// The code symbol of an executable segment that holds `address`, and
    /// how far into it the address is, or nil. A sized symbol covers
    /// [address, address+size); an unsized one runs up to the next symbol.
    public func locate(_ address: UInt64, in image: ELFImage) -> (name: String, offset: UInt64)? {
        guard image.segments.contains(where: { $0.executable && $0.address <= address && address < $0.end }) else {
            return nil
        }
        // Last symbol at or below the address.
        var low = 0, high = symbols.count
        while low < high {
            let middle = (low + high) / 2
            if symbols[middle].address <= address { low = middle + 1 } else { high = middle }
        }
        guard low > 0 else { return nil }
        let symbol = symbols[low - 1]
        if symbol.size > 0, address - symbol.address >= symbol.size { return nil }
        return (symbol.name, address - symbol.address)
    }

    private static func read(_ image: ELFImage) -> [Symbol] {
        let bytes = image.bytes
        let reader = LittleEndianReader(bytes)
        let sectionTable = reader.u64(40)
        let entrySize = Int(reader.u16(58))
        let count = Int(reader.u16(60))
        guard entrySize >= 64, count > 0, sectionTable < UInt64(bytes.count),
              UInt64(bytes.count) - sectionTable >= UInt64(entrySize * count) else { return [] }
        func section(_ index: Int) -> (type: UInt32, offset: UInt64, size: UInt64, link: Int, entrySize: UInt64)? {
            guard index < count else { return nil }
            let at = Int(sectionTable) + index * entrySize
            let offset = reader.u64(at + 24), size = reader.u64(at + 32)
            let (end, overflow) = offset.addingReportingOverflow(size)
            guard !overflow, end <= UInt64(bytes.count) else { return nil }
            return (reader.u32(at + 4), offset, size, Int(reader.u32(at + 40)), reader.u64(at + 56))
        }
        guard let symtab = (0..<count).lazy.compactMap({ section($0) }).first(where: { $0.type == 2 }),
              symtab.entrySize == 24, let strtab = section(symtab.link), strtab.type == 3 else { return [] }
        var symbols: [Symbol] = []
        let entries = min(Int(symtab.size / 24), maximumSymbols)
        for index in 0..<entries {
            let at = Int(symtab.offset) + index * 24
            let info = bytes[at + 4]
            let type = info & 0xF
            let sectionIndex = reader.u16(at + 6)
            let value = reader.u64(at + 8)
            // FUNC or NOTYPE (assembly labels), defined, not absolute.
            guard type == 2 || type == 0, sectionIndex != 0, sectionIndex < 0xFF00, value != 0 else { continue }
            let nameOffset = UInt64(reader.u32(at))
            guard nameOffset < strtab.size else { continue }
            let start = Int(strtab.offset + nameOffset)
            let limit = min(Int(strtab.offset + strtab.size), start + maximumNameBytes)
            var end = start
            while end < limit, bytes[end] != 0 { end += 1 }
            guard end > start else { continue }
            symbols.append(Symbol(name: String(decoding: bytes[start..<end], as: UTF8.self), address: value,
                                  size: reader.u64(at + 16)))
        }
        // At one address, prefer a sized symbol (the function) over a label.
        return symbols.sorted { ($0.address, $0.size == 0 ? 0 : 1) < ($1.address, $1.size == 0 ? 0 : 1) }
    }
}
