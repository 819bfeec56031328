import ArgumentParser
import Foundation
import Logging
import StarlingCore
import StarlingNode

/// The flags every process of the heartbeat group takes (`starling worker`, `starling up`).
struct MemberOptions: ParsableArguments {
    @Option(help: "UDP and TCP port; 0 takes a free port (`starling up`: default 7946).")
    var port: Int?

    @Option(help: "Numeric address to bind and advertise.")
    var host: String = "127.0.0.1"

    @Option(name: .customLong("join"), help: ArgumentHelp(
        "A member to announce ourselves to (repeatable): IPv4:PORT, [IPv6]:PORT or NAME:PORT. A name is resolved again every announce round, and every address it gives is a seed.",
        valueName: "HOST:PORT"))
    var seeds: [String] = []

    @Option(help: "Heartbeat interval in milliseconds (10–60000).")
    var interval: Int64 = 100

    @Option(name: .customLong("suspect-after"), help: "Milliseconds of silence before a peer is presumed dead (default: 3 intervals + jitter allowance).")
    var suspectAfter: Int64?

    @Option(help: "Operator priority: the highest becomes primary; ties go to the oldest.")
    var priority: Int32 = 0

    @Option(name: .customLong("drain-timeout"), help: "Milliseconds a SIGTERM drain waits for held jobs (0–3600000).")
    var drainTimeout: Int64 = 30_000

    @Option(name: .customLong("max-connections"), help: ArgumentHelp(
        "Accepted TCP connections open at once (clients, inbound peer links, connections not yet routed); more are answered ERR - BUSY and closed. Default: the soft descriptor limit (ulimit -n) minus a reserve.",
        valueName: "N"))
    var maxConnections: Int?

    @Option(name: .customLong("route-timeout"), help: ArgumentHelp(
        "Milliseconds a new connection may take to send the first bytes that name its protocol (10–3600000).",
        valueName: "MS"))
    var routeTimeout: Int64 = ConnectionLimits.defaultRouteTimeoutMs

    @Option(name: .customLong("client-idle-timeout"), help: ArgumentHelp(
        "Milliseconds a client with no job in flight may go without completing a request (10–86400000).",
        valueName: "MS"))
    var clientIdleTimeout: Int64 = ConnectionLimits.defaultClientIdleTimeoutMs

    @Option(name: .customLong("peer-stall-timeout"), help: ArgumentHelp(
        "Milliseconds data sent on a peer link may go unacknowledged before the link is closed and made again (200–600000). The default, 1500, is about three retransmissions at Linux's 200 ms minimum RTO: a lossy link survives it, a stalled one is not left to back-offs of tens of seconds.",
        valueName: "MS"))
    var peerStallTimeout: Int64 = ConnectionLimits.defaultPeerStallTimeoutMs

    @Option(name: .customLong("cluster-key-file"), help: ArgumentHelp(
        "Keys that seal heartbeats and peer links (`starling keygen`; mode 600); SIGHUP re-reads it.",
        valueName: "PATH"))
    var clusterKeyFile: String?

    @Option(name: .customLong("client-token-file"), help: ArgumentHelp(
        "Tokens a client must present with AUTH before anything else (mode 600); SIGHUP re-reads it.",
        valueName: "PATH"))
    var clientTokenFile: String?

    @Option(name: .customLong("http"), help: ArgumentHelp(
        "Serve GET /metrics (Prometheus), /api/status and the dashboard at / on this numeric HOST:PORT (port 0 takes a free one). Off unless given.",
        valueName: "HOST:PORT"))
    var http: String?

    @Option(name: .customLong("http-request-timeout"), help: ArgumentHelp(
        "Milliseconds an HTTP request may take from its first byte to its end; a slower one is answered 408 and closed (100–600000).",
        valueName: "MS"))
    var httpRequestTimeout: Int64 = Int64(HTTPLimits().requestTimeoutMs)

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = LogLevelOption(argument: "info")!

    @Option(name: .customLong("log-format"), help: ArgumentHelp(
        "text, or json: one object per line with time, level, node, service, message and fields (`starling up` hands it on to its workers).",
        valueName: "FORMAT"))
    var logFormat = LogFormatOption(argument: "text")!

