import CKernels
import Engine
import TestSupport
import XCTest

/// A convolution that carries its BatchNorm (and a residual Add) at inference must give exactly the
/// bits of the separate passes, on every kernel path, with ReLU, ReLU6 and none, on 1 and 2 threads.
final class ConvEpilogueTests: XCTestCase {
    override func tearDown() {
        ConvEpilogue.enabled = true
        Parallel.setThreads(1)
    }

    struct Case {
        let name: String
        let cin, cout, kernel, stride, padding: Int
        let input: [Int]
        var bias = false
        var depthwise = false
    }

    // One shape per kernel path (Conv2d.Path), chosen by the rules in Conv2d.swift.
    static let cases = [
        Case(name: "pointwise", cin: 16, cout: 24, kernel: 1, stride: 1, padding: 0, input: [3, 16, 9, 9], bias: true),
        Case(name: "im2col", cin: 8, cout: 16, kernel: 3, stride: 2, padding: 1, input: [2, 8, 11, 11]),
        Case(name: "im2col 1x1 stride 2", cin: 8, cout: 16, kernel: 1, stride: 2, padding: 0, input: [2, 8, 11, 11]),
        Case(name: "direct 3x3", cin: 8, cout: 16, kernel: 3, stride: 1, padding: 1, input: [2, 8, 12, 12], bias: true),
        Case(name: "direct stride 2", cin: 8, cout: 16, kernel: 3, stride: 2, padding: 0, input: [2, 8, 19, 19]),
        Case(name: "winograd", cin: 128, cout: 128, kernel: 3, stride: 1, padding: 1, input: [16, 128, 8, 8]),
        // Large enough for the pointwise GEMM to be cut into many tiles, and im2col into blocks.
        Case(name: "pointwise tiled", cin: 64, cout: 96, kernel: 1, stride: 1, padding: 0, input: [4, 64, 24, 24]),
        Case(name: "im2col blocks", cin: 16, cout: 32, kernel: 5, stride: 1, padding: 2, input: [4, 16, 24, 24]),
        Case(name: "depthwise", cin: 24, cout: 24, kernel: 3, stride: 1, padding: 1, input: [3, 24, 10, 10], depthwise: true),
        Case(name: "depthwise stride 2", cin: 24, cout: 24, kernel: 3, stride: 2, padding: 1, input: [3, 24, 11, 11],
             bias: true, depthwise: true),
    ]

    enum Activation { case none, relu, relu6 }

    /// Conv2d + BatchNorm2d (+ a residual Add with ReLU) in evaluation mode, BatchNorm trained two
    /// steps so that its running statistics are not 0 and 1.
    func run(_ c: Case, _ activation: Activation, residual: Bool, fused: Bool, threads: Int) -> [Float] {
        Parallel.setThreads(threads)
        ConvEpilogue.enabled = fused
        let store = ParameterStore()
        let rng = RandomGenerator.Box(seed: 3)
        let conv = Conv2d(store, "conv", c.cin, c.cout, kernel: c.kernel, stride: c.stride, padding: c.padding, bias: c.bias, rng: rng)
        let depthwise = DepthwiseConv2d(store, "dw", c.cin, stride: c.stride, bias: c.bias, rng: rng)
        let bn = BatchNorm2d(store, "bn", c.cout, fusedReLU: activation == .relu, fusedReLU6: activation == .relu6)
        let block = Sequential([c.depthwise ? depthwise : conv, bn])
        XCTAssert((c.depthwise ? depthwise.foldedNormalization : conv.foldedNormalization) === bn && bn.isFoldedIntoConvolution, c.name)
        store.allocate()
        var r = RandomGenerator(seed: 7)
        for i in 0 ..< c.cout {
            store.value(bn.weight)[i] = r.uniform(0.5, 1.5); store.value(bn.bias)[i] = r.uniform(-0.5, 0.5)
        }
        let x = GradCheck.randomTensor(c.input, seed: 9, range: 2)
        let training = Context(training: true)
        for _ in 0 ..< 2 { _ = block.forward(x, training) }
        let eval = Context(training: false)
        let add = Add(fusedReLU: true)
        if residual {
            let out = block.forward(x, eval)   // the output shape, for the residual
            let identity = GradCheck.randomTensor(out.shape, seed: 13, range: 3)
            if conv.addsResidualInNextForward(identity, relu: add.fusedReLU, eval) {
                XCTAssert(fused, c.name)
                let y = block.forward(x, eval)
                return Array(UnsafeBufferPointer(start: y.data, count: y.count))
            }
            XCTAssertFalse(fused, c.name)
            let y = add.forward(block.forward(x, eval), identity, eval)
            return Array(UnsafeBufferPointer(start: y.data, count: y.count))
        }
        let y = block.forward(x, eval)
        return Array(UnsafeBufferPointer(start: y.data, count: y.count))
    }

