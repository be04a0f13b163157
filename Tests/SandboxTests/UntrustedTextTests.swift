import Sandbox
import XCTest

/// The escaping of guest and tenant text, as pure functions: no /dev/kvm.
final class UntrustedTextTests: XCTestCase {
    func testBidiOverrideSeparatorsBOMAndZeroWidthSpaceAreEscapedVisibly() {
        XCTAssertEqual(UntrustedText.escape("a\u{202E}b\u{2028}c\u{2029}d\u{FEFF}e\u{200B}f"),
                       #"a\u{202E}b\u{2028}c\u{2029}d\u{FEFF}e\u{200B}f"#)
    }

    func testEveryBidiControlAndInvisibleFormatCharacterIsEscaped() {
        let scalars: [UInt32] = [
            0x202A, 0x202B, 0x202C, 0x202D, 0x202E,  // embeddings, overrides, pop
            0x2066, 0x2067, 0x2068, 0x2069,          // isolates
            0x200E, 0x200F, 0x061C,                  // marks
            0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF,  // zero width, word joiner, BOM
            0x00AD, 0x180E, 0xFFF9, 0xE0001, 0xE0041,  // soft hyphen, Mongolian vowel separator, annotation, tags
            0x3164, 0x115F, 0xFE0F, 0x034F,          // Hangul fillers, variation selector, grapheme joiner
        ]
        for value in scalars {
            let scalar = Unicode.Scalar(value)!
            XCTAssertEqual(UntrustedText.escape(String(scalar)), "\\u{\(String(value, radix: 16, uppercase: true))}",
                           "U+\(String(value, radix: 16, uppercase: true))")
        }
    }

    func testControlCharactersAreEscapedWithNewlinesSpelledOut() {
        XCTAssertEqual(UntrustedText.escape("one\ntwo\r\tthree\u{0}\u{1B}[31mred\u{7F}\u{85}"),
                       #"one\ntwo\r\tthree\u{0}\u{1B}[31mred\u{7F}\u{85}"#)
    }

    func testNoncharactersPrivateUseAndUnassignedCodePointsAreEscaped() {
        for value: UInt32 in [0xFFFE, 0xFFFF, 0xFDD0, 0x10FFFF, 0xE000, 0xF8FF, 0x10FFFD, 0xE0080] {
            let scalar = Unicode.Scalar(value)!
            XCTAssertTrue(UntrustedText.escape(String(scalar)).hasPrefix("\\u{"), "U+\(String(value, radix: 16))")
        }
    }

    /// Whatever goes in, nothing that can reorder, hide or break lines comes
    /// out: every scalar in Unicode, one at a time and all together.
    func testNoCodePointSurvivesThatShouldNot() {
        var all = String.UnicodeScalarView()
        var wrong: [String] = []
        for value in UInt32(0)...0x10FFFF {
            guard let scalar = Unicode.Scalar(value) else { continue }  // surrogates cannot be in a String
            all.append(scalar)
            let category = scalar.properties.generalCategory
            let mustEscape = [.control, .format, .lineSeparator, .paragraphSeparator, .privateUse, .unassigned]
                .contains(category) || scalar.properties.isDefaultIgnorableCodePoint
            if UntrustedText.needsEscape(scalar) != mustEscape { wrong.append("U+\(String(value, radix: 16))") }
        }
        XCTAssertEqual(wrong, [])
        let escaped = UntrustedText.escape(String(all), maxBytes: .max)
        XCTAssertFalse(escaped.unicodeScalars.contains(where: UntrustedText.needsEscape))
    }

    /// Printable ASCII takes a shortcut past the Unicode rules: it must
    /// agree with them for every ASCII character, alone and in a name.
    func testEveryASCIICharacterIsKeptExactlyWhenTheRulesKeepIt() {
        for value in UInt32(0)...0x7F {
            let scalar = Unicode.Scalar(value)!
            let kept = UntrustedText.escape("queue\(scalar)name") == "queue\(scalar)name"
            XCTAssertEqual(kept, !UntrustedText.needsEscape(scalar), "U+\(String(value, radix: 16))")
        }
    }

    func testOrdinaryTextIsUnchanged() {
        for text in ["hello, world", "héllo wörld", "日本語のテキスト", "emoji 👋 ok", #"C:\path\to\file"#, "a  b", "שלום"] {
            XCTAssertEqual(UntrustedText.escape(text), text)
        }
    }

    func testBytesThatAreNotUTF8BecomeReplacementCharacters() {
        XCTAssertEqual(UntrustedText.escape([0xFF, 0x41, 0xC3]), "\u{FFFD}A\u{FFFD}")
        // An encoded surrogate (ED A0 80) is not UTF-8 either.
        XCTAssertFalse(UntrustedText.escape([0xED, 0xA0, 0x80]).unicodeScalars.contains { $0.value == 0xD800 })
    }

    func testTheBoundCountsEscapesAndCutsBetweenWholePieces() {
        let long = UntrustedText.escape([UInt8](repeating: 0x41, count: 5000))
        XCTAssertEqual(long.utf8.count, UntrustedText.defaultMaxBytes)
        XCTAssertTrue(long.hasSuffix("A…"))

        let overrides = UntrustedText.escape(String(repeating: "\u{202E}", count: 1000))
        XCTAssertLessThanOrEqual(overrides.utf8.count, UntrustedText.defaultMaxBytes)
        XCTAssertTrue(overrides.hasSuffix("}…"), overrides)
        XCTAssertFalse(overrides.unicodeScalars.contains("\u{202E}"))

        XCTAssertEqual(UntrustedText.escape("short", maxBytes: 5), "short")
        XCTAssertEqual(UntrustedText.escape("longer", maxBytes: 5), "lo…")
        // The é is cut in two by the bytes read; its half is never shown.
        XCTAssertEqual(UntrustedText.escape(Array("abcdefé".utf8), maxBytes: 6), "abc…")
    }

    func testEscapingTwiceChangesNothing() {
        for text in ["a\u{202E}b\u{2028}", String(repeating: "\u{FEFF}x", count: 500), "plain"] {
            let once = UntrustedText.escape(text)
            XCTAssertEqual(UntrustedText.escape(once), once)
        }
    }
}
