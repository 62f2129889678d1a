/// The keypoint markups of the supported datasets, with their left/right flip permutations.
extension KeypointMarkup {
    /// Builds a permutation from mirror pairs; unlisted points map to themselves (on the mid-line).
    static func permutation(count: Int, pairs: [(Int, Int)]) -> [Int] {
        var p = Array(0..<count)
        for (i, j) in pairs { p[i] = j; p[j] = i }
        return p
    }

    /// iBUG 300-W 68 points: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67.
    /// Normalised by the outer eye corners (36, 45), the usual inter-ocular NME.
    public static let ibug68 = KeypointMarkup(
        name: "ibug68", count: 68,
        flipPermutation: permutation(count: 68, pairs:
            (0..<8).map { ($0, 16 - $0) }                                 // jaw
            + (0..<5).map { (17 + $0, 26 - $0) }                          // brows
            + [(31, 35), (32, 34)]                                        // nostrils
            + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)] // eyes
            + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]          // outer lips
            + [(60, 64), (61, 63), (65, 67)]),                            // inner lips
        normalisingPair: (36, 45))

    /// IMM face database, 58 points in 7 paths (see the .asf files): jaw 0-12 (left to right on the
    /// picture), picture-right eye 13-20 (13 outer corner, 17 inner, 14-16 upper lid, 18-20 lower),
    /// picture-left eye 21-28 (21 outer, 25 inner, same order), picture-right brow 29-33 (inner to
    /// outer), picture-left brow 34-38 (inner to outer), mouth 39-46 (39 and 43 the corners, 40-42
    /// upper lip, 44-46 lower), nose 47-57 (52 the tip). Normalised by the outer eye corners (21, 13).
    public static let imm58 = KeypointMarkup(
        name: "imm58", count: 58,
        flipPermutation: permutation(count: 58, pairs:
            (0..<6).map { ($0, 12 - $0) }                                 // jaw
            + (0..<8).map { (13 + $0, 21 + $0) }                          // eyes
            + (0..<5).map { (29 + $0, 34 + $0) }                          // brows
            + [(39, 43), (40, 42), (44, 46)]                              // mouth
            + (0..<5).map { (47 + $0, 57 - $0) }),                        // nose
        normalisingPair: (21, 13))

    /// Index of the nose tip in the IMM markup.
    public static let immNoseTip = 52

    /// A markup with no known symmetry (flips keep every label): for datasets of other point counts.
    public static func unknown(count: Int) -> KeypointMarkup {
        KeypointMarkup(name: "points\(count)", count: count, flipPermutation: Array(0..<count), normalisingPair: nil)
    }
}

extension KeypointMarkup {
    /// The NME pair re-indexed into a keypoint subset (nil when the subset lacks either point).
    public func normalisingPair(subset: [Int]?) -> (Int, Int)? {
        guard let (a, b) = normalisingPair else { return nil }
        guard let subset else { return (a, b) }
        guard let i = subset.firstIndex(of: a), let j = subset.firstIndex(of: b) else { return nil }
        return (i, j)
    }
}
