import Engine
import TestSupport
import XCTest

/// DepthwiseConv2d (and ReLU6) against PyTorch (Fixtures/depthwise.json, Scripts/make_layer_fixtures.py):
/// every kernel version this CPU runs, a finite-difference check, and the same bits on 1 and 3 threads.
final class DepthwiseConv2dTests: XCTestCase {
    override func tearDown() { Parallel.setThreads(1) }

    /// Runs `body` once per kernel version this CPU supports ("avx512", "avx2", "generic"), then
    /// goes back to the best one.
    private func forEachInstructionSet(_ body: (String) -> Void) {
        let best = DirectConv3x3.instructionSet
        defer { DirectConv3x3.useInstructionSet(best) }
        for isa in ["avx512", "avx2", "generic"] where DirectConv3x3.useInstructionSet(isa) { body(isa) }
    }

    /// Forward, input gradient, weight and bias gradients and the printed repr, for stride 1 and
    /// 2, odd sizes, a 1-row image and rows wider than the weight-gradient lanes.
    func testMatchesPyTorch() {
        let cases = Fixtures.load("depthwise")
        forEachInstructionSet { isa in
            for f in cases where f.string("kind") == "depthwise" {
                let store = ParameterStore()
                let bias = f.bool("bias")
                let layer = DepthwiseConv2d(store, "m", f.int("channels"), stride: f.int("stride"), bias: bias, rng: .init(seed: 1))
                store.allocate()
                XCTAssertEqual(layer.typeDescription, f.string("repr"))
                XCTAssertEqual(store.info(named: "m.weight")?.shape, f.shape("weight"))
                store.set("m.weight", f.array("weight"))
                if bias { store.set("m.bias", f.array("bias")) }
                let ctx = Context()
                let y = layer.forward(f.tensor("x"), ctx)
                XCTAssertEqual(y.shape, f.shape("y"), f.name)
                Fixtures.assertClose(Layout.nchwArray(y), f.array("y"), "\(isa) \(f.name).y")
                Fixtures.assertClose(Layout.nchwArray(layer.backward(f.tensor("dy"), ctx)), f.array("dx"), "\(isa) \(f.name).dx")
                Fixtures.assertClose(store.gradArray(named: "m.weight")!, f.array("weight_grad"), "\(isa) \(f.name).weight_grad")
                if bias { Fixtures.assertClose(store.gradArray(named: "m.bias")!, f.array("bias_grad"), "\(isa) \(f.name).bias_grad") }
            }
        }
    }

    func testReLU6MatchesPyTorch() {
        for f in Fixtures.load("depthwise") where f.string("kind") == "relu6" {
            let relu6 = ReLU(cap: 6, inplace: true)
            XCTAssertEqual(relu6.typeDescription, f.string("repr"))
            let ctx = Context()
            let y = relu6.forward(f.tensor("x"), ctx)
            XCTAssertTrue(y.toArray().contains(0) && y.toArray().contains(6), "the fixture must clamp on both sides")
            Fixtures.assertClose(Layout.nchwArray(y), f.array("y"), "\(f.name).y", tolerance: 0)
            Fixtures.assertClose(Layout.nchwArray(relu6.backward(f.tensor("dy"), ctx)), f.array("dx"), "\(f.name).dx", tolerance: 0)
        }
    }

    func testGradientsMatchFiniteDifferences() {
        forEachInstructionSet { isa in
            for (s, bias, shape) in [(1, true, [2, 3, 6, 7]), (2, false, [2, 3, 7, 6]), (2, true, [1, 2, 9, 35])] {
                let store = ParameterStore()
                let layer = DepthwiseConv2d(store, "c", shape[1], stride: s, bias: bias, rng: .init(seed: 2))
                store.allocate()
                let result = GradCheck.check(layer, store: store, input: GradCheck.randomTensor(shape, seed: 4), ctx: Context())
                XCTAssertLessThan(result.maxInputError, 1e-2, "\(isa) s\(s) \(shape): \(result)")
                XCTAssertLessThan(result.maxParameterError, 1e-2, "\(isa) s\(s) \(shape): \(result)")
            }
        }
    }

