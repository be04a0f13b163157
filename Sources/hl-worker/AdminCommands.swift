import ArgumentParser
import Foundation
import JobQueue
import Sandbox

struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Apply the schema migrations the database lacks.")

    @OptionGroup var database: DatabaseOptions
    @Option(help: ArgumentHelp(
        "Folder of NNNN_name.sql files to apply instead of the migrations built into this binary "
            + "(default: $HL_MIGRATIONS_DIR if set, else the built-in ones).", valueName: "dir"))
    var migrationsDir: String?

    func run() throws {
        try reportingFailures {
            let migrations = try Migrator.chosenMigrations(explicit: migrationsDir)
            let store = try database.connect()
            let applied = try Migrator.migrate(connection: store.connection, migrations: migrations)
            print(applied.isEmpty ? "schema is up to date" : applied.map { "applied \($0)" }.joined(separator: "\n"))
        }
    }
}

struct GuestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guest", abstract: "Register and list guests.", subcommands: [Add.self, List.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a guest ELF and store it under NAME, replacing any older version atomically.")

        @OptionGroup var database: DatabaseOptions
        @Argument(help: "Guest name, as jobs refer to it.") var name: String
        @Argument(help: "Path to the guest ELF.") var elf: String

        func run() throws {
            try reportingFailures {
                guard let bytes = FileManager.default.contents(atPath: elf) else {
                    throw CommandError(kind: "invalid_guest", message: "cannot read \(elf)")
                }
                // A Wasm module becomes a guest ELF at build time, not here.
                if bytes.starts(with: [0x00, 0x61, 0x73, 0x6D]) {
                    throw CommandError(kind: "invalid_guest", message: """
                        \(elf) is a WebAssembly module, not a guest ELF: build it into one with \
                        guests/build.sh \(elf) -o \(name).elf, then add that
                        """)
                }
                let report = try GuestInspection.inspect(name: name, bytes: Array(bytes))
                let sha256 = try database.connect().putGuest(name: name, image: Array(bytes), functions: report.functions)
                print("\(name) \(sha256)")
                if let functions = report.functions { print("functions: \(functions.joined(separator: ", "))") }
                if let note = report.note { print("note: \(note)") }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List registered guests.")
        @OptionGroup var database: DatabaseOptions

        func run() throws {
            try reportingFailures {
                for guest in try database.connect().listGuests() {
                    let functions = guest.functions.map { $0.joined(separator: ",") } ?? "(functions not listed)"
                    print("\(guest.name)\t\(guest.sha256)\t\(guest.size) bytes\t\(guest.updatedAt)\t\(functions)")
                }
            }
        }
    }
}

