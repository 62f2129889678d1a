import Checkpoints
import Engine
import Foundation
import Models
import TestSupport
import Training
import XCTest

final class ImportWeightsTests: XCTestCase {
    /// A torchvision-layout ResNet-18 state dict (RGB conv1, 1000-class fc) with random values is
    /// imported: conv1 is folded to grey by summing, the fc is dropped, everything else is copied,
    /// and `fkp train --init` starts from exactly those weights.
    func testTorchvisionLayoutImportsAndInitialisesTraining() throws {
        let dir = TestPaths.temporaryDirectory("import")
        defer { try? FileManager.default.removeItem(at: dir) }
        let reference = try ModelZoo.make(ModelZoo.defaultConfig("resnet18", keypoints: 68))
        var rng = RandomGenerator(seed: 11)
        var source = SafeTensors()
        var rgbConv1: [Float] = []
        for info in reference.store.parameters + reference.store.buffers {
            var shape = info.shape
            if info.name == "conv1.weight" { shape[1] = 3 }
            if info.name == "fc.weight" { shape = [1000, 512] }
            if info.name == "fc.bias" { shape = [1000] }
            if info.name.hasSuffix("num_batches_tracked") { source.add(info.name, shape: shape, int64s: [5]); continue }
            let values = (0 ..< shape.reduce(1, *)).map { _ in rng.uniform(0.5, 1.5) }
            if info.name == "conv1.weight" { rgbConv1 = values }
            values.withUnsafeBufferPointer { source.add(info.name, shape: shape, floats: $0) }
        }
        let input = dir.appendingPathComponent("resnet18.safetensors")
        try Data(try source.serialized()).write(to: input)
        let imported = dir.appendingPathComponent("resnet18-grey.safetensors.zst")
        let r = try ProcessRunner.run(TestPaths.product("fkp").path, ["import-weights", input.path, "--model", "resnet18", "--out", imported.path])
        XCTAssertEqual(r.status, 0, r.output)
        let out = try CheckpointFile.read(imported)
        XCTAssertNil(out.entries["fc.weight"])
        XCTAssertEqual(out.entries["conv1.weight"]?.shape, [64, 1, 7, 7])
        let grey = out.floats("conv1.weight")!
        for o in [0, 17, 63] {
            for i in [0, 24, 48] {
                let expected = (0 ..< 3).map { rgbConv1[(o * 3 + $0) * 49 + i] }.reduce(0, +)
                XCTAssertEqual(grey[o * 49 + i], expected, accuracy: 1e-5)
            }
        }
        XCTAssertEqual(out.floats("layer2.0.downsample.1.running_var"), source.floats("layer2.0.downsample.1.running_var"))

        // Training from it: with a learning rate of ~0 the weights stay the imported ones.
        let run = dir.appendingPathComponent("run")
        let t = try ProcessRunner.run(TestPaths.product("fkp").path, [
            "train", "--model", "resnet18", "--init", imported.path, "--input-size", "64x64", "--data", "synthetic:16",
            "--batch", "4", "--epochs", "1", "--steps-per-epoch", "1", "--lr", "1e-12", "--weight-decay", "0",
            "--quiet", "--no-pictures", "--threads", "1", "--out", run.path])
        XCTAssertEqual(t.status, 0, t.output)
        let trained = try CheckpointFile.read(CheckpointFile.list(in: run).last!)
        for name in ["conv1.weight", "layer3.1.conv2.weight", "layer4.1.bn2.bias"] {
            let a = trained.floats(name)!, b = out.floats(name)!
            XCTAssertLessThan(zip(a, b).map { abs($0 - $1) }.max()!, 1e-5, name)
        }
    }
}
