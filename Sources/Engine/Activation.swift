/// nn.ReLU and nn.ReLU6: y = min(max(x, 0), cap), with cap = ∞ (ReLU) or 6 (ReLU6, MobileNetV2).
/// Any shape, any layout (element-wise).
///
/// Two printing/compute options:
/// - `inplace`: only changes the repr to PyTorch's `ReLU(inplace=True)`; the engine always writes
///   a separate output (layers own their outputs, so nothing upstream is overwritten).
/// - `fusedIntoPrevious`: the preceding layer (`BatchNorm2d(fusedReLU:)` / `(fusedReLU6:)`,
///   `Add(fusedReLU: true)`) already applied the clamp and masks its own gradient; this module is
///   then an identity that exists so the printed summary shows the activation where PyTorch has
///   one. Models that use it simply don't call it (or call it: forward and backward return their
///   argument).
public final class ReLU: Module {
    /// The upper clamp: ∞ for ReLU, 6 for ReLU6.
    public let cap: Float
    public let inplace: Bool
    public let fusedIntoPrevious: Bool
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])

    public init(cap: Float = .infinity, inplace: Bool = false, fusedIntoPrevious: Bool = false) {
        precondition(cap == .infinity || cap == 6, "ReLU: cap ∞ (nn.ReLU) or 6 (nn.ReLU6)")
        self.cap = cap
        self.inplace = inplace
        self.fusedIntoPrevious = fusedIntoPrevious
    }

    public var typeDescription: String {
        let name = cap == 6 ? "ReLU6" : "ReLU"
        return inplace ? "\(name)(inplace=True)" : "\(name)()"
    }

    // y = min(max(x, 0), cap)
    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        if fusedIntoPrevious { return x }
        output.resize(x.shape)
        let (src, dst, cap) = (x.data, output.data, cap)
        Parallel.chunks(x.count, work: x.count) { start, end in
            for i in start ..< end { dst[i] = min(max(src[i], 0), cap) }
        }
        return output
    }

    // dx = dy where 0 < y < cap (the saved output tells; PyTorch's hardtanh backward uses
    // 0 < x < cap, the same set)
    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        if fusedIntoPrevious { return dy }
        checkShape(dy.count == output.count, typeDescription, "gradient shape \(dy.shape) for output \(output.shape)")
        gradInput.resize(output.shape)
        let (y, g, dx, cap) = (output.data, dy.data, gradInput.data, cap)
        Parallel.chunks(dy.count, work: dy.count) { start, end in
            for i in start ..< end { let gi = g[i]; dx[i] = insideClamps(y[i], cap) ? gi : 0 }   // select, not branch
        }
        return gradInput
    }

    // Fused into the previous layer: nothing. Otherwise the output (which backward reads as the
    // mask) and the input gradient.
    public func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        if fusedIntoPrevious { return x }
        ledger.keep(.output, floats: Tensor.elementCount(x), typeDescription)
        ledger.keep(.gradient, floats: Tensor.elementCount(x), typeDescription)
        return x
    }

    public func releaseBuffers() { output.release(); gradInput.release() }
}
