import HLRuntime

/// Fan-out/fan-in: `split` cuts a list of numbers into parts and enqueues
/// one `sum` job per part plus one `combine` job that waits for all of
/// them; `combine` adds up the parts' results, which the queue hands it in
/// args.hl_dependency_results. The jobs exist only if `split` completes.
@main
struct FanOut: Guest {
    static let functions: [GuestFunction] = [
        .json("split", split),
        .json("sum", sum),
        .json("combine", combine),
        .json("crawl", crawl),
    ]
}

/// args: {"numbers": [Int], "parts": Int, "guest": this guest's registered
/// name, "queue": the children's queue (default: the parent's), "then_spin":
/// true to spin after enqueuing instead of completing}
func split(_ args: JSON) throws(GuestError) -> JSON {
    let options: JSON = args["queue"]?.string.map { ["queue": .string($0)] } ?? [:]
    guard let numbers = args["numbers"]?.array else { throw GuestError("numbers must be a list of integers") }
    let parts = Int(try args.requireInt("parts"))
    let guest = try args.requireString("guest")
    guard parts >= 1, parts <= 64 else { throw GuestError("parts must be 1 to 64") }
    var indexes: [JSON] = []
    var start = 0
    for part in 0..<parts {
        let end = start + (numbers.count - start) / (parts - part)
        let slice = Array(numbers[start..<end])
        start = end
        switch Host.enqueue(guest: guest, function: "sum", args: ["numbers": .array(slice), "part": .int(Int64(part))],
                            options: options) {
        case .success(let index): indexes.append(.int(Int64(index)))
        case .failure(let error): throw error
        }
        Host.progress(Double(part + 1) / Double(parts + 1), note: "enqueued part \(part + 1) of \(parts)")
    }
    var combineOptions = options
    if case .object(var members) = combineOptions {
        members.append((key: "after", value: .array(indexes)))
        combineOptions = .object(members)
    }
    switch Host.enqueue(guest: guest, function: "combine", args: ["parts": .int(Int64(parts))],
                        options: combineOptions) {
    case .success: break
    case .failure(let error): throw error
    }
    // For tests: a parent that never completes, whatever it enqueued.
    if args["then_spin"]?.bool == true {
        while true {}
    }
    return ["parts": .int(Int64(parts))]
}

/// args: {"numbers": [Int]}
func sum(_ args: JSON) throws(GuestError) -> JSON {
    guard let numbers = args["numbers"]?.array else { throw GuestError("numbers must be a list of integers") }
    var total: Int64 = 0
    for (i, number) in numbers.enumerated() {
        guard let value = number.int else { throw GuestError("numbers must be integers") }
        let (next, overflow) = total.addingReportingOverflow(value)
        guard !overflow else { throw GuestError("the sum overflows Int64") }
        total = next
        if i % 1000 == 999 { Host.progress(Double(i + 1) / Double(numbers.count), note: "adding") }
    }
    return ["sum": .int(total)]
}

/// args: {"parts": Int, "hl_dependency_results": [{"id", "result": {"sum"}}]}
func combine(_ args: JSON) throws(GuestError) -> JSON {
    let parts = try args.requireInt("parts")
    guard let results = args["hl_dependency_results"]?.array else {
        throw GuestError("combine runs as the dependent of the sum jobs")
    }
    guard results.count == Int(parts) else { throw GuestError("expected \(parts) results, got \(results.count)") }
    var total: Int64 = 0
    for entry in results {
        guard let part = entry["result"]?["sum"]?.int else { throw GuestError("a part's result has no sum") }
        let (next, overflow) = total.addingReportingOverflow(part)
        guard !overflow else { throw GuestError("the total overflows Int64") }
        total = next
    }
    return ["total": .int(total), "parts": .int(parts)]
}

/// Reports progress, then works until its timeout or a cancel ends it: a
/// long job whose progress an operator watches.
func crawl(_ args: JSON) throws(GuestError) -> JSON {
    Host.progress(0.5, note: args["note"]?.string ?? "halfway")
    while true {}
}
