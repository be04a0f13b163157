/// A fragment of HTML. Interpolating a `String` (or anything printable)
/// escapes it; only another `HTML` value goes in as markup. So text from the
/// database (guest messages, args, queue names) cannot become markup by
/// accident: every page is built from these.
public struct HTML: Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public private(set) var markup: String

    public init(stringLiteral value: String) { markup = value }
    public init(stringInterpolation: Interpolation) { markup = stringInterpolation.markup }
    /// Markup the program itself wrote (never data).
    init(trusted markup: String) { self.markup = markup }

    public var description: String { markup }

    public struct Interpolation: StringInterpolationProtocol {
        var markup = ""
        public init(literalCapacity: Int, interpolationCount: Int) { markup.reserveCapacity(literalCapacity * 2) }
        public mutating func appendLiteral(_ literal: String) { markup += literal }
        public mutating func appendInterpolation(_ html: HTML) { markup += html.markup }
        public mutating func appendInterpolation(_ fragments: [HTML]) { for fragment in fragments { markup += fragment.markup } }
        public mutating func appendInterpolation(_ text: String) { markup += HTML.escape(text) }
        public mutating func appendInterpolation<T: CustomStringConvertible>(_ value: T) { markup += HTML.escape(value.description) }
        public mutating func appendInterpolation(_ text: String?) { markup += HTML.escape(text ?? "") }
    }

    /// Escapes for text and for double- or single-quoted attribute values.
    /// Control characters other than tab and newline become U+FFFD: a guest's
    /// message may hold any byte.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\t", "\n": out.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value) {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

extension Array where Element == HTML {
    func joined() -> HTML { HTML(trusted: map(\.markup).joined()) }
}
