import ArgumentParser
import Foundation
import JobQueue
import Sandbox
import Worker

/// `hl-worker schedule ...`: periodic jobs in hl.schedules, which the
/// running workers enqueue (one worker at a time; see Scheduler).
struct ScheduleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule", abstract: "Add, list, remove, pause and resume periodic jobs.",
        subcommands: [Add.self, List.self, Remove.self, Pause.self, Resume.self])

    /// The schedules section of `hl-worker status` (nothing when there are none).
    static func printStatus(_ store: JobStore) throws {
        let schedules = try store.listSchedules()
        guard !schedules.isEmpty else { return }
        print("\nSCHEDULE\tCRON\tENABLED\tLAST TICK\tLAST JOB\tERROR")
        let formatter = ISO8601DateFormatter()
        for s in schedules {
            let fields = [s.name, s.cron, s.enabled ? "yes" : "paused", formatter.string(from: s.lastTick),
                          s.lastJobID.map(String.init) ?? "-", s.lastError ?? "-"]
            print(fields.map { UntrustedText.escape($0) }.joined(separator: "\t"))
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a periodic job; its first tick is the first one after now.",
            discussion: """
                CRON has 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), \
                e.g. "0 3 * * *" or "*/10 * * * * *". Quote it.
                """)
        @OptionGroup var database: DatabaseOptions
        @Argument var name: String
        @Argument var cron: String
        @Argument var guest: String
        @Argument var function: String
        @Argument(help: "Arguments as a JSON object.") var args = "{}"
        @Option(help: "IANA time zone the expression's times are in.") var timeZone = "UTC"
        @Option var queue: String?
        @Option var priority: Int?

        func run() throws {
            try reportingFailures {
                let expression: CronExpression
                do {
                    expression = try CronExpression(cron, timeZone: timeZone)
                } catch {
                    throw CommandError(kind: "invalid_schedule", message: "\(error)")
                }
                do {
                    try database.connect().addSchedule(name: name, cron: cron, timeZone: timeZone, guest: guest,
                                                       function: function, argsJSON: args, queue: queue, priority: priority)
                } catch let error as PGError {
                    throw CommandError(kind: "invalid_schedule", message: "\(error)")
                }
                let next = expression.next(after: Date()).map { ISO8601DateFormatter().string(from: $0) } ?? "never"
                print("added \(name); next tick \(next)")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List schedules with their latest tick and job.")
        @OptionGroup var database: DatabaseOptions

        func run() throws {
            try reportingFailures {
                print("NAME\tCRON\tTIME ZONE\tGUEST\tFUNCTION\tQUEUE\tENABLED\tLAST TICK\tLAST JOB\tNEXT TICK\tERROR")
                let formatter = ISO8601DateFormatter()
                for s in try database.connect().listSchedules() {
                    let next = s.enabled
                        ? ((try? CronExpression(s.cron, timeZone: s.timeZone))?.next(after: max(s.lastTick, Date()))
                            .map { formatter.string(from: $0) } ?? "-")
                        : "-"
                    // Anything in a row can be what a user inserted with SQL.
                    let fields = [s.name, s.cron, s.timeZone, s.guest, s.function, s.queue, s.enabled ? "yes" : "paused",
                                  formatter.string(from: s.lastTick), s.lastJobID.map(String.init) ?? "-", next,
                                  s.lastError ?? "-"]
                    print(fields.map { UntrustedText.escape($0) }.joined(separator: "\t"))
                }
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a schedule (jobs it enqueued stay).")
        @OptionGroup var database: DatabaseOptions
        @Argument var name: String

        func run() throws {
            try reportingFailures {
                guard try database.connect().removeSchedule(name: name) else {
                    throw CommandError(kind: "unknown_schedule", message: "no schedule named \(name)")
                }
                print("removed \(name)")
            }
        }
    }

    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop enqueuing a schedule's ticks.")
        @OptionGroup var database: DatabaseOptions
        @Argument var name: String

        func run() throws {
            try reportingFailures {
                let changed = try database.connect().setScheduleEnabled(name: name, false)
                print(changed ? "paused \(name)" : "\(name) is not an enabled schedule")
            }
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enqueue a schedule's ticks again, from now on (ticks missed while paused do not run).")
        @OptionGroup var database: DatabaseOptions
        @Argument var name: String

        func run() throws {
            try reportingFailures {
                let changed = try database.connect().setScheduleEnabled(name: name, true)
                print(changed ? "resumed \(name)" : "\(name) is not a paused schedule")
            }
        }
    }
}
