import CGuestABI
import CKVM
import Glibc
import Logging
import MicroVM
import Synchronization

/// A guest loaded into its own micro-VM, ready to have functions called.
///
/// A sandbox has a status: a call runs only when it is `ready`; any abnormal
/// end (timeout, crash, cancellation, out of memory) poisons it; only a reset
/// to its snapshot (recyclable sandboxes) makes it ready again. A sandbox is
/// driven by one thread at a time; `stop` may come from any thread.
public final class Sandbox: @unchecked Sendable {
    // `callState` (a Mutex) guards what `stop` may touch from another thread;
    // everything else belongs to the one thread driving the sandbox.
    public enum Status: Equatable, Sendable {
        case ready
        /// The last call ended abnormally; guest state is suspect.
        case poisoned
        /// The VM itself failed; throw it away.
        case unrecoverable
    }

    public enum StopReason: Sendable { case timeout, cancelled }

    public let image: GuestImage
    public let configuration: SandboxConfiguration
    public let layout: GuestLayout
    public private(set) var status: Status = .ready

    // Released in this order: the vCPU and VM are closed before their
    // memory is unmapped, which makes teardown cheaper.
    let vcpu: VCPU
    let vm: VM
    let memory: GuestMemory
    /// For recyclable sandboxes: the whole vCPU state as built, which every
    /// reset puts back as one value.
    let initialState: VCPUState?
    /// For recyclable sandboxes: the memory as built (what the host wrote,
    /// and what the guest's init wrote), so a reset can put back any of it
    /// the guest changed. Set once, at the end of `init`.
    private(set) var snapshot: MemorySnapshot?
    /// Reused between resets, sized for one bit per page (empty in a
    /// sandbox that is not recyclable).
    var dirtyBitmap: [UInt64]
    /// Whether reading the dirty log leaves pages writable, so that resets
    /// protect them again themselves (see `VM.enableManualDirtyProtection`).
    let protectsManually: Bool
    /// With manual protection: one bit per page of
    /// `GuestLayout.alwaysRestoredPages`, which resets leave writable.
    /// All zeros otherwise.
    let alwaysRestored: [UInt64]
    /// Reused by `takeDirtyLog` for the pages it protects again.
    private var protectScratch: [UInt64]
    /// The guest's log lines: filtered, escaped, budgeted per call and
    /// queued, never written on the call's thread.
    private var guestLog: GuestLog

    /// CR2 holds the address of the last page fault. The host sets it to a
    /// value no fault can produce (non-canonical), so after a triple fault a
    /// changed CR2 means "bad memory access" rather than another exception.
    static let faultAddressSentinel: UInt64 = 0xDEAD_0000_0000_0000

    /// Whether a call is in flight and, if it was stopped, why. Guarded so a
    /// late timer or cancel for a finished call cannot stop the next one.
    private let callState = Mutex<(running: Bool, stopReason: StopReason?)>((false, nil))
    /// Bytes the host wrote into the input and host-call areas since the
    /// last reset (the dirty log sees only the guest's own writes).
    var hostWrittenInput: UInt64 = 0
    var hostWrittenHostCall: UInt64 = 0
    /// The current call's handler for other host functions, if any.
    private var hostCallHandler: (any HostCallHandler)?

