import Foundation
import StarlingUV

#if canImport(Glibc)
import Glibc
#endif

/// A small network of Linux network namespaces for process tests that need a lossy, slow network
/// between hosts (docs/HANDBOOK.md, "The network lab"). Linux only; needs root.
///
/// Each host is a namespace of its own (`<prefix>h1`, `<prefix>h2`, ...) with `lo` up and one
/// interface, `lab0`, holding `<subnet>.N/24`. The `lab0` devices are TAP devices that
/// `scripts/lossy-hub` opens inside the namespaces and joins as an Ethernet hub, delaying each frame
/// by `delay ± jitter` ms (the kernel here has no netem). Loss is nftables inside each namespace:
/// `setLoss(percent:)` drops that share of the packets that arrive on `lab0`, so a packet between
/// two hosts crosses one drop point and loopback inside a host loses nothing.
///
/// Nothing outside its own namespaces is touched: no address, route, device or rule of the caller's
/// namespace. `tearDown()` (also run by `deinit`) stops the hub, whose exit removes the devices, and
/// deletes the namespaces; stop the processes running inside them first.
public final class NetworkLab {
    /// The namespaces, one per host: host `i` (0-based) is `namespaces[i]`.
    public let namespaces: [String]
    /// The hosts' addresses on `lab0`, in the order of `namespaces`.
    public let addresses: [String]
    /// The hub's log (its stderr): after `tearDown`, its count of frames forwarded and refused.
    public let hubLogPath: String
    public var hubLog: String { ProcFile.read(hubLogPath) ?? "" }
    public static let interface = "lab0"

    private var hub: SpawnedProcess?
    private var created: [String] = []
    private var tornDown = false

    /// Creates `hosts` namespaces named `<prefix>h1`... (prefix at most 8 characters, unique to the
    /// caller, e.g. `stl<pid>a`), joins them through `hubScript` with the given delay and gives host
    /// N the address `<subnet>.N`. On a failure, what was made is removed before it throws.
    public init(
        prefix: String, hosts: Int, subnet: String = "10.213.0", hubScript: String,
        delayMs: Int = 0, jitterMs: Int = 0
    ) throws(NetworkLabError) {
        namespaces = (1...hosts).map { "\(prefix)h\($0)" }
        addresses = (1...hosts).map { "\(subnet).\($0)" }
        hubLogPath = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-hub.log").path
        try? FileManager.default.removeItem(atPath: hubLogPath)  // a file of an earlier process with this PID
        do {
            for name in namespaces {
                try Self.ip(["netns", "add", name])
                created.append(name)
            }
            var arguments = namespaces.flatMap { ["--tap", "\($0):\(Self.interface)"] }
            arguments += ["--delay-ms", "\(delayMs)", "--jitter-ms", "\(jitterMs)"]
            let hub: SpawnedProcess
            do {
                // stdin is a pipe this object holds: if the test process dies, the hub sees its end.
                hub = try SpawnedProcess(
                    executable: hubScript, arguments: arguments, stdin: [], stdout: .pipe, stderr: .file(hubLogPath))
            } catch {
                throw NetworkLabError(what: "start \(hubScript)", detail: error.description)
            }
            self.hub = hub
            guard hub.readLine(timeout: .seconds(10)) == "ready" else {
                throw NetworkLabError(what: "start the hub", detail: ProcFile.read(hubLogPath) ?? "no log")
            }
            for (name, address) in zip(namespaces, addresses) {
                try Self.ip(["-n", name, "link", "set", "lo", "up"])
                try Self.ip(["-n", name, "addr", "add", "\(address)/24", "dev", Self.interface])
                try Self.ip(["-n", name, "link", "set", Self.interface, "up"])
            }
        } catch let error as NetworkLabError {
            tearDown()
            throw error
        } catch {
            tearDown()
            throw NetworkLabError(what: "set up the lab", detail: "\(error)")
        }
    }

    deinit {
        tearDown()
    }

    /// Drops `percent` % of the packets arriving on `lab0` in every host namespace (0 removes the
    /// rule), chosen per packet by nftables' `numgen random`.
    public func setLoss(percent: Int) throws(NetworkLabError) {
        for name in namespaces {
            // Replaced whole each time: add-then-delete makes the table exist, then empties it.
            var rules = "table inet starling_lab\ndelete table inet starling_lab\n"
            rules += "table inet starling_lab {\n  chain input {\n"
            rules += "    type filter hook input priority filter; policy accept;\n"
            if percent > 0 {
                rules += "    iifname \"\(Self.interface)\" numgen random mod 100 < \(percent) drop\n"
            }
            rules += "  }\n}\n"
            try Self.run(Self.tool("ip"), ["netns", "exec", name, Self.tool("nft"), "-f", "-"], input: Array(rules.utf8))
        }
    }

    /// The command prefix that runs a program inside `namespace`: `ip netns exec <namespace>`, which
    /// execs the program, so the PID of a process spawned through it is the program's own.
    public func launcher(in namespace: String) -> [String] {
        [Self.tool("ip"), "netns", "exec", namespace]
    }

