import ArgumentParser
import Dashboard
import Dispatch
import Foundation
import Logging

/// `hl-worker dashboard`: the web dashboard, until SIGTERM or SIGINT.
struct DashboardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Serve the web dashboard (queues, jobs, guests, workers).",
        discussion: """
            Reads as the database role its URL names; shows cancel, retry, pause and resume only where
            that role may do them (hl_operator), and never with --read-only.
            HL_DASHBOARD_BASIC_AUTH=user:password or HL_DASHBOARD_TOKEN=<token> require HTTP basic
            credentials or an 'Authorization: Bearer <token>' header on every request but /healthz.
            """
    )

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Port to listen on.") var port = 8080
    @Option(help: "Address to listen on (default: loopback only).") var host = "127.0.0.1"
    @Flag(help: "Hide every action and open read-only database sessions.") var readOnly = false
    @Option(help: "Database connections serving pages.") var connections = 4
    @Option(help: "Log format: text or json.") var logFormat = "text"
    @Option(help: "Least severe log level written.") var logLevel = "info"

    func run() throws {
        try reportingFailures {
            try LogSetup.bootstrap(format: logFormat, level: logLevel)
            let logger = Logger(label: "hl.dashboard")
            var settings = DashboardConfiguration()
            settings.host = host
            settings.port = port
            settings.databaseURL = database.resolvedURL
            settings.readOnly = readOnly
            settings.connections = connections
            settings.access = AccessPolicy.fromEnvironment()
            guard (1...64).contains(connections) else {
                throw CommandError(kind: "invalid_configuration", message: "--connections must be 1 to 64, not \(connections)")
            }
            if !settings.isLoopback && settings.access.isOpen {
                logger.warning("listening beyond loopback without HL_DASHBOARD_BASIC_AUTH or HL_DASHBOARD_TOKEN: anyone who reaches the port can read every job")
            }
            let server: DashboardServer
            do {
                server = try DashboardServer(configuration: settings, logger: logger)
            } catch {
                throw CommandError(kind: "invalid_configuration", message: "--host/--port: \(error)")
            }
            logger.info("dashboard listening", metadata: [
                "url": "http://\(host.contains(":") ? "[\(host)]" : host):\(server.port)/",
                "read_only": "\(readOnly)", "auth": "\(settings.access.isOpen ? "none" : "required")",
            ])
            let stop = DispatchSemaphore(value: 0)
            var sources: [DispatchSourceSignal] = []
            for signalNumber in [SIGTERM, SIGINT] {
                signal(signalNumber, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
                source.setEventHandler { stop.signal() }
                source.resume()
                sources.append(source)
            }
            stop.wait()
            logger.info("dashboard stopping")
            server.stop()
            withExtendedLifetime(sources) {}
        }
    }
}
