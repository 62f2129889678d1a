/// The data path, from files to batches. API overview for a trainer:
///
///     let options = DatasetOptions(strict: false)              // skips counted in options.skips
///     let all = try openDataset(path: "/data/imm_face_db", options: options)
///     let split = all.personSplit(testFraction: 0.2, seed: 1)  // or .randomSplit(...)
///     var config = LoaderOptions()                             // 224×224, batch 32, ...
///     config.keypointSubset = [KeypointMarkup.immNoseTip]; config.augment = true
///     let sampler = DistributedSampler(count: split.train.count, rank: rank, worldSize: world, seed: 1)
///     let loader = try BatchLoader(dataset: split.train, sampler: sampler, options: config, skips: options.skips)
///     for epoch in 0..<epochs {
///         loader.start(epoch: epoch)
///         while let batch = try loader.next() {                // valid until the next call
///             // batch.images: N×1×H×W, batch.keypoints: N×2K in 0...1, batch.heatmaps: K×N×Hh×Wh
///             let pixels = loader.pipeline.sourceKeypoints(normalised: prediction, info: batch.samples[i])
///         }
///     }
///
/// Every rank computes the same permutation; each decodes only its own shard. Batches are prepared
/// on background threads into a small pool of reusable buffers, and each sample's augmentation is
/// seeded by (seed, epoch, dataset index), so the result never depends on thread timing or on the
/// number of ranks.
import Foundation

/// One batch. The loader reuses these buffers: a batch is valid until the next `next()` / `start`.
public final class Batch: @unchecked Sendable {
    public let capacity: Int
    public let width: Int, height: Int
    public let keypointCount: Int
    public let heatmapWidth: Int, heatmapHeight: Int
    /// Samples filled (≤ capacity; the last batch of an epoch may be short, in evaluation even empty).
    public internal(set) var count = 0
    public internal(set) var epoch = 0
    /// Position of this batch within its epoch.
    public internal(set) var index = 0
    /// capacity×1×height×width, grey normalised by `LoaderOptions.normalisation`; the first `count` samples are valid.
    public internal(set) var images: [Float]
    /// capacity×2K: x / width, y / height in the crop, for the selected keypoints.
    public internal(set) var keypoints: [Float]
    /// Gaussian planes (empty without heatmaps) in the engine's channel-major layout K×count×Hh×Wh:
    /// keypoint k of sample n at (k·count + n)·Hh·Wh, where a heatmap network's output has it, so
    /// the loss compares the two without a transpose. Capacity for `capacity` samples.
    public internal(set) var heatmaps: [Float]
    public internal(set) var samples: [SampleInfo]

    init(capacity: Int, pipeline: SamplePipeline) {
        self.capacity = capacity
        width = pipeline.options.width; height = pipeline.options.height
        keypointCount = pipeline.keypointCount
        heatmapWidth = pipeline.heatmapWidth; heatmapHeight = pipeline.heatmapHeight
        images = [Float](repeating: 0, count: capacity * width * height)
        keypoints = [Float](repeating: 0, count: capacity * 2 * keypointCount)
        heatmaps = [Float](repeating: 0, count: capacity * keypointCount * heatmapWidth * heatmapHeight)
        samples = []
        samples.reserveCapacity(capacity)
    }

    /// The bytes `init` allocates for `capacity` samples (a memory plan's figure): the image, the
    /// keypoint and heatmap arrays it fills with zeros, and the sample records it reserves.
    public static func bytes(capacity: Int, pipeline: SamplePipeline) -> Int {
        let k = pipeline.keypointCount
        let floats = capacity * (pipeline.imageSize + 2 * k + k * pipeline.heatmapPlaneSize)
        return floats * MemoryLayout<Float>.stride + capacity * MemoryLayout<SampleInfo>.stride
    }
}

extension LoaderOptions {
    /// Batch buffers a loader allocates up front and reuses: one per batch prepared ahead (at
    /// least one per worker), and the one the trainer holds.
    public var bufferCount: Int { max(prefetch, max(workers, 1)) + 1 }
}

