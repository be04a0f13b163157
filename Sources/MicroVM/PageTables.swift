/// A guest-virtual range mapped 1:1 onto guest-physical memory, with the
/// permissions the guest gets there.
public struct PageMapping: Equatable, Sendable {
    public var start: UInt64
    public var length: UInt64
    public var writable: Bool
    public var executable: Bool
    /// False for pages only the hypervisor's own accesses may use (CPL3 code
    /// faults on them).
    public var userAccessible: Bool

    public init(start: UInt64, length: UInt64, writable: Bool, executable: Bool, userAccessible: Bool = true) {
        self.start = start
        self.length = length
        self.writable = writable
        self.executable = executable
        self.userAccessible = userAccessible
    }
}

/// Builds x86-64 4-level page tables in guest memory, in an area the tables
/// themselves never map, so the guest can neither read nor rewrite them.
/// Every level has U/S set because the guest runs at CPL3; leaves carry the
/// real permissions. Accessed and Dirty are preset so the CPU never writes the
/// tables, which keeps them out of the dirty log of a recycled VM.
public struct PageTableBuilder {
    static let present: UInt64 = 1 << 0
    static let writable: UInt64 = 1 << 1
    static let user: UInt64 = 1 << 2
    static let accessed: UInt64 = 1 << 5
    static let dirty: UInt64 = 1 << 6
    static let largePage: UInt64 = 1 << 7
    static let noExecute: UInt64 = 1 << 63
    static let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000

    static let smallPage: UInt64 = 0x1000
    static let bigPage: UInt64 = 0x20_0000

    private let memory: GuestMemory
    private let areaEnd: UInt64
    private var nextFree: UInt64
    /// Guest-physical address of the top-level table, for CR3.
    public let root: UInt64

    /// Tables are allocated from [areaStart, areaEnd), which must be page
    /// aligned and inside `memory`.
    public init(memory: GuestMemory, areaStart: UInt64, areaEnd: UInt64) throws {
        guard areaStart % Self.smallPage == 0, areaEnd > areaStart,
              memory.contains(offset: areaStart, length: areaEnd - areaStart) else {
            throw KVMError.invalidArgument("page-table area [\(areaStart), \(areaEnd)) is not usable")
        }
        self.memory = memory
        self.areaEnd = areaEnd
        self.nextFree = areaStart
        self.root = areaStart
        _ = try allocateTable()
    }

    /// Bytes of table area used so far.
    public var used: UInt64 { nextFree - root }

    public mutating func map(_ mapping: PageMapping) throws {
        guard mapping.start % Self.smallPage == 0, mapping.length % Self.smallPage == 0,
              memory.contains(offset: mapping.start, length: mapping.length) else {
            throw KVMError.invalidArgument("mapping [\(mapping.start), +\(mapping.length)) is not page aligned or not in memory")
        }
        var leafFlags = Self.present | Self.accessed
        if mapping.userAccessible { leafFlags |= Self.user }
        if mapping.writable { leafFlags |= Self.writable | Self.dirty }
        if !mapping.executable { leafFlags |= Self.noExecute }

        var address = mapping.start
        let end = mapping.start + mapping.length
        while address < end {
            let directory = try childTable(of: try childTable(of: root, index: index(address, level: 3)),
                                           index: index(address, level: 2))
            if address % Self.bigPage == 0, end - address >= Self.bigPage {
                try setEntry(directory, index(address, level: 1), address | leafFlags | Self.largePage)
                address += Self.bigPage
            } else {
                let table = try childTable(of: directory, index: index(address, level: 1))
                try setEntry(table, index(address, level: 0), address | leafFlags)
                address += Self.smallPage
            }
        }
    }

    private func index(_ address: UInt64, level: Int) -> UInt64 {
        (address >> (12 + 9 * UInt64(level))) & 0x1FF
    }

    private func entry(_ table: UInt64, _ index: UInt64) throws -> UInt64 {
        try memory.load(UInt64.self, at: table + index * 8)
    }

    private func setEntry(_ table: UInt64, _ index: UInt64, _ value: UInt64) throws {
        try memory.store(value, at: table + index * 8)
    }

    /// The table an entry points to, allocating it on first use.
    private mutating func childTable(of table: UInt64, index: UInt64) throws -> UInt64 {
        let current = try entry(table, index)
        if current & Self.present != 0 {
            precondition(current & Self.largePage == 0, "a 4 KiB mapping inside a 2 MiB one")
            return current & Self.addressMask
        }
        let child = try allocateTable()
        try setEntry(table, index, child | Self.present | Self.writable | Self.user | Self.accessed)
        return child
    }

    private mutating func allocateTable() throws -> UInt64 {
        guard nextFree + Self.smallPage <= areaEnd else {
            throw KVMError.invalidArgument("page-table area exhausted")
        }
        let table = nextFree
        try memory.zero(at: table, length: Int(Self.smallPage))
        nextFree += Self.smallPage
        return table
    }
}
