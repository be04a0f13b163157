/// Text a guest (or a tenant) wrote, made safe to put in front of people: in
/// a job's `errors`, in a log line, on a dashboard. Everything that could
/// change how the text around it is shown, or hide what it says, is
/// replaced by a visible escape such as `\u{202E}`:
///
/// - control characters (Cc), with `\n`, `\r` and `\t` spelled that way;
/// - format characters (Cf): bidi embeddings, overrides and isolates
///   (U+202A–202E, U+2066–2069), marks (U+200E/200F, U+061C), zero-width
///   characters (U+200B–200D, U+2060), the byte-order mark U+FEFF, tags;
/// - line and paragraph separators (Zl, Zp: U+2028, U+2029);
/// - surrogates, private-use and unassigned code points, noncharacters
///   (Cs, Co, Cn): their rendering is unknown or undefined;
/// - every other default-ignorable code point (variation selectors, Hangul
///   fillers, the combining grapheme joiner): invisible by definition.
///
/// Bytes that are not UTF-8 become U+FFFD. The escapes are for reading, not
/// for decoding back: a backslash the guest wrote is left as it is, so a
/// guest can spell `\u{202E}` itself, but only as harmless visible text.
/// The output holds no character this function would escape, so escaping
/// twice changes nothing.
public enum UntrustedText {
    /// The longest a guest's error message or log line is shown, in UTF-8
    /// bytes with its escapes.
    public static let defaultMaxBytes = 1024

    /// Escapes `bytes` decoded as UTF-8; the result is at most `maxBytes`
    /// UTF-8 bytes (escapes included), ending in "…" when cut short.
    public static func escape(_ bytes: some Collection<UInt8>, maxBytes: Int = defaultMaxBytes) -> String {
        // Escaping never shortens (an escape is longer than its character,
        // and U+FFFD is at least as long as the bytes it replaces), so one
        // byte past the bound is enough to know the text was cut, and a
        // character split at the end of the prefix is never shown.
        escape(String(decoding: bytes.prefix(max(0, maxBytes) + 1), as: UTF8.self), maxBytes: maxBytes)
    }

    /// Escapes `text`; the result is at most `maxBytes` UTF-8 bytes (escapes
    /// included), ending in "…" when cut short.
    public static func escape(_ text: String, maxBytes: Int = defaultMaxBytes) -> String {
        // Printable ASCII needs no escape and is one byte a character: the
        // usual queue, guest and function names are returned as they are,
        // without the Unicode property lookups (a worker escapes several
        // names for every job it runs).
        if text.utf8.count <= maxBytes && text.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) {
            return text
        }
        let ellipsis = "…"
        var out = ""
        var length = 0
        // Where to cut (in bytes, between whole pieces) so the ellipsis fits.
        var cut = 0
        out.reserveCapacity(min(maxBytes, text.utf8.count))
        for scalar in text.unicodeScalars {
            let escape = needsEscape(scalar) ? escaped(scalar) : nil
            let width = escape?.utf8.count ?? UTF8.width(scalar)
            if length + width > maxBytes {
                return maxBytes >= ellipsis.utf8.count ? String(decoding: out.utf8.prefix(cut), as: UTF8.self) + ellipsis : ""
            }
            if let escape { out += escape } else { out.unicodeScalars.append(scalar) }
            length += width
            if length + ellipsis.utf8.count <= maxBytes { cut = length }
        }
        return out
    }

    /// Whether `scalar` is one this type replaces with a visible escape.
    public static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
            return true
        default:
            return scalar.properties.isDefaultIgnorableCodePoint
        }
    }

    static func escaped(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        default: return "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
        }
    }
}
