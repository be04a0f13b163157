import Foundation
import Glibc
import Logging
import MicroVM

/// Bounds how many threads on this host build VMs at once, across every
/// hl-worker process. VM creation here does not scale with cores and gets
/// slower when many processes create at once, so creators take one of a
/// fixed number of slots, each an flock'd file that the kernel releases if
/// the process dies.
public final class HostCreationLimit: @unchecked Sendable {
    // No lock in the process: the slot files' descriptors never change, and
    // flock arbitrates between threads and processes.
    public let slots: Int
    private let fds: [Int32]

    /// `directory` is shared by every worker on the host; the default is the
    /// system temporary directory.
    public init(slots: Int, directory: String = NSTemporaryDirectory()) throws {
        precondition(slots >= 1, "at least one creation slot")
        let folder = (directory as NSString).appendingPathComponent("hl-worker-vm-creators")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o1777])
        var fds: [Int32] = []
        for index in 0..<slots {
            let fd = open((folder as NSString).appendingPathComponent("slot-\(index).lock"), O_RDWR | O_CREAT | O_CLOEXEC, 0o666)
            guard fd >= 0 else {
                fds.forEach { close($0) }
                throw SandboxError.host(.systemCall(operation: "open VM creation lock", errno: errno))
            }
            fds.append(fd)
        }
        self.slots = slots
        self.fds = fds
    }

    deinit { fds.forEach { close($0) } }

    /// Runs `body` holding one slot; waits for a free one.
    public func withSlot<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        let fd = acquire()
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    /// Builds a sandbox holding a slot: every VM a worker creates is built here.
    public func makeSandbox(kvm: KVM, image: GuestImage, configuration: SandboxConfiguration,
                            logger: Logger) throws(SandboxError) -> Sandbox {
        try withSlot { () throws(SandboxError) -> Sandbox in
            try Sandbox(kvm: kvm, image: image, configuration: configuration, logger: logger)
        }
    }

    private func acquire() -> Int32 {
        for fd in fds.shuffled() where flock(fd, LOCK_EX | LOCK_NB) == 0 { return fd }
        let fd = fds.randomElement()!
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        return fd
    }
}
