import Engine

/// The two small regressors: plain stacks of conv / ReLU / max-pool and linear layers.
enum SmallNets {
    /// nosenet: the nose tip (2 outputs) on grey 60×80 crops. Three 3×3 conv (padding 1) + ReLU +
    /// 2×2 max-pool stages (16, 32, 32 channels; each pool halves the image) and a 64-unit hidden
    /// layer. About 9 MMAC per image: small enough to train in seconds.
    ///   features.{0,3,6}  Conv2d   regressor.{1,3}  Linear
    static func noseNet(_ config: ModelConfig) throws -> Network {
        let (h, w) = (config.inputHeight / 8, config.inputWidth / 8)
        guard h >= 1, w >= 1 else { throw ModelError.invalidConfig("nosenet needs an input of at least 8×8, got \(config.inputHeight)×\(config.inputWidth)") }
        let store = ParameterStore()
        let rng = RandomGenerator.Box(seed: config.seed)
        var macs = 0, (ih, iw) = (config.inputHeight, config.inputWidth)
        var layers: [Module] = []
        var inC = 1
        for (i, outC) in [16, 32, 32].enumerated() {
            // Each ReLU is fused into its convolution (the module stays for the printed summary).
            layers.append(Conv2d(store, "features.\(3 * i)", inC, outC, kernel: 3, padding: 1, rng: rng, fusedReLU: true))
            layers.append(ReLU(fusedIntoPrevious: true))
            layers.append(MaxPool2d(kernel: 2, stride: 2))
            macs += ih * iw * inC * outC * 9
            (ih, iw, inC) = (ih / 2, iw / 2, outC)
        }
        let features = Sequential(layers)
        let flat = 32 * h * w
        let regressor = Sequential([
            Flatten(),
            Linear(store, "regressor.1", flat, 64, rng: rng),
            ReLU(),
            Linear(store, "regressor.3", 64, config.outputs, rng: rng),
        ])
        macs += flat * 64 + 64 * config.outputs
        let root = Sequential(typeName: "NoseNet", named: [("features", features), ("regressor", regressor)])
        skipInputGradient(root)
        // The stages (Sequentials) are the blocks; a lone Linear would only be copied.
        return Network(config: config, store: store, root: root, macsPerImage: macs, blocks: root.layers.filter { $0 is Sequential })
    }

    /// facenet: 58 keypoints (116 outputs) on grey 120×160 faces; 649,828 parameters at that size.
    ///   l1 = [Conv2d(1,16,3,s2), ReLU]           l2 = [Conv2d(16,16,3,s2), ReLU, MaxPool2d(2,2)]
    ///   l3 = [Conv2d(16,32,3), ReLU]             l4 = [Conv2d(32,32,3), ReLU, MaxPool2d(2,2)]
    ///   fc0 = [Flatten, Dropout(0.5), Linear(1120,512), ReLU]   fc1 = Linear(512,116)
    static func faceNet(_ config: ModelConfig, dropout: Float) throws -> Network {
        func size(_ n: Int) -> Int {
            let a = windowOutput(n, kernel: 3, stride: 2), b = windowOutput(a, kernel: 3, stride: 2)
            return (b / 2 - 4) / 2
        }
        let (h, w) = (size(config.inputHeight), size(config.inputWidth))
        guard h >= 1, w >= 1 else { throw ModelError.invalidConfig("facenet needs an input of at least 49×49, got \(config.inputHeight)×\(config.inputWidth)") }
        let store = ParameterStore()
        let rng = RandomGenerator.Box(seed: config.seed)
        let h1 = windowOutput(config.inputHeight, kernel: 3, stride: 2), w1 = windowOutput(config.inputWidth, kernel: 3, stride: 2)
        let h2 = windowOutput(h1, kernel: 3, stride: 2), w2 = windowOutput(w1, kernel: 3, stride: 2)
        let (h3, w3) = (h2 / 2 - 2, w2 / 2 - 2), (h4, w4) = (h2 / 2 - 4, w2 / 2 - 4)
        let flat = 32 * h * w
        let macs = h1 * w1 * 16 * 9 + h2 * w2 * 16 * 16 * 9 + h3 * w3 * 16 * 32 * 9 + h4 * w4 * 32 * 32 * 9
            + flat * 512 + 512 * config.outputs
        // The convolutions' ReLUs are fused into them (the modules stay for the printed summary).
        let relu = { ReLU(fusedIntoPrevious: true) }
        let l1 = Sequential([Conv2d(store, "l1.0", 1, 16, kernel: 3, stride: 2, rng: rng, fusedReLU: true), relu()])
        let l2 = Sequential([Conv2d(store, "l2.0", 16, 16, kernel: 3, stride: 2, rng: rng, fusedReLU: true), relu(),
                             MaxPool2d(kernel: 2, stride: 2)])
        let l3 = Sequential([Conv2d(store, "l3.0", 16, 32, kernel: 3, rng: rng, fusedReLU: true), relu()])
        let l4 = Sequential([Conv2d(store, "l4.0", 32, 32, kernel: 3, rng: rng, fusedReLU: true), relu(),
                             MaxPool2d(kernel: 2, stride: 2)])
        let fc0 = Sequential([Flatten(), Dropout(p: dropout), Linear(store, "fc0.2", flat, 512, rng: rng), ReLU()])
        let fc1 = Linear(store, "fc1", 512, config.outputs, rng: rng)
        let root = Sequential(typeName: "FaceNet", named: [("l1", l1), ("l2", l2), ("l3", l3), ("l4", l4), ("fc0", fc0), ("fc1", fc1)])
        skipInputGradient(root)
        // The stages (Sequentials) are the blocks; a lone Linear would only be copied.
        return Network(config: config, store: store, root: root, macsPerImage: macs, blocks: root.layers.filter { $0 is Sequential })
    }
}
