import ArgumentParser
import Checkpoints
import FaceData
import Foundation
import Models
import ONNXExport
import SwiftMPI
import Training

/// `fkp export`: a checkpoint as a model file that other runtimes run (ONNX).
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a checkpoint's model as an ONNX file (opset 17) for onnxruntime, OpenCV's dnn module and mobile runtimes.",
        discussion: """
            The graph takes preprocessed crops, input [batch, 1, H, W] (the checkpoint's input size, grey, \
            normalised as in training), and returns keypoints [batch, K, 2], (x, y) in crop pixels; heatmap models \
            decode by soft-argmax in the graph and also return their raw heatmaps [batch, K, H, W]. The batch is \
            dynamic and BatchNorm is folded into the convolutions. How to cut and normalise a crop (the crop rule, box \
            enlargement, detector box mapping, normalisation) is in the model's metadata_props.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case onnx }

    @Argument(help: "Checkpoint: a *.safetensors.zst file, a run folder (its latest checkpoint) or its 'latest' file.") var checkpoint: String
    @Option(help: "File format.") var format: Format = .onnx
    @Option(help: "Output file.") var out: String

    func run() throws {
        runReportingErrors {
            let path = try CheckpointFile.resolveExisting(checkpoint, communicator: MPI.world).relativePath
            let model = try TrainedModel(checkpoint: path, communicator: MPI.world)
            let spec = try ModelZoo.spec(model.network.config.name)
            try checkDecoding(model, task: spec.task, path: path)
            let data = try ONNXExport.model(model.network, task: spec.task, neighbours: model.config.pipNeighbours ?? [], metadata: try ExportMetadata.entries(model, checkpoint: path),
                                            producerVersion: "format \(CheckpointFile.formatVersion)")
            do { try data.write(to: URL(fileURLWithPath: out), options: .atomic) } catch {
                throw DataError(file: out, "cannot write: \(error.localizedDescription)")
            }
            let c = model.network.config
            print("wrote \(out): \(c.name) \(c.inputWidth)x\(c.inputHeight), \(model.keypointCount) keypoints, "
                  + "\(data.count) bytes, ONNX opset \(ONNXExport.opset)")
        }
    }

    /// The graph decodes heatmaps by a soft-argmax over the whole plane: a checkpoint whose head
    /// decodes otherwise (peak, local soft-argmax, DARK) would give other keypoints than fkp's.
    func checkDecoding(_ model: TrainedModel, task: ModelTask, path: String) throws {
        guard task == .heatmap else { return }
        let (w, h) = (model.network.config.inputWidth, model.network.config.inputHeight)
        if let head = model.config.head as? HeatmapHead, case let .softArgmax(radius) = head.decoder(width: w, height: h),
           radius >= max(w, h) { return }
        throw CheckpointFile.Failure(path: path, message: "the ONNX graph decodes heatmaps by a whole-plane soft-argmax, but this checkpoint decodes them "
            + "otherwise (heatmap loss \(model.config.heatmapLoss.rawValue), decoding \(model.config.heatmapDecoding?.rawValue ?? "auto")); "
            + "only --heatmap-loss softargmax checkpoints export")
    }
}
