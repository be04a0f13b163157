import Foundation

/// Events per second over the recent past: counted in windows of at least
/// `window`, each new window's rate averaged with the one before, and read
/// as falling while nothing happens (an idle worker's rate decays towards
/// zero instead of staying at its last busy value).
struct RecentRate {
    let window: TimeInterval
    private var windowStart: TimeInterval
    private var eventsInWindow = 0
    private var smoothed: Double = 0

    init(window: TimeInterval = 0.02, now: TimeInterval) {
        self.window = window
        windowStart = now
    }

    mutating func record(_ count: Int = 1, now: TimeInterval) {
        eventsInWindow += count
        let elapsed = now - windowStart
        guard elapsed >= window else { return }
        let sample = Double(eventsInWindow) / elapsed
        // A long gap before this event says the rate fell: the sample over
        // the gap replaces the average instead of being averaged in.
        smoothed = elapsed > 10 * window ? sample : (smoothed + sample) / 2
        windowStart = now
        eventsInWindow = 0
    }

    /// Per second, as of `now`.
    func perSecond(now: TimeInterval) -> Double {
        let elapsed = now - windowStart
        guard elapsed > 10 * window else { return smoothed }
        return min(smoothed, Double(eventsInWindow) / elapsed)
    }
}
