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
    /// Predicted keypoints of sample `i` of a batch, normalised to the crop (x / width, y / height).
    public static func normalisedPrediction(_ output: Tensor, sample i: Int, config: TrainConfig, keypoints: Int) -> [Float] {
        switch config.task {
        case .regression:
            return Array(UnsafeBufferPointer(start: output.data + i * 2 * keypoints, count: 2 * keypoints))
        case .heatmap:
            // Heatmaps are rendered at the input size, so heatmap and crop pixels coincide.
            let (h, w) = (output.h, output.w)
            return Heatmaps.decodeNormalised(output.data + i * keypoints * h * w, count: keypoints, width: w, height: h,
                                             cropWidth: w, cropHeight: h, decoding: config.heatmapDecoder(width: w, height: h))
        }
    }

    /// Normalised keypoints of every sample of `input` ([N, 1, H, W], filled); with the
    /// configuration's flip test, averaged with the mirrored input's (`FlipTest`). The plain
    /// forward pass's output is handed to `plainOutput` (the loss) before the mirrored pass reuses it.
    public static func predictions(_ network: Network, input: Tensor, config: TrainConfig, keypoints: Int,
                                   flippedPosition: [Int], plainOutput: (Tensor) -> Void = { _ in }) -> [[Float]] {
        func decoded(_ output: Tensor) -> [[Float]] {
            (0 ..< input.n).map { normalisedPrediction(output, sample: $0, config: config, keypoints: keypoints) }
        }
        let output = network.forward(input)
        plainOutput(output)
        let plain = decoded(output)
        guard config.flipTest ?? false else { return plain }
        return FlipTest.average(plain, FlipTest.mirroredPredictions(input: input, flippedPosition: flippedPosition) {
            decoded(network.forward($0))
        })
    }

    /// Scores a network over `loader`: its loss, and keypoint errors in original-image pixels.
    public static func evaluate(network: Network, loader: BatchLoader, loss: Loss, config: TrainConfig,
                                normalisingPair: (Int, Int)?, communicator: Communicator, epoch: Int = 0,
                                keepImages: Bool = false, input: Tensor = Tensor(shape: [0])) throws -> EvaluationResult {
        let wasTraining = network.training
        network.training = false
        defer { network.training = wasTraining }
        let k = loader.pipeline.keypointCount
        if config.flipTest ?? false { try FlipTest.check(loader.pipeline) }
        return try score(loader: loader, normalisingPair: normalisingPair, communicator: communicator, epoch: epoch,
                         keepImages: keepImages) { batch in
            load(batch, into: input)
            let target = config.task.target(of: batch)
            var value: Float = 0
            let points = predictions(network, input: input, config: config, keypoints: k,
                                     flippedPosition: loader.pipeline.flippedPosition) { output in
                value = target.withUnsafeBufferPointer { loss.forward(output, $0.baseAddress!) }
            }
            return (Double(value), { points[$0] })
        }
    }

    /// Scores any predictor over `loader` (each sample once across ranks). `predict` returns the
    /// batch's loss (nil when it has none) and each sample's normalised keypoints.
    public static func score(loader: BatchLoader, normalisingPair: (Int, Int)?, communicator: Communicator, epoch: Int = 0,
                             keepImages: Bool = false,
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
        try communicator.allreduce(&sums, op: .sum)
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

    /// Copies a batch's images into `input` ([count, 1, H, W]) and runs the network.
    public static func forward(_ network: Network, _ batch: Batch, into input: Tensor) -> Tensor {
        load(batch, into: input)
        return network.forward(input)
    }

    /// Copies a batch's images into `input` ([count, 1, H, W]).
    public static func load(_ batch: Batch, into input: Tensor) {
        input.resize([batch.count, 1, batch.height, batch.width])
        batch.images.withUnsafeBufferPointer { input.data.update(from: $0.baseAddress!, count: input.count) }
    }
}
