import Engine
import Foundation

/// What a model is: its zoo name, output size and input size. Saved with checkpoints.
public struct ModelConfig: Codable, Equatable, Sendable {
    public var name: String
    /// Regression models: 2 × keypoints (x, y pairs). Heatmap models (U-Net): heatmap channels.
    public var outputs: Int
    public var inputHeight: Int
    public var inputWidth: Int
    /// Base channel count: U-Net's first encoder width (default 32), ResNet's stem width (default 64),
    /// mobilenet-pfld's stem width (default 8, MobileNetV2 ×0.25; every layer scales by width/32).
    /// nil for the fixed small nets.
    public var width: Int?
    /// Seeds the weight initialisation and the dropout masks.
    public var seed: UInt64

    public init(name: String, outputs: Int, inputHeight: Int, inputWidth: Int, width: Int? = nil, seed: UInt64 = 0) {
        self.name = name; self.outputs = outputs
        self.inputHeight = inputHeight; self.inputWidth = inputWidth
        self.width = width; self.seed = seed
    }
}

public enum ModelError: Error, CustomStringConvertible, Equatable {
    case unknownModel(String)
    case invalidConfig(String)

    public var description: String {
        switch self {
        case .unknownModel(let name): return "unknown model '\(name)' (known: \(ModelZoo.names.joined(separator: ", ")))"
        case .invalidConfig(let message): return "invalid model configuration: \(message)"
        }
    }
}

/// A built model: its module tree, its flat parameter store and the per-step context.
///
/// The caller owns the loss: `forward` returns the prediction, the caller computes dL/dprediction
/// and passes it to `backward`, which *adds* every parameter gradient into `store.grads` (zero them
/// between steps). Input is [N, 1, H, W] (with one channel NCHW and the engine's CNHW are the same
/// bytes). Output is [N, F] row-major, or [N, K, H, W] maps in the engine's CNHW layout, which is
/// what the head's loss and decoder read (`LandmarkHead`): nothing is transposed per step.
public final class Network {
    public let config: ModelConfig
    public let store: ParameterStore
    public let context: Context
    public let root: Module
    /// Multiply-accumulates of one forward pass for one image (convolutions and linear layers),
    /// counted from the layer shapes when the model is built. A training step costs about 3×.
    public let macsPerImage: Int
    /// The units `--recompute blocks` recomputes: the U-Net's levels (encoder to pool, the
    /// bottleneck, up-convolution to decoder), ResNet's residual blocks, MobileNetV2's feature
    /// layers, the small nets' stages.
    public let blocks: [Module]
    public var training: Bool {
        get { context.training }
        set { context.training = newValue }
    }

    init(config: ModelConfig, store: ParameterStore, root: Module, macsPerImage: Int, blocks: [Module]) {
        self.config = config
        self.store = store
        self.root = root
        self.macsPerImage = macsPerImage
        self.blocks = blocks
        context = Context(training: true, seed: config.seed)
        if !store.isAllocated { store.allocate() }
    }

    public var parameterCount: Int { store.parameterCount }

    /// Whether the blocks drop their inner activations after forward and recompute them in
    /// backward (`Recomputation`). Same results, bit for bit; less memory, one more forward.
    public var recomputesBlocks: Bool {
        get { context.recomputation != nil }
        set {
            context.recomputation = newValue ? Recomputation(blocks: blocks) : nil
            // Blocks free and allocate their buffers every step (see Tensor.mapLargeBuffers).
            if newValue { Tensor.mapLargeBuffers() }
        }
    }

    /// input [N, 1, H, W] → [N, outputs] (regression) or CNHW [N, K, H, W] (heatmaps).
    public func forward(_ input: Tensor) -> Tensor {
        checkShape(input.shape.count == 4 && input.c == 1 && input.h == config.inputHeight && input.w == config.inputWidth,
                   config.name, "input shape \(input.shape), expected [N, 1, \(config.inputHeight), \(config.inputWidth)]")
        return root(input, context)
    }

    /// gradOutput has the layout of `forward`'s result; parameter gradients accumulate into `store.grads`.
    public func backward(_ gradOutput: Tensor) {
        _ = root.gradient(gradOutput, context)
    }

    /// PyTorch's `print(model)` text, then a last line `parameters: N`.
    public func summary() -> String {
        root.summary() + "\nparameters: \(store.parameterCount)"
    }

    /// Every module of the tree, depth first (the root first).
    public func modules() -> [Module] {
        var result: [Module] = []
        func visit(_ m: Module) {
            result.append(m)
            for child in m.children { visit(child.module) }
        }
        visit(root)
        return result
    }
}