    /// The validated settings for a process of `service`; the message names the flag at fault.
    func settings(service: ServiceName, defaultPort: Int? = nil) throws -> WorkerSettings {
        guard let port = port ?? defaultPort else { throw ValidationError("--port is required (0 takes a free port)") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0–65535, got \(port)") }
        let bindHost: NodeAddress.Host
        do { bindHost = try NodeAddress.parseHost(host) } catch { throw ValidationError("--host: \(error)") }
        var joins: [JoinTarget] = []
        for seed in seeds {
            do {
                joins.append(try JoinTarget(parsing: seed))
            } catch {
                throw ValidationError("--join: \(error)")
            }
        }
        guard joins.count <= 64 else { throw ValidationError("--join: at most 64 seeds, got \(joins.count)") }
        var settings = WorkerSettings(
            service: service, host: bindHost, port: UInt16(port), joins: joins, intervalMs: interval,
            suspectAfterMs: suspectAfter, priority: priority)
        settings.drainTimeoutMs = drainTimeout
        if let http {
            do { settings.httpAddress = try NodeAddress(parsing: http) } catch { throw ValidationError("--http: \(error)") }
        }
        guard (100...600_000).contains(httpRequestTimeout) else {
            throw ValidationError("--http-request-timeout must be 100–600000 ms, got \(httpRequestTimeout)")
        }
        settings.httpLimits.requestTimeoutMs = UInt64(httpRequestTimeout)
        settings.connections = ConnectionLimits(
            maxConnections: maxConnections ?? ConnectionLimits.defaultMaxConnections(), routeTimeoutMs: routeTimeout,
            clientIdleTimeoutMs: clientIdleTimeout, peerStallTimeoutMs: peerStallTimeout)
        // Absolute: an agent hands the paths to the workers it starts.
        settings.clusterKeyFile = clusterKeyFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        settings.clientTokenFile = clientTokenFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        do {
            try settings.validate()
        } catch {
            throw ValidationError("\(error)")
        }
        return settings
    }
}

/// Runs one process of the heartbeat group until it has drained: logs to stderr, one line on
/// stdout once bound (`starling <kind> <id> listening on HOST:PORT`), which scripts wait for.
func runMember(
    kind: String, settings: WorkerSettings, role: WorkerRole, logLevel: Logger.Level, logFormat: LogFormat
) throws {
    // A peer that closes its socket mid-write must give this process EPIPE, not kill it.
    signal(SIGPIPE, SIG_IGN)
    // SIGHUP reloads once the loop watches it; until then its default action would end the process.
    // libuv gives the processes it spawns the default dispositions back.
    signal(SIGHUP, SIG_IGN)
    LoggingSystem.bootstrap { label in
        logFormat.handler(label: label, service: settings.service, level: logLevel)
    }
    var logger = Logger(label: "starling.\(kind)")
    let secrets: NodeSecrets
    do {
        secrets = try NodeSecrets(clusterKeyFile: settings.clusterKeyFile, clientTokenFile: settings.clientTokenFile)
    } catch {
        logger.critical("cannot start: \(error)")
        throw ExitCode.failure
    }
    let worker: Worker
    do {
        worker = try Worker(settings: settings, role: role, secrets: secrets, logger: logger)
    } catch {
        logger.critical("cannot start: \(error)")
        throw ExitCode.failure
    }
    // From here on its own lines name it too, as the worker's do.
    logger[metadataKey: JSONLogHandler.nodeKey] = "\(worker.id)"
    if secrets.clusterKeys == nil {
        logger.warning(
            "no --cluster-key-file: the cluster is open; anyone who can reach this port can join it, forge heartbeats and peer frames (see docs/SECURITY.md)")
    }
    // Written straight to the descriptor: no stdio buffer to flush.
    let httpPart = worker.httpAddress.map { " http \($0)" } ?? ""
    FileHandle.standardOutput.write(Data("starling \(kind) \(worker.id) listening on \(worker.address)\(httpPart)\n".utf8))
    do {
        try worker.run()
    } catch {
        logger.critical("stopped on error: \(error)")
        throw ExitCode.failure
    }
}
