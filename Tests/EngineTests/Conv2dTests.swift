import Engine
import TestSupport
import XCTest

final class Conv2dTests: XCTestCase {
    func testForwardMatchesDirectConvolution() {
        for (k, s, p, bias) in [(3, 1, 1, true), (3, 2, 0, false), (1, 1, 0, true), (1, 2, 0, false), (7, 2, 3, false)] {
            let store = ParameterStore()
            let conv = Conv2d(store, "c", 3, 5, kernel: k, stride: s, padding: p, bias: bias, rng: .init(seed: 1))
            store.allocate()
            let shape = [2, 3, 9, 11]
            let xNCHW = GradCheck.randomTensor(shape, seed: 3).toArray()
            let y = conv.forward(Layout.cnhwTensor(shape: shape, nchw: xNCHW), Context())
            let expected = Reference.conv2dForward(xNCHW, weight: store.array(named: "c.weight")!, bias: store.array(named: "c.bias"),
                                                   .init(n: 2, inChannels: 3, height: 9, width: 11, outChannels: 5, kernel: k, stride: s, padding: p))
            let got = Layout.nchwArray(y)
            XCTAssertEqual(got.count, expected.count)
            let maxDiff = zip(got, expected).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(maxDiff, 1e-4, "k\(k) s\(s) p\(p)")
        }
    }

    /// Stride-2 im2col and col2imAdd (CKernels' fkp_gather_even / fkp_scatter_add_even) give the
    /// same bits as plain loops on every instruction set, at widths around the vector length, with
    /// and without padding, and with -0 in dx (which col2imAdd must leave alone where no tap lands:
    /// the odd columns of a 1×1 stride-2 convolution, ResNet's downsampling).
    func testStride2ColumnsAreBitExactOnEveryInstructionSet() {
        defer { _ = DirectConv3x3.useInstructionSet("avx512") || DirectConv3x3.useInstructionSet("avx2") }
        let versions = ["avx512", "avx2", "generic"].filter { DirectConv3x3.useInstructionSet($0) }
        XCTAssertFalse(versions.isEmpty)
        for (h, w, k, p) in [(9, 33, 3, 0), (10, 35, 3, 1), (7, 16, 3, 1), (5, 17, 3, 0), (6, 3, 3, 1), (6, 40, 1, 0), (5, 19, 1, 0)] {
            let g = ConvGeometry(channels: 2, batch: 2, height: h, width: w, kernel: k, stride: 2, padding: p)
            let x = GradCheck.randomTensor([2 * 2 * h * w], seed: 11).toArray()
            let col = GradCheck.randomTensor([g.rows * g.columns], seed: 12).toArray()
            // Plain loops: the definitions.
            var colExpected = [Float](repeating: 0, count: g.rows * g.columns)
            var dxExpected = [Float](repeating: -0.0, count: x.count)
            for c in 0 ..< 2 { for i in 0 ..< k { for j in 0 ..< k {
                let row = (c * k + i) * k + j
                for n in 0 ..< 2 { for oh in 0 ..< g.outHeight { for ow in 0 ..< g.outWidth {
                    let (ih, iw) = (oh * 2 - p + i, ow * 2 - p + j)
                    guard ih >= 0, ih < h, iw >= 0, iw < w else { continue }
                    let at = (c * 2 + n) * h * w + ih * w + iw, column = (n * g.outHeight + oh) * g.outWidth + ow
                    colExpected[row * g.columns + column] = x[at]
                    dxExpected[at] += col[row * g.columns + column]
                } } }
            } } }
            for version in versions {
                XCTAssertTrue(DirectConv3x3.useInstructionSet(version))
                var got = [Float](repeating: .nan, count: colExpected.count)
                var dx = [Float](repeating: -0.0, count: x.count)
                x.withUnsafeBufferPointer { xs in got.withUnsafeMutableBufferPointer {
                    im2col(xs.baseAddress!, $0.baseAddress!, g, outputRows: 0 ..< 2 * g.outHeight)
                } }
                col.withUnsafeBufferPointer { cs in dx.withUnsafeMutableBufferPointer {
                    col2imAdd(cs.baseAddress!, $0.baseAddress!, g, outputRows: 0 ..< 2 * g.outHeight)
                } }
                XCTAssertEqual(got.map(\.bitPattern), colExpected.map(\.bitPattern), "im2col \(version) \(h)x\(w) k\(k) p\(p)")
                XCTAssertEqual(dx.map(\.bitPattern), dxExpected.map(\.bitPattern), "col2imAdd \(version) \(h)x\(w) k\(k) p\(p)")
            }
        }
    }

