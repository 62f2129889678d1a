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
    /// How faces become model input, from the configuration and the dataset's markup.
    public let preprocessing: Preprocessing
    public var markup: KeypointMarkup { dataset.markup }

    /// Decoded faces kept in memory per rank by default: 2 GiB holds ytfaces68 and IMM whole.
    public static let defaultCacheBytes = 2 << 30

    /// `cacheBytes`: decoded faces kept in memory per rank (0 = decode every time).
    public init(config: TrainConfig, rank: Int, worldSize: Int, strict: Bool, threads: Int, cacheBytes: Int = defaultCacheBytes,
                maxPixels: Int = ImageCodec.defaultMaxPixels, loaderNice: Int32 = 0) throws {
        skips = SkipLog()
        let options = DatasetOptions(strict: strict, skips: skips, maxPixels: maxPixels)
        let opened = try openDataset(path: config.data, options: options)
        dataset = cacheBytes > 0 ? CachedDataset(opened, budgetBytes: cacheBytes) : opened
        guard dataset.count > 0 else { throw DataError(file: config.data, "the dataset has no usable faces") }
        (train, validation) = TrainingData.split(dataset, config)
        preprocessing = Preprocessing(config: config, markup: dataset.markup)
        var loaderOptions = TrainingData.loaderOptions(config: config, preprocessing: preprocessing, strict: strict, threads: threads)
        loaderOptions.workerNice = loaderNice
        let trainSampler = DistributedSampler(count: train.count, rank: rank, worldSize: worldSize, seed: config.seed,
                                              batchSize: loaderOptions.batchSize)
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

    /// The training loader's options (the validation loader's are the same without augmentation).
    public static func loaderOptions(config: TrainConfig, preprocessing: Preprocessing, strict: Bool, threads: Int) -> LoaderOptions {
        var options = preprocessing.loaderOptions(batch: config.batch, strict: strict, seed: config.seed)
        config.head.requestTargets(&options)
        options.workers = max(1, threads)
        options.augment = config.augment
        options.augmentation = config.augmentation
        return options
    }

    /// A run's train / validation split (`config.split`, `validationFraction`, `seed`): decided
    /// here only, for training, the baseline and `fkp eval --validation-only`.
    public static func split(_ dataset: any FaceDataset, _ config: TrainConfig) -> (train: any FaceDataset, validation: any FaceDataset) {
        guard config.validationFraction > 0 else { return (dataset, DatasetSubset(base: dataset, indices: [], label: "none")) }
        let split = switch config.split {
        case .byPerson: dataset.personSplit(testFraction: config.validationFraction, seed: config.seed)
        case .random: dataset.randomSplit(testFraction: config.validationFraction, seed: config.seed)
        }
        return (split.train, split.test)
    }
}
