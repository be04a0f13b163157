import ArgumentParser
import Foundation
import JobQueue
import Sandbox

struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Apply the schema migrations the database lacks.")

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Folder of NNNN_name.sql files (default: found next to the binary or in the checkout).")
    var migrationsDir: String?

    func run() throws {
        try reportingFailures {
            let store = try database.connect()
            let directory = try Migrator.locateMigrationsDirectory(explicit: migrationsDir)
            let applied = try Migrator.migrate(connection: store.connection, directory: directory)
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
        commandName: "enqueue", abstract: "Insert one job and print its id.")

    @OptionGroup var database: DatabaseOptions
    @Argument var guest: String
    @Argument var function: String
    @Argument(help: "Arguments as a JSON object.") var args = "{}"
    @Option var queue: String?
    @Option var priority: Int?
    @Option(help: "When to run it (ISO 8601); default now.") var runAt: String?
    @Option var maxAttempts: Int?
    @Option(help: "Insert nothing while a job of yours with this key is pending, available, running or retryable.")
    var uniqueKey: String?

    func run() throws {
        try reportingFailures {
            var when: Date?
            if let runAt {
                guard let parsed = ISO8601DateFormatter().date(from: runAt) else {
                    throw CommandError(kind: "invalid_job", message: "--run-at \(runAt) is not an ISO 8601 time")
                }
                when = parsed
            }
            do {
                if let uniqueKey {
                    guard let id = try database.connect().enqueue(
                        uniqueKey: uniqueKey, guest: guest, function: function, argsJSON: args, queue: queue,
                        priority: priority, runAt: when, maxAttempts: maxAttempts)
                    else {
                        FileHandle.standardError.write(Data("a job with unique key \(uniqueKey) is already waiting or running\n".utf8))
                        return
                    }
                    print(id)
                    return
                }
                let id = try database.connect().enqueue(guest: guest, function: function, argsJSON: args, queue: queue,
                                                        priority: priority, runAt: when, maxAttempts: maxAttempts)
                print(id)
            } catch let error as PGError {
                throw CommandError(kind: "invalid_job", message: "\(error)")
            }
        }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Jobs per queue and state, and the live workers.")

    @OptionGroup var database: DatabaseOptions

    func run() throws {
        try reportingFailures {
            let store = try database.connect()
            let status = try store.status()
            print("QUEUE\tSTATE\tCOUNT\tOLDEST RUN_AT")
            for row in status.queues {
                // Queue names are whatever a job's submitter wrote.
                print("\(UntrustedText.escape(row.queue))\t\(row.state)\t\(row.count)\t\(row.oldestRunAt.map { "\($0)" } ?? "-")")
            }
            print("\nWORKER\tHOST\tPID\tCONCURRENCY\tRUNNING\tHEARTBEAT")
            for worker in status.workers {
                print("\(worker.id)\t\(worker.host)\t\(worker.pid)\t\(worker.concurrency)\t\(worker.runningJobs)\t\(worker.heartbeatAt)")
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
        @Argument var queue: String

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
        @Argument var queue: String

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
