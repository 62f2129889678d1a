import Foundation

/// Keypoint error metrics as face-alignment papers report them.
/// - mean pixel error: mean Euclidean distance per point, in original image pixels;
/// - NME: the per-image mean point error divided by the distance between two reference points
///   (68-point markup: outer eye corners 36 and 45, "inter-ocular");
/// - failure rate: fraction of images with NME above a threshold (0.08);
/// - AUC@0.08: area under the cumulative NME curve up to the threshold, normalised to [0, 1].
public struct KeypointMetrics: Codable, Equatable {
    public var images = 0
    public var meanPixelError = 0.0
    public var nme = 0.0
    public var failureRate = 0.0
    public var auc = 0.0
    public var threshold = 0.08

    public init() {}
}

public struct ImageError: Codable, Equatable {
    public var source: String
    public var pixelError: Double
    public var nme: Double

    public init(source: String, pixelError: Double, nme: Double) {
        self.source = source; self.pixelError = pixelError; self.nme = nme
    }
}

public enum KeypointScoring {
    /// Errors of one image. `predicted` and `truth` are interleaved x, y in the same pixel frame.
    /// Without a normalising pair (e.g. one nose point) the NME is normalised by the larger side
    /// of the truth's bounding box, or by `fallbackNorm` when given.
    public static func score(predicted: [Float], truth: [Float], normalisingPair: (Int, Int)?,
                             fallbackNorm: Double? = nil, source: String = "") -> ImageError {
        precondition(predicted.count == truth.count && truth.count % 2 == 0)
        let points = truth.count / 2
        var total = 0.0
        for i in 0 ..< points {
            let dx = Double(predicted[2 * i] - truth[2 * i]), dy = Double(predicted[2 * i + 1] - truth[2 * i + 1])
            total += (dx * dx + dy * dy).squareRoot()
        }
        let pixelError = total / Double(points)
        var norm: Double
        if let (a, b) = normalisingPair, max(a, b) < points {
            let dx = Double(truth[2 * a] - truth[2 * b]), dy = Double(truth[2 * a + 1] - truth[2 * b + 1])
            norm = (dx * dx + dy * dy).squareRoot()
        } else if let fallbackNorm {
            norm = fallbackNorm
        } else {
            let xs = stride(from: 0, to: truth.count, by: 2).map { Double(truth[$0]) }
            let ys = stride(from: 1, to: truth.count, by: 2).map { Double(truth[$0]) }
            norm = max(xs.max()! - xs.min()!, ys.max()! - ys.min()!)
        }
        if norm <= 0 { norm = 1 }
        return ImageError(source: source, pixelError: pixelError, nme: pixelError / norm)
    }

    /// Aggregates per-image errors (over all ranks' images, gathered by the caller).
    public static func summarize(_ errors: [ImageError], threshold: Double = 0.08) -> KeypointMetrics {
        var m = KeypointMetrics()
        m.threshold = threshold
        m.images = errors.count
        guard !errors.isEmpty else { return m }
        let n = Double(errors.count)
        m.meanPixelError = errors.map(\.pixelError).reduce(0, +) / n
        m.nme = errors.map(\.nme).reduce(0, +) / n
        m.failureRate = Double(errors.filter { $0.nme > threshold }.count) / n
        m.auc = areaUnderCurve(errors.map(\.nme), threshold: threshold)
        return m
    }

    /// ∫₀^t CED(e) de / t, where CED(e) is the fraction of images with NME ≤ e (exact for the step function).
    public static func areaUnderCurve(_ nmes: [Double], threshold: Double) -> Double {
        guard !nmes.isEmpty, threshold > 0 else { return 0 }
        let n = Double(nmes.count)
        // Each image contributes (t − e)/t when its error e is below t.
        return nmes.filter { $0 < threshold }.map { (threshold - $0) / threshold }.reduce(0, +) / n
    }
}
