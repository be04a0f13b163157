import Foundation
import MicroVM
import Sandbox

/// How many iterations each micro-benchmark runs. The first few of each are
/// warm-up and not recorded (page faults on first touch, lazy
/// initialisation, the watchdog thread starting).
struct MicroPlan {
    /// Iterations of every floor candidate and the fresh call, each way.
    var creations: Int
    var recycledCalls: Int
    var hostCallPairs: Int
    var hostCallsPerCall: UInt32 = 64
    var resetsPerSize: Int
    var cancels: Int

    static let full = MicroPlan(creations: 3000, recycledCalls: 30_000,
                                hostCallPairs: 3000, resetsPerSize: 5000, cancels: 1000)
    static let quick = MicroPlan(creations: 1000, recycledCalls: 10_000,
                                 hostCallPairs: 1000, resetsPerSize: 1000, cancels: 200)

    static func warmup(_ iterations: Int) -> Int { max(5, iterations / 20) }
}

/// A minimal VM's phases, in microseconds.
struct FloorFigures {
    var total = Samples()
    var create = Samples()
    var run = Samples()
    var teardown = Samples()

    mutating func add(_ timing: FloorTiming) {
        total.add(timing.total)
        create.add(timing.create)
        run.add(timing.run)
        teardown.add(timing.teardown)
    }
}

/// One floor candidate's figures, both ways.
struct FloorCandidateFigures {
    var name: String
    var detail: String
    var resident = FloorFigures()
    var alone = FloorFigures()
}

/// A fresh sandbox call's phases, in microseconds.
struct FreshFigures {
    var total = Samples()
    var create = Samples()
    var call = Samples()
    var teardown = Samples()
}

/// Everything the micro-benchmarks measured, in microseconds. Headline
/// figures are taken with one idle VM resident in this process (see
/// `ResidentVM`); the `alone` ones without it.
struct MicroResults {
    var floorCandidates: [FloorCandidateFigures] = []
    /// The floor: the candidate with the lowest p50 with a VM resident.
    var floorChoice = 0
    var floor: FloorFigures { floorCandidates.isEmpty ? FloorFigures() : floorCandidates[floorChoice].resident }
    var floorAlone: FloorFigures { floorCandidates.isEmpty ? FloorFigures() : floorCandidates[floorChoice].alone }
    var floorName: String { floorCandidates.isEmpty ? "none" : floorCandidates[floorChoice].name }

    var fresh = FreshFigures()
    var freshAlone = FreshFigures()

    var recycled = Samples()
    var recycledCall = Samples()
    var recycledReset = Samples()
    /// Pages the reset after an echo call restored (the last call's).
    var echoDirtyPages = 0

    /// Per exit, averaged over blocks of `hostCallsPerCall` exits.
    var ioExit = Samples()
    /// Per host call: (call with K host calls - adjacent call with none) / K.
    var hostCall = Samples()
    var probeCallNoHostCalls = Samples()

    /// Per size: pages the call dirtied, pages reset reported restoring, timings.
    var reset: [(dirtied: Int, restored: Int, samples: Samples)] = []

    var cancel = Samples()
    /// Stops that found no call in flight yet (the call then ran into its timeout).
    var cancelMissed = 0
}

/// One idle VM with one vCPU, held while the headline figures are taken.
/// Creating the first VM or vCPU on a host, and closing the last, flips
/// kernel static keys in KVM: the kernel patches its own text and
/// interrupts every CPU, which under the nested hypervisor here costs
/// hundreds of microseconds per VM. A worker always has VMs alive (its
/// recycled pool, its fresh stock), and so does any other process using KVM
/// on the host; holding one here makes the figures independent of whatever
/// else runs on the machine. The `alone` figures show the price without it.
struct ResidentVM {
    let vm: VM
    let vcpu: VCPU

    init(kvm: KVM) throws {
        vm = try kvm.makeVM()
        vcpu = try vm.makeVCPU()
    }
}

/// The in-process measurements: KVM, MicroVM and Sandbox, no database.
struct MicroBenchmarks {
    let kvm: KVM
    let demo: GuestImage
    let plan: MicroPlan
    let progress: (String) -> Void

    /// What every echo call sends: the same arguments the e2e jobs carry.
    static let echoInput = Array(EndToEnd.echoArgs.utf8)

