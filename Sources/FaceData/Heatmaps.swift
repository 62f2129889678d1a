/// Gaussian keypoint heatmaps: rendered on the fly into the batch buffer (only a ±3σ window is
/// written per keypoint, never a full-size tensor per image kept around), and decoded back to
/// sub-pixel keypoints.
import Foundation

public enum Heatmaps {
    /// The default σ in heatmap pixels: 5 px at 224², in proportion at other sizes.
    public static func defaultSigma(heatmapWidth: Int) -> Float { 5 * Float(heatmapWidth) / 224 }

    /// Writes exp(-d²/2σ²) (peak 1) around (x, y) into a zeroed width×height plane, within ±3σ.
    /// Points outside the plane write only what falls inside it, if anything.
    public static func render(x: Float, y: Float, sigma: Float, into plane: UnsafeMutablePointer<Float>,
                              width: Int, height: Int) {
        let radius = Int((3 * sigma).rounded(.up))
        let x0 = max(Int(x.rounded()) - radius, 0), x1 = min(Int(x.rounded()) + radius, width - 1)
        let y0 = max(Int(y.rounded()) - radius, 0), y1 = min(Int(y.rounded()) + radius, height - 1)
        guard x0 <= x1, y0 <= y1, x.isFinite, y.isFinite else { return }
        let inverse = -1 / (2 * sigma * sigma)
        // Separable: one exp per column and per row, not per pixel.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: x1 - x0 + 1) { gx in
            for i in x0...x1 { gx[i - x0] = expf((Float(i) - x) * (Float(i) - x) * inverse) }
            for j in y0...y1 {
                let gy = expf((Float(j) - y) * (Float(j) - y) * inverse)
                let row = plane + j * width
                for i in x0...x1 { row[i] = gx[i - x0] * gy }
            }
        }
    }

    /// The keypoint a heatmap marks, in heatmap pixels: the argmax refined to sub-pixel precision by
    /// fitting a parabola to the log values of three neighbouring pixels on each axis (exact for a
    /// Gaussian; at the border the three pixels inside are used); `peak` is the maximum.
    public static func decode(_ plane: UnsafePointer<Float>, width: Int, height: Int) -> (x: Float, y: Float, peak: Float) {
        var best = 0
        var peak = plane[0]
        for i in 1..<(width * height) where plane[i] > peak { peak = plane[i]; best = i }
        let bx = best % width, by = best / width
        /// Refines position `b` on an axis of length `n`, reading values with `value(k)`.
        func refine(_ b: Int, _ n: Int, _ value: (Int) -> Float) -> Float {
            guard n >= 3 else { return Float(b) }
            let first = min(max(b - 1, 0), n - 3)
            let v0 = value(first), v1 = value(first + 1), v2 = value(first + 2)
            guard v0 > 0, v1 > 0, v2 > 0 else { return Float(b) }
            let l0 = logf(v0), l1 = logf(v1), l2 = logf(v2)
            let curvature = l0 - 2 * l1 + l2
            guard curvature < 0 else { return Float(b) }
            let vertex = Float(first + 1) + 0.5 * (l0 - l2) / curvature
            return min(max(vertex, Float(b) - 1), Float(b) + 1)
        }
        let x = refine(bx, width) { plane[by * width + $0] }
        let y = refine(by, height) { plane[$0 * width + bx] }
        return (x, y, peak)
    }

    /// The keypoint marked by a plane of logits (a spatial-softmax model's output): the expectation
    /// of the softmax within ±radius pixels of the maximum. Local, so a second mode elsewhere does
    /// not pull the estimate; sub-pixel, since the softmax weights interpolate between pixels.
    public static func decodeLogits(_ plane: UnsafePointer<Float>, width: Int, height: Int, radius: Int) -> (x: Float, y: Float) {
        var best = 0
        var peak = plane[0]
        for i in 1..<(width * height) where plane[i] > peak { peak = plane[i]; best = i }
        let bx = best % width, by = best / width
        var total: Float = 0, sx: Float = 0, sy: Float = 0
        for y in max(0, by - radius)...min(height - 1, by + radius) {
            for x in max(0, bx - radius)...min(width - 1, bx + radius) {
                let w = expf(plane[y * width + x] - peak)
                total += w; sx += w * Float(x); sy += w * Float(y)
            }
        }
        return (sx / total, sy / total)
    }

    /// Distribution-aware decoding (DARK, Zhang et al. 2020, "Distribution-Aware Coordinate
    /// Representation for Human Pose Estimation"): smooth the map with a Gaussian of `blurSigma`
    /// (so a network's ragged peak becomes Gaussian-like again), take its log, and move from the
    /// argmax by one Newton step of the second-order Taylor expansion there, −H⁻¹∇, with central
    /// differences as in mmpose's `refine_keypoints_dark`. A Gaussian's log is a quadratic, so the
    /// step lands on its centre, in both axes at once (the cross term included). `logits`: the plane
    /// holds logits, smoothed as exp(v − max) (their softmax up to a constant). Within 2 px of the
    /// border, where the differences would leave the plane, the argmax is returned as it is.
    public static func decodeDARK(_ plane: UnsafePointer<Float>, width: Int, height: Int, blurSigma: Float,
                                  logits: Bool = false) -> (x: Float, y: Float) {
        var best = 0
        var peak = plane[0]
        for i in 1..<(width * height) where plane[i] > peak { peak = plane[i]; best = i }
        let bx = best % width, by = best / width
        guard bx >= 2, bx <= width - 3, by >= 2, by <= height - 3 else { return (Float(bx), Float(by)) }
        let radius = max(0, Int((3 * blurSigma).rounded(.up)))
        let inverse = blurSigma > 0 ? -1 / (2 * blurSigma * blurSigma) : 0
        let kernel = (-radius...radius).map { expf(Float($0 * $0) * inverse) }
        // Only the 5×5 window the differences read is smoothed, from the patch around it (borders
        // repeat the edge pixel, as mmpose's padding does; logits become exp(v − max) once here).
        let side = 5 + 2 * radius
        var patch = [Float](repeating: 0, count: side * side)
        for py in 0..<side {
            let row = plane + min(max(by - 2 - radius + py, 0), height - 1) * width
            for px in 0..<side {
                let v = row[min(max(bx - 2 - radius + px, 0), width - 1)]
                patch[py * side + px] = logits ? expf(v - peak) : v
            }
        }
        let total = kernel.reduce(0, +)
        var window = [Float](repeating: 0, count: 25)
        for wy in 0..<5 {
            for wx in 0..<5 {
                var sum: Float = 0
                for dy in 0..<kernel.count {
                    var rowSum: Float = 0
                    for dx in 0..<kernel.count { rowSum += kernel[dx] * patch[(wy + dy) * side + wx + dx] }
                    sum += kernel[dy] * rowSum
                }
                // As mmpose: values clipped to 1e-10 before the log (a map that is 0 there stays finite).
                window[wy * 5 + wx] = logf(max(sum / (total * total), 1e-10))
            }
        }
        func l(_ dx: Int, _ dy: Int) -> Float { window[(dy + 2) * 5 + dx + 2] }
        let gx = 0.5 * (l(1, 0) - l(-1, 0)), gy = 0.5 * (l(0, 1) - l(0, -1))
        let hxx = 0.25 * (l(2, 0) - 2 * l(0, 0) + l(-2, 0))
        let hyy = 0.25 * (l(0, 2) - 2 * l(0, 0) + l(0, -2))
        let hxy = 0.25 * (l(1, 1) - l(1, -1) - l(-1, 1) + l(-1, -1))
        let det = hxx * hyy - hxy * hxy
        // Not a maximum (flat or saddle-shaped log): no step.
        guard det > 1e-12, hxx < 0 else { return (Float(bx), Float(by)) }
        let ox = -(hyy * gx - hxy * gy) / det, oy = -(hxx * gy - hxy * gx) / det
        // The maximum of a unimodal map lies within a pixel of its argmax; a longer step is noise.
        return (Float(bx) + min(max(ox, -1), 1), Float(by) + min(max(oy, -1), 1))
    }

    /// How planes become points: the three decoders above.
    public enum Decoding: Sendable, Equatable {
        /// Gaussian heatmaps: the argmax refined by a log-parabola per axis (`decode`).
        case peak
        /// Logit planes: the local soft-argmax within ±radius (`decodeLogits`).
        case softArgmax(radius: Int)
        /// Distribution-aware (`decodeDARK`), on Gaussian heatmaps or on logits.
        case dark(blurSigma: Float, logits: Bool)

        func point(_ plane: UnsafePointer<Float>, width: Int, height: Int) -> (x: Float, y: Float) {
            switch self {
            case .peak: let d = decode(plane, width: width, height: height); return (d.x, d.y)
            case let .softArgmax(radius): return decodeLogits(plane, width: width, height: height, radius: radius)
            case let .dark(sigma, logits): return decodeDARK(plane, width: width, height: height, blurSigma: sigma, logits: logits)
            }
        }
    }

    /// Decodes K planes (K×height×width) to normalised crop coordinates (x / cropWidth, y / cropHeight),
    /// the layout of `Batch.keypoints`, so heatmap and regression models report alike.
    /// `logitRadius`: the planes are logits, decoded with `decodeLogits` in that radius; nil: Gaussian
    /// heatmaps, decoded by their refined peak.
    public static func decodeNormalised(_ planes: UnsafePointer<Float>, count: Int, width: Int, height: Int,
                                        cropWidth: Int, cropHeight: Int, logitRadius: Int? = nil) -> [Float] {
        decodeNormalised(planes, count: count, width: width, height: height, cropWidth: cropWidth, cropHeight: cropHeight,
                         decoding: logitRadius.map { .softArgmax(radius: $0) } ?? .peak)
    }

    /// `planeStride`: floats from one keypoint's plane to the next (nil: adjacent planes; a batch in
    /// the engine's CNHW layout: N planes).
    public static func decodeNormalised(_ planes: UnsafePointer<Float>, count: Int, planeStride: Int? = nil, width: Int, height: Int,
                                        cropWidth: Int, cropHeight: Int, decoding: Decoding) -> [Float] {
        var out = [Float](repeating: 0, count: 2 * count)
        for k in 0..<count {
            let p = decoding.point(planes + k * (planeStride ?? width * height), width: width, height: height)
            let c = heatmapToCrop(x: p.x, y: p.y, width: width, height: height, cropWidth: cropWidth, cropHeight: cropHeight)
            out[2 * k] = c.x / Float(cropWidth)
            out[2 * k + 1] = c.y / Float(cropHeight)
        }
        return out
    }

    /// Crop pixels → heatmap pixels (pixel centres aligned, edges to edges).
    @inlinable public static func cropToHeatmap(x: Float, y: Float, width: Int, height: Int,
                                                cropWidth: Int, cropHeight: Int) -> (x: Float, y: Float) {
        ((x + 0.5) * Float(width) / Float(cropWidth) - 0.5, (y + 0.5) * Float(height) / Float(cropHeight) - 0.5)
    }

    @inlinable public static func heatmapToCrop(x: Float, y: Float, width: Int, height: Int,
                                                cropWidth: Int, cropHeight: Int) -> (x: Float, y: Float) {
        ((x + 0.5) * Float(cropWidth) / Float(width) - 0.5, (y + 0.5) * Float(cropHeight) / Float(height) - 0.5)
    }
}