    public init(kvm: KVM, image: GuestImage, configuration: SandboxConfiguration = .init(),
                logger: Logger = Logger(label: "hl.sandbox")) throws(SandboxError) {
        self.image = image
        self.configuration = configuration
        layout = try GuestLayout(configuration: configuration, image: image.elf)
        var logger = logger
        logger[metadataKey: "guest"] = "\(image.name)"
        guestLog = GuestLog(logger: logger)
        var builtRanges: [Range<UInt64>] = []
        do {
            memory = try GuestMemory(size: Int(layout.memorySize), populated: configuration.recyclable)
            vm = try kvm.makeVM()
            protectsManually = configuration.recyclable ? try vm.enableManualDirtyProtection() : false
            // A recyclable sandbox logs dirty pages from just before its
            // first prefault pass (below), which is cheaper without.
            try vm.map(memory)
            let alwaysRestoredPages = protectsManually ? layout.alwaysRestoredPages(imageMappings: image.pageMappings) : []
            try LongMode.writeDescriptorTables(into: memory, at: GuestLayout.descriptorTables)
            var tables = try PageTableBuilder(memory: memory, areaStart: GuestLayout.pageTableArea,
                                              areaEnd: GuestLayout.entryStub)
            let mappings = layout.mappings(imageMappings: image.pageMappings)
            for mapping in mappings {
                try tables.map(mapping)
            }
            try image.elf.load(into: memory)
            let features = try kvm.guestCPUFeatures()
            let prefaulting = configuration.recyclable ? mappings.filter(\.userAccessible) : []
            try memory.write(EntryStub.page(target: image.elf.entry, features: features, touching: alwaysRestoredPages,
                                            prefaulting: prefaulting, exitPort: UInt16(HL_PORT_DONE)),
                             at: GuestLayout.entryStub)
            try memory.store(layout.bootInfoRecord(features: features), at: GuestLayout.bootInfo)
            vcpu = try vm.makeVCPU()
            var sregs = LongMode.specialRegisters(from: try vcpu.resetSpecialRegisters(), pageTableRoot: tables.root,
                                                  descriptorTables: GuestLayout.descriptorTables)
            sregs.cr2 = Self.faultAddressSentinel
            // One bit per page for a recyclable sandbox's resets; a fresh
            // one never reads the dirty log.
            let pages = configuration.recyclable ? Int(layout.memorySize) / GuestMemory.pageSize : 0
            dirtyBitmap = [UInt64](repeating: 0, count: (pages + 63) / 64)
            var always = [UInt64](repeating: 0, count: dirtyBitmap.count)
            for address in alwaysRestoredPages { Self.mark(address..<(address + GuestLayout.page), in: &always) }
            alwaysRestored = always
            protectScratch = dirtyBitmap
            if configuration.recyclable {
                // Set with ioctls rather than staged, so the capture reads
                // the state the first call will start from.
                try vcpu.setSpecialRegisters(sregs)
                try vcpu.setRegisters(LongMode.registers(entry: GuestLayout.entryStub, stack: layout.stack.upperBound))
                let state = try vcpu.captureState()
                initialState = state
                // Twice: first without the dirty log, where KVM maps
                // neighbouring pages with each fault (a log makes it fault
                // on each writable page alone, eight times the faults);
                // turning the log on then write-protects every page and
                // keeps it mapped, and the second pass, which faults only
                // where the stub writes, leaves the always-restored pages
                // writable, as every call after the first finds them.
                try Self.prefault(vcpu, startingFrom: state)
                try vm.map(memory, logDirtyPages: true)
                try Self.prefault(vcpu, startingFrom: state)
                builtRanges = [
                    GuestLayout.descriptorTables..<(GuestLayout.pageTableArea + tables.used),
                    GuestLayout.entryStub..<layout.image.upperBound,
                ]
                // Start the log from a clean slate.
                try takeDirtyLog()
            } else {
                // A fresh sandbox runs once; KVM's new vCPU is its state.
                try vcpu.stageSpecialRegisters(sregs)
                initialState = nil
            }
            snapshot = nil
        } catch let error as KVMError {
            throw .host(error)
        } catch {
            throw .host(.invalidArgument("\(error)"))
        }
        if image.marker.hasInit { try runInit() }
        if configuration.recyclable { try takeSnapshot(builtRanges) }
    }

    /// Maps every page the guest can reach into KVM's page tables before any
    /// call, by running the entry stub's prefault entry once, then puts the
    /// vCPU back to `state`. Whether a page is mapped decides how long the
    /// guest's first access to it takes (a fault into the hypervisor or
    /// none), and a reset leaves mappings in place: without this, a call
    /// could time its reads to learn which pages earlier calls in the same
    /// VM, perhaps another tenant's, had touched (their input's size, the
    /// code they ran, the heap they used). With every page mapped from the
    /// start, the answer is the same whatever ran before. Reads only; the
    /// pages it writes back unchanged are the always-restored ones.
    private static func prefault(_ vcpu: VCPU, startingFrom state: VCPUState) throws {
        var registers = state.registers
        registers.rip = GuestLayout.entryStub + UInt64(EntryStub.prefaultOffset)
        try vcpu.setRegisters(registers)
        let exit = try vcpu.runUntilExit()
        guard case .ioOut(port: UInt16(HL_PORT_DONE), _, _) = exit else {
            throw KVMError.invalidArgument("mapping the guest's pages in advance ended in \(exit), not at its exit port")
        }
        try vcpu.restore(state, scope: .everything)
    }

