import Foundation
import JobQueue
import XCTest

/// The dashboard in a real browser: headless Chromium loads each page, the
/// tests read the DOM it rendered and its screenshot, and drive the retry
/// of a discarded job through the page itself.
final class BrowserTests: DashboardTestCase {
    private func seed() throws -> (discarded: Int64, hostile: Int64) {
        let ids = try insertJobs(4, queue: "email", args: #"{"to": "a@example.com"}"#)
        try discard(ids[0], kind: "timeout", message: "ran past 1000 ms")
        let hostile = try insertJobs(queue: "email", function: "render")[0]
        try discard(hostile, kind: "guest_trap",
                    message: "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>")
        try admin.execute("INSERT INTO hl.guests (name, image) VALUES ('demo', '\\x7f454c46'::bytea)")
        try admin.execute("INSERT INTO hl.workers (id, host, pid, concurrency, version) VALUES ('w-1', 'host-a', 42, 8, '0.1.0')")
        return (ids[0], hostile)
    }

    /// Checks a screenshot is a real rendering: a PNG the width of the
    /// window, and not a blank page (which compresses to almost nothing).
    private func checkScreenshot(_ png: Data, name: String) throws {
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "\(name): not a PNG")
        let width = png[16..<20].reduce(0) { $0 << 8 | Int($1) }
        XCTAssertEqual(width, 1280, name)
        XCTAssertGreaterThan(png.count, 15_000, "\(name): the screenshot looks blank")
        if let folder = ProcessInfo.processInfo.environment["HL_SCREENSHOT_DIR"] {
            try png.write(to: URL(fileURLWithPath: folder).appendingPathComponent("dashboard-\(name).png"))
        }
    }

    func testEveryPageRendersInTheBrowser() throws {
        let (discarded, hostile) = try seed()
        let client = try start(as: "hl_dashboard")
        let browser = try Browser.launch()
        let base = "http://127.0.0.1:\(client.port)"
        let pages: [(name: String, path: String, selector: String)] = [
            ("overview", "/", "#queues tr[data-queue='email']"),
            ("jobs", "/jobs?queue=email", "#jobs tr[data-job='\(discarded)']"),
            ("job", "/jobs/\(discarded)", "#errors td.message"),
            ("guests", "/guests", "#guests tr[data-guest='demo']"),
            ("workers", "/workers", "#workers tr[data-worker='w-1']"),
        ]
        for page in pages {
            try browser.open(base + page.path)
            let found = try browser.evaluate("document.querySelector(\"\(page.selector)\") !== null") as? Bool
            let dom = try browser.dom()
            XCTAssertEqual(found, true, "\(page.path): \(page.selector) not rendered:\n\(dom.prefix(2000))")
            XCTAssertEqual(try browser.evaluate("document.title") as? String,
                           "\(page.name == "job" ? "Job \(discarded)" : page.name.capitalized) · hl-worker")
            // The stylesheet from the binary applied (no CDN, nothing inline).
            XCTAssertEqual(try browser.evaluate("getComputedStyle(document.querySelector('header')).display") as? String, "flex")
            try checkScreenshot(try browser.screenshot(), name: page.name)
        }
        try browser.open(base + "/")
        XCTAssertEqual(try browser.evaluate("document.querySelectorAll('#throughput svg rect').length > 0") as? Bool, true,
                       "the chart has bars for the jobs finished this hour")
        XCTAssertEqual(try browser.evaluate("document.querySelectorAll('form[method=post]').length") as? Int, 0,
                       "hl_dashboard is shown no action")

        // A hostile guest's message is shown as text and runs nothing.
        try browser.open(base + "/jobs/\(hostile)")
        XCTAssertEqual(try browser.evaluate("document.querySelector('#errors td.message').textContent") as? String,
                       "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>")
        XCTAssertEqual(try browser.evaluate("document.querySelectorAll('main img, main script').length") as? Int, 0)
        XCTAssertEqual(try browser.evaluate("typeof window.__pwned") as? String, "undefined")
    }

    /// The page refreshes itself and keeps the filters of its URL.
    func testSelfRefreshKeepsTheFilters() throws {
        _ = try seed()
        try insertJobs(2, queue: "other")
        let client = try start(as: "hl_dashboard")
        let browser = try Browser.launch()
        try browser.open("http://127.0.0.1:\(client.port)/jobs?queue=email&state=available")
        let before = try browser.evaluate("document.querySelectorAll('#jobs tr[data-job]').length") as? Int
        XCTAssertEqual(before, 3)
        let added = try insertJobs(queue: "email")[0]
        try insertJobs(queue: "other")
        // The refresh runs every 5 s.
        let refreshed = try browser.evaluate("""
            new Promise(function (resolve) {
              var start = Date.now();
              (function poll() {
                if (document.body.hasAttribute('data-refreshed')) { resolve(true); }
                else if (Date.now() - start > 15000) { resolve(false); }
                else { setTimeout(poll, 200); }
              })();
            })
            """) as? Bool
        XCTAssertEqual(refreshed, true, "no refresh within 15 s")
        XCTAssertEqual(try browser.evaluate("document.querySelector(\"#jobs tr[data-job='\(added)']\") !== null") as? Bool, true)
        XCTAssertEqual(try browser.evaluate("document.querySelectorAll('#jobs tr[data-job]').length") as? Int, 4,
                       "only the filtered queue's available jobs")
        XCTAssertEqual(try browser.evaluate("document.querySelector('input[name=queue]').value") as? String, "email")
        XCTAssertEqual(try browser.evaluate("location.search") as? String, "?queue=email&state=available")
    }

    /// An operator opens a discarded job's page and presses Retry: the job
    /// is available again and the page says so.
    func testRetryADiscardedJobThroughThePage() throws {
        let (discarded, _) = try seed()
        let client = try start(as: "hl_operator")
        let browser = try Browser.launch()
        try browser.open("http://127.0.0.1:\(client.port)/jobs/\(discarded)")
        let button = "document.querySelector(\"button[data-action='/jobs/\(discarded)/retry']\")"
        let dom = try browser.dom()
        XCTAssertEqual(try browser.evaluate("\(button) !== null") as? Bool, true, dom)
        _ = try browser.evaluate("\(button).click(); true")
        try browser.wait(for: "Page.loadEventFired")
        XCTAssertEqual(try state(of: discarded), "available")
        let notice = try browser.evaluate("document.querySelector('#notice') && document.querySelector('#notice').textContent")
        XCTAssertEqual(notice as? String, "done: retry job \(discarded)")
        XCTAssertEqual(try browser.evaluate("location.pathname") as? String, "/jobs/\(discarded)")
        XCTAssertEqual(try browser.evaluate("\(button) === null") as? Bool, true, "no retry for an available job")
        XCTAssertEqual(try browser.evaluate("document.querySelector(\"button[data-action='/jobs/\(discarded)/cancel']\") !== null") as? Bool,
                       true, "it can be cancelled now")
    }
}
