#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import StarlingUV

/// Ends a command's whole process group (docs/HANDBOOK.md, "process group"): SIGTERM to the group
/// at once, then SIGKILL to the group once `graceMs` have passed, unless the group is gone before.
///
/// The group is asked every `checkEveryMs` whether any process is left in it. A child of the
/// command's that already exited but was never reaped (an orphan under an init that does not reap)
/// still counts, so there the grace period runs out and the SIGKILL, harmless to it, ends the wait.
/// `isEnded` turns true, and `onEnded` runs (from a timer callback, never inside `init`), once
/// nothing more will be sent; the timer is closed by then. Loop-confined.
final class ProcessGroupTermination {
    static let checkEveryMs: UInt64 = 20

    private let process: ChildProcess
    private let timer: Timer
    private let deadlineMs: UInt64
    private var onEnded: (() -> Void)?
    private(set) var isEnded = false

    init(loop: EventLoop, process: ChildProcess, graceMs: UInt64, onEnded: @escaping () -> Void) {
        self.process = process
        do {
            timer = try Timer(loop: loop)
        } catch {
            // uv_timer_init only fills in a struct; it cannot fail on an open loop.
            preconditionFailure("cannot create a process group timer: \(error)")
        }
        loop.updateTime()
        deadlineMs = loop.now + graceMs
        self.onEnded = onEnded
        guard send(SIGTERM) else {
            // Nothing left to signal: ended now, but reported from the loop, like every ending.
            end(report: false)
            return
        }
        do {
            try timer.start(afterMs: Self.checkEveryMs, repeatMs: Self.checkEveryMs) { [self] in
                check(nowMs: loop.now)
            }
        } catch {
            preconditionFailure("cannot start a process group timer: \(error)")
        }
    }

    private func check(nowMs: UInt64) {
        guard !isEnded else { return }
        if !send(0) {
            end(report: true)
        } else if nowMs >= deadlineMs {
            _ = send(SIGKILL)
            end(report: true)
        }
    }

    /// Sends `signal` to the group; false once no process of it is left (`ESRCH`). A permission
    /// error (a member that changed its user) counts as still there: the deadline ends the wait.
    private func send(_ signal: Int32) -> Bool {
        do {
            try process.signalGroup(signal)
            return true
        } catch {
            return error.name != "ESRCH"
        }
    }

    private func end(report: Bool) {
        isEnded = true
        timer.close()
        let onEnded = self.onEnded
        self.onEnded = nil
        if report { onEnded?() }
    }
}