    /// Runs the guest's init (HL_CALL_INIT). Any failure, the guest's own
    /// or a crash or timeout, fails the build: no call ever runs on a VM
    /// whose init did not finish.
    private func runInit() throws(SandboxError) {
        do {
            _ = try perform(HL_CALL_INIT, input: [], limits: CallLimits(timeoutMilliseconds: configuration.initTimeoutMilliseconds))
        } catch {
            if case .host = error { throw error }
            throw .initFailed(error)
        }
        do {
            // The call's name is not part of the state calls start from.
            try memory.zero(at: layout.input.lowerBound, length: Int(hostWrittenInput))
            hostWrittenInput = 0
            if let initialState { try vcpu.restore(initialState, scope: .everything) }
        } catch {
            throw .hostFailure(error)
        }
    }

    /// The snapshot a recyclable sandbox resets to: what the host wrote
    /// when building it, plus every page the guest's init wrote (its heap,
    /// globals and stack), as they are now.
    private func takeSnapshot(_ builtRanges: [Range<UInt64>]) throws(SandboxError) {
        do {
            try takeDirtyLog()
            markHostWrites()
            var ranges = builtRanges
            let page = UInt64(GuestMemory.pageSize)
            for (wordIndex, word) in dirtyBitmap.enumerated() where word != 0 {
                var bits = word
                while bits != 0 {
                    let start = (UInt64(wordIndex) * 64 + UInt64(bits.trailingZeroBitCount)) * page
                    bits &= bits - 1
                    if let last = ranges.last, last.upperBound == start {
                        ranges[ranges.count - 1] = last.lowerBound..<(start + page)
                    } else {
                        ranges.append(start..<(start + page))
                    }
                }
            }
            snapshot = try MemorySnapshot(memory: memory, ranges: ranges)
            hostWrittenHostCall = 0
        } catch {
            status = .unrecoverable
            throw .hostFailure(error)
        }
    }

    // MARK: Reset

    /// Reads the pages the guest wrote since the last read into
    /// `dirtyBitmap` and write-protects them again, all but the
    /// always-restored ones: under manual protection their bits stay set
    /// once written, so every later read names them again.
    private func takeDirtyLog() throws {
        try vm.readDirtyLog(into: &dirtyBitmap)
        guard protectsManually else { return }
        var any = false
        for index in dirtyBitmap.indices {
            protectScratch[index] = dirtyBitmap[index] & ~alwaysRestored[index]
            any = any || protectScratch[index] != 0
        }
        if any {
            try vm.protect(pages: &protectScratch, pageCount: Int(layout.memorySize) / GuestMemory.pageSize)
        }
    }

    /// Adds to `dirtyBitmap` the pages the host itself wrote, which the
    /// dirty log does not see: the call's name and input, and host-call
    /// replies.
    private func markHostWrites() {
        Self.mark(layout.input.lowerBound..<(layout.input.lowerBound + hostWrittenInput), in: &dirtyBitmap)
        Self.mark(layout.hostCall.lowerBound..<(layout.hostCall.lowerBound + hostWrittenHostCall), in: &dirtyBitmap)
    }

    /// Sets the bit of every page `range` touches, one bit per page.
    static func mark(_ range: Range<UInt64>, in bits: inout [UInt64]) {
        guard !range.isEmpty else { return }
        for index in Int(range.lowerBound / GuestLayout.page)...Int((range.upperBound - 1) / GuestLayout.page) {
            bits[index / 64] |= 1 << UInt64(index % 64)
        }
    }

    /// Puts a recyclable sandbox back to the state it was built in: every
    /// page the guest or the host wrote since is restored from the snapshot
    /// (or zeroed where the snapshot has nothing), and the vCPU's whole
    /// state is restored as one value. Works after any call, including one
    /// that crashed, timed out or was cancelled. Returns the pages restored.
    @discardableResult
    public func reset() throws(SandboxError) -> Int {
        guard let snapshot, let initialState, status != .unrecoverable else {
            throw .host(.invalidArgument("this sandbox cannot be reset"))
        }
        do {
            try takeDirtyLog()
            markHostWrites()
            var restored = 0
            let page = UInt64(GuestMemory.pageSize)
            for (wordIndex, word) in dirtyBitmap.enumerated() where word != 0 {
                var bits = word
                while bits != 0 {
                    let bit = UInt64(bits.trailingZeroBitCount)
                    bits &= bits - 1
                    try snapshot.restore(page: (UInt64(wordIndex) * 64 + bit) * page, into: memory)
                    restored += 1
                }
            }
            // A call that returned its result raised no exception, so only
            // what CPL3 code can write without one needs putting back.
            try vcpu.restore(initialState, scope: status == .ready ? .afterCleanEnd : .everything)
            hostWrittenInput = 0
            hostWrittenHostCall = 0
            status = .ready
            return restored
        } catch let error as KVMError {
            status = .unrecoverable
            throw .host(error)
        } catch {
            status = .unrecoverable
            throw .host(.invalidArgument("\(error)"))
        }
    }

