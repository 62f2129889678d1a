/// Layers with two inputs: the residual sum (ResNet) and channel concatenation (U-Net skips).
/// They are not `Module`s (one input, one output) and print nothing: PyTorch writes them as
/// code in `forward`, not as modules.

/// out = a + b (same shape, any layout); with `fusedReLU`, out = max(0, a + b) — the end of a
/// torchvision BasicBlock (`out += identity; out = relu(out)`), whose printed `ReLU` is then a
/// `ReLU(inplace: true, fusedIntoPrevious: true)`.
public final class Add {
    public let fusedReLU: Bool
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])

    public init(fusedReLU: Bool = false) { self.fusedReLU = fusedReLU }

    // a, b: [N, C, H, W] → a + b
    public func forward(_ a: Tensor, _ b: Tensor, _ ctx: Context) -> Tensor {
        checkShape(a.shape == b.shape, "Add", "input shapes \(a.shape) and \(b.shape) differ")
        output.resize(a.shape)
        let (x, y, out) = (a.data, b.data, output.data)
        if fusedReLU {
            Parallel.chunks(a.count, work: a.count) { start, end in
                for i in start ..< end { out[i] = max(x[i] + y[i], 0) }
            }
        } else {
            Parallel.chunks(a.count, work: a.count) { start, end in
                for i in start ..< end { out[i] = x[i] + y[i] }
            }
        }
        return output
    }

    /// The gradient for *both* inputs: `dy` itself (no copy) or, with `fusedReLU`, dy masked where
    /// the output was clamped (a tensor this object owns, valid until the next backward).
    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        checkShape(dy.count == output.count, "Add", "gradient shape \(dy.shape) for output \(output.shape)")
        guard fusedReLU else { return dy }
        gradInput.resize(output.shape)
        let (y, g, dx) = (output.data, dy.data, gradInput.data)
        Parallel.chunks(dy.count, work: dy.count) { start, end in
            for i in start ..< end { let gi = g[i]; dx[i] = y[i] > 0 ? gi : 0 }   // select, not branch
        }
        return gradInput
    }

    // The sum and, with a fused ReLU, the masked gradient (otherwise dy goes on as it is).
    public func planMemory(_ a: [Int], _ b: [Int], _ ledger: MemoryLedger) -> [Int] {
        checkShape(a == b, "Add", "input shapes \(a) and \(b) differ")
        ledger.keep(.output, floats: Tensor.elementCount(a), "Add")
        if fusedReLU { ledger.keep(.gradient, floats: Tensor.elementCount(a), "Add") }
        return a
    }

    public func releaseBuffers() { output.release(); gradInput.release() }
}

/// dst += src, element-wise (gradient accumulation where a tensor feeds two consumers). `dst` is
/// overwritten: pass a tensor you own, e.g. a layer's returned input gradient.
public func addInPlace(_ dst: Tensor, _ src: Tensor) {
    checkShape(dst.count == src.count, "addInPlace", "shapes \(dst.shape) and \(src.shape) differ")
    let (d, s) = (dst.data, src.data)
    Parallel.chunks(dst.count, work: dst.count) { start, end in
        for i in start ..< end { d[i] += s[i] }
    }
}

/// torch.cat([a, b], dim=1). In CNHW a tensor is its channels one after another, so the result
/// is a's storage followed by b's: two block copies forward, two back.
public final class ChannelConcat {
    private let output = Tensor(shape: [0])
    private let gradA = Tensor(shape: [0])
    private let gradB = Tensor(shape: [0])
    private var shapeA: [Int] = [], shapeB: [Int] = []

    public init() {}

    // a: [N, Ca, H, W], b: [N, Cb, H, W] → [N, Ca + Cb, H, W]
    public func forward(_ a: Tensor, _ b: Tensor, _ ctx: Context) -> Tensor {
        checkShape(a.shape.count == 4 && b.shape.count == 4 && a.n == b.n && a.h == b.h && a.w == b.w,
                   "ChannelConcat", "input shapes \(a.shape) and \(b.shape) differ outside the channels")
        shapeA = a.shape; shapeB = b.shape
        output.resize([a.n, a.c + b.c, a.h, a.w])
        output.data.update(from: a.data, count: a.count)
        (output.data + a.count).update(from: b.data, count: b.count)
        return output
    }

    /// dy: [N, Ca + Cb, H, W] → (da, db), tensors this object owns (valid until the next backward).
    public func backward(_ dy: Tensor, _ ctx: Context) -> (Tensor, Tensor) {
        checkShape(dy.count == output.count, "ChannelConcat", "gradient shape \(dy.shape) for output \(output.shape)")
        gradA.resize(shapeA); gradB.resize(shapeB)
        gradA.data.update(from: dy.data, count: gradA.count)
        gradB.data.update(from: dy.data + gradA.count, count: gradB.count)
        return (gradA, gradB)
    }

    // The concatenation, and the two gradients it splits dy into.
    public func planMemory(_ a: [Int], _ b: [Int], _ ledger: MemoryLedger) -> [Int] {
        checkShape(a.count == 4 && b.count == 4 && a[0] == b[0] && a[2] == b[2] && a[3] == b[3],
                   "ChannelConcat", "input shapes \(a) and \(b) differ outside the channels")
        let out = [a[0], a[1] + b[1], a[2], a[3]]
        ledger.keep(.output, floats: Tensor.elementCount(out), "ChannelConcat")
        ledger.keep(.gradient, floats: Tensor.elementCount(a) + Tensor.elementCount(b), "ChannelConcat")
        return out
    }

    public func releaseBuffers() { output.release(); gradA.release(); gradB.release() }
}
