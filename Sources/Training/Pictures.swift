import Engine
import FaceData
import Foundation
import Models

/// The PNG pictures a run writes into its folder (like the write-up's figures).
public enum Pictures {
    /// A grid of the first training batch with its (augmented) keypoints: training_samples.png.
    public static func trainingSamples(_ loader: BatchLoader, to directory: URL, count: Int = 16) throws {
        loader.start(epoch: 0)
        guard let batch = try loader.next() else { return }
        let n = min(count, batch.count)
        let k = batch.keypointCount
        let tiles: [(GreyImage, [Float], [Float]?)] = (0 ..< n).map { i in
            let image = loader.pipeline.crop(batch, i)
            let points = (0 ..< 2 * k).map { j in batch.keypoints[i * 2 * k + j] * Float(j % 2 == 0 ? batch.width : batch.height) }
            return (image, points, nil)
        }
        try grid(tiles, title: "training samples (augmented)").writePNG(to: directory.appendingPathComponent("training_samples.png").path)
        loader.start(epoch: 0)
    }

    /// Tiles of crops with truth (green) and optional prediction (red), captioned.
    static func grid(_ tiles: [(GreyImage, [Float], [Float]?)], title: String, captions: [String] = [], columns: Int = 4) -> RGBImage {
        let scale = max(1, 160 / max(1, tiles.first?.0.width ?? 160))
        let tw = (tiles.first?.0.width ?? 1) * scale, th = (tiles.first?.0.height ?? 1) * scale
        let rows = (tiles.count + columns - 1) / columns
        var canvas = RGBImage(width: columns * (tw + 4) + 4, height: rows * (th + 16) + 20, fill: RGB(24, 24, 24))
        canvas.drawText(title, x: 4, y: 4, .white)
        for (i, tile) in tiles.enumerated() {
            let x = 4 + (i % columns) * (tw + 4), y = 20 + (i / columns) * (th + 16)
            canvas.blit(tile.0, x: x, y: y, width: tw, height: th)
            let sx = Float(tw) / Float(tile.0.width), sy = Float(th) / Float(tile.0.height)
            if let predicted = tile.2 {
                for p in 0 ..< predicted.count / 2 { canvas.drawDot(x: Float(x) + predicted[2 * p] * sx, y: Float(y) + predicted[2 * p + 1] * sy, .red) }
            }
            for p in 0 ..< tile.1.count / 2 { canvas.drawDot(x: Float(x) + tile.1[2 * p] * sx, y: Float(y) + tile.1[2 * p + 1] * sy, .green) }
            if i < captions.count { canvas.drawText(captions[i], x: x, y: y + th + 3, .white) }
        }
        return canvas
    }

    /// loss_curves.png: train and validation loss per epoch, axes labelled.
    public static func lossCurves(_ history: [EpochRecord], to directory: URL) throws {
        guard !history.isEmpty else { return }
        let (w, h, left, bottom, top, right) = (640, 400, 70, 40, 30, 20)
        var canvas = RGBImage(width: w, height: h, fill: .white)
        let train = history.map { $0.train_loss }
        let val = history.compactMap { $0.val_loss }
        let values = (train + val).filter { $0.isFinite && $0 > 0 }
        guard let lo = values.min(), let hi = values.max() else { return }
        // Log scale: losses fall by orders of magnitude.
        let (l0, l1) = (log10(lo), max(log10(hi), log10(lo) + 1e-3))
        let epochs = history.count
        func px(_ epoch: Int) -> Int { left + (w - left - right) * max(0, epoch - 1) / max(1, epochs - 1) }
        func py(_ v: Double) -> Int { top + Int(Double(h - top - bottom) * (1 - (log10(v) - l0) / (l1 - l0))) }
        canvas.drawLine(left, top, left, h - bottom, .black)
        canvas.drawLine(left, h - bottom, w - right, h - bottom, .black)
        for i in 0 ... 4 {
            let v = pow(10, l0 + (l1 - l0) * Double(i) / 4)
            let y = py(v)
            canvas.drawLine(left - 4, y, left, y, .black)
            canvas.drawText(String(format: "%.2g", v), x: 4, y: y - 3, .black)
        }
        for e in Set([1, (epochs + 1) / 2, epochs]).sorted() {
            canvas.drawLine(px(e), h - bottom, px(e), h - bottom + 4, .black)
            canvas.drawText("\(e)", x: px(e) - 3, y: h - bottom + 8, .black)
        }
        canvas.drawText("epoch", x: (w - left) / 2 + left - 15, y: h - 14, .black)
        canvas.drawText("loss (log scale)", x: 4, y: 10, .black)
        func plot(_ series: [Double], _ colour: RGB) {
            for i in 0 ..< series.count {
                guard series[i] > 0, series[i].isFinite else { continue }
                canvas.fillCircle(centreX: Float(px(i + 1)), centreY: Float(py(series[i])), radius: 2.5, colour)
                if i > 0, series[i - 1] > 0, series[i - 1].isFinite { canvas.drawLine(px(i), py(series[i - 1]), px(i + 1), py(series[i]), colour) }
            }
        }
        plot(train, .blue)
        plot(history.map { $0.val_loss ?? .nan }, .red)
        canvas.drawText("train", x: w - 120, y: 10, .blue)
        canvas.drawText("validation", x: w - 80, y: 10, .red)
        try canvas.writePNG(to: directory.appendingPathComponent("loss_curves.png").path)
    }