    // MARK: Calls

    /// Calls `function` with `input` and returns the guest's result bytes.
    /// An unknown_function error names the functions the guest has.
    /// `hostCalls` answers the host functions the sandbox does not know
    /// itself during this call (see `HostCallHandler`).
    /// `logMetadata` goes on each of the guest's log lines of this call (a
    /// caller says which job it runs; the sandbox knows no jobs); it is
    /// evaluated only if the guest writes a line.
    public func call(_ function: String, input: [UInt8], limits: CallLimits = .init(),
                     hostCalls: (any HostCallHandler)? = nil,
                     logMetadata: @escaping @autoclosure () -> Logger.Metadata = [:]) throws(SandboxError) -> [UInt8] {
        guard !function.hasPrefix(HL_RESERVED_PREFIX) else {
            throw .unknownFunction("function names starting with \(HL_RESERVED_PREFIX) are reserved")
        }
        do {
            hostCallHandler = hostCalls
            defer { hostCallHandler = nil }
            return try perform(function, input: input, limits: limits, logMetadata: logMetadata)
        } catch {
            // The guest answered normally, so the VM is fit to answer one
            // more question, although the failed call poisoned it for jobs.
            guard case .unknownFunction(let message) = error, status == .poisoned,
                  let bytes = try? perform(HL_CALL_FUNCTIONS, input: [], allowPoisoned: true,
                                           limits: CallLimits(timeoutMilliseconds: min(limits.timeoutMilliseconds, 1_000))),
                  let names = try? Self.parseFunctionList(bytes) else {
                throw error
            }
            throw .unknownFunction(Self.naming(names, after: message))
        }
    }

    /// The guest's functions, as its runtime lists them (HL_CALL_FUNCTIONS),
    /// each escaped for display. A guest that answers with anything but a
    /// well-formed list fails as invalid_output.
    public func functions(limits: CallLimits = .init()) throws(SandboxError) -> [String] {
        let bytes = try perform(HL_CALL_FUNCTIONS, input: [], limits: limits)
        return try Self.parseFunctionList(bytes)
    }

    /// Most names a list may hold, and longest name: bounds on what a guest
    /// can make the host store and print.
    public static let maximumFunctions = 1024
    public static let maximumFunctionNameBytes = 256

    static func parseFunctionList(_ bytes: [UInt8]) throws(SandboxError) -> [String] {
        guard bytes.isEmpty || bytes.last == 0 else {
            throw .invalidOutput("the function list does not end with a NUL byte")
        }
        let names = bytes.split(separator: 0, omittingEmptySubsequences: false).dropLast()
        guard names.count <= maximumFunctions else {
            throw .invalidOutput("the guest lists \(names.count) functions, over the limit of \(maximumFunctions)")
        }
        var result: [String] = []
        for name in names {
            guard (1...maximumFunctionNameBytes).contains(name.count) else {
                throw .invalidOutput("the function list holds a name of \(name.count) bytes (1...\(maximumFunctionNameBytes))")
            }
            result.append(UntrustedText.escape(name))
        }
        return result
    }

    /// An unknown_function message followed by what exists, kept short.
    static func naming(_ names: [String], after message: String) -> String {
        guard !names.isEmpty else { return "\(message); the guest lists no functions" }
        var list = ""
        for (index, name) in names.enumerated() {
            let item = (index == 0 ? "" : ", ") + name
            if list.utf8.count + item.utf8.count > 400 {
                list += ", and \(names.count - index) more"
                break
            }
            list += item
        }
        return "\(message); this guest has: \(list)"
    }

