import Engine
import Foundation

/// Maps a model's flat buffers (and its optimizer's) to named safetensors tensors and back.
/// Names are PyTorch's state_dict names; optimizer state is stored per parameter as
/// `optimizer.<state>.<parameter name>` (e.g. `optimizer.exp_avg.fc.weight`).
public enum StateDict {
    public struct Mismatch: Error, CustomStringConvertible {
        public let description: String
    }

    /// Adds every parameter and buffer of `store` (BatchNorm counters as I64, as PyTorch keeps them).
    public static func add(_ store: ParameterStore, to file: inout SafeTensors, prefix: String = "") {
        for p in store.parameters {
            file.add(prefix + p.name, shape: p.shape, floats: UnsafeBufferPointer(rebasing: store.values[p.offset ..< p.offset + p.count]))
        }
        for b in store.buffers {
            let values = store.state[b.offset ..< b.offset + b.count]
            if b.name.hasSuffix("num_batches_tracked") {
                file.add(prefix + b.name, shape: b.shape, int64s: values.map { Int64($0) })
            } else {
                file.add(prefix + b.name, shape: b.shape, floats: UnsafeBufferPointer(rebasing: values))
            }
        }
    }

    /// Adds optimizer state buffers (each in the parameters' flat layout), split per parameter.
    public static func addOptimizerState(_ buffers: [(name: String, buffer: UnsafeMutableBufferPointer<Float>)],
                                         layout store: ParameterStore, to file: inout SafeTensors) {
        for (stateName, buffer) in buffers {
            for p in store.parameters {
                file.add("optimizer.\(stateName).\(p.name)", shape: p.shape,
                         floats: UnsafeBufferPointer(rebasing: buffer[p.offset ..< p.offset + p.count]))
            }
        }
    }

    /// Loads parameters and buffers by name. Every entry of the store must be present with its
    /// exact shape; `strict` also rejects model tensors in the file that the store lacks.
    /// `skip` names entries to leave at their initial values (e.g. a pretrained model's fc).
    public static func load(_ file: SafeTensors, into store: ParameterStore, prefix: String = "", strict: Bool = true,
                            skip: Set<String> = []) throws {
        var problems: [String] = []
        for info in store.parameters + store.buffers where !skip.contains(info.name) {
            guard let entry = file.entries[prefix + info.name] else { problems.append("missing \(info.name)"); continue }
            guard entry.shape == info.shape || (entry.shape.reduce(1, *) == info.count && info.shape.isEmpty) else {
                problems.append("\(info.name) has shape \(entry.shape), the model expects \(info.shape)"); continue
            }
            let values = file.floats(prefix + info.name)!
            if info.kind == .buffer {
                UnsafeMutableBufferPointer(rebasing: store.state[info.offset ..< info.offset + info.count]).update(fromContentsOf: values)
            } else {
                UnsafeMutableBufferPointer(rebasing: store.values[info.offset ..< info.offset + info.count]).update(fromContentsOf: values)
            }
        }
        if strict {
            let known = Set((store.parameters + store.buffers).map { prefix + $0.name })
            let extra = file.order.filter { !$0.hasPrefix("optimizer.") && !known.contains($0) && !skip.contains($0) }
            if !extra.isEmpty { problems.append("unexpected tensors \(extra.prefix(3).joined(separator: ", "))\(extra.count > 3 ? " (+\(extra.count - 3) more)" : "")") }
        }
        if !problems.isEmpty {
            throw Mismatch(description: "does not match the model: \(problems.prefix(3).joined(separator: "; "))\(problems.count > 3 ? " (+\(problems.count - 3) more)" : "")")
        }
    }

    public static func loadOptimizerState(_ file: SafeTensors, into buffers: [(name: String, buffer: UnsafeMutableBufferPointer<Float>)],
                                          layout store: ParameterStore) throws {
        for (stateName, buffer) in buffers {
            for p in store.parameters {
                let name = "optimizer.\(stateName).\(p.name)"
                guard file.copy(name, into: UnsafeMutableBufferPointer(rebasing: buffer[p.offset ..< p.offset + p.count])) else {
                    throw Mismatch(description: "optimizer state \(name) is missing or has the wrong size")
                }
            }
        }
    }
}
