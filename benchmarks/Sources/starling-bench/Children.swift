import Foundation
import StarlingTestSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Every process the bench started, so that each is stopped on every way out: normal end, error,
/// SIGINT or SIGTERM of the bench. Only PIDs recorded here are ever signalled.
final class Children: Sendable {
    static let shared = Children()

    private struct State {
        var pids: [pid_t] = []
        /// Process groups led by a child (a `starling up` agent and the workers it starts): after
        /// the children are stopped, whatever is left in them gets SIGKILL.
        var groups: [pid_t] = []
        var stopped = false
    }

    /// Held for the whole of `stopAll`, so a second caller (a signal during a normal stop) waits
    /// until every child is gone instead of exiting under it.
    private let state = Mutex(State())

    /// Records a child; false if stopping has begun (the caller must stop it itself).
    func add(_ pid: pid_t) -> Bool {
        state.withLock { state in
            guard !state.stopped else { return false }
            state.pids.append(pid)
            return true
        }
    }

    /// Records a child that leads a process group of its own (see `State.groups`).
    func addGroup(_ pgid: pid_t) {
        state.withLock { $0.groups.append(pgid) }
    }

    /// SIGTERM to every child, SIGKILL to those still running after `graceMs`; reaps them all.
    /// Idempotent; children started after it are refused by `add`.
    func stopAll(graceMs: Int = 3_000) {
        state.withLock { state in
            state.stopped = true
            Self.stop(state.pids, graceMs: graceMs)
            for group in state.groups { _ = kill(-group, SIGKILL) }
            state.pids = []
            state.groups = []
        }
    }

    /// Stops `pids` (children of this process): SIGTERM, a grace period, then SIGKILL.
    static func stop(_ pids: [pid_t], graceMs: Int) {
        var running = pids.filter { !reaped($0) }
        for pid in running { _ = kill(pid, SIGTERM) }
        _ = poll(within: .milliseconds(graceMs), every: .milliseconds(10)) { () -> Bool? in
            running.removeAll { reaped($0) }
            return running.isEmpty ? true : nil
        }
        for pid in running {
            _ = kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
    }

    /// Whether `pid` has exited (and is now reaped).
    private static func reaped(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        return result == pid || (result < 0 && errno == ECHILD)
    }
}

/// Stops every child on SIGINT, SIGTERM or SIGHUP, then exits with 128 + the signal.
enum SignalGuard {
    /// Call once, before the first child starts; keep the returned sources alive until the end.
    static func install(onSignal: @escaping @Sendable (Int32) -> Void) -> [any DispatchSourceSignal] {
        // A closed stdout (`starling-bench ... | head`) must not kill the bench before it has
        // stopped its children: writes fail with EPIPE instead.
        signal(SIGPIPE, SIG_IGN)
        var sources: [any DispatchSourceSignal] = []
        let queue = DispatchQueue(label: "starling-bench.signals")
        for number in [SIGINT, SIGTERM, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                onSignal(number)
                Children.shared.stopAll()
                exit(128 + number)
            }
            source.resume()
            sources.append(source)
        }
        return sources
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
@inline(__always)
func monotonicNs() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}
