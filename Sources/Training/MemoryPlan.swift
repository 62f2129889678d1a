import Checkpoints
import Engine
import FaceData
import Foundation
import Models

/// The memory one rank of a training run needs, worked out before anything is allocated
/// (`fkp train --plan`), and the peak resident set it predicts (the training log's last line
/// prints it next to the measured one).
///
/// How the peak comes about. Nothing that a step allocates is freed between steps: parameters,
/// gradients, optimizer state, every layer's output and input gradient (the engine reuses them),
/// the workspace at its largest request, the loaders' batch buffers and, as it fills, the
/// decoded-face cache. After the first step all of that is resident at once (`resident`). On top
/// of it come short-lived allocations, one phase at a time: MPI's temporaries for the gradient
/// buckets in flight, validation's input and loss gradient, rank 0's checkpoint write, the final
/// pictures' crops (`transients`). The predicted peak is the resident sum plus the largest of them.
///
/// Every figure is computed by the code that allocates it, from the configuration: the layers'
/// `planMemory` (their own shapes and scratch expressions), the parameter store's and the
/// optimizer's layouts, `Batch.bytes`, `CachedDataset.plannedBytes`,
/// `CheckpointFile.plannedWriteBytes`. The one constant is the process baseline, measured.
public struct MemoryPlan: Sendable {
    public struct Item: Sendable {
        public var name: String
        public var bytes: Int
        public var detail: String
        /// Only rank 0 does this (checkpoint writes, pictures).
        public var rankZeroOnly = false
    }

    /// What the plan is for (model, input, batch, ranks, threads).
    public let title: String
    /// The rank whose peak `peakBytes` is, and the number of ranks.
    public let rank: Int, worldSize: Int
    /// Held from the first step to the end of the run.
    public let resident: [Item]
    /// Allocated and freed again, never two at once; the largest adds to the peak.
    public let transients: [Item]

    public var residentBytes: Int { resident.map(\.bytes).reduce(0, +) }
    /// The largest transient of rank 0 (`rankZero`) or of any other rank.
    public func largestTransient(rankZero: Bool) -> Item? {
        transients.filter { rankZero || !$0.rankZeroOnly }.max { $0.bytes < $1.bytes }
    }
    public func peakBytes(rankZero: Bool) -> Int { residentBytes + (largestTransient(rankZero: rankZero)?.bytes ?? 0) }
    /// This plan's rank's predicted peak.
    public var peakBytes: Int { peakBytes(rankZero: rank == 0) }

    /// What the process holds whatever it trains: the pages it touches of the Swift runtime,
    /// Foundation, OpenMPI (after MPI_Init), OpenBLAS, libpng, TurboJPEG and dlib, the threads'
    /// stacks and OpenBLAS's packing buffers, the allocator's own. Measured once, on the smallest
    /// run there is: `fkp train --model nosenet --input-size 16 --batch 1 --data synthetic:16
    /// --epochs 1 --cache-mb 0 --threads 2 --no-pictures --no-tensorboard` peaked at 51.2 to
    /// 51.6 MiB in five runs (VmHWM; release build, Debian 12, Swift 6, OpenMPI 4.1.4, OpenBLAS
    /// 0.3.21), of which this plan's other items account for 4.3 MiB. Not fitted to any model:
    /// Scripts/check-memory-plan compares the plans of every model with what they measure.
    public static let baselineBytes = 47 << 20

    /// Facts about the data that the plan needs (counts per split, decoded face size).
    public struct DataFacts: Sendable {
        /// Records of the whole dataset, and of its training and validation splits.
        public var records: Int, train: Int, validation: Int
        /// Keypoints of the dataset's markup (the cache keeps them all).
        public var markupCount: Int
        /// Pixels of a decoded face, averaged over a sample of the dataset (exact for synthetic
        /// faces, which all have one size; an estimate for files of mixed sizes).
        public var meanPixels: Int

        public init(records: Int, train: Int, validation: Int, markupCount: Int, meanPixels: Int) {
            self.records = records; self.train = train; self.validation = validation
            self.markupCount = markupCount; self.meanPixels = meanPixels
        }

        /// Decodes up to `sample` records spread over `dataset` for their size. Pass the dataset
        /// under any cache: these decodes should not fill it.
        public init(dataset: any FaceDataset, train: Int, validation: Int, sample: Int = 16) {
            var pixels: [Int] = []
            let n = min(sample, dataset.count)
            for i in 0 ..< n {
                if let record = try? dataset.record(at: i * dataset.count / n) { pixels.append(record.image.width * record.image.height) }
            }
            self.init(records: dataset.count, train: train, validation: validation, markupCount: dataset.markup.count,
                      meanPixels: pixels.isEmpty ? 0 : pixels.reduce(0, +) / pixels.count)
        }
    }

