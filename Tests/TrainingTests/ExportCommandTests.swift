import Checkpoints
import Engine
import FaceData
import Foundation
import Models
import TestSupport
import Training
import XCTest

/// `fkp export --format onnx` for every model in ModelSpec: onnx's checker passes and onnxruntime
/// gives the keypoints of fkp's own forward pass on the same crops within 1e-4 px
/// (Scripts/check_onnx_export.py).
final class ExportCommandTests: XCTestCase {
    let fkp = TestPaths.product("fkp").path
    /// Small sizes keep the test quick; the graph is the same at any size. A model missing here
    /// is tested at its standard size.
    static let smallSizes: [String: [String]] = [
        "resnet18": ["--input-size", "64", "--width", "8"], "resnet34": ["--input-size", "64", "--width", "8"],
        "resnet50": ["--input-size", "64", "--width", "8"], "mobilenet-pfld": ["--input-size", "64"],
        "unet": ["--input-size", "32", "--width", "4"], "mobilenet-pip": ["--input-size", "64", "--width", "8"],
    ]

    func testEveryModelExportsAndOnnxruntimeAgreesWithFkp() throws {
        for spec in ModelSpec.all { try checkExport(spec.name, Self.smallSizes[spec.name] ?? []) }
    }

    /// Trains 32 steps (BatchNorm's running statistics then describe the activations, and the
    /// keypoints come out near the face, as a trained model's do), exports, and compares
    /// onnxruntime with fkp's forward pass on three face crops.
    func checkExport(_ model: String, _ size: [String]) throws {
        let dir = TestPaths.temporaryDirectory("export-\(model)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let train = try ProcessRunner.run(fkp, ["train", "--model", model, "--data", "synthetic:32", "--batch", "8", "--epochs", "8",
                                                "--val-split", "0", "--lr", "0.003", "--threads", "1",
                                                "--quiet", "--no-pictures", "--no-tensorboard", "--out", dir.path] + size, timeout: 300)
        XCTAssertEqual(train.status, 0, "\(model): \(train.output)")
        let onnx = dir.appendingPathComponent("\(model).onnx")
        let export = try ProcessRunner.run(fkp, ["export", dir.path, "--format", "onnx", "--out", onnx.path], timeout: 120)
        XCTAssertEqual(export.status, 0, "\(model): \(export.output)")

        let checkpoint = try XCTUnwrap(CheckpointFile.list(in: dir).last, model)
        let contents = try TrainingCheckpoint.contents(of: try CheckpointFile.read(checkpoint), path: checkpoint.path)
        let network = try ModelZoo.make(contents.model, dropout: 0)
        try StateDict.load(contents.file, into: network.store)
        network.training = false
        let (n, h, w) = (3, contents.model.inputHeight, contents.model.inputWidth)
        // Faces the model has not seen, cropped and normalised as `fkp predict` does.
        let faces = try openDataset(path: "synthetic:\(n)")
        let loader = try BatchLoader(dataset: faces, sampler: DistributedSampler(count: n, seed: 99, mode: .evaluation),
                                     options: contents.preprocessing.loaderOptions(batch: n, strict: true, seed: 99), skips: SkipLog())
        loader.start(epoch: 0)
        let batch = try XCTUnwrap(try loader.next())
        let crops = Array(batch.images.prefix(n * h * w))
        let output = network.forward(Tensor(shape: [n, 1, h, w], values: crops))
        let k = contents.preprocessing.keypointCount
        let keypoints = (0 ..< n).flatMap { i in
            contents.config.head.decode(output, sample: i, keypoints: k).enumerated().map { $1 * Float($0 % 2 == 0 ? w : h) }
        }
        let inputs = dir.appendingPathComponent("crops.f32"), expected = dir.appendingPathComponent("keypoints.f32")
        try crops.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: inputs)
        try keypoints.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: expected)
        let check = try PythonScript.run("check_onnx_export.py", [onnx.path, "--checkpoint", checkpoint.path, "--inputs", inputs.path, "--expected", expected.path])
        XCTAssertEqual(check.status, 0, "\(model): \(check.output)")
        print("\(model): \(check.stdout)")
    }
}
