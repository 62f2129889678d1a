import ArgumentParser

struct FKP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fkp",
        abstract: "Facial keypoint trainer: CNNs on the CPU with OpenBLAS, data-parallel over MPI.",
        subcommands: [Doctor.self, Train.self, Presets.self, Eval.self, Predict.self, CalibrateDetector.self, Export.self, DataCommand.self, Summary.self, Baseline.self,
                      Bench.self, ImportWeights.self])
}
