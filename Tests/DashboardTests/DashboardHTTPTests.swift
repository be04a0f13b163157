import Dashboard
import Foundation
import JobQueue
import XCTest

/// Every page and action over real HTTP against a real PostgreSQL, as the
/// roles the deployment documents: hl_dashboard reads, hl_operator acts.
final class DashboardHTTPTests: DashboardTestCase {
    func testEveryPageRendersForTheReadOnlyRole() throws {
        let ids = try insertJobs(3, queue: "email", guest: "demo", function: "add", args: #"{"a": 1, "b": 2}"#)
        try discard(ids[0], kind: "timeout", message: "ran past 1000 ms")
        try admin.execute("""
            INSERT INTO hl.guests (name, image, functions) VALUES ('demo', '\\x7f454c46'::bytea, '{add,"<b>echo</b>"}'),
                                                                ('raw', '\\x7f', NULL)
            """)
        try admin.execute("""
            INSERT INTO hl.workers (id, host, pid, concurrency, queues, version) VALUES ('w-1', 'host-a', 42, 8, '{email}', '0.1.0')
            """)
        let client = try start(as: "hl_dashboard")

        let overview = try client.get("/")
        XCTAssertEqual(overview.status, 200, overview.body)
        XCTAssertTrue(overview.body.contains("data-queue=\"email\""), overview.body)
        XCTAssertTrue(overview.body.contains("estimate"), "the total says it is an estimate")
        XCTAssertTrue(overview.body.contains("<svg"), "throughput chart")
        XCTAssertTrue(overview.body.contains("<td>timeout</td>"), "failures by kind")
        XCTAssertNotNil(overview.header("Server-Timing"))
        XCTAssertTrue(overview.header("Content-Security-Policy")?.contains("script-src 'self'") == true)

        let list = try client.get("/jobs?queue=email")
        XCTAssertEqual(list.status, 200)
        for id in ids { XCTAssertTrue(list.body.contains("data-job=\"\(id)\""), "job \(id) listed") }

        try admin.execute("UPDATE hl.jobs SET progress = '{\"note\": \"<i>half</i>\"}', unique_key = 'k1' WHERE id = \(ids[0])")
        let job = try client.get("/jobs/\(ids[0])")
        XCTAssertTrue(job.body.contains("&lt;i&gt;half&lt;/i&gt;"), "progress shown, escaped")
        XCTAssertTrue(job.body.contains("<dd>k1</dd>"), "unique key shown")
        XCTAssertEqual(job.status, 200)
        XCTAssertTrue(job.body.contains("ran past 1000 ms"))
        XCTAssertTrue(job.body.contains("&quot;a&quot; : 1") || job.body.contains("&quot;a&quot;: 1"), job.body)
        XCTAssertTrue(job.body.contains("id=\"timeline\""))
        XCTAssertTrue(job.body.contains("discarded"))

        let guests = try client.get("/guests")
        XCTAssertEqual(guests.status, 200)
        XCTAssertTrue(guests.body.contains("data-guest=\"demo\""))
        XCTAssertTrue(guests.body.contains("4 B"), "size of the image")
        XCTAssertTrue(guests.body.contains("add, &lt;b&gt;echo&lt;/b&gt;"), "the functions, escaped: \(guests.body)")
        XCTAssertTrue(guests.body.contains("not listed"), "a guest stored without a list says so")

        let workers = try client.get("/workers")
        XCTAssertEqual(workers.status, 200)
        XCTAssertTrue(workers.body.contains("data-worker=\"w-1\""))
        XCTAssertTrue(workers.body.contains("host-a"))

        // hl_dashboard holds no action: no form anywhere.
        for page in [overview, list, job, guests, workers] {
            XCTAssertFalse(page.body.contains("method=\"post\""), "an action shown to a role without it")
        }
        XCTAssertEqual(try client.get("/jobs/999999").status, 404)
        XCTAssertEqual(try client.get("/jobs/abc").status, 404)
        XCTAssertEqual(try client.get("/static/app.js").status, 200)
        XCTAssertEqual(try client.get("/healthz").status, 200)
    }

    func testTheReadOnlyRoleCannotActEvenWithAValidForm() throws {
        let id = try insertJobs()[0]
        try discard(id, message: "boom")
        let client = try start(as: "hl_dashboard")
        let page = try client.get("/jobs/\(id)")
        let token = try XCTUnwrap(client.cookies["hl_csrf"])
        XCTAssertFalse(page.body.contains("/retry"))

        let retry = try client.post("/jobs/\(id)/retry", form: ["csrf": token, "return": "/jobs/\(id)"])
        XCTAssertEqual(retry.status, 403, retry.body)
        XCTAssertEqual(try state(of: id), "discarded")
        let pause = try client.post("/queues/pause", form: ["csrf": token, "queue": "default"])
        XCTAssertEqual(pause.status, 403, pause.body)
        XCTAssertFalse(try isPaused("default"))
        let live = try insertJobs()[0]
        let cancel = try client.post("/jobs/\(live)/cancel", form: ["csrf": token])
        XCTAssertEqual(cancel.status, 403, cancel.body)
        XCTAssertEqual(try state(of: live), "available")
    }

    func testAnOperatorCancelsRetriesPausesAndResumes() throws {
        let ids = try insertJobs(2, queue: "reports")
        try discard(ids[0], message: "boom")
        let client = try start(as: "hl_operator")

        let page = try client.get("/jobs/\(ids[0])")
        XCTAssertTrue(page.body.contains("/jobs/\(ids[0])/retry"), "retry offered for a discarded job")
        XCTAssertFalse(page.body.contains("/jobs/\(ids[0])/cancel"), "no cancel for a finished job")
        let token = try formToken(in: page.body)
        XCTAssertEqual(token, client.cookies["hl_csrf"])

        let retry = try client.post("/jobs/\(ids[0])/retry", form: ["csrf": token, "return": "/jobs/\(ids[0])"])
        XCTAssertEqual(retry.status, 303, retry.body)
        XCTAssertEqual(retry.header("Location"), "/jobs/\(ids[0])")
        XCTAssertEqual(try state(of: ids[0]), "available")
        let after = try client.get("/jobs/\(ids[0])")
        XCTAssertTrue(after.body.contains("done: retry job \(ids[0])"), "the outcome is shown once")
        XCTAssertTrue(after.body.contains("boom"), "errors are kept")
        XCTAssertFalse(try client.get("/jobs/\(ids[0])").body.contains("done: retry"))

        // Retrying a job that is not discarded or cancelled does nothing.
        _ = try client.post("/jobs/\(ids[1])/retry", form: ["csrf": token])
        XCTAssertTrue(try client.get("/").body.contains("nothing to do"))

        let cancel = try client.post("/jobs/\(ids[1])/cancel", form: ["csrf": token, "return": "/jobs?queue=reports"])
        XCTAssertEqual(cancel.status, 303)
        XCTAssertEqual(cancel.header("Location"), "/jobs?queue=reports", "back to the page with its filters")
        XCTAssertEqual(try state(of: ids[1]), "cancelled")

        XCTAssertTrue(try client.get("/").body.contains("/queues/pause"))
        XCTAssertEqual(try client.post("/queues/pause", form: ["csrf": token, "queue": "reports"]).status, 303)
        XCTAssertTrue(try isPaused("reports"))
        let overview = try client.get("/")
        XCTAssertTrue(overview.body.contains("/queues/resume"))
        XCTAssertTrue(overview.body.contains("class=\"paused\""))
        XCTAssertEqual(try client.post("/queues/resume", form: ["csrf": token, "queue": "reports"]).status, 303)
        XCTAssertFalse(try isPaused("reports"))

        // A return address elsewhere is not followed.
        let offsite = try client.post("/queues/pause", form: ["csrf": token, "queue": "x", "return": "//evil.example/"])
        XCTAssertEqual(offsite.header("Location"), "/")
    }

    func testForgedAndCrossSitePostsAreRefused() throws {
        let id = try insertJobs()[0]
        try discard(id, message: "boom")
        let client = try start(as: "hl_operator")
        _ = try client.get("/")
        let token = try XCTUnwrap(client.cookies["hl_csrf"])

        // No token, a wrong one, the right one from another site.
        XCTAssertEqual(try client.post("/jobs/\(id)/retry", form: [:]).status, 403)
        XCTAssertEqual(try client.post("/jobs/\(id)/retry", form: ["csrf": String(repeating: "a", count: 64)]).status, 403)
        XCTAssertEqual(try client.post("/jobs/\(id)/retry", form: ["csrf": token],
                                       headers: ["Origin": "http://evil.example"]).status, 403)
        XCTAssertEqual(try client.post("/jobs/\(id)/retry", form: ["csrf": token],
                                       headers: ["Sec-Fetch-Site": "cross-site"]).status, 403)
        // A form without the cookie (what SameSite=Strict makes of another
        // site's post), even with a token that was once valid.
        let stranger = DashboardClient(port: client.port)
        XCTAssertEqual(try stranger.post("/jobs/\(id)/retry", form: ["csrf": token]).status, 403)
        XCTAssertEqual(try state(of: id), "discarded", "nothing refused reached the database")

        // The same request from the page itself passes.
        XCTAssertEqual(try client.post("/jobs/\(id)/retry", form: ["csrf": token],
                                       headers: ["Origin": "http://127.0.0.1:\(client.port)", "Sec-Fetch-Site": "same-origin"]).status, 303)
        XCTAssertEqual(try state(of: id), "available")
    }

    func testReadOnlyModeHidesAndRefusesActionsWhateverTheRole() throws {
        let id = try insertJobs()[0]
        try discard(id, message: "boom")
        let client = try start(as: nil) { $0.readOnly = true }
        let page = try client.get("/jobs/\(id)")
        XCTAssertEqual(page.status, 200)
        XCTAssertFalse(page.body.contains("method=\"post\""))
        XCTAssertFalse(try client.get("/").body.contains("method=\"post\""))
        let token = try XCTUnwrap(client.cookies["hl_csrf"])
        XCTAssertEqual(try client.post("/jobs/\(id)/retry", form: ["csrf": token]).status, 403)
        XCTAssertEqual(try state(of: id), "discarded")
    }

    /// Text a hostile guest or tenant controls (error messages, args, queue
    /// and function names) arrives as text on every page, never as markup.
    func testHostileTextIsEscapedEverywhere() throws {
        let script = "<script>alert('x')</script>"
        let image = "\"><img src=x onerror=alert(1)>"
        let id = try insertJobs(queue: "q\(script)", guest: "demo", function: "f\(image)",
                                args: #"{"note": "</pre><script>alert(2)</script>"}"#)[0]
        try discard(id, kind: "kind\(image)", message: "\(script)\u{1B}[31m\(image)\u{0}")
        let client = try start(as: "hl_operator")
        let pages = ["/", "/jobs", "/jobs/\(id)", "/jobs?queue=" + DashboardClient.encode("q\(script)"),
                     "/jobs?function=" + DashboardClient.encode("f\(image)")]
        for path in pages {
            let body = try client.get(path).body
            XCTAssertFalse(body.contains("<script>alert"), "\(path) carries a live script tag")
            XCTAssertFalse(body.contains("<img src=x"), "\(path) carries a live img tag")
            XCTAssertFalse(body.contains("\u{1B}"), "\(path) carries a raw control character")
            XCTAssertEqual(body.components(separatedBy: "<script").count - 1, 1, "\(path): only the page's own script")
        }
        let job = try client.get("/jobs/\(id)").body
        XCTAssertTrue(job.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), job)
        XCTAssertTrue(job.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"))
        XCTAssertTrue(job.contains("&lt;/pre&gt;&lt;script&gt;alert(2)"))
    }

    /// Keyset pages: the first has no newer link, the last no older one,
    /// each page is the next ids in order, filters survive paging, and odd
    /// cursors neither crash nor repeat rows.
    func testPaginationAtTheEdges() throws {
        let ids = try insertJobs(7, queue: "p")
        try insertJobs(2, queue: "other")
        let client = try start(as: "hl_dashboard") { $0.pageSize = 3 }
        func listed(_ body: String) -> [Int64] {
            body.components(separatedBy: "data-job=\"").dropFirst().compactMap { Int64($0.prefix { $0 != "\"" }) }
        }
        func link(_ id: String, _ body: String) -> String? {
            guard let start = body.range(of: "id=\"\(id)\" href=\"")?.upperBound else { return nil }
            return String(body[start...].prefix { $0 != "\"" }).replacingOccurrences(of: "&amp;", with: "&")
        }
        let first = try client.get("/jobs?queue=p").body
        XCTAssertEqual(listed(first), Array(ids.reversed()[0..<3]))
        XCTAssertNil(link("newer", first))
        let secondPath = try XCTUnwrap(link("older", first))
        XCTAssertTrue(secondPath.contains("queue=p"), secondPath)
        let second = try client.get(secondPath).body
        XCTAssertEqual(listed(second), Array(ids.reversed()[3..<6]))
        XCTAssertNotNil(link("newer", second))
        let last = try client.get(try XCTUnwrap(link("older", second))).body
        XCTAssertEqual(listed(last), [ids[0]])
        XCTAssertNil(link("older", last), "no older page after the oldest job")
        // Back up from the last page: the page just newer than it.
        let back = try client.get(try XCTUnwrap(link("newer", last))).body
        XCTAssertEqual(listed(back), Array(ids.reversed()[3..<6]))
        // Exactly a page's worth left: no empty page after it.
        let exact = try client.get("/jobs?queue=p&before=\(ids[3])").body
        XCTAssertEqual(listed(exact), [ids[2], ids[1], ids[0]])
        XCTAssertNil(link("older", exact))
        // Cursors past either end, and a filter that matches nothing.
        XCTAssertEqual(listed(try client.get("/jobs?queue=p&before=1").body), [])
        XCTAssertEqual(listed(try client.get("/jobs?queue=p&after=\(ids[6])").body), [])
        XCTAssertEqual(listed(try client.get("/jobs?queue=nothing").body), [])
        XCTAssertEqual(listed(try client.get("/jobs?queue=p&state=running").body), [])
        // Bad input is a 400 with the reason, not a crash.
        for bad in ["/jobs?state=exploded", "/jobs?before=-5", "/jobs?before=x", "/jobs?from=yesterday"] {
            let response = try client.get(bad)
            XCTAssertEqual(response.status, 400, bad)
        }
        // Time filters.
        XCTAssertEqual(listed(try client.get("/jobs?queue=p&from=2000-01-01T00:00").body).count, 3)
        XCTAssertEqual(listed(try client.get("/jobs?queue=p&to=2000-01-01T00:00").body), [])
    }

    /// At 10,000 waiting jobs the overview stops counting them one by one
    /// and says its numbers are estimates; exact counts that stay cheap
    /// (retryable, running) are still exact.
    func testOverviewSwitchesToEstimatesAtScale() throws {
        try insertJobs(10_000, queue: "bulk")
        let retry = try insertJobs(3, queue: "bulk")
        try admin.execute("UPDATE hl.jobs SET state = 'retryable', attempt = 1 WHERE id = ANY($1::bigint[])",
                          params: ["{" + retry.map(String.init).joined(separator: ",") + "}"])
        try admin.execute("ANALYZE hl.jobs")
        let client = try start(as: "hl_dashboard")
        let page = try client.get("/").body
        XCTAssertTrue(page.contains("id=\"estimates-note\""), page)
        let row = try XCTUnwrap(page.components(separatedBy: "data-queue=\"bulk\"").dropFirst().first)
        let cells = row.components(separatedBy: "<td class=\"num\">").dropFirst().map { $0.prefix { $0 != "<" } }
        XCTAssertTrue(row.contains("≈"), row)
        // available (estimated), scheduled, running, retryable (exact).
        let available = Int(String(row.components(separatedBy: "≈</span>")[1].prefix { $0 != "<" })
            .replacingOccurrences(of: ",", with: "")) ?? -1
        XCTAssertTrue((5_000...20_000).contains(available), "estimate \(available) for 10,000")
        XCTAssertEqual(cells.count >= 4 ? String(cells[3]) : "", "3", "retryable is exact: \(cells)")
        // With few jobs again, the counts are exact and unmarked.
        try admin.execute("DELETE FROM hl.jobs")
        try insertJobs(5, queue: "bulk")
        let small = try client.get("/").body
        XCTAssertFalse(small.contains("estimates-note"))
        XCTAssertTrue(small.contains("<td class=\"num\">5</td>"), small)
    }

    func testBearerTokenAndBasicAuthGuardEveryPageButHealthz() throws {
        let client = try start(as: "hl_dashboard") {
            $0.access = AccessPolicy(basicCredentials: "ops:s3cret", bearerToken: "t0ken")
        }
        let refused = try client.get("/")
        XCTAssertEqual(refused.status, 401)
        XCTAssertTrue(refused.header("WWW-Authenticate")?.hasPrefix("Basic") == true)
        XCTAssertEqual(try client.get("/static/app.css").status, 401)
        XCTAssertEqual(try client.post("/queues/pause", form: ["queue": "x"]).status, 401)
        XCTAssertEqual(try client.get("/healthz").status, 200, "probes need no credentials")
        client.authorization = "Bearer wrong"
        XCTAssertEqual(try client.get("/").status, 401)
        client.authorization = "Bearer t0ken"
        XCTAssertEqual(try client.get("/").status, 200)
        client.authorization = "Basic " + Data("ops:s3cret".utf8).base64EncodedString()
        XCTAssertEqual(try client.get("/jobs").status, 200)
        client.authorization = "Basic " + Data("ops:guess".utf8).base64EncodedString()
        XCTAssertEqual(try client.get("/jobs").status, 401)
    }

    func testPagesSaySoWhenTheDatabaseIsUnreachable() throws {
        var configuration = DashboardConfiguration()
        configuration.port = 0
        configuration.databaseURL = "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"
        let server = try DashboardServer(configuration: configuration)
        servers.append(server)
        let client = DashboardClient(port: server.port)
        let page = try client.get("/")
        XCTAssertEqual(page.status, 500)
        XCTAssertTrue(page.body.contains("cannot connect to PostgreSQL"), page.body)
        XCTAssertEqual(try client.get("/healthz").status, 503)
    }
}
