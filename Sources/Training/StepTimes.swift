import Dispatch
import Foundation

/// Where a rank's training steps spend their time: waiting for the loader's next batch, computing
/// (forward, loss, backward, optimizer) and communicating (gradient allreduce, loss allreduce,
/// buffer broadcast). Waiting in a collective for a slower rank counts as communication.
public struct StepTimes: Sendable, Equatable {
    public var data = 0.0
    public var compute = 0.0
    public var communication = 0.0
    public var steps = 0

    public init() {}

    public var total: Double { data + compute + communication }

    /// "step time (rank 0, 40 steps, 25.1 ms/step): compute 93.0 %, waiting for data 1.2 %, communication 5.8 %"
    public var summary: String {
        let t = max(total, 1e-12)
        return String(format: "step time (rank 0, %d steps, %.1f ms/step): compute %.1f %%, waiting for data %.1f %%, communication %.1f %%",
                      steps, 1000 * total / Double(max(1, steps)), 100 * compute / t, 100 * data / t, 100 * communication / t)
    }
}

/// A monotonic stopwatch: `lap()` returns the seconds since the previous lap (or creation).
struct StepClock {
    private var last = DispatchTime.now().uptimeNanoseconds

    mutating func lap() -> Double {
        let now = DispatchTime.now().uptimeNanoseconds
        defer { last = now }
        return Double(now - last) * 1e-9
    }
}
