import CLibUV

#if canImport(Glibc)
import Glibc
#endif

/// A process started with `posix_spawn` by a program that supervises it from outside an event
/// loop (the demo, the bench, the tests); inside a loop, use `ChildProcess`.
///
/// It is reaped only by its own `waitpid(pid, WNOHANG)`, never through SIGCHLD, so it works in a
/// process whose SIGCHLD disposition belongs to someone else (libuv installs its own handler
/// while a loop has children, which starves Foundation's `Process` of exits). Every wait has a
/// deadline. Not thread-safe: one owner uses it.
public final class SpawnedProcess {
    /// Where the child's stdout or stderr goes.
    public enum Output: Sendable {
        /// A pipe this object reads (`readLine`, `collect`).
        case pipe
        /// Appended to the file at this path (created if missing).
        case file(String)
        /// `/dev/null`.
        case discard
    }

    public let pid: Int32
    private var stdoutFD: Int32
    private var stderrFD: Int32
    private var stdinFD: Int32
    /// Read from stdout but not yet returned by `readLine`.
    private var buffered: [UInt8] = []
    /// The stdin given at start, written by `collect`.
    private var pendingInput: [UInt8]
    /// How it ended, once reaped.
    public private(set) var exitStatus: ChildProcess.ExitStatus?

