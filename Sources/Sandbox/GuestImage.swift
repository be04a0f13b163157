import MicroVM

/// A guest binary, checked once and shared by every sandbox built from it.
public struct GuestImage: Sendable {
    public let name: String
    public let elf: ELFImage
    /// Page mappings of the image's segments, computed once.
    let pageMappings: [PageMapping]

    public init(name: String, bytes: [UInt8]) throws(SandboxError) {
        do {
            elf = try ELFImage(bytes: bytes)
        } catch {
            throw .invalidGuest(error as! ELFError)
        }
        self.name = name
        pageMappings = elf.pageMappings()
    }

    /// Checks the image fits a sandbox of this configuration, without building one.
    public func check(for configuration: SandboxConfiguration) throws(SandboxError) {
        _ = try GuestLayout(configuration: configuration, image: elf)
    }
}
