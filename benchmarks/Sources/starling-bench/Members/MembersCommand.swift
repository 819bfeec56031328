import ArgumentParser
import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension StarlingBench {
    /// The cost of membership itself: idle workers, no jobs.
    struct Members: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Idle starling workers at several cluster sizes: convergence, CPU and datagrams per worker.",
            discussion: """
                For each N in --counts: starts N idle workers of --services service types (the first \
                the seed, the others joining it), waits until every worker's record holds all N \
                (at most --converge-timeout s), then measures for --measure s the CPU of all workers \
                (/proc/<pid>/stat) and the UDP datagrams sent and received per worker per second. \
                As root it runs them in a network namespace of their own, so that the UDP counters \
                are theirs alone. With --kill-primary it then kills one service's primary with -9 \
                and times how long survivors take to drop it and to name a new one. Starling only: \
                gearmand and nats-server have no membership among workers.
                """)

        @Option(help: "Cluster sizes, comma-separated.")
        var counts = "10,50,150"

        @Option(help: "Service types the workers are spread over.")
        var services = 3

        @Option(help: "Heartbeat interval of the workers, in milliseconds.")
        var interval = 100

        @Option(help: "Seconds measured once converged.")
        var measure = 10.0

        @Option(name: .customLong("converge-timeout"), help: "Seconds after the last worker started to wait for convergence.")
        var convergeTimeout = 30.0

        @Flag(name: .customLong("kill-primary"), help: "After measuring, kill -9 a primary and time its detection.")
        var killPrimary = false

        @Flag(name: .customLong("shared-namespace"), help: "Do not make a network namespace (the UDP counters are then the machine's).")
        var sharedNamespace = false

        @Option(help: "Also write the report as JSON to this path.")
        var json: String?

        @Flag(name: .customLong("keep-logs"), help: "Keep the workers' logs and print where.")
        var keepLogs = false

        var sizes: [Int] { counts.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

        func validate() throws {
            let sizes = self.sizes
            guard !sizes.isEmpty, sizes.count == counts.split(separator: ",").count, sizes.allSatisfy({ (1...500).contains($0) }) else {
                throw ValidationError("--counts must be numbers 1...500, comma-separated")
            }
            guard (1...26).contains(services) else { throw ValidationError("--services must be 1...26") }
            guard (10...10_000).contains(interval) else { throw ValidationError("--interval must be 10...10000 ms") }
            guard measure > 0, measure <= 3_600 else { throw ValidationError("--measure must be > 0 s (at most an hour)") }
            guard convergeTimeout > 0, convergeTimeout <= 3_600 else { throw ValidationError("--converge-timeout must be > 0 s (at most an hour)") }
            if let json {
                let folder = URL(fileURLWithPath: json).deletingLastPathComponent().path
                var isFolder: ObjCBool = false
                guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
                    throw ValidationError("--json: folder \(folder) does not exist")
                }
            }
        }

        /// Synchronous on purpose: the namespace belongs to this thread, and every worker is
        /// started and polled from it.
        func run() throws {
            let signals = SignalGuard.install { number in
                writeStderr("\nstarling-bench: signal \(number): stopping every process it started\n")
            }
            defer { withExtendedLifetime(signals) {} }
            let machine = Machine.current()
            let names = (0..<services).map { "idle-" + String(UnicodeScalar(UInt8(ascii: "a") + UInt8($0))) }
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("starling-bench-members-\(UUID().uuidString.prefix(8))").path
            do {
                let binary = try Cluster.findBinary()
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                for name in names {
                    try Data("# written by starling-bench: idle workers, no jobs are sent\nhandler = \"echo\"\n".utf8)
                        .write(to: URL(fileURLWithPath: directory + "/\(name).toml"))
                }
                var namespace = "shared"
                if !sharedNamespace {
                    do {
                        try NetworkNamespace.enterPrivate()
                        namespace = "private"
                    } catch {
                        writeStderr("starling-bench: no network namespace of its own (\(error)): the UDP counts include "
                            + "every other process's datagrams on this machine\n")
                    }
                }
                let runner = MembersRun(binary: binary, directory: directory, services: names, intervalMs: interval,
                                        measureS: measure, convergeTimeoutS: convergeTimeout, killPrimary: killPrimary)
                var points: [MembersPoint] = []
                for size in sizes {
                    points.append(try runner.run(workers: size))
                }
                Children.shared.stopAll()
                let report = MembersReport(
                    date: ISO8601DateFormatter().string(from: Date()), machine: machine,
                    settings: .init(services: services, intervalMs: interval, measureS: measure,
                                    convergeTimeoutS: convergeTimeout, namespace: namespace),
                    points: points)
                if keepLogs { writeStderr("starling-bench: the logs are in \(directory)\n") } else {
                    try? FileManager.default.removeItem(atPath: directory)
                }
                print(report.table)
                if let json {
                    try report.writeJSON(to: json)
                    print("JSON written to \(json)")
                }
            } catch {
                Children.shared.stopAll()
                writeStderr("starling-bench: \(error)\n")
                writeStderr("starling-bench: the logs are in \(directory)\n")
                throw ExitCode(1)
            }
        }
    }
}
