import Engine
import TestSupport
import XCTest

/// Winograd F(4×4, 3×3) (Winograd3x3, CKernels' winograd.c) against the reference loops: forward,
/// all three gradients, with bias, at sizes that are and are not multiples of the 4×4 tile, with
/// more than one vector of tiles per row, and in blocks of tile rows (which split images and carry
/// input-gradient rows into the next block); the same bits on 1 and 3 threads and on every
/// instruction set; and a finite-difference check.
final class WinogradTests: XCTestCase {
    /// Winograd's transforms add and subtract values scaled by up to 8× before they cancel, so its
    /// rounding error is about ten times a direct sum's (Lavin & Gray 2016, section 5): the bound is
    /// relative to the largest magnitude of the checked tensor.
    static let tolerance: Float = 1e-4

    func testMatchesReferenceOnEveryInstructionSetAndThreadCount() {
        let best = DirectConv3x3.instructionSet
        defer { Parallel.setThreads(1); DirectConv3x3.useInstructionSet(best) }
        let shapes = [(6, 128, 128, 13, 12, 2), (2, 128, 136, 9, 45, 2), (16, 128, 128, 7, 7, 2), (8, 128, 256, 9, 9, 1),
                      (2, 32, 32, 57, 64, 3)]
        for (n, cin, cout, h, w, blocks) in shapes {
            let g = ConvGeometry(channels: cin, batch: n, height: h, width: w, kernel: 3, stride: 1, padding: 1)
            XCTAssertEqual(Winograd3x3.blocks(g, outChannels: cout), blocks, "\(g)")
            var bits: [String: [Float]] = [:], expected: [[Float]]?
            for isa in ["avx512", "avx2", "generic"] where DirectConv3x3.useInstructionSet(isa) {
                for threads in [1, 3] {
                    Parallel.setThreads(threads)
                    bits["\(isa) \(threads)"] = check(n: n, cin: cin, cout: cout, h: h, w: w, expected: &expected,
                                                       label: "\(isa) t\(threads)")
                }
            }
            let first = bits.values.first!
            for (label, b) in bits { XCTAssertEqual(b, first, "\(label): the same bits as every other version, \([n, cin, h, w])") }
        }
    }

    /// One layer's forward and backward against Reference.swift (computed on the first call into
    /// `expected`: the layer's weights and data follow from the seeds); returns y, dx, dW and db.
    private func check(n: Int, cin: Int, cout: Int, h: Int, w: Int, expected: inout [[Float]]?, label: String) -> [Float] {
        let store = ParameterStore()
        let conv = Conv2d(store, "c", cin, cout, kernel: 3, padding: 1, rng: .init(seed: 21))
        store.allocate()
        let g = ConvGeometry(channels: cin, batch: n, height: h, width: w, kernel: 3, stride: 1, padding: 1)
        XCTAssertTrue(Winograd3x3.applies(g, outChannels: cout))
        let shape = [n, cin, h, w], x = GradCheck.randomTensor(shape, seed: 22).toArray()
        let weight = store.array(named: "c.weight")!
        let shapes = Reference.ConvShape(n: n, inChannels: cin, height: h, width: w, outChannels: cout, kernel: 3, stride: 1, padding: 1)
        let dyShape = [n, cout, h, w], dy = GradCheck.randomTensor(dyShape, seed: 23).toArray()
        if expected == nil {
            let (dx, dW, db) = Reference.conv2dBackward(x, weight: weight, dy: dy, shapes)
            expected = [Reference.conv2dForward(x, weight: weight, bias: store.array(named: "c.bias"), shapes), dx, dW, db]
        }
        let y = Layout.nchwArray(conv.forward(Layout.cnhwTensor(shape: shape, nchw: x), Context()))
        let dx = Layout.nchwArray(conv.backward(Layout.cnhwTensor(shape: dyShape, nchw: dy), Context()))
        let dW = store.gradArray(named: "c.weight")!, db = store.gradArray(named: "c.bias")!
        for (name, got, want) in zip(["y", "dx", "dW", "db"], zip([y, dx, dW, db], expected!)).map({ ($0, $1.0, $1.1) }) {
            let error = GradCheck.maxDifference(got, want) / want.map(abs).max()!
            XCTAssertLessThan(error, Self.tolerance, "\(label) \(name) \(shape) → \(cout)")
        }
        return y + dx + dW + db
    }

    /// The layer is linear in x and in W, so central differences have no truncation error and a
    /// large step keeps the forward's rounding (about 1e-6 of |y| per output) out of the figure.
    func testGradientsMatchFiniteDifferences() {
        let store = ParameterStore()
        let conv = Conv2d(store, "c", 128, 128, kernel: 3, padding: 1, rng: .init(seed: 24))
        store.allocate()
        XCTAssertTrue(Winograd3x3.applies(ConvGeometry(channels: 128, batch: 4, height: 13, width: 13, kernel: 3, stride: 1, padding: 1),
                                          outChannels: 128))
        let result = GradCheck.check(conv, store: store, input: GradCheck.randomTensor([4, 128, 13, 13], seed: 25), ctx: Context(),
                                     eps: 0.1)
        XCTAssertLessThan(result.maxInputError, 1e-2, "\(result)")
        XCTAssertLessThan(result.maxParameterError, 1e-2, "\(result)")
    }
}
