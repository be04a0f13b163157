import Glibc

/// Monotonic time in nanoseconds: immune to wall-clock steps, cheap enough
/// (a vDSO call, tens of nanoseconds) to read around every iteration.
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

/// Durations of one measured operation. These machines are noisy (a nested
/// hypervisor, two shared cores), so figures are percentiles, never means:
/// p50 is the headline, p99 shows the tail.
struct Samples {
    private(set) var values: [Double] = []

    init() {}

    init(_ values: [Double]) {
        self.values = values
    }

    mutating func add(_ value: Double) {
        values.append(value)
    }

    /// Adds the time from `start` to now, in microseconds.
    mutating func addMicroseconds(since start: UInt64) {
        values.append(Double(monotonicNanoseconds() &- start) / 1_000)
    }

    var count: Int { values.count }

    /// Nearest-rank percentile; nil when there are no samples.
    func percentile(_ p: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }

    var p50: Double? { percentile(50) }
    var p99: Double? { percentile(99) }
}
