import CGuestABI
import MicroVM

/// What the run loop does next after an exit. Deciding is a pure function of
/// the exit, so every case is testable without /dev/kvm.
enum ExitAction: Equatable {
    /// The guest wrote its result and signalled done.
    case callFinished
    /// The guest asked for a host function.
    case hostCall
    /// The vCPU was stopped from outside (timeout or cancellation).
    case stopped
    /// The guest faulted with no IDT to catch it; CR2 tells whether it was a
    /// bad memory access.
    case tripleFault
    case memoryViolation(address: UInt64)
    case crash(reason: String)
}

func decide(_ exit: VCPUExit) -> ExitAction {
    switch exit {
    case .ioOut(let port, _, _) where port == UInt16(HL_PORT_DONE):
        return .callFinished
    case .ioOut(let port, _, _) where port == UInt16(HL_PORT_HOSTCALL):
        return .hostCall
    case .ioOut(let port, _, _):
        return .crash(reason: "write to unknown I/O port 0x\(String(port, radix: 16))")
    case .ioIn(let port, _):
        return .crash(reason: "read from unknown I/O port 0x\(String(port, radix: 16))")
    case .mmio(let address, _):
        return .memoryViolation(address: address)
    case .interrupted:
        return .stopped
    case .shutdown:
        return .tripleFault
    case .halt:
        return .crash(reason: "hlt")
    case .internalError(let suberror):
        return .crash(reason: "KVM internal error \(suberror) (an instruction the hypervisor could not run)")
    case .failEntry(let reason):
        return .crash(reason: "VM entry failed (hardware reason 0x\(String(reason, radix: 16)))")
    case .unsupported(let reason):
        return .crash(reason: "unexpected KVM exit \(reason)")
    }
}
