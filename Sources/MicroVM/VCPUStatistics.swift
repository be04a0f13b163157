import CKVM
import Glibc

extension VCPU {
    /// KVM's own counters for this vCPU (its binary statistics,
    /// KVM_GET_STATS_FD), by name, each counter's first value. Tests compare
    /// the page-fault counters of two VMs to tell whether their memory is
    /// mapped alike; nothing on a call's path reads them.
    public func statistics() throws -> [String: UInt64] {
        let statsFD = try systemCall("KVM_GET_STATS_FD") { ckvm_ioctl_value(fd, CKVM_GET_STATS_FD, 0) }
        defer { close(statsFD) }
        var header = kvm_stats_header()
        try readExactly(statsFD, into: &header, at: 0)
        // Each descriptor is a kvm_stats_desc followed by its name.
        let descriptorSize = MemoryLayout<kvm_stats_desc>.size + Int(header.name_size)
        var descriptors = [UInt8](repeating: 0, count: descriptorSize * Int(header.num_desc))
        try descriptors.withUnsafeMutableBytes { try readExactly(statsFD, into: $0, at: Int(header.desc_offset)) }
        var counters: [String: UInt64] = [:]
        for index in 0..<Int(header.num_desc) {
            let base = index * descriptorSize
            let (offset, size) = descriptors.withUnsafeBytes { raw -> (UInt32, UInt16) in
                let descriptor = raw.loadUnaligned(fromByteOffset: base, as: kvm_stats_desc.self)
                return (descriptor.offset, descriptor.size)
            }
            guard size > 0 else { continue }
            let nameStart = base + MemoryLayout<kvm_stats_desc>.size
            let nameBytes = descriptors[nameStart..<(nameStart + Int(header.name_size))].prefix { $0 != 0 }
            var value: UInt64 = 0
            try withUnsafeMutableBytes(of: &value) {
                try readExactly(statsFD, into: $0, at: Int(header.data_offset) + Int(offset))
            }
            counters[String(decoding: nameBytes, as: UTF8.self)] = value
        }
        return counters
    }

    private func readExactly<T>(_ fd: Int32, into value: inout T, at offset: Int) throws {
        try withUnsafeMutableBytes(of: &value) { try readExactly(fd, into: $0, at: offset) }
    }

    private func readExactly(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws {
        let count = try systemCall("read KVM statistics") { Int32(truncatingIfNeeded: pread(fd, buffer.baseAddress, buffer.count, off_t(offset))) }
        guard Int(count) == buffer.count else {
            throw KVMError.systemCall(operation: "read KVM statistics: short read", errno: EIO)
        }
    }
}
