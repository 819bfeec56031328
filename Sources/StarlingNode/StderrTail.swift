/// The last lines a worker wrote to its stderr, bounded in lines and bytes, for the warning an
/// agent logs when the worker failed to start. `append` also hands back the complete lines to pass
/// on, so that lines of several workers never interleave mid-line in the agent's own stderr.
struct StderrTail {
    static let maxLines = 10
    static let maxBytes = 4_096

    private var lines: [[UInt8]] = []
    private var partial: [UInt8] = []

    /// Takes a chunk of output; returns the complete lines in it (a line longer than `maxBytes`
    /// is cut there and passed on in pieces).
    mutating func append(_ bytes: [UInt8]) -> [UInt8] {
        var complete: [UInt8] = []
        for byte in bytes {
            partial.append(byte)
            if byte == UInt8(ascii: "\n") || partial.count >= Self.maxBytes {
                complete += partial
                keep(partial)
                partial.removeAll(keepingCapacity: true)
            }
        }
        return complete
    }

    /// The kept lines, oldest first, plus an unfinished last line; each without its newline.
    var recentLines: [String] {
        (lines + (partial.isEmpty ? [] : [partial])).map { line in
            String(decoding: line.last == UInt8(ascii: "\n") ? line.dropLast() : line[...], as: UTF8.self)
        }
    }

    private mutating func keep(_ line: [UInt8]) {
        lines.append(line)
        if lines.count > Self.maxLines { lines.removeFirst(lines.count - Self.maxLines) }
        var total = lines.reduce(0) { $0 + $1.count }
        while total > Self.maxBytes, lines.count > 1 {
            total -= lines.removeFirst().count
        }
    }
}