    func run() throws -> MicroResults {
        var results = MicroResults()
        let raw = try RawKVM()
        let candidates: [FloorCandidate] = [RealModeFloor(kvm: raw), try LongModeFloor(kvm: raw), MicroVMFloor(kvm: kvm)]
        results.floorCandidates = candidates.map { FloorCandidateFigures(name: $0.name, detail: $0.detail) }
        progress("kvm floor candidates and fresh calls, no VM resident")
        let alone = try measureCreation(candidates)
        let resident = try ResidentVM(kvm: kvm)
        progress("kvm floor candidates and fresh calls, one VM resident")
        let withResident = try measureCreation(candidates)
        for index in candidates.indices {
            results.floorCandidates[index].alone = alone.floors[index]
            results.floorCandidates[index].resident = withResident.floors[index]
        }
        results.freshAlone = alone.fresh
        results.fresh = withResident.fresh
        results.floorChoice = results.floorCandidates.indices.min {
            (results.floorCandidates[$0].resident.total.p50 ?? .infinity) < (results.floorCandidates[$1].resident.total.p50 ?? .infinity)
        } ?? 0
        progress("recycled sandbox calls")
        try measureRecycled(&results)
        progress("I/O exits and host calls")
        try measureExits(&results)
        progress("resets")
        try measureResets(&results)
        progress("cancellation")
        try measureCancel(&results)
        withExtendedLifetime(resident) {}
        return results
    }

    private func repeated(_ iterations: Int, _ body: (_ record: Bool) throws -> Void) rethrows {
        for index in 0..<(MicroPlan.warmup(iterations) + iterations) {
            try body(index >= MicroPlan.warmup(iterations))
        }
    }

    /// Every floor candidate and the fresh sandbox call, one of each per
    /// iteration in an order that rotates, so that the ratios between them
    /// compare iterations that met the same machine noise and none always
    /// runs right after another.
    private func measureCreation(_ candidates: [FloorCandidate]) throws -> (floors: [FloorFigures], fresh: FreshFigures) {
        var floors = Array(repeating: FloorFigures(), count: candidates.count)
        var fresh = FreshFigures()
        var iteration = 0
        try repeated(plan.creations) { record in
            iteration += 1
            for step in 0...candidates.count {
                let index = (iteration + step) % (candidates.count + 1)
                if index < candidates.count {
                    let timing = try candidates[index].once()
                    if record { floors[index].add(timing) }
                } else {
                    let call = try measureFresh()
                    guard record else { continue }
                    fresh.total.add(call.create + call.call + call.teardown)
                    fresh.create.add(call.create)
                    fresh.call.add(call.call)
                    fresh.teardown.add(call.teardown)
                }
            }
        }
        return (floors, fresh)
    }

    /// One fresh sandbox, one echo, teardown, all on this thread; phases in µs.
    private func measureFresh() throws -> (create: Double, call: Double, teardown: Double) {
        let start = monotonicNanoseconds()
        var sandbox: Sandbox? = try Sandbox(kvm: kvm, image: demo)
        let built = monotonicNanoseconds()
        let output = try sandbox!.call("echo", input: Self.echoInput)
        let called = monotonicNanoseconds()
        sandbox = nil  // the last reference: closes the vCPU and VM fds and unmaps memory, here
        let end = monotonicNanoseconds()
        guard output == Self.echoInput else { throw BenchError.unexpected("echo answered \(output.count) other bytes") }
        return (Double(built - start) / 1_000, Double(called - built) / 1_000, Double(end - called) / 1_000)
    }

    private func measureRecycled(_ results: inout MicroResults) throws {
        let sandbox = try Sandbox(kvm: kvm, image: demo, configuration: SandboxConfiguration(recyclable: true))
        try repeated(plan.recycledCalls) { record in
            let start = monotonicNanoseconds()
            let output = try sandbox.call("echo", input: Self.echoInput)
            let called = monotonicNanoseconds()
            let pages = try sandbox.reset()
            let end = monotonicNanoseconds()
            guard output == Self.echoInput else { throw BenchError.unexpected("echo answered \(output.count) other bytes") }
            guard record else { return }
            results.recycled.add(Double(end - start) / 1_000)
            results.recycledCall.add(Double(called - start) / 1_000)
            results.recycledReset.add(Double(end - called) / 1_000)
            results.echoDirtyPages = pages
        }
    }

