import Engine
import FaceData
import Foundation
import Models

/// PIPNet's head (Jin et al. 2021) for `mobilenet-pip`: the output is a grid of `stride`-pixel
/// cells with K(3 + 2M) channels in the engine's CNHW layout, [N, C, gh, gw] with channel c of
/// sample n at (c·N + n)·gh·gw (`PIPLayout`). For keypoint k at grid position (gx, gy) = (x / stride,
/// y / stride) in cell (cx, cy) = (⌊gx⌋, ⌊gy⌋), the target is a 1 in its score map at that cell, its
/// offset (gx − cx, gy − cy) in the x / y maps there, and for each of its M neighbours j (the nearest
/// in the training mean shape) the offset of j from the same cell. Decoding takes each score map's
/// best cell, adds the offsets, and averages a keypoint's own estimate with those its
/// neighbours' cells make of it: the shape prior that makes PIPNet robust.
public struct PIPHead: LandmarkHead {
    /// neighbours[k]: the M keypoints nearest keypoint k in the training mean shape.
    public let neighbours: [[Int]]
    /// PIPNet's weights: 10 × MSE on the score maps, 1 × L1 on the offsets at the true cells.
    public static let scoreWeight: Float = 10

    public init(neighbours: [[Int]]) { self.neighbours = neighbours }

    /// The `m` nearest keypoints to each keypoint of `meanShape` (interleaved x, y), nearest first
    /// (ties: the lower index).
    public static func neighbours(meanShape: [Float], m: Int) -> [[Int]] {
        let k = meanShape.count / 2
        return (0 ..< k).map { i in
            let others = (0 ..< k).filter { $0 != i }.map { j -> (Float, Int) in
                let dx = meanShape[2 * j] - meanShape[2 * i], dy = meanShape[2 * j + 1] - meanShape[2 * i + 1]
                return (dx * dx + dy * dy, j)
            }
            return others.sorted { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }.prefix(m).map(\.1)
        }
    }

    public func requestTargets(_ options: inout LoaderOptions) {}

    public func makeLoss() -> Loss { PIPLoss(neighbours: neighbours) }


    public func target(of batch: Batch) -> [Float] {
        target(keypoints: batch.keypoints, count: batch.count, width: batch.width, height: batch.height)
    }

    /// The target of `count` samples' keypoints (2K each, normalised to a width × height crop).
    public func target(keypoints: [Float], count n: Int, width: Int, height: Int) -> [Float] {
        let (k, m) = (neighbours.count, neighbours.first?.count ?? 0)
        let (gh, gw) = (PIPLayout.cells(height), PIPLayout.cells(width))
        let plane = gh * gw
        var t = [Float](repeating: 0, count: n * k * (3 + 2 * m) * plane)
        func at(_ channel: Int, _ sample: Int, _ cell: Int) -> Int { (channel * n + sample) * plane + cell }
        for s in 0 ..< n {
            let p = Array(keypoints[(s * 2 * k) ..< ((s + 1) * 2 * k)])
            func grid(_ j: Int) -> (x: Float, y: Float) { (p[2 * j] * Float(gw), p[2 * j + 1] * Float(gh)) }
            for i in 0 ..< k {
                let g = grid(i)
                let (cx, cy) = (Self.cell(g.x, gw), Self.cell(g.y, gh))
                let cell = cy * gw + cx
                t[at(i, s, cell)] = 1
                t[at(k + i, s, cell)] = g.x - Float(cx)
                t[at(2 * k + i, s, cell)] = g.y - Float(cy)
                for (slot, j) in neighbours[i].enumerated() {
                    let q = grid(j)
                    t[at(3 * k + i * m + slot, s, cell)] = q.x - Float(cx)
                    t[at(3 * k + k * m + i * m + slot, s, cell)] = q.y - Float(cy)
                }
            }
        }
        return t
    }

    /// The cell holding grid coordinate `v` (clamped to the grid).
    static func cell(_ v: Float, _ count: Int) -> Int { min(max(Int(v.rounded(.down)), 0), count - 1) }