    /// predictions_best.png / predictions_worst.png: validation crops, truth green, prediction red.
    public static func bestAndWorst(_ images: [ImagePrediction], to directory: URL, count: Int = 8) throws {
        let sorted = images.filter { $0.crop != nil }.sorted { $0.error.nme < $1.error.nme }
        guard !sorted.isEmpty else { return }
        for (name, subset) in [("best", Array(sorted.prefix(count))), ("worst", Array(sorted.suffix(count).reversed()))] {
            let tiles = subset.map { p -> (GreyImage, [Float], [Float]?) in
                let toCrop = p.info.transform
                return (p.crop!, toCrop.apply(points: p.truth), toCrop.apply(points: p.predicted))
            }
            let captions = subset.map { String(format: "NME %.3f", $0.error.nme) }
            try grid(tiles, title: "\(name) validation predictions (truth green, prediction red)", captions: captions)
                .writePNG(to: directory.appendingPathComponent("predictions_\(name).png").path)
        }
    }

    /// first_layer_filters.png: the first convolution's kernels, each scaled to its own range.
    public static func firstLayerFilters(_ network: Network, to directory: URL) throws {
        guard let info = network.store.parameters.first(where: { $0.shape.count == 4 }) else { return }
        let (filters, k) = (info.shape[0], info.shape[2])
        let cell = max(8, 48 / k) * k
        let columns = min(filters, 16)
        var canvas = RGBImage(width: columns * (cell + 2) + 2, height: ((filters + columns - 1) / columns) * (cell + 2) + 18, fill: RGB(40, 40, 40))
        canvas.drawText("first layer filters (\(info.name))", x: 2, y: 3, .white)
        let values = network.store.values.baseAddress! + info.offset
        let perFilter = info.count / filters
        for f in 0 ..< filters {
            // Input channel 0 of each filter (grey input: the only one).
            let w = UnsafeBufferPointer(start: values + f * perFilter, count: k * k)
            let lo = w.min() ?? 0, hi = w.max() ?? 1
            let pixels = w.map { ($0 - lo) / max(hi - lo, 1e-12) }
            canvas.blit(GreyImage(width: k, height: k, pixels: pixels), x: 2 + (f % columns) * (cell + 2),
                        y: 16 + (f / columns) * (cell + 2), width: cell, height: cell)
        }
        try canvas.writePNG(to: directory.appendingPathComponent("first_layer_filters.png").path)
    }

    /// heatmaps_summed.png and heatmaps_channels.png: a U-Net's predicted heatmaps for one crop
    /// (grey values in [0, 1], normalised as the model was trained).
    public static func heatmaps(network: Network, crop: GreyImage, normalisation: PixelNormalisation, logits: Bool,
                                to directory: URL) throws {
        let input = Tensor(shape: [1, 1, crop.height, crop.width], values: crop.pixels.map(normalisation.normalise))
        let wasTraining = network.training
        network.training = false
        defer { network.training = wasTraining }
        let output = network.forward(input)
        let (k, h, w) = (output.c, output.h, output.w)
        let plane = h * w
        // Softmax-trained maps are logits: show the softmax (scaled to its peak); others as they are.
        var summed = [Float](repeating: 0, count: plane)
        var channels: [GreyImage] = []
        for c in 0 ..< k {
            let p = UnsafeBufferPointer(start: output.data + c * plane, count: plane)
            let hi = p.max() ?? 1
            let normalised = logits ? p.map { expf($0 - hi) } : p.map { max($0, 0) / max(hi, 1e-12) }
            for i in 0 ..< plane { summed[i] = max(summed[i], normalised[i]) }
            channels.append(GreyImage(width: w, height: h, pixels: normalised))
        }
        let title = "input / predicted heatmaps (max over \(k) channels)"
        var overlay = RGBImage(width: max(2 * w + 6, RGBImage.textWidth(title) + 4), height: h + 20, fill: RGB(24, 24, 24))
        overlay.drawText(title, x: 2, y: 3, .white)
        overlay.blit(crop, x: 2, y: 16)
        overlay.blit(GreyImage(width: w, height: h, pixels: summed), x: w + 4, y: 16)
        try overlay.writePNG(to: directory.appendingPathComponent("heatmaps_summed.png").path)
        let columns = 12, tile = 64
        var grid = RGBImage(width: columns * (tile + 2) + 2, height: ((k + columns - 1) / columns) * (tile + 2) + 18, fill: RGB(24, 24, 24))
        grid.drawText("predicted heatmap per keypoint", x: 2, y: 3, .white)
        for (c, image) in channels.enumerated() {
            grid.blit(image, x: 2 + (c % columns) * (tile + 2), y: 16 + (c / columns) * (tile + 2), width: tile, height: tile)
        }
        try grid.writePNG(to: directory.appendingPathComponent("heatmaps_channels.png").path)
    }
}
