import Foundation

/// Makes a guest's symbol names readable in crash messages. Only Rust's
/// legacy mangling (`_ZN5hello5crash17h0123456789abcdefE` →
/// `hello::crash`) is decoded, by this small bounded parser; Swift and C++
/// names are shown as they are, because the demanglers that could read them
/// are large C++ code we would be feeding hostile input in the host process.
enum SymbolName {
    static func readable(_ name: String) -> String {
        rustLegacy(name) ?? name
    }

    /// nil unless `name` is a well-formed legacy Rust path.
    static func rustLegacy(_ name: String) -> String? {
        var bytes = Array(name.utf8)
        guard bytes.count > 4, bytes.starts(with: Array("_ZN".utf8)) else { return nil }
        // Some platforms add a suffix after the closing E; ours do not.
        guard bytes.last == UInt8(ascii: "E") else { return nil }
        bytes.removeLast()
        var at = 3
        var parts: [String] = []
        while at < bytes.count {
            var length = 0
            while at < bytes.count, bytes[at] >= 0x30, bytes[at] <= 0x39 {
                length = length * 10 + Int(bytes[at] - 0x30)
                guard length <= bytes.count else { return nil }
                at += 1
            }
            guard length > 0, at + length <= bytes.count else { return nil }
            parts.append(String(decoding: bytes[at..<(at + length)], as: UTF8.self))
            at += length
        }
        // The last part is the hash, h + 16 hex digits.
        if let last = parts.last, last.count == 17, last.first == "h",
           last.dropFirst().allSatisfy(\.isHexDigit) {
            parts.removeLast()
        }
        guard !parts.isEmpty else { return nil }
        return parts.map(unescape).joined(separator: "::")
    }

    private static let escapes: [(String, String)] = [
        ("$LT$", "<"), ("$GT$", ">"), ("$RF$", "&"), ("$BP$", "*"), ("$LP$", "("), ("$RP$", ")"),
        ("$C$", ","), ("$SP$", "@"), ("$u20$", " "), ("$u27$", "'"), ("$u5b$", "["), ("$u5d$", "]"),
        ("$u7b$", "{"), ("$u7d$", "}"), ("$u7e$", "~"), ("$u3b$", ";"), ("$u2b$", "+"), ("$u22$", "\""),
    ]

    private static func unescape(_ part: String) -> String {
        var text = part.hasPrefix("_$") ? String(part.dropFirst()) : part
        for (escaped, plain) in escapes { text = text.replacingOccurrences(of: escaped, with: plain) }
        return text.replacingOccurrences(of: "..", with: "::")
    }
}
