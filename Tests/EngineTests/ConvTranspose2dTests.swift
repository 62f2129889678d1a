import Engine
import TestSupport
import XCTest

final class ConvTranspose2dTests: XCTestCase {
    func testForwardMatchesDirectScatter() {
        for (k, s, p, bias) in [(2, 2, 0, true), (3, 2, 0, false), (3, 1, 1, true), (4, 2, 1, true), (1, 1, 0, false)] {
            let store = ParameterStore()
            let up = ConvTranspose2d(store, "up", 3, 4, kernel: k, stride: s, padding: p, bias: bias, rng: .init(seed: 41))
            store.allocate()
            let shape = [2, 3, 5, 6]
            let x = GradCheck.randomTensor(shape, seed: 42)
            let y = up.forward(x, Context())
            let expected = Reference.convTranspose2dForward(Layout.nchwArray(x), weight: store.array(named: "up.weight")!,
                                                            bias: store.array(named: "up.bias"),
                                                            .init(n: 2, inChannels: 3, height: 5, width: 6, outChannels: 4, kernel: k, stride: s, padding: p))
            XCTAssertEqual(y.shape, [2, 4, 4 * s - 2 * p + k, 5 * s - 2 * p + k])
            XCTAssertLessThan(GradCheck.maxDifference(Layout.nchwArray(y), expected), 1e-5, "k\(k) s\(s) p\(p)")
        }
    }

