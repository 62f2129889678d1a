import Checkpoints
import Engine
import Foundation

/// Converts pretrained RGB weights (torchvision names) to fkp's grey-input models: the first
/// convolution's kernels are summed over the three colour channels (a grey image is R = G = B, so
/// the folded filter gives the same response), and tensors whose shapes differ (the classifier)
/// are dropped so `fkp train --init` initialises them freshly.
public enum WeightImport {
    public struct Summary { public var loaded = 0, folded = 0; public var skipped: [String] = [] }

    public static func convert(_ source: SafeTensors, for store: ParameterStore, into out: inout SafeTensors) throws -> Summary {
        var summary = Summary()
        for info in store.parameters + store.buffers {
            guard let entry = source.entries[info.name], let values = source.floats(info.name) else {
                summary.skipped.append(info.name); continue
            }
            if entry.shape == info.shape {
                if entry.dtype == .i64 { out.add(info.name, shape: info.shape, int64s: values.map { Int64($0) }) } else {
                    values.withUnsafeBufferPointer { out.add(info.name, shape: info.shape, floats: $0) }
                }
                summary.loaded += 1
            } else if info.shape.count == 4, entry.shape.count == 4, info.shape[1] == 1, entry.shape[1] == 3,
                      entry.shape[0] == info.shape[0], entry.shape[2...] == info.shape[2...] {
                let plane = info.shape[2] * info.shape[3]
                var grey = [Float](repeating: 0, count: info.count)
                for o in 0 ..< info.shape[0] {
                    for c in 0 ..< 3 { for i in 0 ..< plane { grey[o * plane + i] += values[(o * 3 + c) * plane + i] } }
                }
                grey.withUnsafeBufferPointer { out.add(info.name, shape: info.shape, floats: $0) }
                summary.loaded += 1
                summary.folded += 1
            } else {
                summary.skipped.append(info.name)
            }
        }
        return summary
    }
}
