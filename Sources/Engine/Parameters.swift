/// All of a model's numbers in a few flat buffers (llm.c style):
/// - `values`: every trainable parameter, one contiguous buffer;
/// - `grads`: the same layout, so one allreduce covers every gradient;
/// - `state`: non-trained buffers (BatchNorm running mean/var, num_batches_tracked).
/// Optimizer state lives in buffers of the `values` layout too (see Optimizer.swift).
/// Each entry is named exactly as PyTorch's state_dict names it, so checkpoints interoperate.

public struct ParameterInfo: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case weight, bias
        /// Running statistics and counters: saved and loaded, never trained.
        case buffer
    }
    public var name: String
    public var shape: [Int]
    public var offset: Int
    public var kind: Kind
    public var count: Int { shape.reduce(1, *) }
}

/// A handle to one entry: an offset into the store's buffers.
public struct ParameterRef: Sendable {
    public let offset: Int
    public let count: Int
}

public final class ParameterStore {
    public private(set) var parameters: [ParameterInfo] = []
    public private(set) var buffers: [ParameterInfo] = []
    public private(set) var parameterCount = 0
    public private(set) var bufferCount = 0
    /// Trainable parameters, their gradients and the non-trained buffers.
    public private(set) var values: UnsafeMutableBufferPointer<Float> = .init(start: nil, count: 0)
    public private(set) var grads: UnsafeMutableBufferPointer<Float> = .init(start: nil, count: 0)
    public private(set) var state: UnsafeMutableBufferPointer<Float> = .init(start: nil, count: 0)
    private var initializers: [(ParameterRef, (UnsafeMutableBufferPointer<Float>) -> Void)] = []
    private var stateInitializers: [(ParameterRef, Float)] = []
    public private(set) var isAllocated = false

    public init() {}

    deinit {
        values.deallocate(); grads.deallocate(); state.deallocate()
    }

    /// Declares a trainable parameter; `initialize` fills it when the store is allocated.
    public func declare(_ name: String, shape: [Int], kind: ParameterInfo.Kind,
                        initialize: @escaping (UnsafeMutableBufferPointer<Float>) -> Void) -> ParameterRef {
        precondition(!isAllocated, "declare(\(name)) after allocation")
        precondition(kind != .buffer)
        precondition(!parameters.contains { $0.name == name }, "duplicate parameter name \(name)")
        let info = ParameterInfo(name: name, shape: shape, offset: parameterCount, kind: kind)
        parameters.append(info)
        parameterCount += info.count
        let ref = ParameterRef(offset: info.offset, count: info.count)
        initializers.append((ref, initialize))
        return ref
    }

    /// Declares a non-trained buffer filled with `value` (e.g. running_var = 1).
    public func declareBuffer(_ name: String, shape: [Int], value: Float) -> ParameterRef {
        precondition(!isAllocated, "declareBuffer(\(name)) after allocation")
        precondition(!buffers.contains { $0.name == name }, "duplicate buffer name \(name)")
        let info = ParameterInfo(name: name, shape: shape, offset: bufferCount, kind: .buffer)
        buffers.append(info)
        bufferCount += info.count
        let ref = ParameterRef(offset: info.offset, count: info.count)
        stateInitializers.append((ref, value))
        return ref
    }

    /// Allocates the buffers and runs every initializer in declaration order (so a seeded
    /// generator gives the same weights every time).
    public func allocate() {
        precondition(!isAllocated, "allocate() twice")
        values = .allocate(capacity: parameterCount); values.initialize(repeating: 0)
        grads = .allocate(capacity: parameterCount); grads.initialize(repeating: 0)
        state = .allocate(capacity: bufferCount); state.initialize(repeating: 0)
        isAllocated = true
        for (ref, initialize) in initializers { initialize(slice(values, ref)) }
        for (ref, value) in stateInitializers { slice(state, ref).update(repeating: value) }
        initializers = []
        stateInitializers = []
    }

    @inline(__always) public func value(_ ref: ParameterRef) -> UnsafeMutablePointer<Float> { values.baseAddress! + ref.offset }
    @inline(__always) public func grad(_ ref: ParameterRef) -> UnsafeMutablePointer<Float> { grads.baseAddress! + ref.offset }
    @inline(__always) public func buffer(_ ref: ParameterRef) -> UnsafeMutablePointer<Float> { state.baseAddress! + ref.offset }

    public func zeroGrads() { grads.update(repeating: 0) }

    public func info(named name: String) -> ParameterInfo? {
        parameters.first { $0.name == name } ?? buffers.first { $0.name == name }
    }

    /// The values of a named parameter or buffer (a copy).
    public func array(named name: String) -> [Float]? {
        if let p = parameters.first(where: { $0.name == name }) { return Array(values[p.offset ..< p.offset + p.count]) }
        if let b = buffers.first(where: { $0.name == name }) { return Array(state[b.offset ..< b.offset + b.count]) }
        return nil
    }

    public func gradArray(named name: String) -> [Float]? {
        guard let p = parameters.first(where: { $0.name == name }) else { return nil }
        return Array(grads[p.offset ..< p.offset + p.count])
    }

    /// Overwrites a named parameter or buffer.
    public func set(_ name: String, _ newValues: [Float]) {
        if let p = parameters.first(where: { $0.name == name }) {
            precondition(newValues.count == p.count, "\(name): \(newValues.count) values for shape \(p.shape)")
            _ = UnsafeMutableBufferPointer(rebasing: values[p.offset ..< p.offset + p.count]).update(fromContentsOf: newValues)
        } else if let b = buffers.first(where: { $0.name == name }) {
            precondition(newValues.count == b.count, "\(name): \(newValues.count) values for shape \(b.shape)")
            _ = UnsafeMutableBufferPointer(rebasing: state[b.offset ..< b.offset + b.count]).update(fromContentsOf: newValues)
        } else {
            preconditionFailure("no parameter or buffer named \(name)")
        }
    }

    private func slice(_ buffer: UnsafeMutableBufferPointer<Float>, _ ref: ParameterRef) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(rebasing: buffer[ref.offset ..< ref.offset + ref.count])
    }
}
