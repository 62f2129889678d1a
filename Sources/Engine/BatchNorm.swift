/// nn.BatchNorm2d (affine, tracking running statistics).
///
/// Parameters `name.weight` (γ, init 1) and `name.bias` (β, init 0); buffers `name.running_mean` (0),
/// `name.running_var` (1) and `name.num_batches_tracked` (0, a count stored as Float).
/// In CNHW each channel is one contiguous run of N·H·W values, so statistics are plain sums.
///
/// Training: batch mean and biased variance normalise; the running statistics move by `momentum`
/// towards the batch mean and the *unbiased* variance (as PyTorch does), and the counter grows by 1.
/// Evaluation: the running statistics normalise.
///
/// `fusedReLU`: ResNet and U-Net always follow BN with ReLU; fusing saves one pass over the
/// activations forward and backward. Forward writes max(0, y); backward zeroes the gradient where
/// the output is 0. Models print the separate `ReLU(..., fusedIntoPrevious: true)` module.
/// `fusedReLU6`: the same with MobileNet's ReLU6, min(max(0, y), 6); the gradient is zeroed where
/// the output is 0 or 6 (`ReLU(cap: 6, ..., fusedIntoPrevious: true)` prints it).
public final class BatchNorm2d: Module {
    public let channels: Int
    public let eps, momentum: Float
    public let fusedReLU: Bool
    /// The fused activation's upper clamp: 6 for ReLU6, +∞ for ReLU (and unused without one).
    public let reluCap: Float
    public let weight, bias: ParameterRef
    public let runningMean, runningVar, numBatchesTracked: ParameterRef
    /// Set by `ConvEpilogue.foldAtInference`: at inference the convolution before this layer applies
    /// it (`evaluationTerms`) in its epilogue, and forward hands its input on untouched.
    public internal(set) var isFoldedIntoConvolution = false
    let store: ParameterStore
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])
    /// Batch mean and 1/√(var + eps) of the last training forward, per channel.
    private let savedMean, savedInvStd: Tensor
    private var input: Tensor?

    public init(_ store: ParameterStore, _ name: String, _ channels: Int, eps: Float = 1e-5, momentum: Float = 0.1,
                fusedReLU: Bool = false, fusedReLU6: Bool = false) {
        self.channels = channels; self.eps = eps; self.momentum = momentum
        self.fusedReLU = fusedReLU || fusedReLU6
        reluCap = fusedReLU6 ? 6 : .infinity
        self.store = store
        weight = store.declare("\(name).weight", shape: [channels], kind: .weight, initialize: Initializer.constant(1))
        bias = store.declare("\(name).bias", shape: [channels], kind: .bias, initialize: Initializer.constant(0))
        runningMean = store.declareBuffer("\(name).running_mean", shape: [channels], value: 0)
        runningVar = store.declareBuffer("\(name).running_var", shape: [channels], value: 1)
        numBatchesTracked = store.declareBuffer("\(name).num_batches_tracked", shape: [], value: 0)
        savedMean = Tensor(shape: [channels])
        savedInvStd = Tensor(shape: [channels])
    }

    public var typeDescription: String {
        "BatchNorm2d(\(channels), eps=\(eps), momentum=\(momentum), affine=True, bias=True, track_running_stats=True)"
    }

    // x: [N, C, H, W] → y: [N, C, H, W]   (CNHW), y = γ·(x − μ)/√(σ² + eps) + β  [then max(0, ·)]
    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        checkShape(x.shape.count == 4 && x.c == channels, typeDescription, "input shape \(x.shape), expected [N, \(channels), H, W]")
        let m = x.n * x.h * x.w
        let training = ctx.training
        if !training && isFoldedIntoConvolution && ConvEpilogue.enabled { return x }
        checkShape(!training || m > 1, typeDescription, "training needs more than 1 value per channel, got input \(x.shape)")
        output.resize(x.shape)
        savedMean.resize([channels]); savedInvStd.resize([channels])
        // Recomputing a block's forward for its backward (`--recompute blocks`) normalises with the
        // same batch statistics but must not move the running ones a second time.
        let updatesRunning = training && !ctx.recomputing
        let (src, dst) = (x.data, output.data)
        let (gamma, beta) = (store.value(weight), store.value(bias))
        let (rMean, rVar) = (store.buffer(runningMean), store.buffer(runningVar))
        let (sMean, sInvStd) = (savedMean.data, savedInvStd.data)
        let (eps, momentum, relu, cap) = (eps, momentum, fusedReLU, reluCap)
        Parallel.chunks(channels, work: 3 * channels * m) { start, end in
            for c in start ..< end {
                let xc = src + c * m, yc = dst + c * m
                var mean: Float, invStd: Float
                if training {
                    // Two passes (mean, then squared deviations): no cancellation for large means.
                    let mu = blockedSum(m) { xc[$0] } / Double(m)
                    let muF = Float(mu)
                    let ss = blockedSum(m) { let d = xc[$0] - muF; return d * d }
                    let variance = ss / Double(m)
                    mean = muF
                    invStd = Float(1 / (variance + Double(eps)).squareRoot())
                    sMean[c] = mean; sInvStd[c] = invStd
                    if updatesRunning {
                        rMean[c] = (1 - momentum) * rMean[c] + momentum * mean
                        rVar[c] = (1 - momentum) * rVar[c] + momentum * Float(ss / Double(m - 1))
                    }
                } else {
                    mean = rMean[c]
                    invStd = evaluationInvStd(rVar[c], eps)
                }
                let scale = gamma[c] * invStd
                let shift = beta[c] - mean * scale
                if relu && cap < .infinity {
                    for i in 0 ..< m { yc[i] = min(max(xc[i] * scale + shift, 0), cap) }
                } else if relu {
                    for i in 0 ..< m { yc[i] = max(xc[i] * scale + shift, 0) }
                } else {
                    for i in 0 ..< m { yc[i] = xc[i] * scale + shift }
                }
            }
        }
        if updatesRunning { store.buffer(numBatchesTracked)[0] += 1 }
        input = training ? x : nil
        return output
    }

    /// The evaluation forward's y = x·scale[c] + shift[c] per channel, from the running statistics
    /// (the same expressions as `forward`, so an epilogue that applies them gives its bits).
    func evaluationTerms(scale: UnsafeMutablePointer<Float>, shift: UnsafeMutablePointer<Float>) {
        let (gamma, beta) = (store.value(weight), store.value(bias))
        let (rMean, rVar) = (store.buffer(runningMean), store.buffer(runningVar))
        for c in 0 ..< channels {
            let s = gamma[c] * evaluationInvStd(rVar[c], eps)
            scale[c] = s
            shift[c] = beta[c] - rMean[c] * s
        }
    }

    // dy → dx with x̂ = (x − μ)·invStd, per channel over m = N·H·W values:
    //   dβ += Σ dy,  dγ += Σ dy·x̂,  dx = γ·invStd·(dy − Σdy/m − x̂·Σ(dy·x̂)/m)
    // (with fusedReLU, dy is first zeroed where the output was clamped: y = 0, or y = 6 for ReLU6).
    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        guard let x = input else { preconditionFailure("\(typeDescription): backward without a training forward") }
        checkShape(dy.count == x.count, typeDescription, "gradient shape \(dy.shape) for output \(x.shape)")
        let m = x.n * x.h * x.w
        gradInput.resize(x.shape)
        let (src, y, g, dx) = (x.data, output.data, dy.data, gradInput.data)
        let gamma = store.value(weight)
        let (dGamma, dBeta) = (store.grad(weight), store.grad(bias))
        let (sMean, sInvStd) = (savedMean.data, savedInvStd.data)
        let (relu, cap) = (fusedReLU, reluCap)
        Parallel.chunks(channels, work: 4 * channels * m) { start, end in
            for c in start ..< end {
                let xc = src + c * m, yc = y + c * m, gc = g + c * m, dxc = dx + c * m
                let (mean, invStd) = (sMean[c], sInvStd[c])
                let (sumDy, sumDyXhat) = gradientSums(gc, xc, relu ? yc : nil, cap, mean, m)
                let dGammaC = Float(sumDyXhat) * invStd
                dGamma[c] += dGammaC
                dBeta[c] += Float(sumDy)
                let k = gamma[c] * invStd
                let a = Float(sumDy / Double(m))
                let b = dGammaC / Float(m) * invStd   // multiplies (x − μ), i.e. x̂·Σ(dy·x̂)/m
                if relu && cap < .infinity {
                    for i in 0 ..< m {
                        let gi = gc[i]   // loaded unconditionally: a select, not a branch
                        dxc[i] = k * ((insideClamps(yc[i], cap) ? gi : 0) - a - (xc[i] - mean) * b)
                    }
                } else if relu {
                    for i in 0 ..< m {
                        let gi = gc[i]   // loaded unconditionally: a select, not a branch
                        dxc[i] = k * ((yc[i] > 0 ? gi : 0) - a - (xc[i] - mean) * b)
                    }
                } else {
                    for i in 0 ..< m { dxc[i] = k * (gc[i] - a - (xc[i] - mean) * b) }
                }
            }
        }
        return gradInput
    }

    // The output, the input gradient, and the per-channel batch mean and 1/std kept for backward
    // (allocated with the layer, a fixed few bytes).
    public func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        checkShape(x.count == 4 && x[1] == channels, typeDescription, "input shape \(x), expected [N, \(channels), H, W]")
        ledger.keep(.output, floats: Tensor.elementCount(x), typeDescription)
        ledger.keep(.gradient, floats: Tensor.elementCount(x), typeDescription)
        ledger.keep(.saved, floats: 2 * channels, typeDescription)
        return x
    }

    public func releaseBuffers() { output.release(); gradInput.release(); savedMean.release(); savedInvStd.release(); input = nil }
}

