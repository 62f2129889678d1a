import Engine

/// Output size of a convolution or pooling window along one axis.
@inline(__always)
func windowOutput(_ size: Int, kernel: Int, stride: Int, padding: Int = 0) -> Int {
    (size + 2 * padding - kernel) / stride + 1
}

/// Stops the input gradient of a network's first layer: nothing upstream needs it.
func skipInputGradient(_ module: Module) {
    var m = module
    while true {
        if let first = m as? InputGradientOptional { first.computesInputGradient = false; return }
        if let firstChild = m.children.first?.module { m = firstChild } else { return }
    }
}
