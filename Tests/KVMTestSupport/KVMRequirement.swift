import Foundation

/// Tests that need /dev/kvm or the built guests ask here first. Where KVM is
/// absent they skip with a reason, unless HL_REQUIRE_KVM=1 (set by CI, whose
/// machines have KVM), in which case its absence is a failure.
public enum KVMRequirement {
    public static var isRequired: Bool { ProcessInfo.processInfo.environment["HL_REQUIRE_KVM"] == "1" }

    /// nil when KVM is usable; otherwise why the test cannot run.
    public static func unavailableReason() -> String? {
        if access("/dev/kvm", R_OK | W_OK) == 0 { return nil }
        return "/dev/kvm is not accessible (\(String(cString: strerror(errno)))); set HL_REQUIRE_KVM=1 to make this a failure"
    }
}

/// Paths in the checkout, found from this file's location so tests run from any cwd.
public enum RepositoryPaths {
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// guests/build/NAME.elf, built by guests/build.sh.
    public static func guest(_ name: String) -> URL {
        root.appendingPathComponent("guests/build/\(name).elf")
    }
}
