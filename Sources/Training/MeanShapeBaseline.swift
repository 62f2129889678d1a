import FaceData
import Foundation
import SwiftMPI

/// The mean-shape baseline: predict, for every face, the average training keypoints (in crop
/// coordinates, so it follows each face's box). A model that does not beat it has learned
/// nothing about the face in front of it.
public enum MeanShapeBaseline {
    /// Scores the baseline on the validation split of `config` (same split as training).
    public static func evaluate(config: TrainConfig, communicator: Communicator) throws -> (EvaluationResult, trainFaces: Int) {
        var plain = config
        plain.augment = false
        let data = try TrainingData(config: plain, rank: communicator.rank, worldSize: communicator.size,
                                    strict: false, threads: 1, cacheBytes: 0)
        guard let validation = data.validationLoader else { throw TrainingFailure("the mean-shape baseline needs a validation split (--val-split > 0)") }
        let mean = try meanKeypoints(data.trainLoader, communicator: communicator)
        let pair = data.markup.normalisingPair(subset: config.keypoints)
        let result = try Evaluator.score(loader: validation, normalisingPair: pair, communicator: communicator) { _ in
            (nil, { _ in mean })
        }
        return (result, data.train.count)
    }

    /// The mean of `loader`'s epoch-0 keypoints (normalised to the crop) over every rank's shard.
    public static func meanKeypoints(_ loader: BatchLoader, communicator: Communicator) throws -> [Float] {
        let k = loader.pipeline.keypointCount
        // Mean over this rank's training shard, then over all ranks (equal shard sizes).
        var sums = [Double](repeating: 0, count: 2 * k + 1)
        loader.start(epoch: 0)
        while let batch = try loader.next() {
            for i in 0 ..< batch.count {
                for j in 0 ..< 2 * k { sums[j] += Double(batch.keypoints[i * 2 * k + j]) }
                sums[2 * k] += 1
            }
        }
        try communicator.allreduce(&sums, op: .sum)
        return (0 ..< 2 * k).map { Float(sums[$0] / max(sums[2 * k], 1)) }
    }
}
