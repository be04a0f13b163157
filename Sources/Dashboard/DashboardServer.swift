import Foundation
import HTTPTypes
import Hummingbird
import JobQueue
import Logging
import OperationsHTTP

/// How `hl-worker dashboard` runs.
public struct DashboardConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// nil: libpq's PG* variables.
    public var databaseURL: String?
    /// Hides every action and opens the sessions read-only.
    public var readOnly = false
    public var access = AccessPolicy()
    public var pageSize = 50
    public var connections = 4
    /// A page whose statement runs longer than this fails with a message
    /// instead of holding a connection.
    public var statementTimeoutMS = 5000

    public init() {}

    public var isLoopback: Bool {
        host == "127.0.0.1" || host == "::1" || host == "localhost" || host.hasPrefix("127.")
    }
}

/// The web dashboard: Hummingbird on the project's HTTP stack, serving
/// pages built from the job tables and, where the database role may, the
/// cancel, retry, pause and resume actions.
public final class DashboardServer: Sendable {
    private let server: HTTPServer
    public var port: Int { server.port }

    public init(configuration: DashboardConfiguration, logger: Logger = Logger(label: "hl.dashboard")) throws {
        var settings = ["SET statement_timeout = \(max(configuration.statementTimeoutMS, 1))"]
        if configuration.readOnly { settings.append("SET default_transaction_read_only = on") }
        let pool = ConnectionPool(conninfo: configuration.databaseURL, size: configuration.connections,
                                  sessionSettings: settings, logger: logger)
        let app = DashboardRoutes(store: DashboardStore(pool: pool), configuration: configuration, logger: logger)
        server = try HTTPServer(host: configuration.host, port: configuration.port,
                                responder: app.router().buildResponder(), logger: logger)
    }

    public func stop() {
        server.stop()
    }
}

