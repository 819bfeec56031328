#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A process as `/proc/PID/stat` shows it (Linux only).
///
/// A process is named by its pid and its start time (clock ticks since boot), so that a pid reused
/// by an unrelated process is never mistaken for the one that was read.
public struct RunningProcess: Hashable, Sendable {
    public var pid: Int32
    public var parent: Int32
    public var group: Int32
    public var startTicks: UInt64

    public init(pid: Int32, parent: Int32, group: Int32, startTicks: UInt64) {
        self.pid = pid
        self.parent = parent
        self.group = group
        self.startTicks = startTicks
    }

    /// The process `pid`, or nil when it is gone (or is a zombie, which is as good as gone).
    public static func read(_ pid: Int32) -> RunningProcess? {
        ProcFile.read("/proc/\(pid)/stat").flatMap { parse(stat: $0, pid: pid) }
    }

    /// The contents of a `/proc/PID/stat` file; nil when malformed or the process has exited.
    public static func parse(stat: String, pid: Int32) -> RunningProcess? {
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so the fields
        // start after its last ')'. After it: state ppid pgrp session tty_nr tpgid flags minflt
        // cminflt majflt cmajflt utime stime cutime cstime priority nice num_threads itrealvalue
        // starttime ...
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X",
              let parent = Int32(fields[1]), let group = Int32(fields[2]), let start = UInt64(fields[19])
        else { return nil }
        return RunningProcess(pid: pid, parent: parent, group: group, startTicks: start)
    }

    /// Every process now running.
    public static func all() -> [RunningProcess] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return names.compactMap { Int32($0) }.compactMap { read($0) }
    }

    /// The running processes whose parent is `pid`.
    public static func children(of pid: Int32) -> [RunningProcess] {
        all().filter { $0.parent == pid }
    }

    /// The running processes of process group `group` (its leader included, while it runs).
    public static func members(ofGroup group: Int32) -> [RunningProcess] {
        all().filter { $0.group == group }
    }

    /// Whether this very process (same pid, same start) still runs.
    public var isAlive: Bool { Self.read(pid)?.startTicks == startTicks }

    /// The program it runs (`/proc/PID/exe`), or nil when unreadable.
    public var executable: String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
    }

    /// Its arguments, argv[0] included.
    public var arguments: [String] {
        guard let text = ProcFile.read("/proc/\(pid)/cmdline") else { return [] }
        return text.split(separator: "\0", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// The inodes of the sockets it holds open (its `/proc/PID/fd` links `socket:[INODE]`).
    public var socketInodes: Set<UInt64> {
        let directory = "/proc/\(pid)/fd"
        guard let fds = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var inodes: Set<UInt64> = []
        for fd in fds {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\(fd)"),
                  target.hasPrefix("socket:["), target.hasSuffix("]"),
                  let inode = UInt64(target.dropFirst(8).dropLast())
            else { continue }
            inodes.insert(inode)
        }
        return inodes
    }

    /// The TCP ports it listens on (IPv4).
    public var listeningPorts: [UInt16] {
        let inodes = socketInodes
        return ListeningSocket.all().filter { inodes.contains($0.inode) }.map(\.port)
    }

    /// Its resident memory in KiB (`VmRSS` of `/proc/PID/status`), or nil when unreadable.
    public var residentKB: Int? {
        guard let status = ProcFile.read("/proc/\(pid)/status"),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }

    /// Sends `signal`, unless the pid now belongs to another process. True when it was sent.
    @discardableResult
    public func send(_ signal: Int32) -> Bool {
        guard isAlive else { return false }
        return kill(pid, signal) == 0
    }
}
