import Checkpoints
import Foundation
import Training

/// The fixtures are safetensors files, read with the checkpoint code's parser; these helpers
/// give the tests name-prefix listing and (shape, values) lookup.
extension SafeTensors {
    init(url: URL) throws {
        self = try SafeTensors(parsing: [UInt8](try Data(contentsOf: url)))
    }

    func names(prefix: String) -> [String] {
        entries.keys.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }.sorted()
    }

    subscript(name: String) -> (shape: [Int], values: [Float])? {
        guard let entry = entries[name], let values = floats(name) else { return nil }
        return (entry.shape, values)
    }
}

/// Element-wise comparison that remembers the worst element.
struct Comparison {
    var maxAbs: Float = 0
    var maxRel: Float = 0
    var failures: [String] = []
    let atol: Float, rtol: Float

    init(atol: Float, rtol: Float) { self.atol = atol; self.rtol = rtol }

    /// Fails where |got − want| > atol + rtol·|want|.
    mutating func check(_ name: String, _ got: [Float], _ want: [Float]) {
        guard got.count == want.count else {
            failures.append("\(name): \(got.count) values, expected \(want.count)")
            return
        }
        var worst: (Float, Int) = (0, -1)
        for i in 0 ..< got.count {
            let d = abs(got[i] - want[i])
            maxAbs = max(maxAbs, d)
            maxRel = max(maxRel, d / max(abs(want[i]), 1e-3))
            let excess = d - (atol + rtol * abs(want[i]))
            if excess > 0 && excess > worst.0 { worst = (excess, i) }
            if !d.isFinite || got[i].isNaN { worst = (.infinity, i) }
        }
        if worst.1 >= 0 {
            let i = worst.1
            failures.append("\(name)[\(i)]: got \(got[i]), expected \(want[i]) (|diff| \(abs(got[i] - want[i])))")
        }
    }
}
