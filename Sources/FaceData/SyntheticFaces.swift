// Placeholder so the data branch compiles on its own; the synthetic-faces branch replaces this file.
public struct SyntheticFaces: FaceDataset {
    public init(count: Int, seed: UInt64) {}
    public var name: String { "synthetic (placeholder)" }
    public var count: Int { 0 }
    public var markup: KeypointMarkup { .ibug68 }
    public func record(at index: Int) throws -> FaceRecord { throw DataError(file: "synthetic", "placeholder") }
}
