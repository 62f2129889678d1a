import Engine
import FaceData
import Foundation
import Models

/// One heatmap per keypoint at the input resolution (the U-Net), trained against Gaussian targets
/// of σ `sigma` input pixels. Output and target are both in the engine's CNHW layout, shape
/// [N, K, H, W] with plane (n, k) at (k·N + n)·H·W: the loader renders the targets there, so
/// nothing is transposed per step.
public struct HeatmapHead: LandmarkHead {
    public let sigma: Float
    public let loss: TrainConfig.HeatmapLoss
    public let decoding: TrainConfig.HeatmapDecoding

    public init(sigma: Float, loss: TrainConfig.HeatmapLoss, decoding: TrainConfig.HeatmapDecoding) {
        self.sigma = sigma
        self.loss = loss
        self.decoding = decoding
    }

    public func requestTargets(_ options: inout LoaderOptions) {
        options.heatmapSize = (options.width, options.height)
        options.heatmapSigma = sigma
    }

    public func makeLoss() -> Loss {
        switch loss {
        case .mse: HeatmapMSELoss(positiveWeight: 10)
        case .softmaxCE: SpatialSoftmaxCrossEntropy()
        case .softargmax: SoftArgmaxHeatmapLoss(sigma: sigma)
        }
    }

    public func target(of batch: Batch) -> [Float] { batch.heatmaps }

    // output CNHW [N, K, H, W] → sample i's K planes, a stride of N planes apart
    public func decode(_ output: Tensor, sample i: Int, keypoints: Int) -> [Float] {
        // Heatmaps are rendered at the input size, so heatmap and crop pixels coincide.
        let (h, w) = (output.h, output.w)
        return Heatmaps.decodeNormalised(output.data + i * h * w, count: keypoints, planeStride: output.n * h * w,
                                         width: w, height: h, cropWidth: w, cropHeight: h,
                                         decoding: decoder(width: w, height: h))
    }

    /// The decoder for maps of width × height that this loss produces.
    public func decoder(width: Int, height: Int) -> Heatmaps.Decoding {
        switch (decoding, loss) {
        // σ of the training targets: smoothing with it keeps a Gaussian Gaussian (σ√2), the case
        // DARK's Taylor step is exact for.
        case (.dark, let loss): .dark(blurSigma: sigma, logits: loss.producesLogits)
        case (.auto, .mse): .peak
        // Softmax-trained maps are logits: the soft-argmax the loss trained (whole plane), or for
        // cross-entropy alone a local one over ±3σ around the peak.
        case (.auto, .softmaxCE): .softArgmax(radius: max(1, Int((3 * sigma).rounded(.up))))
        case (.auto, .softargmax): .softArgmax(radius: max(width, height))
        }
    }

    public var settings: String { " sigma \(sigma) loss \(loss)" }

    public func check(_ config: TrainConfig) throws {
        if config.regressionLoss != nil {
            throw TrainingFailure("--loss is for regression models; \(config.model) trains heatmaps (see --heatmap-loss)")
        }
    }

    public func pictures(network: Network, crop: GreyImage, normalisation: PixelNormalisation, to directory: URL) throws {
        try Pictures.heatmaps(network: network, crop: crop, normalisation: normalisation, logits: loss.producesLogits, to: directory)
    }
}
