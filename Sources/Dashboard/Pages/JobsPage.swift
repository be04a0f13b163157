enum JobsPage {
    static func render(_ page: JobListPage, filter: JobFilter, context: PageContext) -> HTML {
        let stateOptions = ([""] + JobFilter.states).map { state -> HTML in
            let label = state.isEmpty ? "any" : state
            return state == (filter.state ?? "") ? "<option value=\"\(state)\" selected>\(label)</option>"
                : "<option value=\"\(state)\">\(label)</option>"
        }
        let rows = page.rows.map { job -> HTML in
            """
            <tr data-job="\(job.id)"><td class="num"><a href="/jobs/\(job.id)">\(job.id)</a></td><td>\(job.queue)</td>
            <td>\(job.guest)</td><td>\(job.function)</td><td>\(Layout.state(job.state))</td>
            <td class="num">\(job.attempt)/\(job.maxAttempts)</td><td>\(job.created)</td><td>\(job.finished ?? "")</td>
            <td>\(job.lastErrorKind ?? "")</td></tr>
            """
        }
        var pager: [HTML] = []
        if let newer = page.newer {
            pager.append("<a id=\"newer\" href=\"/jobs?\(filter.with(after: newer).queryString)\">← newer</a>")
            pager.append("<a id=\"newest\" href=\"/jobs?\(filter.with().queryString)\">newest</a>")
        }
        if let older = page.older {
            pager.append("<a id=\"older\" href=\"/jobs?\(filter.with(before: older).queryString)\">older →</a>")
        }
        let body: HTML = """
            <h1>Jobs</h1>
            <form class="filters" method="get" action="/jobs">
            <label>queue <input name="queue" value="\(filter.queue)"></label>
            <label>state <select name="state">\(stateOptions)</select></label>
            <label>guest <input name="guest" value="\(filter.guest)"></label>
            <label>function <input name="function" value="\(filter.function)"></label>
            <label>created from (UTC) <input type="datetime-local" name="from" value="\(filter.from)"></label>
            <label>created before (UTC) <input type="datetime-local" name="to" value="\(filter.to)"></label>
            <button type="submit">Filter</button> <a href="/jobs">clear</a></form>
            <table id="jobs"><thead><tr><th class="num">id</th><th>queue</th><th>guest</th><th>function</th><th>state</th>
            <th class="num">attempt</th><th>created (UTC)</th><th>finished (UTC)</th><th>latest error</th></tr></thead>
            <tbody>\(rows.isEmpty ? ["<tr><td colspan=\"9\" class=\"muted\">no jobs match</td></tr>"] : rows)</tbody></table>
            <div class="pager">\(pager)</div>
            <p class="muted">Newest first, \(page.rows.count) on this page; pages follow job ids, so jobs inserted meanwhile never shift them.</p>
            """
        return Layout.page(title: "Jobs", section: "/jobs", context: context, body: body)
    }
}
