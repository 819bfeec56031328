import Foundation
import StarlingCore
import StarlingNode
import StarlingTestSupport
import StarlingUV
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A real `starling worker` process started by a test. Only the PID started here is ever signalled.
final class WorkerProcess {
    /// A fresh directory holding `<service>.toml` with `definition`, for `--jobs`.
    static func jobsDirectory(service: String, definition: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("starling-jobs-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(definition.utf8).write(to: directory.appendingPathComponent("\(service).toml"))
        return directory.path
    }

    let process: SpawnedProcess
    let id: NodeID
    let address: NodeAddress
    /// Where its `--http` endpoints listen, when started with `--http`.
    let httpAddress: NodeAddress?
    let service: String
    /// The worker's stderr (its log), kept in a file so the pipe can never fill and block it.
    let logURL: URL

    /// Starts a worker and waits for its `listening on` line (at most `startTimeoutMs`); with
    /// `descriptorLimit`, under that soft `RLIMIT_NOFILE` (a shell sets it, then becomes the worker);
    /// with a `launcher` (a command that execs the rest, such as `ip netns exec NS`), through it, so
    /// the PID is still the worker's.
    init(
        service: String, port: UInt16 = 0, join: [NodeAddress] = [], interval: Int = 100, priority: Int32 = 0,
        extra: [String] = [], descriptorLimit: Int? = nil, launcher: [String] = [], startTimeoutMs: Int = 10_000
    ) throws {
        var arguments = ["worker", "--service", service, "--port", "\(port)", "--interval", "\(interval)",
                         "--priority", "\(priority)"]
        for seed in join { arguments += ["--join", seed.description] }
        if !extra.contains("--jobs") {
            // Every service type needs a definition; tests that do not care run echo.
            arguments += ["--jobs", try Self.jobsDirectory(service: service, definition: "handler = \"echo\"\n")]
        }
        arguments += extra
        let logURL = FileManager.default.temporaryDirectory
            .appendingPathComponent("starling-\(service)-\(UUID().uuidString.prefix(8)).log")
        var executable = try Self.binary()
        if let descriptorLimit {
            arguments = ["-c", "ulimit -n \(descriptorLimit) && exec \"$0\" \"$@\"", executable] + arguments
            executable = "/bin/sh"
        }
        if let first = launcher.first {
            arguments = Array(launcher.dropFirst()) + [executable] + arguments
            executable = first
        }
        let starling = try StarlingProcess(executable: executable, arguments: arguments, logPath: logURL.path)
        self.process = starling.spawned
        self.service = service
        self.logURL = logURL
        guard let listening = starling.waitUntilListening(as: .worker, timeout: .milliseconds(startTimeoutMs)) else {
            process.kill()
            throw WorkerProcessError.noListeningLine(line: starling.lastOtherLine, log: String(starling.log.suffix(2000)))
        }
        self.id = listening.id
        self.address = listening.address
        self.httpAddress = listening.httpAddress
    }

    deinit {
        kill()
    }

    var pid: Int32 { process.pid }

    /// SIGKILL (if still running) and reap.
    func kill() {
        process.kill()
    }

    /// Sends a signal to this worker's PID only (never after it was reaped).
    func signal(_ number: Int32) {
        process.signal(number)
    }

    /// The worker's record, or nil if it did not answer within `timeoutMs`.
    func status(timeoutMs: UInt64 = 1_000) -> StatusReport? {
        try? StatusClient.fetch(from: address, timeoutMs: timeoutMs)
    }

    var log: String { ProcFile.read(logURL.path) ?? "" }

    /// The path of the `starling` binary built with the tests.
    static func binary() throws -> String {
        try StarlingBinary.locate(searchBuildFolders: true)
    }
}

enum WorkerProcessError: Error, CustomStringConvertible {
    case noListeningLine(line: String, log: String)

    var description: String {
        switch self {
        case .noListeningLine(let line, let log): "no 'listening on' line (last line: '\(line)'); log:\n\(log)"
        }
    }
}

extension StatusReport {
    /// The entries claiming `primary` for `service`.
    func primaries(of service: String) -> [Entry] {
        members.filter { $0.service.value == service && $0.status == .primary }
    }

    var selfStatus: MemberStatus? { selfEntry?.status }
}

/// Raw sockets for hostile input, bypassing every Starling codec.
enum RawSocket {
    /// Sends each datagram to 127.0.0.1:`port` from a fresh UDP socket.
    static func sendUDP(_ datagrams: [[UInt8]], to port: UInt16) throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        var address = loopbackAddress(port)
        for datagram in datagrams {
            let sent = datagram.withUnsafeBytes { bytes in
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            guard sent == datagram.count else { throw POSIXError(.EIO) }
        }
    }

    /// Connects over TCP, sends `bytes`, half-closes and returns everything the peer answered before closing.
    static func exchangeTCP(_ bytes: [UInt8], with port: UInt16, timeoutMs: Int = 2_000) throws -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutMs / 1000, tv_usec: Int(timeoutMs % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = loopbackAddress(port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        shutdown(fd, Int32(SHUT_WR))
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while answer.count < 1 << 20 {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { break }
            answer += chunk[..<n]
        }
        return answer
    }

    /// Opens a TCP connection to 127.0.0.1:`port`; the caller closes the descriptor.
    static func connectTCP(to port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = loopbackAddress(port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
        return fd
    }

    /// A port that was free for both UDP and TCP a moment ago (bound to 0, then released).
    static func freePort() throws -> UInt16 {
        for _ in 0..<16 {
            let udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            var address = loopbackAddress(0)
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let port: UInt16 = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    guard bind(udp, $0, length) == 0, getsockname(udp, $0, &length) == 0 else { return 0 }
                    return 1
                }
            } == 0 ? 0 : UInt16(bigEndian: address.sin_port)
            let tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var probe = loopbackAddress(port)
            let tcpFree = withUnsafePointer(to: &probe) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(tcp, $0, length) == 0 }
            }
            close(udp)
            close(tcp)
            if port != 0 && tcpFree { return port }
        }
        throw POSIXError(.EADDRINUSE)
    }
}

/// 127.0.0.1:`port` for the raw sockets of tests.
func loopbackAddress(_ port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return address
}
