import Foundation
import Logging
import MicroVM

/// Builds fresh sandboxes ahead of demand. Each one is used for one call and
/// then torn down by the reaper. A few creator threads keep a small stock per
/// (guest version, configuration) that was asked for recently, so a job
/// usually finds its VM already built; creation itself is bounded host-wide.
public final class FreshSandboxFactory: @unchecked Sendable {
    // `condition` (an NSCondition) guards `stocks`, `stopped` and `created`;
    // the rest is immutable.
    public struct Key: Hashable, Sendable {
        public var version: String
        public var configuration: SandboxConfiguration
    }

    private struct Stock {
        var image: GuestImage
        var ready: [Sandbox] = []
        var building = 0
        var lastWanted = Date()
    }

    private let kvm: KVM
    private let stockPerKey: Int
    private let limit: HostCreationLimit
    private let reaper: SandboxReaper
    private let logger: Logger
    private let condition = NSCondition()
    private var stocks: [Key: Stock] = [:]
    private var stopped = false
    /// Sandboxes built, in stock or inline.
    public private(set) var created = 0

    /// Stock unused for this long is torn down.
    public static let idleStockLifetime: TimeInterval = 30

    public init(kvm: KVM, creators: Int, stockPerKey: Int, limit: HostCreationLimit, reaper: SandboxReaper,
                logger: Logger = Logger(label: "hl.fresh-vms")) {
        self.kvm = kvm
        self.stockPerKey = stockPerKey
        self.limit = limit
        self.reaper = reaper
        self.logger = logger
        for index in 0..<creators {
            let thread = Thread { [weak self] in self?.creatorLoop() }
            thread.name = "hl-vm-creator-\(index)"
            thread.start()
        }
    }

    /// Sandboxes built and waiting in stock, all keys together.
    public var stockCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return stocks.values.reduce(0) { $0 + $1.ready.count }
    }

    /// Stops the creators and tears down the stock.
    public func shutdown() {
        condition.lock()
        stopped = true
        let all = stocks.values.flatMap(\.ready)
        stocks.removeAll()
        condition.broadcast()
        condition.unlock()
        all.forEach(reaper.discard)
    }

    /// A sandbox never used before, from stock when one is ready.
    public func take(_ image: GuestImage, configuration: SandboxConfiguration) throws(SandboxError) -> Sandbox {
        var configuration = configuration
        configuration.recyclable = false
        let key = Key(version: image.version, configuration: configuration)
        condition.lock()
        var stock = stocks[key] ?? Stock(image: image)
        stock.lastWanted = Date()
        let ready = stock.ready.popLast()
        stocks[key] = stock
        condition.broadcast()
        condition.unlock()
        if let ready { return ready }
        let sandbox = try limit.makeSandbox(kvm: kvm, image: image, configuration: configuration, logger: logger)
        condition.lock()
        created += 1
        condition.unlock()
        return sandbox
    }

    /// Hands a used sandbox to the reaper.
    public func discard(_ sandbox: Sandbox) {
        reaper.discard(sandbox)
    }

    private func nextToBuild() -> (Key, GuestImage)? {
        condition.lock()
        defer { condition.unlock() }
        while !stopped {
            let now = Date()
            for (key, stock) in stocks where now.timeIntervalSince(stock.lastWanted) > Self.idleStockLifetime {
                stock.ready.forEach(reaper.discard)
                stocks[key] = nil
            }
            // Building while the reaper is behind would only add to the
            // VMs that slow every other VM down.
            if !reaper.isBehind,
               let (key, stock) = stocks.first(where: { $0.value.ready.count + $0.value.building < stockPerKey }) {
                stocks[key]!.building += 1
                return (key, stock.image)
            }
            _ = condition.wait(until: Date(timeIntervalSinceNow: reaper.isBehind ? 0.001 : Self.idleStockLifetime))
        }
        return nil
    }

    private func creatorLoop() {
        while let (key, image) = nextToBuild() {
            let built: Sandbox?
            do {
                built = try limit.makeSandbox(kvm: kvm, image: image, configuration: key.configuration, logger: logger)
            } catch {
                logger.error("building a VM ahead of demand failed", metadata: ["guest": "\(image.name)", "error": "\(error)"])
                built = nil
                Thread.sleep(forTimeInterval: 0.5)
            }
            condition.lock()
            if built != nil { created += 1 }
            if var stock = stocks[key], !stopped {
                stock.building -= 1
                if let built { stock.ready.append(built) }
                stocks[key] = stock
                condition.unlock()
            } else {
                condition.unlock()
                built.map(reaper.discard)
            }
        }
    }
}
