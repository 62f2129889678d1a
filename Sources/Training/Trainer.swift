import Checkpoints
import Engine
import FaceData
import Foundation
import Models
import SwiftMPI

/// The data-parallel training loop. Every rank runs it: rank 0 initialises or loads the state and
/// broadcasts it, each rank trains on its shard, gradients are averaged with an allreduce before
/// every optimizer step (so all ranks take the same step), BatchNorm buffers follow rank 0's,
/// metrics are averaged, and only rank 0 prints and writes files.
public final class Trainer {
    public let config: TrainConfig
    public let options: RunOptions
    public let communicator: Communicator
    public let data: TrainingData
    public let network: Network
    public let optimizer: AdamW
    /// `--ema`: the moving average of the weights that validation, pictures and `fkp predict` use.
    public let average: WeightAverage?
    /// What the output means: target, loss and decoding (`LandmarkHead`).
    public let head: LandmarkHead
    public let loss: Loss
    public let schedule: LearningRateSchedule
    /// Samples per optimizer step over all ranks; a resumed run keeps its checkpoint's.
    public let globalBatch: Int
    public let stepsPerEpoch: Int
    /// Set by the loop and by resuming (Trainer+Checkpoints.swift).
    public internal(set) var position = RunPosition()
    public private(set) var history: [EpochRecord] = []
    /// Where this rank's step time went (printed at the end of the run).
    public private(set) var stepTimes = StepTimes()
    /// What this rank's memory should peak at (`fkp train --plan`); printed beside the measured peak.
    public let memoryPlan: MemoryPlan
    let preprocessing: Preprocessing
    let sync: GradientSync
    /// `--shard-optimizer` on more than one rank: replaces `sync`'s allreduce (nil: plain data parallelism).
    let sharding: ShardedOptimizer?
    /// Every other collective of the loop, under the same stall watchdog as the gradients'.
    let collectives: WatchedCollectives
    let progress: ProgressReporter
    let normalisingPair: (Int, Int)?
    /// Printed at start when a resume re-split the global batch over a new number of ranks.
    private var elasticNote: String?
    private let input = Tensor(shape: [0])
    private var epochStart = Date()
    private var stepsThisRun = 0
    /// Rank 0's TensorBoard event file (`--tensorboard`), opened when the run starts.
    private var tensorBoard: TensorBoardLog?
    var isRoot: Bool { communicator.rank == 0 }

