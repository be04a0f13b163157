import MicroVM

/// A guest binary, checked once and shared by every sandbox built from it.
public struct GuestImage: Sendable {
    public let name: String
    /// Identifies this build of the guest (the registry's SHA-256); sandboxes
    /// are pooled by it, so a new version never reuses an old one's VMs.
    public let version: String
    public let elf: ELFImage
    /// Page mappings of the image's segments, computed once.
    let pageMappings: [PageMapping]

    public init(name: String, version: String = "", bytes: [UInt8]) throws(SandboxError) {
        do {
            elf = try ELFImage(bytes: bytes)
        } catch {
            throw .invalidGuest(error)
        }
        self.name = name
        self.version = version
        pageMappings = elf.pageMappings()
    }

    /// Checks the image fits a sandbox of this configuration, without building one.
    public func check(for configuration: SandboxConfiguration) throws(SandboxError) {
        _ = try GuestLayout(configuration: configuration, image: elf)
    }
}
