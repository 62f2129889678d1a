import Engine
import FaceData

/// Direct regression: the network outputs [N, 2K], each sample's x, y pairs normalised to the
/// crop, which is also the target's layout (`Batch.keypoints`). MSE loss, as the write-up trains.
public struct CoordinateHead: LandmarkHead {
    public init() {}

    public func requestTargets(_ options: inout LoaderOptions) {}

    public func makeLoss() -> Loss { MSELoss() }

    public func target(of batch: Batch) -> [Float] { batch.keypoints }

    // output [N, 2K] → sample i's 2K values
    public func decode(_ output: Tensor, sample i: Int, keypoints: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: output.data + i * 2 * keypoints, count: 2 * keypoints))
    }
}