    public init(config requested: TrainConfig, options: RunOptions, communicator: Communicator, resumeFrom: TrainingCheckpoint.Contents? = nil) throws {
        // First, so a signal during the (possibly long) data loading is not fatal either.
        Preemption.install(options.preemptSignals)
        var config = requested
        if let state = resumeFrom {
            globalBatch = state.position.globalBatch
            if globalBatch != config.batch * communicator.size * config.accumulate {
                let (batch, accumulate) = try ElasticBatch.split(globalBatch: globalBatch, worldSize: communicator.size, maxBatch: config.batch)
                elasticNote = "the checkpoint was written by \(state.position.worldSize) ranks × batch \(config.batch) × accumulate \(config.accumulate); on \(communicator.size) ranks the global batch \(globalBatch) is kept as batch \(batch) × accumulate \(accumulate)"
                (config.batch, config.accumulate) = (batch, accumulate)
            }
        } else {
            globalBatch = config.batch * communicator.size * config.accumulate
        }
        self.options = options
        self.communicator = communicator
        Parallel.setThreads(options.threads)
        data = try TrainingData(config: config, rank: communicator.rank, worldSize: communicator.size,
                                strict: options.strict, threads: options.loaderThreads, cacheBytes: options.cacheMegabytes << 20,
                                maxPixels: options.maxPixels, loaderNice: options.loaderNice)
        // PIPNet's neighbours come from the training faces' mean shape (augmented as in training:
        // the flips keep it a face), fixed for the run and stored with its checkpoints.
        if config.task == .pip && config.pipNeighbours == nil {
            let mean = try MeanShapeBaseline.meanKeypoints(data.trainLoader, communicator: communicator)
            config.pipNeighbours = PIPHead.neighbours(meanShape: mean, m: PIPLayout.neighbours(keypoints: mean.count / 2))
        }
        self.config = config
        let markup = data.markup
        let outputs = config.outputs(markupCount: markup.count)
        if let subset = config.keypoints, let bad = subset.first(where: { $0 < 0 || $0 >= markup.count }) {
            throw TrainingFailure("keypoint \(bad) does not exist in the \(markup.name) markup (\(markup.count) points)")
        }
        let modelConfig = ModelConfig(name: config.model, outputs: outputs, inputHeight: config.inputHeight,
                                      inputWidth: config.inputWidth, width: config.width, seed: config.seed)
        network = try ModelZoo.make(modelConfig, dropout: config.dropout ? nil : 0)
        network.recomputesBlocks = options.recompute
        // Each rank draws its own dropout masks.
        network.context.random = RandomGenerator(seed: config.seed &+ 0x9E37_79B9 &* UInt64(communicator.rank + 1))
        sharding = options.shardOptimizer && communicator.size > 1
            ? ShardedOptimizer(communicator: communicator, parameterCount: network.store.parameterCount,
                               bucketBytes: options.bucketBytes) : nil
        optimizer = AdamW(store: network.store, slice: sharding?.slice, learningRate: config.learningRate, weightDecay: config.weightDecay)
        let store = network.store
        average = config.emaDecay.map { WeightAverage(store: store, decay: $0) }
        head = config.head
        loss = head.makeLoss()
        normalisingPair = markup.normalisingPair(subset: config.keypoints)
        preprocessing = data.preprocessing
        sync = try GradientSync(communicator: communicator, bucketBytes: options.bucketBytes,
                                progressInterval: options.overlap && !options.shardOptimizer ? options.progressInterval : nil)
        let watchdog = options.stallTimeout.flatMap { $0 > 0 && communicator.size > 1 ? StallWatchdog(communicator: communicator, timeout: $0) : nil }
        sync.watchForStalls(watchdog)
        collectives = WatchedCollectives(communicator, watchdog: watchdog)
        progress = ProgressReporter(quiet: options.quiet || communicator.rank != 0)
        // Steps depend on the global batch only, so the schedule is the same on any number of ranks.
        stepsPerEpoch = ElasticBatch.stepsPerEpoch(samples: data.train.count, globalBatch: globalBatch, cap: config.stepsPerEpoch)
        schedule = config.schedule.rates(totalSteps: stepsPerEpoch * config.epochs, warmupSteps: config.warmupSteps,
                                         stepsPerEpoch: stepsPerEpoch)
        position.globalBatch = globalBatch
        position.worldSize = communicator.size
        // Face sizes from the dataset under the cache: sampling them must not fill it.
        let uncached = (data.dataset as? CachedDataset)?.base ?? data.dataset
        memoryPlan = MemoryPlan(network: network, config: config, options: options, worldSize: communicator.size, rank: communicator.rank,
                                data: .init(dataset: uncached, train: data.train.count, validation: data.validation.count),
                                loader: data.trainLoader.options, pipeline: data.trainLoader.pipeline)

        if let state = resumeFrom {
            try restore(state)
        } else if let initWeights = options.initWeights {
            let file = try TrainingCheckpoint.readFileBroadcast(URL(fileURLWithPath: initWeights), communicator: communicator)
            let spec = try ModelZoo.spec(config.model)
            let headParameters = Set(network.store.parameters.map(\.name).filter(spec.isHead))
            do { try StateDict.load(file, into: network.store, strict: false, skip: headParameters) } catch {
                throw TrainingFailure("\(initWeights): \(error)")
            }
        }
        // Replicas start identical: rank 0's parameters and buffers go to everyone.
        try collectives.broadcast(network.store.values, "the start broadcast of the weights")
        try collectives.broadcast(network.store.state, "the start broadcast of the BatchNorm buffers")
        // Every rank keeps the same average (same weights, rank 0's buffers), from the checkpoint's
        // or starting at the weights training starts from.
        if let average, let state = resumeFrom {
            // Loaded through the store: swapped in, the store holds the average's numbers.
            do { try average.withAveraged { try StateDict.load(state.file, into: network.store, prefix: WeightAverage.checkpointPrefix, strict: false) } } catch {
                throw TrainingFailure("\(state.path): \(error)")
            }
            average.updates = state.optimizerStep
        } else {
            average?.reset()
        }
    }

    // MARK: - The loop

