import Engine
import FaceData
import Foundation
import Models
import SwiftMPI

/// Runs a model over an evaluation loader (each sample exactly once across ranks) and scores it:
/// the training loss, and keypoint errors in original-image pixels.
public struct EvaluationResult {
    public var loss = 0.0
    public var metrics = KeypointMetrics()
    /// This rank's per-image results (predictions and truth in original pixels), when collected.
    public var images: [ImagePrediction] = []
}

public struct ImagePrediction {
    public var source: String
    public var predicted: [Float]
    public var truth: [Float]
    public var error: ImageError
    /// The model's input crop (for pictures) and the normalised → crop mapping.
    public var crop: GreyImage?
    public var info: SampleInfo
}

public enum Evaluator {
    /// Normalised keypoints of every sample of `input` ([N, 1, H, W], filled), decoded by `head`;
    /// with `flipTest`, averaged with the mirrored input's (`FlipTest`). The plain forward pass's
    /// output is handed to `plainOutput` (the loss) before the mirrored pass reuses it.
    public static func predictions(_ network: Network, input: Tensor, head: LandmarkHead, flipTest: Bool, keypoints: Int,
                                   flippedPosition: [Int], plainOutput: (Tensor) -> Void = { _ in }) -> [[Float]] {
        func decoded(_ output: Tensor) -> [[Float]] {
            (0 ..< input.n).map { head.decode(output, sample: $0, keypoints: keypoints) }
        }
        let output = network.forward(input)
        plainOutput(output)
        let plain = decoded(output)
        guard flipTest else { return plain }
        return FlipTest.average(plain, FlipTest.mirroredPredictions(input: input, flippedPosition: flippedPosition) {
            decoded(network.forward($0))
        })
    }

    /// Scores a network over `loader`: `head`'s loss, and keypoint errors in original-image pixels.
    /// `config` gives the head and the flip test.
    public static func evaluate(network: Network, loader: BatchLoader, config: TrainConfig,
                                normalisingPair: (Int, Int)?, communicator: Communicator, epoch: Int = 0,
                                keepImages: Bool = false, input: Tensor = Tensor(shape: [0]),
                                collectives: WatchedCollectives? = nil) throws -> EvaluationResult {
        let wasTraining = network.training
        network.training = false
        defer { network.training = wasTraining }
        let (head, k, flipTest) = (config.head, loader.pipeline.keypointCount, config.flipTest ?? false)
        let loss = head.makeLoss()
        if flipTest { try FlipTest.check(loader.pipeline) }
        return try score(loader: loader, normalisingPair: normalisingPair, communicator: communicator, epoch: epoch,
                         keepImages: keepImages, collectives: collectives) { batch in
            input.load(batch)
            var value: Float = 0
            let points = predictions(network, input: input, head: head, flipTest: flipTest, keypoints: k,
                                     flippedPosition: loader.pipeline.flippedPosition) { output in
                value = head.loss(loss, of: output, against: batch)
            }
            return (Double(value), { points[$0] })
        }
    }

    /// Scores any predictor over `loader` (each sample once across ranks). `predict` returns the
    /// batch's loss (nil when it has none) and each sample's normalised keypoints. The sums meet in
    /// one allreduce, through `collectives` when given (the trainer's, under its stall watchdog).
    public static func score(loader: BatchLoader, normalisingPair: (Int, Int)?, communicator: Communicator, epoch: Int = 0,
                             keepImages: Bool = false, collectives: WatchedCollectives? = nil,
                             predict: (Batch) -> (loss: Double?, keypoints: (Int) -> [Float])) throws -> EvaluationResult {
        var result = EvaluationResult()
        var sums = [Double](repeating: 0, count: 7)   // loss·n, n, pixel, nme, failures, auc, images
        let threshold = 0.08
        loader.start(epoch: epoch)
        let k = loader.pipeline.keypointCount
        while let batch = try loader.next() {
            guard batch.count > 0 else { continue }
            let (loss, keypoints) = predict(batch)
            if let loss {
                sums[0] += loss * Double(batch.count)
                sums[1] += Double(batch.count)
            }
            for i in 0 ..< batch.count {
                let info = batch.samples[i]
                let predicted = loader.pipeline.sourceKeypoints(normalised: keypoints(i), info: info)
                let truth = loader.pipeline.sourceKeypoints(normalised: Array(batch.keypoints[(i * 2 * k) ..< ((i + 1) * 2 * k)]), info: info)
                let cropWidth = Double(batch.width) / Double(max(info.transform.meanScale, 1e-6))
                let error = KeypointScoring.score(predicted: predicted, truth: truth, normalisingPair: normalisingPair,
                                                  fallbackNorm: cropWidth, source: info.source)
                sums[2] += error.pixelError
                sums[3] += error.nme
                sums[4] += error.nme > threshold ? 1 : 0
                sums[5] += error.nme < threshold ? (threshold - error.nme) / threshold : 0
                sums[6] += 1
                if keepImages {
                    result.images.append(ImagePrediction(source: info.source, predicted: predicted, truth: truth, error: error,
                                                         crop: loader.pipeline.crop(batch, i), info: info))
                }
            }
        }
        try (collectives ?? WatchedCollectives(communicator)).allreduce(&sums, op: .sum, "the validation metrics")
        result.loss = sums[1] > 0 ? sums[0] / sums[1] : .nan
        let n = max(sums[6], 1)
        result.metrics.images = Int(sums[6])
        result.metrics.meanPixelError = sums[2] / n
        result.metrics.nme = sums[3] / n
        result.metrics.failureRate = sums[4] / n
        result.metrics.auc = sums[5] / n
        result.metrics.threshold = threshold
        return result
    }
}

extension Tensor {
    /// The batch's images: [count, 1, H, W].
    public func load(_ batch: Batch) {
        resize([batch.count, 1, batch.height, batch.width])
        batch.images.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }
}
