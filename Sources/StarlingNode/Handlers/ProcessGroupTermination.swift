#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import StarlingUV

/// Ends a command's whole process group (docs/HANDBOOK.md, "process group"): SIGTERM to the group
/// at once, then SIGKILL to the group once `graceMs` have passed, unless the group is gone before.
///
/// It owns no timer: the job's own (`JobEnd`, free once a kill has decided the outcome) calls
/// `check` every `checkEveryMs` until `isEnded`. The group is asked whether any process is left in
/// it. A child of the command's that already exited but was never reaped (an orphan under an init
/// that does not reap) still counts, so there the grace period runs out and the SIGKILL, harmless
/// to it, ends the wait. `ChildProcess.signalGroup` says why a group whose leader was reaped is
/// never confused with another one that took its number.
struct ProcessGroupTermination {
    static let checkEveryMs: UInt64 = 20

    private let process: ChildProcess
    private let deadlineMs: UInt64
    /// Whether nothing more will be sent: the group is gone, or it was sent SIGKILL.
    private(set) var isEnded = false

    /// Sends SIGTERM to the group now; `nowMs` is the loop's time.
    init(process: ChildProcess, nowMs: UInt64, graceMs: UInt64) {
        self.process = process
        deadlineMs = nowMs + graceMs
        isEnded = !send(SIGTERM)
    }

    /// Ends the wait if the group is gone, or sends SIGKILL and ends it once the grace period is over.
    mutating func check(nowMs: UInt64) {
        guard !isEnded else { return }
        if !send(0) {
            isEnded = true
        } else if nowMs >= deadlineMs {
            _ = send(SIGKILL)
            isEnded = true
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
}
