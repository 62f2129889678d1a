import Training
import XCTest

final class MetricsTests: XCTestCase {
    /// A hand-made case: 3 points, truth eye corners 10 px apart, prediction off by (3, 4) = 5 px
    /// on one point and exact elsewhere → mean pixel error 5/3, NME (5/3)/10.
    func testScoreOfOneImage() {
        let truth: [Float] = [0, 0, 10, 0, 5, 5]
        let predicted: [Float] = [0, 0, 10, 0, 8, 9]
        let e = KeypointScoring.score(predicted: predicted, truth: truth, normalisingPair: (0, 1))
        XCTAssertEqual(e.pixelError, 5.0 / 3, accuracy: 1e-9)
        XCTAssertEqual(e.nme, 5.0 / 30, accuracy: 1e-9)
    }

    func testSummaryFailureRateAndAUC() {
        let errors = [0.0, 0.04, 0.08, 0.2].map { ImageError(source: "", pixelError: $0 * 100, nme: $0) }
        let m = KeypointScoring.summarize(errors, threshold: 0.08)
        XCTAssertEqual(m.images, 4)
        XCTAssertEqual(m.nme, 0.08, accuracy: 1e-12)
        XCTAssertEqual(m.meanPixelError, 8, accuracy: 1e-9)
        XCTAssertEqual(m.failureRate, 0.25, accuracy: 1e-12)   // only 0.2 is above 0.08
        // CED area: image 0 contributes 1, image 0.04 contributes 0.5, the others 0 → 1.5 / 4.
        XCTAssertEqual(m.auc, 0.375, accuracy: 1e-12)
    }

    func testNormalisationFallsBackToBoxSize() {
        let e = KeypointScoring.score(predicted: [1, 0], truth: [0, 0], normalisingPair: nil, fallbackNorm: 20)
        XCTAssertEqual(e.nme, 0.05, accuracy: 1e-12)
    }
}