public final class BatchLoader: @unchecked Sendable {
    public let dataset: any FaceDataset
    public let sampler: DistributedSampler
    public let options: LoaderOptions
    public let pipeline: SamplePipeline
    /// Samples skipped because they failed to load (pass the dataset's `DatasetOptions.skips` to
    /// count everything in one place).
    public let skips: SkipLog
    public let batchesPerEpoch: Int
    // The worker threads hold the core, not the loader, so dropping the loader stops them cleanly.
    private let core: LoaderCore

    public init(dataset: any FaceDataset, sampler: DistributedSampler, options: LoaderOptions,
                skips: SkipLog = SkipLog()) throws {
        guard sampler.count == dataset.count else {
            throw DataError(file: dataset.name, "sampler covers \(sampler.count) samples, the dataset has \(dataset.count)")
        }
        guard options.batchSize > 0 else { throw DataError(file: dataset.name, "batch size must be positive") }
        self.dataset = dataset
        self.sampler = sampler
        self.options = options
        self.skips = skips
        pipeline = try SamplePipeline(markup: dataset.markup, options: options)
        batchesPerEpoch = sampler.batchesPerEpoch(batchSize: options.batchSize)
        core = LoaderCore(dataset: dataset, sampler: sampler, options: options, pipeline: pipeline, skips: skips,
                          batchesPerEpoch: batchesPerEpoch)
    }

    deinit { core.stop() }

    /// Begins (or restarts) preparing `epoch`'s batches in the background.
    /// `fromBatch` skips the epoch's first batches without loading them (an exact resume mid-epoch).
    public func start(epoch: Int, fromBatch: Int = 0) {
        core.start(epoch: epoch, order: sampler.indices(epoch: epoch), batches: batchesPerEpoch, fromBatch: fromBatch)
    }

    /// Begins preparing this rank's share of `positions` of the epoch's sample stream (see
    /// `DistributedSampler.indices(epoch:positions:)`): the batches of an elastic resume. Returns
    /// how many batches that is (the last may be short).
    @discardableResult
    public func start(epoch: Int, positions: Range<Int>) -> Int {
        let order = sampler.indices(epoch: epoch, positions: positions)
        let batches = (order.count + options.batchSize - 1) / options.batchSize
        core.start(epoch: epoch, order: order, batches: batches, fromBatch: 0)
        return batches
    }

    /// The next batch of the epoch in order, or nil when the epoch is done. Throws the first load
    /// error in strict mode. The returned batch is reused after the next call.
    public func next() throws -> Batch? { try core.next() }
}

/// The shared state of a loader and its worker threads, guarded by `condition`.
final class LoaderCore: @unchecked Sendable {
    let dataset: any FaceDataset
    let sampler: DistributedSampler
    let options: LoaderOptions
    let pipeline: SamplePipeline
    let skips: SkipLog
    /// Batches of the current `start` (the sampler's whole epoch, or a range of positions).
    private var batchesPerEpoch: Int

    private let condition = NSCondition()
    private var epoch = 0
    private var generation = 0
    private var order: [Int] = []
    private var nextToPrepare = 0
    private var nextToHand = 0
    private var ready: [Int: Batch] = [:]
    private var free: [Batch] = []
    private var held: Batch?
    private var failure: Error?
    private var stopping = false

    init(dataset: any FaceDataset, sampler: DistributedSampler, options: LoaderOptions, pipeline: SamplePipeline,
         skips: SkipLog, batchesPerEpoch: Int) {
        self.dataset = dataset; self.sampler = sampler; self.options = options; self.pipeline = pipeline
        self.skips = skips; self.batchesPerEpoch = batchesPerEpoch
        let workers = max(options.workers, 1)
        for _ in 0..<options.bufferCount {
            free.append(Batch(capacity: options.batchSize, pipeline: pipeline))
        }
        for n in 0..<workers {
            let nice = options.workerNice
            let thread = Thread {
                // On Linux, who = 0 names the calling thread only, not the whole process.
                if nice != 0 { setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, nice) }
                self.work()
            }
            thread.name = "fkp-loader-\(n)"
            thread.start()
        }
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    func start(epoch: Int, order indices: [Int], batches: Int, fromBatch: Int) {
        condition.lock()
        generation += 1
        self.epoch = epoch
        order = indices
        batchesPerEpoch = batches
        nextToPrepare = min(max(0, fromBatch), batchesPerEpoch)
        nextToHand = nextToPrepare
        failure = nil
        free.append(contentsOf: ready.values)
        ready.removeAll()
        if let held { free.append(held) }
        held = nil
        condition.broadcast()
        condition.unlock()
    }

