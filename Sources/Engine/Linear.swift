/// nn.Linear. Parameters: `weight` [out, in], `bias` [out]. Input [N, in] → output [N, out], row-major.
public final class Linear: Module, InputGradientOptional {
    public let inFeatures, outFeatures: Int
    public let weight: ParameterRef
    public let bias: ParameterRef?
    public var computesInputGradient = true
    let store: ParameterStore
    private let output = Tensor(shape: [0])
    private let gradInput = Tensor(shape: [0])
    private var input: Tensor?

    public init(_ store: ParameterStore, _ name: String, _ inFeatures: Int, _ outFeatures: Int, bias: Bool = true,
                rng: RandomGenerator.Box) {
        self.inFeatures = inFeatures; self.outFeatures = outFeatures
        self.store = store
        let bound = 1 / Float(inFeatures).squareRoot()
        weight = store.declare("\(name).weight", shape: [outFeatures, inFeatures], kind: .weight,
                               initialize: Initializer.uniform(bound, rng))
        self.bias = bias ? store.declare("\(name).bias", shape: [outFeatures], kind: .bias,
                                         initialize: Initializer.uniform(bound, rng)) : nil
    }

    public var typeDescription: String {
        "Linear(in_features=\(inFeatures), out_features=\(outFeatures), bias=\(bias == nil ? "False" : "True"))"
    }

    // x: [N, in] → y: [N, out] = x · Wᵀ + b
    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        checkShape(x.shape.count == 2 && x.shape[1] == inFeatures, typeDescription, "input shape \(x.shape), expected [N, \(inFeatures)]")
        let n = x.shape[0]
        output.resize([n, outFeatures])
        var beta: Float = 0
        if let bias {
            let b = store.value(bias)
            for i in 0 ..< n { (output.data + i * outFeatures).update(from: b, count: outFeatures) }
            beta = 1
        }
        sgemm(transB: true, m: n, n: outFeatures, k: inFeatures, a: x.data, lda: inFeatures,
              b: store.value(weight), ldb: inFeatures, beta: beta, c: output.data, ldc: outFeatures)
        input = ctx.training ? x : nil
        return output
    }

    // dy: [N, out] → dx: [N, in]; dW += dyᵀ · x, db += Σₙ dy
    public func backward(_ dy: Tensor, _ ctx: Context) -> Tensor {
        guard let x = input else { preconditionFailure("\(typeDescription): backward without a training forward") }
        let n = x.shape[0]
        checkShape(dy.shape == [n, outFeatures], typeDescription, "gradient shape \(dy.shape), expected \([n, outFeatures])")
        if let bias {
            let db = store.grad(bias)
            for i in 0 ..< n {
                let row = dy.data + i * outFeatures
                for o in 0 ..< outFeatures { db[o] += row[o] }
            }
        }
        sgemm(transA: true, m: outFeatures, n: inFeatures, k: n, a: dy.data, lda: outFeatures,
              b: x.data, ldb: inFeatures, beta: 1, c: store.grad(weight), ldc: inFeatures)
        guard computesInputGradient else { return gradInput }
        gradInput.resize(x.shape)
        sgemm(m: n, n: inFeatures, k: outFeatures, a: dy.data, lda: outFeatures,
              b: store.value(weight), ldb: inFeatures, beta: 0, c: gradInput.data, ldc: inFeatures)
        return gradInput
    }

    // The output and the input gradient (unless skipped); the GEMMs need no scratch.
    public func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] {
        checkShape(x.count == 2 && x[1] == inFeatures, typeDescription, "input shape \(x), expected [N, \(inFeatures)]")
        ledger.keep(.output, floats: x[0] * outFeatures, typeDescription)
        if computesInputGradient { ledger.keep(.gradient, floats: Tensor.elementCount(x), typeDescription) }
        return [x[0], outFeatures]
    }

    public func releaseBuffers() { output.release(); gradInput.release(); input = nil }
}
