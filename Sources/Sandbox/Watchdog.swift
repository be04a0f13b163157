import Glibc

/// One thread per process that fires deadlines: each armed call gets its
/// action run once its deadline passes, unless it is disarmed first. A single
/// thread keeps timeouts from costing a thread per call.
final class Watchdog: @unchecked Sendable {
    // `mutex` (a pthread mutex, with `condition`) guards `entries`, `nextToken`
    // and `sleepingUntil`.
    static let shared = Watchdog()

    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var entries: [UInt64: (deadline: UInt64, action: () -> Void)] = [:]
    private var nextToken: UInt64 = 1
    private var thread = pthread_t()
    /// The deadline the thread sleeps until; arming a later one needs no
    /// wake-up (and a wake-up per call costs a futex round trip).
    private var sleepingUntil: UInt64 = .max

    private init() {
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&condition, &attributes)
        pthread_condattr_destroy(&attributes)
        let box = Unmanaged.passRetained(self)
        let created = pthread_create(&thread, nil, { argument in
            let watchdog = Unmanaged<Watchdog>.fromOpaque(argument!).takeRetainedValue()
            watchdog.loop()
        }, box.toOpaque())
        precondition(created == 0, "cannot start the watchdog thread: \(created)")
    }

    static func now() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    /// Runs `action` on the watchdog thread after `nanoseconds`, unless
    /// disarmed. The action runs with the watchdog's lock held, so once
    /// `disarm` returns it will never run.
    func arm(after nanoseconds: UInt64, _ action: @escaping () -> Void) -> UInt64 {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        let token = nextToken
        nextToken += 1
        let deadline = Self.now() &+ nanoseconds
        entries[token] = (deadline, action)
        if deadline < sleepingUntil { pthread_cond_signal(&condition) }
        return token
    }

    func disarm(_ token: UInt64) {
        pthread_mutex_lock(&mutex)
        entries[token] = nil
        pthread_mutex_unlock(&mutex)
    }

    private func loop() -> Never {
        pthread_mutex_lock(&mutex)
        while true {
            let now = Self.now()
            for (token, entry) in entries where entry.deadline <= now {
                entries[token] = nil
                entry.action()
            }
            if let next = entries.values.map(\.deadline).min() {
                sleepingUntil = next
                var spec = timespec(tv_sec: Int(next / 1_000_000_000), tv_nsec: Int(next % 1_000_000_000))
                pthread_cond_timedwait(&condition, &mutex, &spec)
            } else {
                sleepingUntil = .max
                pthread_cond_wait(&condition, &mutex)
            }
        }
    }
}