    /// Output, input gradient and parameter gradients are the same bits on 1 and 3 threads (a
    /// shape large enough to be split into pieces), for stride 1 and 2.
    func testSameBitsOnOneAndThreeThreads() {
        for s in [1, 2] {
            var results: [[Float]] = []
            for threads in [1, 3] {
                Parallel.setThreads(threads)
                let shape = [5, 12, 30, 41]
                let store = ParameterStore()
                let layer = DepthwiseConv2d(store, "c", shape[1], stride: s, rng: .init(seed: 5))
                store.allocate()
                let ctx = Context()
                let y = layer.forward(GradCheck.randomTensor(shape, seed: 6), ctx)
                let dx = layer.backward(GradCheck.randomTensor(y.shape, seed: 7), ctx)
                results.append(y.toArray() + dx.toArray() + Array(store.grads))
            }
            XCTAssertEqual(results[0], results[1], "stride \(s): the same bits on 1 and 3 threads")
        }
    }

    /// The kernels take runs of several images of a channel (fkp_depthwise3x3_images_per_call):
    /// batches that split into several runs, and a last shorter one, give the same output and input
    /// gradient bits as one image at a time, and the same weight and bias gradients up to rounding.
    func testRunsOfImagesMatchOneImageAtATime() {
        for (shape, s) in [([9, 3, 30, 41], 1), ([9, 3, 30, 41], 2), ([3, 2, 60, 70], 1), ([300, 2, 4, 5], 2)] {
            let store = ParameterStore()
            let layer = DepthwiseConv2d(store, "c", shape[1], stride: s, rng: .init(seed: 9))
            store.allocate()
            let xAll = GradCheck.randomTensor(shape, seed: 10).toArray()   // NCHW: image n is one block
            let ctx = Context()
            let y = layer.forward(Layout.cnhwTensor(shape: shape, nchw: xAll), ctx)
            let dyAll = GradCheck.randomTensor(y.shape, seed: 11).toArray()
            let yAll = Layout.nchwArray(y)
            let dxAll = Layout.nchwArray(layer.backward(Layout.cnhwTensor(shape: y.shape, nchw: dyAll), ctx))
            let gradsAll = Array(store.grads)
            store.zeroGrads()
            var (yOne, dxOne): ([Float], [Float]) = ([], [])
            let (inPlane, outPlane) = (shape[1] * shape[2] * shape[3], y.count / shape[0])
            for image in 0 ..< shape[0] {
                let one = [1] + shape.dropFirst()
                yOne += layer.forward(Tensor(shape: one, values: Array(xAll[image * inPlane ..< (image + 1) * inPlane])), ctx).toArray()
                let dy = Tensor(shape: [1] + y.shape.dropFirst(), values: Array(dyAll[image * outPlane ..< (image + 1) * outPlane]))
                dxOne += layer.backward(dy, ctx).toArray()
            }
            XCTAssertEqual(yAll, yOne, "\(shape) s\(s): forward")
            XCTAssertEqual(dxAll, dxOne, "\(shape) s\(s): input gradient")
            let gradsOne = Array(store.grads)
            XCTAssertLessThan(GradCheck.maxDifference(gradsAll, gradsOne) / gradsOne.map(abs).max()!, 1e-5, "\(shape) s\(s): dW, db")
        }
    }

    /// Heights 1…9 and widths 1…33 (one-row images, odd and even sides, rows past the kernels'
    /// eight-float shuffles, both strides) against direct loops over NCHW data, for every kernel
    /// version: forward, input gradient, weight and bias gradients.
    func testAllSmallSizesMatchDirectLoops() {
        forEachInstructionSet { isa in checkSmallSizes(isa) }
    }