    /// Trains until the last epoch, `--stop-after-steps`, or a preemption signal on any rank.
    @discardableResult
    public func run() throws -> RunOutcome {
        try announce()
        if isRoot { try MetricsLog.truncate(options.outDirectory, afterEpoch: position.epoch) }
        if isRoot && options.tensorBoard { tensorBoard = try TensorBoardLog(directory: options.outDirectory, resumedAt: position.step) }
        history = isRoot ? MetricsLog.read(options.outDirectory) : []
        let started = Date()
        var outcome = RunOutcome.finished
        while position.epoch < config.epochs {
            if let stop = try trainEpoch() { outcome = stop; break }
            try endEpoch()
        }
        if outcome == .finished && options.pictures { try finalPictures() }
        if isRoot && outcome != .stoppedAfterSteps {
            if stepTimes.steps > 0 { progress.log(stepTimes.summary) }
            if case .preempted(let step, let ranks) = outcome {
                let caught = Preemption.pendingSignal
                progress.log("stopped by \(caught != 0 ? Preemption.name(caught) + " on rank 0" : "a signal") (\(ranks) rank\(ranks == 1 ? "" : "s")): checkpoint at step \(step) written; exit status \(Preemption.exitStatus), continue with --resume auto")
            } else {
                let peak = peakResidentBytes(), planned = memoryPlan.peakBytes
                progress.log(String(format: "done in %.0f s; peak RSS %.0f MiB (rank 0; plan %.0f MiB, %+.1f %%); checkpoints in %@",
                                    Date().timeIntervalSince(started), Double(peak) / 1_048_576, Double(planned) / 1_048_576,
                                    100 * Double(planned - peak) / Double(max(peak, 1)), options.outDirectory.path))
            }
        }
        return outcome
    }

    /// Rank 0 prepares the run folder and says what will run.
    private func announce() throws {
        guard isRoot else { return }
        try FileManager.default.createDirectory(at: options.outDirectory, withIntermediateDirectories: true)
        let stale = CheckpointFile.removeStaleTemporaries(in: options.outDirectory)
        progress.log("fkp train: \(config.model) (\(network.parameterCount) parameters) on \(data.train.name), validation \(data.validation.count) faces")
        progress.log("ranks \(communicator.size) × batch \(config.batch) × accumulate \(config.accumulate) = global batch \(globalBatch); \(stepsPerEpoch) steps/epoch, \(config.epochs) epochs; \(options.threads) threads per rank (\(options.threadsSource)), OpenBLAS \(BLASCore.description)\(allreduceDescription); out \(options.outDirectory.path)")
        if options.recompute { progress.log("--recompute blocks: \(network.blocks.count) blocks free their activations after forward and recompute them in backward") }
        if !stale.isEmpty { progress.log("removed \(stale.count) temporary file\(stale.count == 1 ? "" : "s") of an interrupted checkpoint write: \(stale.joined(separator: ", "))") }
        if let elasticNote { progress.log(elasticNote) }
        if position.step > 0 { progress.log("resumed at epoch \(position.epoch + 1), step \(position.step) (sample \(position.sampleInEpoch) of the epoch)") }
        if position.step == 0 && options.pictures { try? Pictures.trainingSamples(data.trainLoader, to: options.outDirectory) }
    }

    /// The rest of the current epoch's steps; a non-nil outcome ends the run early.
    private func trainEpoch() throws -> RunOutcome? {
        // Resumed mid-epoch: the sums so far come from the checkpoint.
        epochStart = Date().addingTimeInterval(-position.epochSeconds)
        data.trainLoader.start(epoch: position.epoch, positions: position.sampleInEpoch ..< stepsPerEpoch * globalBatch)
        while position.batchInEpoch < stepsPerEpoch {
            if let stop = options.stopAfterSteps, stepsThisRun >= stop { return .stoppedAfterSteps }
            let (stepLoss, signalledRanks) = try trainStep()
            advance(loss: stepLoss)
            try tensorBoard?.step(position.step, loss: stepLoss,
                                  learningRate: schedule.rate(base: config.learningRate, step: position.step - 1))
            let saved = try checkpointIfDue()
            if signalledRanks > 0 {
                if !saved { try saveCheckpoint() }
                return .preempted(step: position.step, ranks: signalledRanks)
            }
        }
        return nil
    }

    /// Books a finished optimizer step and shows progress.
    private func advance(loss stepLoss: Float) {
        position.epochLossSum += Double(stepLoss)
        position.epochSteps += 1
        position.epochSeconds = Date().timeIntervalSince(epochStart)
        position.batchInEpoch += 1
        position.sampleInEpoch += globalBatch
        position.step += 1
        stepsThisRun += 1
        let elapsed = position.epochSeconds
        let perSecond = Double(position.epochImages * communicator.size) / max(elapsed, 1e-9)
        let stepsLeft = Double((config.epochs - position.epoch) * stepsPerEpoch - position.batchInEpoch)
        progress.update(.init(epoch: position.epoch + 1, epochs: config.epochs, step: position.batchInEpoch,
                              stepsPerEpoch: stepsPerEpoch, loss: position.epochLossSum / Double(position.epochSteps), imagesPerSecond: perSecond,
                              secondsLeft: stepsLeft * elapsed / Double(max(1, position.batchInEpoch))))
    }

