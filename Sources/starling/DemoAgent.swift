#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingNode
import StarlingUV

/// One `starling up` process started by the demo.
///
/// It runs in a process group of its own: a Ctrl-C at the terminal reaches only the demo, which
/// then stops the agents in order (one SIGTERM each: they drain their workers), instead of every
/// process getting the signal at once. The workers an agent spawns inherit its group, so the group
/// also names every process the demo caused, even one whose agent died.
final class DemoAgent {
    let number: Int
    let process: DemoProcess
    let logPath: String
    /// Where it listens, once it said so on stdout.
    private(set) var address: NodeAddress?
    private(set) var id: String?

    private let spawned: SpawnedProcess

    var pid: Int32 { spawned.pid }

    /// Spawns `executable up ARGUMENTS` in its own process group, with stdin from /dev/null,
    /// stdout to a pipe read by `waitUntilListening`, stderr (its log, and its workers') to `logPath`.
    init(number: Int, executable: String, arguments: [String], logPath: String) throws {
        self.number = number
        self.logPath = logPath
        do {
            spawned = try SpawnedProcess(
                executable: executable, arguments: arguments, stdout: .pipe, stderr: .file(logPath),
                ownProcessGroup: true)
        } catch {
            throw DemoError(error.description)
        }
        // Read at once: the child exists until it is reaped, so /proc has it.
        process = DemoProcess.read(spawned.pid)
            ?? DemoProcess(pid: spawned.pid, parent: getpid(), group: spawned.pid, startTicks: 0)
    }

    /// Reads stdout for `starling agent <id> listening on HOST:PORT` (up to `timeout`); false
    /// when the agent said nothing in time or exited. `interrupted` is asked between reads.
    func waitUntilListening(timeout: Duration, interrupted: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while address == nil, ContinuousClock.now < deadline, !interrupted(), reap() == nil {
            guard let line = spawned.readLine(timeout: .milliseconds(50)) else { continue }
            let words = line.split(separator: " ")
            guard words.count == 6, words[0] == "starling", words[1] == "agent", words[3] == "listening",
                  let address = try? NodeAddress(parsing: String(words[5]))
            else { continue }
            self.id = String(words[2])
            self.address = address
        }
        return address != nil
    }

    /// Reaps the agent if it has exited; its end ("exit status 0", "killed by signal 9") or nil.
    @discardableResult
    func reap() -> String? {
        guard let status = spawned.reap() else { return nil }
        if status.code < 0 { return "gone" }
        return status.signal == 0 ? "exit status \(status.code)" : "killed by signal \(status.signal)"
    }

    var hasExited: Bool { reap() != nil }

    /// Sends `signal` to the agent alone (its workers are its business).
    func send(_ signal: Int32) {
        spawned.signal(signal)
    }

    /// The last `count` lines of its log, to show when it failed.
    func logTail(_ count: Int = 8) -> [String] {
        guard let text = readProcFile(logPath) else { return [] }
        return text.split(separator: "\n").suffix(count).map(String.init)
    }
}

/// A reason the demo cannot go on, said to the user as is.
struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
