import Foundation

enum JobPage {
    /// Longest args or result shown; more is cut with a note (the page must
    /// stay small whatever a producer or a guest wrote).
    static let shownBytes = 64 * 1024

    static func render(_ job: JobDetail, context: PageContext) -> HTML {
        var actions: [HTML] = []
        if context.permissions.canCancel, ["available", "retryable", "running"].contains(job.state),
           job.cancelRequested == nil {
            actions.append(Layout.actionForm("/jobs/\(job.id)/cancel", label: "Cancel", context: context, danger: true))
        }
        if context.permissions.canRetry, ["discarded", "cancelled"].contains(job.state) {
            actions.append(Layout.actionForm("/jobs/\(job.id)/retry", label: "Retry", context: context))
        }
        let errors = job.errors.map { error -> HTML in
            """
            <tr><td class="num">\(error.attempt.map(String.init) ?? "")</td><td>\(normalized(error.at))</td><td>\(error.kind)</td>
            <td>\(error.worker)</td><td class="message">\(error.message)</td></tr>
            """
        }
        let errorTable: HTML = job.rawErrors.map { "<pre id=\"errors-raw\">\(clip($0))</pre>" } ?? """
            <table id="errors"><thead><tr><th class="num">attempt</th><th>at (UTC)</th><th>kind</th><th>worker</th><th>message</th></tr></thead>
            <tbody>\(errors.isEmpty ? ["<tr><td colspan=\"5\" class=\"muted\">no errors</td></tr>"] : errors)</tbody></table>
            """
        let body: HTML = """
            <h1>Job \(job.id) \(Layout.state(job.state))</h1>
            <p>\(actions)</p>
            <dl class="fields">
            <dt>queue</dt><dd><a href="/jobs?queue=\(JobFilter.percentEncode(job.queue))">\(job.queue)</a></dd>
            <dt>guest</dt><dd>\(job.guest)</dd><dt>function</dt><dd>\(job.function)</dd>
            <dt>attempt</dt><dd>\(job.attempt) of \(job.maxAttempts)</dd><dt>priority</dt><dd>\(job.priority)</dd>
            <dt>timeout</dt><dd>\(job.timeoutMS.map { "\($0) ms" } ?? "worker default")</dd>
            <dt>memory</dt><dd>\(job.memoryMB.map { "\($0) MiB" } ?? "worker default")</dd>
            <dt>vm</dt><dd>\(job.vm ?? "worker default")</dd>
            <dt>submitted by</dt><dd>\(job.submittedBy ?? "unknown")</dd>
            <dt>last worker</dt><dd>\(job.attemptedBy ?? "none yet")</dd>
            <dt>unique key</dt><dd>\(job.uniqueKey ?? "none")</dd>
            <dt>enqueued by job</dt><dd>\(job.parentID.map { id -> HTML in "<a href=\"/jobs/\(id)\">\(id)</a>" } ?? "none")</dd>
            <dt>waits for jobs</dt><dd id="depends-on">\(job.dependsOn ?? "none")</dd>
            <dt>progress</dt><dd id="progress">\(job.progress ?? "none reported")</dd>
            </dl>
            <h2>Timeline (UTC)</h2>
            <ol class="timeline" id="timeline">\(timeline(job))</ol>
            <h2>Args</h2><pre id="args">\(clip(pretty(job.args)))</pre>
            <h2>Result</h2><pre id="result">\(job.result.map { clip(pretty($0)) } ?? "none")</pre>
            <h2>Errors, one per failed attempt</h2>
            \(errorTable)
            """
        return Layout.page(title: "Job \(job.id)", section: "/jobs", context: context, body: body)
    }

    static func timeline(_ job: JobDetail) -> [HTML] {
        var events: [(at: String, what: String)] = [(job.created, "inserted")]
        if job.scheduled { events.append((job.runAt, "scheduled to run")) }
        for error in job.errors where !error.at.isEmpty {
            events.append((normalized(error.at), "attempt \(error.attempt.map(String.init) ?? "?") failed: \(error.kind)"))
        }
        if let attempted = job.attempted { events.append((attempted, "attempt \(job.attempt) claimed")) }
        if let cancel = job.cancelRequested { events.append((cancel, "cancellation requested")) }
        if let finished = job.finished { events.append((finished, job.state)) }
        return events.sorted { $0.at < $1.at }.map { "<li><span class=\"muted\">\($0.at)</span> \($0.what)</li>" }
    }

    /// Error timestamps are JSON text as PostgreSQL wrote them
    /// ("2026-11-27T21:03:01.123+00:00"); cut to the page's format so the
    /// timeline sorts as text.
    static func normalized(_ at: String) -> String {
        String(at.replacingOccurrences(of: "T", with: " ").prefix(19))
    }

    static func pretty(_ json: String) -> String {
        guard json.utf8.count <= shownBytes,
              let value = try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed]),
              let data = try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
        else { return json }
        return String(decoding: data, as: UTF8.self)
    }

    static func clip(_ text: String) -> String {
        guard text.utf8.count > shownBytes else { return text }
        return String(decoding: text.utf8.prefix(shownBytes), as: UTF8.self) + "\n… (cut at 64 KiB of \(text.utf8.count) bytes)"
    }
}
