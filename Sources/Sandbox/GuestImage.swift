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

    /// Where an image may lie in the largest sandbox memory there can be.
    /// Checked here, before anything is done per page, so an image that
    /// claims more memory than any sandbox has fails at once, however it is
    /// met: `guest add`, `run`, or a row written straight into hl.guests.
    static let largestImageArea = GuestLayout.imageBase..<(UInt64(SandboxConfiguration.absoluteMaximumMemoryMB) << 20)

    public init(name: String, version: String = "", bytes: [UInt8]) throws(SandboxError) {
        do {
            elf = try ELFImage(bytes: bytes)
            try elf.check(fitsIn: Self.largestImageArea)
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
