import CGuestABI
import MicroVM

/// What the image's ABI note (struct hl_abi_note in hl_abi.h, emitted by the
/// SDK runtime) says. `guest add` requires `.present`; a worker also runs
/// `.missing` images (rows written before the marker existed, or straight
/// into hl.guests) and refuses `.invalid` ones, which no SDK produces.
public enum GuestMarker: Equatable, Sendable {
    /// `initAddress` is the guest's hl_init, nil when it has none.
    case present(initAddress: UInt64?)
    case missing
    case invalid(String)

    public init(_ elf: ELFImage) {
        let notes = elf.notes.filter { $0.name == HL_NOTE_NAME && $0.type == HL_NOTE_ABI }
        guard let note = notes.first else {
            self = .missing
            return
        }
        guard notes.count == 1 else {
            self = .invalid("it carries \(notes.count) hl-worker ABI notes; one is allowed")
            return
        }
        guard note.descriptor.count == MemoryLayout<hl_abi_note_desc>.size else {
            self = .invalid("its hl-worker ABI note has a \(note.descriptor.count)-byte descriptor, not \(MemoryLayout<hl_abi_note_desc>.size)")
            return
        }
        let (version, flags, initAddress) = note.descriptor.withUnsafeBytes { raw in
            (UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self)),
             UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)),
             UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
        guard version == HL_ABI_VERSION else {
            self = .invalid("it was built for guest ABI version \(version); this hl-worker speaks version \(HL_ABI_VERSION) (rebuild it with this checkout's guests/build.sh)")
            return
        }
        guard flags & ~HL_NOTE_FLAGS_KNOWN == 0 else {
            self = .invalid("its ABI note sets flags 0x\(String(flags, radix: 16)) this hl-worker does not know")
            return
        }
        if initAddress != 0,
           !elf.segments.contains(where: { $0.executable && $0.address <= initAddress && initAddress < $0.end }) {
            self = .invalid("its ABI note names init at 0x\(String(initAddress, radix: 16)), outside its code")
            return
        }
        self = .present(initAddress: initAddress == 0 ? nil : initAddress)
    }

    /// Why `guest add` refuses the image, or nil.
    public var refusal: String? {
        switch self {
        case .present: return nil
        case .missing:
            return "not an hl-worker guest: it carries no hl-worker ABI note (.note.hl.abi); build it with guests/build.sh, which links the SDK runtime that emits it"
        case .invalid(let reason): return "not a usable hl-worker guest: \(reason)"
        }
    }

    public var hasInit: Bool {
        if case .present(let initAddress) = self { return initAddress != nil }
        return false
    }
}
