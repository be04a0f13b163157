import Foundation

enum OverviewPage {
    static func render(_ overview: Overview, context: PageContext) -> HTML {
        let waitingMark: HTML = overview.waitingEstimated ? "<span class=\"estimate\">≈</span>" : ""
        let finishedMark: HTML = overview.finishedEstimated ? "<span class=\"estimate\">≈</span>" : ""
        let rows = overview.queues.map { queue -> HTML in
            var actions: HTML = ""
            if context.permissions.canPause {
                actions = Layout.actionForm(queue.paused ? "/queues/resume" : "/queues/pause",
                                            label: queue.paused ? "Resume" : "Pause", context: context,
                                            fields: [("queue", queue.name)])
            }
            let jobs = "/jobs?queue=\(JobFilter.percentEncode(queue.name))"
            return """
                <tr data-queue="\(queue.name)"><td><a href="\(jobs)">\(queue.name)</a></td>
                <td class="num">\(waitingMark)\(Layout.number(queue.available))</td><td class="num">\(waitingMark)\(Layout.number(queue.scheduled))</td>
                <td class="num">\(Layout.number(queue.running))</td><td class="num">\(Layout.number(queue.retryable))</td>
                <td class="num">\(finishedMark)\(Layout.number(queue.completed))</td><td class="num">\(finishedMark)\(Layout.number(queue.discarded))</td>
                <td class="num">\(Layout.age(queue.oldestAge))</td>
                <td>\(queue.paused ? HTML("<span class=\"paused\">paused</span>") : "running")</td><td>\(actions)</td></tr>
                """
        }
        let failures = overview.failures.map { failure -> HTML in
            "<tr><td>\(failure.kind)</td><td class=\"num\">\(Layout.number(failure.jobs))</td></tr>"
        }
        let completedHour = overview.completedPerMinute.reduce(0, +)
        let discardedHour = overview.discardedPerMinute.reduce(0, +)
        let body: HTML = """
            <h1>Overview</h1>
            <p class="muted">Jobs in the table: <span class="estimate" id="total-estimate">≈ \(Layout.number(overview.estimatedTotal)) (estimate from the planner's statistics)</span></p>
            <h2>Queues</h2>
            <table id="queues"><thead><tr><th>queue</th><th class="num">available</th><th class="num">scheduled</th>
            <th class="num">running</th><th class="num">retryable</th><th class="num">completed (1 h)</th>
            <th class="num">discarded (1 h)</th><th class="num">oldest available</th><th>status</th><th></th></tr></thead>
            <tbody>\(rows.isEmpty ? ["<tr><td colspan=\"10\" class=\"muted\">no jobs yet</td></tr>"] : rows)</tbody></table>
            \(overview.waitingEstimated || overview.finishedEstimated ? HTML("<p class=\"estimate\" id=\"estimates-note\">≈ marks the planner's estimate: with \(Layout.number(overview.failureLimit)) or more jobs waiting (or finished in the last hour) they are not counted one by one. Running and retryable counts are exact; the oldest wait is that of the job each queue runs next.</p>") : "")
            <div class="grid">
            <div><h2>Throughput, last hour</h2><div class="chart" id="throughput">
            \(Chart.throughput(completed: overview.completedPerMinute, discarded: overview.discardedPerMinute))
            <p class="muted">\(Layout.number(completedHour)) completed, \(Layout.number(discardedHour)) discarded in the last 60 minutes.</p></div></div>
            <div><h2>Failures by kind, last hour</h2>
            <table id="failures"><thead><tr><th>kind of the latest error</th><th class="num">jobs</th></tr></thead>
            <tbody>\(failures.isEmpty ? ["<tr><td colspan=\"2\" class=\"muted\">none</td></tr>"] : failures)</tbody></table>
            <p class="muted">Jobs waiting to retry, and jobs discarded or cancelled in the last hour (each group counted up to \(Layout.number(overview.failureLimit))).</p></div>
            </div>
            """
        return Layout.page(title: "Overview", section: "/", context: context, body: body)
    }
}

/// The throughput chart: one bar pair per minute, oldest on the left, as
/// inline SVG with presentation attributes only (the page's CSP allows no
/// inline style).
enum Chart {
    static func throughput(completed: [Int], discarded: [Int]) -> HTML {
        let width = 600.0, height = 160.0, left = 40.0, bottom = 20.0
        let peak = max(1, zip(completed, discarded).map { $0 + $1 }.max() ?? 1)
        let slot = (width - left) / 60
        var bars: [HTML] = []
        for minute in 0..<60 {
            let x = left + Double(59 - minute) * slot
            let okHeight = Double(completed[minute]) / Double(peak) * (height - bottom - 10)
            let badHeight = Double(discarded[minute]) / Double(peak) * (height - bottom - 10)
            let base = height - bottom
            let title = "\(minute) min ago: \(completed[minute]) completed, \(discarded[minute]) discarded"
            if okHeight + badHeight == 0 { continue }
            bars.append("""
                <g><title>\(title)</title>\
                <rect x="\(fmt(x + 1))" y="\(fmt(base - okHeight))" width="\(fmt(slot - 2))" height="\(fmt(okHeight))" fill="#3c9a5f"/>\
                <rect x="\(fmt(x + 1))" y="\(fmt(base - okHeight - badHeight))" width="\(fmt(slot - 2))" height="\(fmt(badHeight))" fill="#d0473b"/></g>
                """)
        }
        return """
            <svg viewBox="0 0 \(fmt(width)) \(fmt(height))" role="img" aria-label="jobs finished per minute, last hour">
            <line x1="\(fmt(left))" y1="\(fmt(height - bottom))" x2="\(fmt(width))" y2="\(fmt(height - bottom))" stroke="#9aa3b5"/>
            <text x="0" y="14" font-size="11" fill="#5b6475">\(peak)/min</text>
            <text x="\(fmt(left))" y="\(fmt(height - 4))" font-size="11" fill="#5b6475">-60 min</text>
            <text x="\(fmt(width - 30))" y="\(fmt(height - 4))" font-size="11" fill="#5b6475">now</text>
            \(bars)</svg>
            """
    }

    private static func fmt(_ value: Double) -> String {
        String(format: "%.1f", value)
    }
}