    func next() throws -> Batch? {
        condition.lock()
        defer { condition.unlock() }
        if let held { free.append(held); self.held = nil; condition.broadcast() }
        guard nextToHand < batchesPerEpoch else { return nil }
        while ready[nextToHand] == nil && failure == nil { condition.wait() }
        if let failure { throw failure }
        let batch = ready.removeValue(forKey: nextToHand)!
        nextToHand += 1
        held = batch
        return batch
    }

    private func work() {
        condition.lock()
        while true {
            while !stopping && (nextToPrepare >= batchesPerEpoch || free.isEmpty || failure != nil || order.isEmpty) {
                condition.wait()
            }
            if stopping { break }
            let batchIndex = nextToPrepare
            nextToPrepare += 1
            let buffer = free.removeLast()
            let myGeneration = generation, myEpoch = epoch
            let start = batchIndex * options.batchSize
            let indices = Array(order[min(start, order.count)..<min(start + options.batchSize, order.count)])
            condition.unlock()
            var error: Error?
            do { try fill(buffer, indices: indices, epoch: myEpoch, batchIndex: batchIndex) } catch let e { error = e }
            condition.lock()
            if myGeneration != generation {
                free.append(buffer)
            } else if let error {
                failure = failure ?? error
                free.append(buffer)
            } else {
                ready[batchIndex] = buffer
            }
            condition.broadcast()
        }
        condition.unlock()
    }

    /// Loads a record; a bad one is skipped (counted, warned) and replaced by the next index that
    /// loads, so batches keep their size and stay the same on every run. Strict: rethrows.
    private func load(_ index: Int) throws -> (any SampleFace, Int) {
        var candidate = index
        for _ in 0..<min(dataset.count, 64) {
            do {
                return (try dataset.face(at: candidate), candidate)
            } catch let error as DataError {
                if options.strict { throw error }
                skips.record(error, source: error.file)
            }
            candidate = (candidate + 1) % dataset.count
        }
        throw DataError(file: dataset.name, "no loadable sample near index \(index): too many bad files")
    }

    private func fill(_ batch: Batch, indices: [Int], epoch: Int, batchIndex: Int) throws {
        batch.samples.removeAll(keepingCapacity: true)
        batch.count = indices.count
        batch.epoch = epoch
        batch.index = batchIndex
        let imageSize = pipeline.imageSize, k = pipeline.keypointCount, plane = pipeline.heatmapPlaneSize
        let heatmapsOn = plane > 0
        try batch.images.withUnsafeMutableBufferPointer { images in
            try batch.keypoints.withUnsafeMutableBufferPointer { keypoints in
                try batch.heatmaps.withUnsafeMutableBufferPointer { heatmaps in
                    for (slot, index) in indices.enumerated() {
                        let (record, used) = try load(index)
                        var rng = SplitMix64(options.seed, UInt64(truncatingIfNeeded: epoch), UInt64(index))
                        let augmentation = options.augment ? pipeline.drawAugmentation(for: record, rng: &rng) : .identity
                        let info = pipeline.prepare(
                            record, index: used, augmentation: augmentation,
                            image: images.baseAddress! + slot * imageSize,
                            keypoints: keypoints.baseAddress! + slot * 2 * k,
                            heatmaps: heatmapsOn ? heatmaps.baseAddress! + slot * plane : nil, heatmapStride: indices.count * plane)
                        batch.samples.append(info)
                    }
                }
            }
        }
    }
}