    func testGradientsMatchFiniteDifferences() {
        for (k, s, p) in [(3, 1, 1), (3, 2, 1), (1, 1, 0), (1, 2, 0)] {
            let store = ParameterStore()
            let conv = Conv2d(store, "c", 2, 3, kernel: k, stride: s, padding: p, rng: .init(seed: 2))
            store.allocate()
            let result = GradCheck.check(conv, store: store, input: GradCheck.randomTensor([2, 2, 6, 7], seed: 4), ctx: Context())
            XCTAssertLessThan(result.maxInputError, 1e-2, "k\(k) s\(s) p\(p): \(result)")
            XCTAssertLessThan(result.maxParameterError, 1e-2, "k\(k) s\(s) p\(p): \(result)")
        }
    }

    /// Large enough outputs run in several column blocks (`ConvGeometry.blockRows`), with block
    /// boundaries inside an image: forward, input and weight gradients against direct loops. With
    /// 16 input channels there are 11 blocks, which run in parallel shards (ConvBlocks.swift): on
    /// 3 threads neighbouring blocks write the same input rows of dx.
    func testColumnBlocksMatchDirectConvolution() {
        defer { Parallel.setThreads(1) }
        for (h, w, s, cin, threads) in [(64, 70, 1, 2, 1), (130, 140, 2, 2, 1), (64, 70, 1, 16, 1), (64, 70, 1, 16, 3),
                                        (130, 140, 2, 16, 3)] {
            Parallel.setThreads(threads)
            let (n, cout, k, p) = (5, 3, 3, 1)
            let store = ParameterStore()
            let conv = Conv2d(store, "c", cin, cout, kernel: k, stride: s, padding: p, rng: .init(seed: 5))
            store.allocate()
            let g = ConvGeometry(channels: cin, batch: n, height: h, width: w, kernel: k, stride: s, padding: p)
            XCTAssertGreaterThan(n * g.outHeight, g.blockRows, "the test must span several blocks")
            XCTAssertNotEqual((g.blockRows % g.outHeight), 0, "a block boundary must fall inside an image")
            let shape = [n, cin, h, w]
            let x = GradCheck.randomTensor(shape, seed: 6).toArray()
            let weight = store.array(named: "c.weight")!
            let y = conv.forward(Layout.cnhwTensor(shape: shape, nchw: x), Context())
            let shapes = Reference.ConvShape(n: n, inChannels: cin, height: h, width: w, outChannels: cout, kernel: k, stride: s, padding: p)
            let expected = Reference.conv2dForward(x, weight: weight, bias: store.array(named: "c.bias"), shapes)
            XCTAssertLessThan(GradCheck.maxDifference(Layout.nchwArray(y), expected), 1e-4, "forward s\(s)")

            let (ho, wo) = (g.outHeight, g.outWidth)
            let dyShape = [n, cout, ho, wo]
            let dy = GradCheck.randomTensor(dyShape, seed: 7).toArray()
            let dx = Layout.nchwArray(conv.backward(Layout.cnhwTensor(shape: dyShape, nchw: dy), Context()))
            let (dxExpected, dWExpected, dbExpected) = Reference.conv2dBackward(x, weight: weight, dy: dy, shapes)
            XCTAssertLessThan(GradCheck.maxDifference(dx, dxExpected), 1e-4, "dx s\(s)")
            XCTAssertLessThan(GradCheck.maxDifference(store.gradArray(named: "c.bias")!, dbExpected) / dbExpected.map(abs).max()!, 1e-4, "db s\(s)")
            let dW = store.gradArray(named: "c.weight")!
            let scale = dWExpected.map(abs).max()!
            XCTAssertLessThan(GradCheck.maxDifference(dW, dWExpected) / scale, 1e-4, "dW s\(s)")
        }
    }

