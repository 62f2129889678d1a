import Engine
import TestSupport
import XCTest

final class BatchNormTests: XCTestCase {
    func makeBN(channels: Int = 3, fusedReLU: Bool = false, momentum: Float = 0.1) -> (ParameterStore, BatchNorm2d) {
        let store = ParameterStore()
        let bn = BatchNorm2d(store, "bn", channels, momentum: momentum, fusedReLU: fusedReLU)
        store.allocate()
        var rng = RandomGenerator(seed: 11)
        store.set("bn.weight", (0 ..< channels).map { _ in rng.uniform(0.5, 1.5) })
        store.set("bn.bias", (0 ..< channels).map { _ in rng.uniform(-0.5, 0.5) })
        return (store, bn)
    }

    func testNamesInitialValuesAndRepr() {
        let store = ParameterStore()
        let bn = BatchNorm2d(store, "layer1.0.bn1", 64)
        // As torch 2.15 prints it (bias=True appeared in the repr in 2.6).
        store.allocate()
        XCTAssertEqual(bn.typeDescription, "BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)")
        XCTAssertEqual(store.parameters.map(\.name), ["layer1.0.bn1.weight", "layer1.0.bn1.bias"])
        XCTAssertEqual(store.buffers.map(\.name), ["layer1.0.bn1.running_mean", "layer1.0.bn1.running_var",
                                                   "layer1.0.bn1.num_batches_tracked"])
        XCTAssertEqual(store.array(named: "layer1.0.bn1.weight"), [Float](repeating: 1, count: 64))
        XCTAssertEqual(store.array(named: "layer1.0.bn1.running_var"), [Float](repeating: 1, count: 64))
        XCTAssertEqual(store.array(named: "layer1.0.bn1.num_batches_tracked"), [0])
        XCTAssertEqual(ReLU(inplace: true).typeDescription, "ReLU(inplace=True)")
        XCTAssertEqual(ReLU().typeDescription, "ReLU()")
    }

    /// Batch statistics and the running-statistics update against a direct computation in Double on NCHW data.
    func testTrainingForwardMatchesNaiveStatistics() {
        let (store, bn) = makeBN()
        let shape = [4, 3, 5, 6]
        let x = GradCheck.randomTensor(shape, seed: 5, range: 2)
        for i in 0 ..< x.count { x.data[i] += 3 }   // an offset the two-pass variance must survive
        let nchw = Layout.nchwArray(x)
        let gamma = store.array(named: "bn.weight")!, beta = store.array(named: "bn.bias")!
        let y = Layout.nchwArray(bn.forward(x, Context(training: true)))
        let m = 4 * 30
        var maxDiff: Float = 0
        for c in 0 ..< 3 {
            var values: [Double] = []
            for n in 0 ..< 4 { for p in 0 ..< 30 { values.append(Double(nchw[(n * 3 + c) * 30 + p])) } }
            let mean = values.reduce(0, +) / Double(m)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(m)
            for n in 0 ..< 4 { for p in 0 ..< 30 {
                let i = (n * 3 + c) * 30 + p
                let expected = Double(gamma[c]) * (Double(nchw[i]) - mean) / (variance + 1e-5).squareRoot() + Double(beta[c])
                maxDiff = max(maxDiff, abs(y[i] - Float(expected)))
            }}
            XCTAssertEqual(store.array(named: "bn.running_mean")![c], Float(0.1 * mean), accuracy: 1e-5)
            XCTAssertEqual(store.array(named: "bn.running_var")![c], Float(0.9 + 0.1 * variance * Double(m) / Double(m - 1)), accuracy: 1e-5)
        }
        XCTAssertLessThan(maxDiff, 1e-5)
        XCTAssertEqual(store.array(named: "bn.num_batches_tracked"), [1])
    }

    func testEvalUsesRunningStatistics() {
        let (store, bn) = makeBN(channels: 2)
        store.set("bn.running_mean", [0.5, -1])
        store.set("bn.running_var", [4, 0.25])
        let x = GradCheck.randomTensor([2, 2, 3, 3], seed: 6)
        let nchw = Layout.nchwArray(x)
        let y = Layout.nchwArray(bn.forward(x, Context(training: false)))
        let gamma = store.array(named: "bn.weight")!, beta = store.array(named: "bn.bias")!
        let (mean, variance): ([Float], [Float]) = ([0.5, -1], [4, 0.25])
        for i in 0 ..< nchw.count {
            let c = (i / 9) % 2
            XCTAssertEqual(y[i], gamma[c] * (nchw[i] - mean[c]) / (variance[c] + 1e-5).squareRoot() + beta[c], accuracy: 1e-5)
        }
        XCTAssertEqual(store.array(named: "bn.running_mean"), [0.5, -1], "eval must not touch running statistics")
        XCTAssertEqual(store.array(named: "bn.num_batches_tracked"), [0])
    }

