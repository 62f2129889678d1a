import ArgumentParser
import Checkpoints
import Engine
import Foundation
import Models
import SwiftMPI
import Training

struct ImportWeights: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-weights",
        abstract: "Convert torchvision ResNet weights (safetensors, from Scripts/export_torchvision_resnet.py) for `fkp train --init`.",
        discussion: "conv1's RGB kernels are folded to one grey channel by summing them; the 1000-class fc is dropped.")

    @Argument(help: "torchvision state_dict saved as .safetensors.") var input: String
    @Option(help: "Model the weights are for.") var model = "resnet50"
    @Option(help: "Output file (*.safetensors.zst).") var out: String

    func run() throws {
        runReportingErrors {
            let source: SafeTensors
            do { source = try SafeTensors(parsing: [UInt8](try Data(contentsOf: URL(fileURLWithPath: input)))) } catch {
                throw ValidationError("\(input): \(error)")
            }
            let network = try ModelZoo.make(ModelZoo.defaultConfig(model, keypoints: 68))
            var converted = SafeTensors(metadata: ["format": "fkp-weights", "model_name": model, "source": URL(fileURLWithPath: input).lastPathComponent])
            let summary = try WeightImport.convert(source, for: network.store, into: &converted)
            try CheckpointFile.write(converted, to: URL(fileURLWithPath: out))
            print("imported \(summary.loaded) tensors (\(summary.folded) folded to grey, skipped: \(summary.skipped.joined(separator: ", "))) -> \(out)")
        }
    }
}