    /// Conv2d(fusedReLU: true) equals Conv2d followed by ReLU: output, input and parameter
    /// gradients, for one block, several blocks (also in parallel shards), and a pointwise convolution.
    func testFusedReLUMatchesConvolutionThenReLU() {
        defer { Parallel.setThreads(1) }
        Parallel.setThreads(2)
        for (shape, k, p) in [([2, 3, 9, 11], 3, 1), ([5, 2, 64, 70], 3, 1), ([5, 16, 64, 70], 3, 1), ([2, 3, 9, 11], 1, 0)] {
            let (fusedStore, plainStore) = (ParameterStore(), ParameterStore())
            let fused = Conv2d(fusedStore, "c", shape[1], 4, kernel: k, padding: p, rng: .init(seed: 8), fusedReLU: true)
            let plain = Conv2d(plainStore, "c", shape[1], 4, kernel: k, padding: p, rng: .init(seed: 8))
            let relu = ReLU()
            fusedStore.allocate(); plainStore.allocate()
            let x = GradCheck.randomTensor(shape, seed: 9)
            let (ctxA, ctxB) = (Context(), Context())
            let yFused = fused.forward(x, ctxA).toArray()
            let yPlain = relu.forward(plain.forward(x, ctxB), ctxB).toArray()
            XCTAssertEqual(yFused, yPlain, "forward \(shape) k\(k)")
            XCTAssertTrue(yFused.contains(0) && yFused.contains { $0 > 0 }, "the test needs both signs")
            let dy = GradCheck.randomTensor([shape[0], 4, shape[2] + 2 * p - k + 1, shape[3] + 2 * p - k + 1], seed: 10)
            let dxFused = fused.backward(dy, ctxA).toArray()
            let dxPlain = plain.backward(relu.backward(dy, ctxB), ctxB).toArray()
            XCTAssertLessThan(GradCheck.maxDifference(dxFused, dxPlain), 1e-5, "dx \(shape) k\(k)")
            for name in ["c.weight", "c.bias"] {
                let (a, b) = (fusedStore.gradArray(named: name)!, plainStore.gradArray(named: name)!)
                let scale = max(b.map(abs).max()!, 1)
                XCTAssertLessThan(GradCheck.maxDifference(a, b) / scale, 1e-5, "\(name) \(shape) k\(k)")
            }
        }
    }

    /// 3×3 stride-1 convolutions, padded by 1 or unpadded, with channels in blocks of 8 run in the
    /// direct kernels (DirectConv3x3): forward, all gradients, bias and fused ReLU against the
    /// reference loops, a finite-difference check, and the same bits on 1 and 3 threads.
    func testDirectConvolutionMatchesReference() {
        let best = DirectConv3x3.instructionSet
        defer { Parallel.setThreads(1); DirectConv3x3.useInstructionSet(best) }
        for isa in ["avx512", "avx2", "generic"] where DirectConv3x3.useInstructionSet(isa) {
            checkDirectConvolution(isa)
        }
    }

    private func checkDirectConvolution(_ isa: String) {
        for (n, cin, cout, h, w, relu, p) in [(2, 8, 16, 13, 12, false, 1), (3, 16, 8, 20, 30, true, 1), (1, 24, 32, 47, 45, false, 1),
                                             (2, 16, 32, 29, 39, true, 0), (1, 32, 8, 10, 12, false, 0)] {
            var bits: [[Float]] = []
            for threads in [1, 3] {
                Parallel.setThreads(threads)
                let store = ParameterStore()
                let conv = Conv2d(store, "c", cin, cout, kernel: 3, padding: p, rng: .init(seed: 11), fusedReLU: relu)
                store.allocate()
                let g = ConvGeometry(channels: cin, batch: n, height: h, width: w, kernel: 3, stride: 1, padding: p)
                XCTAssertTrue(DirectConv3x3.applies(g, outChannels: cout))
                bits.append(compareWithReference(conv, store, g, outChannels: cout, relu: relu, seed: 12, isa))
            }
            XCTAssertEqual(bits[0], bits[1], "\(isa): the same bits on 1 and 3 threads")
        }
        for padding in [1, 0] {
            let store = ParameterStore()
            let conv = Conv2d(store, "c", 8, 8, kernel: 3, padding: padding, rng: .init(seed: 14))
            store.allocate()
            let result = GradCheck.check(conv, store: store, input: GradCheck.randomTensor([2, 8, 5, 12], seed: 15), ctx: Context())
            XCTAssertLessThan(result.maxInputError, 1e-2, "padding \(padding): \(result)")
            XCTAssertLessThan(result.maxParameterError, 1e-2, "padding \(padding): \(result)")
        }
    }

