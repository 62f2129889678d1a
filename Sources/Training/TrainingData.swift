import Engine
import FaceData
import Foundation

/// The data side of a run: the dataset split the same way on every rank, and per-rank loaders
/// that decode only this rank's shard.
public final class TrainingData {
    public let dataset: any FaceDataset
    public let train: any FaceDataset
    public let validation: any FaceDataset
    public let trainLoader: BatchLoader
    public let validationLoader: BatchLoader?
    public let skips: SkipLog
    public var markup: KeypointMarkup { dataset.markup }

    /// `cacheBytes`: decoded faces kept in memory per rank (0 = decode every time).
    public init(config: TrainConfig, rank: Int, worldSize: Int, strict: Bool, threads: Int, cacheBytes: Int = 2 << 30,
                maxPixels: Int = ImageCodec.defaultMaxPixels) throws {
        skips = SkipLog()
        let options = DatasetOptions(strict: strict, skips: skips, maxPixels: maxPixels)
        let opened = try openDataset(path: config.data, options: options)
        dataset = cacheBytes > 0 ? CachedDataset(opened, budgetBytes: cacheBytes) : opened
        guard dataset.count > 0 else { throw DataError(file: config.data, "the dataset has no usable faces") }
        if config.validationFraction > 0 {
            let split = config.split == .byPerson
                ? dataset.personSplit(testFraction: config.validationFraction, seed: config.seed)
                : dataset.randomSplit(testFraction: config.validationFraction, seed: config.seed)
            train = split.train
            validation = split.test
        } else {
            train = dataset
            validation = DatasetSubset(base: dataset, indices: [], label: "none")
        }
        var loaderOptions = TrainingData.loaderOptions(config, strict: strict)
        loaderOptions.workers = max(1, threads)
        loaderOptions.augment = config.augment
        let trainSampler = DistributedSampler(count: train.count, rank: rank, worldSize: worldSize, seed: config.seed)
        trainLoader = try BatchLoader(dataset: train, sampler: trainSampler, options: loaderOptions, skips: skips)
        if validation.count > 0 {
            var evalOptions = loaderOptions
            evalOptions.augment = false
            let evalSampler = DistributedSampler(count: validation.count, rank: rank, worldSize: worldSize,
                                                 seed: config.seed, mode: .evaluation)
            validationLoader = try BatchLoader(dataset: validation, sampler: evalSampler, options: evalOptions, skips: skips)
        } else {
            validationLoader = nil
        }
    }

    /// Loader options from a run's configuration (shared by training, eval and predict).
    public static func loaderOptions(_ config: TrainConfig, strict: Bool) -> LoaderOptions {
        var o = LoaderOptions()
        o.width = config.inputWidth
        o.height = config.inputHeight
        o.batchSize = config.batch
        o.keypointSubset = config.keypoints
        o.enlargement = config.cropEnlargement
        o.strict = strict
        o.seed = config.seed
        if config.task == .heatmap {
            o.heatmapSize = (config.inputWidth, config.inputHeight)
            o.heatmapSigma = config.heatmapSigma
        }
        return o
    }
}
