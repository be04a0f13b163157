/// The median of the values present; nil when none is. Of an even count,
/// the mean of the middle two.
func median(_ values: [Double?]) -> Double? {
    let sorted = values.compactMap { $0 }.filter(\.isFinite).sorted()
    guard !sorted.isEmpty else { return nil }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

extension E2EResult {
    /// One configuration's repeats folded into one result: each figure the
    /// median of the runs that produced figures. The error of the first
    /// failed run is kept only when no run succeeded.
    static func median(_ runs: [E2EResult]) -> E2EResult {
        let succeeded = runs.filter { $0.error == nil }
        var result = E2EResult(configuration: runs[0].configuration, jobs: runs[0].jobs)
        guard !succeeded.isEmpty else {
            result.runs = 0
            result.error = runs.first { $0.error != nil }?.error
            return result
        }
        result.runs = succeeded.count
        result.version = succeeded[0].version
        result.jobsPerSecondRuns = succeeded.compactMap(\.jobsPerSecond)
        result.jobsPerSecond = hl_bench.median(succeeded.map(\.jobsPerSecond))
        result.latencyP50Ms = hl_bench.median(succeeded.map(\.latencyP50Ms))
        result.latencyP99Ms = hl_bench.median(succeeded.map(\.latencyP99Ms))
        result.startP50Ms = hl_bench.median(succeeded.map(\.startP50Ms))
        result.workerCPUMsPerJob = hl_bench.median(succeeded.map(\.workerCPUMsPerJob))
        result.serverCPUMsPerJob = hl_bench.median(succeeded.map(\.serverCPUMsPerJob))
        result.statementsPerJob = hl_bench.median(succeeded.map(\.statementsPerJob))
        result.serverExecutionMsPerJob = hl_bench.median(succeeded.map(\.serverExecutionMsPerJob))
        result.liveVMsAtEnd = hl_bench.median(succeeded.map { $0.liveVMsAtEnd.map(Double.init) }).map { Int($0.rounded()) }
        return result
    }
}

extension LightLoadResult {
    /// As `E2EResult.median`.
    static func median(_ runs: [LightLoadResult]) -> LightLoadResult {
        let succeeded = runs.filter { $0.error == nil }
        var result = LightLoadResult(configuration: runs[0].configuration, jobs: runs[0].jobs)
        guard !succeeded.isEmpty else {
            result.runs = 0
            result.error = runs.first { $0.error != nil }?.error
            return result
        }
        result.runs = succeeded.count
        result.startP50Ms = hl_bench.median(succeeded.map(\.startP50Ms))
        result.startP99Ms = hl_bench.median(succeeded.map(\.startP99Ms))
        result.latencyP50Ms = hl_bench.median(succeeded.map(\.latencyP50Ms))
        result.latencyP99Ms = hl_bench.median(succeeded.map(\.latencyP99Ms))
        return result
    }
}
