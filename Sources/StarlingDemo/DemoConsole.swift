#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// The demo's output: the story on stdout (sections, events, the summary), and a progress line on
/// stderr, redrawn in place with `\r` when stderr is a terminal, or written once a second when not.
/// Every write is one `write(2)`, from any thread; the lock keeps lines whole and in order.
public final class DemoConsole: Sendable {
    public let start: ContinuousClock.Instant
    private let stderrIsTerminal: Bool
    /// Writes text to a file descriptor (1 or 2).
    private let output: @Sendable (_ fd: Int32, _ text: String) -> Void
    private struct State {
        /// The progress line, while there is one.
        var line: String?
        /// Whether it is on the terminal now.
        var visible = false
        var lastWritten: ContinuousClock.Instant?
    }
    private let state = Mutex(State())

    /// `stderrIsTerminal` and `output` are there for tests; by default the console writes to the
    /// real stdout and stderr, and draws the progress line in place when stderr is a terminal.
    public init(
        start: ContinuousClock.Instant = .now, stderrIsTerminal: Bool = isatty(2) == 1,
        output: @escaping @Sendable (_ fd: Int32, _ text: String) -> Void = DemoConsole.writeAll
    ) {
        self.start = start
        self.stderrIsTerminal = stderrIsTerminal
        self.output = output
    }

    /// Seconds since the demo started, as `12.3s`, right-aligned.
    public var clock: String { Self.clock(elapsed: ContinuousClock.now - start) }

    /// `elapsed` as the event lines show it: `12.3s`, right-aligned in six columns.
    public static func clock(elapsed: Duration) -> String {
        let tenths = elapsed.components.seconds * 10 + elapsed.components.attoseconds / 100_000_000_000_000_000
        let text = "\(tenths / 10).\(tenths % 10)s"
        return String(repeating: " ", count: max(0, 6 - text.count)) + text
    }

    /// A line of the story, as is.
    public func say(_ line: String = "") {
        state.withLock { state in
            clearProgress(&state)
            write(1, line + "\n")
            redrawProgress(&state)
        }
    }

    /// Something that happened now: `  12.3s  <text>`, above the progress line.
    public func event(_ text: String) {
        say("\(clock)  \(text)")
    }

    /// Replaces the progress line (terminal), or writes it if a second has passed (otherwise).
    public func progress(_ line: String) {
        state.withLock { state in
            if stderrIsTerminal {
                // At most 10 redraws a second: enough to look live, little to scroll back through.
                if state.visible, let last = state.lastWritten, ContinuousClock.now - last < .milliseconds(100) {
                    state.line = line
                    return
                }
                state.lastWritten = .now
                state.line = line
                state.visible = true
                // Auto-wrap off while it is written: a line wider than the terminal is cut, not
                // wrapped, so that `\r` still finds its start.
                write(2, "\r\u{1B}[K\u{1B}[?7l" + line + "\u{1B}[?7h")
            } else if state.lastWritten.map({ ContinuousClock.now - $0 >= .milliseconds(990) }) ?? true {
                state.lastWritten = .now
                write(2, line + "\n")
            }
        }
    }

    /// Removes the progress line for good (the terminal's line is cleared).
    public func endProgress() {
        state.withLock { state in
            clearProgress(&state)
            state.line = nil
            state.lastWritten = nil
        }
    }

    private func clearProgress(_ state: inout State) {
        guard stderrIsTerminal, state.visible else { return }
        write(2, "\r\u{1B}[K")
        state.visible = false
    }

    private func redrawProgress(_ state: inout State) {
        guard stderrIsTerminal, let line = state.line else { return }
        write(2, "\u{1B}[?7l" + line + "\u{1B}[?7h")
        state.visible = true
    }

    private func write(_ fd: Int32, _ text: String) {
        output(fd, text)
    }

    /// Writes all of `text` to `fd` (partial writes are continued; a failed write is dropped).
    public static func writeAll(_ fd: Int32, _ text: String) {
        try? FileHandle(fileDescriptor: fd, closeOnDealloc: false).write(contentsOf: Data(text.utf8))
    }
}