/// 1/√(running variance + eps), the evaluation forward's normalisation.
@inline(__always)
private func evaluationInvStd(_ variance: Float, _ eps: Float) -> Float { 1 / (variance + eps).squareRoot() }

/// Σ dy and Σ dy·(x − μ) over one channel, dy zeroed where `y` (when given) is not positive, or,
/// with a finite `cap`, not in (0, cap) (see `insideClamps`).
/// Four Float lanes per block (the compiler may not reorder Float sums itself), blocks in Double.
@inline(__always)
private func gradientSums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>?, _ cap: Float,
                          _ mean: Float, _ m: Int) -> (Double, Double) {
    var totalA = 0.0, totalB = 0.0
    var start = 0
    while start < m {
        let end = min(m, start + reductionBlock)
        var a0: Float = 0, a1: Float = 0, a2: Float = 0, a3: Float = 0
        var b0: Float = 0, b1: Float = 0, b2: Float = 0, b3: Float = 0
        var i = start
        if let y, cap < .infinity {
            while i + 4 <= end {
                let (g0, g1, g2, g3) = (dy[i], dy[i + 1], dy[i + 2], dy[i + 3])
                let d0 = insideClamps(y[i], cap) ? g0 : 0, d1 = insideClamps(y[i + 1], cap) ? g1 : 0
                let d2 = insideClamps(y[i + 2], cap) ? g2 : 0, d3 = insideClamps(y[i + 3], cap) ? g3 : 0
                a0 += d0; a1 += d1; a2 += d2; a3 += d3
                b0 += d0 * (x[i] - mean); b1 += d1 * (x[i + 1] - mean)
                b2 += d2 * (x[i + 2] - mean); b3 += d3 * (x[i + 3] - mean)
                i += 4
            }
            while i < end { let g = dy[i]; let d = insideClamps(y[i], cap) ? g : 0; a0 += d; b0 += d * (x[i] - mean); i += 1 }
        } else if let y {
            while i + 4 <= end {
                // Unconditional loads then selects: no branches, so the loop vectorises.
                let (g0, g1, g2, g3) = (dy[i], dy[i + 1], dy[i + 2], dy[i + 3])
                let d0 = y[i] > 0 ? g0 : 0, d1 = y[i + 1] > 0 ? g1 : 0
                let d2 = y[i + 2] > 0 ? g2 : 0, d3 = y[i + 3] > 0 ? g3 : 0
                a0 += d0; a1 += d1; a2 += d2; a3 += d3
                b0 += d0 * (x[i] - mean); b1 += d1 * (x[i + 1] - mean)
                b2 += d2 * (x[i + 2] - mean); b3 += d3 * (x[i + 3] - mean)
                i += 4
            }
            while i < end { let g = dy[i]; let d = y[i] > 0 ? g : 0; a0 += d; b0 += d * (x[i] - mean); i += 1 }
        } else {
            while i + 4 <= end {
                a0 += dy[i]; a1 += dy[i + 1]; a2 += dy[i + 2]; a3 += dy[i + 3]
                b0 += dy[i] * (x[i] - mean); b1 += dy[i + 1] * (x[i + 1] - mean)
                b2 += dy[i + 2] * (x[i + 2] - mean); b3 += dy[i + 3] * (x[i + 3] - mean)
                i += 4
            }
            while i < end { a0 += dy[i]; b0 += dy[i] * (x[i] - mean); i += 1 }
        }
        totalA += Double((a0 + a1) + (a2 + a3))
        totalB += Double((b0 + b1) + (b2 + b3))
        start = end
    }
    return (totalA, totalB)
}

/// 0 < y < cap for an output y of min(max(·, 0), cap), as one comparison: y·(cap − y) > 0 (exact
/// enough: cap − y is exact near cap, and y·cap does not underflow to 0 for y > 0). `&&` would be
/// a branch, and with it the loops stop vectorising (5× slower backward, measured).
@inline(__always)
func insideClamps(_ y: Float, _ cap: Float) -> Bool { y * (cap - y) > 0 }