    func testGradientsMatchFiniteDifferences() {
        for shape in [[4, 3, 5, 6], [2, 3, 1, 1], [1, 3, 4, 4]] {
            let (store, bn) = makeBN()
            let result = GradCheck.check(bn, store: store, input: GradCheck.randomTensor(shape, seed: 8), ctx: Context(training: true),
                                         eps: 1e-2, floor: 5e-2)
            XCTAssertLessThan(result.maxInputError, 1e-2, "\(shape): \(result)")
            XCTAssertLessThan(result.maxParameterError, 1e-2, "\(shape): \(result)")
        }
    }

    /// BatchNorm2d(fusedReLU: true) must equal BatchNorm2d followed by ReLU, and (fusedReLU6: true)
    /// BatchNorm2d followed by ReLU6 (outputs on both sides of the clamps), forward and backward.
    func testFusedClampsEqualSeparateActivations() {
        for cap: Float in [.infinity, 6] {
            func make(fused: Bool) -> (ParameterStore, BatchNorm2d) {
                let store = ParameterStore()
                let bn = BatchNorm2d(store, "bn", 3, fusedReLU: fused && cap == .infinity, fusedReLU6: fused && cap == 6)
                store.allocate()
                store.set("bn.weight", [4, 5, 6]); store.set("bn.bias", [1, 2, 3])   // wide enough to reach 6
                return (store, bn)
            }
            let (fusedStore, fused) = make(fused: true), (plainStore, plain) = make(fused: false)
            let activation = ReLU(cap: cap), printed = ReLU(cap: cap, inplace: true, fusedIntoPrevious: true)
            XCTAssertEqual(printed.typeDescription, cap == 6 ? "ReLU6(inplace=True)" : "ReLU(inplace=True)")
            let ctx = Context(training: true)
            let x = GradCheck.randomTensor([3, 3, 4, 5], seed: 9)
            let dy = GradCheck.randomTensor([3, 3, 4, 5], seed: 10)
            let yFused = printed.forward(fused.forward(x, ctx), ctx).toArray()
            let yPlain = activation.forward(plain.forward(x, ctx), ctx).toArray()
            XCTAssertEqual(yFused, yPlain, "cap \(cap)")
            XCTAssertTrue(yFused.contains(0) && yFused.contains { $0 > 0 && $0 < 6 }, "cap \(cap)")
            if cap == 6 { XCTAssertTrue(yFused.contains(6)) }
            let dxFused = fused.backward(printed.backward(dy, ctx), ctx).toArray()
            let dxPlain = plain.backward(activation.backward(dy, ctx), ctx).toArray()
            XCTAssertLessThan(GradCheck.maxDifference(dxFused, dxPlain), 1e-5, "cap \(cap)")
            for name in ["bn.weight", "bn.bias"] {
                XCTAssertLessThan(GradCheck.maxDifference(fusedStore.gradArray(named: name)!, plainStore.gradArray(named: name)!), 1e-5,
                                  "cap \(cap) \(name)")
            }
        }
    }
}

final class BatchNormPyTorchTests: XCTestCase {
    func testMatchesPyTorch() {
        for f in Fixtures.load("batchnorm2d") {
            let store = ParameterStore()
            let channels = f.shape("x")[1]
            let bn = BatchNorm2d(store, "bn", channels, eps: f.float("eps"), momentum: f.float("momentum"), fusedReLU: f.bool("fusedReLU"))
            store.allocate()
            store.set("bn.weight", f.array("weight")); store.set("bn.bias", f.array("bias"))
            store.set("bn.running_mean", f.array("running_mean_before")); store.set("bn.running_var", f.array("running_var_before"))
            let ctx = Context(training: true)
            let y = bn.forward(f.tensor("x"), ctx)
            Fixtures.assertClose(Layout.nchwArray(y), f.array("y"), "\(f.name).y")
            Fixtures.assertClose(store.array(named: "bn.running_mean")!, f.array("running_mean"), "\(f.name).running_mean")
            Fixtures.assertClose(store.array(named: "bn.running_var")!, f.array("running_var"), "\(f.name).running_var")
            XCTAssertEqual(store.array(named: "bn.num_batches_tracked"), [1])
            let dx = bn.backward(f.tensor("dy"), ctx)
            Fixtures.assertClose(Layout.nchwArray(dx), f.array("dx"), "\(f.name).dx")
            Fixtures.assertClose(store.gradArray(named: "bn.weight")!, f.array("weight_grad"), "\(f.name).weight_grad")
            Fixtures.assertClose(store.gradArray(named: "bn.bias")!, f.array("bias_grad"), "\(f.name).bias_grad")
            ctx.training = false
            Fixtures.assertClose(Layout.nchwArray(bn.forward(f.tensor("x"), ctx)), f.array("y_eval"), "\(f.name).y_eval")
        }
    }
}