    /// The plan of rank `rank` of `worldSize` for `network` trained as `config` and `options` say.
    public init(network: Network, config: TrainConfig, options: RunOptions, worldSize: Int, rank: Int, data: DataFacts,
                loader: LoaderOptions, pipeline: SamplePipeline) {
        let store = network.store
        let (batch, height, width) = (config.batch, config.inputHeight, config.inputWidth)
        let floatBytes = MemoryLayout<Float>.stride
        func count(_ n: Int) -> String { n.formatted(.number) }
        let sameShapes = "\(count(store.parameterCount)) weights"
        var resident: [Item] = []
        var transients: [Item] = []

        // The flat parameter store (values, gradients, non-trained buffers: ParameterStore.allocate)
        // and the optimizer's and weight average's buffers of the same layouts.
        resident.append(Item(name: "parameters", bytes: (store.parameterCount + store.bufferCount) * floatBytes,
                             detail: "\(sameShapes) + \(count(store.bufferCount)) BatchNorm buffers"))
        resident.append(Item(name: "gradients", bytes: store.parameterCount * floatBytes, detail: sameShapes))
        // --shard-optimizer: the moments of this rank's slice only (the largest slice, rank 0's).
        let sharded = options.shardOptimizer && worldSize > 1
        let moments = sharded ? ShardedOptimizer.sliceElements(total: store.parameterCount, ranks: worldSize) : store.parameterCount
        var optimizer = 2 * moments * floatBytes
        var optimizerDetail = sharded ? "AdamW exp_avg, exp_avg_sq of 1/\(worldSize) of the weights (--shard-optimizer)" : "AdamW exp_avg, exp_avg_sq"
        if config.emaDecay != nil {
            // WeightAverage: the averaged values and buffers, and one Bool per buffer element.
            optimizer += (store.parameterCount + store.bufferCount) * floatBytes + store.bufferCount
            optimizerDetail += "; --ema copy of the weights and buffers"
        }
        resident.append(Item(name: "optimizer state", bytes: optimizer, detail: optimizerDetail))

        // What the layers keep for a step of one micro-batch, from their own accounting, plus the
        // trainer's input tensor (which the first layer keeps as its input) and the loss gradient.
        let ledger = MemoryLedger(threads: options.threads)
        if options.recompute { ledger.recomputation = Recomputation(blocks: network.blocks) }
        let outputShape = network.root.plan([batch, 1, height, width], ledger)
        let inputBytes = batch * height * width * floatBytes, outputBytes = Tensor.elementCount(outputShape) * floatBytes
        let kept = ledger.bytes(.output) + ledger.bytes(.saved) + inputBytes
        let gradients = ledger.bytes(.gradient) + outputBytes
        let perSample = { (bytes: Int) in "\(batch) × \(Self.mebibytes(bytes / batch)) per sample" }
        resident.append(Item(name: "activations", bytes: kept,
                             detail: perSample(kept) + ": layer outputs, the input, what backward keeps"))
        resident.append(Item(name: "activation gradients", bytes: gradients,
                             detail: perSample(gradients) + ": every layer's input gradient, the loss gradient"))
        resident.append(Item(name: "workspace", bytes: ledger.workspaceBytes,
                             detail: ledger.workspaceBytes > 0 ? "largest scratch request: \(ledger.workspaceLayer)" : ""))

        // Loaders: each allocates its batch buffers up front (LoaderCore), and each worker decodes
        // one face at a time (Float pixels, 8-bit quantised, Float again when cached: 9 bytes a pixel).
        let batchBytes = Batch.bytes(capacity: batch, pipeline: pipeline)
        let loaders = data.validation > 0 ? 2 : 1
        let workerScratch = loaders * max(loader.workers, 1) * 9 * data.meanPixels
        resident.append(Item(name: "batches in flight", bytes: loaders * loader.bufferCount * batchBytes + workerScratch,
                             detail: "\(loaders) loader\(loaders == 1 ? "" : "s") × \(loader.bufferCount) buffers of \(batch) samples (\(Self.mebibytes(batchBytes)) each)"))

        // The decoded-face cache: this rank's faces as they are first read, up to --cache-mb.
        // Without --steps-per-epoch an epoch reads the whole shard; with it each epoch draws a new
        // part of it, so the faces read over E epochs are expected to be shard × (1 − (1 − f)^E).
        let trainShard = (data.train + worldSize - 1) / worldSize, validationShard = (data.validation + worldSize - 1) / worldSize
        if options.cacheMegabytes > 0 {
            let perEpoch = config.stepsPerEpoch.map { min(trainShard, $0 * batch * config.accumulate) } ?? trainShard
            let fraction = Double(perEpoch) / Double(max(trainShard, 1))
            let read = Int((Double(trainShard) * (1 - Foundation.pow(1 - fraction, Double(config.epochs)))).rounded()) + validationShard
            let cached = min(read, CachedDataset.images(fitting: options.cacheMegabytes << 20, pixels: data.meanPixels))
            resident.append(Item(name: "loader cache",
                                 bytes: CachedDataset.plannedBytes(records: data.records, images: cached, pixels: data.meanPixels,
                                                                   keypoints: data.markupCount),
                                 detail: "\(count(cached)) faces of \(count(data.meanPixels)) pixels (--cache-mb \(options.cacheMegabytes))"))
        } else {
            resident.append(Item(name: "loader cache", bytes: 0, detail: "--cache-mb 0"))
        }
        resident.append(Item(name: "process baseline", bytes: Self.baselineBytes,
                             detail: "Swift runtime, OpenBLAS, MPI, libraries, threads (measured)"))

        // Transients. During a step: MPI_Iallreduce (OpenMPI's libnbc) gives every bucket in flight
        // a temporary of its size, and all of them are in flight at the end of backward; PIPNet's
        // target is built per micro-batch; with --recompute blocks, one block's inside at a time
        // (counted with each of the step's others: the buckets start while blocks still run).
        // Validation: its own input tensor and loss gradient, and a block's forward.
        let block = options.recompute ? ledger.largestBlockBytes : 0
        let withBlock = block > 0 ? " + the recomputed block" : ""
        if block > 0 {
            transients.append(Item(name: "recomputed block", bytes: block,
                                   detail: "the largest block's inside while it runs (\(network.blocks.count) blocks; \(ledger.largestBlock))"))
        }
        if worldSize > 1 {
            // Sharded, one bucket at a time goes through MPI_Reduce_scatter and MPI_Allgatherv
            // instead; the same bound is kept (within 5 % of the measured peak on resnet18, 2 ranks).
            transients.append(Item(name: sharded ? "gradient reduce-scatter" : "gradient allreduce", bytes: store.parameterCount * floatBytes + block,
                                   detail: "MPI's temporaries for the buckets in flight (--bucket-mb \(options.bucketBytes >> 20))" + withBlock))
        }
        let target = config.task == .pip ? outputBytes : 0
        if target > 0 { transients.append(Item(name: "training target", bytes: target + block, detail: "PIPNet's maps of the micro-batch" + withBlock)) }
        let validation = inputBytes + outputBytes + target
        if data.validation > 0 {
            transients.append(Item(name: "validation", bytes: validation + block, detail: "its input and loss gradient" + withBlock))
        }
        // Sharded, rank 0 gathers each moment in full into one buffer before adding it to the file.
        let gathered = sharded ? store.parameterCount * floatBytes : 0
        transients.append(Item(name: "checkpoint write", bytes: Self.checkpointWriteBytes(store, ema: config.emaDecay != nil) + gathered,
                               detail: "rank 0: state dict, serialized copy, zstd buffers" + (sharded ? ", the gathered moments" : ""),
                               rankZeroOnly: true))
        if options.pictures && data.validation > 0 {
            // The final evaluation keeps every validation crop of rank 0 for the best/worst pictures.
            let crop = height * width * floatBytes + 4 * pipeline.keypointCount * floatBytes + 256
            transients.append(Item(name: "final pictures", bytes: validation + validationShard * crop,
                                   detail: "rank 0 keeps its \(count(validationShard)) validation crops", rankZeroOnly: true))
        }
        self.rank = rank
        self.worldSize = worldSize
        self.resident = resident
        self.transients = transients
        let model = network.config
        title = "memory plan per rank (\(worldSize) rank\(worldSize == 1 ? "" : "s")): \(model.name) \(model.inputWidth)x\(model.inputHeight)"
            + (model.width.map { " width \($0)" } ?? "") + ", \(model.outputs) outputs; batch \(batch) × accumulate \(config.accumulate)"
            + " per rank, \(options.threads) thread\(options.threads == 1 ? "" : "s")" + (options.recompute ? ", recompute blocks" : "")
    }

