import StarlingDemo
import Synchronization
import Testing

/// What the console wrote, by file descriptor.
private final class Written: Sendable {
    private let writes = Mutex<[(fd: Int32, text: String)]>([])
    func add(_ fd: Int32, _ text: String) { writes.withLock { $0.append((fd, text)) } }
    func on(_ fd: Int32) -> String { writes.withLock { $0.filter { $0.fd == fd }.map(\.text).joined() } }
}

@Suite struct DemoConsoleTests {
    @Test func theClockIsTenthsOfSecondsRightAligned() {
        #expect(DemoConsole.clock(elapsed: .zero) == "  0.0s")
        #expect(DemoConsole.clock(elapsed: .milliseconds(8_149)) == "  8.1s")
        #expect(DemoConsole.clock(elapsed: .milliseconds(123_456)) == "123.4s")
    }

    @Test func storyLinesGoToStdoutAndEventsCarryTheClock() {
        let written = Written()
        let console = DemoConsole(start: .now - .milliseconds(2_500), stderrIsTerminal: false, output: written.add)
        console.say("== 1. two agents")
        console.event("agent 1 started")
        let stdout = written.on(1)
        #expect(stdout.hasPrefix("== 1. two agents\n  2."))
        #expect(stdout.hasSuffix("s  agent 1 started\n"))
        #expect(written.on(2).isEmpty)
    }

    @Test func withoutATerminalProgressIsALineAtMostEverySecond() {
        let written = Written()
        let console = DemoConsole(stderrIsTerminal: false, output: written.add)
        console.progress("jobs: 1")
        console.progress("jobs: 2")
        console.say("between")
        #expect(written.on(2) == "jobs: 1\n")
        #expect(written.on(1) == "between\n")
    }

    @Test func onATerminalProgressIsRedrawnInPlaceAroundStoryLines() {
        let written = Written()
        let console = DemoConsole(stderrIsTerminal: true, output: written.add)
        console.progress("jobs: 1")
        #expect(written.on(2) == "\r\u{1B}[K\u{1B}[?7ljobs: 1\u{1B}[?7h")
        console.say("an event")
        // Cleared before the story line, drawn again after it.
        #expect(written.on(2).hasSuffix("\r\u{1B}[K\u{1B}[?7ljobs: 1\u{1B}[?7h"))
        #expect(written.on(1) == "an event\n")
        console.endProgress()
        #expect(written.on(2).hasSuffix("\r\u{1B}[K"))
        console.say("after")
        #expect(written.on(2).hasSuffix("\r\u{1B}[K"), "no progress line comes back after its end")
    }
}
