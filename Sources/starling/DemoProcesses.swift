#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// What `starling demo` needs to know about processes, read from `/proc` (Linux only).
///
/// A process is named by its pid and its start time (clock ticks since boot), so that a pid reused
/// by an unrelated process is never mistaken for one the demo caused.
struct DemoProcess: Hashable, Sendable {
    var pid: Int32
    var parent: Int32
    var group: Int32
    var startTicks: UInt64

    /// The process `pid`, or nil when it is gone (or is a zombie, which is as good as gone).
    static func read(_ pid: Int32) -> DemoProcess? {
        guard let stat = readProcFile("/proc/\(pid)/stat"),
              let close = stat.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm) " come: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
        // cmajflt utime stime cutime cstime priority nice num_threads itrealvalue starttime ...
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X",
              let parent = Int32(fields[1]), let group = Int32(fields[2]), let start = UInt64(fields[19])
        else { return nil }
        return DemoProcess(pid: pid, parent: parent, group: group, startTicks: start)
    }

    /// Every process now running.
    static func all() -> [DemoProcess] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return names.compactMap { Int32($0) }.compactMap { read($0) }
    }

    /// Whether this very process (same pid, same start) still runs.
    var isAlive: Bool { Self.read(pid)?.startTicks == startTicks }

    /// The program it runs (`/proc/PID/exe`), or nil when unreadable.
    var executable: String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
    }

    /// Its arguments, argv[0] included.
    var arguments: [String] {
        guard let text = readProcFile("/proc/\(pid)/cmdline") else { return [] }
        return text.split(separator: "\0", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// The inodes of the sockets it holds open.
    var socketInodes: Set<UInt64> {
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

    /// Sends `signal`, unless the pid now belongs to another process. True when it was sent.
    @discardableResult
    func send(_ signal: Int32) -> Bool {
        guard isAlive else { return false }
        return kill(pid, signal) == 0
    }
}

/// The inode of the TCP socket listening on `port` of 127.0.0.1 (or of any IPv4 address).
func listeningSocketInode(port: UInt16) -> UInt64? {
    guard let table = readProcFile("/proc/net/tcp") else { return nil }
    let portHex = String(format: "%04X", port)
    for line in table.split(separator: "\n").dropFirst() {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
        let fields = line.split(separator: " ")
        guard fields.count > 9, fields[3] == "0A" else { continue }  // 0A: LISTEN
        let local = fields[1].split(separator: ":")
        guard local.count == 2, local[1] == portHex, local[0] == "0100007F" || local[0] == "00000000" else { continue }
        return UInt64(fields[9])
    }
    return nil
}

/// A whole file of `/proc` (whose sizes read as 0, so it is read until end of file); nil when
/// the file cannot be opened.
func readProcFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { _ = Glibc.close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16 * 1024)
    while bytes.count < 16 << 20 {
        let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if count < 0, errno == EINTR { continue }
        guard count > 0 else { break }
        bytes += chunk[..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}
