import Foundation

/// How many claimed jobs a worker holds beyond its slots.
///
/// Deep enough that one claim serves many jobs when jobs are short and
/// plentiful (each claim is a statement, and PostgreSQL's cost per job
/// falls with the batch), shallow enough that a process never sits on much
/// more work than it can start soon while other processes may have free
/// slots. Adaptive depth follows the worker's recent start rate: about
/// `horizon` of this process's own work, between `floor` and `ceiling`.
/// No-op jobs at a few thousand a second reach the ceiling; jobs of 100 ms
/// on 4 slots stay at the floor.
enum PrefetchDepth: Sendable, Equatable {
    /// Always this many (`--prefetch N`; 0: claim for free slots only).
    case fixed(Int)
    case adaptive(floor: Int, ceiling: Int, horizon: TimeInterval)

    /// The default for a process with `slots` slots.
    static func standard(slots: Int) -> PrefetchDepth {
        .adaptive(floor: max(slots, 8), ceiling: 256, horizon: 0.05)
    }

    /// The depth in effect when jobs start at `startsPerSecond`.
    func depth(startsPerSecond: Double) -> Int {
        switch self {
        case .fixed(let depth):
            return depth
        case .adaptive(let floor, let ceiling, let horizon):
            let wanted = (startsPerSecond * horizon).rounded(.up)
            guard wanted.isFinite, wanted < Double(ceiling) else { return ceiling }
            return max(floor, Int(wanted))
        }
    }
}
