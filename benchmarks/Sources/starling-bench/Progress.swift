import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The live progress line on stderr: rewritten in place four times a second on a terminal, one
/// line per second otherwise.
enum Progress {
    static func run(counters: LoadCounters, warmupS: Double, durationS: Double) async {
        let terminal = isatty(2) == 1
        let periodMs: UInt64 = terminal ? 250 : 1_000
        let start = monotonicNs()
        var lastAnswers: UInt64 = 0
        var lastTime = start
        while !counters.finished.load(ordering: .acquiring) {
            try? await Task.sleep(for: .milliseconds(periodMs))
            if counters.finished.load(ordering: .acquiring) { break }
            let now = monotonicNs()
            let answers = counters.answers.load(ordering: .relaxed)
            let rate = Double(answers - lastAnswers) / (Double(now - lastTime) / 1e9)
            lastAnswers = answers
            lastTime = now
            let elapsed = Double(now - start) / 1e9
            let phase = elapsed < warmupS ? "warm-up" : elapsed < warmupS + durationS ? "measuring" : "draining"
            let errors = counters.errors.load(ordering: .relaxed)
            let total = warmupS + durationS
            let filled = total > 0 ? min(20, Int((elapsed / total * 20).rounded(.down))) : 20
            let bar = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: 20 - filled) + "] "
            let text = bar + String(format: "%6.1f s  ", elapsed) + "\(phase)  \(answers) jobs  "
                + "\(Int(rate.rounded())) jobs/s  \(errors) errors"
            writeStderr(terminal ? "\r\u{1B}[K" + text : text + "\n")
        }
        if terminal { writeStderr("\r\u{1B}[K") }
    }
}

/// Writes to file descriptor 2 directly (no shared `FILE *`).
func writeStderr(_ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else { return }
        offset += written
    }
}
