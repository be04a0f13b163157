import Foundation

/// What the connecting database role may do through the dashboard.
struct Permissions: Sendable, Equatable {
    var canCancel: Bool
    var canRetry: Bool
    var canPause: Bool
    var role: String

    static let none = Permissions(canCancel: false, canRetry: false, canPause: false, role: "")

    /// `--read-only` hides every action, whatever the role holds.
    func limited(readOnly: Bool) -> Permissions {
        readOnly ? Permissions(canCancel: false, canRetry: false, canPause: false, role: role) : self
    }
}

struct QueueSummary: Sendable {
    var name: String
    var available, scheduled, retryable, running, completed, discarded: Int
    /// Seconds the oldest job ready to run has waited; nil when none waits.
    var oldestAge: Double?
    var paused: Bool
}

struct Overview: Sendable {
    var queues: [QueueSummary]
    /// Available and scheduled counts are the planner's estimates (there
    /// were too many waiting jobs to count on every refresh).
    var waitingEstimated = false
    /// Completed and discarded counts of the last hour are estimates.
    var finishedEstimated = false
    /// The failure counts stopped at this many per group.
    var failureLimit = 0
    /// Index 0 is the current minute, 59 the oldest of the hour.
    var completedPerMinute: [Int]
    var discardedPerMinute: [Int]
    var failures: [(kind: String, jobs: Int)]
    /// Rows in hl.jobs by the planner's statistics.
    var estimatedTotal: Int64
}

/// The job list's filters and cursor, as they appear in the query string.
struct JobFilter: Sendable, Equatable {
    var queue: String?
    var state: String?
    var guest: String?
    var function: String?
    /// `YYYY-MM-DDTHH:MM` (a datetime-local input), UTC.
    var from: String?
    var to: String?
    /// Keyset cursors: jobs with ids below `before` (older), or above
    /// `after` (newer). At most one is set.
    var before: Int64?
    var after: Int64?

    static let states = ["pending", "available", "running", "retryable", "completed", "discarded", "cancelled"]

    enum Invalid: Error, Equatable { case state(String), time(String), cursor(String) }

    init(queue: String? = nil, state: String? = nil, guest: String? = nil, function: String? = nil,
         from: String? = nil, to: String? = nil, before: Int64? = nil, after: Int64? = nil) {
        (self.queue, self.state, self.guest, self.function) = (queue, state, guest, function)
        (self.from, self.to, self.before, self.after) = (from, to, before, after)
    }

    /// Reads the query string's parameters; empty values mean no filter.
    init(parameters: [String: String]) throws {
        func value(_ name: String) -> String? {
            guard let text = parameters[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return text
        }
        queue = value("queue")
        state = value("state")
        guest = value("guest")
        function = value("function")
        from = value("from")
        to = value("to")
        if let state, !Self.states.contains(state) { throw Invalid.state(state) }
        for time in [from, to].compactMap({ $0 }) where !Self.isTime(time) { throw Invalid.time(time) }
        if let text = value("before") {
            guard let id = Int64(text), id > 0 else { throw Invalid.cursor(text) }
            before = id
        }
        if let text = value("after"), before == nil {
            guard let id = Int64(text), id >= 0 else { throw Invalid.cursor(text) }
            after = id
        }
    }

    /// `YYYY-MM-DDTHH:MM`, optionally with `:SS`: what a datetime-local
    /// input sends.
    static func isTime(_ text: String) -> Bool {
        let pattern = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?$/
        return text.wholeMatch(of: pattern) != nil
    }

    /// The same filters with another cursor (or none).
    func with(before: Int64? = nil, after: Int64? = nil) -> JobFilter {
        var copy = self
        copy.before = before
        copy.after = after
        return copy
    }

    /// The query string (without `?`), filters first.
    var queryString: String {
        let pairs: [(String, String?)] = [
            ("queue", queue), ("state", state), ("guest", guest), ("function", function), ("from", from), ("to", to),
            ("before", before.map(String.init)), ("after", after.map(String.init)),
        ]
        return pairs.compactMap { name, value in value.map { "\(name)=\(Self.percentEncode($0))" } }
            .joined(separator: "&")
    }

    static func percentEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }
}

struct JobRow: Sendable {
    var id: Int64
    var queue, guest, function, state: String
    var attempt, maxAttempts: Int
    var created: String
    var finished: String?
    var lastErrorKind: String?
}

struct JobListPage: Sendable {
    var rows: [JobRow]
    /// Cursor for the next older page, nil on the last page.
    var older: Int64?
    /// Cursor for the next newer page, nil on the first page.
    var newer: Int64?
}

/// One entry of a job's errors array, as the worker wrote it.
struct AttemptError: Sendable {
    var attempt: Int?
    var at, kind, message, worker: String
}

struct JobDetail: Sendable {
    var id: Int64
    var queue, guest, function, state: String
    var args: String
    var result: String?
    var attempt, maxAttempts, priority: Int
    var timeoutMS, memoryMB: Int?
    var vm, submittedBy, attemptedBy: String?
    var scheduled: Bool
    var created, runAt: String
    var attempted, cancelRequested, finished: String?
    /// Workflow fields (migration 0009); progress is the latest report's JSON.
    var uniqueKey, dependsOn, progress: String?
    var parentID: Int64?
    var errors: [AttemptError]
    /// Set when the errors column did not parse as the worker writes it.
    var rawErrors: String?
}

struct GuestRow: Sendable {
    var name, sha256: String
    var sizeBytes: Int64
    /// As `guest add` listed them; nil when the guest was stored unlisted.
    var functions: [String]?
    var registered, updated: String
    var finished, discarded: Int
    /// The job counts are the planner's estimates.
    var estimated = false
}

struct WorkerRow: Sendable {
    var id, host: String
    var pid, concurrency: Int
    var queues: String?
    var version, started: String
    var heartbeatAge: Double
    var fresh, recycled, defaultVM: Int
}
