import FaceData
import Foundation
import TestSupport
import XCTest

/// Elastic resume at the data level: the epoch's sample stream is split by position, so a run that
/// changes its number of ranks at a step boundary still visits every sample of the epoch once.
final class ElasticSamplerTests: XCTestCase {
    /// Global step s covers stream positions s·G ..< (s+1)·G on any number of ranks.
    func stepSamples(count: Int, world: Int, globalBatch: Int, steps: Range<Int>, epoch: Int) -> [Int] {
        let positions = steps.lowerBound * globalBatch ..< steps.upperBound * globalBatch
        return (0 ..< world).flatMap {
            DistributedSampler(count: count, rank: $0, worldSize: world, seed: 5, batchSize: globalBatch / world)
                .indices(epoch: epoch, positions: positions)
        }
    }

    func testAnEpochSplitAcrossWorldSizesVisitsThePermutationOnce() {
        let count = 48, permutation = DistributedSampler(count: count, seed: 5).globalPermutation(epoch: 2)
        // 2 ranks for 3 steps of global batch 8, then 1 rank; 1 rank for 2 steps of 12, then 3 ranks.
        for (before, after, globalBatch, switchAt) in [(2, 1, 8, 3), (1, 3, 12, 2), (4, 2, 16, 1)] {
            let steps = count / globalBatch
            let visited = stepSamples(count: count, world: before, globalBatch: globalBatch, steps: 0 ..< switchAt, epoch: 2)
                + stepSamples(count: count, world: after, globalBatch: globalBatch, steps: switchAt ..< steps, epoch: 2)
            XCTAssertEqual(visited.sorted(), permutation.sorted(), "\(before) -> \(after) ranks")
            XCTAssertEqual(visited.sorted(), Array(0 ..< count))
            // Step by step the same samples as one rank would take.
            for s in 0 ..< steps {
                let world = s < switchAt ? before : after
                XCTAssertEqual(stepSamples(count: count, world: world, globalBatch: globalBatch, steps: s ..< s + 1, epoch: 2).sorted(),
                               permutation[s * globalBatch ..< (s + 1) * globalBatch].sorted(), "step \(s)")
            }
        }
    }

    /// From position 0 a rank's share is its share of the whole padded epoch (a run that never
    /// changes world size loads the same batches either way); past the end the stream wraps around.
    func testFromTheStartItIsTheEpochsShareAndItWraps() {
        for world in [1, 2, 3] {
            for rank in 0 ..< world {
                let sampler = DistributedSampler(count: 30, rank: rank, worldSize: world, seed: 5, batchSize: 4)
                XCTAssertEqual(sampler.indices(epoch: 1, positions: 0 ..< 30), sampler.indices(epoch: 1))
            }
        }
        let one = DistributedSampler(count: 10, seed: 5)
        XCTAssertEqual(one.indices(epoch: 0, positions: 8 ..< 12), Array(one.globalPermutation(epoch: 0)[8...]) + one.globalPermutation(epoch: 0)[0 ..< 2])
    }

    /// The real loader, resumed half-way on another world size: the batches handed out over the
    /// epoch hold the permutation's samples once each.
    func testLoaderResumedOnAnotherWorldSizeVisitsEachSampleOnce() throws {
        let data = DatasetSubset(base: try IMMDataset(folder: immFolder), indices: Array(0 ..< 24), label: "first 24")
        var options = LoaderOptions()
        options.width = 32; options.height = 24; options.augment = false
        func visit(world: Int, batch: Int, positions: Range<Int>) throws -> [Int] {
            options.batchSize = batch
            return try (0 ..< world).flatMap { rank -> [Int] in
                let sampler = DistributedSampler(count: 24, rank: rank, worldSize: world, seed: 5)
                let loader = try BatchLoader(dataset: data, sampler: sampler, options: options)
                let batches = loader.start(epoch: 1, positions: positions)
                var seen: [Int] = []
                while let b = try loader.next() { seen += b.samples.map(\.index) }
                XCTAssertEqual(batches, (positions.count / world + batch - 1) / batch)
                return seen
            }
        }
        // Global batch 6: 2 ranks × 3 for two steps, then 3 ranks × 2 for the other two.
        let visited = try visit(world: 2, batch: 3, positions: 0 ..< 12) + visit(world: 3, batch: 2, positions: 12 ..< 24)
        XCTAssertEqual(visited.sorted(), DistributedSampler(count: 24, seed: 5).globalPermutation(epoch: 1).sorted())
        XCTAssertEqual(Set(visited).count, 24)
    }

    /// Within each global batch a rank takes the samples it is home to (index mod ranks) first, so
    /// its cache sees mostly its own faces; every rank still takes exactly its batch, and the step
    /// covers the same samples as on one rank.
    func testRanksTakeTheirOwnSamplesFirst() {
        let count = 1000
        for (world, batch) in [(2, 32), (4, 16), (3, 5)] {
            var home = 0, taken = 0
            for epoch in 0 ..< 3 {
                let permutation = DistributedSampler(count: count, seed: 9).globalPermutation(epoch: epoch)
                let shares = (0 ..< world).map {
                    DistributedSampler(count: count, rank: $0, worldSize: world, seed: 9, batchSize: batch).indices(epoch: epoch)
                }
                let steps = (count + world * batch - 1) / (world * batch)
                for s in 0 ..< steps {
                    let window = s * world * batch ..< min((s + 1) * world * batch, shares[0].count * world)
                    var step: [Int] = []
                    for (rank, share) in shares.enumerated() {
                        let mine = Array(share[min(s * batch, share.count) ..< min((s + 1) * batch, share.count)])
                        XCTAssertEqual(mine.count, window.count / world, "\(world) ranks, step \(s)")
                        home += mine.filter { $0 % world == rank }.count
                        taken += mine.count
                        step += mine
                    }
                    XCTAssertEqual(step.sorted(), window.map { permutation[$0 % count] }.sorted(), "\(world) ranks, step \(s)")
                }
            }
            // A strided split gives 1/world of a rank's samples from home; this one 80 % or more.
            XCTAssertGreaterThan(Double(home) / Double(taken), 0.8, "\(world) ranks × batch \(batch)")
        }
    }
}
