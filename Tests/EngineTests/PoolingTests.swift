import Engine
import TestSupport
import XCTest

final class PoolingTests: XCTestCase {
    /// Direct max pooling on NCHW data (padding as −∞, floor mode).
    func naiveMaxPool(_ x: [Float], n: Int, c: Int, h: Int, w: Int, k: Int, s: Int, p: Int) -> [Float] {
        let ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1
        var y: [Float] = []
        for plane in 0 ..< n * c { for oh in 0 ..< ho { for ow in 0 ..< wo {
            var best = -Float.infinity
            for i in 0 ..< k { for j in 0 ..< k {
                let ih = oh * s - p + i, iw = ow * s - p + j
                if ih >= 0 && ih < h && iw >= 0 && iw < w { best = max(best, x[(plane * h + ih) * w + iw]) }
            }}
            y.append(best)
        }}}
        return y
    }

    func testMaxPoolForwardMatchesDirectPooling() {
        for (k, s, p) in [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0), (3, 3, 0)] {
            let pool = MaxPool2d(kernel: k, stride: s, padding: p)
            let shape = [2, 3, 7, 9]
            let x = GradCheck.randomTensor(shape, seed: 21)
            let y = pool.forward(x, Context())
            let expected = naiveMaxPool(Layout.nchwArray(x), n: 2, c: 3, h: 7, w: 9, k: k, s: s, p: p)
            XCTAssertEqual(y.shape, [2, 3, (7 + 2 * p - k) / s + 1, (9 + 2 * p - k) / s + 1])
            XCTAssertEqual(Layout.nchwArray(y), expected, "k\(k) s\(s) p\(p)")
        }
        XCTAssertEqual(MaxPool2d(kernel: 2).typeDescription, "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)")
        XCTAssertEqual(MaxPool2d(kernel: 3, stride: 2, padding: 1).typeDescription,
                       "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)")
    }

    /// The scan the kernels must reproduce (fkp's scalar loop before Sources/CKernels/maxpool.c,
    /// and PyTorch's): per plane, each window in row-major order clipped to the image, an element
    /// replacing the running maximum when greater or NaN. Returns the outputs and each one's
    /// input-plane argmax.
    func referenceScan(_ x: UnsafePointer<Float>, planes: Int, h: Int, w: Int, k: Int, s: Int, p: Int) -> (y: [Float], argmax: [Int]) {
        let ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1
        var y: [Float] = [], argmax: [Int] = []
        for plane in 0 ..< planes { for oh in 0 ..< ho { for ow in 0 ..< wo {
            let h0 = max(oh * s - p, 0), h1 = min(oh * s - p + k, h), w0 = max(ow * s - p, 0), w1 = min(ow * s - p + k, w)
            var best = -Float.infinity, bestIndex = h0 * w + w0
            for ih in h0 ..< h1 { for iw in w0 ..< w1 {
                let v = x[plane * h * w + ih * w + iw]
                if v > best || v.isNaN { best = v; bestIndex = ih * w + iw }
            }}
            y.append(best)
            argmax.append(bestIndex)
        }}}
        return (y, argmax)
    }

    /// Runs `body` once per kernel version this CPU supports, then goes back to the best one.
    private func forEachInstructionSet(_ body: (String) -> Void) {
        let best = DirectConv3x3.instructionSet
        defer { DirectConv3x3.useInstructionSet(best) }
        for isa in ["avx512", "avx2", "generic"] where DirectConv3x3.useInstructionSet(isa) { body(isa) }
    }

    /// The vectorised kernels against the plain scan, bit for bit: outputs (training and
    /// evaluation) and input gradients (the argmax; a gradient of distinct integers adds the same
    /// way in both), on every kernel version and on 1 and 3 threads. Inputs come from a few values
    /// (ties everywhere, ±0, ±∞) with two NaNs of different payloads (so the last NaN must win);
    /// widths from below one vector to several with a ragged end, odd heights and widths.
    func testMaxPoolKernelsMatchPlainScanBitForBit() {
        let nanA = Float(nan: 1, signaling: false), nanB = Float(nan: 2, signaling: false)
        let palette: [Float] = [-.infinity, -1, -0.0, 0, 0.5, 0.5, 1, 1, 2, .infinity, nanA, nanB]
        let windows = [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0), (3, 3, 0), (3, 2, 0), (1, 1, 0), (4, 2, 2), (5, 3, 2)]
        let sizes = [(1, 5), (2, 2), (5, 7), (9, 16), (7, 17), (6, 18), (11, 33), (4, 40), (13, 37)]
        defer { Parallel.setThreads(1) }
        forEachInstructionSet { isa in
            for threads in [1, 3] {
                Parallel.setThreads(threads)
                var rng = RandomGenerator(seed: 31)
                for (k, s, p) in windows {
                    for (h, w) in sizes where h + 2 * p >= k && w + 2 * p >= k {
                        for density in [0.0, 0.05, 1.0] {   // no special values, a few, all from the palette
                            let x = Tensor(shape: [2, 3, h, w])
                            for i in 0 ..< x.count {
                                let special = Double(rng.uniform()) < density
                                x.data[i] = special ? palette[Int(rng.next() % UInt64(palette.count))] : Float(Int(rng.next() % 7)) - 3
                            }
                            let name = "\(isa) t\(threads) k\(k) s\(s) p\(p) \(h)×\(w) density \(density)"
                            let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1)
                            let (y, argmax) = referenceScan(x.data, planes: 6, h: h, w: w, k: k, s: s, p: p)
                            var dx = [Float](repeating: 0, count: x.count)
                            for o in 0 ..< y.count { dx[o / (ho * wo) * h * w + argmax[o]] += Float(o % 1000 + 1) }

                            let pool = MaxPool2d(kernel: k, stride: s, padding: p)
                            let evaluated = pool.forward(x, Context(training: false)).toArray()
                            XCTAssertEqual(evaluated.map(\.bitPattern), y.map(\.bitPattern), "\(name) evaluation y")
                            let trained = pool.forward(x, Context())
                            XCTAssertEqual(trained.toArray().map(\.bitPattern), y.map(\.bitPattern), "\(name) training y")
                            let dy = Tensor(shape: trained.shape)
                            for o in 0 ..< dy.count { dy.data[o] = Float(o % 1000 + 1) }
                            XCTAssertEqual(pool.backward(dy, Context()).toArray().map(\.bitPattern), dx.map(\.bitPattern), "\(name) dx")
                        }
                    }
                }
            }
        }
    }

    func testMaxPoolGradientsMatchFiniteDifferences() {
        for (k, s, p) in [(2, 2, 0), (3, 2, 1), (3, 1, 1)] {
            let pool = MaxPool2d(kernel: k, stride: s, padding: p)
            // Distinct values 0.02 apart and eps = 0.005: no argmax changes under the perturbation.
            let x = GradCheck.distinctTensor([2, 3, 6, 7], seed: 22)
            let result = GradCheck.check(pool, store: ParameterStore(), input: x, ctx: Context(), samples: 80, eps: 5e-3)
            XCTAssertLessThan(result.maxInputError, 1e-2, "k\(k) s\(s) p\(p): \(result)")
        }
    }

    func testAdaptiveAvgPoolForwardAndGradients() {
        let pool = AdaptiveAvgPool2d()
        XCTAssertEqual(pool.typeDescription, "AdaptiveAvgPool2d(output_size=(1, 1))")
        let shape = [3, 4, 5, 6]
        let x = GradCheck.randomTensor(shape, seed: 23)
        let nchw = Layout.nchwArray(x)
        let y = pool.forward(x, Context())
        XCTAssertEqual(y.shape, [3, 4, 1, 1])
        let expected = (0 ..< 12).map { plane in nchw[plane * 30 ..< (plane + 1) * 30].reduce(0, +) / 30 }
        XCTAssertLessThan(GradCheck.maxDifference(Layout.nchwArray(y), expected), 1e-6)
        let result = GradCheck.check(pool, store: ParameterStore(), input: x, ctx: Context())
        XCTAssertLessThan(result.maxInputError, 1e-2, "\(result)")
    }
}

final class PoolingPyTorchTests: XCTestCase {
    func testMatchesPyTorch() {
        for f in Fixtures.load("pooling") {
            let layer: Module = f.name.hasPrefix("maxpool")
                ? MaxPool2d(kernel: f.int("kernel"), stride: f.int("stride"), padding: f.int("padding"))
                : AdaptiveAvgPool2d()
            let ctx = Context()
            Fixtures.assertClose(Layout.nchwArray(layer.forward(f.tensor("x"), ctx)), f.array("y"), "\(f.name).y")
            Fixtures.assertClose(Layout.nchwArray(layer.backward(f.tensor("dy"), ctx)), f.array("dx"), "\(f.name).dx")
        }
    }
}
