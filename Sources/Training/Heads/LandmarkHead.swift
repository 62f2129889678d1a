import Engine
import FaceData
import Foundation
import Models

/// What a network's output means: its layout, the training target the loader renders for it, the
/// loss between the two, and how the output becomes keypoints. The trainer, evaluation, predict
/// and the pictures ask the head and never branch on the kind of model; a new kind of output is a
/// new head type here plus its `ModelSpec` entry.
///
/// Keypoints leave a head normalised to the crop (x / width, y / height, the layout of
/// `Batch.keypoints`), so scoring, the flip test's mirror mapping (`FlipTest`) and the map back
/// to the source image are the same for every head.
public protocol LandmarkHead {
    /// Asks the loader for this head's training target (e.g. one heatmap per keypoint).
    func requestTargets(_ options: inout LoaderOptions)
    /// A new loss object (a loss keeps its gradient buffer, so each user makes its own).
    func makeLoss() -> Loss
    /// The batch's target, in the layout of the network's output.
    func target(of batch: Batch) -> [Float]
    /// Sample `i`'s `keypoints` points of a batch output, normalised to the crop.
    func decode(_ output: Tensor, sample i: Int, keypoints: Int) -> [Float]
    /// The head's settings for the run's configuration printout ("" when it has none).
    var settings: String { get }
    /// Pictures of what the head predicts for one crop, written after training (none by default).
    func pictures(network: Network, crop: GreyImage, normalisation: PixelNormalisation, to directory: URL) throws
    /// Fails with a message for the user when `config` sets an option this head does not use.
    func check(_ config: TrainConfig) throws
}

extension LandmarkHead {
    public var settings: String { "" }
    public func pictures(network: Network, crop: GreyImage, normalisation: PixelNormalisation, to directory: URL) throws {}
    public func check(_ config: TrainConfig) throws {}

    /// The loss of `output` against `batch`'s target; `loss.gradient` is dLoss/dOutput afterwards.
    public func loss(_ loss: Loss, of output: Tensor, against batch: Batch) -> Float {
        target(of: batch).withUnsafeBufferPointer { loss.forward(output, $0.baseAddress!) }
    }
}

extension TrainConfig {
    /// This run's head: the one place where the model's kind of output (`ModelSpec.task`) picks
    /// the head type.
    public var head: LandmarkHead {
        switch task {
        case .regression: CoordinateHead(loss: regressionLoss ?? .mse)
        case .heatmap: HeatmapHead(sigma: heatmapSigma, loss: heatmapLoss, decoding: heatmapDecoding ?? .auto)
        case .pip: PIPHead(neighbours: pipNeighbours ?? [])
        }
    }
}
