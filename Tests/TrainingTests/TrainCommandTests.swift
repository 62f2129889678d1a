import Checkpoints
import Foundation
import Models
import TestSupport
import Training
import XCTest

/// End-to-end runs of the built `fkp` binary on small synthetic data: one rank, two ranks under
/// mpirun, exact resume, the data-parallel math, and rejection of bad checkpoints.
final class TrainCommandTests: XCTestCase {
    let fkp = TestPaths.product("fkp").path
    /// A short, deterministic run: no augmentation noise needed for what these tests check.
    let quick = ["--data", "synthetic:96", "--batch", "8", "--epochs", "2", "--steps-per-epoch", "3",
                 "--threads", "1", "--quiet", "--no-pictures"]

    func run(_ args: [String], timeout: TimeInterval = 240) throws -> ProcessResult {
        try ProcessRunner.run(fkp, args, timeout: timeout)
    }

    func checkpoints(_ dir: URL) -> [URL] { CheckpointFile.list(in: dir) }

    /// One short single-rank run (with pictures) shared by the tests that need a trained
    /// checkpoint: trained by the first of them, removed after the class.
    nonisolated(unsafe) static var sharedRun: (dir: URL, result: ProcessResult)?

    func singleRankRun() throws -> (dir: URL, result: ProcessResult) {
        if let run = Self.sharedRun { return run }
        let dir = TestPaths.temporaryDirectory("train1")
        let r = try run(["train", "--data", "synthetic:64", "--batch", "8", "--epochs", "2", "--steps-per-epoch", "3",
                         "--out", dir.path, "--threads", "1", "--keep", "1"])
        Self.sharedRun = (dir, r)
        return (dir, r)
    }

    /// The shared run's checkpoint (fails the calling test when the run failed).
    func trainedCheckpoint() throws -> URL {
        let (dir, r) = try singleRankRun()
        XCTAssertEqual(r.status, 0, r.output)
        return try XCTUnwrap(checkpoints(dir).last, "the shared run wrote no checkpoint: \(r.output)")
    }

    override class func tearDown() {
        if let dir = sharedRun?.dir { try? FileManager.default.removeItem(at: dir) }
        sharedRun = nil
        super.tearDown()
    }