    private func checkSmallSizes(_ isa: String) {
        for s in [1, 2] {
            for h in 1 ... 9 {
                for w in [1, 2, 3, 5, 8, 10, 17, 33] {
                    let (n, c) = (3, 2), (ho, wo) = ((h - 1) / s + 1, (w - 1) / s + 1)
                    let store = ParameterStore()
                    let layer = DepthwiseConv2d(store, "c", c, stride: s, rng: .init(seed: 12))
                    store.allocate()
                    let x = GradCheck.randomTensor([n, c, h, w], seed: 13).toArray()
                    let dy = GradCheck.randomTensor([n, c, ho, wo], seed: 14).toArray()
                    let weight = store.array(named: "c.weight")!, bias = store.array(named: "c.bias")!
                    var (y, dx, dW, db) = ([Float](repeating: 0, count: dy.count), [Float](repeating: 0, count: x.count),
                                           [Float](repeating: 0, count: 9 * c), [Float](repeating: 0, count: c))
                    for image in 0 ..< n {
                        for ch in 0 ..< c {
                            let xp = (image * c + ch) * h * w, yp = (image * c + ch) * ho * wo
                            for i in 0 ..< ho {
                                for j in 0 ..< wo {
                                    var sum = bias[ch]
                                    let g = dy[yp + i * wo + j]
                                    db[ch] += g
                                    for a in 0 ..< 3 {
                                        for b in 0 ..< 3 {
                                            let (r, q) = (s * i + a - 1, s * j + b - 1)
                                            guard r >= 0, r < h, q >= 0, q < w else { continue }
                                            sum += weight[ch * 9 + 3 * a + b] * x[xp + r * w + q]
                                            dx[xp + r * w + q] += weight[ch * 9 + 3 * a + b] * g
                                            dW[ch * 9 + 3 * a + b] += x[xp + r * w + q] * g
                                        }
                                    }
                                    y[yp + i * wo + j] = sum
                                }
                            }
                        }
                    }
                    let ctx = Context()
                    let got = Layout.nchwArray(layer.forward(Layout.cnhwTensor(shape: [n, c, h, w], nchw: x), ctx))
                    let gotDx = Layout.nchwArray(layer.backward(Layout.cnhwTensor(shape: [n, c, ho, wo], nchw: dy), ctx))
                    let label = "\(isa) \(h)×\(w) s\(s)"
                    XCTAssertLessThan(GradCheck.maxDifference(got, y), 1e-5, "\(label) forward")
                    XCTAssertLessThan(GradCheck.maxDifference(gotDx, dx), 1e-5, "\(label) dx")
                    // Sums over up to 900 terms: relative to their size (the direct loops round too).
                    let (scaleW, scaleB) = (max(1, dW.map(abs).max()!), max(1, db.map(abs).max()!))
                    XCTAssertLessThan(GradCheck.maxDifference(store.gradArray(named: "c.weight")!, dW) / scaleW, 1e-5, "\(label) dW")
                    XCTAssertLessThan(GradCheck.maxDifference(store.gradArray(named: "c.bias")!, db) / scaleB, 1e-5, "\(label) db")
                }
            }
        }
    }

    /// computesInputGradient = false (a first layer) leaves dx alone and gives the same parameter gradients.
    func testParameterGradientsWithoutInputGradient() {
        for s in [1, 2] {
            var grads: [[Float]] = []
            for inputGradient in [true, false] {
                let store = ParameterStore()
                let layer = DepthwiseConv2d(store, "c", 3, stride: s, rng: .init(seed: 15))
                layer.computesInputGradient = inputGradient
                store.allocate()
                let ctx = Context()
                let y = layer.forward(GradCheck.randomTensor([4, 3, 13, 19], seed: 16), ctx)
                _ = layer.backward(GradCheck.randomTensor(y.shape, seed: 17), ctx)
                grads.append(Array(store.grads))
            }
            XCTAssertEqual(grads[0], grads[1], "stride \(s)")
        }
    }

    func testMacsAndParameters() {
        let store = ParameterStore()
        let layer = DepthwiseConv2d(store, "dw", 32, stride: 2, bias: false, rng: .init(seed: 1))
        store.allocate()
        XCTAssertEqual(layer.typeDescription, "Conv2d(32, 32, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), groups=32, bias=False)")
        XCTAssertEqual(store.parameterCount, 32 * 9)
        XCTAssertEqual(layer.macs(height: 112, width: 111), 32 * 56 * 56 * 9)
        // PyTorch's default init: U(±1/√9).
        let w = store.array(named: "dw.weight")!
        XCTAssertLessThanOrEqual(w.map(abs).max()!, 1 / 3)
        XCTAssertGreaterThan(w.map(abs).max()!, 0.9 / 3)
    }
}
