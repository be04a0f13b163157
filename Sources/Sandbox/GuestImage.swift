import MicroVM

/// A guest binary, checked once and shared by every sandbox built from it.
public struct GuestImage: Sendable {
    public let name: String
    /// Identifies this build of the guest (the registry's SHA-256); sandboxes
    /// are pooled by it, so a new version never reuses an old one's VMs.
    public let version: String
    public let elf: ELFImage
    /// The SDK's ABI note: whether the image is ours, and whether it has an init.
    public let marker: GuestMarker
    /// Code symbols, to name where a crash happened.
    public let symbols: ELFSymbols
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
        marker = GuestMarker(elf)
        if case .invalid = marker, let refusal = marker.refusal { throw .incompatibleGuest(refusal) }
        self.name = name
        self.version = version
        pageMappings = elf.pageMappings()
        symbols = ELFSymbols(image: elf)
    }

    /// `symbol+0xoffset` for a code address, when the image has a symbol
    /// there (Rust names demangled); escaped, because the symbol table is
    /// the guest author's text.
    public func symbolicate(_ address: UInt64) -> String? {
        guard let (name, offset) = symbols.locate(address, in: elf) else { return nil }
        let readable = UntrustedText.escape(SymbolName.readable(name))
        return offset == 0 ? readable : "\(readable)+0x\(String(offset, radix: 16))"
    }

    /// Checks the image fits a sandbox of this configuration, without building one.
    public func check(for configuration: SandboxConfiguration) throws(SandboxError) {
        _ = try GuestLayout(configuration: configuration, image: elf)
    }
}
