import ArgumentParser
import Models

/// `fkp summary --model NAME [--outputs N]`: prints the model as PyTorch's `print(model)` does,
/// then `parameters: N`.
struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary",
        abstract: "Print a model's layers (PyTorch module repr) and its parameter count.")

    @Option(help: "Model name: \(ModelZoo.names.joined(separator: ", ")).")
    var model: String

    @Option(help: "Outputs (regression: 2 × keypoints; unet: heatmap channels). Default: the model's standard keypoints.")
    var outputs: Int?

    @Option(help: "Input height (default: the model's standard size).")
    var height: Int?

    @Option(help: "Input width (default: the model's standard size).")
    var width: Int?

    @Option(help: "Base channel count (ResNet stem, U-Net first encoder).")
    var baseWidth: Int?

    func run() throws {
        let network = try buildNetwork(model: model, outputs: outputs, height: height, width: width, baseWidth: baseWidth)
        print(network.summary())
    }
}

/// Builds a zoo model from command-line options; bad names or sizes become one-line errors.
func buildNetwork(model: String, outputs: Int?, height: Int?, width: Int?, baseWidth: Int?, seed: UInt64 = 0) throws -> Network {
    do {
        var config = try ModelZoo.defaultConfig(model, keypoints: ModelZoo.defaultKeypoints(model))
        if let outputs { config.outputs = outputs }
        if let height { config.inputHeight = height }
        if let width { config.inputWidth = width }
        if let baseWidth { config.width = baseWidth }
        config.seed = seed
        return try ModelZoo.make(config)
    } catch let error as ModelError {
        throw ValidationError(error.description)
    }
}
