import Engine
import FaceData
import Foundation

/// Flip-test averaging: predict on the crop and on its horizontal mirror, map the mirror's points
/// back and average the two. A model that learnt left/right symmetry only approximately gets two
/// partly independent estimates of every point for the price of a second forward pass.
///
/// Heatmap models average the decoded coordinates, not the heatmaps: the same code then serves
/// regression and every decoder, and averaging two maps whose peaks sit a fraction of a pixel
/// apart would widen the peak that DARK and the log-parabola assume to be Gaussian.
public enum FlipTest {
    /// Mirrors every row of an [N, C, H, W] tensor in place: pixel x ↔ W − 1 − x, the mirror the
    /// augmentation's flip applies about the crop centre (W − 1) / 2.
    public static func mirrorRows(_ t: Tensor) {
        let w = t.w
        for r in 0 ..< (t.count / max(w, 1)) {
            var row = UnsafeMutableBufferPointer(start: t.data + r * w, count: w)
            row.reverse()
        }
    }

    /// Normalised keypoints (x / width, y / height) predicted on a mirrored crop → the same points
    /// in the unmirrored crop: x → W − 1 − x in crop pixels, and output j takes what the model
    /// reported at `flippedPosition[j]` (the mirror of a left eye looks like a right eye). Its own
    /// inverse.
    public static func unmirror(_ points: [Float], flippedPosition: [Int], width: Int) -> [Float] {
        let mirrorX = Float(width - 1) / Float(width)
        var out = points
        for j in 0 ..< flippedPosition.count {
            out[2 * j] = mirrorX - points[2 * flippedPosition[j]]
            out[2 * j + 1] = points[2 * flippedPosition[j] + 1]
        }
        return out
    }

    /// `predict`'s keypoints for each sample of the mirrored `input`, mapped back to the unmirrored
    /// crops. `input` is mirrored in place and restored before returning.
    public static func mirroredPredictions(input: Tensor, flippedPosition: [Int],
                                           predict: (Tensor) -> [[Float]]) -> [[Float]] {
        mirrorRows(input)
        defer { mirrorRows(input) }
        return predict(input).map { unmirror($0, flippedPosition: flippedPosition, width: input.w) }
    }

    /// Fails when the pipeline's keypoint subset lacks the mirror partner of one of its points:
    /// the mirrored image's prediction of that partner, which the flip test needs, does not exist.
    public static func check(_ pipeline: SamplePipeline) throws {
        let (labels, mirror) = (pipeline.labels, pipeline.markup.flipPermutation)
        for (j, label) in labels.enumerated() where labels[pipeline.flippedPosition[j]] != mirror[label] {
            throw DataError(file: pipeline.markup.name, "flip test: keypoint subset \(labels) lacks \(mirror[label]), "
                            + "the mirror of \(label): add it or evaluate without --flip-test")
        }
    }

    /// The point-wise mean of two predictions per sample.
    public static func average(_ a: [[Float]], _ b: [[Float]]) -> [[Float]] {
        zip(a, b).map { zip($0, $1).map { ($0 + $1) / 2 } }
    }
}
