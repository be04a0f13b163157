import Foundation
import Logging
import MicroVM

/// Recycled sandboxes: built once per (guest version, configuration), reset
/// to their snapshot after every call, and handed out again. Only ready
/// sandboxes are handed out; one whose reset fails is thrown away. Idle
/// sandboxes are evicted oldest first beyond `capacity`, after
/// `idleLifetime`, and when their guest gets a new version.
public final class RecycledSandboxPool: @unchecked Sendable {
    // `lock` (an NSLock) guards `idle`; the rest is immutable.
    public struct Key: Hashable, Sendable {
        public var name: String
        public var version: String
        public var configuration: SandboxConfiguration
    }

    private struct Idle {
        var key: Key
        var sandbox: Sandbox
        var since: Date
    }

    private let kvm: KVM
    private let limit: HostCreationLimit
    private let reaper: SandboxReaper
    private let logger: Logger
    public let capacity: Int
    public let idleLifetime: TimeInterval
    private let lock = NSLock()
    private var idle: [Idle] = []
    /// The newest version seen of each guest name.
    private var currentVersion: [String: String] = [:]
    public private(set) var created = 0
    public private(set) var reused = 0
    public private(set) var discarded = 0

    public init(kvm: KVM, capacity: Int, idleLifetime: TimeInterval = 60, limit: HostCreationLimit,
                reaper: SandboxReaper, logger: Logger = Logger(label: "hl.recycled-vms")) {
        precondition(capacity >= 1, "a pool holds at least one sandbox")
        self.kvm = kvm
        self.capacity = capacity
        self.idleLifetime = idleLifetime
        self.limit = limit
        self.reaper = reaper
        self.logger = logger
    }

    /// A ready sandbox for this image and configuration: an idle one when
    /// there is one, else a new one.
    public func take(_ image: GuestImage, configuration: SandboxConfiguration) throws(SandboxError) -> Sandbox {
        var configuration = configuration
        configuration.recyclable = true
        let key = Key(name: image.name, version: image.version, configuration: configuration)
        lock.lock()
        noteVersion(image.name, image.version)
        let found = idle.lastIndex { $0.key == key }.map { idle.remove(at: $0).sandbox }
        if found != nil { reused += 1 }
        lock.unlock()
        if let found { return found }
        let sandbox = try limit.makeSandbox(kvm: kvm, image: image, configuration: configuration, logger: logger)
        lock.lock()
        created += 1
        lock.unlock()
        return sandbox
    }

    /// Takes a sandbox back after a call, whatever happened in it: it is
    /// reset and kept, or thrown away if it cannot be reset or is outdated.
    public func giveBack(_ sandbox: Sandbox) {
        let key = Key(name: sandbox.image.name, version: sandbox.image.version, configuration: sandbox.configuration)
        var keep = sandbox.status != .unrecoverable
        if keep {
            do {
                try sandbox.reset()
            } catch {
                logger.warning("resetting a recycled VM failed; discarding it", metadata: ["error": "\(error)"])
                keep = false
            }
        }
        lock.lock()
        var evicted: [Sandbox] = []
        if keep && currentVersion[key.name] == key.version {
            idle.append(Idle(key: key, sandbox: sandbox, since: Date()))
            while idle.count > capacity { evicted.append(idle.removeFirst().sandbox) }
        } else {
            evicted.append(sandbox)
        }
        discarded += evicted.count
        lock.unlock()
        evicted.forEach(reaper.discard)
    }

    /// Evicts sandboxes idle for longer than `idleLifetime`.
    public func evictIdle(now: Date = Date()) {
        lock.lock()
        let (old, young) = idle.reduce(into: ([Idle](), [Idle]())) {
            if now.timeIntervalSince($1.since) > idleLifetime { $0.0.append($1) } else { $0.1.append($1) }
        }
        idle = young
        discarded += old.count
        lock.unlock()
        old.forEach { reaper.discard($0.sandbox) }
    }

    /// Drops every idle sandbox (shutdown).
    public func drain() {
        lock.lock()
        let all = idle
        idle.removeAll()
        discarded += all.count
        lock.unlock()
        all.forEach { reaper.discard($0.sandbox) }
    }

    public var idleCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return idle.count
    }

    /// A new version of a guest drains the old version's idle sandboxes;
    /// busy ones are dropped when they come back. Call with the lock held.
    private func noteVersion(_ name: String, _ version: String) {
        guard currentVersion[name] != version else { return }
        currentVersion[name] = version
        let (stale, kept) = idle.reduce(into: ([Idle](), [Idle]())) {
            if $1.key.name == name && $1.key.version != version { $0.0.append($1) } else { $0.1.append($1) }
        }
        idle = kept
        discarded += stale.count
        stale.forEach { reaper.discard($0.sandbox) }
    }
}
