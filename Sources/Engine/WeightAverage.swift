import Foundation

/// An exponential moving average of a model's parameters (Polyak averaging as in timm's ModelEma
/// and TensorFlow's ExponentialMovingAverage), kept beside the `ParameterStore` in buffers of its
/// layouts:
///   after the n-th update (n = 0, 1, ... counting earlier updates):
///     d = min(decay, (1 + n) / (10 + n))          (TF's num_updates warm-up)
///     avg ← d·avg + (1 − d)·p                      for every trainable value
///     avgState ← d·avgState + (1 − d)·state        for BatchNorm running means and variances
///     avgCounter ← counter                         (num_batches_tracked: copied)
/// The running statistics are averaged with the weights (timm's ModelEmaV2, torch's
/// AveragedModel(use_buffers=True)): statistics copied from the training model describe its
/// current weights, not the averaged ones, and that mismatch made a MobileNet's validation NME
/// jump by up to 20 % from epoch to epoch (measured on ytfaces68).
/// The warm-up makes early averages follow the weights closely (d = 0.1, 0.18, 0.25, ...) instead
/// of being dominated by the random initialisation. The average starts as a copy of the store.
///
/// Every element is updated on its own (no sums), so the result does not depend on the thread
/// count or the chunking. `swapIn` / `swapOut` exchange the averaged and the training numbers in
/// place (exact: the training weights come back bit for bit), for validation and for writing the
/// averaged weights into a checkpoint; `copy(into:)` fills a second store instead.
public final class WeightAverage {
    public let decay: Float
    /// Updates done so far (checkpoints save it with `values` / `state` to resume the average).
    public var updates = 0
    /// Whether `swapIn` has put the averaged numbers into the store (until `swapOut`).
    public private(set) var isSwappedIn = false
    /// The averaged parameters (the store's `values` layout) and buffers (its `state` layout).
    /// While swapped in, these hold the training numbers instead.
    public let values: UnsafeMutableBufferPointer<Float>
    public let state: UnsafeMutableBufferPointer<Float>
    private let store: ParameterStore
    /// Per state element: averaged (running statistics) or copied (counters).
    private let averagedState: [Bool]

    public init(store: ParameterStore, decay: Float = 0.999) {
        precondition(store.isAllocated, "WeightAverage: allocate the parameter store first")
        precondition(decay >= 0 && decay < 1, "WeightAverage: decay must be in [0, 1)")
        self.store = store
        self.decay = decay
        values = .allocate(capacity: store.parameterCount)
        _ = values.initialize(fromContentsOf: store.values)
        state = .allocate(capacity: store.bufferCount)
        _ = state.initialize(fromContentsOf: store.state)
        var averaged = [Bool](repeating: false, count: store.bufferCount)
        for b in store.buffers where !b.name.hasSuffix("num_batches_tracked") {
            for i in b.offset ..< b.offset + b.count { averaged[i] = true }
        }
        averagedState = averaged
    }

    deinit { values.deallocate(); state.deallocate() }

    /// Checkpoints store the average as a second state dict under this prefix
    /// (`optimizer.ema.fc.weight`, `optimizer.ema.bn1.running_mean`, ...), beside the training
    /// weights that resume continues from.
    public static let checkpointPrefix = "optimizer.ema."

    /// The decay the next update uses.
    public var currentDecay: Float {
        min(decay, Float(Double(1 + updates) / Double(10 + updates)))
    }

    /// Folds the store's current numbers into the average: call after each optimizer step.
    public func update() {
        precondition(!isSwappedIn, "WeightAverage.update while the average is swapped in")
        let d = currentDecay, keep = 1 - d
        updates += 1
        let (a, p, n) = (values.baseAddress!, store.values.baseAddress!, store.parameterCount)
        Parallel.chunks(n, work: 3 * n) { start, end in
            for i in start ..< end { a[i] = d * a[i] + keep * p[i] }
        }
        for i in 0 ..< store.bufferCount {
            state[i] = averagedState[i] ? d * state[i] + keep * store.state[i] : store.state[i]
        }
    }

    /// Restarts the average from the store's current numbers (e.g. after loading weights).
    public func reset() {
        precondition(!isSwappedIn, "WeightAverage.reset while the average is swapped in")
        _ = values.update(fromContentsOf: store.values)
        _ = state.update(fromContentsOf: store.state)
        updates = 0
    }

    /// Puts the averaged numbers into the store, keeping the training ones here.
    public func swapIn() {
        precondition(!isSwappedIn, "WeightAverage.swapIn twice")
        exchange()
        isSwappedIn = true
    }

    /// Puts the training numbers back (bit for bit).
    public func swapOut() {
        precondition(isSwappedIn, "WeightAverage.swapOut without swapIn")
        exchange()
        isSwappedIn = false
    }

    /// Runs `body` with the averaged numbers in the store, then restores the training ones.
    public func withAveraged<R>(_ body: () throws -> R) rethrows -> R {
        swapIn()
        defer { swapOut() }
        return try body()
    }

    /// Copies the averaged numbers into another store of the same layout (a second model).
    public func copy(into other: ParameterStore) {
        precondition(other.isAllocated && other.parameterCount == store.parameterCount && other.bufferCount == store.bufferCount,
                     "WeightAverage.copy: the stores' layouts differ")
        let (v, s) = isSwappedIn ? (store.values, store.state) : (values, state)
        _ = other.values.update(fromContentsOf: v)
        _ = other.state.update(fromContentsOf: s)
    }

    private func exchange() {
        let (a, p, n) = (values.baseAddress!, store.values.baseAddress!, store.parameterCount)
        Parallel.chunks(n, work: 2 * n) { start, end in
            for i in start ..< end { let t = a[i]; a[i] = p[i]; p[i] = t }
        }
        if let s = state.baseAddress, let q = store.state.baseAddress {
            for i in 0 ..< store.bufferCount { let t = s[i]; s[i] = q[i]; q[i] = t }
        }
    }
}
