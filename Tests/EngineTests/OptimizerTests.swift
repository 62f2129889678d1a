import Engine
import Foundation
import TestSupport
import XCTest

final class OptimizerTests: XCTestCase {
    /// A store with one weight [3, 4] and one bias [3], filled with seeded values.
    func makeStore(seed: UInt64) -> ParameterStore {
        let store = ParameterStore()
        let rng = RandomGenerator.Box(seed: seed)
        _ = store.declare("fc.weight", shape: [3, 4], kind: .weight, initialize: Initializer.uniform(1, rng))
        _ = store.declare("fc.bias", shape: [3], kind: .bias, initialize: Initializer.uniform(1, rng))
        store.allocate()
        return store
    }

    /// Deterministic gradients for step `t`.
    func setGradients(_ store: ParameterStore, step: Int) {
        var rng = RandomGenerator(seed: UInt64(100 + step))
        for i in 0 ..< store.parameterCount { store.grads[i] = rng.uniform(-1, 1) }
    }

    func testAdamWMatchesScalarReference() {
        let store = makeStore(seed: 71)
        var p = Array(store.values).map(Double.init)
        var m = [Double](repeating: 0, count: p.count), v = m
        let (lr, b1, b2, eps, wd) = (2e-2, 0.9, 0.999, 1e-8, 0.1)
        let adam = AdamW(store: store, learningRate: Float(lr), weightDecay: Float(wd))
        for t in 1 ... 5 {
            setGradients(store, step: t)
            let g = Array(store.grads).map(Double.init)
            adam.step()
            // PyTorch's documented AdamW update, in Double.
            for i in 0 ..< p.count {
                p[i] *= 1 - lr * wd
                m[i] = b1 * m[i] + (1 - b1) * g[i]
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                let mHat = m[i] / (1 - pow(b1, Double(t))), vHat = v[i] / (1 - pow(b2, Double(t)))
                p[i] -= lr * mHat / (vHat.squareRoot() + eps)
            }
        }
        XCTAssertEqual(adam.stepCount, 5)
        XCTAssertLessThan(GradCheck.maxDifference(Array(store.values), p.map(Float.init)), 2e-6)
        XCTAssertEqual(adam.stateBuffers.map(\.name), ["exp_avg", "exp_avg_sq"])
        XCTAssertLessThan(GradCheck.maxDifference(Array(adam.stateBuffers[0].buffer), m.map(Float.init)), 1e-6)
        XCTAssertLessThan(GradCheck.maxDifference(Array(adam.stateBuffers[1].buffer), v.map(Float.init)), 1e-6)
    }

    func testSGDMatchesScalarReference() {
        for (momentum, wd, nesterov) in [(Float(0.9), Float(0), false), (0.9, 0.01, true), (0, 0.05, false)] {
            let store = makeStore(seed: 72)
            var p = Array(store.values).map(Double.init)
            var buf = [Double](repeating: 0, count: p.count)
            let lr = 0.1
            let sgd = SGD(store: store, learningRate: 0.5, momentum: momentum, weightDecay: wd, nesterov: nesterov)
            for t in 1 ... 4 {
                setGradients(store, step: t)
                let g = Array(store.grads).map(Double.init)
                sgd.step(learningRate: Float(lr))   // overrides the constructor's rate
                for i in 0 ..< p.count {
                    var d = g[i] + Double(wd) * p[i]
                    if momentum != 0 {
                        buf[i] = t == 1 ? d : Double(momentum) * buf[i] + d
                        d = nesterov ? d + Double(momentum) * buf[i] : buf[i]
                    }
                    p[i] -= lr * d
                }
            }
            XCTAssertEqual(sgd.learningRate, Float(lr))
            XCTAssertLessThan(GradCheck.maxDifference(Array(store.values), p.map(Float.init)), 1e-6, "momentum \(momentum) nesterov \(nesterov)")
            XCTAssertEqual(sgd.stateBuffers.map(\.name), momentum != 0 ? ["momentum_buffer"] : [])
        }
    }

    /// Restoring state and step count into a fresh optimizer continues bit-exactly.
    func testStateRoundTripResumesExactly() {
        let a = makeStore(seed: 73), b = makeStore(seed: 73)
        let optA = AdamW(store: a, learningRate: 1e-2)
        for t in 1 ... 3 { setGradients(a, step: t); optA.step() }
        // b: copy values, state and step count, as a checkpoint load does.
        _ = b.values.update(fromContentsOf: a.values)
        let optB: Optimizer = AdamW(store: b, learningRate: 1e-2)
        for (dst, src) in zip(optB.stateBuffers, optA.stateBuffers) { _ = dst.buffer.update(fromContentsOf: src.buffer) }
        optB.stepCount = optA.stepCount
        for t in 4 ... 5 {
            setGradients(a, step: t); optA.step()
            setGradients(b, step: t); optB.step()
        }
        XCTAssertEqual(Array(a.values), Array(b.values))
    }

    func testSchedules() {
        let base: Float = 0.1
        XCTAssertEqual(LearningRateSchedule.constant.rate(base: base, step: 1000), base)
        let step = LearningRateSchedule.step(every: 10, gamma: 0.5)
        XCTAssertEqual(step.rate(base: base, step: 9), base)
        XCTAssertEqual(step.rate(base: base, step: 10), base * 0.5, accuracy: 1e-9)
        XCTAssertEqual(step.rate(base: base, step: 25), base * 0.25, accuracy: 1e-9)
        let cosine = LearningRateSchedule.cosine(totalSteps: 100, minFactor: 0.01)
        XCTAssertEqual(cosine.rate(base: base, step: 0), base, accuracy: 1e-9)
        XCTAssertEqual(cosine.rate(base: base, step: 50), base * (0.01 + 0.99 * 0.5), accuracy: 1e-7)
        XCTAssertEqual(cosine.rate(base: base, step: 100), base * 0.01, accuracy: 1e-9)
        XCTAssertEqual(cosine.rate(base: base, step: 500), base * 0.01, accuracy: 1e-9)
        let warm = cosine.withWarmup(10)
        XCTAssertEqual(warm.rate(base: base, step: 0), base * 0.1, accuracy: 1e-9)
        XCTAssertEqual(warm.rate(base: base, step: 4), base * 0.5, accuracy: 1e-9)
        XCTAssertEqual(warm.rate(base: base, step: 10), base, accuracy: 1e-9)
        XCTAssertEqual(warm.rate(base: base, step: 60), cosine.rate(base: base, step: 50))
        XCTAssertEqual(LearningRateSchedule.constant.withWarmup(0), .constant)
        // Codable round trip (checkpoint metadata).
        for schedule in [LearningRateSchedule.constant, step, cosine, warm, LearningRateSchedule.step(every: 3, gamma: 0.1).withWarmup(2)] {
            let data = try! JSONEncoder().encode(schedule)
            XCTAssertEqual(try! JSONDecoder().decode(LearningRateSchedule.self, from: data), schedule)
        }
    }
}
