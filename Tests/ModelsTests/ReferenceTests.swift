import Checkpoints
import Engine
import Foundation
import Models
import Training
import XCTest

/// Every model against PyTorch (Scripts/make_model_fixtures.py, float64 reference): the same
/// weights loaded by state_dict name, one forward (output), MSE loss, backward (every parameter
/// gradient), then three AdamW steps (lr 1e-3, weight decay 0.01) after which every weight and
/// every BatchNorm running statistic must match. Train mode throughout; facenet's dropout is off
/// (p = 0 here, eval mode on that module in PyTorch).
final class ReferenceTests: XCTestCase {
    /// float32 against a float64 reference. The absolute tolerance of each group (output, loss,
    /// gradients, weights after the steps) is the larger of 1e-5 and 4× PyTorch's own float32
    /// error on the same run (fixture metadata torch32_*): that only loosens the narrow ResNet-50,
    /// whose ~50 BatchNorms over a few values each amplify float32 rounding (PyTorch float32 is
    /// off by ~1e-1 in its largest gradients there, too).
    static let atol: Float = 1e-5, rtol: Float = 1e-4

    func load(_ name: String) throws -> SafeTensors {
        let url = try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures"),
                                "missing fixture \(name).safetensors (run Scripts/make_model_fixtures.py)")
        return try SafeTensors(url: url)
    }

    func check(_ fixtureName: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let fx = try load(fixtureName)
        func meta(_ key: String) throws -> Double {
            try XCTUnwrap(fx.metadata[key].flatMap(Double.init), "fixture metadata \(key)")
        }
        let base = Int(try meta("base"))
        let config = ModelConfig(name: try XCTUnwrap(fx.metadata["name"]).replacingOccurrences(of: "\"", with: ""),
                                 outputs: Int(try meta("outputs")), inputHeight: Int(try meta("height")),
                                 inputWidth: Int(try meta("width")), width: base > 0 ? base : nil, seed: 1)
        let net = try ModelZoo.make(config, dropout: 0)
        let store = net.store

        // Same names, shapes and count as PyTorch's state_dict; load the reference weights.
        let initNames = fx.names(prefix: "init/")
        let ours = store.parameters + store.buffers
        XCTAssertEqual(Set(ours.map(\.name)), Set(initNames), "\(fixtureName): state_dict names differ", file: file, line: line)
        for info in ours {
            let entry = try XCTUnwrap(fx["init/" + info.name], "\(fixtureName): no reference for \(info.name)")
            XCTAssertEqual(info.shape, entry.shape, "\(fixtureName): shape of \(info.name)", file: file, line: line)
            store.set(info.name, entry.values)
        }

        let inputEntry = try XCTUnwrap(fx["input"])
        let input = Tensor(shape: inputEntry.shape, values: inputEntry.values)
        // PyTorch's NCHW target; a heatmap network's output is the engine's CNHW.
        let targetEntry = try XCTUnwrap(fx["target"])
        let target = targetEntry.shape.count == 4 ? Layout.cnhwTensor(shape: targetEntry.shape, nchw: targetEntry.values).toArray()
                                                  : targetEntry.values
        let optimizer = AdamW(store: store, learningRate: Float(try meta("lr")), weightDecay: Float(try meta("weight_decay")))
        let loss = MSELoss()
        func tolerance(_ group: String) throws -> Float { max(Self.atol, 4 * Float(try meta("torch32_" + group))) }
        var output = Comparison(atol: try tolerance("output"), rtol: Self.rtol)
        var lossCheck = Comparison(atol: try tolerance("loss"), rtol: Self.rtol)
        var grads = Comparison(atol: try tolerance("grad"), rtol: Self.rtol)
        for step in 0 ..< Int(try meta("steps")) {
            store.zeroGrads()
            let y = net.forward(input)
            let value = target.withUnsafeBufferPointer { loss.forward(y, $0.baseAddress!) }
            net.backward(loss.gradient)
            if step == 0 {
                output.check("output", Layout.nchwArray(y), try XCTUnwrap(fx["output"]).values)
                lossCheck.check("loss", [value], try XCTUnwrap(fx["loss"]).values)
                for info in store.parameters {
                    grads.check("grad " + info.name, try XCTUnwrap(store.gradArray(named: info.name)),
                                try XCTUnwrap(fx["grad/" + info.name]).values)
                }
            }
            optimizer.step()
        }
        var after = Comparison(atol: try tolerance("after"), rtol: Self.rtol)
        for info in ours {
            after.check("after " + info.name, try XCTUnwrap(store.array(named: info.name)),
                        try XCTUnwrap(fx["after/" + info.name]).values)
        }
        var report = "\(fixtureName) max |diff| (tolerance):"
        for (group, c) in [("output", output), ("loss", lossCheck), ("gradients", grads), ("after the AdamW steps", after)] {
            report += String(format: " %@ %.1e (%.1e);", group, c.maxAbs, c.atol)
        }
        print(report)
        for failure in output.failures + lossCheck.failures + grads.failures + after.failures {
            XCTFail("\(report)\n  \(failure)", file: file, line: line)
        }
    }

    func testNoseNet() throws { try check("nosenet") }
    func testFaceNet() throws { try check("facenet") }
    func testResNet18() throws { try check("resnet18") }
    func testResNet50() throws { try check("resnet50") }
    func testUNet() throws { try check("unet") }
    func testMobileNetPFLD() throws { try check("mobilenet-pfld") }
    func testMobileNetPIP() throws { try check("mobilenet-pip") }
}
