/// nn.Dropout: in training each element is zeroed with probability p and the survivors scaled by
/// 1/(1 − p); in evaluation it is the identity. The mask comes from `ctx.random`, so a seeded run
/// (and a resumed one, whose checkpoint restores the generator) draws the same masks.
public final class Dropout: Module {
    public let p: Float
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])
    /// 0 or 1/(1 − p) per element of the last training forward.
    private let mask = Tensor(shape: [0])
    private var maskActive = false

    public init(p: Float = 0.5) {
        precondition(p >= 0 && p <= 1, "Dropout: probability \(p) is outside [0, 1]")
        self.p = p
    }

    public var typeDescription: String { "Dropout(p=\(p), inplace=False)" }

    // y = x · mask (training), y = x (evaluation)
    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        maskActive = ctx.training && p > 0
        guard maskActive else { return x }
        output.resize(x.shape)
        mask.resize(x.shape)
        let keep: Float = p < 1 ? 1 / (1 - p) : 0
        // Drawn in element order on one thread: the mask depends only on the generator state.
        let m = mask.data
        for i in 0 ..< x.count { m[i] = ctx.random.uniform() < p ? 0 : keep }
        let (src, dst) = (x.data, output.data)
        Parallel.chunks(x.count, work: x.count) { start, end in
            for i in start ..< end { dst[i] = src[i] * m[i] }
        }
        return output
    }

    // dx = dy · mask
    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        guard maskActive else { return dy }
        checkShape(dy.count == mask.count, typeDescription, "gradient shape \(dy.shape) for output \(output.shape)")
        gradInput.resize(dy.shape)
        let (g, m, dx) = (dy.data, mask.data, gradInput.data)
        Parallel.chunks(dy.count, work: dy.count) { start, end in
            for i in start ..< end { dx[i] = g[i] * m[i] }
        }
        return gradInput
    }

    // With p > 0: the output, the mask and the input gradient; p = 0 passes through.
    public func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        guard p > 0 else { return x }
        let n = Tensor.elementCount(x)
        ledger.keep(.output, floats: n, typeDescription)
        ledger.keep(.saved, floats: n, typeDescription)
        ledger.keep(.gradient, floats: n, typeDescription)
        return x
    }

    public func releaseBuffers() { output.release(); gradInput.release(); mask.release() }
}
