import StarlingTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// What `/proc` tells about the members scenario's workers: CPU time per process, and the UDP
/// counters of the network namespace a process is in.
enum ProcessCounters {
    /// utime + stime of `pid` in clock ticks (`/proc/<pid>/stat` fields 14 and 15); nil when it
    /// is gone.
    static func cpuTicks(_ pid: pid_t) -> UInt64? {
        guard let stat = ProcFile.read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm)" come the fields from 3 (state) on; the name may hold spaces.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user + system
    }

    static var ticksPerSecond: Double { Double(sysconf(Int32(_SC_CLK_TCK))) }

    /// The `Udp:` counters (OutDatagrams, InDatagrams, RcvbufErrors, ...) of the network namespace
    /// `pid` is in, by name; empty when unreadable.
    static func udp(of pid: pid_t) -> [String: UInt64] {
        guard let snmp = ProcFile.read("/proc/\(pid)/net/snmp") else { return [:] }
        let lines = snmp.split(separator: "\n").filter { $0.hasPrefix("Udp:") }
        guard lines.count >= 2 else { return [:] }
        let names = lines[0].split(separator: " ").dropFirst()
        let values = lines[1].split(separator: " ").dropFirst()
        var counters: [String: UInt64] = [:]
        for (name, value) in zip(names, values) { counters[String(name)] = UInt64(value) }
        return counters
    }
}
