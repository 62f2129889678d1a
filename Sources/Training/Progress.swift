import Foundation

/// Rank 0's progress display: a redrawn bar on a terminal, plain periodic lines otherwise (CI,
/// mpirun's forwarded output, log files), nothing with `quiet`.
public final class ProgressReporter {
    public enum Mode { case bar, lines, quiet }
    public let mode: Mode
    private let lineInterval: TimeInterval
    private var lastLine = Date.distantPast
    private var barVisible = false

    public init(quiet: Bool, lineInterval: TimeInterval = 10) {
        if quiet { mode = .quiet } else { mode = isatty(STDOUT_FILENO) != 0 ? .bar : .lines }
        self.lineInterval = lineInterval
    }

    public struct Status {
        public var epoch, epochs, step, stepsPerEpoch: Int
        public var loss: Double
        public var imagesPerSecond: Double
        public var secondsLeft: Double
        public init(epoch: Int, epochs: Int, step: Int, stepsPerEpoch: Int, loss: Double, imagesPerSecond: Double, secondsLeft: Double) {
            self.epoch = epoch; self.epochs = epochs; self.step = step; self.stepsPerEpoch = stepsPerEpoch
            self.loss = loss; self.imagesPerSecond = imagesPerSecond; self.secondsLeft = secondsLeft
        }
    }

    public func update(_ s: Status, force: Bool = false) {
        switch mode {
        case .quiet: return
        case .bar:
            let width = 24
            let fraction = Double(s.step) / Double(max(1, s.stepsPerEpoch))
            let filled = min(width, Int(fraction * Double(width)))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let text = String(format: "epoch %d/%d %@ %d/%d loss %.5f %.1f img/s ETA %@",
                              s.epoch, s.epochs, bar, s.step, s.stepsPerEpoch, s.loss, s.imagesPerSecond,
                              Self.duration(s.secondsLeft))
            FileHandle.standardOutput.write(Data(("\r\u{1B}[K" + text).utf8))
            barVisible = true
        case .lines:
            let now = Date()
            guard force || now.timeIntervalSince(lastLine) >= lineInterval else { return }
            lastLine = now
            print(String(format: "epoch %d/%d step %d/%d loss %.5f images/s %.1f ETA %@", s.epoch, s.epochs, s.step,
                         s.stepsPerEpoch, s.loss, s.imagesPerSecond, Self.duration(s.secondsLeft)))
            fflush(stdout)
        }
    }

    /// Prints a line that stays (epoch summaries, checkpoints), clearing the bar first.
    public func log(_ line: String) {
        if mode == .quiet { return }
        if barVisible { FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8)); barVisible = false }
        print(line)
        fflush(stdout)
    }

    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%02d:%02d", s / 60, s % 60)
    }
}

/// The process's peak resident set size (VmHWM), in bytes; 0 where /proc is unavailable.
public func peakResidentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if fields.count >= 2, let kib = Int(fields[1]) { return kib * 1024 }
    }
    return 0
}