    private func perform(_ function: String, input: [UInt8], allowPoisoned: Bool = false,
                         limits: CallLimits, logMetadata: @escaping () -> Logger.Metadata = { [:] }) throws(SandboxError) -> [UInt8] {
        guard status == .ready || (allowPoisoned && status == .poisoned) else {
            throw .host(.invalidArgument("the sandbox is \(status), not ready"))
        }
        try limits.validate()
        try writeCall(function, input: input)
        do {
            // Every call enters through the host's stub, which establishes
            // what the hypervisor does not and then jumps to e_entry.
            try vcpu.stageRegisters(LongMode.registers(entry: GuestLayout.entryStub, stack: layout.stack.upperBound))
        } catch {
            status = .unrecoverable
            throw .hostFailure(error)
        }

        guestLog.beginCall(maxBytes: limits.maxLogBytes, metadata: logMetadata)
        callState.withLock { state in
            state = (true, nil)
            vcpu.clearStop()
        }
        let timer = Watchdog.shared.arm(after: UInt64(limits.timeoutMilliseconds) * 1_000_000) { [weak self] in
            self?.stop(.timeout)
        }
        let outcome = Result { () throws(SandboxError) in try runLoop(limits) }
        Watchdog.shared.disarm(timer)
        callState.withLock { $0.running = false }

        switch outcome {
        case .success(let bytes):
            return bytes
        case .failure(let error):
            if status == .ready { status = .poisoned }
            if case .host = error { status = .unrecoverable }
            throw error
        }
    }

    /// Stops the call in flight, if any, from any thread. The call ends with
    /// `.timeout` or `.cancelled`; a stop with no call in flight does nothing.
    public func stop(_ reason: StopReason) {
        callState.withLock { state in
            guard state.running, state.stopReason == nil else { return }
            state.stopReason = reason
            vcpu.stop()
        }
    }

    private func writeCall(_ function: String, input: [UInt8]) throws(SandboxError) {
        let name = Array(function.utf8)
        guard (1...256).contains(name.count) else {
            throw .invalidInput("a function name must be 1 to 256 bytes")
        }
        let headerSize = MemoryLayout<hl_call_header>.size
        let total = headerSize + name.count + input.count
        guard total <= layout.input.count else {
            throw .invalidInput("the input is \(input.count) bytes, over the \(layout.input.count - headerSize - name.count)-byte input area")
        }
        let header = hl_call_header(magic: HL_CALL_MAGIC, name_len: UInt32(name.count),
                                    input_len: UInt32(input.count), reserved: 0)
        let base = layout.input.lowerBound
        do {
            try memory.store(header, at: base)
            try memory.write(name, at: base + UInt64(headerSize))
            try memory.write(input, at: base + UInt64(headerSize + name.count))
            // A guest that signals done without writing a result must not
            // hand back the previous call's.
            try memory.zero(at: layout.output.lowerBound, length: MemoryLayout<hl_result_header>.size)
        } catch {
            throw .hostFailure(error)
        }
        hostWrittenInput = max(hostWrittenInput, UInt64(total))
    }

    private func runLoop(_ limits: CallLimits) throws(SandboxError) -> [UInt8] {
        var hostCalls = 0
        while true {
            let exit: VCPUExit
            do { exit = try vcpu.runUntilExit() } catch { throw .hostFailure(error) }
            switch decide(exit) {
            case .callFinished:
                return try readResult(limits)
            case .hostCall:
                hostCalls += 1
                guard hostCalls <= limits.maxHostCalls else { throw .tooManyHostCalls(limit: limits.maxHostCalls) }
                try serviceHostCall()
                // A deadline or cancel that came while the host was busy
                // ends the call now; the guest does not run again.
                if let reason = callState.withLock({ $0.stopReason }) { throw Self.stopped(reason, limits) }
            case .stopped:
                throw Self.stopped(callState.withLock { $0.stopReason } ?? .timeout, limits)
            case .tripleFault:
                let (cr2, rip) = faultRegisters()
                if (GuestLayout.entryStub..<(GuestLayout.entryStub + GuestLayout.page)).contains(rip) {
                    // No guest code has run: CPU state this VM keeps (and
                    // no reset restores) stops the host's own stub. Not the
                    // job's fault; the VM is thrown away and the job retried.
                    throw .host(.invalidArgument("the entry stub faulted at rip 0x\(String(rip, radix: 16)): this VM cannot be put into a known state"))
                }
                if cr2 != Self.faultAddressSentinel {
                    throw .memoryAccessViolation(address: cr2, rip: rip, symbol: image.symbolicate(rip))
                }
                throw .guestCrash(reason: "the guest raised an exception (invalid instruction, divide error or similar)", rip: rip,
                                  symbol: image.symbolicate(rip))
            case .memoryViolation(let address):
                let rip = faultRegisters().rip
                throw .memoryAccessViolation(address: address, rip: rip, symbol: image.symbolicate(rip))
            case .crash(let reason):
                let rip = faultRegisters().rip
                throw .guestCrash(reason: reason, rip: rip, symbol: image.symbolicate(rip))
            }
        }
    }

