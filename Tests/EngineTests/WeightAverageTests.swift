import Engine
import Foundation
import TestSupport
import XCTest

final class WeightAverageTests: XCTestCase {
    /// A store with two parameters and two BatchNorm-style buffers, filled from a seed.
    func makeStore(seed: UInt64) -> ParameterStore {
        let store = ParameterStore()
        var rng = RandomGenerator(seed: seed)
        _ = store.declare("conv.weight", shape: [3, 2, 3, 3], kind: .weight) { b in for i in 0 ..< b.count { b[i] = rng.uniform(-1, 1) } }
        _ = store.declare("conv.bias", shape: [3], kind: .bias) { b in for i in 0 ..< b.count { b[i] = rng.uniform(-1, 1) } }
        _ = store.declareBuffer("bn.running_mean", shape: [3], value: 0)
        _ = store.declareBuffer("bn.running_var", shape: [3], value: 1)
        _ = store.declareBuffer("bn.num_batches_tracked", shape: [], value: 0)
        store.allocate()
        return store
    }

    /// A pretend optimizer step and BatchNorm update: new values and buffers from the generator.
    func step(_ store: ParameterStore, _ rng: inout RandomGenerator) {
        for i in 0 ..< store.parameterCount { store.values[i] += rng.uniform(-0.1, 0.1) }
        for i in 0 ..< store.bufferCount { store.state[i] = rng.uniform(0, 2) }
    }

    func testMatchesTheFormulaInDouble() {
        let store = makeStore(seed: 81)
        let ema = WeightAverage(store: store, decay: 0.9)
        var reference = store.values.map(Double.init)
        var referenceState = store.state.map(Double.init)
        var rng = RandomGenerator(seed: 82)
        for n in 0 ..< 40 {
            step(store, &rng)
            let d = min(0.9, Double(1 + n) / Double(10 + n))
            XCTAssertEqual(Double(ema.currentDecay), d, accuracy: 1e-7)
            ema.update()
            for i in 0 ..< reference.count { reference[i] = d * reference[i] + (1 - d) * Double(store.values[i]) }
            for i in 0 ..< reference.count { XCTAssertEqual(Double(ema.values[i]), reference[i], accuracy: 1e-5, "step \(n) value \(i)") }
            // Running statistics are averaged like the weights; the batch counter is copied.
            for i in 0 ..< 6 { referenceState[i] = d * referenceState[i] + (1 - d) * Double(store.state[i]) }
            for i in 0 ..< 6 { XCTAssertEqual(Double(ema.state[i]), referenceState[i], accuracy: 1e-5, "step \(n) statistic \(i)") }
            XCTAssertEqual(ema.state[6], store.state[6])
        }
        XCTAssertEqual(ema.updates, 40)
        // The warm-up: the first update keeps 10 % of the start, later the configured decay rules.
        XCTAssertEqual(WeightAverage(store: store, decay: 0.999).currentDecay, 0.1)
    }

    func testSwapRestoresTrainingWeightsBitForBit() {
        let store = makeStore(seed: 83)
        let ema = WeightAverage(store: store, decay: 0.99)
        var rng = RandomGenerator(seed: 84)
        for _ in 0 ..< 5 { step(store, &rng); ema.update() }
        let training = Array(store.values), trainingState = Array(store.state)
        let averaged = Array(ema.values), averagedState = Array(ema.state)
        XCTAssertNotEqual(training, averaged)
        ema.swapIn()
        XCTAssertTrue(ema.isSwappedIn)
        XCTAssertEqual(Array(store.values), averaged)
        XCTAssertEqual(Array(store.state), averagedState)
        // A second store gets the averaged numbers whether or not they are swapped in.
        let other = makeStore(seed: 85)
        ema.copy(into: other)
        XCTAssertEqual(Array(other.values), averaged)
        ema.swapOut()
        XCTAssertEqual(Array(store.values).map(\.bitPattern), training.map(\.bitPattern))
        XCTAssertEqual(Array(store.state).map(\.bitPattern), trainingState.map(\.bitPattern))
        XCTAssertEqual(Array(ema.values).map(\.bitPattern), averaged.map(\.bitPattern))
        let third = makeStore(seed: 86)
        ema.copy(into: third)
        XCTAssertEqual(Array(third.values), averaged)
        let seen = ema.withAveraged { Array(store.values) }
        XCTAssertEqual(seen, averaged)
        XCTAssertEqual(Array(store.values).map(\.bitPattern), training.map(\.bitPattern))
    }

    /// Element-wise only: any thread count gives the same bits.
    func testThreadCountIndependent() {
        defer { Parallel.setThreads(1) }
        var results: [[UInt32]] = []
        for threads in [1, 3] {
            Parallel.setThreads(threads)
            let store = ParameterStore()
            var init0 = RandomGenerator(seed: 87)
            _ = store.declare("w", shape: [200_000], kind: .weight) { b in for i in 0 ..< b.count { b[i] = init0.uniform(-1, 1) } }
            store.allocate()
            let ema = WeightAverage(store: store, decay: 0.999)
            var rng = RandomGenerator(seed: 88)
            for _ in 0 ..< 3 { step(store, &rng); ema.update() }
            results.append(ema.values.map(\.bitPattern))
        }
        XCTAssertEqual(results[0], results[1])
    }
}