    /// The tensors rank 0's checkpoint holds, in the order `Trainer.saveCheckpoint` adds them
    /// (StateDict: parameters, buffers with the counters as Int64; the optimizer's two moments;
    /// the weight average's copy), given to `CheckpointFile.plannedWriteBytes`.
    static func checkpointWriteBytes(_ store: ParameterStore, ema: Bool) -> Int {
        var tensors: [(name: String, bytes: Int)] = []
        func add(_ prefix: String) {
            for p in store.parameters { tensors.append((prefix + p.name, p.count * 4)) }
            for b in store.buffers { tensors.append((prefix + b.name, b.count * (b.name.hasSuffix("num_batches_tracked") ? 8 : 4))) }
        }
        add("")
        for state in ["exp_avg", "exp_avg_sq"] {
            for p in store.parameters { tensors.append(("optimizer.\(state).\(p.name)", p.count * 4)) }
        }
        if ema { add(WeightAverage.checkpointPrefix) }
        // A header entry: "name":{"data_offsets":[b,e],"dtype":"F32","shape":[...]}, about 80 bytes and the name.
        let header = tensors.map { $0.name.utf8.count + 80 }.reduce(4096, +)
        return CheckpointFile.plannedWriteBytes(tensorBytes: tensors.map(\.bytes), headerBytes: header)
    }

