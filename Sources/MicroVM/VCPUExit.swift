import CKVM

/// Why KVM_RUN returned, decoded from kvm_run. One case per exit the micro-VM
/// can meet; everything else is `.unsupported` with KVM's reason number.
public enum VCPUExit: Equatable, Sendable {
    /// The guest wrote `value` (size bytes, zero-extended) to an I/O port.
    case ioOut(port: UInt16, size: UInt8, value: UInt32)
    /// The guest read from an I/O port; nothing is wired to one.
    case ioIn(port: UInt16, size: UInt8)
    /// The guest touched guest-physical memory outside every slot.
    case mmio(address: UInt64, isWrite: Bool)
    case halt
    /// Triple fault: with no IDT, any guest exception ends here.
    case shutdown
    case internalError(suberror: UInt32)
    case failEntry(reason: UInt64)
    /// KVM_RUN returned EINTR because the vCPU was asked to stop.
    case interrupted
    case unsupported(reason: UInt32)
}

extension VCPUExit {
    /// Decodes the exit KVM left in `run`.
    static func decode(_ run: UnsafeMutablePointer<kvm_run>) -> VCPUExit {
        let reason = run.pointee.exit_reason
        switch Int32(reason) {
        case KVM_EXIT_IO:
            let io = ckvm_run_io(run)!.pointee
            let port = io.port
            let size = io.size
            if io.direction == UInt8(KVM_EXIT_IO_OUT) {
                // SAFETY: KVM puts the data at data_offset inside the kvm_run
                // mapping; size is 1, 2 or 4, so reading up to 4 bytes stays
                // inside the mapping.
                let base = UnsafeRawPointer(run) + Int(io.data_offset)
                var value: UInt32 = 0
                for byte in 0..<Int(min(size, 4)) {
                    value |= UInt32(base.load(fromByteOffset: byte, as: UInt8.self)) << (8 * UInt32(byte))
                }
                return .ioOut(port: port, size: size, value: value)
            }
            return .ioIn(port: port, size: size)
        case KVM_EXIT_MMIO:
            let mmio = ckvm_run_mmio(run)!.pointee
            return .mmio(address: mmio.phys_addr, isWrite: mmio.is_write != 0)
        case KVM_EXIT_HLT:
            return .halt
        case KVM_EXIT_SHUTDOWN:
            return .shutdown
        case KVM_EXIT_INTERNAL_ERROR:
            return .internalError(suberror: ckvm_run_internal(run)!.pointee.suberror)
        case KVM_EXIT_FAIL_ENTRY:
            return .failEntry(reason: ckvm_run_fail_entry(run)!.pointee.hardware_entry_failure_reason)
        case KVM_EXIT_INTR:
            return .interrupted
        default:
            return .unsupported(reason: reason)
        }
    }
}
