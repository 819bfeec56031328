import CLibUV

/// A spawned child process with optional stdio pipes. Loop-confined.
public final class ChildProcess {
    /// Write here to feed the child's stdin (when spawned with `.pipe`); shut it down to send EOF.
    public let stdin: PipeStream?
    /// Read the child's stdout here (when spawned with `.pipe`).
    public let stdout: PipeStream?
    /// Read the child's stderr here (when spawned with `.pipe`).
    public let stderr: PipeStream?
    /// The child's process ID.
    public let pid: Int32
    /// Whether the child leads a process group (and session) of its own, whose ID is `pid`.
    public let ownsProcessGroup: Bool

    private let context: ProcessContext

    /// Spawns `executable` (a path; not searched in `PATH`) with `arguments` (not including argv[0]).
    ///
    /// `environment` nil inherits this process's environment. With `ownProcessGroup` the child
    /// calls `setsid()` (libuv's `UV_PROCESS_DETACHED`): it leads a new session and process group,
    /// which its own children join, so `signalGroup` reaches all of them; it has no controlling
    /// terminal, so a terminal's Ctrl-C no longer reaches it directly. `onExit` runs once, on the
    /// loop thread, when the child ends; it may still have unread output in its pipes.
    public init(
        loop: EventLoop,
        executable: String,
        arguments: [String] = [],
        environment: [String: String]? = nil,
        workingDirectory: String? = nil,
        stdin stdinMode: Stdio = .pipe,
        stdout stdoutMode: Stdio = .pipe,
        stderr stderrMode: Stdio = .inherit,
        ownProcessGroup: Bool = false,
        onExit: @escaping (ExitStatus) -> Void
    ) throws(UVError) {
        let environment = environment.map { $0.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } }
        // libuv would silently cut a string at an embedded NUL; refuse before touching libuv.
        let strings = [executable] + arguments + (environment ?? []) + (workingDirectory.map { [$0] } ?? [])
        try uvCheck(strings.contains { $0.utf8.contains(0) } ? UVCode.invalid : 0,
                    "uv_spawn \(executable): NUL byte in an argument")
        let pipes = try Self.makePipes(loop: loop, modes: [stdinMode, stdoutMode, stderrMode])
        let handle = allocateHandle(uv_process_t.self)
        let code = Self.spawn(
            loop: loop, process: handle, executable: executable, arguments: [executable] + arguments,
            environment: environment, workingDirectory: workingDirectory, ownProcessGroup: ownProcessGroup,
            modes: [stdinMode, stdoutMode, stderrMode], pipes: pipes)
        // uv_spawn initialises the handle even when it fails, so the handle is closed either way.
        let context = ProcessContext(loop: loop, initialised: handle)
        context.onExit = onExit
        do {
            try uvCheck(code, "uv_spawn \(executable)")
        } catch {
            context.close()
            pipes.forEach { $0?.close() }
            throw error
        }
        self.context = context
        self.pid = handle.pointee.pid
        self.ownsProcessGroup = ownProcessGroup
        self.stdin = pipes[0]
        self.stdout = pipes[1]
        self.stderr = pipes[2]
    }

    deinit {
        assert(context.state != .open, "ChildProcess deallocated without close()")
    }

    /// Whether the exit callback has run.
    public var hasExited: Bool { context.hasExited }

    /// Sends `signal` (e.g. SIGTERM, SIGKILL) to the child; `ESRCH` once it has exited, because its
    /// PID may already belong to another process.
    public func kill(_ signal: Int32) throws(UVError) {
        let process = try context.live(as: uv_process_t.self, "uv_process_kill \(pid)")
        try uvCheck(context.hasExited ? UVCode.noSuchProcess : 0, "uv_process_kill \(pid): already exited")
        try uvCheck(uv_process_kill(process, signal), "uv_process_kill \(pid) \(signal)")
    }

    /// Sends `signal` to every process of the child's process group (spawned with `ownProcessGroup`),
    /// also after the child itself has exited: its children may live on in the group. `ESRCH` once
    /// no process of the group is left, and from then on; signal 0 only checks (a zombie counts).
    ///
    /// Why this never reaches an unrelated group, though the group ID is a number the system may
    /// hand out again. The kernel (and POSIX) keeps a process ID from being reused while a process
    /// group of that ID has a member, so `-pid` names this group for as long as the group exists.
    /// Until the child is reaped it is itself a member (a zombie at least), so nothing can go wrong.
    /// After libuv has reaped it, the number can come back only once the group is empty, and only
    /// as the PID of a new process (the number must be free to be allocated); a new group of that
    /// ID needs that process to make itself its leader. So a process numbered `pid` existing once
    /// the child is reaped means the group is gone and the number is another process's: that
    /// answers `ESRCH` without signalling anything. What is left is the moment between that check
    /// and the signal, in which the last member would have to end and the allocator wrap around
    /// `pid_max` to this very number (Linux hands PIDs out cyclically): not a practical race. Once
    /// `ESRCH` has been seen it is kept, so later calls cannot reach a group that took the number.
    public func signalGroup(_ signal: Int32) throws(UVError) {
        try uvCheck(ownsProcessGroup ? 0 : UVCode.invalid, "kill(-\(pid)): the child has no process group of its own")
        if !context.groupIsGone && context.hasExited && uv_kill(pid, 0) != UVCode.noSuchProcess {
            // Reaped, yet a process has its number: the number was free, so the group was empty.
            context.groupIsGone = true
        }
        try uvCheck(context.groupIsGone ? UVCode.noSuchProcess : 0, "kill(-\(pid)): the group has ended")
        let code = uv_kill(-pid, signal)
        if code == UVCode.noSuchProcess { context.groupIsGone = true }
        try uvCheck(code, "kill(-\(pid), \(signal))")
    }

    /// Closes the process handle and its pipes; idempotent. Does not kill a running child.
    public func close() {
        context.close()
        stdin?.close()
        stdout?.close()
        stderr?.close()
    }

    private static func makePipes(loop: EventLoop, modes: [Stdio]) throws(UVError) -> [PipeStream?] {
        var pipes: [PipeStream?] = []
        do {
            for mode in modes {
                pipes.append(mode == .pipe ? try PipeStream(loop: loop) : nil)
            }
        } catch {
            pipes.forEach { $0?.close() }
            throw error
        }
        return pipes
    }

    /// Builds the C option structs, valid only inside this call, and calls `uv_spawn`.
    private static func spawn(
        loop: EventLoop, process: UnsafeMutablePointer<uv_process_t>, executable: String,
        arguments: [String], environment: [String]?, workingDirectory: String?, ownProcessGroup: Bool,
        modes: [Stdio], pipes: [PipeStream?]
    ) -> Int32 {
        var stdio = (0..<3).map { fd -> uv_stdio_container_t in
            var container = uv_stdio_container_t()
            switch modes[fd] {
            case .ignore:
                container.flags = UV_IGNORE
            case .inherit:
                container.flags = UV_INHERIT_FD
                container.data.fd = Int32(fd)
            case .pipe:
                // Readable/writable is from the child's side: it reads stdin and writes the others.
                let direction = fd == 0 ? UV_READABLE_PIPE.rawValue : UV_WRITABLE_PIPE.rawValue
                container.flags = uv_stdio_flags(UV_CREATE_PIPE.rawValue | direction)
                container.data.stream = pipes[fd]!.stream
            }
            return container
        }
        let argv = CStringArray(arguments)
        let envp = environment.map(CStringArray.init)
        defer {
            argv.free()
            envp?.free()
        }
        var options = uv_process_options_t()
        options.exit_cb = processExited
        options.flags = ownProcessGroup ? UV_PROCESS_DETACHED.rawValue : 0
        options.stdio_count = Int32(stdio.count)
        return executable.withCString { file in
            withOptionalCString(workingDirectory) { cwd in
                stdio.withUnsafeMutableBufferPointer { stdio in
                    options.file = file
                    options.cwd = cwd
                    options.args = argv.pointer
                    options.env = envp?.pointer
                    options.stdio = stdio.baseAddress
                    return uv_spawn(loop.raw, process, &options)
                }
            }
        }
    }
}

