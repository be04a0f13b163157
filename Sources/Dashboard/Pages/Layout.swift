import Foundation

/// What every page needs besides its own data.
struct PageContext: Sendable {
    var permissions: Permissions
    /// The form token for this browser (see CSRF).
    var csrfToken: String
    /// The page's own path and query, where an action returns to.
    var returnTo: String
    /// A one-line outcome of the last action, shown at the top.
    var notice: String?
}

enum Layout {
    static let sections: [(path: String, title: String)] = [
        ("/", "Overview"), ("/jobs", "Jobs"), ("/guests", "Guests"), ("/workers", "Workers"),
    ]

    static func page(title: String, section: String, context: PageContext, body: HTML) -> HTML {
        let nav = sections.map { item -> HTML in
            item.path == section ? "<a class=\"current\" href=\"\(item.path)\">\(item.title)</a>"
                : "<a href=\"\(item.path)\">\(item.title)</a>"
        }
        let notice: HTML = context.notice.map { "<div class=\"notice\" id=\"notice\">\($0)</div>" } ?? ""
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(title) · hl-worker</title>
            <link rel="stylesheet" href="/static/app.css">
            <script src="/static/app.js" defer></script>
            </head><body>
            <header><span class="brand">hl-worker</span>\(nav)
            <span class="refresh"><span id="refresh-status">auto-refresh every 5 s</span> <button type="button" id="refresh-toggle">pause</button></span>
            <span class="who">database role: \(context.permissions.role)</span></header>
            <main>\(notice)\(body)</main>
            </body></html>
            """
    }

    /// A POST form with one button; the token ties it to this browser.
    static func actionForm(_ action: String, label: String, context: PageContext, danger: Bool = false,
                           fields: [(String, String)] = []) -> HTML {
        let extra = fields.map { name, value -> HTML in "<input type=\"hidden\" name=\"\(name)\" value=\"\(value)\">" }
        return """
        <form class="inline" method="post" action="\(action)">\
        <input type="hidden" name="csrf" value="\(context.csrfToken)">\(extra)\
        <input type="hidden" name="return" value="\(context.returnTo)">\
        <button type="submit"\(danger ? HTML(" class=\"danger\"") : "") data-action="\(action)">\(label)</button></form>
        """
    }

    static func state(_ state: String) -> HTML {
        "<span class=\"state state-\(state)\">\(state)</span>"
    }

    static func number<T: BinaryInteger>(_ value: T) -> String {
        let formatter = NumberFormatter()
        formatter.numberStyle = .decimal
        formatter.groupingSeparator = ","
        formatter.usesGroupingSeparator = true
        return formatter.string(from: NSNumber(value: Int64(value))) ?? "\(value)"
    }

    static func age(_ seconds: Double?) -> String {
        guard let seconds else { return "—" }
        let s = max(0, Int(seconds.rounded()))
        if s < 120 { return "\(s) s" }
        if s < 7200 { return "\(s / 60) min" }
        if s < 172_800 { return "\(s / 3600) h" }
        return "\(s / 86400) d"
    }

    static func bytes(_ count: Int64) -> String {
        if count < 1024 { return "\(count) B" }
        if count < 1 << 20 { return String(format: "%.1f KiB", Double(count) / 1024) }
        return String(format: "%.1f MiB", Double(count) / 1_048_576)
    }
}
