/// A first-in, first-out queue whose `popFirst` takes constant time: the
/// prefetch queue holds up to a few hundred jobs, and `Array.removeFirst`
/// moved all of them for every job started.
struct FIFO<Element> {
    private var storage: [Element] = []
    /// Index of the first element not yet taken.
    private var head = 0

    var isEmpty: Bool { head == storage.count }
    var count: Int { storage.count - head }

    /// The elements still queued, first to last.
    var elements: ArraySlice<Element> { storage[head...] }

    mutating func append(contentsOf elements: some Sequence<Element>) {
        storage.append(contentsOf: elements)
    }

    mutating func popFirst() -> Element? {
        guard head < storage.count else { return nil }
        let element = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64 && head * 2 >= storage.count {
            // Taken elements are dropped in bulk, so each costs O(1) moves.
            storage.removeFirst(head)
            head = 0
        }
        return element
    }

    mutating func removeAll() {
        storage.removeAll()
        head = 0
    }
}
