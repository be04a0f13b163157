import HLRuntime

/// Leaves behind as much state as a misbehaving job could: the heap filled
/// with garbage and kept allocated, a large stretch of stack overwritten,
/// the guest's global counter set to garbage. Used to prove that a recycled VM is
/// pristine on its next call; a VM that is not reset runs out of heap.
func scribble(_ args: JSON) throws(GuestError) -> JSON {
    var noise = Noise(seed: 0x9E37_79B9_7F4A_7C15)

    // Stop short of out_of_memory: returning the result still needs heap.
    let reserve = 64 << 10
    while true {
        let free = GuestRuntime.heapFreeBytes
        guard free > reserve else { break }
        let size = min(GuestRuntime.largestAllocation, free - reserve, 1 << 20)
        guard size >= 64 else { break }
        let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        noise.fill(block, byteCount: size)
    }

    let stackBytes = min(128 << 10, GuestRuntime.stackBytes / 2)
    let checksum = scribbleStack(frames: stackBytes / MemoryLayout<StackFrame>.size, noise: &noise)

    callCount = Int64(bitPattern: checksum)
    return [:]
}

/// One page of stack per recursion level.
typealias StackFrame = InlineArray<512, UInt64>

/// Each frame holds a page of garbage and reads it back after the deeper
/// frames return, so every page stays live for the whole recursion.
@inline(never)
func scribbleStack(frames: Int, noise: inout Noise) -> UInt64 {
    var frame = StackFrame(repeating: 0)
    for i in frame.indices {
        frame[i] = noise.next()
    }
    var sum = frames > 1 ? scribbleStack(frames: frames - 1, noise: &noise) : 0
    for i in frame.indices {
        sum &+= frame[i]
    }
    return sum
}

/// xorshift64*: garbage that no optimiser can predict away.
struct Noise {
    var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    mutating func fill(_ memory: UnsafeMutableRawPointer, byteCount: Int) {
        var offset = 0
        while offset + 8 <= byteCount {
            memory.storeBytes(of: next(), toByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        while offset < byteCount {
            memory.storeBytes(of: UInt8(truncatingIfNeeded: next()), toByteOffset: offset, as: UInt8.self)
            offset += 1
        }
    }
}
