import ArgumentParser
import Foundation
import JobQueue
import Sandbox

/// `hl-worker job show|cancel|retry ID`. What a caller may do is decided in
/// SQL by its database role (migration 0008, hl.job_for_caller): a worker or
/// owner login any job, an hl_enqueue login only its own; a job it may not
/// touch is reported as not found.
struct JobCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "Show, cancel or retry one job.",
        discussion: "Owner and hl_worker logins act on any job, hl_enqueue logins on the jobs they submitted.",
        subcommands: [Show.self, Cancel.self, Retry.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a job: state, attempts, limits, errors and result.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The job's id.") var id: Int64

        func run() throws {
            try reportingFailures {
                let store = try database.connect()
                guard let detail = try jobCall({ try store.jobDetail(id: id) }) else { throw notFound(id) }
                print(JobCommand.describe(detail))
            }
        }
    }

    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a waiting job at once, or stop a running one within 100 ms.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The job's id.") var id: Int64

        func run() throws {
            try reportingFailures {
                let store = try database.connect()
                let changed = try jobCall { try store.cancelJob(id: id) }
                guard changed else {
                    let state = try jobCall { try store.jobDetail(id: id) }?.record.state.rawValue ?? "gone"
                    print("job \(id) is \(state); nothing to cancel")
                    return
                }
                let state = try jobCall { try store.jobDetail(id: id) }?.record.state
                print(state == .running ? "job \(id): cancellation requested; its worker stops it" : "job \(id) cancelled")
            }
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put a discarded or cancelled job back in its queue, with its attempts reset and its errors kept.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The job's id.") var id: Int64

        func run() throws {
            try reportingFailures {
                let store = try database.connect()
                if try jobCall({ try store.retryJob(id: id) }) {
                    print("job \(id) is available again")
                } else {
                    let state = try jobCall { try store.jobDetail(id: id) }?.record.state.rawValue ?? "gone"
                    throw CommandError(kind: "invalid_state",
                                       message: "job \(id) is \(state); only discarded or cancelled jobs can be retried")
                }
            }
        }
    }

    /// Human-readable, one field a line; guest and submitter text escaped.
    static func describe(_ detail: JobDetail) -> String {
        let job = detail.record
        let time = { (date: Date) in ISO8601DateFormatter().string(from: date) }
        var lines = [
            "id            \(job.id)",
            "state         \(job.state.rawValue)",
            "queue         \(UntrustedText.escape(job.queue))",
            "guest         \(UntrustedText.escape(job.guest))",
            "function      \(UntrustedText.escape(job.function))",
            "attempt       \(job.attempt) of \(job.maxAttempts)",
            "priority      \(job.priority)",
            "run_at        \(time(job.runAt))",
            "created_at    \(time(detail.createdAt))",
            "finished_at   \(job.finishedAt.map(time) ?? "-")",
            "attempted_by  \(job.attemptedBy.map { UntrustedText.escape($0) } ?? "-")",
            "submitted_by  \(detail.submittedBy.map { UntrustedText.escape($0) } ?? "-")",
            "timeout_ms    \(detail.timeoutMs.map(String.init) ?? "worker default")",
            "memory_mb     \(detail.memoryMb.map(String.init) ?? "worker default")",
            "vm            \(detail.vm ?? "worker default")",
            "unique_key    \(detail.uniqueKey.map { UntrustedText.escape($0) } ?? "-")",
            "parent        \(detail.parentID.map(String.init) ?? "-")",
            "depends_on    \(detail.dependsOnJSON ?? "-")",
            "progress      \(detail.progressJSON.map { UntrustedText.escape($0, maxBytes: 4096) } ?? "-")",
            "args          \(UntrustedText.escape(job.argsJSON, maxBytes: 4096))",
            "result        \(job.resultJSON.map { UntrustedText.escape($0, maxBytes: 4096) } ?? "-")",
        ]
        let errors = (try? JSONSerialization.jsonObject(with: Data(job.errorsJSON.utf8))) as? [[String: Any]] ?? []
        lines.append("errors        \(errors.isEmpty ? "none" : "\(errors.count)")")
        for error in errors {
            let field = { (key: String) in UntrustedText.escape("\(error[key] ?? "-")") }
            lines.append("  attempt \(field("attempt")) at \(field("at")): \(field("kind")): \(field("message")) (worker \(field("worker")))")
        }
        return lines.joined(separator: "\n")
    }
}

/// A database failure of a job command as one line; a login without the
/// rights (hl_dashboard) is told which roles may.
private func jobCall<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as PGError where error.sqlState == "42501" {
        throw CommandError(kind: "permission_denied",
                           message: "this login may not act on jobs: it needs the hl_worker or hl_enqueue role")
    } catch let error as PGError where error.sqlState == "P0002" {
        throw CommandError(kind: "not_found", message: DatabaseOptions.oneLine(error))
    } catch let error as PGError where error.sqlState == "23505" {
        throw CommandError(kind: "unique_key_taken",
                           message: "another job of this submitter with the same unique key is waiting or running; "
                               + "retry this one once that one has finished")
    } catch let error as PGError {
        throw CommandError(kind: "database", message: DatabaseOptions.oneLine(error))
    }
}

private func notFound(_ id: Int64) -> CommandError {
    CommandError(kind: "not_found", message: "no job \(id) that this login may see")
}
