import FaceData
import Foundation
import TensorBoard

/// Rank 0's TensorBoard event file in the run folder (`--tensorboard`): the metrics.jsonl values
/// per epoch under their metrics.jsonl keys (`EpochRecord.scalars`, so the two never disagree),
/// the loss and learning rate of every step, and the run's pictures when it ends.
final class TensorBoardLog {
    /// Per-step tags; the epoch's train_loss is the mean of its steps' `step/train_loss`.
    static let stepLoss = "step/train_loss", stepRate = "step/lr"
    private let file: EventFile

    /// A new event file; a resumed run (from `step` > 0) first tells TensorBoard to drop what
    /// earlier files hold past that step, which this run writes again.
    init(directory: URL, resumedAt step: Int) throws {
        file = try EventFile(directory: directory)
        if step > 0 { try file.restart(at: step + 1) }
    }

    func step(_ step: Int, loss: Float, learningRate: Float) throws {
        try file.scalars([(Self.stepLoss, Double(loss)), (Self.stepRate, Double(learningRate))], step: step)
    }

    /// The epoch's metrics.jsonl line; a value that is not finite stays NaN or infinite here.
    func epoch(_ record: EpochRecord) throws {
        try file.scalars(record.scalars.compactMap { key, value in value.map { (key, $0) } }, step: record.step)
    }

    /// The PNG pictures in `directory` (the ones this run drew), each as an image summary under
    /// its file name without the extension (fkp draws its pictures in RGB).
    func pictures(in directory: URL, step: Int) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".png") }.sorted()
        for name in names {
            let url = directory.appendingPathComponent(name)
            let png = try Data(contentsOf: url)
            let size = try ImageCodec.size(path: url.path)
            try file.image(tag: String(name.dropLast(4)), png: png, width: size.width, height: size.height, channels: 3, step: step)
        }
    }
}
