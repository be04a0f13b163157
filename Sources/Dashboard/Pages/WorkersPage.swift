enum WorkersPage {
    static func render(_ workers: [WorkerRow], context: PageContext) -> HTML {
        let rows = workers.map { worker -> HTML in
            let stale = worker.heartbeatAge > 60
            return """
                <tr data-worker="\(worker.id)"><td>\(worker.id)</td><td>\(worker.host)</td><td class="num">\(worker.pid)</td>
                <td class="num">\(worker.concurrency)</td><td>\(worker.queues ?? "all")</td><td>\(worker.version)</td>
                <td>\(worker.started)</td>
                <td class="num">\(stale ? HTML("<span class=\"paused\">\(Layout.age(worker.heartbeatAge))</span>") : "\(Layout.age(worker.heartbeatAge))")</td>
                <td class="num">\(worker.fresh)</td><td class="num">\(worker.recycled)</td><td class="num">\(worker.defaultVM)</td></tr>
                """
        }
        let body: HTML = """
            <h1>Workers</h1>
            <table id="workers"><thead><tr><th>id</th><th>host</th><th class="num">pid</th><th class="num">concurrency</th>
            <th>queues</th><th>version</th><th>started (UTC)</th><th class="num">heartbeat age</th>
            <th class="num">running in fresh VMs</th><th class="num">in recycled VMs</th><th class="num">in the worker's default</th></tr></thead>
            <tbody>\(rows.isEmpty ? ["<tr><td colspan=\"11\" class=\"muted\">no live workers</td></tr>"] : rows)</tbody></table>
            <p class="muted">VMs by mode count the jobs running now by the mode each asked for; a job that names none runs in the worker's default mode (<code>--vm</code>).</p>
            """
        return Layout.page(title: "Workers", section: "/workers", context: context, body: body)
    }
}
