import FaceData
import Foundation
import Models

// `Preprocessing` (declared with the checkpoint format) is the single description of how a face
// becomes model input: built once from the run's configuration and the dataset's markup, saved in
// every checkpoint, and read back by the loaders, evaluation, pictures and predict.
extension Preprocessing {
    public init(config: TrainConfig, markup: KeypointMarkup) {
        let normalisation = PixelNormalisation.standard
        self.init(inputWidth: config.inputWidth, inputHeight: config.inputHeight, cropEnlargement: config.cropEnlargement,
                  mean: normalisation.mean, std: normalisation.std,
                  markup: markup.name, markupCount: markup.count, keypoints: config.keypoints,
                  flipPermutation: markup.flipPermutation, normalisingPair: markup.normalisingPair.map { [$0.0, $0.1] },
                  task: config.task, heatmapSigma: config.heatmapSigma)
    }

    public var normalisation: PixelNormalisation { PixelNormalisation(mean: mean, std: std) }

    /// The keypoint markup the model was trained on (names, mirror pairs, NME pair).
    public var keypointMarkup: KeypointMarkup {
        KeypointMarkup(name: markup, count: markupCount, flipPermutation: flipPermutation,
                       normalisingPair: normalisingPair.map { ($0[0], $0[1]) })
    }

    /// Keypoints the model predicts (the subset, or the whole markup).
    public var keypointCount: Int { keypoints?.count ?? markupCount }

    /// Loader options that produce exactly this preprocessing (augmentation off; the trainer turns
    /// it on for its training loader). Training targets beyond the keypoints are the head's to ask
    /// for (`LandmarkHead.requestTargets`).
    public func loaderOptions(batch: Int, strict: Bool, seed: UInt64) -> LoaderOptions {
        var o = LoaderOptions()
        o.width = inputWidth
        o.height = inputHeight
        o.batchSize = batch
        o.keypointSubset = keypoints
        o.enlargement = cropEnlargement
        o.normalisation = normalisation
        o.strict = strict
        o.seed = seed
        return o
    }
}
