import Engine

/// Finite-difference gradient checks for modules: loss = Σ y · r for a fixed random r, so
/// dL/dy = r; the analytic gradients from `backward` are compared with central differences
/// (loss summed in Double) at a sample of input elements and parameters.
public struct GradCheckResult: CustomStringConvertible {
    public var maxInputError: Float = 0
    public var maxParameterError: Float = 0
    public var worst = ""
    public var description: String { "max rel. error input \(maxInputError), params \(maxParameterError) \(worst)" }
}

public enum GradCheck {
    /// Relative error with an absolute floor so tiny gradients don't dominate.
    static func error(_ a: Float, _ b: Float, floor: Float) -> Float { abs(a - b) / max(abs(a), abs(b), floor) }

    public static func check(_ module: Module, store: ParameterStore, input: Tensor, ctx: Context,
                             samples: Int = 40, eps: Float = 1e-2, floor: Float = 1e-2, seed: UInt64 = 7,
                             checkInput: Bool = true) -> GradCheckResult {
        var rng = RandomGenerator(seed: seed)
        let y0 = module.forward(input, ctx)
        let r = (0 ..< y0.count).map { _ in rng.uniform(-1, 1) }
        let dr = Tensor(shape: y0.shape, values: r)
        func loss() -> Double {
            let y = module.forward(input, ctx)
            var s = 0.0
            for i in 0 ..< y.count { s += Double(y.data[i]) * Double(r[i]) }
            return s
        }
        // Dropout and similar layers must replay the same randomness: reseed before each forward.
        let savedRandom = ctx.random
        func replay() -> Double { ctx.random = savedRandom; return loss() }
        store.zeroGrads()
        ctx.random = savedRandom
        _ = module.forward(input, ctx)
        let dx = module.backward(dr, ctx).toArray()
        let dparams = Array(store.grads)
        var result = GradCheckResult()
        /// Central differences at `samples` random elements of `values`; returns the largest
        /// relative error against `analytic` and where it was.
        func probe(_ values: UnsafeMutablePointer<Float>, count: Int, analytic: [Float], label: String) -> (Float, String) {
            var worst: (Float, String) = (0, "")
            for _ in 0 ..< samples {
                let i = Int(rng.next() % UInt64(count))
                let old = values[i]
                values[i] = old + eps; let lp = replay()
                values[i] = old - eps; let lm = replay()
                values[i] = old
                let numeric = Float((lp - lm) / Double(2 * eps))
                let e = error(analytic[i], numeric, floor: floor)
                if e > worst.0 { worst = (e, "\(label)[\(i)] analytic \(analytic[i]) numeric \(numeric)") }
            }
            return worst
        }
        if checkInput {
            let (e, worst) = probe(input.data, count: input.count, analytic: dx, label: "input")
            result.maxInputError = e
            if !worst.isEmpty { result.worst = worst }
        }
        if store.parameterCount > 0 {
            let (e, worst) = probe(store.values.baseAddress!, count: store.parameterCount, analytic: dparams, label: "param")
            result.maxParameterError = e
            if e > result.maxInputError { result.worst = worst }
        }
        ctx.random = savedRandom
        return result
    }

    /// Finite-difference check of a loss: the analytic `gradient` after `forward` against central
    /// differences of the loss (Float, so `eps` should not be tiny) at `samples` prediction elements.
    public static func checkLoss(_ loss: Loss, prediction: Tensor, target: [Float], samples: Int = 40,
                                 eps: Float = 1e-2, floor: Float = 1e-2, seed: UInt64 = 7) -> GradCheckResult {
        var rng = RandomGenerator(seed: seed)
        return target.withUnsafeBufferPointer { t in
            _ = loss.forward(prediction, t.baseAddress!)
            let analytic = loss.gradient.toArray()
            var result = GradCheckResult()
            for _ in 0 ..< samples {
                let i = Int(rng.next() % UInt64(prediction.count))
                let old = prediction.data[i]
                prediction.data[i] = old + eps; let lp = Double(loss.forward(prediction, t.baseAddress!))
                prediction.data[i] = old - eps; let lm = Double(loss.forward(prediction, t.baseAddress!))
                prediction.data[i] = old
                let numeric = Float((lp - lm) / Double(2 * eps))
                let e = error(analytic[i], numeric, floor: floor)
                if e > result.maxInputError { result.maxInputError = e; result.worst = "prediction[\(i)] analytic \(analytic[i]) numeric \(numeric)" }
            }
            return result
        }
    }

    /// max |a − b| over two equally long arrays (infinity when the lengths differ).
    public static func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count else { return .infinity }
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// A CNHW tensor of distinct values spaced by at least `spacing`, in random order: max pooling
    /// then has no ties, and a finite-difference step below spacing/2 never changes an argmax.
    public static func distinctTensor(_ shape: [Int], seed: UInt64, spacing: Float = 0.02) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        let t = Tensor(shape: shape)
        var values = (0 ..< t.count).map { Float($0) * spacing - Float(t.count) * spacing / 2 }
        values.shuffle(using: &rng)
        for i in 0 ..< t.count { t.data[i] = values[i] }
        return t
    }

    /// A CNHW tensor of uniform random values.
    public static func randomTensor(_ shape: [Int], seed: UInt64, range: Float = 1) -> Tensor {
        var rng = RandomGenerator(seed: seed)
        let t = Tensor(shape: shape)
        for i in 0 ..< t.count { t.data[i] = rng.uniform(-range, range) }
        return t
    }
}
