import ArgumentParser
import Foundation
import SwiftMPI
import Training

struct Baseline: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score the mean-shape baseline on a preset's validation split (the bar every model must clear).")

    @Option(help: "Preset whose data split and crop to use.") var preset = "default"
    @Option(help: "Dataset path (default: the preset's).") var data: String?
    @Option(help: "Seed of the split (default: the preset's).") var seed: UInt64?

    func run() throws {
        runReportingErrors {
            guard var config = Preset.named(preset)?.config else { throw ValidationError("unknown preset '\(preset)'") }
            if let data { config.data = data }
            if let seed { config.seed = seed }
            let world = MPI.world
            let (result, trainFaces) = try MeanShapeBaseline.evaluate(config: config, communicator: world)
            guard world.rank == 0 else { return }
            let m = result.metrics
            print("mean shape of \(trainFaces) training faces, scored on \(m.images) validation faces (\(preset) split)")
            print(String(format: "mean pixel error: %.3f", m.meanPixelError))
            print(String(format: "nme: %.5f", m.nme))
            print(String(format: "failure rate@%.2f: %.4f", m.threshold, m.failureRate))
            print(String(format: "auc@%.2f: %.4f", m.threshold, m.auc))
        }
    }
}
