import SwiftMPI

/// Allreduce of every type × operation, in place and out of place, checked against the value
/// each rank computes on its own from every rank's (known) data.
func checkAllreduce(_ report: Report) {
    for op in [ReduceOp.sum, .max, .min] {
        checkAllreduce(Float.self, "float", op, report)
        checkAllreduce(Double.self, "double", op, report)
        checkAllreduce(Int32.self, "int32", op, report)
        checkAllreduce(Int64.self, "int64", op, report)
    }
    report.run("allreduce-scalar-sum") {
        let got = try report.world.allreduce(Int64(report.world.rank + 1))
        let n = Int64(report.world.size)
        return (got == n * (n + 1) / 2, "got \(got)")
    }
    // A buffer big enough for MPI to split it into segments (and for shared-memory pipelining).
    report.run("allreduce-large-float-sum") {
        let world = report.world
        var data = [Float](repeating: Float(world.rank + 1), count: 1 << 20)
        try world.allreduce(&data)
        let want = Float(world.size * (world.size + 1) / 2)
        let bad = data.firstIndex { $0 != want }
        return (bad == nil, "element \(bad ?? -1) is \(bad.map { data[$0] } ?? 0), want \(want)")
    }
}

private func expected<T: MPIScalar & Comparable>(_: T.Type, _ op: ReduceOp, size: Int, count: Int) -> [T] {
    (0 ..< count).map { i in
        let values = (0 ..< size).map { r in T(exactly: sample(rank: r, index: i))! }
        switch op {
        case .sum: return values.reduce(0, +)
        case .max: return values.max()!
        case .min: return values.min()!
        }
    }
}

private func checkAllreduce<T: MPIScalar & Comparable>(_ type: T.Type, _ typeName: String, _ op: ReduceOp,
                                                         _ report: Report) {
    let world = report.world
    let count = 37
    let mine = (0 ..< count).map { T(exactly: sample(rank: world.rank, index: $0))! }
    let want = expected(T.self, op, size: world.size, count: count)
    let name = "allreduce-\(typeName)-\(op)"

    report.run("\(name)-inplace") {
        var data = mine
        try world.allreduce(&data, op: op)
        return (data == want, "got \(data.prefix(4)) want \(want.prefix(4))")
    }
    report.run("\(name)-outofplace") {
        var output = [T](repeating: 0, count: count)
        try world.allreduce(mine, into: &output, op: op)
        // Out of place must leave the input alone.
        let input = (0 ..< count).map { T(exactly: sample(rank: world.rank, index: $0))! }
        return (output == want && mine == input, "got \(output.prefix(4)) want \(want.prefix(4))")
    }
    report.run("\(name)-buffer") {
        let output = UnsafeMutableBufferPointer<T>.allocate(capacity: count)
        defer { output.deallocate() }
        try mine.withUnsafeBufferPointer { try world.allreduce($0, into: output, op: op) }
        return (Array(output) == want, "got \(output.prefix(4)) want \(want.prefix(4))")
    }
}