    /// One layer's forward and backward (input x from `seed`, dy from `seed` + 1) against the
    /// reference loops, dy masked first where a fused ReLU's output is 0, at the direct kernels'
    /// tolerances; returns y, dx (when the layer computes it), dW and db.
    private func compareWithReference(_ conv: Conv2d, _ store: ParameterStore, _ g: ConvGeometry, outChannels cout: Int,
                                      relu: Bool, seed: UInt64, _ isa: String) -> [Float] {
        let shape = [g.batch, g.channels, g.height, g.width], x = GradCheck.randomTensor(shape, seed: seed).toArray()
        let label = "\(isa) \(shape) stride \(g.stride) padding \(g.padding)"
        let weight = store.array(named: "c.weight")!
        let s = Reference.ConvShape(n: g.batch, inChannels: g.channels, height: g.height, width: g.width, outChannels: cout,
                                    kernel: 3, stride: g.stride, padding: g.padding)
        var expected = Reference.conv2dForward(x, weight: weight, bias: store.array(named: "c.bias"), s)
        if relu { expected = expected.map { max($0, 0) } }
        let y = Layout.nchwArray(conv.forward(Layout.cnhwTensor(shape: shape, nchw: x), Context()))
        XCTAssertLessThan(GradCheck.maxDifference(y, expected), 1e-4, "forward \(label)")
        let dyShape = [g.batch, cout, g.outHeight, g.outWidth]
        var dy = GradCheck.randomTensor(dyShape, seed: seed + 1).toArray()
        let dxTensor = conv.backward(Layout.cnhwTensor(shape: dyShape, nchw: dy), Context())
        if relu { dy = zip(dy, y).map { $1 > 0 ? $0 : 0 } }
        let (dxExpected, dWExpected, dbExpected) = Reference.conv2dBackward(x, weight: weight, dy: dy, s)
        let dW = store.gradArray(named: "c.weight")!, db = store.gradArray(named: "c.bias")!
        var dx: [Float] = []
        if conv.computesInputGradient {
            dx = Layout.nchwArray(dxTensor)
            XCTAssertLessThan(GradCheck.maxDifference(dx, dxExpected), 1e-4, "dx \(label)")
        }
        XCTAssertLessThan(GradCheck.maxDifference(dW, dWExpected) / dWExpected.map(abs).max()!, 1e-5, "dW \(label)")
        XCTAssertLessThan(GradCheck.maxDifference(db, dbExpected) / dbExpected.map(abs).max()!, 1e-5, "db \(label)")
        return y + dx + dW + db
    }

    /// Unpadded 3×3 stride-2 convolutions run on parity planes (DirectConvStride2): forward,
    /// all gradients, bias and fused ReLU against the reference loops, also with no input gradient
    /// and one input channel (a first layer), the same bits on 1 and 3 threads, on every
    /// instruction set, and finite differences.
    func testStride2DirectConvolutionMatchesReference() {
        let best = DirectConv3x3.instructionSet
        defer { Parallel.setThreads(1); DirectConv3x3.useInstructionSet(best) }
        let shapes = [(2, 16, 16, 21, 37, true, 0, true), (1, 8, 16, 20, 33, false, 0, true), (3, 16, 8, 17, 19, true, 0, true),
                      (2, 1, 16, 25, 40, true, 0, false)]
        for (n, cin, cout, h, w, relu, p, inputGradient) in shapes {
            var bits: [[Float]] = []
            for isa in ["avx512", "avx2", "generic"] where DirectConv3x3.useInstructionSet(isa) {
                for threads in [1, 3] {
                    Parallel.setThreads(threads)
                    let store = ParameterStore()
                    let conv = Conv2d(store, "c", cin, cout, kernel: 3, stride: 2, padding: p, rng: .init(seed: 31), fusedReLU: relu)
                    conv.computesInputGradient = inputGradient
                    store.allocate()
                    let g = ConvGeometry(channels: cin, batch: n, height: h, width: w, kernel: 3, stride: 2, padding: p)
                    XCTAssertTrue(DirectConvStride2.applies(g, outChannels: cout, inputGradient: inputGradient), "\(g)")
                    let result = compareWithReference(conv, store, g, outChannels: cout, relu: relu, seed: 32, isa)
                    if threads == 3, let last = bits.last { XCTAssertEqual(result, last, "\(isa): the same bits on 1 and 3 threads") }
                    bits.append(result)
                }
            }
        }
        let store = ParameterStore()
        let conv = Conv2d(store, "c", 8, 8, kernel: 3, stride: 2, rng: .init(seed: 34))
        store.allocate()
        let result = GradCheck.check(conv, store: store, input: GradCheck.randomTensor([2, 8, 9, 19], seed: 35), ctx: Context())
        XCTAssertLessThan(result.maxInputError, 1e-2, "\(result)")
        XCTAssertLessThan(result.maxParameterError, 1e-2, "\(result)")
    }
}
