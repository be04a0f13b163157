import Foundation

/// Label values a submitter chooses (queue and guest names) with a bound on
/// how many distinct ones a process exports: the first `limit` seen keep
/// their own series, later ones share "_other", so a tenant who invents
/// names cannot grow /metrics without end. Values are escaped first.
final class BoundedLabel: @unchecked Sendable {
    static let other = "_other"
    private let limit: Int
    /// Guards `seen`.
    private let lock = NSLock()
    private var seen: Set<String> = []

    init(limit: Int) {
        self.limit = limit
    }

    func value(_ raw: String) -> String {
        lock.lock()
        defer { lock.unlock() }
        if seen.contains(raw) { return raw }
        guard seen.count < limit else { return Self.other }
        seen.insert(raw)
        return raw
    }
}
