import Foundation
import JobQueue
import Sandbox

/// Guest images by SHA-256, parsed once. Workers look guests up by the
/// digest the claim returns, so a new version of a guest (a new digest) is
/// fetched on first use without a restart, and the old one ages out.
final class GuestCache: @unchecked Sendable {
    enum LookupError: Error {
        case notFound
        case invalid(SandboxError)
    }

    private let lock = NSLock()
    private var entries: [String: (program: Result<GuestProgram, LookupError>, used: Date)] = [:]
    let capacity: Int

    init(capacity: Int = 64) {
        self.capacity = capacity
    }

    func cached(_ sha256: String) -> Result<GuestProgram, LookupError>? {
        lock.lock()
        defer { lock.unlock() }
        guard let entry = entries[sha256] else { return nil }
        entries[sha256]!.used = Date()
        return entry.program
    }

    /// The program for `sha256`, fetched through `store` when not cached.
    func program(sha256: String, store: JobStore) throws -> Result<GuestProgram, LookupError> {
        if let hit = cached(sha256) { return hit }
        let program: Result<GuestProgram, LookupError>
        if let row = try store.guestImage(sha256: sha256) {
            do {
                program = .success(try GuestProgram(name: row.name, version: row.sha256, bytes: row.image))
            } catch {
                program = .failure(.invalid(error))
            }
        } else {
            program = .failure(.notFound)
        }
        lock.lock()
        entries[sha256] = (program, Date())
        if entries.count > capacity, let oldest = entries.min(by: { $0.value.used < $1.value.used })?.key {
            entries[oldest] = nil
        }
        lock.unlock()
        return program
    }
}