    // output CNHW [N, K(3 + 2M), gh, gw] → sample i's K points normalised to the crop
    public func decode(_ output: Tensor, sample i: Int, keypoints k: Int) -> [Float] {
        let (n, gh, gw, m) = (output.n, output.h, output.w, neighbours.first?.count ?? 0)
        let plane = gh * gw
        func map(_ channel: Int) -> UnsafeMutablePointer<Float> { output.data + (channel * n + i) * plane }
        var sums = [Double](repeating: 0, count: 2 * k), votes = [Double](repeating: 0, count: k)
        for j in 0 ..< k {
            let scores = map(j)
            var best = 0
            for c in 1 ..< plane where scores[c] > scores[best] { best = c }
            let (cx, cy) = (Float(best % gw), Float(best / gw))
            func vote(_ target: Int, _ ox: Float, _ oy: Float) {
                sums[2 * target] += Double((cx + ox) / Float(gw))
                sums[2 * target + 1] += Double((cy + oy) / Float(gh))
                votes[target] += 1
            }
            vote(j, map(k + j)[best], map(2 * k + j)[best])
            for (slot, neighbour) in neighbours[j].enumerated() {
                vote(neighbour, map(3 * k + j * m + slot)[best], map(3 * k + k * m + j * m + slot)[best])
            }
        }
        return (0 ..< 2 * k).map { Float(sums[$0] / votes[$0 / 2]) }
    }

    public var settings: String { " neighbours \(neighbours.first?.count ?? 0)" }

    public func check(_ config: TrainConfig) throws {
        if config.regressionLoss != nil {
            throw TrainingFailure("--loss is for regression models; \(config.model) trains PIPNet's score and offset maps")
        }
    }
}

/// PIPNet's loss on a `PIPHead` target: 10 × mean squared error over every score map, plus the mean
/// absolute error of the x and y offsets and of the neighbour offsets, each taken only at the
/// keypoint's true cell (where its score target is 1).
///   loss = 10·Σ(s − ŝ)²/(N·K·cells) + Σ|x − x̂|/(N·K) + Σ|y − ŷ|/(N·K) + Σ|nx − n̂x|/(N·K·M) + Σ|ny − n̂y|/(N·K·M)
public final class PIPLoss: Loss {
    public let gradient = Tensor(shape: [0])
    let neighbours: Int

    public init(neighbours: [[Int]]) { self.neighbours = neighbours.first?.count ?? 0 }

    public func forward(_ prediction: Tensor, _ target: UnsafePointer<Float>) -> Float {
        gradient.resize(prediction.shape)
        gradient.zero()
        let (n, plane, m) = (prediction.n, prediction.h * prediction.w, neighbours)
        let k = prediction.c / (3 + 2 * m)
        let (p, g) = (prediction.data, gradient.data)
        // Scores: every cell of the first K channels (contiguous in CNHW).
        let scores = k * n * plane
        let scoreScale = PIPHead.scoreWeight / Float(scores)
        var total = PIPHead.scoreWeight * Float(blockedSum(scores) { i in
            let d = p[i] - target[i]
            g[i] = 2 * scoreScale * d
            return d * d
        } / Double(scores))
        // Offsets at each keypoint's true cell: channel c of sample s at (c·N + s)·plane + cell.
        var offsets = 0.0, neighbourOffsets = 0.0
        let offsetScale = 1 / Float(n * k), neighbourScale = 1 / Float(max(n * k * m, 1))
        func l1(_ channel: Int, _ s: Int, _ cell: Int, _ scale: Float) -> Double {
            let at = (channel * n + s) * plane + cell
            let d = p[at] - target[at]
            g[at] = d > 0 ? scale : d < 0 ? -scale : 0
            return Double(abs(d))
        }
        for j in 0 ..< k {
            for s in 0 ..< n {
                let scoreTarget = target + (j * n + s) * plane
                guard let cell = (0 ..< plane).first(where: { scoreTarget[$0] == 1 }) else { continue }
                offsets += l1(k + j, s, cell, offsetScale) + l1(2 * k + j, s, cell, offsetScale)
                for slot in 0 ..< m {
                    neighbourOffsets += l1(3 * k + j * m + slot, s, cell, neighbourScale)
                    neighbourOffsets += l1(3 * k + k * m + j * m + slot, s, cell, neighbourScale)
                }
            }
        }
        total += Float(offsets) * offsetScale + Float(neighbourOffsets) * neighbourScale
        return total
    }
}
