import Foundation

/// Values appended from several threads, for tests that race producers.
public final class Collected<Value: Sendable>: @unchecked Sendable {
    // `lock` guards `storage`.
    private let lock = NSLock()
    private var storage: [Value] = []

    public init() {}

    public func append(_ value: Value) {
        lock.lock()
        storage.append(value)
        lock.unlock()
    }

    public var values: [Value] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}