struct EnqueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue", abstract: "Insert one job and print its id.",
        discussion: """
            Options left out take the column's default; timeout, memory and VM then come from the worker that runs it.
            A job the schema refuses (see `hl-worker serve --help` for the limits) prints one line naming the rule.
            """)

    @OptionGroup var database: DatabaseOptions
    @Argument(help: "Registered guest to run (see `hl-worker guest list`).") var guest: String
    @Argument(help: "Function of the guest to call.") var function: String
    @Argument(help: "Arguments as a JSON object.") var args = "{}"
    @Option(help: "Queue to put it in (default: default).") var queue: String?
    // .unconditional: "--priority -5" is a value, not an unknown option.
    @Option(parsing: .unconditional, help: ArgumentHelp("Lower runs first, -100 to 100 (default 0).", valueName: "n"))
    var priority: Int?
    @Option(help: ArgumentHelp("When to run it, ISO 8601 (e.g. 2030-01-31T12:00:00Z); default now.", valueName: "time"))
    var runAt: String?
    @Option(help: ArgumentHelp("Attempts before it is discarded, 1 to 1000 (default 3).", valueName: "n"))
    var maxAttempts: Int?
    @Option(help: ArgumentHelp("Time limit of one attempt in ms (default: the worker's --default-timeout-ms).",
                               valueName: "ms"))
    var timeoutMs: Int?
    @Option(help: ArgumentHelp("Guest memory in MiB, 8 to 4096 (default: the worker's --default-memory-mb).",
                               valueName: "mib"))
    var memoryMb: Int?
    @Option(help: ArgumentHelp("VM kind: fresh or recycled (default: the worker's --vm).", valueName: "kind"))
    var vm: String?
    @Option(help: "Insert nothing while a job of yours with this key is pending, available, running or retryable.")
    var uniqueKey: String?

    func run() throws {
        try reportingFailures {
            var when: Date?
            if let runAt {
                let formatter = ISO8601DateFormatter()
                let withFraction = ISO8601DateFormatter()
                withFraction.formatOptions.insert(.withFractionalSeconds)
                guard let parsed = formatter.date(from: runAt) ?? withFraction.date(from: runAt) else {
                    throw CommandError(kind: "invalid_job",
                                       message: "--run-at \(runAt) is not an ISO 8601 time such as 2030-01-31T12:00:00Z")
                }
                when = parsed
            }
            let store = try database.connect()
            do {
                if let uniqueKey {
                    guard let id = try store.enqueue(
                        uniqueKey: uniqueKey, guest: guest, function: function, argsJSON: args, queue: queue,
                        priority: priority, runAt: when, maxAttempts: maxAttempts,
                        timeoutMs: timeoutMs, memoryMb: memoryMb, vm: vm)
                    else {
                        FileHandle.standardError.write(Data("a job with unique key \(uniqueKey) is already waiting or running\n".utf8))
                        return
                    }
                    print(id)
                    return
                }
                let id = try store.enqueue(guest: guest, function: function, argsJSON: args, queue: queue,
                                           priority: priority, runAt: when, maxAttempts: maxAttempts,
                                           timeoutMs: timeoutMs, memoryMb: memoryMb, vm: vm)
                print(id)
            } catch let error as PGError {
                throw CommandError(kind: "invalid_job", message: DatabaseOptions.oneLine(error))
            }
        }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Jobs per queue (due now, scheduled for later, running, retrying), paused queues, and live workers.",
        discussion: "Reads hl.queue_summary and hl.live_workers, so an hl_dashboard login can run it.")

    @OptionGroup var database: DatabaseOptions

    func run() throws {
        try reportingFailures {
            let store = try database.connect()
            let queues = try store.queueSummary()
            let workers = try store.liveWorkerSummary()
            print("QUEUE\tAVAILABLE\tSCHEDULED\tRUNNING\tRETRYABLE\tOLDEST_WAIT_S\tPAUSED")
            for row in queues {
                // Queue names are whatever a job's submitter wrote.
                print([UntrustedText.escape(row.queue), "\(row.available)", "\(row.scheduled)", "\(row.running)",
                       "\(row.retryable)", row.oldestAvailableAge.map { String(format: "%.1f", $0) } ?? "-",
                       row.pausedAt.map { "paused since \(ISO8601DateFormatter().string(from: $0))" } ?? "-"]
                    .joined(separator: "\t"))
            }
            print("\nWORKER\tHOST\tPID\tQUEUES\tCONCURRENCY\tRUNNING\tHEARTBEAT")
            for worker in workers {
                let queues = worker.queues.map { $0.map { UntrustedText.escape($0) }.joined(separator: ",") } ?? "*"
                print([UntrustedText.escape(worker.id), UntrustedText.escape(worker.host), "\(worker.pid)", queues,
                       "\(worker.concurrency)", "\(worker.runningJobs)",
                       ISO8601DateFormatter().string(from: worker.heartbeatAt)].joined(separator: "\t"))
            }
            try ScheduleCommand.printStatus(store)
        }
    }
}

struct QueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue", abstract: "Pause and resume queues for every worker.",
        subcommands: [Pause.self, Resume.self, List.self])

    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop all workers claiming from QUEUE (running jobs finish); honoured at their next claim.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "Queue to pause.") var queue: String

        func run() throws {
            try reportingFailures {
                let changed = try database.connect().pauseQueue(queue)
                print(changed ? "paused \(queue)" : "\(queue) was already paused")
            }
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let workers claim from QUEUE again.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "Queue to resume.") var queue: String

        func run() throws {
            try reportingFailures {
                let changed = try database.connect().resumeQueue(queue)
                print(changed ? "resumed \(queue)" : "\(queue) was not paused")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List paused queues.")
        @OptionGroup var database: DatabaseOptions

        func run() throws {
            try reportingFailures {
                for queue in try database.connect().pausedQueues() { print("\(UntrustedText.escape(queue))\tpaused") }
            }
        }
    }
}
