import Engine
import Foundation
import Models
import TestSupport
import XCTest

/// Parameter counts and the printed model against PyTorch's `print(model)` (fixtures written by
/// Scripts/make_model_fixtures.py from Scripts/torch_models.py).
final class SummaryTests: XCTestCase {
    func fixture(_ name: String) throws -> String {
        let url = try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "txt", subdirectory: "Fixtures"),
                                "missing fixture \(name).txt")
        return try String(contentsOf: url, encoding: .utf8)
    }

    func network(_ name: String) throws -> Network {
        try ModelZoo.make(ModelZoo.defaultConfig(name, keypoints: ModelZoo.defaultKeypoints(name)))
    }

    func testParameterCounts() throws {
        XCTAssertEqual(try network("facenet").parameterCount, 649_828)
        XCTAssertEqual(try network("resnet50").parameterCount, 23_780_424)
        XCTAssertEqual(try network("unet").parameterCount, 7_764_676)
        XCTAssertEqual(try network("resnet18").parameterCount, 11_240_008)
        XCTAssertEqual(try network("nosenet").parameterCount, 157_602)
        XCTAssertEqual(try network("mobilenet-pfld").parameterCount, 207_256)
        XCTAssertEqual(try network("mobilenet-pip").parameterCount, 4_226_780)
    }

    /// Line by line, so a failure names the first line that differs.
    func testSummariesMatchPyTorch() throws {
        for name in ["nosenet", "facenet", "resnet18", "resnet50", "unet", "mobilenet-pfld", "mobilenet-pip"] {
            let want = try fixture("repr_\(name)").split(separator: "\n", omittingEmptySubsequences: false)
                .map(String.init).filter { !$0.isEmpty }
            let got = try network(name).summary().split(separator: "\n").map(String.init)
            XCTAssertEqual(got.count, want.count, "\(name): \(got.count) lines, PyTorch prints \(want.count)")
            for (i, (g, w)) in zip(got, want).enumerated() where g != w {
                XCTFail("\(name) line \(i + 1):\n  fkp:     \(g)\n  PyTorch: \(w)")
                break
            }
        }
    }

    func testStateDictNamesAndInitialisation() throws {
        let resnet = try network("resnet50")
        let names = Set(resnet.store.parameters.map(\.name) + resnet.store.buffers.map(\.name))
        for name in ["conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight", "layer1.0.downsample.1.bias",
                     "layer4.2.conv3.weight", "layer4.2.bn3.num_batches_tracked", "fc.weight", "fc.bias"] {
            XCTAssertTrue(names.contains(name), "resnet50 has no \(name)")
        }
        // torchvision's init: kaiming_normal_(fan_out, relu) → std √(2 / (64·7·7)) for conv1; BN 1 / 0.
        let w = try XCTUnwrap(resnet.store.array(named: "conv1.weight"))
        let std = (w.reduce(0) { $0 + Double($1 * $1) } / Double(w.count)).squareRoot()
        let expected = (2.0 / (64 * 49)).squareRoot()
        XCTAssertEqual(std, expected, accuracy: 0.05 * expected)
        XCTAssertEqual(resnet.store.array(named: "layer2.1.bn2.weight").map(Set.init), [1])
        XCTAssertEqual(resnet.store.array(named: "layer2.1.bn2.bias").map(Set.init), [0])
        let unet = try network("unet")
        for name in ["encoder1.enc1conv1.weight", "encoder1.enc1norm1.running_var", "upconv4.weight",
                     "decoder1.dec1conv2.weight", "bottleneck.bottleneckconv1.weight", "conv.bias"] {
            XCTAssertNotNil(unet.store.info(named: name), "unet has no \(name)")
        }
        unet.training = false
        XCTAssertEqual(unet.forward(Tensor(shape: [1, 1, 224, 224])).shape, [1, 68, 224, 224])
    }

    func testBadConfigurationsThrow() {
        XCTAssertThrowsError(try ModelZoo.make(ModelConfig(name: "vgg", outputs: 2, inputHeight: 60, inputWidth: 80)))
        XCTAssertThrowsError(try ModelZoo.make(ModelConfig(name: "unet", outputs: 4, inputHeight: 30, inputWidth: 32, width: 2)))
        XCTAssertThrowsError(try ModelZoo.make(ModelConfig(name: "facenet", outputs: 4, inputHeight: 20, inputWidth: 20)))
        XCTAssertThrowsError(try ModelZoo.make(ModelConfig(name: "nosenet", outputs: 0, inputHeight: 60, inputWidth: 80)))
    }

    /// The command prints the same text; a bad model name is a one-line error and exit status ≠ 0.
    func testSummaryCommand() throws {
        let fkp = TestPaths.product("fkp").path
        let ok = try ProcessRunner.run(fkp, ["summary", "--model", "facenet"], timeout: 60)
        XCTAssertEqual(ok.status, 0, ok.output)
        XCTAssertEqual(ok.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                       try fixture("repr_facenet").trimmingCharacters(in: .whitespacesAndNewlines))
        let custom = try ProcessRunner.run(fkp, ["summary", "--model", "resnet18", "--outputs", "10"], timeout: 60)
        XCTAssertTrue(custom.stdout.contains("(fc): Linear(in_features=512, out_features=10, bias=True)"), custom.output)
        let bad = try ProcessRunner.run(fkp, ["summary", "--model", "nope"], timeout: 60)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("unknown model 'nope'"), bad.output)
    }

    /// Heatmap output is the engine's CNHW: in eval mode (no batch statistics), a batch of two gives
    /// each image's own output, as NCHW after `Layout.nchwArray`, in its own [K, H, W] block.
    func testHeatmapOutputIsCNHW() throws {
        let net = try ModelZoo.make(ModelConfig(name: "unet", outputs: 3, inputHeight: 32, inputWidth: 32, width: 2, seed: 5))
        net.training = false
        let both = GradCheck.randomTensor([2, 1, 32, 32], seed: 1)
        let y = Layout.nchwArray(net.forward(both))
        XCTAssertEqual(y.count, 2 * 3 * 32 * 32)
        for i in 0 ..< 2 {
            let one = Tensor(shape: [1, 1, 32, 32], values: Array(both.toArray()[i * 1024 ..< (i + 1) * 1024]))
            let single = net.forward(one).toArray()
            let block = Array(y[i * 3072 ..< (i + 1) * 3072])
            let diff = zip(single, block).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(diff, 1e-5, "image \(i)")
        }
    }
}