/// The routes and what each does; rendering is in Pages/.
struct DashboardRoutes: Sendable {
    let store: DashboardStore
    let configuration: DashboardConfiguration
    let logger: Logger

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/healthz") { _, _ -> Response in
            do {
                _ = try await store.permissions()
                return Self.text(.ok, "ok\n")
            } catch {
                return Self.text(.serviceUnavailable, "database unreachable\n")
            }
        }
        router.get("/static/app.css") { request, _ in
            await guarded(request) { _ in Self.asset(Assets.css, type: "text/css; charset=utf-8") }
        }
        router.get("/static/app.js") { request, _ in
            await guarded(request) { _ in Self.asset(Assets.js, type: "text/javascript; charset=utf-8") }
        }
        router.get("/") { request, _ in
            await page(request) { context in OverviewPage.render(try await store.overview(), context: context) }
        }
        router.get("/jobs") { request, _ in
            await page(request) { context in
                let filter: JobFilter
                do {
                    filter = try JobFilter(parameters: FormData.parse(request.uri.query ?? ""))
                } catch {
                    throw PageError.badRequest("invalid filter: \(error)")
                }
                return JobsPage.render(try await store.jobs(filter, pageSize: configuration.pageSize), filter: filter,
                                       context: context)
            }
        }
        router.get("/jobs/:id") { request, requestContext in
            await page(request) { context in
                guard let text = requestContext.parameters.get("id"), let id = Int64(text), id > 0 else {
                    throw PageError.notFound("no such job")
                }
                guard let job = try await store.job(id: id) else { throw PageError.notFound("no job \(id)") }
                return JobPage.render(job, context: context)
            }
        }
        router.get("/guests") { request, _ in
            await page(request) { context in GuestsPage.render(try await store.guests(), context: context) }
        }
        router.get("/workers") { request, _ in
            await page(request) { context in WorkersPage.render(try await store.workers(), context: context) }
        }
        router.post("/jobs/:id/:action") { request, requestContext in
            let id = requestContext.parameters.get("id").flatMap { Int64($0) }
            switch (id, requestContext.parameters.get("action")) {
            case (let id?, "cancel"): return await act(request, what: { _ in "cancel job \(id)" }) { _ in .cancel(id) }
            case (let id?, "retry"): return await act(request, what: { _ in "retry job \(id)" }) { _ in .retry(id) }
            default: return Self.text(.notFound, "no such action\n")
            }
        }
        router.post("/queues/:action") { request, requestContext in
            let action = requestContext.parameters.get("action")
            guard action == "pause" || action == "resume" else { return Self.text(.notFound, "no such action\n") }
            return await act(request, what: { form in "\(action!) queue \(form["queue"] ?? "")" }) { form in
                guard let queue = form["queue"], !queue.isEmpty else { return nil }
                return action == "pause" ? .pause(queue) : .resume(queue)
            }
        }
        return router
    }

    // MARK: Pages

    enum PageError: Error {
        case badRequest(String), notFound(String), forbidden(String)
    }

    /// Authenticates, renders with the page context (permissions, form
    /// token), and reports server-side time in Server-Timing.
    private func page(_ request: Request, render: @Sendable (PageContext) async throws -> HTML) async -> Response {
        await guarded(request) { session in
            let notice = session.cookies["hl_notice"].flatMap { $0.removingPercentEncoding }
            var context = PageContext(permissions: .none, csrfToken: session.csrfToken,
                                      returnTo: FormData.safeReturn(request.uri.description), notice: notice)
            do {
                context.permissions = try await store.permissions().limited(readOnly: configuration.readOnly)
                var response = Self.html(.ok, try await render(context))
                if notice != nil {
                    response.headers.append(HTTPField(name: .setCookie, value: "hl_notice=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"))
                }
                return response
            } catch let error as PageError {
                switch error {
                case .badRequest(let message): return errorPage(.badRequest, message, context: context)
                case .notFound(let message): return errorPage(.notFound, message, context: context)
                case .forbidden(let message): return errorPage(.forbidden, message, context: context)
                }
            } catch {
                logger.warning("page failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
                return errorPage(.internalServerError, Self.explain(error), context: context)
            }
        }
    }

    private func errorPage(_ status: HTTPResponse.Status, _ message: String, context: PageContext) -> Response {
        let body: HTML = "<h1>\(status.code) \(status.reasonPhrase)</h1><div class=\"notice error\" id=\"error\">\(message)</div>"
        return Self.html(status, Layout.page(title: status.reasonPhrase, section: "", context: context, body: body))
    }

    static func explain(_ error: any Error) -> String {
        switch (error as? PGError)?.sqlState {
        case "57014": return "the query ran past the dashboard's statement timeout: narrow the filters"
        case "42501": return "the database role may not do this: \(error)"
        default: return "database error: \(error)"
        }
    }

    // MARK: Actions

    /// Refused in read-only mode and on a failed CSRF check, before any
    /// statement; otherwise the database decides (a role without the right
    /// gets 403). Success redirects back to the page the form was on.
    private func act(_ request: Request, what describe: @escaping @Sendable ([String: String]) -> String,
                     _ makeAction: @escaping @Sendable ([String: String]) -> DashboardStore.Action?) async -> Response {
        var readable = request
        let body = (try? await readable.collectBody(upTo: 16 * 1024)).map { String(buffer: $0) } ?? ""
        let origin = request.headers[.origin]
        let fetchSite = request.headers[HTTPField.Name("Sec-Fetch-Site")!]
        let host = request.head.authority
        return await guarded(request) { session in
            let form = FormData.parse(body)
            let what = describe(form)
            if configuration.readOnly {
                return Self.text(.forbidden, "the dashboard runs with --read-only: \(what) refused\n")
            }
            let verdict = CSRF.check(formToken: form["csrf"], cookieToken: session.cookies[CSRF.cookie],
                                     origin: origin, secFetchSite: fetchSite, host: host)
            if case .refused(let reason) = verdict {
                logger.warning("refused a form post", metadata: ["action": "\(what)", "reason": "\(reason)"])
                return Self.text(.forbidden, "cross-site request refused: \(reason)\n")
            }
            guard let action = makeAction(form) else { return Self.text(.badRequest, "\(what): missing fields\n") }
            let notice: String
            do {
                switch try await store.perform(action) {
                case .done: notice = "done: \(what)"
                case .notApplicable: notice = "nothing to do: \(what) (not in a state it applies to)"
                }
            } catch let error as PGError where error.sqlState == "42501" {
                return Self.text(.forbidden, "the database role may not \(what)\n")
            } catch {
                logger.warning("action failed", metadata: ["action": "\(what)", "error": "\(error)"])
                return Self.text(.internalServerError, "\(what) failed: \(Self.explain(error))\n")
            }
            logger.info("dashboard action", metadata: ["action": "\(what)", "outcome": "\(notice)"])
            var response = Response(status: .seeOther, headers: [.location: FormData.safeReturn(form["return"])])
            response.headers.append(HTTPField(
                name: .setCookie,
                value: "hl_notice=\(JobFilter.percentEncode(notice)); Path=/; Max-Age=30; HttpOnly; SameSite=Strict"))
            return response
        }
    }

    // MARK: Every request

    struct Session: Sendable {
        var cookies: [String: String]
        var csrfToken: String
    }

    /// Access check, the form-token cookie, security headers and timing.
    private func guarded(_ request: Request, _ body: @Sendable (Session) async -> Response) async -> Response {
        let start = ContinuousClock.now
        guard configuration.access.admits(request.headers[.authorization]) else {
            var response = Self.text(.unauthorized, "authentication required\n")
            response.headers[.wwwAuthenticate] = configuration.access.challenge
            return response
        }
        let cookies = FormData.cookies(request.headers[.cookie])
        let existing = cookies[CSRF.cookie].flatMap { Secrets.isToken($0) ? $0 : nil }
        let token = existing ?? Secrets.token()
        var response = await body(Session(cookies: cookies, csrfToken: token))
        if existing == nil {
            response.headers.append(HTTPField(name: .setCookie, value: "\(CSRF.cookie)=\(token); Path=/; HttpOnly; SameSite=Strict"))
        }
        response.headers[.contentSecurityPolicy] =
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        let elapsed = ContinuousClock.now - start
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        response.headers[HTTPField.Name("Server-Timing")!] = "app;dur=\(String(format: "%.2f", ms))"
        return response
    }

    private static func html(_ status: HTTPResponse.Status, _ page: HTML) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: page.markup)))
    }

    static func text(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    private static func asset(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "max-age=300"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
