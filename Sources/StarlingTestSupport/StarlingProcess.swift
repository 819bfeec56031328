import StarlingUV

/// A `starling worker` or `starling up` process: stdin from /dev/null, stdout on a pipe (where it
/// says where it listens), stderr (its log) appended to a file, so that a pipe can never fill and
/// block it. Only this PID is ever signalled through it.
public final class StarlingProcess {
    public let spawned: SpawnedProcess
    public let logPath: String
    /// Where it listens, once `waitUntilListening` read it.
    public private(set) var listening: ListeningLine?
    /// The last stdout line that was not the awaited one (for error messages).
    public private(set) var lastOtherLine = ""

    /// Starts `executable arguments...`; with `ownProcessGroup`, in a process group of its own,
    /// which the workers an agent starts inherit.
    public init(executable: String, arguments: [String], logPath: String, ownProcessGroup: Bool = false)
        throws(SpawnError)
    {
        spawned = try SpawnedProcess(
            executable: executable, arguments: arguments, stdout: .pipe, stderr: .file(logPath),
            ownProcessGroup: ownProcessGroup)
        self.logPath = logPath
    }

    public var pid: Int32 { spawned.pid }

    /// Reads stdout until the `listening on` line of a `kind` process, skipping any other line;
    /// nil after `timeout`, once the process has exited or closed its stdout, or as soon as
    /// `interrupted` (asked between reads) says so.
    @discardableResult
    public func waitUntilListening(
        as kind: ListeningLine.Kind, timeout: Duration, interrupted: () -> Bool = { false }
    ) -> ListeningLine? {
        let deadline = ContinuousClock.now + timeout
        // Lines it wrote before it exited are still read: the end of stdout ends the wait, or its
        // exit once nothing more comes (a child of its may hold stdout open).
        while listening == nil, !interrupted() {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { break }
            let asked = ContinuousClock.now
            let slice = min(left, .milliseconds(50))
            guard let line = spawned.readLine(timeout: slice) else {
                // Back before its time: the end of stdout (or an over-long line); no line will come.
                if ContinuousClock.now - asked < slice || spawned.reap() != nil { break }
                continue
            }
            if let parsed = ListeningLine(line), parsed.kind == kind {
                listening = parsed
            } else {
                lastOtherLine = line
            }
        }
        return listening
    }

    /// Its log so far.
    public var log: String { ProcFile.read(logPath) ?? "" }

    /// The last `count` lines of its log.
    public func logTail(lines count: Int) -> [String] {
        log.split(separator: "\n").suffix(count).map(String.init)
    }
}
