import Foundation

/// Optimizers update every trainable parameter of a `ParameterStore` in one flat loop over its
/// `values` and `grads` (llm.c style). Their state lives in buffers of the same layout and is
/// exposed, with the step count, for checkpoints. Semantics follow PyTorch exactly.
public protocol Optimizer: AnyObject {
    /// One update from the current gradients. `learningRate`, when given, becomes the rate (as a
    /// scheduler setting the param group's lr) before the update.
    func step(learningRate: Float?)
    var learningRate: Float { get set }
    /// Updates done so far (PyTorch's `state["step"]`).
    var stepCount: Int { get set }
    /// Named state buffers (PyTorch's per-parameter state keys), each in the `values` layout (for a
    /// sharded AdamW, the part of that layout its `slice` covers).
    var stateBuffers: [(name: String, buffer: UnsafeMutableBufferPointer<Float>)] { get }
}

extension Optimizer {
    public func step() { step(learningRate: nil) }
}

/// torch.optim.AdamW (amsgrad off, maximize off):
///   p ← p·(1 − lr·wd);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
///   p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + eps)
public final class AdamW: Optimizer {
    public var learningRate: Float
    public let beta1, beta2, eps, weightDecay: Float
    public var stepCount = 0
    /// The elements of `values` this optimizer updates and holds state for: all of them, or one
    /// rank's slice when the state is sharded across ranks (ZeRO stage 1). The update is
    /// element-wise, so a slice's elements get exactly the bits the full update gives them.
    public let slice: Range<Int>
    private let store: ParameterStore
    private let m, v: UnsafeMutableBufferPointer<Float>

    public init(store: ParameterStore, slice: Range<Int>? = nil, learningRate: Float = 1e-3, beta1: Float = 0.9,
                beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0.01) {
        precondition(store.isAllocated, "AdamW: allocate the parameter store first")
        let slice = slice ?? 0 ..< store.parameterCount
        precondition(slice.lowerBound >= 0 && slice.upperBound <= store.parameterCount, "AdamW: slice \(slice) outside the store")
        self.store = store
        self.slice = slice
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        m = .allocate(capacity: slice.count); m.initialize(repeating: 0)
        v = .allocate(capacity: slice.count); v.initialize(repeating: 0)
    }

    deinit { m.deallocate(); v.deallocate() }

    public var stateBuffers: [(name: String, buffer: UnsafeMutableBufferPointer<Float>)] { [("exp_avg", m), ("exp_avg_sq", v)] }

    public func step(learningRate newRate: Float? = nil) {
        if let newRate { learningRate = newRate }
        stepCount += 1
        let t = Double(stepCount)
        let bc1 = 1 - Foundation.pow(Double(beta1), t), bc2 = 1 - Foundation.pow(Double(beta2), t)
        let stepSize = Float(Double(learningRate) / bc1)
        let invSqrtBC2 = Float(1 / bc2.squareRoot())
        let decay = 1 - learningRate * weightDecay
        let (b1, b2, eps) = (beta1, beta2, eps)
        let lo = slice.lowerBound
        let (p, g, m, v) = (store.values.baseAddress! + lo, store.grads.baseAddress! + lo, m.baseAddress!, v.baseAddress!)
        let n = slice.count
        Parallel.chunks(n, work: 8 * n) { start, end in
            adamWUpdate(p, g, m, v, start, end, b1: b1, b2: b2, eps: eps, decay: decay, stepSize: stepSize,
                        invSqrtBC2: invSqrtBC2)
        }
    }
}

/// The AdamW update of elements start..<end, eight at a time with SIMD8 (the compiler does not
/// vectorise the scalar loop by itself: the four buffers might alias). Same operations in the
/// same order as the scalar tail, so results do not depend on the alignment or chunking.
@inline(__always)
private func adamWUpdate(_ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                         _ v: UnsafeMutablePointer<Float>, _ start: Int, _ end: Int,
                         b1: Float, b2: Float, eps: Float, decay: Float, stepSize: Float, invSqrtBC2: Float) {
    typealias V = SIMD8<Float>
    let (pr, gr, mr, vr) = (UnsafeMutableRawPointer(p), UnsafeRawPointer(g), UnsafeMutableRawPointer(m), UnsafeMutableRawPointer(v))
    var i = start
    while i + 8 <= end {
        let o = i * MemoryLayout<Float>.stride
        let gi = gr.loadUnaligned(fromByteOffset: o, as: V.self)
        let mOld = mr.loadUnaligned(fromByteOffset: o, as: V.self), vOld = vr.loadUnaligned(fromByteOffset: o, as: V.self)
        let mi = mOld + (1 - b1) * (gi - mOld)   // lerp, as PyTorch writes it
        let vi = b2 * vOld + (1 - b2) * gi * gi
        mr.storeBytes(of: mi, toByteOffset: o, as: V.self)
        vr.storeBytes(of: vi, toByteOffset: o, as: V.self)
        let denom = vi.squareRoot() * invSqrtBC2 + eps
        let pi = pr.loadUnaligned(fromByteOffset: o, as: V.self)
        pr.storeBytes(of: pi * decay - stepSize * mi / denom, toByteOffset: o, as: V.self)
        i += 8
    }
    while i < end {
        let gi = g[i], mOld = m[i], vOld = v[i]
        let mi = mOld + (1 - b1) * (gi - mOld)
        let vi = b2 * vOld + (1 - b2) * gi * gi
        m[i] = mi; v[i] = vi
        let denom = vi.squareRoot() * invSqrtBC2 + eps
        p[i] = p[i] * decay - stepSize * mi / denom
        i += 1
    }
}

/// torch.optim.SGD (dampening 0):
///   d = g + wd·p;  buf ← d at the first step, else momentum·buf + d;
///   d ← d + momentum·buf (Nesterov) or buf;  p ← p − lr·d
public final class SGD: Optimizer {
    public var learningRate: Float
    public let momentum, weightDecay: Float
    public let nesterov: Bool
    public var stepCount = 0
    private let store: ParameterStore
    private let buffer: UnsafeMutableBufferPointer<Float>

    public init(store: ParameterStore, learningRate: Float, momentum: Float = 0.9, weightDecay: Float = 0, nesterov: Bool = false) {
        precondition(store.isAllocated, "SGD: allocate the parameter store first")
        precondition(!nesterov || momentum > 0, "SGD: Nesterov momentum requires a momentum")
        self.store = store
        self.learningRate = learningRate; self.momentum = momentum; self.weightDecay = weightDecay; self.nesterov = nesterov
        buffer = .allocate(capacity: store.parameterCount); buffer.initialize(repeating: 0)
    }

    deinit { buffer.deallocate() }

    public var stateBuffers: [(name: String, buffer: UnsafeMutableBufferPointer<Float>)] {
        momentum != 0 ? [("momentum_buffer", buffer)] : []
    }

    public func step(learningRate newRate: Float? = nil) {
        if let newRate { learningRate = newRate }
        let first = stepCount == 0
        stepCount += 1
        let (lr, mu, wd, nesterov) = (learningRate, momentum, weightDecay, nesterov)
        let (p, g, buf) = (store.values.baseAddress!, store.grads.baseAddress!, buffer.baseAddress!)
        let n = store.parameterCount
        Parallel.chunks(n, work: 6 * n) { start, end in
            for i in start ..< end {
                var d = wd != 0 ? g[i] + wd * p[i] : g[i]
                if mu != 0 {
                    let b = first ? d : mu * buf[i] + d
                    buf[i] = b
                    d = nesterov ? d + mu * b : b
                }
                p[i] -= lr * d
            }
        }
    }
}
