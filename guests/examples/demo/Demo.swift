import HLRuntime

/// The demo guest: one function per behaviour the worker has to handle,
/// from plain results to crashes, runaway loops, exhaustion and leftover
/// state.
@main
struct Demo: Guest {
    static let functions: [GuestFunction] = [
        .bytes("echo", echo),
        .json("add", add),
        .json("fib", fib),
        .json("sha256", sha256),
        .json("counter", counter),
        .json("spin", spin),
        .json("alloc", alloc),
        .json("crash", crash),
        .json("log", log),
        .json("fail", fail),
        .json("clock", clock),
        .json("scribble", scribble),
        .bytes("grow", grow),
    ]
}

/// State that lives as long as the VM does: a fresh VM, or a recycled one
/// reset to its snapshot, starts again from zero.
var callCount: Int64 = 0

func echo(_ input: [UInt8]) -> [UInt8] {
    input
}

func add(_ args: JSON) throws(GuestError) -> JSON {
    let a = try args.requireInt("a")
    let b = try args.requireInt("b")
    let (sum, overflow) = a.addingReportingOverflow(b)
    guard !overflow else { throw GuestError("\(a) + \(b) overflows Int64") }
    return ["sum": .int(sum)]
}

func fib(_ args: JSON) throws(GuestError) -> JSON {
    let n = try args.requireInt("n")
    guard n >= 0 else { throw GuestError("n must not be negative") }
    var (previous, current): (Int64, Int64) = (1, 0)
    var i: Int64 = 0
    while i < n {
        let (next, overflow) = previous.addingReportingOverflow(current)
        guard !overflow else { throw GuestError("fib(\(n)) overflows Int64 (n must be at most 92)") }
        (previous, current) = (current, next)
        i += 1
    }
    return ["fib": .int(current)]
}

func sha256(_ args: JSON) throws(GuestError) -> JSON {
    let text = try args.requireString("text")
    return ["hex": .string(hex(SHA256.hash(Array(text.utf8))))]
}

func counter(_ args: JSON) throws(GuestError) -> JSON {
    callCount += 1
    return ["count": .int(callCount)]
}

/// Never returns: Swift, unlike C and C++, lets no optimiser assume that a
/// loop without side effects ends, so this stays a `jmp .`. Only the host's
/// timeout stops it.
func spin(_ args: JSON) throws(GuestError) -> JSON {
    while true {}
}

/// Touches every page of the allocation, then reads each back: a heap page
/// the host failed to map shows up here, and the stores cannot be elided.
func alloc(_ args: JSON) throws(GuestError) -> JSON {
    let mb = try args.requireInt("mb")
    let maximum = Int64(Int.max >> 20)
    guard mb >= 0 && mb <= maximum else { throw GuestError("mb must be between 0 and \(maximum)") }
    let bytes = Int(mb) << 20
    let pageSize = Int(HL_PAGE_SIZE)
    let memory = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: pageSize)
    defer { memory.deallocate() }
    for offset in stride(from: 0, to: bytes, by: pageSize) {
        memory.storeBytes(of: UInt64(offset), toByteOffset: offset, as: UInt64.self)
    }
    for offset in stride(from: 0, to: bytes, by: pageSize) {
        guard memory.load(fromByteOffset: offset, as: UInt64.self) == UInt64(offset) else {
            throw GuestError("heap page at offset \(offset) lost its contents")
        }
    }
    return ["mb": .int(mb)]
}

func crash(_ args: JSON) throws(GuestError) -> JSON {
    GuestRuntime.crash()
}

func log(_ args: JSON) throws(GuestError) -> JSON {
    Host.log(try args.requireString("message"))
    return [:]
}

/// A guest error with the given message; with "final": true, one that no
/// retry can fix.
func fail(_ args: JSON) throws(GuestError) -> JSON {
    let message = try args.requireString("message")
    throw args["final"]?.bool == true ? GuestError.final(message) : GuestError(message)
}

func clock(_ args: JSON) throws(GuestError) -> JSON {
    ["ns": .int(Int64(clamping: Host.wallClockNanoseconds()))]
}

/// Writes {"s":"xxx..."} straight into one buffer, so the heap needs little
/// more than the result itself and a large result reaches the output-area
/// check instead of running out of memory first.
func grow(_ input: [UInt8]) throws(GuestError) -> [UInt8] {
    let count = try JSON.parseArguments(input).requireInt("bytes")
    let maximum = Int64(Int.max - 16)
    guard count >= 0 && count <= maximum else { throw GuestError("bytes must be between 0 and \(maximum)") }
    let prefix: StaticString = "{\"s\":\""
    var out: [UInt8] = []
    out.reserveCapacity(Int(count) + prefix.utf8CodeUnitCount + 2)
    prefix.withUTF8Buffer { out.append(contentsOf: $0) }
    out.append(contentsOf: repeatElement(UInt8(ascii: "x"), count: Int(count)))
    out.append(contentsOf: "\"}".utf8)
    return out
}
