import ArgumentParser
import Foundation
import Logging
import StarlingCore
import StarlingNode

/// `starling worker`: runs one worker process of one service type until SIGINT/SIGTERM.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a worker of one service type that joins the heartbeat group.",
        discussion: """
            Heartbeats (UDP) and clients (TCP) share one port. Once bound, one line goes to stdout:
              starling worker <id> listening on HOST:PORT
            Logs go to stderr.
            """)

    @Option(help: "Service type: 1–64 of a-z, 0-9, '.', '_', '-'.")
    var service: String

    @Option(help: "UDP and TCP port; 0 takes a free port.")
    var port: Int

    @Option(help: "Numeric address to bind and advertise.")
    var host: String = "127.0.0.1"

    @Option(name: .customLong("join"), help: "HOST:PORT of a member to announce ourselves to (repeatable).")
    var seeds: [String] = []

    @Option(help: "Heartbeat interval in milliseconds (10–60000).")
    var interval: Int64 = 100

    @Option(name: .customLong("suspect-after"), help: "Milliseconds of silence before a peer is presumed dead (default: 3 intervals + jitter allowance).")
    var suspectAfter: Int64?

    @Option(help: "Operator priority: the highest becomes primary; ties go to the oldest.")
    var priority: Int32 = 0

    @Option(help: "Directory of service definitions; the worker loads DIR/<service>.toml.")
    var jobs: String = "jobs"

    @Option(name: .customLong("drain-timeout"), help: "Milliseconds a SIGTERM drain waits for held jobs (0–3600000).")
    var drainTimeout: Int64 = 30_000

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = LogLevelOption(argument: "info")!

    /// Filled in by `validate()` so that `run()` cannot meet a bad flag.
    private var settings: WorkerSettings?
    private var definition: ServiceDefinition?

    private enum CodingKeys: String, CodingKey {
        case service, port, host, seeds, interval, suspectAfter, priority, jobs, drainTimeout, logLevel
    }

    mutating func validate() throws {
        let name: ServiceName
        do { name = try ServiceName(service) } catch { throw ValidationError("--service: \(error)") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0–65535, got \(port)") }
        let bindHost: NodeAddress.Host
        do { bindHost = try NodeAddress.parseHost(host) } catch { throw ValidationError("--host: \(error)") }
        var joins: [NodeAddress] = []
        for seed in seeds {
            do {
                let address = try NodeAddress(parsing: seed)
                guard address.port != 0 else { throw ValidationError("--join \(seed): port 0 cannot be joined") }
                joins.append(address)
            } catch let error as NodeAddress.ParseError {
                throw ValidationError("--join: \(error)")
            }
        }
        guard joins.count <= 64 else { throw ValidationError("--join: at most 64 seeds, got \(joins.count)") }
        var candidate = WorkerSettings(
            service: name, host: bindHost, port: UInt16(port), seeds: joins, intervalMs: interval,
            suspectAfterMs: suspectAfter, priority: priority)
        candidate.drainTimeoutMs = drainTimeout
        do {
            try candidate.validate()
        } catch {
            throw ValidationError("\(error)")
        }
        do {
            definition = try ServiceDefinitionLoader.load(service: name, directory: jobs)
        } catch {
            throw ValidationError("--jobs: \(error)")
        }
        settings = candidate
    }

    func run() throws {
        // A client that closes its socket mid-write must give this process EPIPE, not kill it.
        signal(SIGPIPE, SIG_IGN)
        let level = logLevel.level
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "starling.worker")
        let worker: Worker
        do {
            worker = try Worker(settings: settings!, definition: definition!, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode.failure
        }
        // The one stdout line scripts and tests wait for.
        // Written straight to the descriptor: no stdio buffer to flush.
        FileHandle.standardOutput.write(Data("starling worker \(worker.id) listening on \(worker.address)\n".utf8))
        do {
            try worker.run()
        } catch {
            logger.critical("stopped on error: \(error)")
            throw ExitCode.failure
        }
    }
}