    func testFusedInferenceGivesTheBitsOfSeparatePasses() {
        for c in Self.cases {
            for activation in [Activation.none, .relu, .relu6] {
                let separate = run(c, activation, residual: false, fused: false, threads: 1)
                for threads in [1, 2] {
                    let fused = run(c, activation, residual: false, fused: true, threads: threads)
                    XCTAssert(fused.elementsEqual(separate) { $0.bitPattern == $1.bitPattern },
                              "\(c.name), \(activation), \(threads) threads: fused epilogue differs")
                }
            }
        }
    }

    func testResidualAddAndReLUInTheEpilogue() {
        for c in Self.cases where !c.depthwise {
            let separate = run(c, .none, residual: true, fused: false, threads: 1)
            XCTAssert(separate.contains(0) && separate.contains { $0 > 0 }, c.name)   // the ReLU clamps some
            for threads in [1, 2] {
                let fused = run(c, .none, residual: true, fused: true, threads: threads)
                XCTAssert(fused.elementsEqual(separate) { $0.bitPattern == $1.bitPattern },
                          "\(c.name), \(threads) threads: fused residual differs")
            }
        }
    }

    /// Non-finite values go through as the separate passes let them (Swift's max and min), on every
    /// instruction set: a diverged model's NaN must reach the loss check, not turn into 0.
    func testNaNAndInfinityPassThroughAsInSeparatePasses() {
        let best = DirectConv3x3.instructionSet
        defer { DirectConv3x3.useInstructionSet(best) }
        let specials: [Float] = [.nan, -.infinity, .infinity, -0.0, 0, 7, -3, 2, 5, 1e30, -1e-30]
        let columns = 37   // vector bodies and a tail
        let original = (0 ..< 2 * columns).map { specials[$0 % specials.count] }
        let scale: [Float] = [1, 2], shift: [Float] = [0, -1]
        let residual = (0 ..< 2 * columns).map { Float($0 % 5) - 2 }
        for isa in ["avx512", "avx2", "generic"] where DirectConv3x3.useInstructionSet(isa) {
            for (relu, cap, withResidual) in [(true, Float(6), false), (true, Float.infinity, true), (false, Float.infinity, true)] {
                var y = original
                residual.withUnsafeBufferPointer { r in
                    y.withUnsafeMutableBufferPointer {
                        fkp_affine_epilogue($0.baseAddress!, columns, 2, columns, scale, shift, withResidual ? r.baseAddress : nil,
                                            columns, relu ? 1 : 0, cap)
                    }
                }
                for i in 0 ..< y.count {
                    let row = i / columns
                    var t = original[i] * scale[row] + shift[row]
                    if withResidual { t = t + residual[i] }
                    if relu { t = min(max(t, 0), cap) }
                    XCTAssertEqual(y[i].bitPattern, t.bitPattern, "\(isa), relu \(relu), cap \(cap): \(original[i]) at \(i)")
                }
            }
        }
    }
}
