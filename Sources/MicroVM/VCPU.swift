import CKVM
import Glibc
import Synchronization

/// A virtual CPU: owns its fd and its kvm_run mapping. It is driven by one
/// thread at a time (`run`), and may be stopped from any thread (`stop`).
public final class VCPU: @unchecked Sendable {
    // `runState` (a Mutex) guards the running thread and the stop request;
    // kvm_run belongs to the driving thread, except immediate_exit, which
    // `stop` writes atomically under `runState`.
    let fd: Int32
    public let vm: VM
    private let mapping: UnsafeMutableRawPointer
    private let mappingSize: Int
    let run: UnsafeMutablePointer<kvm_run>

    /// The thread inside `run()` right now, so `stop()` knows whom to signal,
    /// and whether a stop was asked for since the last `clearStop()`.
    private let runState = Mutex<(thread: pthread_t?, stopRequested: Bool)>((nil, false))

    init(fd: Int32, vm: VM, installingCPUID: Bool) throws {
        let size = vm.kvm.vcpuMappingSize
        let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let pointer, pointer != MAP_FAILED else {
            throw KVMError.systemCall(operation: "mmap kvm_run", errno: errno)
        }
        self.fd = fd
        self.vm = vm
        self.mapping = pointer
        self.mappingSize = size
        self.run = ckvm_run(pointer)
        if installingCPUID { try setCPUID(vm.kvm.supportedCPUID) }
    }

    deinit {
        munmap(mapping, mappingSize)
        close(fd)
    }

    // MARK: Registers

    public func registers() throws -> kvm_regs {
        var regs = kvm_regs()
        try systemCall("KVM_GET_REGS") { ckvm_ioctl(fd, CKVM_GET_REGS, &regs) }
        return regs
    }

    public func setRegisters(_ regs: kvm_regs) throws {
        var regs = regs
        try systemCall("KVM_SET_REGS") { ckvm_ioctl(fd, CKVM_SET_REGS, &regs) }
    }

    public func specialRegisters() throws -> kvm_sregs {
        var sregs = kvm_sregs()
        try systemCall("KVM_GET_SREGS") { ckvm_ioctl(fd, CKVM_GET_SREGS, &sregs) }
        return sregs
    }

    public func setSpecialRegisters(_ sregs: kvm_sregs) throws {
        var sregs = sregs
        try systemCall("KVM_SET_SREGS") { ckvm_ioctl(fd, CKVM_SET_SREGS, &sregs) }
    }

    public func events() throws -> kvm_vcpu_events {
        var events = kvm_vcpu_events()
        try systemCall("KVM_GET_VCPU_EVENTS") { ckvm_ioctl(fd, CKVM_GET_VCPU_EVENTS, &events) }
        return events
    }

    public func setEvents(_ events: kvm_vcpu_events) throws {
        var events = events
        try systemCall("KVM_SET_VCPU_EVENTS") { ckvm_ioctl(fd, CKVM_SET_VCPU_EVENTS, &events) }
    }

    private func setCPUID(_ entries: [kvm_cpuid_entry2]) throws {
        let headerSize = MemoryLayout<kvm_cpuid2>.size
        let byteCount = headerSize + entries.count * MemoryLayout<kvm_cpuid_entry2>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 8)
        defer { raw.deallocate() }
        // SAFETY: raw is sized for the header plus every entry.
        raw.storeBytes(of: UInt32(entries.count), as: UInt32.self)
        raw.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self)
        entries.withUnsafeBytes { (raw + headerSize).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        try systemCall("KVM_SET_CPUID2") { ckvm_ioctl(fd, CKVM_SET_CPUID2, raw) }
    }

    /// The special registers this vCPU had when KVM created it.
    public func resetSpecialRegisters() throws -> kvm_sregs {
        try vm.kvm.resetSpecialRegisters(of: self)
    }

    /// Sets the general registers for the next KVM_RUN: through kvm_run
    /// where KVM supports it (no ioctl), else with KVM_SET_REGS now.
    public func stageRegisters(_ regs: kvm_regs) throws {
        guard vm.kvm.hasSyncRegisters else { return try setRegisters(regs) }
        ckvm_run_sync_regs(run)!.pointee.regs = regs
        run.pointee.kvm_dirty_regs |= CKVM_SYNC_X86_REGS
    }

    /// Sets the special registers for the next KVM_RUN, like `stageRegisters`.
    public func stageSpecialRegisters(_ sregs: kvm_sregs) throws {
        guard vm.kvm.hasSyncRegisters else { return try setSpecialRegisters(sregs) }
        ckvm_run_sync_regs(run)!.pointee.sregs = sregs
        run.pointee.kvm_dirty_regs |= CKVM_SYNC_X86_SREGS
    }

    /// Sets the pending events for the next KVM_RUN, like `stageRegisters`.
    public func stageEvents(_ events: kvm_vcpu_events) throws {
        guard vm.kvm.hasSyncEvents else { return try setEvents(events) }
        ckvm_run_sync_regs(run)!.pointee.events = events
        run.pointee.kvm_dirty_regs |= CKVM_SYNC_X86_EVENTS
    }

    // MARK: Running

    /// Runs the vCPU until its next exit. Must be called from one thread at a
    /// time. Returns `.interrupted` once a `stop()` lands, also when it landed
    /// before this call started; call `clearStop()` before the next job.
    public func runUntilExit() throws -> VCPUExit {
        let proceed = runState.withLock { state -> Bool in
            if state.stopRequested { return false }
            state.thread = pthread_self()
            return true
        }
        guard proceed else { return .interrupted }
        defer { runState.withLock { $0.thread = nil } }
        while true {
            if ckvm_ioctl_value(fd, CKVM_RUN, 0) == 0 {
                return VCPUExit.decode(run)
            }
            let code = errno
            if code == EINTR || code == EAGAIN {
                if runState.withLock({ $0.stopRequested }) { return .interrupted }
                // A stray signal with no stop request: keep running.
                ckvm_set_immediate_exit(run, 0)
                continue
            }
            throw KVMError.systemCall(operation: "KVM_RUN", errno: code)
        }
    }

    /// Stops the vCPU from any thread: KVM_RUN returns within tens of
    /// microseconds, or at once if it has not started yet. immediate_exit
    /// covers the window where the signal alone could be lost (the thread
    /// about to enter KVM_RUN).
    public func stop() {
        runState.withLock { state in
            state.stopRequested = true
            ckvm_set_immediate_exit(run, 1)
            if let thread = state.thread {
                pthread_kill(thread, ckvm_kick_signal())
            }
        }
    }

    /// Makes the vCPU runnable again after a stop.
    public func clearStop() {
        runState.withLock { state in
            state.stopRequested = false
            ckvm_set_immediate_exit(run, 0)
        }
    }
}
