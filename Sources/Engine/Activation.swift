/// nn.ReLU and nn.ReLU6.

/// nn.ReLU. Any shape, any layout (element-wise).
///
/// Two printing/compute options:
/// - `inplace`: only changes the repr to PyTorch's `ReLU(inplace=True)`; the engine always writes
///   a separate output (layers own their outputs, so nothing upstream is overwritten).
/// - `fusedIntoPrevious`: the preceding layer (`BatchNorm2d(fusedReLU: true)`, `Add(fusedReLU: true)`)
///   already applied max(0, ·) and masks its own gradient; this module is then an identity that
///   exists so the printed summary shows the ReLU where PyTorch has one. Models that use it simply
///   don't call it (or call it: forward and backward return their argument).
public final class ReLU: Module {
    public let inplace: Bool
    public let fusedIntoPrevious: Bool
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])

    public init(inplace: Bool = false, fusedIntoPrevious: Bool = false) {
        self.inplace = inplace
        self.fusedIntoPrevious = fusedIntoPrevious
    }

    public var typeDescription: String { inplace ? "ReLU(inplace=True)" : "ReLU()" }

    // y = max(x, 0)
    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        if fusedIntoPrevious { return x }
        output.resize(x.shape)
        let (src, dst) = (x.data, output.data)
        Parallel.chunks(x.count, work: x.count) { start, end in
            for i in start ..< end { dst[i] = max(src[i], 0) }
        }
        return output
    }

    // dx = dy where y > 0 (the saved output tells which inputs were positive)
    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        if fusedIntoPrevious { return dy }
        checkShape(dy.count == output.count, typeDescription, "gradient shape \(dy.shape) for output \(output.shape)")
        gradInput.resize(output.shape)
        let (y, g, dx) = (output.data, dy.data, gradInput.data)
        Parallel.chunks(dy.count, work: dy.count) { start, end in
            for i in start ..< end { let gi = g[i]; dx[i] = y[i] > 0 ? gi : 0 }   // select, not branch
        }
        return gradInput
    }
}

/// nn.ReLU6 (MobileNetV2): y = min(max(x, 0), 6). Any shape, any layout (element-wise).
/// `inplace` and `fusedIntoPrevious` as for ReLU (`BatchNorm2d(fusedReLU6: true)` does the work).
public final class ReLU6: Module {
    public let inplace: Bool
    public let fusedIntoPrevious: Bool
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])

    public init(inplace: Bool = false, fusedIntoPrevious: Bool = false) {
        self.inplace = inplace
        self.fusedIntoPrevious = fusedIntoPrevious
    }

    public var typeDescription: String { inplace ? "ReLU6(inplace=True)" : "ReLU6()" }

    // y = min(max(x, 0), 6)
    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        if fusedIntoPrevious { return x }
        output.resize(x.shape)
        let (src, dst) = (x.data, output.data)
        Parallel.chunks(x.count, work: x.count) { start, end in
            for i in start ..< end { dst[i] = min(max(src[i], 0), 6) }
        }
        return output
    }

    // dx = dy where 0 < y < 6 (PyTorch's hardtanh backward: 0 < x < 6, the same set)
    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        if fusedIntoPrevious { return dy }
        checkShape(dy.count == output.count, typeDescription, "gradient shape \(dy.shape) for output \(output.shape)")
        gradInput.resize(output.shape)
        let (y, g, dx) = (output.data, dy.data, gradInput.data)
        Parallel.chunks(dy.count, work: dy.count) { start, end in
            for i in start ..< end { let gi = g[i]; dx[i] = insideClamps(y[i], 6) ? gi : 0 }   // select, not branch
        }
        return gradInput
    }
}