    /// `--checkpoint-every N` steps; one that falls on the epoch's end is left to the epoch-end one.
    private func checkpointIfDue() throws -> Bool {
        let epochEndSaves = (position.epoch + 1) % options.checkpointEveryEpochs == 0 || position.epoch + 1 == config.epochs
        guard let every = options.checkpointEverySteps, position.step % every == 0,
              position.batchInEpoch < stepsPerEpoch || !epochEndSaves else { return false }
        try saveCheckpoint()
        return true
    }

    /// Validation, the epoch's metrics line, and the epoch checkpoint.
    private func endEpoch() throws {
        let seconds = Date().timeIntervalSince(epochStart)
        // Step losses are already averaged over ranks.
        let trainLoss = position.epochLossSum / Double(max(1, position.epochSteps))
        let evaluation = try data.validationLoader.map { loader in
            try withAveragedWeights {
                try Evaluator.evaluate(network: network, loader: loader, config: config,
                                       normalisingPair: normalisingPair, communicator: communicator, epoch: 0, collectives: collectives)
            }
        }
        let record = EpochRecord(epoch: position.epoch + 1, step: position.step, train_loss: trainLoss, val_loss: evaluation?.loss,
                                 images_per_s: Double(position.epochImages * communicator.size) / max(seconds, 1e-9),
                                 lr: Double(schedule.rate(base: config.learningRate, step: max(0, position.step - 1))),
                                 val_nme: evaluation?.metrics.nme, val_pixel_error: evaluation?.metrics.meanPixelError,
                                 val_failure_rate: evaluation?.metrics.failureRate, seconds: seconds)
        history.append(record)
        position.epoch += 1
        position.batchInEpoch = 0
        position.sampleInEpoch = 0
        position.epochLossSum = 0
        position.epochSteps = 0
        position.epochImages = 0
        position.epochSeconds = 0
        if isRoot {
            try MetricsLog.append(record, to: options.outDirectory)
            try tensorBoard?.epoch(record)
            var line = String(format: "epoch %d/%d train_loss %.6f", record.epoch, config.epochs, record.train_loss)
            if let e = evaluation {
                line += String(format: " val_loss %.6f val_nme %.4f val_px %.2f fail@0.08 %.1f%%", e.loss, e.metrics.nme,
                               e.metrics.meanPixelError, 100 * e.metrics.failureRate)
            }
            progress.log(line + String(format: " %.1f images/s %.0f s", record.images_per_s, seconds))
        }
        if position.epoch % options.checkpointEveryEpochs == 0 || position.epoch == config.epochs {
            try saveCheckpoint()
        }
    }

    /// One optimizer step: batch → forward → head's loss → backward, `accumulate` times; then the
    /// gradients averaged over ranks (sync), the divergence check, AdamW, and rank 0's BatchNorm
    /// buffers to every rank. Returns the loss averaged over the micro-batches and ranks, and how
    /// many ranks have caught a preemption signal (agreed in the same allreduce).
    private func trainStep() throws -> (loss: Float, signalledRanks: Int) {
        network.training = true
        var clock = StepClock()
        var local = 0.0
        // Sharded, gradients are reduce-scattered after backward, not allreduced during it.
        let overlap = options.overlap && communicator.size > 1 && sharding == nil
        sync.step = position.step + 1
        for micro in 0 ..< config.accumulate {
            let next = try data.trainLoader.next()
            stepTimes.data += clock.lap()
            guard let batch = next else { throw TrainingFailure("the loader ran out of batches mid-epoch") }
            input.load(batch)
            let output = network.forward(input)
            local += Double(head.loss(loss, of: output, against: batch))
            // Each micro-batch's mean counts 1/accumulate of the step's.
            if config.accumulate > 1 { scale(loss.gradient, by: 1 / Float(config.accumulate)) }
            // The last pass's backward starts the allreduce of each bucket it finishes.
            if overlap && micro == config.accumulate - 1 { sync.beginOverlap(network) }
            network.backward(loss.gradient)
            position.epochImages += batch.count
            stepTimes.compute += clock.lap()
        }
        if let sharding {
            try sharding.averageGradients(network.store.grads)
        } else if overlap { try sync.finish() } else { try sync.average(network.store.grads) }
        // The loss and the preemption flag share one tiny allreduce: agreeing costs nothing extra.
        var shared = [local / Double(config.accumulate), Preemption.pendingSignal != 0 ? 1 : 0]
        try collectives.allreduce(&shared, op: .sum, "step \(position.step + 1)'s loss agreement")
        stepTimes.communication += clock.lap()
        let mean = shared[0] / Double(communicator.size)
        try stopIfDiverged(loss: mean)
        optimizer.step(learningRate: schedule.rate(base: config.learningRate, step: position.step))
        network.store.zeroGrads()
        stepTimes.compute += clock.lap()
        try sharding?.gatherParameters(network.store.values)
        try broadcastBuffers()
        stepTimes.communication += clock.lap()
        average?.update()
        stepTimes.steps += 1
        return (Float(mean), Int(shared[1]))
    }