    /// Bare exits and host calls in alternation: a block of K exits on the
    /// bare VM, a probe call with no host calls, one with K. Both figures are
    /// per round trip, averaged over a block of K, from the same iterations.
    private func measureExits(_ results: inout MicroResults) throws {
        let bare = try BareCPL3VM(kvm: kvm, code: RawGuests.outLoop)
        let probe = try Sandbox(kvm: kvm, image: GuestImage(name: "probe", bytes: RawGuests.probeELF()))
        let calls = plan.hostCallsPerCall
        let none = RawGuests.probeInput(hostCalls: 0, dirtyPages: 0)
        let some = RawGuests.probeInput(hostCalls: calls, dirtyPages: 0)
        try repeated(plan.hostCallPairs) { record in
            let exitsStart = monotonicNanoseconds()
            for _ in 0..<calls {
                let exit = try bare.vcpu.runUntilExit()
                guard case .ioOut = exit else { throw BenchError.unexpected("the exit loop VM exited with \(exit)") }
            }
            let start = monotonicNanoseconds()
            _ = try probe.call("probe", input: none)
            let middle = monotonicNanoseconds()
            _ = try probe.call("probe", input: some)
            let end = monotonicNanoseconds()
            guard record else { return }
            results.ioExit.add(Double(start - exitsStart) / 1_000 / Double(calls))
            let withoutCalls = Double(middle - start) / 1_000
            results.probeCallNoHostCalls.add(withoutCalls)
            results.hostCall.add((Double(end - middle) / 1_000 - withoutCalls) / Double(calls))
        }
    }

    private func measureResets(_ results: inout MicroResults) throws {
        let image = try GuestImage(name: "probe", bytes: RawGuests.probeELF())
        let probe = try Sandbox(kvm: kvm, image: image, configuration: SandboxConfiguration(recyclable: true))
        for pages in [1, 16, 256] {
            // The output header's page is always one of them.
            let input = RawGuests.probeInput(hostCalls: 0, dirtyPages: UInt32(pages - 1))
            var samples = Samples()
            var restored = 0
            try repeated(plan.resetsPerSize) { record in
                _ = try probe.call("probe", input: input)
                let start = monotonicNanoseconds()
                restored = try probe.reset()
                if record { samples.addMicroseconds(since: start) }
            }
            results.reset.append((pages, restored, samples))
        }
    }

    /// A helper thread stops a spinning `spin` call once it is under way;
    /// the time runs from the stop request to the call returning on its own
    /// thread. The sandbox is recyclable and reset after each, as a worker
    /// does with a cancelled job's VM.
    private func measureCancel(_ results: inout MicroResults) throws {
        let sandbox = try Sandbox(kvm: kvm, image: demo, configuration: SandboxConfiguration(recyclable: true))
        let stopper = Stopper(sandbox: sandbox)
        defer { stopper.finish() }
        let limits = CallLimits(timeoutMilliseconds: 1000)
        try repeated(plan.cancels) { record in
            stopper.stopSoon()
            let outcome = Result { () throws(SandboxError) in try sandbox.call("spin", input: Array("{}".utf8), limits: limits) }
            let end = monotonicNanoseconds()
            let requested = stopper.waitForStop()
            try sandbox.reset()
            switch outcome {
            case .failure(.cancelled):
                if record { results.cancel.add(Double(end - requested) / 1_000) }
            case .failure(.timeout):
                results.cancelMissed += 1
            default:
                throw BenchError.unexpected("spin ended with \(outcome), not cancelled")
            }
        }
    }
}

/// The thread that cancels: when told, it waits long enough for the call to
/// be running inside KVM_RUN, notes the time and calls `stop(.cancelled)`.
private final class Stopper: @unchecked Sendable {
    private let sandbox: Sandbox
    private let go = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var requestedAt: UInt64 = 0
    private var finished = false
    /// Far longer than a call takes to get into KVM_RUN (tens of µs).
    static let delayMicroseconds: UInt32 = 2000

    init(sandbox: Sandbox) {
        self.sandbox = sandbox
        let thread = Thread { [self] in loop() }
        thread.name = "hl-bench-stopper"
        thread.start()
    }

    func stopSoon() { go.signal() }

    /// Waits until the stop was sent; returns when it was.
    func waitForStop() -> UInt64 {
        stopped.wait()
        lock.lock()
        defer { lock.unlock() }
        return requestedAt
    }

    func finish() {
        lock.lock()
        finished = true
        lock.unlock()
        go.signal()
    }

    private func loop() {
        while true {
            go.wait()
            lock.lock()
            let done = finished
            lock.unlock()
            if done { return }
            usleep(Self.delayMicroseconds)
            let now = monotonicNanoseconds()
            lock.lock()
            requestedAt = now
            lock.unlock()
            sandbox.stop(.cancelled)
            stopped.signal()
        }
    }
}
