import Engine
import FaceData

/// Direct regression: the network outputs [N, 2K], each sample's x, y pairs normalised to the
/// crop, which is also the target's layout (`Batch.keypoints`). MSE loss as the write-up trains,
/// or L1 / Wing (`--loss`).
public struct CoordinateHead: LandmarkHead {
    public let loss: TrainConfig.RegressionLoss

    public init(loss: TrainConfig.RegressionLoss = .mse) { self.loss = loss }

    public func requestTargets(_ options: inout LoaderOptions) {}

    public func makeLoss() -> Loss { loss.makeLoss() }

    public var settings: String { loss == .mse ? "" : " loss \(loss.rawValue)" }

    public func target(of batch: Batch) -> [Float] { batch.keypoints }

    // output [N, 2K] → sample i's 2K values
    public func decode(_ output: Tensor, sample i: Int, keypoints: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: output.data + i * 2 * keypoints, count: 2 * keypoints))
    }
}
