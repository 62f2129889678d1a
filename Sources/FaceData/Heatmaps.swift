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

    /// Decodes K planes (K×height×width) to normalised crop coordinates (x / cropWidth, y / cropHeight),
    /// the layout of `Batch.keypoints`, so heatmap and regression models report alike.
    /// `logitRadius`: the planes are logits, decoded with `decodeLogits` in that radius; nil: Gaussian
    /// heatmaps, decoded by their refined peak.
    public static func decodeNormalised(_ planes: UnsafePointer<Float>, count: Int, width: Int, height: Int,
                                        cropWidth: Int, cropHeight: Int, logitRadius: Int? = nil) -> [Float] {
        var out = [Float](repeating: 0, count: 2 * count)
        for k in 0..<count {
            let plane = planes + k * width * height
            let p = logitRadius.map { decodeLogits(plane, width: width, height: height, radius: $0) }
                ?? { let d = decode(plane, width: width, height: height); return (d.x, d.y) }()
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
