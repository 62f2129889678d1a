import CKernels

/// Inference with the BatchNorm2d after a Conv2d applied in the convolution's epilogue (and, in a
/// ResNet block, the residual Add and its ReLU after that), while each output tile is still in
/// cache, instead of as one or two more passes over the activations.
///
/// Why an epilogue and not weights scaled once: the epilogue computes y·scale + shift with the
/// per-channel scale and shift of the BatchNorm's own evaluation forward, the same operations in
/// the same order, so a fused forward gives exactly the bits of the separate passes, and nothing
/// has to notice when the weights or running statistics change (an optimizer step, a checkpoint
/// load, a weight average swapped in). The multiply costs nothing next to the convolution; the
/// passes it replaces were bound by memory (ResNet-50 b8 224² inference on 1 thread: BatchNorm
/// 52 ms and Add 33 ms of a 650 ms step). ONNX export folds the BatchNorm into the weights
/// instead (GraphExport.swift), as inference engines expect.
///
/// A pair is linked once, when the model is built (`foldAtInference`): every Sequential links a
/// Conv2d or DepthwiseConv2d that is directly followed by a BatchNorm2d, and the ResNet stem and
/// blocks link theirs. Training forwards ignore the link.
public enum ConvEpilogue {
    /// Off: every BatchNorm and Add runs as its own pass at inference too (the tests compare the
    /// two, bit for bit).
    nonisolated(unsafe) public static var enabled = true

    /// Links `conv` to the BatchNorm2d that follows it: at inference `conv` applies it and `bn`
    /// passes its input through.
    public static func foldAtInference(_ conv: Conv2d, _ bn: BatchNorm2d) { link(conv, bn) }

    private static func link(_ layer: CarriesNormalization, _ bn: BatchNorm2d) {
        precondition(layer.carriedChannels == bn.channels, "\(layer) cannot carry \(bn.typeDescription)")
        layer.foldedNormalization = bn
        bn.isFoldedIntoConvolution = true
    }

    /// Links every convolution that a BatchNorm2d directly follows in `layers` (a Sequential's children).
    static func foldPairs(_ layers: [Module]) {
        for (first, second) in zip(layers, layers.dropFirst()) {
            if let layer = first as? CarriesNormalization, let bn = second as? BatchNorm2d, layer.carriedChannels == bn.channels {
                link(layer, bn)
            }
        }
    }
}

/// A convolution that can apply the BatchNorm2d after it in its inference epilogue (Conv2d,
/// DepthwiseConv2d).
protocol CarriesNormalization: AnyObject {
    /// Its output channels; nil when it cannot carry one (a fused ReLU of its own comes first).
    var carriedChannels: Int? { get }
    var foldedNormalization: BatchNorm2d? { get set }
}

extension BatchNorm2d {
    /// This layer's evaluation forward as an epilogue: its terms written into `terms` ([2·C]), then
    /// `residual` added and the ReLU after it (a ResNet block's Add), if given.
    func epilogue(_ terms: Tensor, residual: (tensor: Tensor, relu: Bool)? = nil) -> AffineEpilogue {
        terms.resize([2 * channels])
        evaluationTerms(scale: terms.data, shift: terms.data + channels)
        return AffineEpilogue(scale: terms.data, shift: terms.data + channels,
                              residual: residual.map { UnsafePointer($0.tensor.data) }, relu: fusedReLU || residual?.relu == true,
                              cap: fusedReLU ? reluCap : .infinity)
    }
}

/// One convolution's epilogue for one forward: per output channel o, y[o, ·] = y[o, ·]·scale[o] +
/// shift[o], + residual[o, ·], then ReLU (up to `cap`) (see fkp_affine_epilogue).
struct AffineEpilogue {
    let scale, shift: UnsafePointer<Float>
    /// [Cout, columns] like the output; nil: no residual.
    let residual: UnsafePointer<Float>?
    let relu: Bool
    let cap: Float

    /// Rows `rows` (output channels) × columns `cols` of y, whose rows are `stride` apart.
    @inline(__always)
    func apply(_ y: UnsafeMutablePointer<Float>, rows: Range<Int>, cols: Range<Int>, stride: Int) {
        let offset = rows.lowerBound * stride + cols.lowerBound
        fkp_affine_epilogue(y + offset, stride, rows.count, cols.count, scale + rows.lowerBound, shift + rows.lowerBound,
                            residual.map { $0 + offset }, stride, relu ? 1 : 0, cap)
    }

    /// The whole output [rows, stride] as one more pass, split over the pool by channels (paths
    /// whose kernels write the output in their own order).
    func applyAll(_ y: UnsafeMutablePointer<Float>, rows: Int, stride: Int) {
        Parallel.chunks(rows, work: 2 * rows * stride) { start, end in
            apply(y, rows: start ..< end, cols: 0 ..< stride, stride: stride)
        }
    }
}
