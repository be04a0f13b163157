import CGuestABI
import MicroVM

/// Where everything lives in a sandbox's memory: the map described in
/// hl_abi.h, computed for one configuration and one image.
public struct GuestLayout: Equatable, Sendable {
    public static let page = UInt64(HL_PAGE_SIZE)
    public static let descriptorTables = UInt64(HL_HOST_AREA_ADDR)
    public static let pageTableArea = UInt64(HL_HOST_AREA_ADDR) + LongMode.descriptorTablesSize
    public static let entryStub = UInt64(HL_ENTRY_STUB_ADDR)
    public static let bootInfo = UInt64(HL_BOOT_INFO_ADDR)
    public static let imageBase = UInt64(HL_IMAGE_BASE)
    /// The smallest heap worth starting a guest with.
    public static let minimumHeap: UInt64 = 1 << 20

    public let memorySize: UInt64
    public let image: Range<UInt64>
    public let heap: Range<UInt64>
    public let input: Range<UInt64>
    public let output: Range<UInt64>
    public let hostCall: Range<UInt64>
    public let stack: Range<UInt64>

    /// The area an image may occupy for this configuration.
    public static func imageArea(for configuration: SandboxConfiguration) -> Range<UInt64> {
        let top = fixedAreasStart(configuration)
        let limit = top > imageBase + minimumHeap + 2 * page ? top - minimumHeap - 2 * page : imageBase
        return imageBase..<limit
    }

    /// Start of the input area: everything from there up is laid out from the
    /// top of memory down, independent of the image.
    private static func fixedAreasStart(_ c: SandboxConfiguration) -> UInt64 {
        let size = UInt64(c.memoryMB) << 20
        let fixed = UInt64(c.stackSize + c.hostCallAreaSize + c.outputAreaSize + c.inputAreaSize) + 4 * page
        return size > fixed ? size - fixed : 0
    }

    public init(configuration c: SandboxConfiguration, image: ELFImage) throws(SandboxError) {
        try c.validate()
        let area = Self.imageArea(for: c)
        do { try image.check(fitsIn: area) } catch { throw .invalidGuest(error) }
        memorySize = UInt64(c.memoryMB) << 20
        let imageStart = image.addressRange.lowerBound & ~(Self.page - 1)
        let imageEnd = (image.addressRange.upperBound + Self.page - 1) & ~(Self.page - 1)
        self.image = imageStart..<imageEnd

        // Top down: guard, stack, guard, host-call, guard, output, guard, input.
        let stackTop = memorySize - Self.page
        stack = (stackTop - UInt64(c.stackSize))..<stackTop
        let hostCallEnd = stack.lowerBound - Self.page
        hostCall = (hostCallEnd - UInt64(c.hostCallAreaSize))..<hostCallEnd
        let outputEnd = hostCall.lowerBound - Self.page
        output = (outputEnd - UInt64(c.outputAreaSize))..<outputEnd
        input = Self.fixedAreasStart(c)..<(Self.fixedAreasStart(c) + UInt64(c.inputAreaSize))
        precondition(input.upperBound + Self.page == output.lowerBound)
        heap = (imageEnd + Self.page)..<(input.lowerBound - Self.page)
    }

    /// What the guest may touch, and how. The page tables are unmapped; the
    /// descriptor tables are mapped supervisor-only, out of the guest's reach;
    /// the entry stub can be run and read, not written.
    public func mappings(imageMappings: [PageMapping]) -> [PageMapping] {
        func data(_ range: Range<UInt64>, writable: Bool = true) -> PageMapping {
            PageMapping(start: range.lowerBound, length: range.upperBound - range.lowerBound,
                        writable: writable, executable: false)
        }
        return [LongMode.descriptorTablesMapping(at: Self.descriptorTables),
                PageMapping(start: Self.entryStub, length: Self.page, writable: false, executable: true),
                data(Self.bootInfo..<(Self.bootInfo + Self.page), writable: false)] + imageMappings + [
            data(heap), data(input, writable: false), data(output), data(hostCall), data(stack),
        ]
    }

    /// The pages nearly every call writes, chosen from the layout alone: the
    /// top of the stack, the start of the output, host-call and heap areas,
    /// and the start of each writable part of the image (its globals), at
    /// most `EntryStub.maximumTouchedPages`. A recycled sandbox leaves these
    /// writable between calls and restores each of them on every reset,
    /// instead of write-protecting them again, which would make the next
    /// call take a fault per page (about 3 µs each under the nested
    /// hypervisor here). The entry stub writes each of them on every call,
    /// so whether a write there faults says nothing of what earlier calls
    /// did; a reset costs a few page copies more.
    public func alwaysRestoredPages(imageMappings: [PageMapping]) -> [UInt64] {
        var starts = [stack.upperBound - Self.page, output.lowerBound, hostCall.lowerBound]
        if stack.count >= 2 * Self.page { starts.append(stack.upperBound - 2 * Self.page) }
        if !heap.isEmpty { starts.append(heap.lowerBound) }
        starts += imageMappings.filter { $0.writable && $0.length > 0 }.map(\.start)
        var seen = Set<UInt64>()
        return Array(starts.filter { seen.insert($0).inserted }.prefix(EntryStub.maximumTouchedPages))
    }

    public func bootInfoRecord(features: GuestCPUFeatures) -> hl_boot_info {
        hl_boot_info(
            magic: UInt64(HL_BOOT_MAGIC), abi_version: UInt32(HL_ABI_VERSION), reserved: 0,
            memory_size: memorySize,
            heap_start: heap.lowerBound, heap_end: heap.upperBound,
            input_addr: input.lowerBound, input_size: UInt64(input.count),
            output_addr: output.lowerBound, output_size: UInt64(output.count),
            hostcall_addr: hostCall.lowerBound, hostcall_size: UInt64(hostCall.count),
            stack_bottom: stack.lowerBound, stack_top: stack.upperBound,
            xsave_mask: features.xsaveMask, cpu_flags: features.fsgsBase ? UInt64(HL_CPU_FSGSBASE) : 0)
    }
}
