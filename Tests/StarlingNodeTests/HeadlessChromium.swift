import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Debian's `chromium`, headless, driven through the DevTools protocol over
/// `--remote-debugging-pipe` (it reads commands on fd 3 and writes answers on fd 4, each a JSON
/// object ended by a NUL byte), so a test can keep one page open and read its DOM as often as it
/// likes. Only the PID started here is ever signalled. Not thread-safe: one test owns it.
final class HeadlessChromium {
    /// Where `chromium` is installed, or nil.
    static func locate() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let folders = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"]
        return folders.lazy.map { "\($0)/chromium" }.first { access($0, X_OK) == 0 }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let pid: pid_t
    /// Our ends: commands go out on `toBrowser`, answers and events come in on `fromBrowser`.
    private let toBrowser: Int32
    private let fromBrowser: Int32
    private let profile: String
    let logPath: String
    private var nextID = 0
    private var buffered: [UInt8] = []
    private var isClosed = false

    /// Starts the browser with a fresh profile; its own output goes to `logPath`.
    init(executable: String) throws {
        profile = FileManager.default.temporaryDirectory.appendingPathComponent("starling-chromium-\(UUID().uuidString.prefix(8))").path
        logPath = profile + ".log"
        var commands: [Int32] = [-1, -1]
        var answers: [Int32] = [-1, -1]
        // Socket pairs, close-on-exec from birth (Glibc's module lacks pipe2), so that a process
        // another test spawns meanwhile cannot inherit our ends and hold them open.
        let kind = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard socketpair(AF_UNIX, kind, 0, &commands) == 0 else { throw Failure(description: "socketpair: \(errno)") }
        guard socketpair(AF_UNIX, kind, 0, &answers) == 0 else {
            commands.forEach { Glibc.close($0) }
            throw Failure(description: "socketpair: \(errno)")
        }
        // Moved above 3 and 4 first, so that placing one end cannot overwrite the other.
        let childReads = fcntl(commands[0], F_DUPFD_CLOEXEC, 10)
        let childWrites = fcntl(answers[1], F_DUPFD_CLOEXEC, 10)
        Glibc.close(commands[0])
        Glibc.close(answers[1])
        defer {
            Glibc.close(childReads)
            Glibc.close(childWrites)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_adddup2(&actions, childReads, 3)
        posix_spawn_file_actions_adddup2(&actions, childWrites, 4)
        // --no-sandbox: Chromium's sandbox refuses to run as root, which the suite may be.
        let arguments = [
            executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--remote-debugging-pipe", "--user-data-dir=\(profile)", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--window-size=1280,900", "about:blank",
        ]
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard code == 0 else {
            Glibc.close(commands[1])
            Glibc.close(answers[0])
            throw Failure(description: "cannot start \(executable): \(String(cString: strerror(code)))")
        }
        self.pid = pid
        toBrowser = commands[1]
        fromBrowser = answers[0]
        _ = fcntl(fromBrowser, F_SETFL, fcntl(fromBrowser, F_GETFL) | O_NONBLOCK)
    }

    deinit {
        close()
    }

    /// Opens `url` in a new tab; returns the session that commands to that tab go through.
    func open(_ url: String, timeout: Duration = .seconds(20)) throws -> String {
        let target = try command("Target.createTarget", ["url": url], timeout: timeout)
        guard let targetID = target["targetId"] as? String else { throw Failure(description: "no targetId in \(target)") }
        let attached = try command("Target.attachToTarget", ["targetId": targetID, "flatten": true], timeout: timeout)
        guard let session = attached["sessionId"] as? String else { throw Failure(description: "no sessionId in \(attached)") }
        return session
    }

    /// The value of a JavaScript expression in the tab of `session` (JSON-like values only).
    func evaluate(_ expression: String, in session: String, timeout: Duration = .seconds(5)) throws -> Any? {
        let answer = try command(
            "Runtime.evaluate", ["expression": expression, "returnByValue": true], session: session, timeout: timeout)
        if let exception = answer["exceptionDetails"] { throw Failure(description: "the page threw: \(exception)") }
        return (answer["result"] as? [String: Any])?["value"]
    }

    /// Sends one command and waits for its answer's `result` (events on the way are skipped).
    func command(
        _ method: String, _ parameters: [String: Any] = [:], session: String? = nil, timeout: Duration
    ) throws -> [String: Any] {
        nextID += 1
        var message: [String: Any] = ["id": nextID, "method": method, "params": parameters]
        if let session { message["sessionId"] = session }
        var bytes = Array(try JSONSerialization.data(withJSONObject: message))
        bytes.append(0)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { write(toBrowser, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure(description: "the browser stopped reading commands (\(errno))") }
            written += n
        }
        let deadline = ContinuousClock.now + timeout
        while true {
            let next = try readMessage(until: deadline)
            guard (next["id"] as? Int) == nextID else { continue }
            if let error = next["error"] { throw Failure(description: "\(method): \(error)") }
            return next["result"] as? [String: Any] ?? [:]
        }
    }

    private func readMessage(until deadline: ContinuousClock.Instant) throws -> [String: Any] {
        while true {
            if let end = buffered.firstIndex(of: 0) {
                let message = Data(buffered[..<end])
                buffered.removeSubrange(...end)
                guard let object = try JSONSerialization.jsonObject(with: message) as? [String: Any] else { continue }
                return object
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw Failure(description: "no answer from the browser in time") }
            var poller = pollfd(fd: fromBrowser, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(left / .milliseconds(1)) + 1)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let count = chunk.withUnsafeMutableBytes { read(fromBrowser, $0.baseAddress, $0.count) }
            if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard count > 0 else { throw Failure(description: "the browser closed its pipe; log:\n\(log.suffix(2_000))") }
            buffered += chunk[..<count]
        }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Asks the browser to quit, then SIGKILL if it has not within 5 s; reaps it and removes its profile.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        _ = try? command("Browser.close", timeout: .seconds(2))
        Glibc.close(toBrowser)
        Glibc.close(fromBrowser)
        let deadline = ContinuousClock.now + .seconds(5)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if ContinuousClock.now >= deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                break
            }
            usleep(20_000)
        }
        try? FileManager.default.removeItem(atPath: profile)
    }
}
