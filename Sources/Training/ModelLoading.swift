import Checkpoints
import Engine
import FaceData
import Foundation
import Models
import SwiftMPI

/// A trained model restored from a checkpoint, with the preprocessing it was trained with.
public final class TrainedModel {
    public let network: Network
    public let config: TrainConfig
    public let preprocessing: Preprocessing
    public let markup: KeypointMarkup
    /// Detector box → training box convention (`fkp calibrate-detector`); nil when never calibrated.
    public let detectorBoxMapping: DetectorBoxMapping?

    /// Reads `path` (rank 0 reads and broadcasts) and rebuilds the network in evaluation mode.
    public init(checkpoint path: String, communicator: Communicator) throws {
        let state = try TrainingCheckpoint.readBroadcast(URL(fileURLWithPath: path), communicator: communicator)
        config = state.config
        preprocessing = state.preprocessing
        markup = state.preprocessing.keypointMarkup
        detectorBoxMapping = try TrainingCheckpoint.detectorBoxMapping(in: state.file, path: path)
        do { network = try ModelZoo.make(state.model, dropout: 0) } catch { throw CheckpointFile.Failure(path: path, message: "\(error)") }
        do {
            try StateDict.load(state.file, into: network.store)
            // Trained with --ema: predict with the moving average, as validation did.
            if config.emaDecay != nil {
                try StateDict.load(state.file, into: network.store, prefix: WeightAverage.checkpointPrefix, strict: false)
            }
        } catch { throw CheckpointFile.Failure(path: path, message: "\(error)") }
        network.training = false
    }

    /// Loader options for evaluating on another dataset with this model's preprocessing (and the
    /// head's targets, for the loss).
    public func loaderOptions(batch: Int, strict: Bool) -> LoaderOptions {
        var options = preprocessing.loaderOptions(batch: batch, strict: strict, seed: config.seed)
        config.head.requestTargets(&options)
        return options
    }

    /// The NME pair in the model's keypoint indices.
    public var normalisingPair: (Int, Int)? { markup.normalisingPair(subset: config.keypoints) }

    public var keypointCount: Int { preprocessing.keypointCount }

    /// Keypoints (original image pixels, interleaved x, y) of one face; `box` nil = the whole image.
    public func predict(image: GreyImage, box: Box?, source: String) throws -> [Float] {
        let pipeline = try SamplePipeline(markup: markup, options: preprocessing.loaderOptions(batch: 1, strict: true, seed: config.seed))
        let record = FaceRecord(image: image, keypoints: [Float](repeating: 0, count: 2 * markup.count), box: box, source: source)
        // The loader's own `prepare` writes the input: the same crop and normalisation as training.
        let input = Tensor(shape: [1, 1, preprocessing.inputHeight, preprocessing.inputWidth])
        var unusedTargets = [Float](repeating: 0, count: 2 * pipeline.keypointCount)
        let info = unusedTargets.withUnsafeMutableBufferPointer {
            pipeline.prepare(record, index: 0, augmentation: .identity, image: input.data, keypoints: $0.baseAddress!, heatmaps: nil)
        }
        let output = network.forward(input)
        let normalised = config.head.decode(output, sample: 0, keypoints: keypointCount)
        return pipeline.sourceKeypoints(normalised: normalised, info: info)
    }
}
