import Engine
import TestSupport
import XCTest

final class MergeTests: XCTestCase {
    func testAddForwardBackwardAndInPlace() {
        let a = GradCheck.randomTensor([2, 3, 4, 5], seed: 31), b = GradCheck.randomTensor([2, 3, 4, 5], seed: 32)
        let dy = GradCheck.randomTensor([2, 3, 4, 5], seed: 33)
        let ctx = Context()
        let add = Add()
        let y = add.forward(a, b, ctx).toArray()
        XCTAssertEqual(y, zip(a.toArray(), b.toArray()).map { $0 + $1 })
        XCTAssertTrue(add.backward(dy, ctx) === dy)

        let fused = Add(fusedReLU: true)
        let yFused = fused.forward(a, b, ctx).toArray()
        XCTAssertEqual(yFused, y.map { max($0, 0) })
        let dx = fused.backward(dy, ctx).toArray()
        XCTAssertEqual(dx, zip(y, dy.toArray()).map { $0 > 0 ? $1 : 0 })

        let acc = Tensor(shape: a.shape, values: a.toArray())
        addInPlace(acc, b)
        XCTAssertEqual(acc.toArray(), y)
    }

    /// Add(fusedReLU:) through the finite-difference checker, one input perturbed at a time.
    func testFusedAddGradientMatchesFiniteDifferences() {
        final class AddWithConstant: Module {
            let add = Add(fusedReLU: true), other: Tensor
            init(_ other: Tensor) { self.other = other }
            var typeDescription: String { "AddWithConstant" }
            func forward(_ x: Tensor, _ ctx: Context) -> Tensor { add.forward(x, other, ctx) }
            func backward(_ dy: Tensor, _ ctx: Context) -> Tensor { add.backward(dy, ctx) }
            func planMemory(_ x: [Int], _ ledger: MemoryLedger) -> [Int] { add.planMemory(x, other.shape, ledger) }
        }
        let x = GradCheck.distinctTensor([2, 3, 4, 5], seed: 34)
        let other = Tensor(shape: x.shape)   // zeros: x + 0 stays ≥ 0.01 away from the kink
        for i in 0 ..< x.count { x.data[i] += 0.01 }
        let result = GradCheck.check(AddWithConstant(other), store: ParameterStore(), input: x, ctx: Context(), eps: 5e-3)
        XCTAssertLessThan(result.maxInputError, 1e-2, "\(result)")
    }
}

final class ChannelConcatTests: XCTestCase {
    func testConcatMatchesNCHWConcatenationAndSplitsGradients() {
        let a = GradCheck.randomTensor([2, 3, 4, 5], seed: 51), b = GradCheck.randomTensor([2, 2, 4, 5], seed: 52)
        let cat = ChannelConcat()
        let y = cat.forward(a, b, Context())
        XCTAssertEqual(y.shape, [2, 5, 4, 5])
        // Reference: concatenate the NCHW arrays image by image.
        let (an, bn) = (Layout.nchwArray(a), Layout.nchwArray(b))
        var expected: [Float] = []
        for n in 0 ..< 2 { expected += an[n * 60 ..< (n + 1) * 60]; expected += bn[n * 40 ..< (n + 1) * 40] }
        XCTAssertEqual(Layout.nchwArray(y), expected)
        let dy = GradCheck.randomTensor([2, 5, 4, 5], seed: 53)
        let dyN = Layout.nchwArray(dy)
        let (da, db) = cat.backward(dy, Context())
        var expectA: [Float] = [], expectB: [Float] = []
        for n in 0 ..< 2 { expectA += dyN[n * 100 ..< n * 100 + 60]; expectB += dyN[n * 100 + 60 ..< (n + 1) * 100] }
        XCTAssertEqual(Layout.nchwArray(da), expectA)
        XCTAssertEqual(Layout.nchwArray(db), expectB)
    }
}