    /// Starts `executable` with `arguments`. stdin is a pipe when `stdin` is given (the bytes are
    /// written by `collect`), else `/dev/null`. With `ownProcessGroup`, a Ctrl-C at the terminal
    /// reaches only the caller, which then stops the child itself. The child starts with no signal
    /// blocked and SIGINT, SIGTERM, SIGHUP, SIGPIPE and SIGCHLD at their defaults, whatever the
    /// calling thread had.
    public init(
        executable: String, arguments: [String], stdin: [UInt8]? = nil,
        stdout: Output = .discard, stderr: Output = .discard, ownProcessGroup: Bool = false
    ) throws(SpawnError) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Pipes are close-on-exec from birth, so a process spawned by another thread meanwhile
        // cannot inherit them (it would hold our reads open past this child's exit).
        var childEnds: [Int32] = []
        defer { childEnds.forEach { _ = Glibc.close($0) } }
        var parentEnds: [Int32] = []
        func pipeFor(_ target: Int32, parentReads: Bool) throws(SpawnError) -> Int32 {
            var fds: [Int32] = [-1, -1]
            // uv_pipe makes both ends close-on-exec atomically (pipe2).
            let made = uv_pipe(&fds, 0, 0)
            guard made == 0 else {
                parentEnds.forEach { _ = Glibc.close($0) }
                throw SpawnError(executable: executable, reason: "pipe: \(String(cString: uv_strerror(made)))")
            }
            let (parent, child) = parentReads ? (fds[0], fds[1]) : (fds[1], fds[0])
            // Non-blocking: every wait is a poll with a deadline.
            _ = fcntl(parent, F_SETFL, fcntl(parent, F_GETFL) | O_NONBLOCK)
            childEnds.append(child)
            parentEnds.append(parent)
            posix_spawn_file_actions_adddup2(&actions, child, target)
            return parent
        }
        func route(_ output: Output, to target: Int32) throws(SpawnError) -> Int32 {
            switch output {
            case .pipe:
                return try pipeFor(target, parentReads: true)
            case .file(let path):
                posix_spawn_file_actions_addopen(&actions, target, path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            case .discard:
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
            }
            return -1
        }
        if stdin != nil {
            stdinFD = try pipeFor(0, parentReads: false)
        } else {
            stdinFD = -1
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        stdoutFD = try route(stdout, to: 1)
        stderrFD = try route(stderr, to: 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if ownProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard code == 0 else {
            parentEnds.forEach { _ = Glibc.close($0) }
            throw SpawnError(executable: executable, reason: String(cString: strerror(code)))
        }
        self.pid = pid
        pendingInput = stdin ?? []
    }

    deinit {
        for fd in [stdinFD, stdoutFD, stderrFD] where fd >= 0 { _ = Glibc.close(fd) }
    }

    /// Reaps it if it has exited (never blocks); how it ended, or nil while it runs.
    @discardableResult
    public func reap() -> ChildProcess.ExitStatus? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid {
            let signal = status & 0x7f
            exitStatus = ChildProcess.ExitStatus(code: signal == 0 ? Int64((status >> 8) & 0xff) : 0, signal: signal)
        } else if result < 0 && errno == ECHILD {
            // Someone else reaped it; it is gone all the same.
            exitStatus = ChildProcess.ExitStatus(code: -1, signal: 0)
        }
        return exitStatus
    }

    public var isRunning: Bool { reap() == nil }

    /// Sends `signal` to this PID, unless it was already reaped (its PID may be someone else's now).
    public func signal(_ signal: Int32) {
        guard isRunning else { return }
        _ = Glibc.kill(pid, signal)
    }

    /// Waits up to `timeout` for it to exit; how it ended, or nil if it still runs.
    @discardableResult
    public func wait(timeout: Duration) -> ChildProcess.ExitStatus? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let status = reap() { return status }
            if ContinuousClock.now >= deadline { return nil }
            usleep(5_000)
        }
    }

    /// SIGKILL unless it already exited, then reaps it (a killed process exits at once; the wait
    /// is bounded all the same).
    public func kill() {
        signal(SIGKILL)
        wait(timeout: .seconds(10))
    }

    /// The next line of its stdout pipe, without the newline; nil at the end of the output, after
    /// `timeout`, or past `maxBytes`.
    public func readLine(timeout: Duration, maxBytes: Int = 4_096) -> String? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let newline = buffered.firstIndex(of: 0x0A) {
                let line = String(decoding: buffered[..<newline], as: UTF8.self)
                buffered.removeSubrange(...newline)
                return line
            }
            guard buffered.count <= maxBytes, stdoutFD >= 0 else { return nil }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return nil }
            var poller = pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(left / .milliseconds(1)) + 1)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return nil }
            var chunk = [UInt8](repeating: 0, count: 4_096)
            let count = chunk.withUnsafeMutableBytes { Glibc.read(stdoutFD, $0.baseAddress, $0.count) }
            if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard count > 0 else { return nil }
            buffered += chunk[..<count]
        }
    }

    /// Writes the stdin given at start, reads its stdout and stderr pipes to their ends and reaps
    /// it; SIGKILL when it takes longer than `timeout`. For short commands run to completion.
    public func collect(timeout: Duration) -> (status: ChildProcess.ExitStatus, stdout: [UInt8], stderr: [UInt8]) {
        let deadline = ContinuousClock.now + timeout
        var input = pendingInput
        pendingInput = []
        var stdout = buffered, stderr: [UInt8] = []
        buffered = []
        if stdinFD >= 0 && input.isEmpty { closeFD(&stdinFD) }
        while stdinFD >= 0 || stdoutFD >= 0 || stderrFD >= 0 {
            let left = deadline - ContinuousClock.now
            guard left > .zero else {
                signal(SIGKILL)
                break
            }
            var pollers: [pollfd] = []
            if stdinFD >= 0 { pollers.append(pollfd(fd: stdinFD, events: Int16(POLLOUT), revents: 0)) }
            if stdoutFD >= 0 { pollers.append(pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0)) }
            if stderrFD >= 0 { pollers.append(pollfd(fd: stderrFD, events: Int16(POLLIN), revents: 0)) }
            let ready = poll(&pollers, nfds_t(pollers.count), Int32(left / .milliseconds(1)) + 1)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            for poller in pollers where poller.revents != 0 {
                if poller.fd == stdinFD {
                    let written = input.withUnsafeBytes { Glibc.write(stdinFD, $0.baseAddress, $0.count) }
                    if written > 0 { input.removeFirst(written) }
                    if written < 0 && errno != EINTR && errno != EAGAIN { input = [] }
                    if input.isEmpty { closeFD(&stdinFD) }
                } else if poller.fd == stdoutFD {
                    drain(&stdoutFD, into: &stdout)
                } else if poller.fd == stderrFD {
                    drain(&stderrFD, into: &stderr)
                }
            }
        }
        for fd in [stdinFD, stdoutFD, stderrFD] where fd >= 0 { _ = Glibc.close(fd) }
        (stdinFD, stdoutFD, stderrFD) = (-1, -1, -1)
        let status = wait(timeout: max(deadline - ContinuousClock.now, .seconds(1))) ?? {
            kill()
            return reap() ?? ChildProcess.ExitStatus(code: -1, signal: SIGKILL)
        }()
        return (status, stdout, stderr)
    }

    private func drain(_ fd: inout Int32, into bytes: inout [UInt8]) {
        var chunk = [UInt8](repeating: 0, count: 16_384)
        let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if count > 0 {
            bytes += chunk[..<count]
        } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
            closeFD(&fd)
        }
    }

    private func closeFD(_ fd: inout Int32) {
        _ = Glibc.close(fd)
        fd = -1
    }
}

/// A process that could not be started.
public struct SpawnError: Error, CustomStringConvertible {
    public let executable: String
    public let reason: String
    public var description: String { "cannot start \(executable): \(reason)" }
}
