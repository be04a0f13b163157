import Foundation

/// Who may use the dashboard at all: optional HTTP basic credentials or a
/// bearer token, both from the environment (never the command line, where
/// `ps` would show them). With neither set, anyone who reaches the port
/// may read; the default listen address is loopback for that reason.
public struct AccessPolicy: Sendable {
    /// "user:password" for HTTP basic authentication.
    public var basicCredentials: String?
    public var bearerToken: String?

    public init(basicCredentials: String? = nil, bearerToken: String? = nil) {
        self.basicCredentials = basicCredentials.flatMap { $0.isEmpty ? nil : $0 }
        self.bearerToken = bearerToken.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// HL_DASHBOARD_BASIC_AUTH ("user:password") and HL_DASHBOARD_TOKEN.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> AccessPolicy {
        AccessPolicy(basicCredentials: environment["HL_DASHBOARD_BASIC_AUTH"],
                     bearerToken: environment["HL_DASHBOARD_TOKEN"])
    }

    public var isOpen: Bool { basicCredentials == nil && bearerToken == nil }

    /// Whether an Authorization header value passes.
    func admits(_ authorization: String?) -> Bool {
        if isOpen { return true }
        guard let authorization else { return false }
        if let token = bearerToken, authorization.hasPrefix("Bearer "),
           Secrets.equal(String(authorization.dropFirst(7)), token) {
            return true
        }
        if let credentials = basicCredentials, authorization.hasPrefix("Basic "),
           let decoded = Data(base64Encoded: String(authorization.dropFirst(6))),
           Secrets.equal(String(decoding: decoded, as: UTF8.self), credentials) {
            return true
        }
        return false
    }

    /// The challenge a refused request gets: basic makes a browser ask.
    var challenge: String {
        basicCredentials != nil ? "Basic realm=\"hl-worker dashboard\", charset=\"UTF-8\"" : "Bearer realm=\"hl-worker dashboard\""
    }
}

enum Secrets {
    /// Compares in time that depends on the lengths only, not on where the
    /// first difference is.
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for index in 0..<max(x.count, y.count) {
            difference |= (index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0)
        }
        return difference == 0
    }

    /// 32 random bytes as hex, from the system's CSPRNG.
    static func token() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &generator)) }.joined()
    }

    static func isToken(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}

/// Cross-site request forgery: every form carries the token of a cookie
/// that only this site's pages can read (double submit); a POST whose form
/// token does not match its cookie, or that a browser marks as coming from
/// another site, is refused before it reaches the database. The cookie is
/// SameSite=Strict as well, so another site's form arrives without it.
enum CSRF {
    static let cookie = "hl_csrf"

    enum Verdict: Equatable { case allowed, refused(String) }

    static func check(formToken: String?, cookieToken: String?, origin: String?, secFetchSite: String?, host: String?) -> Verdict {
        if let site = secFetchSite, site != "same-origin", site != "none" {
            return .refused("the request came from another site (Sec-Fetch-Site: \(site))")
        }
        if let origin, origin != "null" {
            guard let host, origin == "http://\(host)" || origin == "https://\(host)" else {
                return .refused("the request's Origin \(origin) is not this dashboard")
            }
        }
        guard let cookieToken, Secrets.isToken(cookieToken) else {
            return .refused("no form token cookie: reload the page and try again")
        }
        guard let formToken, Secrets.equal(formToken, cookieToken) else {
            return .refused("the form token does not match: reload the page and try again")
        }
        return .allowed
    }
}

/// `application/x-www-form-urlencoded` and query strings.
enum FormData {
    static func parse(_ text: String) -> [String: String] {
        var values: [String: String] = [:]
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                String(part).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            let name = decode(parts[0])
            // The first of a repeated name wins.
            if values[name] == nil { values[name] = parts.count > 1 ? decode(parts[1]) : "" }
        }
        return values
    }

    static func cookies(_ header: String?) -> [String: String] {
        var values: [String: String] = [:]
        for part in (header ?? "").split(separator: ";") {
            let pair = part.split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { continue }
            let name = pair[0].trimmingCharacters(in: .whitespaces)
            if values[name] == nil { values[name] = pair[1].trimmingCharacters(in: .whitespaces) }
        }
        return values
    }

    /// Where an action may send the browser back to: a path of this site
    /// only (never `//elsewhere` or a full URL).
    static func safeReturn(_ path: String?) -> String {
        guard let path, path.hasPrefix("/"), !path.hasPrefix("//"), !path.contains("\\"),
              path.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else { return "/" }
        return path
    }
}
