import FaceData
import Foundation
import Training
import XCTest

/// The run configuration's enums are parsed once and stored with the strings checkpoints have
/// always had; Preprocessing drives the loader.
final class TrainConfigTests: XCTestCase {
    func testScheduleParsesPrintsAndRejects() {
        XCTAssertEqual(TrainConfig.Schedule("constant"), .constant)
        XCTAssertEqual(TrainConfig.Schedule("cosine"), .cosine)
        XCTAssertEqual(TrainConfig.Schedule("step:1000:0.5"), .step(every: 1000, gamma: 0.5))
        for text in ["constant", "cosine", "step:1000:0.5", "step:3:0.1"] { XCTAssertEqual(TrainConfig.Schedule(text)?.description, text) }
        for bad in ["", "linear", "step", "step:0:0.5", "step:10", "step:10:x", "cosine:5", "step:10:0.5:1", "step:10:nan"] {
            XCTAssertNil(TrainConfig.Schedule(bad), bad)
        }
        XCTAssertEqual(TrainConfig.Schedule.step(every: 4, gamma: 0.5).rates(totalSteps: 20, warmupSteps: 0).rate(base: 1, step: 9), 0.25)
    }

    /// Checkpoints written before the enums hold plain strings: they still decode, and new ones
    /// write the same strings.
    func testConfigJSONKeepsTheCheckpointStrings() throws {
        var config = TrainConfig()
        config.schedule = .step(every: 100, gamma: 0.5)
        config.heatmapLoss = .softmaxCE
        config.model = "unet"
        XCTAssertEqual(config.task, .heatmap)
        let text = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        for fragment in [#""schedule":"step:100:0.5""#, #""heatmapLoss":"softmax-ce""#, #""model":"unet""#] {
            XCTAssertTrue(text.contains(fragment), "\(fragment) not in \(text)")
        }
        XCTAssertEqual(try JSONDecoder().decode(TrainConfig.self, from: Data(text.utf8)), config)
        // Before the model table, the config stored the task too: such JSON still decodes.
        let old = text.replacingOccurrences(of: #""model":"unet""#, with: #""model":"unet","task":"heatmap""#)
        XCTAssertNotEqual(old, text)
        XCTAssertEqual(try JSONDecoder().decode(TrainConfig.self, from: Data(old.utf8)), config)
        let corrupt = text.replacingOccurrences(of: "step:100:0.5", with: "sometimes")
        XCTAssertThrowsError(try JSONDecoder().decode(TrainConfig.self, from: Data(corrupt.utf8)))
    }

    /// The loader options come from Preprocessing alone, and its normalisation is what a batch holds.
    func testPreprocessingDrivesTheLoader() throws {
        var config = TrainConfig()
        config.inputWidth = 40; config.inputHeight = 30; config.keypoints = [36, 45]; config.cropEnlargement = 0.3
        let faces = SyntheticFaces(count: 2, seed: 7)
        let p = Preprocessing(config: config, markup: faces.markup)
        XCTAssertEqual(p.normalisation, .standard)
        XCTAssertEqual(p.keypointCount, 2)
        let options = p.loaderOptions(batch: 2, strict: true, seed: 3)
        XCTAssertEqual([options.width, options.height, options.batchSize], [40, 30, 2])
        XCTAssertEqual(options.keypointSubset, [36, 45])
        XCTAssertEqual(options.enlargement, 0.3)
        XCTAssertNil(options.heatmapSize)
        let pipeline = try SamplePipeline(markup: faces.markup, options: options)
        let record = try faces.record(at: 0)
        var image = [Float](repeating: 0, count: 40 * 30), points = [Float](repeating: 0, count: 4)
        _ = image.withUnsafeMutableBufferPointer { img in
            points.withUnsafeMutableBufferPointer { kp in
                pipeline.prepare(record, index: 0, augmentation: .identity, image: img.baseAddress!, keypoints: kp.baseAddress!, heatmaps: nil)
            }
        }
        let grey = pipeline.sample(record).image.pixels
        for (g, v) in zip(grey, image) { XCTAssertEqual(PixelNormalisation.standard.normalise(g), v, accuracy: 1e-6) }
        XCTAssertEqual(image.min()! >= -1 && image.max()! <= 1, true)
    }
}
