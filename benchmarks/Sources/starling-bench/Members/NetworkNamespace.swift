#if canImport(Glibc)
import Glibc
#endif

/// A network namespace of the calling thread's own, with its loopback up: the members scenario
/// starts its workers from this thread, so they inherit it, and the namespace's UDP counters
/// (`/proc/<pid>/net/snmp`) then count their datagrams and nothing else on the machine
/// (benchmarks/README.md, "members").
enum NetworkNamespace {
    /// Moves the calling thread into a new network namespace (root only) and brings `lo` up;
    /// throws with the reason when it cannot, and the thread stays where it was.
    static func enterPrivate() throws {
        let before = current()
        // unshare(2) is declared only under _GNU_SOURCE, which Swift's Glibc module leaves out:
        // look it up in libc instead. CLONE_NEWNET is 0x40000000 in <linux/sched.h>.
        typealias Unshare = @convention(c) (Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "unshare") else {
            throw BenchError("unshare(2) not found in libc")
        }
        let unshare = unsafeBitCast(symbol, to: Unshare.self)
        guard unshare(0x4000_0000) == 0 else {
            throw BenchError("unshare(CLONE_NEWNET): \(String(cString: strerror(errno))) (needs root)")
        }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var request = ifreq()
        withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { name in
            for (index, byte) in "lo".utf8.enumerated() { name[index] = byte }
        }
        // SIOCGIFFLAGS and SIOCSIFFLAGS from <linux/sockios.h>; IFF_UP from <net/if.h>.
        let getFlags: UInt = 0x8913, setFlags: UInt = 0x8914, up: Int16 = 0x1
        guard ioctl(fd, getFlags, &request) == 0 else {
            throw BenchError("SIOCGIFFLAGS lo: \(String(cString: strerror(errno)))")
        }
        request.ifr_ifru.ifru_flags |= up
        guard ioctl(fd, setFlags, &request) == 0 else {
            throw BenchError("SIOCSIFFLAGS lo: \(String(cString: strerror(errno)))")
        }
        guard let after = current(), after != before else {
            throw BenchError("the thread's network namespace did not change (\(before ?? "?") → \(current() ?? "?"))")
        }
    }

    /// The calling thread's network namespace, as `/proc/thread-self/ns/net` names it
    /// (`net:[inode]`); nil when unreadable.
    static func current() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        let count = readlink("/proc/thread-self/ns/net", &buffer, buffer.count - 1)
        return count > 0 ? String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }
}