    func testSingleRankRunWritesCheckpointsMetricsAndPictures() throws {
        let (dir, r) = try singleRankRun()
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(checkpoints(dir).map(\.lastPathComponent), [CheckpointFile.name(step: 6)])
        XCTAssertEqual(try String(contentsOf: dir.appendingPathComponent("latest"), encoding: .utf8),
                       CheckpointFile.name(step: 6) + "\n")
        let lines = try String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            for key in ["epoch", "step", "train_loss", "val_loss", "images_per_s", "lr"] { XCTAssertNotNil(object[key], "\(key) in \(line)") }
        }
        for picture in ["training_samples.png", "loss_curves.png", "predictions_best.png", "predictions_worst.png", "first_layer_filters.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(picture).path), picture)
        }
        // The checkpoint carries everything eval and predict need.
        let file = try CheckpointFile.read(checkpoints(dir)[0])
        let contents = try TrainingCheckpoint.contents(of: file, path: "x")
        XCTAssertEqual(contents.model.name, "facenet")
        XCTAssertEqual(contents.preprocessing.markupCount, 68)
        XCTAssertEqual(contents.position.step, 6)
        XCTAssertNotNil(file.entries["l1.0.weight"])
        XCTAssertNotNil(file.entries["optimizer.exp_avg.fc1.weight"])
    }

    /// PyTorch reads the checkpoint (zstd -d + safetensors.torch.load_file) and load_state_dict
    /// accepts every tensor under its own names, strictly.
    func testCheckpointLoadsIntoPyTorch() throws {
        let r = try PythonScript.run("load_checkpoint_in_pytorch.py", [try trainedCheckpoint().path], timeout: 200)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stdout.contains("loaded 12 tensors into FaceNet"), r.output)
        XCTAssertTrue(r.stdout.contains("optimizer tensors: 24"), r.output)
    }

    /// TensorBoard's own reader (EventAccumulator) reads the run's event file: every metrics.jsonl
    /// value as a scalar at its step, the loss and learning rate of every step, the pictures.
    func testTensorBoardReadsTheRunsMetrics() throws {
        let (dir, r) = try singleRankRun()
        XCTAssertEqual(r.status, 0, r.output)
        let check = try PythonScript.run("check_tensorboard_events.py",
                                         [dir.path, "--images", "predictions_best,predictions_worst,loss_curves"])
        XCTAssertEqual(check.status, 0, check.output)
        XCTAssertTrue(check.stdout.contains("16 epoch scalars in 8 tags equal metrics.jsonl (2 epochs); 6 steps"), check.output)
    }

    func eventFiles(_ dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.contains("tfevents") }
    }

    func testTwoRanksUnderMpirun() throws {
        let dir = TestPaths.temporaryDirectory("train2")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try ProcessRunner.mpirun(ranks: 2, product: "fkp", ["train"] + quick.filter { $0 != "--quiet" } + ["--out", dir.path])
        XCTAssertEqual(r.status, 0, r.output)
        // Both ranks on one node: shared memory needs no progress thread (ClusterTests: across hosts).
        XCTAssert(r.output.contains("gradient buckets 25 MB; out"), r.output)
        XCTAssertEqual(checkpoints(dir).last?.lastPathComponent, CheckpointFile.name(step: 6))
        let contents = try TrainingCheckpoint.contents(of: try CheckpointFile.read(checkpoints(dir).last!), path: "x")
        XCTAssertEqual(contents.position.worldSize, 2)
        XCTAssertEqual(contents.position.randomStates.count, 2)
        XCTAssertEqual(contents.file.metadata["global_batch"], "16")
        XCTAssertEqual(eventFiles(dir).count, 1, "rank 0 alone writes TensorBoard events")
    }

    /// 2 ranks × batch B take the same optimizer steps as 1 rank × batch 2B (FaceNet has no
    /// BatchNorm; dropout off): every parameter agrees within float tolerance.
    func testDataParallelMatchesOneRankWithTheGlobalBatch() throws {
        let one = TestPaths.temporaryDirectory("ddp1"), two = TestPaths.temporaryDirectory("ddp2")
        defer { try? FileManager.default.removeItem(at: one); try? FileManager.default.removeItem(at: two) }
        let common = ["train", "--data", "synthetic:64", "--epochs", "1", "--steps-per-epoch", "4", "--no-augment",
                      "--no-dropout", "--val-split", "0", "--threads", "1", "--quiet", "--no-pictures", "--schedule", "constant",
                      "--no-tensorboard"]
        let r1 = try run(common + ["--batch", "8", "--out", one.path])
        XCTAssertEqual(r1.status, 0, r1.output)
        let r2 = try ProcessRunner.mpirun(ranks: 2, product: "fkp", common + ["--batch", "4", "--out", two.path])
        XCTAssertEqual(r2.status, 0, r2.output)
        XCTAssertEqual(eventFiles(one) + eventFiles(two), [], "--no-tensorboard")
        let a = try CheckpointFile.read(checkpoints(one).last!), b = try CheckpointFile.read(checkpoints(two).last!)
        var maxDiff: Float = 0, maxValue: Float = 0
        for name in a.order where !name.hasPrefix("optimizer.") {
            let x = a.floats(name)!, y = b.floats(name)!
            XCTAssertEqual(x.count, y.count, name)
            for (u, v) in zip(x, y) { maxDiff = max(maxDiff, abs(u - v)); maxValue = max(maxValue, abs(u)) }
        }
        XCTAssertLessThan(maxDiff, 1e-5 * max(1, maxValue), "max |Δparameter| \(maxDiff)")
        // And it did train: every parameter moved away from the initialisation, which the model
        // configuration stored in the checkpoint rebuilds exactly (weights drawn from its seed).
        let initial = try ModelZoo.make(try TrainingCheckpoint.contents(of: a, path: "ddp1").model)
        XCTAssertEqual(initial.store.parameters.count, 12)
        for parameter in initial.store.parameters {
            let start = try XCTUnwrap(initial.store.array(named: parameter.name)), end = try XCTUnwrap(a.floats(parameter.name))
            XCTAssertEqual(start.count, end.count, parameter.name)
            let moved = zip(start, end).map { abs($0 - $1) }.max() ?? 0
            XCTAssertGreaterThan(moved, 1e-4, "\(parameter.name) did not move from its initial values")
        }
    }

    /// Training N steps straight equals training k steps, stopping, and resuming to N: the same
    /// per-epoch losses and bit-identical weights and optimizer state.
    func testResumeIsBitExact() throws {
        let straight = TestPaths.temporaryDirectory("straight"), resumed = TestPaths.temporaryDirectory("resumed")
        defer { try? FileManager.default.removeItem(at: straight); try? FileManager.default.removeItem(at: resumed) }
        // Augmentation and dropout on: their randomness must resume exactly too.
        let common = ["train", "--data", "synthetic:96", "--batch", "8", "--epochs", "2", "--steps-per-epoch", "5",
                      "--threads", "1", "--quiet", "--no-pictures", "--checkpoint-every", "2", "--keep", "10"]
        XCTAssertEqual(try run(common + ["--out", straight.path]).status, 0)
        let stopped = try run(common + ["--out", resumed.path, "--stop-after-steps", "7"])
        XCTAssertEqual(stopped.status, 0, stopped.output)
        XCTAssertEqual(checkpoints(resumed).last?.lastPathComponent, CheckpointFile.name(step: 6))
        let again = try run(common + ["--out", resumed.path, "--resume", "auto"])
        XCTAssertEqual(again.status, 0, again.output)

        let metricsA = try String(contentsOf: straight.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        let metricsB = try String(contentsOf: resumed.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        func losses(_ text: String) -> [String] {
            text.split(separator: "\n").map { line in
                let o = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return "\(o["train_loss"]!) \(o["val_loss"]!)"
            }
        }
        XCTAssertEqual(losses(metricsA), losses(metricsB))
        let a = try CheckpointFile.read(checkpoints(straight).last!), b = try CheckpointFile.read(checkpoints(resumed).last!)
        XCTAssertEqual(a.order.sorted(), b.order.sorted())
        for name in a.order { XCTAssertEqual(a.floats(name), b.floats(name), "\(name) differs after resume") }
        // TensorBoard shows the resumed run as one: the step it redoes replaces the stopped run's.
        XCTAssertEqual(eventFiles(resumed).count, 2)
        let check = try PythonScript.run("check_tensorboard_events.py", [resumed.path])
        XCTAssertEqual(check.status, 0, check.output)
        XCTAssertTrue(check.stdout.contains("(2 epochs); 10 steps"), check.output)
    }

    func testBadCheckpointsGiveOneLineErrors() throws {
        let dir = TestPaths.temporaryDirectory("badckpt")
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = try trainedCheckpoint()
        let bytes = try Data(contentsOf: good)
        let truncated = dir.appendingPathComponent("truncated.safetensors.zst")
        try bytes.prefix(bytes.count / 2).write(to: truncated)
        let foreign = dir.appendingPathComponent("foreign.safetensors.zst")
        var plain = SafeTensors(metadata: ["format": "something-else"])
        [Float(1)].withUnsafeBufferPointer { plain.add("x", shape: [1], floats: $0) }
        try CheckpointFile.write(plain, to: foreign)
        // Right format, wrong model: the metadata says resnet18, the tensors are FaceNet's.
        var file = try CheckpointFile.read(good)
        var config = try JSONSerialization.jsonObject(with: Data(file.metadata["model"]!.utf8)) as! [String: Any]
        config["name"] = "resnet18"
        file.metadata["model"] = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
        let mismatched = dir.appendingPathComponent("mismatched.safetensors.zst")
        try CheckpointFile.write(file, to: mismatched)

        for bad in [truncated, foreign, mismatched, dir.appendingPathComponent("missing.safetensors.zst")] {
            for args in [["train"] + quick + ["--out", dir.appendingPathComponent("r").path, "--resume", bad.path],
                         ["eval", "--checkpoint", bad.path, "--data", "synthetic:8"]] {
                let r = try run(args)
                XCTAssertEqual(r.status, 1, "\(args): \(r.output)")
                let errorLines = r.stderr.split(separator: "\n").filter { !$0.isEmpty }
                XCTAssertEqual(errorLines.count, 1, r.stderr)
                XCTAssertTrue(r.stderr.hasPrefix("fkp: error: "), r.stderr)
                XCTAssertTrue(r.stderr.contains(bad.lastPathComponent), r.stderr)
            }
        }
        // The run's own checkpoints are untouched by the failures.
        XCTAssertEqual(try Data(contentsOf: good), bytes)
    }

    func testEvalAndPredict() throws {
        let dir = TestPaths.temporaryDirectory("evalpredict")
        defer { try? FileManager.default.removeItem(at: dir) }
        let checkpoint = try trainedCheckpoint().path
        let perImage = dir.appendingPathComponent("per_image.csv").path, kaggle = dir.appendingPathComponent("kaggle.csv").path
        let e = try run(["eval", "--checkpoint", checkpoint, "--data", "synthetic:12", "--per-image", perImage, "--kaggle", kaggle])
        XCTAssertEqual(e.status, 0, e.output)
        for key in ["images: 12", "mse: ", "mean pixel error: ", "nme: ", "failure rate@0.08: ", "auc@0.08: "] {
            XCTAssertTrue(e.stdout.contains(key), "\(key) missing in \(e.stdout)")
        }
        XCTAssertEqual(try String(contentsOfFile: perImage, encoding: .utf8).split(separator: "\n").count, 1 + 12)
        XCTAssertEqual(try String(contentsOfFile: kaggle, encoding: .utf8).split(separator: "\n").count, 1 + 12 * 136)

        // Predict on a face written to disk as a PNG, with and without a box.
        let faces = dir.appendingPathComponent("faces")
        XCTAssertEqual(try run(["data", "synth", "--count", "1", "--out", faces.path]).status, 0)
        let image = faces.appendingPathComponent("images/000001.png").path
        // (The detector misses this synthetic face: --no-detect crops the whole image; PredictCommandTests
        // covers detection.)
        let p = try run(["predict", image, "--checkpoint", checkpoint, "--out", dir.path, "--no-detect"])
        XCTAssertEqual(p.status, 0, p.output)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(p.stdout.utf8)) as? [String: Any])
        let found = try XCTUnwrap(json["faces"] as? [[String: Any]], p.stdout)
        XCTAssertEqual((found.first?["keypoints"] as? [[Double]])?.count, 68)
        XCTAssertTrue(FileManager.default.fileExists(atPath: json["overlay"] as! String))
        let boxed = try run(["predict", image, "--checkpoint", checkpoint, "--box", "10,20,120,120", "--out", dir.path])
        XCTAssertEqual(boxed.status, 0, boxed.output)
        let badBox = try run(["predict", image, "--checkpoint", checkpoint, "--box", "1,2,3"])
        XCTAssertEqual(badBox.status, 1)
    }

    func testPresetsAreListedAndRealDataPresetsNeedData() throws {
        let r = try run(["presets"])
        XCTAssertEqual(r.status, 0, r.output)
        for name in ["default", "nose-imm", "facenet-imm", "facenet-imm-b16", "resnet50-ibug", "resnet18-ibug-fast", "unet-ibug", "unet-ibug-fast"] {
            XCTAssertTrue(r.stdout.contains("\(name): "), "\(name) missing in \(r.stdout)")
        }
        let missing = try run(["train", "--preset", "nose-imm"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.hasPrefix("fkp: error: preset nose-imm needs --data"), missing.stderr)
        let unknown = try run(["train", "--preset", "nope"])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("unknown preset 'nope'"), unknown.stderr)
    }

    /// The mean-shape baseline scores the validation split; on synthetic faces (varied pose and
    /// scale) it is poor, as it must be.
    func testMeanShapeBaseline() throws {
        let r = try run(["baseline", "--data", "synthetic:60"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stdout.contains("scored on 12 validation faces"), r.stdout)
        let nme = r.stdout.split(separator: "\n").first { $0.hasPrefix("nme: ") }.flatMap { Double($0.dropFirst(5)) }
        XCTAssertNotNil(nme, r.stdout)
        XCTAssertGreaterThan(nme ?? 0, 0.08)
    }
}