extension ChildProcess {
    /// How a child process ended.
    public struct ExitStatus: Hashable, Sendable, CustomStringConvertible {
        /// The exit code; 0 when the child was killed by a signal.
        public let code: Int64
        /// The signal that terminated the child, or 0 if it exited normally.
        public let signal: Int32

        public init(code: Int64, signal: Int32) {
            self.code = code
            self.signal = signal
        }

        public var description: String { signal == 0 ? "exit \(code)" : "signal \(signal)" }
    }

    /// What a child's stdin, stdout or stderr is connected to.
    public enum Stdio: Sendable {
        /// The child gets no descriptor.
        case ignore
        /// The child shares this process's descriptor.
        case inherit
        /// A new pipe, exposed as a `PipeStream` on the `ChildProcess`.
        case pipe
    }
}

private final class ProcessContext: HandleContext {
    var onExit: ((ChildProcess.ExitStatus) -> Void)?
    var hasExited = false
    /// Latched once the child's process group is known to be empty: its ID may be reused.
    var groupIsGone = false

    override func didClose() {
        onExit = nil
        super.didClose()
    }
}

private func processExited(_ handle: UnsafeMutablePointer<uv_process_t>?, _ code: Int64, _ signal: Int32) {
    let context = HandleContext.unretained(handle, as: ProcessContext.self)
    context.hasExited = true
    // Taken out so the exit callback can never run twice.
    guard let onExit = context.onExit else { return }
    context.onExit = nil
    onExit(ChildProcess.ExitStatus(code: code, signal: signal))
}

/// A NULL-terminated array of C strings, owned until `free()`; for argv and envp.
private struct CStringArray {
    let pointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let count: Int

    init(_ strings: [String]) {
        count = strings.count
        pointer = .allocate(capacity: strings.count + 1)
        for (index, string) in strings.enumerated() {
            let utf8 = string.utf8CString
            let copy = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count)
            utf8.withUnsafeBufferPointer { copy.initialize(from: $0.baseAddress!, count: utf8.count) }
            (pointer + index).initialize(to: copy)
        }
        (pointer + strings.count).initialize(to: nil)
    }

    func free() {
        for index in 0..<count {
            pointer[index]?.deallocate()
        }
        pointer.deallocate()
    }
}

private func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}