    /// Stops the hub (SIGTERM, then SIGKILL after 3 s), which removes the TAP devices, and deletes
    /// the namespaces this lab created. Safe to call again.
    public func tearDown() {
        guard !tornDown else { return }
        tornDown = true
        if let hub {
            hub.signal(SIGTERM)
            if hub.wait(timeout: .seconds(3)) == nil { hub.kill() }
        }
        hub = nil
        for name in created.reversed() {
            try? Self.ip(["netns", "del", name])
        }
        created = []
    }

    /// Why the lab cannot run on this machine (not root, a tool or /dev/net/tun missing, namespaces
    /// refused), or nil when it can. Tries to create and delete one namespace `<prefix>probe`.
    public static func unavailableReason(hubScript: String, prefix: String) -> String? {
        guard getuid() == 0 else { return "not root: creating network namespaces needs root" }
        for name in ["ip", "nft", "python3"] where which(name) == nil {
            return "\(name) is not installed (scripts/ensure-deps installs iproute2 and nftables)"
        }
        guard FileManager.default.isExecutableFile(atPath: hubScript) else { return "\(hubScript) is not executable" }
        let tun = open("/dev/net/tun", O_RDWR)
        guard tun >= 0 else { return "/dev/net/tun cannot be opened: \(String(cString: strerror(errno)))" }
        close(tun)
        let probe = "\(prefix)probe"
        do throws(NetworkLabError) {
            try ip(["netns", "add", probe])
            defer { try? ip(["netns", "del", probe]) }
            try run(tool("ip"), ["netns", "exec", probe, tool("nft"), "list", "ruleset"])
        } catch {
            return "cannot use a network namespace: \(error)"
        }
        return nil
    }

    /// The path of `name` on PATH, or in /usr/sbin or /sbin (where `ip` and `nft` live, often
    /// outside a user's PATH); nil when none is executable.
    public static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let folders = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        return folders.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private static func tool(_ name: String) -> String { which(name) ?? name }

    private static func ip(_ arguments: [String]) throws(NetworkLabError) {
        try run(tool("ip"), arguments)
    }

    /// Runs a short command to its end (10 s at most); throws unless it exits 0.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], input: [UInt8]? = nil) throws(NetworkLabError) -> String {
        let process: SpawnedProcess
        do {
            process = try SpawnedProcess(
                executable: executable, arguments: arguments, stdin: input, stdout: .pipe, stderr: .pipe)
        } catch {
            throw NetworkLabError(what: ([executable] + arguments).joined(separator: " "), detail: error.description)
        }
        let (status, stdout, stderr) = process.collect(timeout: .seconds(10))
        guard status.code == 0, status.signal == 0 else {
            throw NetworkLabError(
                what: ([executable] + arguments).joined(separator: " "),
                detail: "exit \(status.code) signal \(status.signal): \(String(decoding: stderr, as: UTF8.self))")
        }
        return String(decoding: stdout, as: UTF8.self)
    }
}

/// A lab command that failed: what was run and what it said.
public struct NetworkLabError: Error, CustomStringConvertible {
    public let what: String
    public let detail: String
    public var description: String { "\(what): \(detail)" }
}

/// Runs `body` on the calling thread inside the network namespace `/var/run/netns/<namespace>`
/// (`setns(2)`), then moves the thread back to the namespace it was in. Sockets opened in `body`
/// belong to that namespace for their whole life, wherever they are used later.
///
/// Call it only on a thread you own, such as one of `runOnDedicatedThread` (or use
/// `runInNetworkNamespace`): never on a cooperative-pool thread, whose other tasks would run in the
/// wrong namespace.
public func withNetworkNamespace<T>(_ namespace: String, _ body: () throws -> T) throws -> T {
    let home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
    guard home >= 0 else { throw NetworkLabError(what: "open this thread's namespace", detail: errnoText()) }
    defer { close(home) }
    let target = open("/var/run/netns/\(namespace)", O_RDONLY | O_CLOEXEC)
    guard target >= 0 else { throw NetworkLabError(what: "open namespace \(namespace)", detail: errnoText()) }
    defer { close(target) }
    guard setNetworkNamespace(target) == 0 else {
        throw NetworkLabError(what: "setns to \(namespace)", detail: errnoText())
    }
    defer {
        // A thread that cannot return must not live on in the wrong namespace.
        if setNetworkNamespace(home) != 0 { fatalError("setns back from \(namespace): \(errnoText())") }
    }
    return try body()
}

/// `work` on a fresh thread of its own (`runOnDedicatedThread`) inside the network namespace
/// `namespace` (`withNetworkNamespace`).
public func runInNetworkNamespace<T: Sendable>(
    _ namespace: String, _ work: @escaping @Sendable () throws -> T
) async throws -> T {
    try await runOnDedicatedThread { try withNetworkNamespace(namespace, work) }
}

private func errnoText() -> String { String(cString: strerror(errno)) }

/// `setns(2)` for network namespaces. Glibc's header declares it only under `_GNU_SOURCE`, which
/// Swift's Glibc module does not define, so it is looked up in the C library by name.
private func setNetworkNamespace(_ descriptor: Int32) -> Int32 {
    typealias SetNS = @convention(c) (Int32, Int32) -> Int32
    let cloneNewNet: Int32 = 0x4000_0000  // CLONE_NEWNET, <linux/sched.h>
    guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "setns") else {
        errno = ENOSYS
        return -1
    }
    return unsafeBitCast(symbol, to: SetNS.self)(descriptor, cloneNewNet)
}
