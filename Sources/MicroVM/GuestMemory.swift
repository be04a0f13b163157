import Glibc

/// One slab of guest memory, mapped in this process and handed to KVM as a
/// memory slot. Every access from the host is bounds-checked with
/// overflow-safe arithmetic, because offsets and lengths often come from the
/// guest.
public final class GuestMemory: @unchecked Sendable {
    // No lock: base and size never change; the bytes are the guest's, written
    // by the one thread that drives the sandbox (or by KVM while it runs).
    public let base: UnsafeMutableRawPointer
    public let size: Int

    /// `populated`: give every page its own zeroed frame now
    /// (MADV_POPULATE_WRITE), rather than when it is first touched. An
    /// untouched page reads as the kernel's shared zero page and its first
    /// write copies it, a slower fault than a write to a page that has its
    /// own frame; in memory that is reused, which pages have frames would
    /// otherwise depend on what earlier guests wrote.
    public init(size: Int, populated: Bool = false) throws {
        guard size > 0, size % GuestMemory.pageSize == 0 else {
            throw KVMError.invalidArgument("guest memory size \(size) is not a positive multiple of 4 KiB")
        }
        // MAP_NORESERVE: unless populated, pages are only backed once
        // touched, so a 1 GiB slab for a guest that uses 2 MiB costs 2 MiB.
        let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let pointer, pointer != MAP_FAILED else {
            throw KVMError.systemCall(operation: "mmap guest memory (\(size) bytes)", errno: errno)
        }
        self.base = pointer
        self.size = size
        guard populated else { return }
        // MADV_POPULATE_WRITE (Linux 5.14) faults the pages in within the
        // kernel, about a third faster than touching each from here, and
        // says when memory ran out; older kernels get the touches.
        if madvise(pointer, size, Self.populateWrite) != 0 {
            guard errno == EINVAL else {
                // deinit unmaps the slab: every property is set.
                throw KVMError.systemCall(operation: "madvise(MADV_POPULATE_WRITE) guest memory (\(size) bytes)", errno: errno)
            }
            for offset in stride(from: 0, to: size, by: Self.pageSize) {
                // SAFETY: offset < size; the slab is new, so every byte is 0.
                (pointer + offset).storeBytes(of: 0, as: UInt8.self)
            }
        }
    }

    /// MADV_POPULATE_WRITE, which Glibc's headers here may not define.
    private static let populateWrite: Int32 = 23

    deinit { munmap(base, size) }

    public static let pageSize = 4096

    /// Whether [offset, offset + length) lies inside the slab.
    public func contains(offset: UInt64, length: UInt64) -> Bool {
        let (end, overflow) = offset.addingReportingOverflow(length)
        return !overflow && end <= UInt64(size)
    }

    public func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try check(offset, UInt64(bytes.count))
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        // SAFETY: bounds checked above.
        (base + Int(offset)).copyMemory(from: source, byteCount: bytes.count)
    }

    public func write(_ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { raw in try write(raw, at: offset) }
    }

    public func store<T>(_ value: T, at offset: UInt64) throws {
        try withUnsafeBytes(of: value) { raw in try write(raw, at: offset) }
    }

    public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        try check(offset, UInt64(count))
        // SAFETY: bounds checked above.
        return Array(UnsafeRawBufferPointer(start: base + Int(offset), count: count))
    }

    public func load<T>(_ type: T.Type, at offset: UInt64) throws -> T {
        try check(offset, UInt64(MemoryLayout<T>.size))
        // SAFETY: bounds checked above; loadUnaligned tolerates any offset.
        return (base + Int(offset)).loadUnaligned(as: T.self)
    }

    /// Fills [offset, offset + length) with zeros.
    public func zero(at offset: UInt64, length: Int) throws {
        try check(offset, UInt64(length))
        memset(base + Int(offset), 0, length)
    }

    private func check(_ offset: UInt64, _ length: UInt64) throws {
        guard contains(offset: offset, length: length) else {
            throw KVMError.invalidArgument("guest memory access [\(offset), +\(length)) outside \(size) bytes")
        }
    }
}
