import Glibc
import MicroVM

/// The contents of the ranges of guest memory the host wrote when it built a
/// sandbox (descriptor and page tables, boot info, the image). Everything
/// else starts as zeros, so restoring a page is a copy from here or a clear.
final class MemorySnapshot: @unchecked Sendable {
    // No lock: immutable after init.
    private let ranges: [Range<UInt64>]
    private let copies: [[UInt8]]

    init(memory: GuestMemory, ranges: [Range<UInt64>]) throws {
        self.ranges = ranges
        copies = try ranges.map { try memory.read(at: $0.lowerBound, count: $0.count) }
    }

    /// Restores the page at `address` to its built state.
    func restore(page address: UInt64, into memory: GuestMemory) throws {
        let pageSize = UInt64(GuestMemory.pageSize)
        try memory.zero(at: address, length: Int(pageSize))
        for (range, copy) in zip(ranges, copies) where range.overlaps(address..<(address + pageSize)) {
            let start = max(range.lowerBound, address)
            let end = min(range.upperBound, address + pageSize)
            try copy.withUnsafeBytes { raw in
                let offset = Int(start - range.lowerBound)
                try memory.write(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + Int(end - start))]), at: start)
            }
        }
    }
}
