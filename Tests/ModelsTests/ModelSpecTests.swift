import Engine
import Models
import XCTest

/// The model table: every entry builds, predicts what its task says, and names as its head
/// exactly the parameters whose shape depends on the keypoint count (what `--init` must skip).
final class ModelSpecTests: XCTestCase {
    func testEveryEntryBuildsWithTheHeadItNames() throws {
        XCTAssertEqual(ModelZoo.names, ["nosenet", "facenet", "resnet18", "resnet34", "resnet50", "unet", "mobilenet-pfld", "mobilenet-pip"])
        for spec in ModelSpec.all {
            // Narrow networks: parameter names and which shapes follow the keypoints do not depend on width.
            func build(keypoints: Int) throws -> Network {
                var config = spec.defaultConfig(keypoints: keypoints)
                config.width = spec.width.map { _ in 4 }
                return try ModelZoo.make(config)
            }
            let a = try build(keypoints: 3), b = try build(keypoints: 5)
            a.training = false
            let output = a.forward(Tensor(shape: [1, 1, spec.inputHeight, spec.inputWidth])).shape
            switch spec.task {
            case .regression: XCTAssertEqual(output, [1, 6], spec.name)
            case .heatmap: XCTAssertEqual(output, [1, 3, spec.inputHeight, spec.inputWidth], spec.name)
            case .pip: XCTAssertEqual(output, [1, 3 * (3 + 2 * 2), spec.inputHeight / 16, spec.inputWidth / 16], spec.name)
            }
            let shapesA = Dictionary(uniqueKeysWithValues: a.store.parameters.map { ($0.name, $0.shape) })
            let shapesB = Dictionary(uniqueKeysWithValues: b.store.parameters.map { ($0.name, $0.shape) })
            XCTAssertEqual(Set(shapesA.keys), Set(shapesB.keys), spec.name)
            let dependsOnKeypoints = Set(shapesA.keys.filter { shapesA[$0] != shapesB[$0] })
            XCTAssertFalse(dependsOnKeypoints.isEmpty, spec.name)
            XCTAssertEqual(Set(shapesA.keys.filter(spec.isHead)), dependsOnKeypoints, "\(spec.name): head prefixes \(spec.headPrefixes)")
        }
    }

    func testUnknownNamesListTheTable() {
        XCTAssertThrowsError(try ModelZoo.spec("vgg")) { error in
            XCTAssertEqual("\(error)", "unknown model 'vgg' (known: nosenet, facenet, resnet18, resnet34, resnet50, unet, mobilenet-pfld, mobilenet-pip)")
        }
        XCTAssertThrowsError(try ModelZoo.defaultConfig("vgg", keypoints: 68))
    }
}
