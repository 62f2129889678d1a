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
        }
        let x = GradCheck.distinctTensor([2, 3, 4, 5], seed: 34)
        let other = Tensor(shape: x.shape)   // zeros: x + 0 stays ≥ 0.01 away from the kink
        for i in 0 ..< x.count { x.data[i] += 0.01 }
        let result = GradCheck.check(AddWithConstant(other), store: ParameterStore(), input: x, ctx: Context(), eps: 5e-3)
        XCTAssertLessThan(result.maxInputError, 1e-2, "\(result)")
    }
}
