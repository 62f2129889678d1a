import Engine
import TestSupport
import XCTest

final class DropoutTests: XCTestCase {
    func testTrainingMaskStatisticsScaleAndReproducibility() {
        let drop = Dropout(p: 0.3)
        XCTAssertEqual(drop.typeDescription, "Dropout(p=0.3, inplace=False)")
        XCTAssertEqual(Dropout(p: 0.5).typeDescription, "Dropout(p=0.5, inplace=False)")
        let x = Tensor(shape: [4, 8, 16, 16], values: [Float](repeating: 2, count: 4 * 8 * 256))
        let ctx = Context(training: true, seed: 99)
        let y = drop.forward(x, ctx).toArray()
        let zeros = y.filter { $0 == 0 }.count
        XCTAssertEqual(Double(zeros) / Double(y.count), 0.3, accuracy: 0.02)
        XCTAssertTrue(y.allSatisfy { $0 == 0 || abs($0 - 2 / 0.7) < 1e-6 })
        // Same seed, same mask; the generator advanced, so the next mask differs.
        let again = Dropout(p: 0.3).forward(x, Context(training: true, seed: 99)).toArray()
        XCTAssertEqual(again, y)
        XCTAssertNotEqual(drop.forward(x, ctx).toArray(), y)
        // Evaluation: identity.
        XCTAssertTrue(drop.forward(x, Context(training: false)) === x)
    }

    func testGradientMatchesFiniteDifferencesWithReplayedRandomness() {
        let drop = Dropout(p: 0.5)
        let result = GradCheck.check(drop, store: ParameterStore(), input: GradCheck.randomTensor([2, 3, 4, 5], seed: 54),
                                     ctx: Context(training: true, seed: 5))
        XCTAssertLessThan(result.maxInputError, 1e-2, "\(result)")
        // The backward mask is the forward's: dropped elements get no gradient.
        let ctx = Context(training: true, seed: 6)
        let x = GradCheck.randomTensor([2, 3, 4, 5], seed: 55)
        let y = drop.forward(x, ctx).toArray()
        let dx = drop.backward(Tensor(shape: x.shape, values: [Float](repeating: 1, count: x.count)), ctx).toArray()
        for i in 0 ..< y.count { XCTAssertEqual(dx[i], y[i] == 0 ? 0 : 2) }
    }
}
