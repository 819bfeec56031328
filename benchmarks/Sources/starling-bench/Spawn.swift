import Foundation
import StarlingTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Starts child processes for the bench: each in its own process group (a Ctrl-C at the terminal
/// reaches the bench only, which then stops them itself), stdin from /dev/null, stderr to a log
/// file, and registered with `Children.shared` before anything else can fail.
enum Spawn {
    /// A started child and, if asked for, the read end of a pipe on its stdout (the caller closes it).
    struct Started {
        let pid: pid_t
        let stdoutFD: Int32?
    }

    /// Starts `binary arguments...`; stdout goes to a pipe when `pipeStdout`, else to `logPath` too.
    static func start(binary: String, arguments: [String], logPath: String, pipeStdout: Bool) throws -> Started {
        var readFD: Int32 = -1
        var writeFD: Int32 = -1
        if pipeStdout {
            var pipeFDs: [Int32] = [0, 0]
            guard pipe(&pipeFDs) == 0 else { throw BenchError("pipe: \(String(cString: strerror(errno)))") }
            (readFD, writeFD) = (pipeFDs[0], pipeFDs[1])
            // Neither end leaks into the child except as its stdout (dup2 clears the flag there).
            _ = fcntl(readFD, F_SETFD, FD_CLOEXEC)
            _ = fcntl(writeFD, F_SETFD, FD_CLOEXEC)
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if pipeStdout {
            posix_spawn_file_actions_adddup2(&actions, writeFD, 1)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 2, 1)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF
            | POSIX_SPAWN_SETSIGMASK))

        let argv = ([binary] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, binary, &actions, &attributes, argv, environ)
        if pipeStdout { close(writeFD) }
        guard spawned == 0 else {
            if pipeStdout { close(readFD) }
            throw BenchError("cannot start \(binary): \(String(cString: strerror(spawned)))")
        }
        guard Children.shared.add(pid) else {
            Children.stop([pid], graceMs: 0)
            if pipeStdout { close(readFD) }
            throw BenchError("stopping: \(binary) not started")
        }
        return Started(pid: pid, stdoutFD: pipeStdout ? readFD : nil)
    }

    /// The first line on `fd`, waiting at most `timeoutMs` in all.
    static func readLine(_ fd: Int32, timeoutMs: Int) -> String {
        let deadline = monotonicNs() + UInt64(timeoutMs) * 1_000_000
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while bytes.count < 512 {
            let now = monotonicNs()
            guard now < deadline else { break }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = Glibc.poll(&poller, 1, Int32((deadline - now) / 1_000_000) + 1)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0, read(fd, &byte, 1) == 1, byte != 0x0A else { break }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Sends SIGKILL to a child the bench started and reaps it.
    static func killNow(_ pid: pid_t) {
        _ = kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }

    /// The last `bytes` of a log file, for error messages.
    static func logTail(_ path: String, bytes: Int = 2_000) -> String {
        String(((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").suffix(bytes))
    }

    /// This executable's path.
    static func selfExecutable() -> String {
        (try? StarlingBinary.selfExecutable()) ?? "/proc/self/exe"
    }
}
