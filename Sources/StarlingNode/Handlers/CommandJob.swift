#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import StarlingCore
import StarlingUV

/// One run of an external program in a process group of its own: feeds stdin, collects stdout and
/// a stderr tail, and ends once the process has exited and been reaped and (unless it was killed)
/// both outputs reached EOF.
///
/// A timeout, too much output or a cancel ends the whole group (`ProcessGroupTermination`:
/// SIGTERM, then SIGKILL after `CommandHandler.terminationGraceMs`), so a command's own children
/// do not outlive its job. After a kill, the exit and the group's end alone end the job, because a
/// grandchild may have kept the pipes open; the pipes are closed with the process handle. Every
/// handle is closed before the completion runs.
final class CommandJob: RunningJob {
    private let loop: EventLoop
    private let end: JobEnd
    private let limits: CommandHandler.Limits
    private let key: JobKey
    private var process: ChildProcess?
    /// Set by the first kill: the group's SIGTERM, then SIGKILL.
    private var termination: ProcessGroupTermination?
    private var output: [UInt8] = []
    private var stderrTail: [UInt8] = []
    private var isReadingStdout = true
    private var isReadingStderr = true
    private var exitStatus: ChildProcess.ExitStatus?
    /// Why the process group is being ended; set at most once.
    private var killReason: String?

    init(
        loop: EventLoop, key: JobKey, argv: [String], environment: [String: String], payload: [UInt8],
        timeoutMs: Int64, limits: CommandHandler.Limits, completion: @escaping (JobOutcome) -> Void
    ) {
        self.loop = loop
        self.key = key
        end = JobEnd(loop: loop, completion: completion)
        self.limits = limits
        let process: ChildProcess
        do {
            process = try ChildProcess(
                loop: loop, executable: argv[0], arguments: Array(argv.dropFirst()), environment: environment,
                stdin: .pipe, stdout: .pipe, stderr: .pipe, ownProcessGroup: true
            ) { [self] status in exited(status) }
        } catch {
            end.finishSoon(.failed("cannot start \(argv[0]): \(error.name) (\(error.message))"))
            return
        }
        self.process = process
        do {
            try process.stdout!.startReading { [self] event in stdoutEvent(event) }
            try process.stderr!.startReading { [self] event in stderrEvent(event) }
            let stdin = process.stdin!
            if !payload.isEmpty {
                try stdin.write(bytes: payload) { [stdin] error in
                    // EPIPE: the program exited without reading everything; its exit status decides.
                    if error != nil { stdin.close() }
                }
            }
            try stdin.shutdown { [stdin] _ in stdin.close() }
        } catch {
            kill(because: "cannot talk to \(argv[0]): \(error)")
            return
        }
        end.after(ms: UInt64(timeoutMs)) { [self] in
            kill(because: "\(timedOut(afterMs: timeoutMs)); killed")
            finishIfDone()
        }
    }

    func cancel() {
        guard !end.isDelivered else { return }
        end.cancel()
        // The group's end (or, without a process, the pending `finishSoon`) finishes the job.
        kill(because: "cancelled")
    }

    /// Decides the failure and starts ending the process group, also when the program itself has
    /// exited (its children may live on in the group). The job's timer, whose deadline no longer
    /// matters, then checks on the group until it has ended and finishes from there; never
    /// finishes by itself (it may run inside `cancel`).
    private func kill(because reason: String) {
        guard killReason == nil else { return }
        killReason = reason
        end.decide(.failed(reason))
        guard let process else { return }
        loop.updateTime()
        termination = ProcessGroupTermination(
            process: process, nowMs: loop.now, graceMs: CommandHandler.terminationGraceMs)
        checkTermination(afterMs: 0)
    }

    private func checkTermination(afterMs: UInt64) {
        end.after(ms: afterMs) { [self] in
            termination?.check(nowMs: loop.now)
            guard termination?.isEnded ?? true else {
                checkTermination(afterMs: ProcessGroupTermination.checkEveryMs)
                return
            }
            finishIfDone()
        }
    }

    private func exited(_ status: ChildProcess.ExitStatus) {
        exitStatus = status
        finishIfDone()
    }

    private func stdoutEvent(_ event: StreamReadEvent) {
        guard case .bytes(let bytes) = event else {
            isReadingStdout = false
            finishIfDone()
            return
        }
        guard output.count + bytes.count <= limits.maxOutputBytes else {
            output = []
            isReadingStdout = false
            process?.stdout?.stopReading()
            let size = "more than \(limits.maxOutputBytes) bytes"
            kill(because: JobSizeLimits.resultTooLarge(size, limit: limits.maxOutputBytes, key: key) + "; killed")
            finishIfDone()
            return
        }
        output += bytes
    }

    private func stderrEvent(_ event: StreamReadEvent) {
        guard case .bytes(let bytes) = event else {
            isReadingStderr = false
            finishIfDone()
            return
        }
        stderrTail += bytes
        // Trim in batches so a chatty program costs amortised constant time per byte.
        if stderrTail.count > 2 * limits.stderrTailBytes {
            stderrTail.removeFirst(stderrTail.count - limits.stderrTailBytes)
        }
    }

    /// Delivers once the process has been reaped and, unless it was killed, its outputs have ended;
    /// if it was killed, once its group has ended.
    private func finishIfDone() {
        guard !end.isDelivered else { return }
        if let process {
            guard let status = exitStatus else { return }
            guard killReason != nil || (!isReadingStdout && !isReadingStderr) else { return }
            guard termination?.isEnded ?? true else { return }
            end.decide(outcome(of: status))
            process.close()
        }
        end.deliver()
    }

    private func outcome(of status: ChildProcess.ExitStatus) -> JobOutcome {
        if status.signal == 0 && status.code == 0 { return .succeeded(output) }
        let what = status.signal == 0 ? "exit status \(status.code)" : "killed by signal \(status.signal)"
        let tail = String(decoding: stderrTail.suffix(limits.stderrTailBytes), as: UTF8.self)
            .trimmingWhitespace()
        return .failed(tail.isEmpty ? what : "\(what): \(tail)")
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
