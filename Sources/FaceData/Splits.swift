/// Train/test splits as index views on a dataset: a seeded random split, and a by-person split that
/// never puts one person on both sides (faces of one person are near-duplicates; mixing them would
/// flatter the test error).

/// A subset of a dataset's records, in the given order.
public struct DatasetSubset: FaceDataset, PersonLabelled {
    public let base: any FaceDataset
    public let indices: [Int]
    public let label: String

    public init(base: any FaceDataset, indices: [Int], label: String) {
        precondition(indices.allSatisfy { $0 >= 0 && $0 < base.count }, "DatasetSubset: index out of range")
        self.base = base; self.indices = indices; self.label = label
    }

    public var name: String { "\(base.name) [\(label): \(count)]" }
    public var count: Int { indices.count }
    public var markup: KeypointMarkup { base.markup }
    public func record(at index: Int) throws -> FaceRecord { try base.record(at: indices[index]) }
    public func face(at index: Int) throws -> any SampleFace { try base.face(at: indices[index]) }
    public func person(at index: Int) -> String { personOf(base, indices[index]) }
}

func personOf(_ dataset: any FaceDataset, _ index: Int) -> String {
    (dataset as? PersonLabelled)?.person(at: index) ?? "#\(index)"
}

public struct DatasetSplit: Sendable {
    public var train: DatasetSubset
    public var test: DatasetSubset
}

extension FaceDataset {
    /// A seeded random split: `round(testFraction · count)` faces go to test (48 of IMM's 240 at 0.2),
    /// the rest to train, both in ascending index order.
    public func randomSplit(testFraction: Double, seed: UInt64) -> DatasetSplit {
        var rng = SplitMix64(seed, 0x5917)
        let permutation = rng.permutation(count)
        let testCount = Int((testFraction * Double(count)).rounded())
        let test = Array(permutation.prefix(testCount)).sorted()
        let train = Array(permutation.dropFirst(testCount)).sorted()
        return DatasetSplit(train: DatasetSubset(base: self, indices: train, label: "train"),
                            test: DatasetSubset(base: self, indices: test, label: "test"))
    }

    /// A seeded split by person (`PersonLabelled`; otherwise every face is its own person): whole
    /// people, in a seeded random order, go to test until it holds `round(testFraction · count)` faces
    /// or more.
    public func personSplit(testFraction: Double, seed: UInt64) -> DatasetSplit {
        var faces: [String: [Int]] = [:]
        var order: [String] = []
        for i in 0..<count {
            let person = personOf(self, i)
            if faces[person] == nil { order.append(person) }
            faces[person, default: []].append(i)
        }
        var rng = SplitMix64(seed, 0x9E750)
        let shuffled = rng.permutation(order.count).map { order[$0] }
        let wanted = Int((testFraction * Double(count)).rounded())
        var test: [Int] = [], train: [Int] = []
        for person in shuffled {
            if test.count < wanted { test += faces[person]! } else { train += faces[person]! }
        }
        return DatasetSplit(train: DatasetSubset(base: self, indices: train.sorted(), label: "train"),
                            test: DatasetSubset(base: self, indices: test.sorted(), label: "test"))
    }
}
