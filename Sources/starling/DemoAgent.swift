#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingNode

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
    /// How it ended, once reaped (`waitpid`).
    private(set) var exit: String?

    private var stdoutFD: Int32
    private var stdoutText = ""

    var pid: Int32 { process.pid }

    /// Spawns `executable up ARGUMENTS` with stdin from /dev/null, stdout to a pipe read by
    /// `waitUntilListening`, stderr (its log, and its workers') to `logPath`.
    init(number: Int, executable: String, arguments: [String], logPath: String) throws {
        self.number = number
        self.logPath = logPath
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else { throw DemoError("pipe: \(String(cString: strerror(errno)))") }
        // No other thread of the demo starts processes, so nothing can inherit these before this.
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, logPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group; no signal blocked; SIGINT, SIGTERM and SIGPIPE at their defaults.
        var none = sigset_t()
        sigemptyset(&none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        _ = Glibc.close(pipeFDs[1])
        guard code == 0 else {
            _ = Glibc.close(pipeFDs[0])
            throw DemoError("cannot start \(executable): \(String(cString: strerror(code)))")
        }
        stdoutFD = pipeFDs[0]
        _ = fcntl(stdoutFD, F_SETFL, fcntl(stdoutFD, F_GETFL) | O_NONBLOCK)
        // Read at once: the child exists until it is reaped, so /proc has it.
        process = DemoProcess.read(pid) ?? DemoProcess(pid: pid, parent: getpid(), group: pid, startTicks: 0)
    }

    /// Polls stdout for `starling agent <id> listening on HOST:PORT` (up to `timeout`); false
    /// when the agent said nothing in time or exited. `interrupted` is asked between polls.
    func waitUntilListening(timeout: Duration, interrupted: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while address == nil, ContinuousClock.now < deadline, !interrupted(), reap() == nil {
            var poller = pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 1024)
            let count = buffer.withUnsafeMutableBytes { Glibc.read(stdoutFD, $0.baseAddress, $0.count) }
            guard count > 0 else {
                if count == 0 { return false }
                continue
            }
            stdoutText += String(decoding: buffer[..<count], as: UTF8.self)
            parseListeningLine()
        }
        return address != nil
    }

    private func parseListeningLine() {
        for line in stdoutText.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard words.count == 6, words[0] == "starling", words[1] == "agent", words[3] == "listening",
                  let address = try? NodeAddress(parsing: String(words[5]))
            else { continue }
            self.id = String(words[2])
            self.address = address
        }
    }

    /// Reaps the agent if it has exited; its end ("exit status 0", "killed by signal 9") or nil.
    @discardableResult
    func reap() -> String? {
        if let exit { return exit }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        guard result == pid else {
            if result < 0, errno == ECHILD { exit = "gone" }
            return exit
        }
        let signal = status & 0x7f
        exit = signal == 0 ? "exit status \((status >> 8) & 0xff)" : "killed by signal \(signal)"
        if stdoutFD >= 0 {
            _ = Glibc.close(stdoutFD)
            stdoutFD = -1
        }
        return exit
    }

    var hasExited: Bool { reap() != nil }

    /// Sends `signal` to the agent alone (its workers are its business).
    func send(_ signal: Int32) {
        guard !hasExited else { return }
        _ = kill(pid, signal)
    }

    /// The last `count` lines of its log, to show when it failed.
    func logTail(_ count: Int = 8) -> [String] {
        guard let text = readProcFile(logPath) else { return [] }
        return text.split(separator: "\n").suffix(count).map(String.init)
    }

    deinit {
        if stdoutFD >= 0 { _ = Glibc.close(stdoutFD) }
    }
}

/// A reason the demo cannot go on, said to the user as is.
struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
