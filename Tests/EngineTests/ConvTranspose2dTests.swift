import Engine
import TestSupport
import XCTest

final class ConvTranspose2dTests: XCTestCase {
    /// Direct scatter form on NCHW data: y[n, o, ih·s − p + i, iw·s − p + j] += x[n, c, ih, iw] · W[c, o, i, j].
    func naiveConvTranspose(_ x: [Float], n: Int, cin: Int, h: Int, w: Int, weight: [Float], bias: [Float]?, cout: Int,
                            k: Int, s: Int, p: Int) -> [Float] {
        let ho = (h - 1) * s - 2 * p + k, wo = (w - 1) * s - 2 * p + k
        var y = [Float](repeating: 0, count: n * cout * ho * wo)
        for b in 0 ..< n { for o in 0 ..< cout { for i in 0 ..< ho * wo { y[(b * cout + o) * ho * wo + i] = bias?[o] ?? 0 } } }
        for b in 0 ..< n { for c in 0 ..< cin { for ih in 0 ..< h { for iw in 0 ..< w {
            for o in 0 ..< cout { for i in 0 ..< k { for j in 0 ..< k {
                let oh = ih * s - p + i, ow = iw * s - p + j
                if oh >= 0 && oh < ho && ow >= 0 && ow < wo {
                    y[((b * cout + o) * ho + oh) * wo + ow] += x[((b * cin + c) * h + ih) * w + iw] * weight[((c * cout + o) * k + i) * k + j]
                }
            }}}
        }}}}
        return y
    }

    func testForwardMatchesDirectScatter() {
        for (k, s, p, bias) in [(2, 2, 0, true), (3, 2, 0, false), (3, 1, 1, true), (4, 2, 1, true), (1, 1, 0, false)] {
            let store = ParameterStore()
            let up = ConvTranspose2d(store, "up", 3, 4, kernel: k, stride: s, padding: p, bias: bias, rng: .init(seed: 41))
            store.allocate()
            let shape = [2, 3, 5, 6]
            let x = GradCheck.randomTensor(shape, seed: 42)
            let y = up.forward(x, Context())
            let expected = naiveConvTranspose(Layout.nchwArray(x), n: 2, cin: 3, h: 5, w: 6, weight: store.array(named: "up.weight")!,
                                              bias: store.array(named: "up.bias"), cout: 4, k: k, s: s, p: p)
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
            let expected = naiveConvTranspose(xs, n: n, cin: cin, h: h, w: w, weight: weight, bias: store.array(named: "up.bias"),
                                              cout: cout, k: k, s: s, p: p)
            XCTAssertLessThan(GradCheck.maxDifference(Layout.nchwArray(y), expected), 1e-4, "forward k\(k)")
            let dyShape = [n, cout, ho, wo]
            let dy = GradCheck.randomTensor(dyShape, seed: 47).toArray()
            let dx = Layout.nchwArray(up.backward(Layout.cnhwTensor(shape: dyShape, nchw: dy), Context()))
            var dxExpected = [Float](repeating: 0, count: xs.count), dWExpected = [Float](repeating: 0, count: weight.count)
            for b in 0 ..< n { for c in 0 ..< cin { for ih in 0 ..< h { for iw in 0 ..< w {
                let xi = ((b * cin + c) * h + ih) * w + iw
                for o in 0 ..< cout { for i in 0 ..< k { for j in 0 ..< k {
                    let oh = ih * s - p + i, ow = iw * s - p + j
                    guard oh >= 0 && oh < ho && ow >= 0 && ow < wo else { continue }
                    let d = dy[((b * cout + o) * ho + oh) * wo + ow], wi = ((c * cout + o) * k + i) * k + j
                    dxExpected[xi] += d * weight[wi]
                    dWExpected[wi] += d * xs[xi]
                }}}
            }}}}
            XCTAssertLessThan(GradCheck.maxDifference(dx, dxExpected), 1e-4, "dx k\(k)")
            let scale = dWExpected.map(abs).max()!
            XCTAssertLessThan(GradCheck.maxDifference(store.gradArray(named: "up.weight")!, dWExpected) / scale, 1e-4, "dW k\(k)")
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
