import Engine
import Foundation
import Models
import TestSupport
import Training
import XCTest

/// PIPNet's head: targets, loss and decoding against what they mean, independently of a network.
final class PIPHeadTests: XCTestCase {
    /// Three keypoints with two neighbours each on a 64×64 crop (a 4×4 grid of 16-pixel cells).
    let head = PIPHead(neighbours: PIPHead.neighbours(meanShape: [0.2, 0.3, 0.8, 0.3, 0.5, 0.9], m: 2))
    let keypoints: [Float] = [0.21, 0.33, 0.77, 0.30, 0.52, 0.93,   // sample 0
                              0.05, 0.10, 0.95, 0.12, 0.49, 0.999]  // sample 1: near the edges

    func testNeighboursAreTheNearestInTheMeanShape() {
        XCTAssertEqual(head.neighbours, [[1, 2], [0, 2], [0, 1]])
        // A line of five: nearest first, ties to the lower index.
        XCTAssertEqual(PIPHead.neighbours(meanShape: [0, 0, 1, 0, 2, 0, 3, 0, 4, 0], m: 2)[2], [1, 3])
        XCTAssertEqual(PIPHead.neighbours(meanShape: [0, 0, 1, 0, 2, 0, 3, 0, 4, 0], m: 3)[0], [1, 2, 3])
        XCTAssertEqual(PIPLayout.neighbours(keypoints: 68), 10)
        XCTAssertEqual(PIPLayout.outputs(keypoints: 68), 68 * 23)
        XCTAssertEqual(try PIPLayout.split(outputs: 21).keypoints, 3)
    }

    /// The target read as a network output decodes to the keypoints exactly: each score map peaks at
    /// the true cell, and the own and neighbour offsets there land on the same points.
    func testTargetDecodesToTheKeypoints() throws {
        let t = head.target(keypoints: keypoints, count: 2, width: 64, height: 64)
        XCTAssertEqual(t.count, 2 * 21 * 16)
        let output = Tensor(shape: [2, 21, 4, 4], values: t)
        for s in 0 ..< 2 {
            let decoded = head.decode(output, sample: s, keypoints: 3)
            for j in 0 ..< 6 { XCTAssertEqual(decoded[j], keypoints[6 * s + j], accuracy: 1e-6, "sample \(s) value \(j)") }
        }
        // Sample 0's keypoint 0 at grid (0.84, 1.32): cell (0, 1), offsets (0.84, 0.32); its
        // neighbour 1 at grid (3.08, 1.2) is (3.08, 0.2) from that cell. CNHW: (channel·N + n)·16 + cell.
        func at(_ channel: Int, _ n: Int, _ cell: Int) -> Float { t[(channel * 2 + n) * 16 + cell] }
        XCTAssertEqual(at(0, 0, 4), 1)
        XCTAssertEqual(at(3, 0, 4), 0.84, accuracy: 1e-5); XCTAssertEqual(at(6, 0, 4), 0.32, accuracy: 1e-5)
        XCTAssertEqual(at(9, 0, 4), 3.08, accuracy: 1e-5); XCTAssertEqual(at(15, 0, 4), 0.2, accuracy: 1e-5)
        // y = 0.999 of the crop is in the last row of cells, not past it.
        XCTAssertEqual(at(2, 1, 3 * 4 + 1), 1)
    }

    /// A neighbour's vote moves the average: with keypoint 0's own offset off by 0.4 cells and its
    /// two neighbours' votes exact, the decoded point is off by a third of that.
    func testDecodingAveragesTheNeighbourVotes() {
        var t = head.target(keypoints: keypoints, count: 2, width: 64, height: 64)
        t[(3 * 2 + 0) * 16 + 4] += 0.4
        let decoded = head.decode(Tensor(shape: [2, 21, 4, 4], values: t), sample: 0, keypoints: 3)
        XCTAssertEqual(decoded[0], keypoints[0] + 0.4 / 4 / 3, accuracy: 1e-6)
        XCTAssertEqual(decoded[1], keypoints[1], accuracy: 1e-6)
    }

    /// The loss is 0 at the target, and its gradient matches central differences in Double.
    func testLossAndItsGradient() throws {
        let t = head.target(keypoints: keypoints, count: 2, width: 64, height: 64)
        let loss = head.makeLoss()
        XCTAssertEqual(t.withUnsafeBufferPointer { loss.forward(Tensor(shape: [2, 21, 4, 4], values: t), $0.baseAddress!) }, 0)
        var rng = RandomGenerator(seed: 5)
        let p = Tensor(shape: [2, 21, 4, 4], values: t.map { $0 + 0.3 * rng.normal() })
        let value = t.withUnsafeBufferPointer { loss.forward(p, $0.baseAddress!) }
        // By hand: 10·MSE over the 2·3·16 score cells + L1 of the offsets at the 6 true cells.
        var expected = 0.0
        for i in 0 ..< 96 { expected += 10 * Double((p.data[i] - t[i]) * (p.data[i] - t[i])) / 96 }
        for j in 0 ..< 3 {
            for n in 0 ..< 2 {
                let cell = (0 ..< 16).first { t[(j * 2 + n) * 16 + $0] == 1 }!
                for c in [3 + j, 6 + j] { expected += Double(abs(p.data[(c * 2 + n) * 16 + cell] - t[(c * 2 + n) * 16 + cell])) / 6 }
                for c in [9 + 2 * j, 10 + 2 * j, 15 + 2 * j, 16 + 2 * j] {
                    expected += Double(abs(p.data[(c * 2 + n) * 16 + cell] - t[(c * 2 + n) * 16 + cell])) / 12
                }
            }
        }
        XCTAssertEqual(Double(value), expected, accuracy: 1e-5)
        let analytic = loss.gradient.toArray()
        let h: Float = 1e-3
        for i in stride(from: 0, to: p.count, by: 7) {
            let saved = p.data[i]
            p.data[i] = saved + h
            let up = t.withUnsafeBufferPointer { loss.forward(p, $0.baseAddress!) }
            p.data[i] = saved - h
            let down = t.withUnsafeBufferPointer { loss.forward(p, $0.baseAddress!) }
            p.data[i] = saved
            XCTAssertEqual(analytic[i], (up - down) / (2 * h), accuracy: 2e-3, "element \(i)")
        }
    }
}
