import Foundation

enum GuestsPage {
    static func render(_ guests: [GuestRow], context: PageContext) -> HTML {
        let rows = guests.map { guest -> HTML in
            let rate = guest.finished == 0 ? "—" : String(format: "%.1f %%", Double(guest.discarded) * 100 / Double(guest.finished))
            return """
                <tr data-guest="\(guest.name)"><td><a href="/jobs?guest=\(JobFilter.percentEncode(guest.name))">\(guest.name)</a></td>
                <td><code>\(guest.sha256)</code></td><td class="num">\(Layout.bytes(guest.sizeBytes))</td>
                <td class="functions">\(guest.functions.map { $0.isEmpty ? "none" : $0.joined(separator: ", ") } ?? "not listed")</td>
                <td>\(guest.registered)</td><td>\(guest.updated)</td>
                <td class="num">\(guest.estimated ? HTML("<span class=\"estimate\">≈</span>") : "")\(Layout.number(guest.finished))</td>
                <td class="num">\(guest.estimated ? HTML("<span class=\"estimate\">≈</span>") : "")\(rate)</td></tr>
                """
        }
        let body: HTML = """
            <h1>Guests</h1>
            <table id="guests"><thead><tr><th>name</th><th>version (sha256 of the image)</th><th class="num">size</th>
            <th>functions</th><th>registered (UTC)</th><th>current version since (UTC)</th><th class="num">jobs finished (1 h)</th>
            <th class="num">discarded (1 h)</th></tr></thead>
            <tbody>\(rows.isEmpty ? ["<tr><td colspan=\"8\" class=\"muted\">no guests registered</td></tr>"] : rows)</tbody></table>
            \(guests.contains(where: \.estimated) ? HTML("<p class=\"estimate\" id=\"estimates-note\">≈ marks the planner's estimate: with 10,000 or more jobs finished in the last hour they are not counted one by one.</p>") : "")
            <p class="muted">A guest name holds one image at a time: registering it again replaces the version. Jobs do not record which version ran them, so the job counts are per name.</p>
            """
        return Layout.page(title: "Guests", section: "/guests", context: context, body: body)
    }
}
