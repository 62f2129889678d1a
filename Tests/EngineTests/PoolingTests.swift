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
