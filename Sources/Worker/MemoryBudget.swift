import Foundation

/// The most memory a worker can come to hold, whatever its jobs do, and
/// whether that fits the memory limit it runs under. Any producer chooses a
/// job's memory_mb (up to the worker's maximum) and what the guest touches,
/// so the worst case is what one tenant can force: exceeding the limit would
/// let it get the worker OOM-killed, and every job on it with it.
///
///     worst case = VMs that can hold guest memory × (--max-memory-mb + perVMOverheadMB)
///                + processOverheadMB
///     VMs that can hold guest memory = --concurrency (running)
///                                    + the recycled pool's capacity (idle)
///
/// An idle recycled VM counts in full: every page of its memory is given a
/// frame when it is built (see `Sandbox`), and stays resident. VMs built ahead of demand hold only
/// their image and page tables until a job runs in them, and a torn-down VM
/// waits for the reaper for milliseconds; the overheads cover both.
public struct MemoryBudget: Equatable, Sendable {
    /// The process without guests: the Swift runtime, four database
    /// connections, the guest image cache, buffers. Measured at 33 MiB idle
    /// and 35 MiB after a few hundred jobs (debug build); the rest is room
    /// for large guest images and result buffers.
    public static let processOverheadMB = 128
    /// Beyond its guest memory, per VM: KVM's own structures, the vCPU's
    /// state, the reset snapshot and dirty bitmap, VMs built ahead.
    public static let perVMOverheadMB = 2

    public var vms: Int
    public var maxMemoryMB: Int

    public init(_ configuration: WorkerConfiguration) {
        vms = configuration.concurrency + (configuration.recycledPoolCapacity ?? configuration.concurrency)
        maxMemoryMB = configuration.maxMemoryMB
    }

    public var worstCaseMB: Int {
        vms * (maxMemoryMB + Self.perVMOverheadMB) + Self.processOverheadMB
    }

    /// What the worst case comes to under `limit`.
    public enum Verdict: Equatable, Sendable {
        case fits
        /// `largestMaxMemoryMB`: the highest --max-memory-mb that would fit
        /// with these VMs; nil when no guest memory fits at all.
        case exceeds(limitMB: Int, file: String, largestMaxMemoryMB: Int?)
    }

    public func verdict(under limit: CgroupMemoryLimit, minimumMemoryMB: Int) -> Verdict {
        guard case .limited(let bytes, let file) = limit else { return .fits }
        let limitMB = Int(clamping: bytes >> 20)
        guard worstCaseMB > limitMB else { return .fits }
        let largest = (limitMB - Self.processOverheadMB) / vms - Self.perVMOverheadMB
        return .exceeds(limitMB: limitMB, file: file, largestMaxMemoryMB: largest >= minimumMemoryMB ? largest : nil)
    }

    /// One line: what does not fit, and what to change.
    public func refusal(limitMB: Int, file: String, largestMaxMemoryMB: Int?) -> String {
        let fix = largestMaxMemoryMB.map { "lower --max-memory-mb to \($0) or lower --concurrency" }
            ?? "lower --concurrency"
        return "worst-case memory \(worstCaseMB) MiB (\(vms) VMs × (\(maxMemoryMB) MiB --max-memory-mb + "
            + "\(Self.perVMOverheadMB) MiB) + \(Self.processOverheadMB) MiB; running and idle recycled VMs) exceeds "
            + "the memory limit of \(limitMB) MiB in \(file): \(fix), or raise the limit to at least "
            + "\(worstCaseMB) MiB (docs/operations.md, Sizing)"
    }
}