    private static func stopped(_ reason: StopReason, _ limits: CallLimits) -> SandboxError {
        switch reason {
        case .cancelled: return .cancelled
        case .timeout: return .timeout(milliseconds: limits.timeoutMilliseconds)
        }
    }

    private func faultRegisters() -> (cr2: UInt64, rip: UInt64) {
        let cr2 = (try? vcpu.specialRegisters().cr2) ?? Self.faultAddressSentinel
        let rip = (try? vcpu.registers().rip) ?? 0
        return (cr2, rip)
    }

    private func readResult(_ limits: CallLimits) throws(SandboxError) -> [UInt8] {
        let headerSize = GuestMessageDecoder.headerSize
        let base = layout.output.lowerBound
        do {
            let header = try memory.read(at: base, count: headerSize)
            switch GuestMessageDecoder.resultHeader(header, outputAreaSize: layout.output.count,
                                                    maxOutputBytes: limits.maxOutputBytes) {
            case .result(let length):
                return try memory.read(at: base + UInt64(headerSize), count: length)
            case .failure(let failure, let messageLength):
                throw failure.error(message: Self.safeMessage(try memory.read(at: base + UInt64(headerSize), count: messageLength)))
            case .error(let error):
                throw error
            }
        } catch let error as SandboxError {
            throw error
        } catch {
            throw .hostFailure(error)
        }
    }

    /// Guest text headed for logs and job rows: valid UTF-8, every control,
    /// format and separator character escaped, bounded length.
    static func safeMessage(_ bytes: [UInt8]) -> String {
        UntrustedText.escape(bytes)
    }

    // MARK: Host calls

    private func serviceHostCall() throws(SandboxError) {
        let base = layout.hostCall.lowerBound
        let headerSize = MemoryLayout<hl_hostcall_request>.size
        do {
            let request: (function: UInt32, payloadLength: Int)
            switch GuestMessageDecoder.hostCallHeader(try memory.read(at: base, count: headerSize), areaSize: layout.hostCall.count) {
            case .request(let function, let payloadLength): request = (function, payloadLength)
            case .malformed(let reason): throw SandboxError.guestCrash(reason: reason, rip: faultRegisters().rip)
            }
            let payload = try memory.read(at: base + UInt64(headerSize), count: request.payloadLength)
            var reply: [UInt8] = []
            var status = HL_HOSTCALL_OK
            switch GuestMessageDecoder.hostCall(function: request.function, payload: payload) {
            case .malformed(let reason):
                throw SandboxError.guestCrash(reason: reason, rip: faultRegisters().rip)
            case .log(let level, let text):
                guestLog.record(level: Self.logLevel(level), message: text)
            case .wallClock:
                var now = timespec()
                clock_gettime(CLOCK_REALTIME, &now)
                let nanoseconds = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
                reply = withUnsafeBytes(of: nanoseconds.littleEndian) { Array($0) }
            case .unknown(let function):
                switch hostCallHandler?.handle(function: function, payload: payload) ?? .unknown {
                case .ok(let bytes):
                    guard bytes.count <= layout.hostCall.count - headerSize else {
                        throw SandboxError.host(.invalidArgument("a host-call reply of \(bytes.count) bytes does not fit the area"))
                    }
                    reply = bytes
                case .refused(let reason):
                    status = HL_HOSTCALL_REFUSED
                    reply = Array(Array(reason.utf8).prefix(layout.hostCall.count - headerSize))
                case .unknown:
                    status = HL_HOSTCALL_UNKNOWN
                }
            }
            let header = hl_hostcall_reply(magic: HL_HOSTCALL_MAGIC, status: status.rawValue,
                                           len: UInt32(reply.count), reserved: 0)
            try memory.store(header, at: base)
            try memory.write(reply, at: base + UInt64(headerSize))
            hostWrittenHostCall = max(hostWrittenHostCall, UInt64(headerSize + reply.count))
        } catch let error as SandboxError {
            throw error
        } catch {
            throw .hostFailure(error)
        }
    }

    private static func logLevel(_ level: UInt32) -> Logger.Level {
        switch level {
        case HL_LOG_DEBUG.rawValue: return .debug
        case HL_LOG_WARNING.rawValue: return .warning
        case HL_LOG_ERROR.rawValue: return .error
        default: return .info
        }
    }
}
