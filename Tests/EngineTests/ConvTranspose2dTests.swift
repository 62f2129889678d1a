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