    /// The plan as printed by `fkp train --plan`.
    public func report() -> String {
        let name = max(22, ((resident + transients).map(\.name.count).max() ?? 0) + 4)
        func line(_ label: String, _ bytes: Int, _ detail: String) -> String {
            let figure = Self.mebibytes(bytes)
            return "  " + label.padding(toLength: name, withPad: " ", startingAt: 0)
                + String(repeating: " ", count: max(0, 12 - figure.count)) + figure + (detail.isEmpty ? "" : "  " + detail)
        }
        var lines = [title]
        lines += resident.map { line($0.name, $0.bytes, $0.detail) }
        lines.append(line("resident", residentBytes, "held from the first step on"))
        let largest = largestTransient(rankZero: true)
        for t in transients.sorted(by: { $0.bytes > $1.bytes }) {
            let isLargest = t.name == largest?.name
            lines.append(line((isLargest ? "+ " : "  (") + t.name + (isLargest ? "" : ")"), t.bytes,
                              (isLargest ? "largest transient: " : "transient: ") + t.detail))
        }
        lines.append(line("predicted peak", peakBytes(rankZero: true), worldSize > 1 ? "rank 0: resident + largest transient" : "resident + largest transient"))
        if worldSize > 1 {
            let other = largestTransient(rankZero: false)
            lines.append(line("predicted peak", peakBytes(rankZero: false),
                              "ranks 1 to \(worldSize - 1): resident" + (other.map { " + \($0.name)" } ?? "")))
        }
        return lines.joined(separator: "\n")
    }

    /// "123.4 MiB".
    public static func mebibytes(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
}

extension MemoryPlan {
    /// Plans of a run that has not started, for any batch, accumulation and recomputation: opens the
    /// dataset (to split it and size its faces) and builds the model once, but allocates no
    /// activations, batches or optimizer state.
    public struct Planner {
        let network: Network
        let data: DataFacts
        let markup: KeypointMarkup
        public let worldSize: Int, rank: Int

        public init(config: TrainConfig, options: RunOptions, worldSize: Int, rank: Int) throws {
            let dataset = try openDataset(path: config.data, options: DatasetOptions(strict: options.strict, maxPixels: options.maxPixels))
            guard dataset.count > 0 else { throw DataError(file: config.data, "the dataset has no usable faces") }
            let (train, validation) = TrainingData.split(dataset, config)
            markup = dataset.markup
            let modelConfig = ModelConfig(name: config.model, outputs: config.outputs(markupCount: markup.count), inputHeight: config.inputHeight,
                                          inputWidth: config.inputWidth, width: config.width, seed: config.seed)
            network = try ModelZoo.make(modelConfig, dropout: config.dropout ? nil : 0)
            data = DataFacts(dataset: dataset, train: train.count, validation: validation.count)
            self.worldSize = worldSize; self.rank = rank
        }

        public func plan(_ config: TrainConfig, _ options: RunOptions) throws -> MemoryPlan {
            let loader = TrainingData.loaderOptions(config: config, preprocessing: Preprocessing(config: config, markup: markup),
                                                    strict: options.strict, threads: options.loaderThreads)
            return MemoryPlan(network: network, config: config, options: options, worldSize: worldSize, rank: rank,
                              data: data, loader: loader, pipeline: try SamplePipeline(markup: markup, options: loader))
        }
    }

    /// The plan of a run that has not started.
    public static func forRun(config: TrainConfig, options: RunOptions, worldSize: Int, rank: Int) throws -> MemoryPlan {
        try Planner(config: config, options: options, worldSize: worldSize, rank: rank).plan(config, options)
    }
}