    private func scale(_ t: Tensor, by factor: Float) {
        for i in 0 ..< t.count { t.data[i] *= factor }
    }

    /// A NaN or infinite loss or gradient stops the run before the optimizer step, so the weights
    /// (and the last checkpoint) stay finite. The loss and the gradients are already averaged over
    /// ranks here, so every rank sees the same values and stops at the same step. The gradient is
    /// checked too because a loss can read finite while its gradient overflows.
    private func stopIfDiverged(loss: Double) throws {
        let grads = network.store.grads
        // In Double: a large but finite gradient must not overflow to a false alarm.
        let squares = try sharding?.gradientSquares(grads, collectives: collectives, step: position.step + 1)
            ?? orderedBlockSum(grads.count, work: grads.count) { start, end in
                var sum = 0.0
                for i in start ..< end { sum += Double(grads[i]) * Double(grads[i]) }
                return sum
            }
        let what = !loss.isFinite ? "the loss became \(loss)" : !squares.isFinite ? "the gradient norm became \(squares.squareRoot())" : nil
        guard let what else { return }
        throw TrainingFailure("\(what) at step \(position.step + 1) (epoch \(position.epoch + 1)); stopping. The last good checkpoint in \(options.outDirectory.path) is kept — try a lower --lr")
    }

    /// BatchNorm running statistics follow rank 0's, as DDP's default `broadcast_buffers` does:
    /// every rank then evaluates (validation shards, pictures) and saves the same model, and no
    /// checkpoint has to change the model first. Averaging would cost the same allreduce but
    /// give statistics of no single model's history; rank 0's are an ordinary EMA of its batches.
    private func broadcastBuffers() throws {
        guard communicator.size > 1 && network.store.bufferCount > 0 else { return }
        try collectives.broadcast(network.store.state, "step \(position.step)'s BatchNorm buffers")
    }

    /// How the gradients travel, for the start line (nothing on one rank).
    private var allreduceDescription: String {
        guard communicator.size > 1 else { return "" }
        let thread = sync.progress.map { String(format: ", MPI progress thread every %g ms", $0.interval * 1000) }
            ?? (options.progressInterval != nil && MPI.grantedThreadLevel != .multiple
                ? ", no MPI progress thread (MPI granted \(MPI.grantedThreadLevel), not multiple)" : "")
        return String(format: "; gradient buckets %g MB", Double(options.bucketBytes) / 1_048_576) + thread
    }

    /// `body` with the weights that are evaluated: the moving average with `--ema`, else the trained ones.
    private func withAveragedWeights<R>(_ body: () throws -> R) rethrows -> R {
        guard let average else { return try body() }
        return try average.withAveraged(body)
    }

    private func finalPictures() throws {
        try withAveragedWeights { try drawFinalPictures() }
    }

    private func drawFinalPictures() throws {
        guard let loader = data.validationLoader ?? Optional(data.trainLoader) else { return }
        let evaluation = try Evaluator.evaluate(network: network, loader: loader, config: config,
                                                normalisingPair: normalisingPair, communicator: communicator, keepImages: isRoot,
                                                collectives: collectives)
        Tensor.trimBlockArena()
        guard isRoot else { return }
        try? Pictures.lossCurves(history, to: options.outDirectory)
        try? Pictures.bestAndWorst(evaluation.images, to: options.outDirectory)
        try? Pictures.firstLayerFilters(network, to: options.outDirectory)
        if let first = evaluation.images.first?.crop {
            try? head.pictures(network: network, crop: first, normalisation: preprocessing.normalisation, to: options.outDirectory)
        }
        try tensorBoard?.pictures(in: options.outDirectory, step: position.step)
    }
}
