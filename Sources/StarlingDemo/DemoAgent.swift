import StarlingCore
import StarlingTestSupport
import StarlingUV

/// One `starling up` process started by the demo.
///
/// It runs in a process group of its own: a Ctrl-C at the terminal reaches only the demo, which
/// then stops the agents in order (one SIGTERM each: they drain their workers), instead of every
/// process getting the signal at once. The workers an agent spawns inherit its group, so the group
/// also names every process the demo caused, even one whose agent died.
final class DemoAgent {
    let number: Int
    private let starling: StarlingProcess

    var logPath: String { starling.logPath }
    /// Where it listens, once it said so on stdout.
    var address: NodeAddress? { starling.listening?.address }
    var pid: Int32 { starling.pid }

    /// Spawns `executable up ARGUMENTS` in its own process group, with stdin from /dev/null,
    /// stdout to a pipe read by `waitUntilListening`, stderr (its log, and its workers') to `logPath`.
    init(number: Int, executable: String, arguments: [String], logPath: String) throws {
        self.number = number
        do {
            starling = try StarlingProcess(
                executable: executable, arguments: arguments, logPath: logPath, ownProcessGroup: true)
        } catch {
            throw DemoError(error.description)
        }
    }

    /// Reads stdout for `starling agent <id> listening on HOST:PORT` (up to `timeout`); false
    /// when the agent said nothing in time or exited. `interrupted` is asked between reads.
    func waitUntilListening(timeout: Duration, interrupted: () -> Bool) -> Bool {
        starling.waitUntilListening(as: .agent, timeout: timeout, interrupted: interrupted) != nil
    }

    /// Reaps the agent if it has exited; its end ("exit status 0", "killed by signal 9") or nil.
    @discardableResult
    func reap() -> String? {
        guard let status = starling.spawned.reap() else { return nil }
        if status.code < 0 { return "gone" }
        return status.signal == 0 ? "exit status \(status.code)" : "killed by signal \(status.signal)"
    }

    var hasExited: Bool { reap() != nil }

    /// Sends `signal` to the agent alone (its workers are its business).
    func send(_ signal: Int32) {
        starling.spawned.signal(signal)
    }

    /// The last `count` lines of its log, to show when it failed.
    func logTail(_ count: Int = 8) -> [String] {
        starling.logTail(lines: count)
    }
}