    /// Inputs large enough for several column blocks (`ConvGeometry.blockRows`, boundaries inside
    /// an image): forward, input and weight gradients against direct loops.
    func testColumnBlocksMatchDirectLoops() {
        for (k, s, p) in [(2, 2, 0), (3, 1, 1)] {
            let (n, cin, cout, h, w) = (5, 2, 3, 70, 80)
            let store = ParameterStore()
            let up = ConvTranspose2d(store, "up", cin, cout, kernel: k, stride: s, padding: p, bias: true, rng: .init(seed: 45))
            store.allocate()
            let (ho, wo) = ((h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k)
            let g = ConvGeometry(channels: cout, batch: n, height: ho, width: wo, kernel: k, stride: s, padding: p)
            XCTAssertGreaterThan(n * h, g.blockRows, "the test must span several blocks")
            XCTAssertNotEqual(g.blockRows % h, 0, "a block boundary must fall inside an image")
            let x = GradCheck.randomTensor([n, cin, h, w], seed: 46)
            let xs = Layout.nchwArray(x), weight = store.array(named: "up.weight")!
            let y = up.forward(x, Context())
            let shapes = Reference.ConvShape(n: n, inChannels: cin, height: h, width: w, outChannels: cout, kernel: k, stride: s, padding: p)
            let expected = Reference.convTranspose2dForward(xs, weight: weight, bias: store.array(named: "up.bias"), shapes)
            XCTAssertLessThan(GradCheck.maxDifference(Layout.nchwArray(y), expected), 1e-4, "forward k\(k)")
            let dyShape = [n, cout, ho, wo]
            let dy = GradCheck.randomTensor(dyShape, seed: 47).toArray()
            let dx = Layout.nchwArray(up.backward(Layout.cnhwTensor(shape: dyShape, nchw: dy), Context()))
            let (dxExpected, dWExpected, dbExpected) = Reference.convTranspose2dBackward(xs, weight: weight, dy: dy, shapes)
            XCTAssertLessThan(GradCheck.maxDifference(dx, dxExpected), 1e-4, "dx k\(k)")
            XCTAssertLessThan(GradCheck.maxDifference(store.gradArray(named: "up.bias")!, dbExpected) / dbExpected.map(abs).max()!, 1e-4, "db k\(k)")
            let scale = dWExpected.map(abs).max()!
            XCTAssertLessThan(GradCheck.maxDifference(store.gradArray(named: "up.weight")!, dWExpected) / scale, 1e-4, "dW k\(k)")
        }
    }

    /// With 8 or more column blocks the blocks run on the pool in parity shards (ConvBlockPlan):
    /// against direct loops, with and without overlapping outputs (kernel > stride), and the same
    /// bits on 1 and 3 threads.
    func testParallelBlocksMatchDirectLoopsOnAnyThreadCount() {
        defer { Parallel.setThreads(1) }
        for (k, s, p) in [(2, 2, 0), (3, 2, 1)] {
            let (n, cin, cout, h, w) = (4, 8, 64, 130, 32)
            var bits: [[Float]] = []
            for threads in [1, 3] {
                Parallel.setThreads(threads)
                let store = ParameterStore()
                let up = ConvTranspose2d(store, "up", cin, cout, kernel: k, stride: s, padding: p, bias: true, rng: .init(seed: 48))
                store.allocate()
                let (ho, wo) = ((h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k)
                let g = ConvGeometry(channels: cout, batch: n, height: ho, width: wo, kernel: k, stride: s, padding: p)
                XCTAssertGreaterThanOrEqual((n * h + g.blockRows - 1) / g.blockRows, 8, "the test must run blocks in parallel")
                let x = GradCheck.randomTensor([n, cin, h, w], seed: 49)
                let xs = Layout.nchwArray(x), weight = store.array(named: "up.weight")!
                let y = Layout.nchwArray(up.forward(x, Context()))
                let shapes = Reference.ConvShape(n: n, inChannels: cin, height: h, width: w, outChannels: cout, kernel: k, stride: s, padding: p)
                let expected = Reference.convTranspose2dForward(xs, weight: weight, bias: store.array(named: "up.bias"), shapes)
                XCTAssertLessThan(GradCheck.maxDifference(y, expected), 1e-4, "forward k\(k)")
                let dyShape = [n, cout, ho, wo]
                let dy = GradCheck.randomTensor(dyShape, seed: 50).toArray()
                let dx = Layout.nchwArray(up.backward(Layout.cnhwTensor(shape: dyShape, nchw: dy), Context()))
                let (dxExpected, dWExpected, _) = Reference.convTranspose2dBackward(xs, weight: weight, dy: dy, shapes)
                let dW = store.gradArray(named: "up.weight")!
                XCTAssertLessThan(GradCheck.maxDifference(dx, dxExpected), 1e-4, "dx k\(k)")
                XCTAssertLessThan(GradCheck.maxDifference(dW, dWExpected) / dWExpected.map(abs).max()!, 1e-4, "dW k\(k)")
                bits.append(y + dx + dW)
            }
            XCTAssertEqual(bits[0], bits[1], "k\(k): the same bits on 1 and 3 threads")
        }
    }

    func testGradientsMatchFiniteDifferences() {
        for (k, s, p) in [(2, 2, 0), (3, 2, 0), (3, 1, 1)] {
            let store = ParameterStore()
            let up = ConvTranspose2d(store, "up", 2, 3, kernel: k, stride: s, padding: p, rng: .init(seed: 43))
            store.allocate()
            let result = GradCheck.check(up, store: store, input: GradCheck.randomTensor([2, 2, 4, 5], seed: 44), ctx: Context())
            XCTAssertLessThan(result.maxInputError, 1e-2, "k\(k) s\(s) p\(p): \(result)")
            XCTAssertLessThan(result.maxParameterError, 1e-2, "k\(k) s\(s) p\(p): \(result)")
        }
    }

    func testReprShapesAndInitBound() {
        let store = ParameterStore()
        let up = ConvTranspose2d(store, "up1.up", 256, 128, rng: .init(seed: 45))
        store.allocate()
        XCTAssertEqual(up.typeDescription, "ConvTranspose2d(256, 128, kernel_size=(2, 2), stride=(2, 2))")
        XCTAssertEqual(store.info(named: "up1.up.weight")?.shape, [256, 128, 2, 2])
        XCTAssertEqual(store.info(named: "up1.up.bias")?.shape, [128])
        // PyTorch's fan_in for ConvTranspose is weight.size(1)·k·k = 128·4: bound 1/√512.
        let w = store.array(named: "up1.up.weight")!
        let bound = 1 / Float(512).squareRoot()
        XCTAssertLessThanOrEqual(w.map(abs).max()!, bound)
        XCTAssertGreaterThan(w.map(abs).max()!, 0.95 * bound)
    }
}

/// ConvTranspose2d and Conv2d against PyTorch (Fixtures/convolution.json).
final class ConvolutionPyTorchTests: XCTestCase {
    func testMatchesPyTorch() {
        for f in Fixtures.load("convolution") {
            let store = ParameterStore()
            let (cin, cout, k, s, p, bias) = (f.int("in"), f.int("out"), f.int("kernel"), f.int("stride"), f.int("padding"), f.bool("bias"))
            let layer: Module = f.string("kind") == "transpose"
                ? ConvTranspose2d(store, "m", cin, cout, kernel: k, stride: s, padding: p, bias: bias, rng: .init(seed: 1))
                : Conv2d(store, "m", cin, cout, kernel: k, stride: s, padding: p, bias: bias, rng: .init(seed: 1))
            store.allocate()
            store.set("m.weight", f.array("weight"))
            if bias { store.set("m.bias", f.array("bias")) }
            let ctx = Context()
            Fixtures.assertClose(Layout.nchwArray(layer.forward(f.tensor("x"), ctx)), f.array("y"), "\(f.name).y")
            Fixtures.assertClose(Layout.nchwArray(layer.backward(f.tensor("dy"), ctx)), f.array("dx"), "\(f.name).dx")
            Fixtures.assertClose(store.gradArray(named: "m.weight")!, f.array("weight_grad"), "\(f.name).weight_grad")
            if bias { Fixtures.assertClose(store.gradArray(named: "m.bias")!, f.array("bias_grad"), "\(f.name).bias_grad") }
        }
    }
}
