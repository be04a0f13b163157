import MicroVM
import Sandbox

/// What `guest add` finds out about an image before storing it: that it is
/// an SDK guest for this ABI, that its init (if any) finishes, and which
/// functions it has. Runs the image once in a fresh VM, so a guest whose
/// init crashes or loops is refused here rather than failing every job.
enum GuestInspection {
    /// nil functions: this host has no usable /dev/kvm, so nothing was run.
    struct Report {
        var functions: [String]?
        var note: String?
    }

    static func inspect(name: String, bytes: [UInt8]) throws -> Report {
        let image: GuestImage
        do {
            image = try GuestImage(name: name, bytes: bytes)
            try image.check(for: SandboxConfiguration())
        } catch {
            throw CommandError(kind: error.kind, message: error.message)
        }
        if let refusal = image.marker.refusal {
            throw CommandError(kind: "invalid_guest", message: refusal)
        }
        let kvm: KVM
        do {
            kvm = try KVM()
        } catch {
            return Report(functions: nil,
                          note: "not run (\(error)); its functions are not recorded: run `guest add` on a host with /dev/kvm to check and list them")
        }
        do {
            let sandbox = try Sandbox(kvm: kvm, image: image, configuration: SandboxConfiguration())
            return Report(functions: try sandbox.functions(), note: nil)
        } catch {
            throw CommandError(kind: error.kind, message: "the guest did not pass its trial run: \(error.message)")
        }
    }
}
