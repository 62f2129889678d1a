import Checkpoints
import Engine
import Foundation

// Checkpoints of a run: resuming from one, and writing one (every rank takes part, rank 0 writes).
extension Trainer {
    /// Loads a checkpoint's weights, optimizer state (this rank's slice when sharded) and position;
    /// a run on another rank count keeps the position, and its ranks keep their fresh dropout generators.
    func restore(_ state: TrainingCheckpoint.Contents) throws {
        guard state.model == network.config else {
            throw TrainingFailure("\(state.path): the checkpoint is for \(state.model.name) (\(state.model.outputs) outputs, \(state.model.inputWidth)x\(state.model.inputHeight)), this run builds \(network.config.name) (\(network.config.outputs) outputs, \(network.config.inputWidth)x\(network.config.inputHeight))")
        }
        do {
            try StateDict.load(state.file, into: network.store)
            if let sharding {
                try sharding.loadState(state.file, into: optimizer.stateBuffers, layout: network.store)
            } else {
                try StateDict.loadOptimizerState(state.file, into: optimizer.stateBuffers, layout: network.store)
            }
        } catch {
            throw TrainingFailure("\(state.path): \(error)")
        }
        optimizer.stepCount = state.optimizerStep
        position = state.position
        if position.worldSize == communicator.size, position.randomStates.count == communicator.size {
            network.context.random = RandomGenerator(state: position.randomStates[communicator.rank])
        } else {
            // Per-rank images of this epoch so far, as the new world counts them (for images/s).
            position.epochImages = position.epochImages * position.worldSize / communicator.size
        }
        position.worldSize = communicator.size
    }

    /// Gathers every rank's dropout generator and has rank 0 write the checkpoint. Reads the model
    /// only: how often a run checkpoints never changes what it trains.
    public func saveCheckpoint() throws {
        // Where a rank that stopped is caught: every rank comes here at the same step.
        try collectives.barrier("step \(position.step)'s checkpoint")
        Tensor.trimBlockArena()
        let words = try communicator.allgather(network.context.random.stateArray.map { Int64(bitPattern: $0) })
        position.randomStates = (0 ..< communicator.size).map { r in words[(r * 4) ..< (r * 4 + 4)].map { UInt64(bitPattern: $0) } }
        position.worldSize = communicator.size
        var failure = ""
        var file: SafeTensors?
        if isRoot {
            do {
                file = SafeTensors(metadata: try TrainingCheckpoint.metadata(
                    config: config, model: network.config, preprocessing: preprocessing, position: position,
                    globalBatch: globalBatch, learningRate: schedule.rate(base: config.learningRate, step: position.step),
                    optimizerStep: optimizer.stepCount))
                StateDict.add(network.store, to: &file!)
            } catch {
                failure = "\(error)"
            }
        }
        if let sharding {
            // Every rank takes part in gathering the moments; rank 0 adds each to the file, in the
            // unsharded format, before the next one is gathered.
            try sharding.forEachGatheredState(optimizer.stateBuffers) { name, full in
                if file != nil { StateDict.addOptimizerState([(name, full)], layout: network.store, to: &file!) }
            }
        } else if file != nil {
            StateDict.addOptimizerState(optimizer.stateBuffers, layout: network.store, to: &file!)
        }
        if file != nil {
            do {
                average?.withAveraged { StateDict.add(network.store, to: &file!, prefix: WeightAverage.checkpointPrefix) }
                let url = options.outDirectory.appendingPathComponent(CheckpointFile.name(step: position.step))
                try CheckpointFile.write(file!, to: url)
                try CheckpointFile.updateLatest(url, keep: options.keep)
            } catch {
                failure = "\(error)"
            }
        }
        // Every rank stops if rank 0 could not write (a full disk must not go unnoticed). The others
        // wait here while rank 0 writes: a write that hangs (a stuck file system) is a stall too.
        var failed = [Int32(failure.isEmpty ? 0 : 1)]
        try collectives.broadcast(&failed, "step \(position.step)'s checkpoint write on rank 0")
        if failed[0] != 0 { failure = try communicator.broadcast(failure) }
        if !failure.isEmpty { throw TrainingFailure("checkpoint not written: \(failure)") }
    }
}
